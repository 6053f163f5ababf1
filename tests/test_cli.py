"""The command line: JSON shapes, exit codes, clear errors, and nothing written on bad input."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fairlens_monitor.cli.main import cli
from fairlens_monitor.store.schema import head_revision
from tests.conftest import merge

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def invoke(write_config: Callable[..., Path]) -> Callable[..., Result]:
    def run(
        *args: str, overrides: dict[str, object] | None = None, input: str | None = None
    ) -> Result:
        config = write_config(overrides)
        return CliRunner().invoke(cli, ["--config", str(config), *args], input=input)

    return run


@pytest.fixture
def invoke_both(write_config: Callable[..., Path], backend_url: str) -> Callable[..., Result]:
    """Like ``invoke``, once on a SQLite file and once on a fresh PostgreSQL database."""

    def run(
        *args: str, overrides: dict[str, object] | None = None, input: str | None = None
    ) -> Result:
        config = write_config(merge({"database": {"url": backend_url}}, overrides or {}))
        return CliRunner().invoke(cli, ["--config", str(config), *args], input=input)

    return run


def db_file(tmp_path: Path) -> Path:
    return tmp_path / "var" / "fairlens.db"


def test_once_json_has_the_original_shape(invoke_both: Callable[..., Result]) -> None:
    invoke = invoke_both
    result = invoke(
        "once",
        "--json",
        overrides={"simulation": {"drift": 1.0}, "alerts": {"echo_plaintext": True}},
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) >= {"fair_scenario", "drifted_scenario", "audit_tail"}
    drifted = doc["drifted_scenario"]
    assert drifted["dir_alert"] is True
    assert drifted["explanation"].startswith(f"DIR = {drifted['dir']:.2f} (<0.8).")
    assert drifted["encrypted_alert"].startswith("gAAAAA")
    assert doc["fair_scenario"]["drift_level"] == 0.0
    assert {"female_rate", "male_rate", "dir", "gap", "gap_alert", "details"} <= set(drifted)
    assert doc["audit_tail"][-1]["event_type"] == "alert_raised"

    decrypted = invoke("decrypt", drifted["encrypted_alert"])
    assert decrypted.exit_code == 0
    assert decrypted.stdout.strip() == drifted["explanation"]
    from_stdin = invoke("decrypt", "-", input=drifted["encrypted_alert"] + "\n")
    assert from_stdin.stdout.strip() == drifted["explanation"]


def test_once_fail_on_alert(invoke_both: Callable[..., Result]) -> None:
    invoke = invoke_both
    assert (
        invoke("once", "--fail-on-alert", overrides={"simulation": {"drift": 1.0}}).exit_code == 1
    )
    assert (
        invoke(
            "once", "--fail-on-alert", overrides={"simulation": {"drift": 0.0, "n_samples": 5000}}
        ).exit_code
        == 0
    )


def test_history_and_audit(invoke_both: Callable[..., Result]) -> None:
    invoke = invoke_both
    for _ in range(3):
        assert invoke("once").exit_code == 0
    history = invoke("history", "--last", "4", "--json")
    readings = json.loads(history.stdout)
    assert [r["scenario"] for r in readings] == ["reference", "monitored"] * 2
    assert [r["run_id"] for r in readings] == [2, 2, 3, 3]
    assert readings[0]["measured_at"].endswith("Z")
    text = invoke("history").stdout.splitlines()
    assert len(text) == 6
    assert "Female=" in text[0]
    events = json.loads(invoke("audit", "--last", "2", "--json").stdout)
    # seq 1 is the monitor listed with its settings (the config snapshot), then 3 cycles
    assert [e["seq"] for e in events] == [3, 4]
    assert {"timestamp", "event_type", "details", "hash", "prev_hash"} <= set(events[0])
    assert len(invoke("audit").stdout.splitlines()) == 4


def test_audit_tables_refuse_update_and_delete(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    invoke("once")
    invoke("checkpoint")
    with sqlite3.connect(db_file(tmp_path)) as conn:
        for sql in (
            "UPDATE audit_events SET actor = 'x'",
            "DELETE FROM audit_events",
            "UPDATE checkpoints SET seq = 0",
            "DELETE FROM checkpoints",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    assert invoke("verify").exit_code == 0


@pytest.mark.parametrize("command", [["history"], ["audit"], ["verify"]])
def test_read_commands_on_a_missing_database_exit_2_and_create_nothing(
    invoke: Callable[..., Result], tmp_path: Path, command: list[str]
) -> None:
    result = invoke(*command)
    assert result.exit_code == 2
    assert "no database file" in result.stderr
    assert not db_file(tmp_path).exists()


@pytest.mark.parametrize("command", [["once"], ["run"], ["history"], ["db", "upgrade"]])
def test_bad_config_exits_2_with_one_line_and_writes_nothing(
    invoke: Callable[..., Result], tmp_path: Path, command: list[str]
) -> None:
    result = invoke(*command, overrides={"thresholds": {"dir": -1}})
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: config key 'thresholds.dir': expected a number > 0 and <= 1000000, got -1"
    ]
    assert not (tmp_path / "var").exists()


def test_decrypt_errors_exit_2(invoke: Callable[..., Result], tmp_path: Path) -> None:
    missing = invoke("decrypt", "gAAAAAxyz")
    assert missing.exit_code == 2
    assert "missing" in missing.stderr
    assert not (tmp_path / "var" / "keys").exists()  # decrypt never creates a key
    invoke("once")
    garbage = invoke("decrypt", "gAAAAAxyz")
    assert garbage.exit_code == 2
    assert "cannot decrypt token" in garbage.stderr


def test_exposed_key_stops_the_cycle(invoke: Callable[..., Result], tmp_path: Path) -> None:
    invoke("once")
    (tmp_path / "var" / "keys" / "fernet.key").chmod(0o644)
    result = invoke("once")
    assert result.exit_code == 2
    assert "chmod 600" in result.stderr


def test_db_upgrade_and_current(invoke: Callable[..., Result], tmp_path: Path) -> None:
    first = invoke("db", "upgrade")
    assert first.exit_code == 0
    assert "(was empty)" in first.stdout
    head = head_revision(f"sqlite:///{db_file(tmp_path)}")
    assert invoke("db", "upgrade").stdout.strip() == f"database at revision {head}"
    assert invoke("db", "current").stdout.strip() == f"current: {head}  head: {head}"


def test_usage_error_exits_2(invoke: Callable[..., Result]) -> None:
    assert invoke("history", "--last", "0").exit_code == 2
    assert invoke("no-such-command").exit_code == 2


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fairlens_monitor", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0
    for command in ("run", "once", "history", "audit", "verify", "decrypt", "db"):
        assert command in result.stdout


def test_a_huge_last_is_a_usage_error_on_both_back_ends(invoke_both: Callable[..., Result]) -> None:
    """`--last 10^20` reached the database as a LIMIT beyond 64 bits: an 'unexpected
    OverflowError' on SQLite. It is refused as a usage error naming the option."""
    assert invoke_both("once").exit_code == 0
    for command in (["history"], ["audit"], ["alerts", "list"]):
        result = invoke_both(*command, "--last", str(10**20))
        assert result.exit_code == 2, result.output
        assert "'--last'" in result.output
        assert "unexpected" not in result.output
        assert invoke_both(*command, "--last", "1000000000").exit_code == 0  # the largest
