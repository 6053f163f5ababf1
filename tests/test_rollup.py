"""The hourly rollup (``reading_rollups``, revision 0014): what the page's wide ranges read.

A history of simulated cycles ~20 minutes apart over about a day, on SQLite and PostgreSQL:
the page's ``history`` read from the rollup must give what the same readings aggregated
directly give (pandas over ``SELECT … FROM readings``), for one hour per point and for
several; the migration's SQL backfill must compute the rows the cycles folded in; a
populated database of the previous revision upgrades, gets its rollup rows baselined on the
chain, verifies, and an edited, deleted or inserted rollup row is reported at its table and id.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.fairness.stats import ratio_interval
from fairlens_monitor.ops.app import open_cipher, open_repository
from fairlens_monitor.ops.cycle import run_cycle
from fairlens_monitor.store.db import sqlite_path
from fairlens_monitor.store.rollup import BUCKET_SECONDS
from fairlens_monitor.store.schema import alembic_config
from fairlens_monitor.viewer import data as viewer_data
from tests.conftest import merge, query_url

START = datetime(2026, 3, 1, 22, 50, tzinfo=UTC)
FIXTURE = Path(__file__).parent / "data" / "pre_0012"
READINGS_SQL = (
    "SELECT id, scenario, measured_at, dir, gap, verdict, dir_alert, drift_statistic, "
    "group_approved AS ua, group_applicants AS un, reference_approved AS pa, "
    "reference_applicants AS pn FROM readings ORDER BY id"
)


def stepping(minutes: float) -> Callable[[], datetime]:
    """A clock that advances ``minutes`` per call from START."""
    ticks: Iterator[int] = iter(range(10**6))
    return lambda: START + timedelta(minutes=minutes * next(ticks))


@pytest.fixture
def history(write_config: Callable[..., Path], backend_url: str) -> tuple[Path, str]:
    """36 cycles at drift 0.6 (a mix of verdicts), each ~20 minutes after the one before."""
    config = write_config(
        merge({"database": {"url": backend_url}}, {"simulation": {"drift": 0.6, "n_samples": 600}})
    )
    settings = load_settings(config, env={})
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    clock = stepping(5)
    for _ in range(36):
        run_cycle(settings, repo, cipher, clock=clock, actor="cli")
    repo.engine.dispose()
    return config, backend_url


def direct(url: str, since: datetime | None, max_points: int) -> pd.DataFrame:
    """``history`` computed from the readings themselves: the same whole hours, ``width``
    hours a point, every aggregate taken over the readings."""
    rows = pd.DataFrame(
        query_url(url, READINGS_SQL),
        columns=[
            "id",
            "scenario",
            "measured_at",
            "dir",
            "gap",
            "verdict",
            "dir_alert",
            "drift_statistic",
            "ua",
            "un",
            "pa",
            "pn",
        ],
    )
    rows["time"] = pd.to_datetime(rows["measured_at"], utc=True, format="ISO8601")
    rows["hour"] = [math.floor(t.timestamp() / BUCKET_SECONDS) for t in rows["time"]]
    if since is not None:
        rows = rows[rows["hour"] >= math.floor(since.timestamp() / BUCKET_SECONDS)]
    low, high = int(rows["hour"].min()), int(rows["hour"].max())
    width = max(1, -(-(high - low + 1) // max_points))
    rows["slot"] = (rows["hour"] - low) // width
    rows["alert"] = (rows["verdict"] == "adverse") | (
        rows["verdict"].isna() & rows["dir_alert"].astype(bool)
    )
    for column in ("dir", "gap", "drift_statistic"):
        rows[column] = rows[column].astype(float)
    out = (
        rows.groupby(["slot", "scenario"], sort=True)
        .agg(
            time=("time", "min"),
            readings=("id", "count"),
            dir_min=("dir", "min"),
            dir_mean=("dir", "mean"),
            dir_max=("dir", "max"),
            gap_mean=("gap", "mean"),
            alerts=("alert", "sum"),
            drift_max=("drift_statistic", "max"),
            ua=("ua", "sum"),
            un=("un", "sum"),
            pa=("pa", "sum"),
            pn=("pn", "sum"),
        )
        .reset_index()
    )
    out["group_rate"] = out["ua"] / out["un"].where(out["un"] > 0)
    out["reference_rate"] = out["pa"] / out["pn"].where(out["pn"] > 0)
    low_ci, high_ci = ratio_interval(out["ua"], out["un"], out["pa"], out["pn"])
    out["ci_low"], out["ci_high"] = low_ci, np.where(np.isinf(high_ci), np.nan, high_ci)
    return out.drop(columns=["slot", "ua", "un", "pa", "pn"])


def assert_same(shown: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(shown["scenario"]) == list(expected["scenario"])
    assert list(shown["time"]) == list(expected["time"])
    for column in ("readings", "alerts"):
        assert [int(v) for v in shown[column]] == [int(v) for v in expected[column]], column
    for column in (
        "dir_min",
        "dir_mean",
        "dir_max",
        "gap_mean",
        "drift_max",
        "group_rate",
        "reference_rate",
        "ci_low",
        "ci_high",
    ):
        np.testing.assert_allclose(
            shown[column].astype(float).to_numpy(),
            expected[column].astype(float).to_numpy(),
            rtol=1e-12,
            atol=0,
            equal_nan=True,
            err_msg=column,
        )


@pytest.mark.parametrize("max_points", [2000, 5, 2])
def test_the_rollup_shows_what_the_readings_give(
    history: tuple[Path, str], max_points: int
) -> None:
    config, url = history
    engine = viewer_data.open_readonly(load_settings(config, env={}))
    try:
        shown = viewer_data.history(engine, since=None, max_points=max_points, rollup=True)
        since = START + timedelta(hours=3, minutes=10)
        later = viewer_data.history(engine, since=since, max_points=max_points, rollup=True)
        raw = viewer_data.history(engine, since=None, rollup=False)
    finally:
        engine.dispose()
    hours = len({int(r[0]) for r in query_url(url, "SELECT bucket FROM reading_rollups")})
    assert hours >= 4  # the history spans several hours: combining them is exercised
    assert_same(shown, direct(url, None, max_points))
    assert_same(later, direct(url, since, max_points))
    assert len(later) < len(shown) or max_points == 2
    assert int(shown["readings"].sum()) == int(raw["readings"].sum()) == 72  # 36 x 2


def rollup_rows(url: str) -> list[tuple[Any, ...]]:
    return query_url(
        url,
        "SELECT id, monitor, scenario, bucket, first_reading_id, last_reading_id, readings, "
        "dir_n, gap_n, group_approved, group_applicants, reference_approved, "
        "reference_applicants, verdict_ok, verdict_adverse, verdict_inconclusive, "
        "verdict_no_data, alerts, dir_alerts, gap_alerts, drift_alerts, dir_sum, dir_min, "
        "dir_max, gap_sum, gap_min, gap_max, drift_max FROM reading_rollups ORDER BY id",
    )


def test_the_migration_computes_the_rows_the_cycles_folded_in(history: tuple[Path, str]) -> None:
    """Downgrade to 0012 (the rollup is dropped, the readings stay), upgrade: the SQL backfill
    gives every row the cycles built one reading at a time."""
    _config, url = history
    folded = rollup_rows(url)
    assert folded
    assert {r[1] for r in folded} == {"default"}
    cfg = alembic_config(url)
    command.downgrade(cfg, "0012")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = conn.dialect.get_table_names(conn)
            assert "reading_rollups" not in names
            assert conn.execute(text("SELECT count(*) FROM readings")).scalar() == 72
    finally:
        engine.dispose()
    command.upgrade(cfg, "head")
    backfilled = rollup_rows(url)
    assert [r[:21] for r in backfilled] == [r[:21] for r in folded]  # ids, keys and counts
    np.testing.assert_allclose(
        np.array([r[21:] for r in backfilled], dtype=float),
        np.array([r[21:] for r in folded], dtype=float),
        rtol=1e-12,
        equal_nan=True,
    )


RUN_0012 = (
    "INSERT INTO runs VALUES (1, 0, 'daemon', NULL, '2026-01-01 00:00:00', "
    "'2026-01-01 00:00:01', 'ok', NULL, 'h', '0.1.0')"
)


def reading_0012(
    reading_id: int, scenario: str, at: str, dir_: float | None, verdict: str | None
) -> str:
    value = "NULL" if dir_ is None else repr(dir_)
    verdict_sql = "NULL" if verdict is None else f"'{verdict}'"
    return (
        "INSERT INTO readings (id, run_id, scenario, measured_at, source, n_samples, "
        "protected_attribute, group_label, reference_label, group_applicants, "
        "group_approved, reference_applicants, reference_approved, group_rate, "
        "reference_rate, dir, gap, dir_threshold, gap_threshold, dir_alert, gap_alert, "
        f"config_hash, code_version, verdict) VALUES ({reading_id}, 1, '{scenario}', '{at}', "
        "'simulator', 400, 'gender', 'Female', 'Male', 200, 60, 200, 140, 0.3, 0.7, "
        f"{value}, 0.4, 0.8, 0.2, TRUE, FALSE, 'h', '0.1.0', {verdict_sql})"
    )


def test_the_migration_round_trips_on_both_back_ends(backend_url: str) -> None:
    """A populated 0012 database: the upgrade fills the rollup from its readings (NULL DIRs
    skipped as SQL's aggregates skip them), the downgrade drops it and leaves the readings."""
    if (path := sqlite_path(backend_url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    cfg = alembic_config(backend_url)
    command.upgrade(cfg, "0012")
    engine = create_engine(backend_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(RUN_0012))
            # two readings of the same hour (one with no DIR), one in the next hour; the
            # scenario check allows one reading per run and scenario, so runs 2 and 3 too
            conn.execute(text(RUN_0012.replace("(1, 0,", "(2, 1,")))
            conn.execute(text(RUN_0012.replace("(1, 0,", "(3, 2,")))
            conn.execute(text(reading_0012(1, "monitored", "2026-01-01 00:00:01", 0.43, "adverse")))
            statement = reading_0012(2, "monitored", "2026-01-01 00:59:59.999999", None, None)
            conn.execute(text(statement.replace("VALUES (2, 1,", "VALUES (2, 2,")))
            statement = reading_0012(3, "monitored", "2026-01-01 01:00:00", 0.9, "ok")
            conn.execute(text(statement.replace("VALUES (3, 1,", "VALUES (3, 3,")))
        command.upgrade(cfg, "0014")
        with engine.connect() as conn:
            got = conn.execute(
                text(
                    "SELECT monitor, scenario, bucket, readings, dir_n, dir_sum, dir_min, "
                    "dir_max, first_reading_id, last_reading_id, verdict_adverse, verdict_ok, "
                    "alerts, dir_alerts, gap_alerts, group_approved, dir_mean "
                    "FROM v_reading_rollups ORDER BY bucket"
                )
            ).all()
        hour = datetime(2026, 1, 1, tzinfo=UTC).timestamp() // 3600
        assert [tuple(r) for r in got] == [
            ("default", "monitored", hour, 2, 1, 0.43, 0.43, 0.43, 1, 2, 1, 0, 2, 2, 0, 120, 0.43),
            ("default", "monitored", hour + 1, 1, 1, 0.9, 0.9, 0.9, 3, 3, 0, 1, 0, 1, 0, 60, 0.9),
        ]
        command.downgrade(cfg, "0012")
        with engine.connect() as conn:
            assert "reading_rollups" not in conn.dialect.get_table_names(conn)
            assert conn.execute(text("SELECT count(*) FROM readings")).scalar() == 3
    finally:
        engine.dispose()


def test_a_database_of_the_previous_revision_gets_its_rollup_baselined(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The database the code at revision 0011 wrote (tests/data/pre_0012): ``db upgrade``
    fills the rollup and records its rows in one ``rows_baseline``; it verifies, a second
    start records none, and an edited, deleted or inserted rollup row is found."""
    config = write_config({"audit": {"checkpoint_every": 1000}})
    db = tmp_path / "var" / "fairlens.db"
    (tmp_path / "var" / "keys").mkdir(parents=True)
    shutil.copy(FIXTURE / "fairlens.db", db)
    shutil.copy(FIXTURE / "anchor.jsonl", tmp_path / "var" / "anchor.jsonl")
    shutil.copy(FIXTURE / "checkpoint_ed25519.pub", tmp_path / "var" / "keys")

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--config", str(config), *args])

    def verify() -> tuple[int, list[tuple[str, str | None, int | None]]]:
        result = run("verify", "--json")
        doc = json.loads(result.stdout)
        return result.exit_code, sorted((a["kind"], a["table"], a["id"]) for a in doc["anomalies"])

    def sql(statement: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(db) as conn:
            return conn.execute(statement).fetchall()

    upgraded = run("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    rows = sql("SELECT id, readings FROM reading_rollups ORDER BY id")
    assert sum(n for _, n in rows) == sql("SELECT count(*) FROM readings")[0][0] == 8
    baselines = sql(
        "SELECT canonical FROM audit_events WHERE event_type = 'rows_baseline' ORDER BY seq"
    )
    assert len(baselines) == 1
    recorded = json.loads(baselines[0][0])["payload"]["row_digests"]
    # the other rows were already recorded; 0015 added the default monitor's row
    assert set(recorded) == {"form", "reading_rollups", "monitors"}
    assert [i for i, _ in recorded["reading_rollups"]] == [i for i, _ in rows]
    assert verify() == (0, [])
    assert run("db", "upgrade").exit_code == 0
    assert len(sql("SELECT seq FROM audit_events WHERE event_type = 'rows_baseline'")) == 1

    first = rows[0][0]
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE reading_rollups SET dir_sum = dir_sum + 1 WHERE id = {first}")
    assert verify() == (1, [("row_modified", "reading_rollups", first)])
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE reading_rollups SET dir_sum = dir_sum - 1 WHERE id = {first}")
        conn.execute(
            "INSERT INTO reading_rollups SELECT 999, 'forged', scenario, bucket, first_at, "
            "last_at, first_reading_id, last_reading_id, readings, dir_n, dir_sum, dir_min, "
            "dir_max, gap_n, gap_sum, gap_min, gap_max, drift_max, group_approved, "
            "group_applicants, reference_approved, reference_applicants, verdict_ok, "
            "verdict_adverse, verdict_inconclusive, verdict_no_data, alerts, dir_alerts, "
            f"gap_alerts, drift_alerts FROM reading_rollups WHERE id = {first}"
        )
        conn.execute(f"DELETE FROM reading_rollups WHERE id = {rows[-1][0]}")
    assert verify() == (
        1,
        [
            ("row_missing", "reading_rollups", rows[-1][0]),
            ("row_unrecorded", "reading_rollups", 999),
        ],
    )
    # A later start does not baseline the forged row: the rollup is already on the chain.
    assert run("db", "upgrade").exit_code == 0
    assert ("row_unrecorded", "reading_rollups", 999) in verify()[1]


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_the_page_draws_wide_ranges_from_the_rollup_and_writes_nothing(
    history: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    config, url = history
    path = sqlite_path(url)
    assert path is not None
    before = path.read_bytes()
    read: list[bool] = []
    real = viewer_data.history

    def spy(*args: Any, **kwargs: Any) -> Any:
        read.append(bool(kwargs.get("rollup")))
        return real(*args, **kwargs)

    monkeypatch.setattr(viewer_data, "history", spy)
    monkeypatch.setenv("FAIRLENS_CONFIG", str(config))
    at = AppTest.from_file(
        str(Path(__file__).resolve().parents[1] / "fairlens_monitor" / "viewer" / "page.py"),
        default_timeout=60,
    )
    at.run()
    for name in ("all", "last week"):
        at.sidebar.radio(key="range").set_value(name).run()
        # (altair warns about the empty 'last day' chart of this old history: not an error)
        assert not [e for e in at.exception if not e.is_warning], name
        assert at.metric[0].label == "Monitored DIR"
    assert read == [False, True, True]  # 'last day' from the readings, the wide ones not
    assert path.read_bytes() == before
