"""The SQL source's window uses an index: the real planner of SQLite and of the real
PostgreSQL server says so, and the counts do not change.

The predicate compares the raw column with bound parameters on PostgreSQL (``timestamptz``),
and ``datetime(col)`` on SQLite, whose times are text in mixed ISO forms; the ``CREATE
INDEX`` the user is told to run (log hint and docs/CONFIGURATION.md) is built from the same
expression, and these tests hold the three equal.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine

from fairlens_monitor.config.source import SourceSettings
from fairlens_monitor.fairness.groups import GroupSpec
from fairlens_monitor.sources.base import SqlSource
from fairlens_monitor.sources.sql import count_statement, fetch_counts, source_engine
from fairlens_monitor.sources.sql_window import (
    DIALECTS,
    index_statement,
    missing_index_hint,
    query_plan,
    scans_table,
    statistics_statement,
)

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 1, tzinfo=UTC)
ROWS = 4000
STEP = timedelta(seconds=601, microseconds=250_000)  # fractions and odd seconds on purpose
NOW = datetime(2026, 11, 20, 7, 13, 5, tzinfo=UTC)  # whole seconds, as the bounds are kept
SPAN = timedelta(days=7)
PLUS_ONE = timezone(timedelta(hours=1))


def mixed_form(i: int, when: datetime) -> str:
    """The same instant written six ways, as different writers would."""
    forms = [
        when.isoformat(),  # 2026-11-01T00:10:01.250000+00:00
        when.astimezone(PLUS_ONE).isoformat(),  # …+01:00
        when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        when.strftime("%Y-%m-%d %H:%M:%S.%f"),  # SQLAlchemy's own SQLite form
        when.strftime("%Y-%m-%d %H:%M:%S"),
        when.astimezone(timezone(timedelta(hours=-5))).strftime("%Y-%m-%dT%H:%M:%S-05:00"),
    ]
    return forms[i % len(forms)]


def decisions() -> pd.DataFrame:
    times = [T0 + i * STEP for i in range(ROWS)]
    return pd.DataFrame(
        {
            "sex": ["female" if i % 3 == 0 else "male" for i in range(ROWS)],
            "approved": [int(i % 5 != 0) for i in range(ROWS)],
            "when": times,
        }
    )


def expected(df: pd.DataFrame) -> dict[tuple[str, int], int]:
    """Counts in ``[NOW - SPAN, NOW)`` at whole seconds (as ``datetime()`` compares)."""
    seconds = pd.to_datetime(df["when"], utc=True).dt.floor("s")
    inside = df[(seconds >= NOW - SPAN) & (seconds < NOW)]
    return {k: int(v) for k, v in inside.groupby(["sex", "approved"]).size().items()}


def counted(frame: pd.DataFrame) -> dict[tuple[str, int], int]:
    rows = zip(frame["sex"], frame["approved"], frame["_n"], strict=True)
    return {(str(s), int(a)): int(n) for s, a, n in rows}


def settings(url: str) -> SourceSettings:
    return SourceSettings(
        kind="sql",
        url=url,
        table="decisions",
        outcome="approved",
        timestamp="decided_at",
        window="7d",
        window_seconds=SPAN.total_seconds(),
    )


def read_counts(url: str) -> dict[tuple[str, int], int]:
    engine = source_engine(url)
    try:
        frame, sql = fetch_counts(
            engine, "decisions", None, ["sex", "approved"], "decided_at", (NOW - SPAN, NOW)
        )
    finally:
        engine.dispose()
    # The bounds are bound parameters, never text in the statement.
    assert NOW.strftime("%Y-%m-%d") not in sql.split("--")[0]
    return counted(frame)


def plan(url: str) -> list[str]:
    engine = source_engine(url)
    try:
        with engine.connect() as conn:
            stmt = count_statement(
                "decisions",
                None,
                ["sex", "approved"],
                "decided_at",
                (NOW - SPAN, NOW),
                conn.dialect.name,
            )
            return query_plan(conn, stmt)
    finally:
        engine.dispose()


def store(url: str, df: pd.DataFrame) -> None:
    engine = create_engine(url)
    df.drop(columns="when").to_sql("decisions", engine, index=False)
    engine.dispose()


def create_index(url: str, dialect: str) -> str:
    """Create the recommended index (on SQLite the grouped one) and gather statistics."""
    statement = index_statement("decisions", "decided_at", dialect, ["sex", "approved"])
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(statement)
        conn.exec_driver_sql(statistics_statement("decisions", dialect))
    engine.dispose()
    return statement


def test_the_index_statement_is_built_from_the_predicates_expression() -> None:
    assert index_statement("decisions", "decided_at", "sqlite") == (
        "CREATE INDEX IF NOT EXISTS decisions_decided_at_window ON decisions (datetime(decided_at))"
    )
    assert index_statement("decisions", "decided_at", "postgresql") == (
        "CREATE INDEX IF NOT EXISTS decisions_decided_at_window ON decisions (decided_at)"
    )
    # A schema and a name that needs quoting are rendered by the dialect, not pasted.
    assert index_statement("lend.decisions", "Decided At", "postgresql") == (
        'CREATE INDEX IF NOT EXISTS "decisions_Decided_At_window" ON lend.decisions ("Decided At")'
    )
    # On SQLite, given the grouped columns, the index holds them first in the statement's
    # GROUP BY order, so SQLite counts in index order; PostgreSQL hashes, and ignores them.
    assert index_statement("decisions", "decided_at", "sqlite", ["sex", "approved"]) == (
        "CREATE INDEX IF NOT EXISTS decisions_decided_at_window_by_approved_sex ON decisions "
        "(approved, sex, datetime(decided_at))"
    )
    assert index_statement("lend.decisions", "Decided At", "sqlite", ["Loan Type", "ok"]) == (
        'CREATE INDEX IF NOT EXISTS lend."decisions_Decided_At_window_by_ok_Loan_Type" ON '
        'decisions (ok, "Loan Type", datetime("Decided At"))'  # SQLite's form for a schema
    )
    assert index_statement("decisions", "decided_at", "postgresql", ["sex"]) == (
        index_statement("decisions", "decided_at", "postgresql")
    )
    assert statistics_statement("decisions", "sqlite") == "ANALYZE decisions"
    assert statistics_statement("lend.Decisions 2", "sqlite") == 'ANALYZE lend."Decisions 2"'
    stmt = count_statement("decisions", None, ["sex"], "decided_at", (NOW - SPAN, NOW), "sqlite")
    assert stmt.whereclause is not None
    where = str(stmt.whereclause.compile(dialect=DIALECTS["sqlite"]))
    assert where == ("datetime(decisions.decided_at) >= ? AND datetime(decisions.decided_at) < ?")
    stmt = count_statement(
        "decisions", None, ["sex"], "decided_at", (NOW - SPAN, NOW), "postgresql"
    )
    assert stmt.whereclause is not None
    where = str(stmt.whereclause.compile(dialect=DIALECTS["postgresql"]))
    assert where == (
        "decisions.decided_at >= %(window_start)s AND decisions.decided_at < %(window_end)s"
    )


def test_the_documented_statements_are_the_ones_the_code_builds() -> None:
    doc = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    for dialect in ("sqlite", "postgresql"):
        assert f"    {index_statement('decisions', 'decided_at', dialect)};\n" in doc
    # The recommended SQLite index of the documented example (sex, decision, repayment,
    # credit score) and its ANALYZE, as the code builds them.
    columns = ["sex", "approved", "repaid", "credit_score"]
    grouped = index_statement("decisions", "decided_at", "sqlite", columns)
    assert f"      {grouped};\n      {statistics_statement('decisions', 'sqlite')};\n" in doc


def test_a_plan_that_reads_the_whole_table_is_recognised() -> None:
    assert scans_table(["SCAN decisions", "USE TEMP B-TREE FOR GROUP BY"], "decisions")
    assert scans_table(["  ->  Parallel Seq Scan on decisions  (cost=…)"], "lend.decisions")
    assert not scans_table(
        ["SEARCH decisions USING INDEX decisions_decided_at_window (<expr>>? AND <expr><?)"],
        "decisions",
    )
    assert not scans_table(["Seq Scan on decisions_archive"], "decisions")
    assert not scans_table(["SCAN decisions_archive"], "decisions")


def test_sqlite_mixed_forms_use_the_expression_index_and_count_the_same(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'lender.db'}"
    df = decisions()
    store(url, df.assign(decided_at=[mixed_form(i, t) for i, t in enumerate(df["when"])]))
    truth = expected(df)
    assert sum(truth.values()) > 500  # the window holds decisions of every form

    before = read_counts(url)
    assert before == truth
    assert scans_table(plan(url), "decisions")
    source = SqlSource(settings(url), GroupSpec(("sex",)), None)
    with caplog.at_level(logging.WARNING, logger="fairlens_monitor.sources"):
        source.read(NOW, {})
        source.read(NOW, {})  # told once per source, not every cycle
    hints = [r.getMessage() for r in caplog.records if "CREATE INDEX" in r.getMessage()]
    statement = index_statement("decisions", "decided_at", "sqlite", ["sex", "approved"])
    assert hints == [
        "source.window: the count query reads every row of table decisions because no index "
        "serves its time window and groups (or the planner has no statistics for it); create "
        f"one (once, as the table's owner): {statement}; ANALYZE decisions;"
    ]
    source.close()

    assert create_index(url, "sqlite") == statement
    steps = plan(url)
    assert steps == [  # a skip-scan of the grouped index: no SCAN, no sort for the GROUP BY
        "SEARCH decisions USING INDEX decisions_decided_at_window_by_approved_sex "
        "(ANY(approved) AND ANY(sex) AND <expr>>? AND <expr><?)"
    ]
    assert not scans_table(steps, "decisions")
    assert read_counts(url) == before
    caplog.clear()
    source = SqlSource(settings(url), GroupSpec(("sex",)), None)
    with caplog.at_level(logging.WARNING, logger="fairlens_monitor.sources"):
        batch = source.read(NOW, {})
    source.close()
    assert batch.decisions == sum(truth.values())
    assert not [r for r in caplog.records if "CREATE INDEX" in r.getMessage()]


@pytest.mark.parametrize("column_type", ["timestamp with time zone", "timestamp without time zone"])
def test_postgresql_compares_the_raw_column_and_uses_a_plain_index(
    pg_url: str, column_type: str
) -> None:
    df = decisions()
    times = df["when"] if "with " in column_type else df["when"].dt.tz_localize(None)  # UTC
    store(pg_url, df.assign(decided_at=times))
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        kind = conn.exec_driver_sql(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'decisions' AND column_name = 'decided_at'"
        ).scalar()
    engine.dispose()
    assert kind == column_type
    truth = expected(df)
    before = read_counts(pg_url)
    assert before == truth
    without = plan(pg_url)
    assert scans_table(without, "decisions"), without
    reader = source_engine(pg_url)  # read-only, as the monitor's: SET LOCAL is allowed
    with reader.connect() as conn:
        stmt = count_statement(
            "decisions", None, ["sex"], "decided_at", (NOW - SPAN, NOW), "postgresql"
        )
        assert missing_index_hint(conn, stmt, "decisions", "decided_at") == (
            "source.window: the count query reads every row of table decisions because no "
            "index serves its time window; create one (once, as the table's owner): "
            f"{index_statement('decisions', 'decided_at', 'postgresql')};"
        )
    reader.dispose()

    create_index(pg_url, "postgresql")
    steps = plan(pg_url)
    assert any(
        re.search(r"Index (Only )?Scan (using|on) decisions_decided_at_window", s) for s in steps
    ), steps
    assert any("Index Cond: ((decided_at >= " in s for s in steps), steps
    assert not scans_table(steps, "decisions")
    assert read_counts(pg_url) == before
