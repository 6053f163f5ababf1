"""The restore drill: lose the database, restore the last backup, carry on, still verified."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result

from fairlens_monitor.cli.main import cli

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

    refused = fl(config, "restore", str(tmp_path / "nightly.db"))
    assert refused.exit_code == 2  # it would lose anchored history: not without saying so
    assert "pass --accept-loss" in refused.output
    assert not db.exists()
    done = fl(config, "restore", str(tmp_path / "nightly.db"), "--accept-loss")
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
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(DRILL)
    for _ in range(2):
        assert fl(config, "once").exit_code == 0
    good, bad = tmp_path / "good.db", tmp_path / "bad.db"
    assert fl(config, "backup", str(good)).exit_code == 0
    assert fl(config, "backup", str(bad)).exit_code == 0
    with sqlite3.connect(bad) as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")
        conn.execute(
            "UPDATE audit_events SET canonical = json_set(canonical, '$.payload', json('{}')) "
            "WHERE seq = 1"
        )
    refused = fl(config, "restore", str(bad))
    assert refused.exit_code == 2
    assert "the backup does not verify (seq 1 modified); refusing" in refused.output
    assert fl(config, "once").exit_code == 0  # the database was left alone
    done = fl(config, "restore", str(good), "--accept-loss")
    assert done.exit_code == 0, done.output
    assert list((tmp_path / "var").glob("fairlens.db.replaced-*"))  # kept, not deleted


def test_a_forged_restore_statement_is_reported(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(DRILL)
    for _ in range(2):
        assert fl(config, "once").exit_code == 0
    assert fl(config, "backup", str(tmp_path / "b.db")).exit_code == 0
    assert fl(config, "restore", str(tmp_path / "b.db"), "--accept-loss").exit_code == 0
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")
        (payload,) = conn.execute(
            "SELECT payload FROM audit_events WHERE event_type = 'chain_restored'"
        ).fetchone()
        forged = json.loads(payload)
        forged["superseded_to"] = 10_000  # try to excuse more than was lost
        conn.execute(
            "UPDATE audit_events SET canonical = json_set(canonical, '$.payload', json(?)) "
            "WHERE event_type = 'chain_restored'",
            (json.dumps(forged),),
        )
    result = fl(config, "verify")
    assert result.exit_code == 1


def test_verify_lists_every_anchored_seq_a_restore_lost(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The signed statement names exactly the lost anchored seqs; verify lists each as a
    `restored_loss` warning without changing the verdict, and a loss no statement names is
    an anomaly (exit 1)."""
    config = write_config(DRILL)
    for _ in range(2):
        assert fl(config, "once").exit_code == 0
    assert fl(config, "backup", str(tmp_path / "b.db")).exit_code == 0
    for _ in range(3):
        assert fl(config, "once").exit_code == 0
    anchor = tmp_path / "var" / "anchor.jsonl"
    before = [json.loads(line)["seq"] for line in anchor.read_text().splitlines()]
    done = fl(config, "restore", str(tmp_path / "b.db"), "--accept-loss")
    assert done.exit_code == 0, done.output
    from_seq = int(re.search(r"at seq (\d+)", done.stdout).group(1))  # type: ignore[union-attr]
    lost = sorted({seq for seq in before if seq > from_seq})
    assert lost
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        (payload,) = conn.execute(
            "SELECT payload FROM audit_events WHERE event_type = 'chain_restored'"
        ).fetchone()
    assert json.loads(payload)["lost_checkpoints"] == lost
    result = fl(config, "verify", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert [(w["seq"], w["kind"]) for w in doc["warnings"]] == [
        (seq, "restored_loss") for seq in lost
    ]
    assert all(set(w) == {"kind", "seq", "table", "id", "detail"} for w in doc["warnings"])
    text = fl(config, "verify").stdout
    assert f"warning: seq {lost[0]}: restored_loss" in text
    from fairlens_monitor.viewer.watch import run_verify  # the page's chain line lists them too

    assert (
        f"lost by a signed restore: seq {', '.join(map(str, lost))}" in run_verify(str(config))[0]
    )
    # a loss the signed statement does not name is not excused
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")
        forged = json.loads(payload)
        forged["lost_checkpoints"] = lost[:-1]  # hide one loss: the signature breaks
        conn.execute(
            "UPDATE audit_events SET canonical = json_set(canonical, '$.payload', json(?)) "
            "WHERE event_type = 'chain_restored'",
            (json.dumps(forged),),
        )
    assert fl(config, "verify").exit_code == 1


def test_restore_onto_a_corrupt_database_sets_it_aside_unopened(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A database file of random bytes (and a stray WAL) is renamed aside, not opened: the
    restore succeeds with no traceback and every byte of the corrupt file is kept."""
    config = write_config(DRILL)
    assert fl(config, "once").exit_code == 0
    assert fl(config, "backup", str(tmp_path / "b.db")).exit_code == 0
    db = tmp_path / "var" / "fairlens.db"
    junk = bytes(range(256)) * 64
    db.write_bytes(junk)
    db.with_name("fairlens.db-wal").write_bytes(b"\x01" * 100)
    done = fl(config, "restore", str(tmp_path / "b.db"))
    assert done.exit_code == 0, done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)
    [aside] = [
        p
        for p in (tmp_path / "var").glob("fairlens.db.replaced-*")
        if not p.name.endswith(("-wal", "-shm"))
    ]
    assert aside.read_bytes() == junk
    assert fl(config, "verify").exit_code == 0
