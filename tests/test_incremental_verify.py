"""Incremental verification (``verify --incremental``, ops.incremental): what it walks, what
it catches after its start checkpoint, and that the full walk still catches what lies before.

Each test builds a real chain (cycles and signed checkpoints through the library, on SQLite
and PostgreSQL), tampers with the database as an insider would, and runs the real command.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fairlens_monitor.audit.chain import build_record, rfc3339
from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.ops.audit_trail import write_checkpoint
from fairlens_monitor.ops.cycle import run_cycle
from fairlens_monitor.ops.incremental import FULL_WALK_EVERY, WalkState
from fairlens_monitor.ops.retention import apply_retention
from tests.conftest import merge, query_url, tamper

NOW = datetime.now(UTC)
RUN_COLUMNS = (
    "id, cycle_index, actor, scheduled_for, started_at, finished_at, status, error, "
    "config_hash, code_version"
)


def ticking(start: datetime) -> Callable[[], datetime]:
    moments = iter(start + timedelta(seconds=i) for i in range(10_000))
    return lambda: next(moments)


class Chain:
    """A chain with two signed checkpoints (``first`` and ``second``) and events after them."""

    def __init__(self, config: Path, url: str) -> None:
        self.config, self.url = config, url
        self.first = self.second = 0

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config), *args])

    def verify(self, *args: str) -> tuple[int, dict[str, Any]]:
        result = self.cli("verify", "--json", *args)
        assert result.exit_code in (0, 1), result.output
        return result.exit_code, json.loads(result.stdout)

    def grow(self, cycles: int, start: datetime, checkpoint: bool) -> int:
        """Run cycles (then sign the head); return the head seq."""
        settings = load_settings(self.config, env={})
        repo = open_repository(settings)
        try:
            cipher, signer = open_cipher(settings, repo), open_signing_key(settings, repo)
            clock = ticking(start)
            for _ in range(cycles):
                run_cycle(settings, repo, cipher, clock=clock, actor="cli")
            if checkpoint:
                write_checkpoint(
                    repo, signer, anchor_file=settings.audit.anchor_file, ts=rfc3339(clock())
                )
            return repo.head()[0]
        finally:
            repo.engine.dispose()

    def head(self) -> int:
        return int(query_url(self.url, "SELECT max(seq) FROM audit_events")[0][0])


def kinds(report: dict[str, Any]) -> list[tuple[Any, str]]:
    return [(a["seq"], a["kind"]) for a in report["anomalies"]]


@pytest.fixture
def chain(write_config: Callable[..., Path], backend_url: str) -> Chain:
    config = write_config(
        merge(
            {"database": {"url": backend_url}},
            {"simulation": {"drift": 1.0}, "audit": {"checkpoint_every": 1000}},
        )
    )
    c = Chain(config, backend_url)
    c.first = c.grow(4, NOW - timedelta(hours=2), checkpoint=True)
    c.second = c.grow(3, NOW - timedelta(hours=1), checkpoint=True)
    c.grow(2, NOW - timedelta(minutes=5), checkpoint=False)  # not yet anchored
    return c


def test_incremental_walks_from_the_newest_signed_checkpoint(chain: Chain) -> None:
    code, full = chain.verify()
    assert code == 0
    assert (full["walk"], full["from_seq"], full["checkpoint_seq"]) == ("full", 1, None)
    assert full["last_full_walk"] == full["walked_at"]
    head = chain.head()
    code, inc = chain.verify("--incremental")
    assert code == 0, inc
    assert (inc["walk"], inc["from_seq"], inc["checkpoint_seq"]) == (
        "incremental",
        chain.second,
        chain.second,
    )
    assert inc["count"] == head - chain.second + 1  # the checkpoint's record and the rest
    assert (inc["head_seq"], inc["last_verified_seq"]) == (head, head)
    assert inc["anchored_seq"] == chain.second
    assert inc["last_full_walk"] is None  # a command remembers nothing between runs
    # --verified-to: the newest checkpoint at or below it, so nothing goes unwalked
    code, older = chain.verify("--incremental", "--verified-to", str(chain.second - 1))
    assert (code, older["checkpoint_seq"], older["count"]) == (
        0,
        chain.first,
        head - chain.first + 1,
    )
    text = chain.cli("verify", "--incremental")
    assert f"events from the signed checkpoint at seq {chain.second} on" in text.stdout


def test_without_a_usable_checkpoint_the_walk_is_full(chain: Chain) -> None:
    code, report = chain.verify("--incremental", "--verified-to", "1")
    assert (code, report["walk"], report["from_seq"]) == (0, "full", 1)
    assert "no signed checkpoint at or below" in report["walk_note"]
    assert report["last_full_walk"] is not None
    assert chain.cli("verify", "--verified-to", "3").exit_code == 2  # needs --incremental


def test_tampering_before_the_checkpoint_is_caught_by_the_full_walk(chain: Chain) -> None:
    """An edit that leaves the stored hashes alone, before the start checkpoint: beyond what
    an incremental walk reads, and exactly what the daily/on-demand full walk is for."""
    tamper(chain.url, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    first_reading = query_url(chain.url, "SELECT min(id) FROM readings")[0][0]
    tamper(chain.url, f"UPDATE readings SET dir = 0.5 WHERE id = {first_reading}")
    assert chain.verify("--incremental")[0] == 0
    code, full = chain.verify()
    assert code == 1
    assert (2, "modified") in kinds(full)
    assert ("readings", first_reading) in [(a["table"], a["id"]) for a in full["anomalies"]]


def test_tampering_after_the_checkpoint_is_caught_incrementally(chain: Chain) -> None:
    tamper(chain.url, f"UPDATE audit_events SET actor = 'mallory' WHERE seq = {chain.second + 1}")
    code, report = chain.verify("--incremental")
    assert (code, report["walk"]) == (1, "incremental")
    assert kinds(report)[0] == (chain.second + 1, "modified")
    assert report["first_broken_seq"] == chain.second + 1


def test_rows_written_after_the_checkpoint_are_checked(chain: Chain) -> None:
    newest = query_url(chain.url, "SELECT max(id) FROM readings")[0][0]
    tamper(chain.url, f"UPDATE readings SET dir = 0.5 WHERE id = {newest}")
    code, report = chain.verify("--incremental")
    assert code == 1
    assert [(a["kind"], a["table"], a["id"]) for a in report["anomalies"]] == [
        ("row_modified", "readings", newest)
    ]


def test_a_row_deleted_or_added_after_the_checkpoint_is_caught(chain: Chain) -> None:
    newest_group = query_url(chain.url, "SELECT max(id) FROM group_results")[0][0]
    tamper(chain.url, f"DELETE FROM group_results WHERE id = {newest_group}")
    run = query_url(chain.url, "SELECT max(id) FROM runs")[0][0]
    tamper(
        chain.url,
        f"INSERT INTO runs ({RUN_COLUMNS}) SELECT {run + 100}, cycle_index + 100, "
        f"{RUN_COLUMNS.split(', ', 2)[2]} FROM runs WHERE id = {run}",
    )
    code, report = chain.verify("--incremental")
    assert code == 1
    found = {(a["kind"], a["table"], a["id"]) for a in report["anomalies"]}
    assert ("row_missing", "group_results", newest_group) in found
    assert ("row_unrecorded", "runs", run + 100) in found


def test_a_rewritten_record_at_the_checkpoint_is_caught_incrementally(chain: Chain) -> None:
    """Rewritten and rehashed (with the next link mended too): the checkpoint's claim no
    longer matches; rewritten without a new hash: the record does not hash to its hash."""
    rows = query_url(
        chain.url,
        "SELECT seq, ts, event_type, actor, canonical, prev_hash FROM audit_events "
        f"WHERE seq = {chain.second}",
    )
    seq, ts, event_type, _actor, canonical, prev_hash = rows[0]
    payload = json.loads(canonical)["payload"]  # stored once, in the hashed text (0013)
    rec = build_record(
        seq=seq, ts=ts, event_type=event_type, actor="mallory", payload=payload, prev_hash=prev_hash
    )
    canonical = rec.canonical.replace(":", "\\:")  # not a bind parameter
    tamper(
        chain.url,
        f"UPDATE audit_events SET actor = 'mallory', canonical = '{canonical}', "
        f"hash = '{rec.hash}' WHERE seq = {seq}",
    )
    tamper(chain.url, f"UPDATE audit_events SET prev_hash = '{rec.hash}' WHERE seq = {seq + 1}")
    code, report = chain.verify("--incremental")
    assert (code, report["walk"], report["checkpoint_seq"]) == (1, "incremental", seq)
    assert (seq, "bad_checkpoint") in kinds(report)
    assert report["last_verified_seq"] < seq


def test_a_record_at_the_checkpoint_whose_hash_alone_changed_is_caught(chain: Chain) -> None:
    tamper(chain.url, f"UPDATE audit_events SET hash = '{'ab' * 32}' WHERE seq = {chain.second}")
    code, report = chain.verify("--incremental")
    assert code == 1
    assert (chain.second, "modified") in kinds(report)


def test_a_deleted_tail_is_caught_incrementally(chain: Chain) -> None:
    """The tail deleted down past the newest checkpoint, and that checkpoint's database row
    with it: the anchor file still names it, so the walk reports the truncation."""
    tamper(chain.url, f"DELETE FROM audit_events WHERE seq > {chain.first + 1}")
    tamper(
        chain.url,
        "ALTER TABLE checkpoints DISABLE TRIGGER checkpoints_append_only"
        if chain.url.startswith("postgresql")
        else "DROP TRIGGER checkpoints_no_delete",
    )
    tamper(chain.url, f"DELETE FROM checkpoints WHERE seq > {chain.first}")
    for args in (("--incremental",), ("--incremental", "--verified-to", str(chain.second + 2))):
        code, report = chain.verify(*args)
        assert code == 1
        assert (chain.first + 2, "truncated") in kinds(report)


def test_incremental_after_a_retention_prune(
    write_config: Callable[..., Path], backend_url: str
) -> None:
    config = write_config(
        merge(
            {"database": {"url": backend_url}},
            {"simulation": {"drift": 1.0}, "alerts": {"close_after": 1}},
        )
    )
    c = Chain(config, backend_url)
    c.grow(4, NOW - timedelta(days=800), checkpoint=True)
    tamper(backend_url, "UPDATE alerts SET state = 'resolved'")  # resolved long ago (as in
    # test_retention: the alert's row then differs from its digest, fixed by the prune below)
    c.grow(2, NOW - timedelta(minutes=5), checkpoint=True)
    settings = load_settings(config, env={})
    repo = open_repository(settings)
    try:
        apply_retention(settings.retention, repo, open_signing_key(settings, repo), now=NOW)
    finally:
        repo.engine.dispose()
    pruned_from = int(query_url(backend_url, "SELECT min(seq) FROM audit_events")[0][0])
    assert pruned_from > 1
    c.grow(1, NOW - timedelta(minutes=1), checkpoint=True)
    assert c.verify()[0] == 0
    code, report = c.verify("--incremental")
    assert (code, report["walk"]) == (0, "incremental")
    assert report["checkpoint_seq"] >= pruned_from
    # a checkpoint the prune left behind cannot start a walk: the walk is full, and intact
    code, report = c.verify("--incremental", "--verified-to", str(pruned_from - 1))
    assert (code, report["walk"], report["from_seq"]) == (0, "full", pruned_from)
    head = c.head()
    tamper(backend_url, f"UPDATE audit_events SET actor = 'mallory' WHERE seq = {head}")
    assert kinds(c.verify("--incremental")[1]) == [(head, "modified")]


def test_incremental_after_a_restore(write_config: Callable[..., Path], tmp_path: Path) -> None:
    """The checkpoints a signed restore set aside (history that is gone) never start a walk,
    even when the seq verified before the restore is above them."""
    config = write_config({"simulation": {"drift": 1.0}, "audit": {"checkpoint_every": 2}})
    c = Chain(config, f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}")
    for _ in range(3):
        assert c.cli("once").exit_code == 0
    assert c.cli("backup", str(tmp_path / "b.db")).exit_code == 0
    for _ in range(3):
        assert c.cli("once").exit_code == 0
    before = c.verify()[1]["head_seq"]
    for path in tmp_path.joinpath("var").glob("fairlens.db*"):
        if path.name != "fairlens.db.lock":
            path.unlink()
    assert c.cli("restore", str(tmp_path / "b.db"), "--accept-loss").exit_code == 0
    code, report = c.verify("--incremental", "--verified-to", str(before))
    assert (code, report["walk"]) == (0, "incremental"), report
    assert report["superseded_checkpoints"] >= 1
    assert [w["kind"] for w in report["warnings"]][:1] == ["restored_loss"]
    assert c.cli("once").exit_code == 0
    head = c.head()
    code, report = c.verify("--incremental", "--verified-to", str(head))
    assert (code, report["walk"]) == (0, "incremental")
    tamper(c.url, f"UPDATE audit_events SET actor = 'mallory' WHERE seq = {head}")
    assert c.verify("--incremental", "--verified-to", str(head))[0] == 1


def test_walk_state_asks_for_a_full_walk_daily_and_after_any_anomaly() -> None:
    state, now = WalkState(), datetime(2026, 1, 1, tzinfo=UTC)
    assert state.full_due(now)  # never walked whole
    state.record("full", True, 100, now)
    assert not state.full_due(now + timedelta(minutes=1))
    state.record("incremental", True, 160, now + timedelta(minutes=1))
    assert (state.last_full, state.verified_to) == (now, 160)
    assert not state.full_due(now + FULL_WALK_EVERY - timedelta(seconds=1))
    assert state.full_due(now + FULL_WALK_EVERY)  # once a day
    state.record("incremental", False, 120, now + timedelta(minutes=2))
    assert state.full_due(now + timedelta(minutes=3))  # tampering stays reported in full


def test_an_incremental_walk_reads_through_indexes(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Every statement an incremental walk runs on the growing tables is an index search
    (SQLite's plan): no SCAN of audit_events or of a row table, whatever the history."""
    import sqlite3 as stdlib_sqlite

    from sqlalchemy import event

    from fairlens_monitor.ops.incremental import verify_incremental

    url = f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}"
    config = write_config({"simulation": {"drift": 1.0}, "audit": {"checkpoint_every": 1000}})
    c = Chain(config, url)
    c.grow(3, NOW - timedelta(hours=1), checkpoint=True)
    c.grow(2, NOW - timedelta(minutes=5), checkpoint=False)
    settings = load_settings(config, env={})
    repo = open_repository(settings, readonly=True)
    statements: list[str] = []

    @event.listens_for(repo.engine, "connect")
    def _trace(dbapi_connection: stdlib_sqlite.Connection, _record: object) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    repo.engine.dispose()  # new connections, traced
    try:
        trail = verify_incremental(
            repo, anchor_file=settings.audit.anchor_file, public_key=settings.keys.public_key
        )
    finally:
        repo.engine.dispose()
    assert (trail.walk, trail.chain.intact) == ("incremental", True)
    growing = ("audit_events", "runs", "readings", "group_results", "alerts", "source_files")
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert any("audit_events" in s for s in reads)
    with stdlib_sqlite.connect(tmp_path / "var" / "fairlens.db") as conn:
        for sql in reads:
            plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
            scans = [t for t in growing if f"SCAN {t}" in plan and f"SCAN {t} USING" not in plan]
            assert not scans, (sql, plan)
            if "FROM audit_events" in sql and "seq >" in sql:  # a walk from a seq on
                assert "(seq>?)" in plan, (sql, plan)  # found by seq, not by event type
