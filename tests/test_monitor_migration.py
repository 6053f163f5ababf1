"""Revision 0015 (many monitors in one store) on a populated database of the previous
revision, on SQLite and PostgreSQL: every row becomes monitor ``default``, every auditor view
gains ``monitor``, the inventory view judges staleness with the database's clock, and the
downgrade gives back 0014 — or refuses while another monitor's rows exist."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import Engine, Table, create_engine, inspect, text

from fairlens_monitor.cli.main import cli
from fairlens_monitor.store.db import sqlite_path
from fairlens_monitor.store.models import Alert, Monitor, Reading, Run
from fairlens_monitor.store.schema import alembic_config, head_revision
from tests.test_rollup import RUN_0012, reading_0012

FIXTURE = Path(__file__).parent / "data" / "pre_0012"
VIEWS = ("v_runs", "v_fairness_history", "v_group_results", "v_alerts", "v_source_files")
PER_MONITOR = ("runs", "readings", "group_results", "alerts", "source_files")
RUNS: Table = Run.__table__  # type: ignore[assignment]
READINGS: Table = Reading.__table__  # type: ignore[assignment]
ALERTS: Table = Alert.__table__  # type: ignore[assignment]
MONITORS: Table = Monitor.__table__  # type: ignore[assignment]


def populate_0014(engine: Engine) -> None:
    """A run with both readings, a group row, an open alert, a file record and a failed run."""
    with engine.begin() as conn:
        conn.execute(text(RUN_0012))
        conn.execute(
            text(
                "INSERT INTO runs VALUES (2, 1, 'daemon', NULL, '2026-01-01 00:01:00', "
                "'2026-01-01 00:01:01', 'failed', 'RuntimeError: x', 'h', '0.1.0')"
            )
        )
        conn.execute(text(reading_0012(1, "reference", "2026-01-01 00:00:01", 1.0, "ok")))
        conn.execute(text(reading_0012(2, "monitored", "2026-01-01 00:00:01", 0.43, "adverse")))
        conn.execute(
            text(
                "INSERT INTO group_results (id, reading_id, label, role, applicants, approved, "
                "rate, share) VALUES (1, 2, 'Female', 'compared', 200, 60, 0.3, 0.5)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO alerts (id, run_id, reading_id, created_at, kind, dir, token, "
                "key_id, state, clean_streak) VALUES (1, 1, 2, '2026-01-01 00:00:01', 'dir', "
                "0.43, 'tok', 'k', 'open', 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO source_files (id, reading_id, measured_at, path, sha256, "
                "size_bytes, mtime_ns, rows, decisions) VALUES (1, 2, '2026-01-01 00:00:01', "
                "'/d/a.csv', 'ab', 10, 1, 2, 2)"
            )
        )


def columns(engine: Engine, name: str) -> list[str]:
    return [c["name"] for c in inspect(engine).get_columns(name)]


def test_0015_round_trips_on_a_populated_0014_database(backend_url: str) -> None:
    if (path := sqlite_path(backend_url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    cfg = alembic_config(backend_url)
    command.upgrade(cfg, "0014")
    engine = create_engine(backend_url)
    try:
        populate_0014(engine)
        before = {v: columns(engine, v) for v in (*VIEWS, "v_audit_trail")}
        command.upgrade(cfg, "0015")
        with engine.connect() as conn:
            for table in PER_MONITOR:
                assert conn.execute(text(f"SELECT DISTINCT monitor FROM {table}")).all() == [
                    ("default",)
                ], table
            [(name, created, paused)] = conn.execute(
                text("SELECT name, created_at, paused FROM monitors")
            ).all()
            assert (name, bool(paused)) == ("default", False)
            assert str(created).startswith("2026-01-01 00:00:00")  # its first run's start
            for view in (*VIEWS, "v_audit_trail"):
                # the same columns in the same places, then the monitor
                assert columns(engine, view) == [*before[view], "monitor"], view
            assert conn.execute(text("SELECT DISTINCT monitor FROM v_runs")).all() == [("default",)]
            status = conn.execute(
                text(
                    "SELECT monitor, state, verdict, dir, open_alerts, stale FROM v_monitor_status"
                )
            ).all()
            # the newest *monitored* reading; no interval known yet, so staleness is unknown
            assert [tuple(r) for r in status] == [("default", "active", "adverse", 0.43, 1, None)]
        indexes = {ix["name"] for t in PER_MONITOR for ix in inspect(engine).get_indexes(t)}
        assert {
            "ix_runs_monitor_status_id",
            "ix_readings_monitor_id",
            "ix_alerts_monitor_state",
            "ix_source_files_monitor_path_id",
        } <= indexes

        command.downgrade(cfg, "0014")
        engine.dispose()  # SQLite: the inspector caches nothing, but a fresh pool is cleaner
        assert "monitors" not in inspect(engine).get_table_names()
        for table in PER_MONITOR:
            assert "monitor" not in columns(engine, table), table
        assert {v: columns(engine, v) for v in before} == before
        with engine.connect() as conn:
            counts = [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in PER_MONITOR]
        assert counts == [2, 2, 1, 1, 1]

        # up again: another monitor's row blocks the way down, and nothing changes
        command.upgrade(cfg, "0015")
        with engine.begin() as conn:
            conn.execute(text("UPDATE alerts SET monitor = 'cards'"))
        with pytest.raises(RuntimeError, match="alerts holds rows of monitors other than"):
            command.downgrade(cfg, "0014")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
                "0015"
            )
            assert conn.execute(text("SELECT count(*) FROM monitors")).scalar() == 1
    finally:
        engine.dispose()


def test_the_old_database_verifies_after_up_down_and_up_again(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The database the code at revision 0011 wrote (tests/data/pre_0012): ``db upgrade``
    to 0015 baselines the default monitor's row; down to 0014 and up again, the row is
    inserted again exactly as recorded, and ``verify`` passes each time."""
    config = write_config({"audit": {"checkpoint_every": 1000}})
    db = tmp_path / "var" / "fairlens.db"
    (tmp_path / "var" / "keys").mkdir(parents=True)
    shutil.copy(FIXTURE / "fairlens.db", db)
    shutil.copy(FIXTURE / "anchor.jsonl", tmp_path / "var" / "anchor.jsonl")
    shutil.copy(FIXTURE / "checkpoint_ed25519.pub", tmp_path / "var" / "keys")

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--config", str(config), *args])

    def verify() -> tuple[int, list[Any]]:
        result = run("verify", "--json")
        doc = json.loads(result.stdout)
        return result.exit_code, doc["anomalies"]

    url = f"sqlite:///{db}"
    assert run("db", "upgrade").exit_code == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (head_revision(url),)
        ]
        baseline = conn.execute(
            "SELECT canonical FROM audit_events WHERE event_type = 'rows_baseline'"
        ).fetchall()
    assert len(baseline) == 1
    assert "monitors" in json.loads(baseline[0][0])["payload"]["row_digests"]
    assert verify() == (0, [])
    command.downgrade(alembic_config(url), "0014")
    assert run("db", "upgrade").exit_code == 0
    assert verify() == (0, [])
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name FROM monitors").fetchall() == [("default",)]


def test_monitor_status_judges_staleness_with_the_databases_clock(backend_url: str) -> None:
    if (path := sqlite_path(backend_url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(backend_url), "head")
    engine = create_engine(backend_url)
    now = datetime.now(UTC)
    monitors = {
        # name: (interval, seconds since its newest ok run ended or None, paused, retired)
        "fresh": (60.0, 10, False, False),
        "late": (60.0, 200, False, False),  # 60 s + 60 s grace passed
        "daily_on_time": (86400.0, 86400 + 3000, False, False),  # grace: a tenth, 8,640 s
        "daily_late": (86400.0, 86400 + 9000, False, False),
        "never_ran": (60.0, None, False, False),
        "paused": (60.0, 5000, True, False),
        "retired": (60.0, 5000, False, True),
        "no_interval": (None, 5000, False, False),
    }
    try:
        with engine.begin() as conn:
            for n, (name, (interval, age, paused, retired)) in enumerate(monitors.items(), 1):
                conn.execute(
                    MONITORS.insert(),
                    {
                        "name": name,
                        "created_at": now - timedelta(days=3),
                        "paused": paused,
                        "retired_at": now - timedelta(days=1) if retired else None,
                        "interval_seconds": interval,
                    },
                )
                if age is None:
                    continue
                ended = now - timedelta(seconds=age)
                conn.execute(RUNS.insert(), run_values(n, name, ended, "ok"))
                # a newer failed run is not a successful one
                conn.execute(RUNS.insert(), run_values(100 + n, name, now, "failed"))
            conn.execute(READINGS.insert(), reading_values(1, 1, "fresh", "monitored", "ok", 0.9))
            conn.execute(READINGS.insert(), reading_values(2, 1, "fresh", "reference", None, 1.0))
            conn.execute(
                READINGS.insert(), reading_values(3, 2, "late", "monitored", "adverse", 0.5)
            )
            conn.execute(
                ALERTS.insert(),
                {
                    "run_id": 2,
                    "reading_id": 3,
                    "created_at": now,
                    "kind": "dir",
                    "token": "t",
                    "key_id": "k",
                    "state": "acknowledged",
                    "monitor": "late",
                },
            )
        with engine.connect() as conn:
            got = {
                r[0]: (r[1], r[2], r[3], r[4], None if r[5] is None else bool(r[5]))
                for r in conn.execute(
                    text(
                        "SELECT monitor, state, verdict, dir, open_alerts, stale, "
                        "last_ok_run_at, last_reading_at FROM v_monitor_status"
                    )
                )
            }
    finally:
        engine.dispose()
    assert got == {
        "fresh": ("active", "ok", 0.9, 0, False),
        "late": ("active", "adverse", 0.5, 1, True),
        "daily_on_time": ("active", None, None, 0, False),
        "daily_late": ("active", None, None, 0, True),
        "never_ran": ("active", None, None, 0, True),
        "paused": ("paused", None, None, 0, False),
        "retired": ("retired", None, None, 0, False),
        "no_interval": ("active", None, None, 0, None),
    }


def run_values(run_id: int, monitor: str, ended: datetime, status: str) -> dict[str, Any]:
    return {
        "id": run_id,
        "cycle_index": 0,
        "actor": "daemon",
        "started_at": ended - timedelta(seconds=1),
        "finished_at": ended,
        "status": status,
        "config_hash": "h",
        "code_version": "v",
        "monitor": monitor,
    }


def reading_values(
    reading_id: int, run_id: int, monitor: str, scenario: str, verdict: str | None, dir_: float
) -> dict[str, Any]:
    return {
        "id": reading_id,
        "run_id": run_id,
        "scenario": scenario,
        "measured_at": datetime.now(UTC),
        "source": "simulator",
        "protected_attribute": "gender",
        "group_label": "F",
        "reference_label": "M",
        "group_applicants": 10,
        "group_approved": 5,
        "reference_applicants": 10,
        "reference_approved": 6,
        "dir": dir_,
        "dir_threshold": 0.8,
        "gap_threshold": 0.2,
        "dir_alert": False,
        "gap_alert": False,
        "config_hash": "h",
        "code_version": "v",
        "verdict": verdict,
        "monitor": monitor,
    }


def test_monitor_rows_come_back_from_the_chain_after_down_and_up(
    backend_url: str, write_config: Callable[..., Path], clock: Callable[[], datetime]
) -> None:
    """Every monitor event carries its rows' values: a database taken below 0015 and upgraded
    again gets each monitor's newest recorded row back under its id, so the rows verify."""
    from fairlens_monitor.audit.events import MONITOR_ADDED, MONITOR_PAUSED
    from fairlens_monitor.config.settings import load_settings
    from fairlens_monitor.ops.app import open_cipher, open_repository
    from fairlens_monitor.ops.cycle import run_cycle
    from fairlens_monitor.store.monitors import MonitorRow
    from fairlens_monitor.store.rowstore import check_rows
    from fairlens_monitor.store.schema import upgrade

    settings = load_settings(write_config({"database": {"url": backend_url}}), env={})
    repo = open_repository(settings)
    run_cycle(settings, repo, open_cipher(settings, repo), clock=clock, actor="cli")
    at = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    planned = MonitorRow("mortgages", at, schedule="cron 0 6 * * *", interval_seconds=86400.0)
    repo.put_monitors([planned], event_type=MONITOR_ADDED, payload={}, actor="cli", ts="t")
    paused = MonitorRow("mortgages", at, paused=True, paused_at=at, paused_by="alice")
    repo.put_monitors([paused], event_type=MONITOR_PAUSED, payload={}, actor="cli", ts="t")
    before = repo.monitor_rows()
    assert check_rows(repo.engine) == []
    command.downgrade(alembic_config(backend_url), "0014")
    upgrade(repo.engine, backend_url)
    assert repo.monitor_rows() == before
    assert {r.name: r for r in before}["mortgages"] == paused
    assert check_rows(repo.engine) == []
    # the sequence went past the restored ids: a new monitor gets a new one
    repo.put_monitors(
        [MonitorRow("cards", at)], event_type=MONITOR_ADDED, payload={}, actor="cli", ts="t"
    )
    assert check_rows(repo.engine) == []
    repo.engine.dispose()
