"""The SQL source against a real SQLite file and the real PostgreSQL server: counts are
computed in the source database (GROUP BY), windowed by its timestamp column, and give the
same reading as the same decisions read from a file.

Data: German Credit (tests/data/german_credit.csv, CC BY 4.0) with a decision time per
applicant (see tests/test_sources.py). The monitor's own database is a SQLite file here; the
back-end contract of the monitor's store is tests/test_backends.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.exc import OperationalError

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.errors import ConfigError, DataError
from fairlens_monitor.ops.app import open_cipher, open_repository
from fairlens_monitor.ops.cycle import execute_cycle, run_cycle
from fairlens_monitor.sources.base import SqlSource
from tests.test_sources import (
    START,
    STEP,
    assert_german_by_sex,
    assert_window_counted,
    fixed,
    german,
)

Clock = Callable[[], datetime]


@pytest.fixture(params=["sqlite", "postgresql"])
def source_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A decision database holding table ``decisions``: a SQLite file or a fresh PG database.

    SQLite keeps times as text; they are written with a +01:00 offset (the same instants)
    so the window has to compare instants, not strings. PostgreSQL gets ``timestamptz``.
    """
    url = (
        f"sqlite:///{tmp_path / 'lender.db'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("pg_url"))
    )
    df = german()
    if request.param == "sqlite":
        df["decided_at"] = [
            (START + i * STEP).astimezone(timezone(timedelta(hours=1))).isoformat()
            for i in range(len(df))
        ]
    else:
        df["decided_at"] = pd.to_datetime(df["decided_at"], utc=True)
    engine = create_engine(url)
    df.to_sql("decisions", engine, index=False)
    engine.dispose()
    return url


def sql_config(url: str, **source: Any) -> dict[str, Any]:
    return {
        "source": {
            "kind": "sql",
            "url": url,
            "table": "decisions",
            "outcome": "risk",
            "timestamp": "decided_at",
            "stratum": "credit_amount",
            **source,
        },
        "measurement": {
            "protected_attributes": ["sex"],
            "privileged_value": "male",
            "unprivileged_value": "female",
        },
    }


def test_whole_table_matches_the_file_reading(
    make_settings: Callable[..., Settings], source_url: str, tmp_path: Path
) -> None:
    settings = make_settings(sql_config(source_url))
    repo = open_repository(settings)
    outcome = run_cycle(
        settings, repo, open_cipher(settings, repo), clock=fixed(START), actor="cli"
    )
    assert_german_by_sex(outcome)
    assert outcome.monitored is not None
    folder = tmp_path / "files"
    folder.mkdir()
    german().to_csv(folder / "all.csv", index=False)
    from tests.test_sources import file_config

    file_settings = make_settings(
        {**file_config(folder), "database": {"url": f"sqlite:///{tmp_path}/file.db"}}
    )
    file_repo = open_repository(file_settings)
    from_file = run_cycle(
        file_settings,
        file_repo,
        open_cipher(file_settings, file_repo),
        clock=fixed(START),
        actor="cli",
    )
    assert outcome.batch is not None
    assert from_file.batch is not None
    # The same decisions give the same count table, to the byte, and the same explanation.
    assert outcome.batch.lineage["counts_sha256"] == from_file.batch.lineage["counts_sha256"]
    assert outcome.monitored.explanation == (
        from_file.monitored and from_file.monitored.explanation
    )


def test_only_the_contingency_table_crosses_the_wire(
    make_settings: Callable[..., Settings], source_url: str
) -> None:
    settings = make_settings(sql_config(source_url, stratum=None))
    source = SqlSource(settings.source, settings.group_spec(), None)
    statements: list[str] = []
    event.listen(
        source.engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *args: statements.append(statement),
    )
    batch = source.read(START, {})
    source.close()
    assert batch.decisions == 1000
    # sex × risk: four distinct combinations come back for 1,000 decisions.
    assert batch.lineage["rows_returned"] == 4
    counting = [s for s in statements if "count(*)" in s.lower()]
    assert len(counting) == 1
    assert "GROUP BY" in counting[0].upper()
    assert "GROUP BY" in batch.lineage["sql"].upper()


def test_the_window_is_applied_in_the_database(
    make_settings: Callable[..., Settings], source_url: str
) -> None:
    settings = make_settings(sql_config(source_url, window="36h"))
    repo = open_repository(settings)
    now = START + timedelta(days=4, hours=3)
    outcome = run_cycle(settings, repo, open_cipher(settings, repo), clock=fixed(now), actor="cli")
    assert_window_counted(outcome, now, 36, 150)
    assert outcome.batch is not None
    assert outcome.batch.lineage["start"] == (now - timedelta(hours=36)).isoformat()

    # A window with no decisions in it: a no_data reading.
    later = run_cycle(
        settings,
        repo,
        open_cipher(settings, repo),
        clock=fixed(START + timedelta(days=30)),
        actor="cli",
    )
    assert later.verdict == "no_data"


def test_a_query_source_with_its_own_filter(
    make_settings: Callable[..., Settings], source_url: str
) -> None:
    query = "SELECT sex, risk, credit_amount, decided_at FROM decisions WHERE age >= 25"
    settings = make_settings(
        {
            **sql_config(source_url),
            "source": {**sql_config(source_url)["source"], "table": None, "query": query},
        }
    )
    source = SqlSource(settings.source, settings.group_spec(), None)
    batch = source.read(START, {})
    source.close()
    df = german()
    assert batch.decisions == int((df.age >= 25).sum())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"outcome": "approved"},
            r"table decisions has no column 'approved' \(11 columns found, "
            r"names not shown",
        ),
        (
            {"stratum": "housing"},
            r"stratum column 'housing' of table decisions has 1000 values "
            r"that are not numbers \(forms: 'aaa.?', 'aaa.?'",
        ),
        ({"table": "loans"}, r"table loans: the count query failed in the source database"),
    ],
)
def test_bad_source_data_fails_the_cycle_clearly(
    make_settings: Callable[..., Settings], source_url: str, change: dict[str, Any], message: str
) -> None:
    settings = make_settings(
        {**sql_config(source_url), "source": {**sql_config(source_url)["source"], **change}}
    )
    repo = open_repository(settings)
    with pytest.raises(DataError, match=message):
        execute_cycle(settings, repo, open_cipher(settings, repo), clock=fixed(START), actor="cli")
    assert repo.completed_cycles() == 0


@pytest.mark.parametrize(
    "query",
    [
        "SELECT sex, risk, credit_amount, decided_at FROM decisions WHERE age >= 25 -- adults",
        "SELECT sex, risk, credit_amount, decided_at FROM decisions WHERE age >= 25;\n-- end\n",
        "/* adults */ SELECT sex, risk, credit_amount, decided_at FROM decisions -- only\n"
        "WHERE age >= 25 AND sex <> 'x;y' AND sex <> '--' ;",
    ],
)
def test_a_query_with_comments_or_a_semicolon_in_a_literal_reads(
    make_settings: Callable[..., Settings], source_url: str, query: str
) -> None:
    """Parsed, not string-checked: a trailing ``-- comment`` used to swallow the subquery's
    closing parenthesis (every cycle failed) and a ``;`` in a literal was refused."""
    settings = make_settings(
        {
            **sql_config(source_url),
            "source": {**sql_config(source_url)["source"], "table": None, "query": query},
        }
    )
    source = SqlSource(settings.source, settings.group_spec(), None)
    batch = source.read(START, {})
    source.close()
    assert batch.decisions == int((german().age >= 25).sum())


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT 1; SELECT 2", "single statement, found 2"),
        ("DELETE FROM decisions", "expected one SELECT"),
        ("WITH d AS (DELETE FROM decisions RETURNING *) SELECT * FROM d", "holds DELETE"),
        ("SELECT * INTO copy FROM decisions", "holds INTO"),
        ("SELECT * FROM decisions WHERE sex = 'a'; DROP TABLE decisions", "single statement"),
        ("SELECT FROM (", "cannot be parsed as SQL"),
    ],
)
def test_a_query_that_is_not_one_read_only_select_is_refused(
    make_settings: Callable[..., Settings], tmp_path: Path, query: str, message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'lender.db'}"
    with pytest.raises(ConfigError, match=message) as info:
        make_settings(
            {
                **sql_config(url),
                "source": {**sql_config(url)["source"], "table": None, "query": query},
            }
        )
    assert info.value.key == "source.query"


def test_a_missing_sqlite_source_is_refused_and_never_created(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path = tmp_path / "typo.db"
    settings = make_settings(sql_config(f"sqlite:///{path}"))
    source = SqlSource(settings.source, settings.group_spec(), None)
    with pytest.raises(DataError, match=r"source.url: no SQLite database file at .*typo\.db"):
        source.read(START, {})
    source.close()
    assert not path.exists()


def test_a_sqlite_source_is_opened_read_only(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'lender.db'}"
    engine = create_engine(url)
    german().to_sql("decisions", engine, index=False)
    engine.dispose()
    settings = make_settings(sql_config(url, timestamp=None, stratum=None))
    source = SqlSource(settings.source, settings.group_spec(), None)
    assert source.read(START, {}).decisions == len(german())
    with pytest.raises(OperationalError, match="readonly"), source.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM decisions")
    source.close()


def test_non_binary_outcomes_are_counted_in_decisions_not_rows(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    df = german().assign(risk=lambda d: d.risk.where(d.index >= 30, 7))
    engine = create_engine(url)
    df.to_sql("decisions", engine, index=False)
    engine.dispose()
    settings = make_settings(sql_config(url, stratum=None))
    source = SqlSource(settings.source, settings.group_spec(), None)
    with pytest.raises(
        DataError,
        match=r"outcome column 'risk' has 30 values that are not "
        r"binary \(forms: '9' \[",
    ):
        source.read(datetime.now(UTC), {})
    source.close()


def test_an_unreachable_source_is_a_failed_cycle_without_the_password(
    make_settings: Callable[..., Settings],
) -> None:
    url = "postgresql+psycopg://reader:s3cret@127.0.0.1:1/lending"  # nothing listens on 1
    settings = make_settings(sql_config(url))
    repo = open_repository(settings)
    with pytest.raises(DataError, match="the count query failed in the source database"):
        execute_cycle(settings, repo, open_cipher(settings, repo), clock=fixed(START), actor="cli")
    [(status, error)] = [(r.status, r.error) for r in _runs(settings)]
    assert status == "failed"
    assert "s3cret" not in str(error)


def _runs(settings: Settings) -> list[Any]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from fairlens_monitor.store.models import Run

    engine = create_engine(settings.database.url)
    with Session(engine) as s:
        runs = list(s.scalars(select(Run)))
    engine.dispose()
    return runs
