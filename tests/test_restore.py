"""The restore drill: lose the database, restore the last backup, carry on, still verified."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result

from fairlens_monitor.cli import cli

DRILL = {"simulation": {"drift": 1.0}, "audit": {"checkpoint_every": 2}}


def fl(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_restore_drill(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config(DRILL)
    for _ in range(3):
        assert fl(config, "once").exit_code == 0
    made = fl(config, "backup", str(tmp_path / "nightly.db"))
    assert made.exit_code == 0, made.output
    backup_head = int(re.search(r"chain head seq (\d+)", made.stdout).group(1))  # type: ignore[union-attr]
    for _ in range(3):  # history after the backup, anchored by checkpoints
        assert fl(config, "once").exit_code == 0
    anchored = json.loads(fl(config, "verify", "--json").stdout)["anchored_seq"]
    assert anchored > backup_head

    db = tmp_path / "var" / "fairlens.db"
    for path in tmp_path.joinpath("var").glob("fairlens.db*"):
        if path.name != "fairlens.db.lock":
            path.unlink()  # the disaster
    assert fl(config, "verify").exit_code == 2  # nothing to verify

    done = fl(config, "restore", str(tmp_path / "nightly.db"))
    assert done.exit_code == 0, done.output
    assert f"at seq {backup_head}" in done.stdout
    assert f"(seq {backup_head + 1}...{anchored})" in done.stdout
    report = json.loads(fl(config, "verify", "--json").stdout)
    assert report["intact"] is True
    assert report["superseded_checkpoints"] >= 1
    assert report["head_seq"] == report["anchored_seq"] == backup_head + 1  # restore signed

    assert fl(config, "once").exit_code == 0  # the monitor carries on after the restore
    after = fl(config, "verify")
    assert after.exit_code == 0, after.output
    assert "checkpoints of history lost before a signed restore set aside" in after.stdout
    with sqlite3.connect(db) as conn:  # and tampering is still caught after a restore
        conn.execute("DROP TRIGGER audit_events_no_update")
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    assert fl(config, "verify").exit_code == 1


def test_a_restore_keeps_the_replaced_file_and_refuses_a_bad_backup(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config(DRILL)
    for _ in range(2):
        assert fl(config, "once").exit_code == 0
    good, bad = tmp_path / "good.db", tmp_path / "bad.db"
    assert fl(config, "backup", str(good)).exit_code == 0
    assert fl(config, "backup", str(bad)).exit_code == 0
    with sqlite3.connect(bad) as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")
        conn.execute("UPDATE audit_events SET payload = '{}' WHERE seq = 1")
    refused = fl(config, "restore", str(bad))
    assert refused.exit_code == 2
    assert "the backup does not verify (seq 1 modified); refusing" in refused.output
    assert fl(config, "once").exit_code == 0  # the database was left alone
    done = fl(config, "restore", str(good))
    assert done.exit_code == 0, done.output
    assert list((tmp_path / "var").glob("fairlens.db.replaced-*"))  # kept, not deleted


def test_a_forged_restore_statement_is_reported(write_config: Callable[..., Path],
                                                tmp_path: Path) -> None:
    config = write_config(DRILL)
    for _ in range(2):
        assert fl(config, "once").exit_code == 0
    assert fl(config, "backup", str(tmp_path / "b.db")).exit_code == 0
    assert fl(config, "restore", str(tmp_path / "b.db")).exit_code == 0
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")
        (payload,) = conn.execute("SELECT payload FROM audit_events "
                                  "WHERE event_type = 'chain_restored'").fetchone()
        forged = json.loads(payload)
        forged["superseded_to"] = 10_000  # try to excuse more than was lost
        conn.execute("UPDATE audit_events SET payload = ? WHERE event_type = 'chain_restored'",
                     (json.dumps(forged),))
    result = fl(config, "verify")
    assert result.exit_code == 1
