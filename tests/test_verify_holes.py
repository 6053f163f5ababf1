"""Holes in what `verify` claims, found by a hostile tester (issue 14, items A, B, C, E).

Each test damages a real database (SQLite file or PostgreSQL) the way someone with DDL
rights would, through the real CLI, and checks what `verify`, `audit`, `audit export`,
`verify-entry` and `checkpoint` then say: no traceback for any damaged row, `modified` for
any column that differs from the hashed bytes, nothing after a rewritten region called
verified, and an anchor failure that is one line and is not called "already anchored".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from fairlens_monitor.audit.chain import build_record
from fairlens_monitor.cli.main import cli
from tests.conftest import BASE_CONFIG, merge, query_url

# Every stored column of audit_events (since 0013 the payload is stored only inside
# `canonical`; SQLite's `payload` is a generated column that refuses writes).
COLUMNS = ("seq", "ts", "event_type", "actor", "canonical", "prev_hash", "hash", "id")


class Store:
    """A monitor database on one back end, driven through the CLI."""

    def __init__(self, root: Path, url: str, overrides: dict[str, Any]) -> None:
        self.root, self.url = root, url
        self.config = root / "config.yaml"
        self.config.write_text(
            yaml.safe_dump(merge(BASE_CONFIG, merge({"database": {"url": url}}, overrides)))
        )
        self.anchor = root / "var" / "anchor.jsonl"

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config), *args])

    def verify(self) -> tuple[int, list[tuple[int, str]], dict[str, Any]]:
        result = self.cli("verify", "--json")
        assert no_traceback(result), result.output
        doc = json.loads(result.stdout)
        return result.exit_code, [(a["seq"], a["kind"]) for a in doc["anomalies"]], doc

    def rows(self) -> list[dict[str, Any]]:
        cols = ", ".join(COLUMNS[:-1])
        found = query_url(self.url, f"SELECT {cols}, id FROM audit_events ORDER BY seq")
        return [dict(zip(COLUMNS, row, strict=True)) for row in found]

    def write(self, sql: str, **params: Any) -> bool:
        """Run ``sql`` with the append-only triggers lifted; False when the database refuses
        the value (a constraint or type), which is protection enough."""
        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                for table in ("audit_events", "checkpoints"):
                    if engine.dialect.name == "postgresql":
                        conn.execute(
                            text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
                        )
                    else:
                        conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_update"))
                        conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))
                conn.execute(text(sql), params)
            return True
        except DBAPIError:
            return False
        finally:
            engine.dispose()


def no_traceback(result: Result) -> bool:
    """True when the command ended by an exit code, not an uncaught exception."""
    return result.exception is None or isinstance(result.exception, SystemExit)


@pytest.fixture
def store(backend_url: str, tmp_path: Path) -> Store:
    """8 events (the monitor listed with its settings, 6 cycles, an alert), checkpoint at 8."""
    s = Store(
        tmp_path, backend_url, {"simulation": {"drift": 1.0}, "audit": {"checkpoint_every": 1000}}
    )
    for _ in range(6):
        assert s.cli("once").exit_code == 0
    assert "checkpoint at seq 8" in s.cli("checkpoint").stdout
    assert s.verify()[:2] == (0, [])
    return s


def test_an_emptied_payload_is_modified_and_nothing_crashes(store: Store, backend_url: str) -> None:
    """Item A as filed: payload '' passed `verify` and crashed `audit`. Since 0013 there is
    no payload column to empty (SQLite: generated, PostgreSQL: dropped); emptying the payload
    inside the hashed text is the same damage."""
    assert not store.write("UPDATE audit_events SET payload = '' WHERE seq = 5")
    canonical = store.rows()[4]["canonical"]
    head = canonical[: canonical.index('"payload":') + len('"payload":')]
    tail = canonical[canonical.rindex(',"seq":') :]
    assert store.write("UPDATE audit_events SET canonical = :c WHERE seq = 5", c=head + tail)
    code, found, doc = store.verify()
    assert code == 1
    assert (5, "modified") in found
    assert doc["last_verified_seq"] == 4
    for args in (
        ("audit", "--last", "20"),
        ("audit", "export", "--jsonl", str(store.root / "out.jsonl")),
    ):
        result = store.cli(*args)
        assert no_traceback(result), result.output
        assert result.exit_code == 1
        assert "seq 5 is damaged" in result.output
    assert not (store.root / "out.jsonl").exists()
    assert not (store.root / "out.jsonl.tmp").exists()
    bad_hash = store.rows()[4]["hash"]
    result = store.cli("verify-entry", bad_hash)
    assert no_traceback(result)
    assert result.exit_code == 1


def test_every_column_of_every_kind_of_damage_is_found(store: Store) -> None:
    """Any value in any column of audit_events that differs from what was hashed — '', NULL,
    whitespace, another row's value — is an anomaly at that row (exit 1), and `audit`,
    `audit export` and `verify-entry` report it in one line rather than crash."""
    rows = store.rows()
    target = rows[4]  # seq 5
    other_hash = rows[6]["hash"]
    tried = 0
    for column in COLUMNS:
        others = [r[column] for r in rows if r[column] != target[column]]
        for value in ("", None, " ", *others[:1]):
            if not store.write(f"UPDATE audit_events SET {column} = :v WHERE seq = 5", v=value):
                continue  # the database itself refuses this damage
            tried += 1
            code, found, _ = store.verify()
            where = f"{column}={value!r}"
            assert code == 1, where
            if column == "id":
                assert any(seq == 5 for seq, _ in found), (where, found)
            else:
                assert (5, "modified") in found, (where, found)
            for args in (
                ("audit", "--last", "20"),
                ("audit", "export", "--jsonl", str(store.root / "out.jsonl")),
                ("verify-entry", other_hash),
            ):
                result = store.cli(*args)
                assert no_traceback(result), (where, args, result.output)
                assert "Traceback" not in result.output
            # put the row back as written, by its hash (seq and id may be what changed)
            back = ", ".join(f"{c} = :{c}" for c in COLUMNS if c not in ("hash", "id"))
            restored = (
                store.write(
                    f"UPDATE audit_events SET {back} WHERE hash = :hash OR seq = 5",
                    **{c: target[c] for c in COLUMNS if c != "id"},
                )
                if column != "hash"
                else store.write(
                    "UPDATE audit_events SET hash = :h WHERE seq = 5", h=target["hash"]
                )
            )
            assert restored, where
            if column == "id":
                store.write("UPDATE audit_events SET id = :i WHERE seq = 5", i=target["id"])
            assert store.verify()[:2] == (0, []), where
    assert tried >= 10


def forge_from(store: Store, seq: int) -> str:
    """Rewrite seq's payload and canonical text and rehash seq..head, as someone with the code
    and DDL rights could; return the forged record's new hash."""
    rows = store.rows()
    prev = rows[seq - 2]["hash"]
    new_hash = ""
    for row in rows[seq - 1 :]:
        payload = json.loads(row["canonical"])["payload"]
        if row["seq"] == seq:
            payload["forged"] = True
        rec = build_record(
            seq=row["seq"],
            ts=row["ts"],
            event_type=row["event_type"],
            actor=row["actor"],
            payload=payload,
            prev_hash=prev,
        )
        assert store.write(
            "UPDATE audit_events SET canonical = :c, prev_hash = :ph, hash = :h WHERE seq = :s",
            c=rec.canonical,
            ph=rec.prev_hash,
            h=rec.hash,
            s=rec.seq,
        )
        new_hash = new_hash or rec.hash
        prev = rec.hash
    return new_hash


def test_a_rewritten_region_is_not_called_verified(backend_url: str, tmp_path: Path) -> None:
    """Item B: a forged seq between two checkpoints, rehashed to the head, breaks the later
    checkpoint; nothing after the last good checkpoint is verified, and `verify-entry`
    refuses the forged record while it still proves one below the good checkpoint."""
    s = Store(
        tmp_path, backend_url, {"simulation": {"drift": 1.0}, "audit": {"checkpoint_every": 5}}
    )
    assert s.cli("once").exit_code == 0
    while s.verify()[2]["head_seq"] < 14:
        assert s.cli("once").exit_code == 0
    cps = sorted(int(json.loads(line)["seq"]) for line in s.anchor.read_text().splitlines())
    assert len(cps) >= 2
    good, broken = cps[0], cps[1]
    first_rows = s.rows()
    forged = forge_from(s, good + 1)
    code, found, doc = s.verify()
    assert code == 1
    assert (broken, "bad_checkpoint") in found
    assert doc["last_verified_seq"] == good
    text_out = s.cli("verify").stdout
    assert f"the chain: verified only up to seq {good}" in text_out
    entry = s.cli("verify-entry", forged)
    assert entry.exit_code == 1
    assert "broken at or before it" in entry.stdout
    kept = s.cli("verify-entry", first_rows[good - 1]["hash"])
    assert kept.exit_code == 0, kept.output


def test_an_unwritable_anchor_is_one_line_and_reconciled(tmp_path: Path) -> None:
    """Item E (anchor part): an anchor file that cannot be written stops `checkpoint` with
    one line and records nothing, so the next `checkpoint` does not say "already
    anchored"; once it is writable the checkpoint lands in both places."""
    s = Store(
        tmp_path,
        f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}",
        {"audit": {"checkpoint_every": 1000, "anchor_file": "var/anchor/anchor.jsonl"}},
    )
    assert s.cli("once").exit_code == 0  # the monitor listed, signed at once; its cycle
    assert s.cli("once").exit_code == 0  # not due: 60 s have not passed
    anchor_path = tmp_path / "var" / "anchor" / "anchor.jsonl"
    kept = anchor_path.read_bytes()
    anchor_path.unlink()
    anchor_path.mkdir()  # a folder where the file was: cannot be appended to (even by root)
    failed = s.cli("checkpoint")
    assert failed.exit_code == 2
    assert no_traceback(failed)
    assert "cannot append to the anchor file" in failed.output
    assert len(failed.output.strip().splitlines()) == 1
    again = s.cli("checkpoint")
    assert "already anchored" not in again.output
    assert again.exit_code == 2
    anchor_path.rmdir()
    anchor_path.write_bytes(kept)
    done = s.cli("checkpoint")
    assert done.exit_code == 0
    assert "checkpoint at seq" in done.stdout
    assert s.verify()[:2] == (0, [])
    # the monitor listed by the first `once` (signed at once) and this one
    assert s.verify()[2]["anchor_file_checkpoints"] == 2


def test_a_checkpoint_the_anchor_missed_is_appended_by_the_next_checkpoint(tmp_path: Path) -> None:
    """A checkpoint recorded in the database whose anchor line never landed (a crash after
    the commit) is appended by the next `checkpoint`, not reported as already anchored."""
    s = Store(
        tmp_path,
        f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}",
        {"audit": {"checkpoint_every": 1000}},
    )
    # `once` lists the monitor and signs that at once (its cycle's checkpoint is not due)
    assert s.cli("once").exit_code == 0
    s.anchor.write_text("")  # the line a crash after the commit lost
    done = s.cli("checkpoint")
    assert "appended 1 recorded checkpoints the anchor file lacked" in done.stdout
    assert s.verify()[:2] == (0, [])


def grown(backend_url: str, tmp_path: Path, every: int = 5, head: int = 14) -> Store:
    """A store with checkpoints every ``every`` events, grown to at least ``head`` events."""
    s = Store(
        tmp_path, backend_url, {"simulation": {"drift": 1.0}, "audit": {"checkpoint_every": every}}
    )
    assert s.cli("once").exit_code == 0
    while s.verify()[2]["head_seq"] < head:
        assert s.cli("once").exit_code == 0
    return s


def test_checkpoints_removed_with_the_anchor_are_not_silence(
    backend_url: str, tmp_path: Path
) -> None:
    """Item C as filed: anchor file, checkpoint rows and the events after seq 7 deleted
    (checkpoint_every 5, a signing key present) said "intact, anchored up to seq 0"."""
    s = grown(backend_url, tmp_path)
    s.anchor.unlink()
    assert s.write("DELETE FROM checkpoints")
    assert s.write("DELETE FROM audit_events WHERE seq > 7")
    gone = s.cli("verify")
    assert gone.exit_code == 2
    assert "cannot verify" in gone.output
    assert "anchor file" in gone.output
    assert len(gone.output.strip().splitlines()) == 1
    s.anchor.write_text("")  # an empty anchor file put back in its place
    code, found, doc = s.verify()
    assert code == 1
    assert (5, "missing_checkpoint") in found
    assert doc["last_verified_seq"] == 0
    entry = s.cli("verify-entry", s.rows()[2]["hash"])
    assert entry.exit_code == 1
    (tmp_path / "var" / "keys" / "checkpoint_ed25519.pub").unlink()  # hide the key too
    code, found, _ = s.verify()
    assert code == 1
    # the events deleted above seq 7 recorded rows (and later states of rows) that no
    # remaining event accounts for: the row check reports those rows too
    assert [a for a in found if not a[1].startswith("row_")] == [(5, "missing_checkpoint")]
    assert {kind for _, kind in found} - {"missing_checkpoint"} <= {
        "row_unrecorded",
        "row_modified",
    }


def test_a_short_chain_without_checkpoints_is_still_intact(tmp_path: Path) -> None:
    """The rule needs a chain past the first interval: a young chain has no checkpoint yet."""
    s = Store(
        tmp_path,
        f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}",
        {"audit": {"checkpoint_every": 50}},
    )
    for _ in range(3):
        assert s.cli("once").exit_code == 0
    assert s.verify()[:2] == (0, [])


def test_a_lost_database_does_not_silently_start_a_new_chain(
    backend_url: str, tmp_path: Path
) -> None:
    """After the database is lost, `once` and `run` refuse to start a new chain beside the
    old chain's anchor (exit 2, one line); `--new-chain` sets the old anchor aside, records
    it as the new chain's first event, and the new chain verifies."""
    s = grown(backend_url, tmp_path, head=8)
    old_anchor = s.anchor.read_bytes()
    if backend_url.startswith("sqlite"):
        db = tmp_path / "var" / "fairlens.db"
        for path in (db, db.with_name("fairlens.db-wal"), db.with_name("fairlens.db-shm")):
            path.unlink(missing_ok=True)
        advice = s.cli("verify")
        assert advice.exit_code == 2
        assert "restore it from a backup" in advice.output
    else:
        assert s.write(
            "TRUNCATE audit_events, checkpoints, alerts, source_files, "
            "group_results, reading_rollups, readings, runs, monitors"
        )
    for args in (("once",), ("run", "--cycles", "1")):
        refused = s.cli(*args)
        assert refused.exit_code == 2, refused.output
        assert no_traceback(refused)
        assert "start a new anchor file with --new-chain, recorded" in refused.output
        assert len(refused.output.strip().splitlines()) == 1
    assert s.anchor.read_bytes() == old_anchor
    started = s.cli("once", "--new-chain")
    assert started.exit_code == 0, started.output
    kept = list(s.anchor.parent.glob("anchor.jsonl.old-chain-*"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == old_anchor
    first = json.loads(s.cli("audit", "--json", "--last", "100").stdout)[0]
    assert first["event_type"] == "chain_started"
    assert first["details"]["previous_anchor_file"] == kept[0].name
    assert s.verify()[:2] == (0, [])
    assert s.cli("once").exit_code == 0  # the new chain goes on without the flag


def test_migration_0013_round_trips_and_keeps_an_old_edit(store: Store) -> None:
    """0013 down and up on a populated database of either back end: the payload column comes
    back byte for byte, the chain still verifies, the auditors' view still reads the payload,
    and an edit of the old payload column made at 0012 stays `modified` after the upgrade."""
    from alembic import command

    from fairlens_monitor.store.db import make_engine
    from fairlens_monitor.store.schema import alembic_config, upgrade

    def view_payloads() -> list[Any]:
        found = query_url(store.url, "SELECT payload FROM v_audit_trail ORDER BY seq")
        return [p if isinstance(p, dict) else json.loads(p) for (p,) in found]

    before = view_payloads()
    command.downgrade(alembic_config(store.url), "0012")
    old = query_url(store.url, "SELECT CAST(payload AS TEXT), canonical FROM audit_events")
    for payload, canonical in old:  # the 0012 code stored the hashed payload text itself
        assert json.loads(payload) == json.loads(canonical)["payload"]
        assert f'"payload":{payload},' in canonical
    engine = make_engine(store.url)
    upgrade(engine, store.url)
    engine.dispose()
    assert store.verify()[:2] == (0, [])
    assert view_payloads() == before
    command.downgrade(alembic_config(store.url), "0012")
    assert store.write(
        "UPDATE audit_events SET payload = CAST(:p AS JSON) WHERE seq = 3", p='{"dir": 0.99}'
    )
    engine = make_engine(store.url)
    upgrade(engine, store.url)
    engine.dispose()
    code, found, _ = store.verify()
    assert (code, found) == (1, [(3, "modified")])
    assert view_payloads() == before  # what every reader sees is the hashed payload


def test_a_chain_of_which_nothing_verifies_says_so_not_up_to_seq_minus_one() -> None:
    """The verdict line for a walk that verified no event (e.g. its first record damaged)."""
    import dataclasses

    from fairlens_monitor.audit.verify import Anomaly, ChainReport
    from fairlens_monitor.cli.render import tampered_lines

    report = ChainReport(
        count=3,
        head_seq=3,
        head_hash="ab" * 32,
        last_verified_seq=-1,
        anomalies=[Anomaly(1, "modified", "hash does not match")],
    )
    head = tampered_lines(report)[0]
    assert "the chain: no event verified" in head
    assert "-1" not in head
    later = dataclasses.replace(report, last_verified_seq=1)
    assert "the chain: verified only up to seq 1" in tampered_lines(later)[0]
