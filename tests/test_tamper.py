"""Tampering, done the way an insider would — straight at the files with sqlite3 — and found.

Each test edits the database or the anchor file directly and asserts that `verify` reports
exactly that kind of anomaly at that seq, with exit code 1.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fairlens_monitor.audit.chain import GENESIS_HASH, build_record
from fairlens_monitor.cli.main import cli


class Trail:
    """A database with 4 alerting cycles (8 events) and a checkpoint at seq 8."""

    def __init__(self, config: Path, root: Path) -> None:
        self.config, self.root = config, root
        self.db = root / "var" / "fairlens.db"
        self.anchor = root / "var" / "anchor.jsonl"

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config), *args])

    def sql(self, *statements: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> None:
        with sqlite3.connect(self.db) as conn:
            conn.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
            conn.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
            for statement in statements:
                conn.execute(statement, params)

    def rows(self) -> list[dict[str, Any]]:
        with sqlite3.connect(self.db) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT * FROM audit_events ORDER BY seq")]

    def verify(self) -> tuple[int, list[tuple[int | None, str]]]:
        """Exit code and (seq, kind) anomalies; seq is None for a row no event accounts for."""
        result = self.cli("verify", "--json")
        doc = json.loads(result.stdout)
        return result.exit_code, [(a["seq"], a["kind"]) for a in doc["anomalies"]]


@pytest.fixture
def trail(write_config: Callable[..., Path], tmp_path: Path) -> Trail:
    config = write_config({"simulation": {"drift": 1.0}, "audit": {"checkpoint_every": 1000}})
    t = Trail(config, tmp_path)
    # 1 monitor_added (once lists the monitor with its rules first) + 6 cycle events
    # + 1 alert_raised = 8 events
    for _ in range(6):
        assert t.cli("once").exit_code == 0
    # the first cycle and the alert's cycle sign checkpoints in their own transactions
    # (audit.checkpoint_seconds); `checkpoint` signs the head unless a cycle just did
    assert t.cli("checkpoint").exit_code == 0
    assert t.verify() == (0, [])
    text = t.cli("verify").stdout
    assert re.search(r"checkpoints verified: ([2-9]) in the anchor file, \1 in the database", text)
    assert "anchored up to seq 8, 0 events not yet anchored" in text
    return t


def forge(row: dict[str, Any], payload: dict[str, Any], prev_hash: str) -> dict[str, Any]:
    """Rebuild a record with new content and a correct hash, as someone with the code could."""
    rec = build_record(
        seq=row["seq"],
        ts=row["ts"],
        event_type=row["event_type"],
        actor=row["actor"],
        payload=payload,
        prev_hash=prev_hash,
    )
    return {
        "payload": json.dumps(dict(rec.payload)),
        "canonical": rec.canonical,
        "prev_hash": rec.prev_hash,
        "hash": rec.hash,
        "seq": rec.seq,
    }


def test_the_payload_column_cannot_be_edited(trail: Trail) -> None:
    """Since 0013 `payload` is cut out of the hashed bytes when read: there is no copy to edit."""
    with pytest.raises(sqlite3.OperationalError, match="generated column"):
        trail.sql("UPDATE audit_events SET payload = '{}' WHERE seq = 3")


def test_modified_payload(trail: Trail) -> None:
    trail.sql(
        "UPDATE audit_events SET canonical = json_set(canonical, '$.payload.drift_level', 0.1) "
        "WHERE seq = 3"
    )
    assert json.loads(trail.rows()[2]["payload"])["drift_level"] == 0.1  # what a reader sees
    assert trail.verify() == (1, [(3, "modified")])
    text = trail.cli("verify")
    assert text.exit_code == 1
    assert "first broken seq 3 (modified" in text.stdout


def test_modified_canonical_bytes(trail: Trail) -> None:
    trail.sql("""UPDATE audit_events SET canonical = replace(canonical, '"actor":"cli"',
              '"actor":"x"') WHERE seq = 5""")
    trail.sql("UPDATE audit_events SET canonical = canonical || ' ' WHERE seq = 6")
    assert trail.verify() == (1, [(5, "modified"), (6, "modified")])


def test_broken_link(trail: Trail) -> None:
    row = trail.rows()[2]
    forged = forge(row, {**json.loads(row["payload"]), "dir": 0.99}, row["prev_hash"])
    trail.sql(
        "UPDATE audit_events SET canonical = :canonical, hash = :hash WHERE seq = :seq",
        params=forged,
    )
    # the cycle that raised the alert signed a checkpoint at seq 3 in its own transaction
    assert trail.verify() == (1, [(3, "bad_checkpoint"), (4, "broken_link")])


def test_deleted_event_is_a_gap(trail: Trail) -> None:
    trail.sql("DELETE FROM audit_events WHERE seq = 3")
    assert trail.verify() == (1, [(3, "gap")])


def test_reordered_events(trail: Trail) -> None:
    trail.sql(
        "UPDATE audit_events SET id = 1000 WHERE seq = 3",
        "UPDATE audit_events SET id = 3 WHERE seq = 4",
        "UPDATE audit_events SET id = 4 WHERE seq = 3",
    )
    assert trail.verify() == (1, [(3, "reordered")])


def test_truncated_tail(trail: Trail) -> None:
    trail.sql("DELETE FROM audit_events WHERE seq >= 7")
    code, anomalies = trail.verify()
    assert (code, [a for a in anomalies if not a[1].startswith("row_")]) == (1, [(7, "truncated")])
    # The rows the deleted events recorded are no longer accounted for either.
    assert (None, "row_unrecorded") in anomalies


def test_rebuilt_chain_contradicts_the_signed_checkpoint(trail: Trail) -> None:
    prev = GENESIS_HASH
    for row in trail.rows():
        payload = json.loads(row["payload"])
        if row["seq"] == 2:
            payload["dir"] = 0.95  # the alert that someone wants to soften
        forged = forge(row, payload, prev)
        trail.sql(
            "UPDATE audit_events SET canonical = :canonical, "
            "prev_hash = :prev_hash, hash = :hash WHERE seq = :seq",
            params=forged,
        )
        prev = forged["hash"]
    assert trail.verify() == (1, [(3, "bad_checkpoint"), (8, "bad_checkpoint")])


def test_edited_anchor_line_is_a_bad_checkpoint(trail: Trail) -> None:
    *kept, last = trail.anchor.read_text().splitlines()
    line = json.loads(last)
    line["seq"] = 6
    trail.anchor.write_text("".join(k + "\n" for k in kept) + json.dumps(line) + "\n")
    assert trail.verify() == (1, [(6, "bad_checkpoint")])


def test_garbage_in_the_anchor_file_is_reported(trail: Trail) -> None:
    with trail.anchor.open("a") as handle:
        handle.write('{"seq": 9, "head_hash": "tr\n')
    code, anomalies = trail.verify()
    assert code == 1
    assert anomalies == [(0, "bad_checkpoint")]


def test_missing_public_key_cannot_verify(trail: Trail) -> None:
    (trail.root / "var" / "keys" / "checkpoint_ed25519.pub").unlink()
    result = trail.cli("verify")
    assert result.exit_code == 2
    assert "public key" in result.stderr
    assert "--public-key" in result.stderr


def test_missing_anchor_file_cannot_verify(trail: Trail) -> None:
    trail.anchor.unlink()
    result = trail.cli("verify")
    assert result.exit_code == 2
    assert "anchor file" in result.stderr


def test_another_copy_of_the_anchor_and_key_can_be_named(trail: Trail, tmp_path: Path) -> None:
    copy = tmp_path / "offsite-anchor.jsonl"
    copy.write_text(trail.anchor.read_text())
    pub = tmp_path / "auditor.pub"
    pub.write_bytes((trail.root / "var" / "keys" / "checkpoint_ed25519.pub").read_bytes())
    trail.sql("DELETE FROM audit_events WHERE seq = 8")
    result = trail.cli("verify", "--anchor", str(copy), "--public-key", str(pub), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["anomalies"][0]["kind"] == "truncated"


def test_verify_entry(trail: Trail) -> None:
    rows = trail.rows()
    proof = trail.cli("verify-entry", rows[4]["hash"])
    assert proof.exit_code == 0
    assert "record seq 5" in proof.stdout
    assert "signed checkpoint at seq 8" in proof.stdout
    assert trail.cli("verify-entry", "ab" * 32).exit_code == 1
    trail.sql("UPDATE audit_events SET actor = 'x' WHERE seq = 2")
    broken = trail.cli("verify-entry", rows[4]["hash"], "--json")
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["chain_verified_up_to"] == 1


def _at_0012(trail: Trail, *edits: tuple[str, tuple[Any, ...]]) -> None:
    """Take the database back to 0012 (payload stored twice), apply ``edits`` there, and
    upgrade it again through migration 0013, as an old database is upgraded."""
    from alembic import command

    from fairlens_monitor.store.db import make_engine
    from fairlens_monitor.store.schema import alembic_config, upgrade

    url = f"sqlite:///{trail.db}"
    command.downgrade(alembic_config(url), "0012")
    with sqlite3.connect(trail.db) as conn:
        assert "payload" in [r[1] for r in conn.execute("PRAGMA table_xinfo(audit_events)")]
    for statement, params in edits:
        trail.sql(statement, params=params)
    engine = make_engine(url)
    upgrade(engine, url)
    engine.dispose()


def test_rows_stored_the_old_way_still_verify_after_0013(trail: Trail) -> None:
    """A payload stored the way versions before 0.3 did (json.dumps) is not an edit: 0013
    drops it and the chain verifies from the hashed bytes."""
    before = trail.rows()
    _at_0012(
        trail,
        *(
            (
                "UPDATE audit_events SET payload = ? WHERE seq = ?",
                (json.dumps(json.loads(row["payload"]), indent=1), row["seq"]),
            )
            for row in before[:4]
        ),
    )
    assert trail.verify() == (0, [])
    after = trail.rows()
    assert [json.loads(r["payload"]) for r in after] == [json.loads(r["payload"]) for r in before]
    with sqlite3.connect(trail.db) as conn:
        assert conn.execute("SELECT count(*) FROM audit_payload_edits").fetchone() == (0,)


@pytest.mark.parametrize(
    "edit",
    [
        "json_set(payload, '$.cycle_index', 'x')",  # a value changed
        "json_set(payload, '$.extra', 1)",  # a key added
        "replace(payload, 'true', '1')",  # true became 1: equal in SQL, not in JSON
        "'{}'",  # the payload emptied
        "''",  # not JSON at all
        "(SELECT payload FROM audit_events WHERE seq = 3)",  # another row's value
    ],
)
def test_any_edit_of_the_payload_column_before_0013_is_found(trail: Trail, edit: str) -> None:
    """An edit of the old payload column is kept as evidence by 0013 and stays `modified`
    (seq 2: the first cycle_completed)."""
    _at_0012(trail, (f"UPDATE audit_events SET payload = {edit} WHERE seq = 2", ()))
    status, anomalies = trail.verify()
    assert (status, anomalies) == (1, [(2, "modified")])
    with sqlite3.connect(trail.db) as conn:
        assert conn.execute("SELECT seq FROM audit_payload_edits").fetchall() == [(2,)]
