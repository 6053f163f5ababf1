"""Backups: a verified online copy while the daemon writes; refusals; a kept count."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.ops.daemon import run_daemon
from tests.helpers.wait import wait_for

ROOT = Path(__file__).resolve().parents[1]


def fl(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def runs(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])


def test_a_backup_taken_while_the_daemon_writes_verifies(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(
        {
            "schedule": {"interval_seconds": 0.05},
            "simulation": {"drift": 1.0},
            "audit": {"checkpoint_every": 3},
        }
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    try:
        db = tmp_path / "var" / "fairlens.db"
        wait_for(
            lambda: db.exists() and (tmp_path / "var" / "anchor.jsonl").exists(),
            what="the daemon's database and anchor file",
        )
        made = [fl(config, "backup", str(tmp_path / "backups" / f"b{i}.db")) for i in range(3)]
        # The daemon goes on writing after the backups: wait for its next cycle (the event).
        after = runs(db)
        wait_for(lambda: runs(db) > after, what="a cycle after the backups")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
    for i, result in enumerate(made):
        assert result.exit_code == 0, result.output
        assert "integrity ok, chain verified" in result.stdout
        copy = tmp_path / "backups" / f"b{i}.db"
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        with sqlite3.connect(copy) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert not list((tmp_path / "backups").glob("*.partial"))
    events = json.loads(fl(config, "audit", "--last", "1000", "--json").stdout)
    recorded = [e["details"]["file"] for e in events if e["event_type"] == "backup_made"]
    assert recorded == ["b0.db", "b1.db", "b2.db"]
    assert fl(config, "verify").exit_code == 0


def test_refusals(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config({"simulation": {"drift": 1.0}})
    assert fl(config, "once").exit_code == 0
    dest = tmp_path / "b.db"
    assert fl(config, "backup", str(dest)).exit_code == 0
    again = fl(config, "backup", str(dest))
    assert again.exit_code == 2
    assert "already exists" in again.output
    pg = CliRunner().invoke(
        cli,
        ["--config", str(config), "backup", str(tmp_path / "p.db")],
        env={"FAIRLENS_DB_URL": "postgresql+psycopg://u@127.0.0.1/x"},
    )
    assert pg.exit_code == 2
    assert "pg_dump" in pg.output
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:  # tamper past the trigger
        conn.execute("DROP TRIGGER audit_events_no_update")
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
    bad = fl(config, "backup", str(tmp_path / "c.db"))
    assert bad.exit_code == 2
    assert "the copy does not verify: seq 1 modified" in bad.output
    assert not (tmp_path / "c.db").exists()
    assert not (tmp_path / "c.db.partial").exists()


def test_scheduled_backups_keep_the_newest(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(
        {
            "schedule": {"interval_seconds": 0.1},
            "backup": {"dir": "var/backups", "interval_hours": 0.25 / 3600, "keep": 2},
        }
    )
    lines: list[str] = []
    run_daemon(
        load_settings(config, env={}), emit=lines.append, max_cycles=15, handle_signals=False
    )
    kept = sorted((tmp_path / "var" / "backups").glob("fairlens-*.db"))
    made = [line for line in lines if line.startswith("backup fairlens-")]
    assert len(made) >= 3
    assert len(kept) == 2
    assert [p.name for p in kept] == sorted(line.split()[1].rstrip(":") for line in made)[-2:]


@pytest.mark.parametrize(
    ("backup", "key", "expected"),
    [
        ({"interval_hours": 1}, "backup.dir", "missing"),
        ({"dir": "b", "keep": 0}, "backup.keep", ">= 1"),
        ({"dir": "b", "interval_hours": 0}, "backup.interval_hours", "> 0"),
    ],
)
def test_backup_settings_are_validated(
    write_config: Callable[..., Path], backup: dict[str, object], key: str, expected: str
) -> None:
    from fairlens_monitor.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_settings(write_config({"backup": backup}), env={})
    assert info.value.key == key
    assert expected in str(info.value)
