"""Migration 0012 (neutral reading columns) on a database the previous version really wrote.

``tests/data/pre_0012/`` holds a SQLite database, its anchor file and the checkpoint
*public* key, written by the code at revision 0011 (commit 6c8813f: four ``once`` cycles
with ``simulation.drift: 1.0`` — 8 readings, one alert — then ``checkpoint``). Its readings'
digests are row form 1, over the old column names. After ``db upgrade`` the chain must still
verify, an edit of any renamed column must still be found and named, the auditors' SQL from
before the rename must still run on the views, and a downgrade must give the old columns back.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from fairlens_monitor.audit.rowforms import CURRENT_FORM
from fairlens_monitor.cli.main import cli
from fairlens_monitor.store.db import sqlite_path
from fairlens_monitor.store.schema import alembic_config, head_revision

FIXTURE = Path(__file__).parent / "data" / "pre_0012"
RENAMED = {
    "unprivileged_group": "group_label",
    "privileged_group": "reference_label",
    "unprivileged_count": "group_applicants",
    "unprivileged_approved": "group_approved",
    "privileged_count": "reference_applicants",
    "privileged_approved": "reference_approved",
    "unprivileged_rate": "group_rate",
    "privileged_rate": "reference_rate",
}
# The auditors' ready query and view columns as documented before 0012 (docs/AUDITORS.md).
OLD_ALERT_QUERY = """
SELECT alert_id, created_at, state, round(dir, 3) AS dir,
       unprivileged_approved || '/' || unprivileged_applicants AS unprivileged,
       privileged_approved || '/' || privileged_applicants AS privileged
FROM v_alerts
WHERE created_at >= '2020-01-01' AND created_at < '2100-01-01'
ORDER BY created_at"""
OLD_HISTORY_COLUMNS = (
    "unprivileged_group, privileged_group, unprivileged_applicants, unprivileged_approved, "
    "privileged_applicants, privileged_approved, unprivileged_rate, privileged_rate"
)
NEW_HISTORY_COLUMNS = (
    "group_label, reference_label, group_applicants, group_approved, "
    "reference_applicants, reference_approved, group_rate, reference_rate"
)


class Old:
    """A copy of the fixture under tmp_path, with a config pointing at it."""

    def __init__(self, config: Path, root: Path) -> None:
        self.config, self.db = config, root / "var" / "fairlens.db"
        (root / "var" / "keys").mkdir(parents=True)
        shutil.copy(FIXTURE / "fairlens.db", self.db)
        shutil.copy(FIXTURE / "anchor.jsonl", root / "var" / "anchor.jsonl")
        shutil.copy(FIXTURE / "checkpoint_ed25519.pub", root / "var" / "keys")

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config), *args])

    def verify(self) -> tuple[int, list[tuple[str, str | None, int | None]]]:
        result = self.cli("verify", "--json")
        doc = json.loads(result.stdout)
        return result.exit_code, sorted((a["kind"], a["table"], a["id"]) for a in doc["anomalies"])

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql).fetchall()

    def columns(self) -> list[str]:
        return [r[1] for r in self.query("PRAGMA table_info(readings)")]


@pytest.fixture
def old(write_config: Callable[..., Path], tmp_path: Path) -> Old:
    o = Old(write_config({"audit": {"checkpoint_every": 1000}}), tmp_path)
    assert o.query("SELECT version_num FROM alembic_version") == [("0011",)]
    assert set(RENAMED) <= set(o.columns())
    return o


@pytest.fixture
def upgraded(old: Old) -> Old:
    before = {
        "history": old.query(f"SELECT {OLD_HISTORY_COLUMNS} FROM v_fairness_history ORDER BY 1"),
        "alerts": old.query(OLD_ALERT_QUERY),
    }
    result = old.cli("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert old.query("SELECT version_num FROM alembic_version") == [
        (head_revision(f"sqlite:///{old.db}"),)
    ]
    assert not set(RENAMED) & set(old.columns())
    assert set(RENAMED.values()) <= set(old.columns())
    # the auditors' old SQL runs on the views and gives the same answers
    assert (
        old.query(f"SELECT {OLD_HISTORY_COLUMNS} FROM v_fairness_history ORDER BY 1")
        == (before["history"])
    )
    assert old.query(OLD_ALERT_QUERY) == before["alerts"] != []
    assert (
        old.query(f"SELECT {NEW_HISTORY_COLUMNS} FROM v_fairness_history ORDER BY 1")
        == (before["history"])
    )
    return old


def test_old_rows_still_verify_after_the_rename(upgraded: Old) -> None:
    assert upgraded.query("SELECT count(*) FROM readings") == [(8,)]
    forms: dict[str, set[int]] = {}
    for (p,) in upgraded.query("SELECT payload FROM audit_events"):
        digests = json.loads(p).get("row_digests", {})
        for table in set(digests) - {"form"}:
            forms.setdefault(table, set()).add(digests["form"])
    # every row on this chain was recorded under the old names; the hourly rollup that
    # revision 0014 computed from them and the default monitor 0015 inserted are baselined
    # under the current form
    assert forms.pop("reading_rollups") == {CURRENT_FORM}
    assert forms.pop("monitors") == {CURRENT_FORM}
    assert forms
    assert all(found == {1} for found in forms.values()), forms
    assert upgraded.verify() == (0, [])


@pytest.mark.parametrize("column", sorted(RENAMED.values()))
def test_an_edit_of_a_renamed_column_is_found(upgraded: Old, column: str) -> None:
    value = "'Nobody'" if column.endswith("_label") else f"{column} + 1"
    with sqlite3.connect(upgraded.db) as conn:
        assert conn.execute(f"UPDATE readings SET {column} = {value} WHERE id = 3").rowcount == 1
    code, anomalies = upgraded.verify()
    assert (code, anomalies) == (1, [("row_modified", "readings", 3)])


def test_a_downgrade_gives_the_old_columns_back(upgraded: Old) -> None:
    before = upgraded.query(f"SELECT {NEW_HISTORY_COLUMNS} FROM readings ORDER BY id")
    command.downgrade(alembic_config(f"sqlite:///{upgraded.db}"), "0011")
    assert set(RENAMED) <= set(upgraded.columns())
    assert upgraded.query(f"SELECT {', '.join(RENAMED)} FROM readings ORDER BY id") == before
    assert upgraded.cli("db", "upgrade").exit_code == 0
    assert upgraded.verify() == (0, [])


READING_0011 = (
    "INSERT INTO readings (id, run_id, scenario, measured_at, source, n_samples, "
    "protected_attribute, unprivileged_group, privileged_group, unprivileged_count, "
    "unprivileged_approved, privileged_count, privileged_approved, unprivileged_rate, "
    "privileged_rate, dir, gap, dir_threshold, gap_threshold, dir_alert, gap_alert, "
    "config_hash, code_version) VALUES (1, 1, 'monitored', '2026-01-01 00:00:01', 'simulator', "
    "400, 'gender', 'Female', 'Male', 200, 60, 200, 140, 0.3, 0.7, 0.43, 0.4, 0.8, 0.2, "
    "TRUE, TRUE, 'h', '0.1.0')"
)
RUN_0011 = (
    "INSERT INTO runs VALUES (1, 0, 'daemon', NULL, '2026-01-01 00:00:00', "
    "'2026-01-01 00:00:01', 'ok', NULL, 'h', '0.1.0')"
)


def test_the_migration_round_trips_on_both_back_ends(
    backend_url: str,
) -> None:
    """Values move with their columns; on PostgreSQL the views are replaced in place, so
    a role granted SELECT on them before the upgrade keeps it."""
    if (path := sqlite_path(backend_url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    cfg = alembic_config(backend_url)
    command.upgrade(cfg, "0011")
    engine = create_engine(backend_url)
    postgres = engine.dialect.name == "postgresql"
    role = f"fairlens_t_auditor_{uuid.uuid4().hex[:8]}"
    try:
        with engine.begin() as conn:
            conn.execute(text(RUN_0011))
            conn.execute(text(READING_0011))
            if postgres:
                conn.execute(text(f"CREATE ROLE {role} NOLOGIN"))
                conn.execute(text(f"GRANT SELECT ON v_fairness_history, v_alerts TO {role}"))
        command.upgrade(cfg, "0012")
        with engine.connect() as conn:
            assert conn.execute(text(f"SELECT {NEW_HISTORY_COLUMNS} FROM readings")).all() == [
                ("Female", "Male", 200, 60, 200, 140, 0.3, 0.7)
            ]
            for columns in (OLD_HISTORY_COLUMNS, NEW_HISTORY_COLUMNS):
                assert conn.execute(text(f"SELECT {columns} FROM v_fairness_history")).all() == [
                    ("Female", "Male", 200, 60, 200, 140, 0.3, 0.7)
                ]
            if postgres:
                for view in ("v_fairness_history", "v_alerts"):
                    granted = f"SELECT has_table_privilege('{role}', '{view}', 'SELECT')"
                    assert conn.execute(text(granted)).scalar() is True, view
        command.downgrade(cfg, "0011")
        with engine.connect() as conn:
            assert conn.execute(text(f"SELECT {', '.join(RENAMED)} FROM readings")).all() == [
                ("Female", "Male", 200, 60, 200, 140, 0.3, 0.7)
            ]
            assert conn.execute(text(f"SELECT {OLD_HISTORY_COLUMNS} FROM v_fairness_history")).all()
    finally:
        if postgres:
            with engine.begin() as conn:
                conn.execute(text(f"DROP OWNED BY {role}"))
                conn.execute(text(f"DROP ROLE {role}"))
        engine.dispose()


def test_moving_an_old_reading_to_another_monitor_is_found(upgraded: Old) -> None:
    """Rows recorded before revision 0015 (forms 1 and 2) were all the default monitor's:
    their digests do not cover the monitor column, so a row of theirs that names another
    monitor is an edit (moving a reading between models), found like any other."""
    with sqlite3.connect(upgraded.db) as conn:
        assert conn.execute("UPDATE readings SET monitor = 'auto_loans' WHERE id = 3").rowcount
    assert upgraded.verify() == (1, [("row_modified", "readings", 3)])
    with sqlite3.connect(upgraded.db) as conn:
        conn.execute("UPDATE readings SET monitor = 'default' WHERE id = 3")
    assert upgraded.verify() == (0, [])
