"""Events written outside a cycle are sealed too (issue 14, item 3: no silent tail loss).

A daemon's start, stop and takeover, a rule change, a key rotation, retention: each commits
with a signed checkpoint of its own head (``Sealer.attach``), so deleting it from the tail is
`truncated`. Failed and missed cycles and backups follow the cycle policy
(``checkpoint_every`` / ``checkpoint_seconds``), so a daemon's routine cycles sign no more
than before, and a backup restored at once loses no anchored history.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.ops.app import open_repository, open_signing_key
from fairlens_monitor.ops.daemon import run_daemon
from fairlens_monitor.ops.sealing import ROUTINE, Sealer
from fairlens_monitor.store.cyclewrite import append, serialise
from fairlens_monitor.store.repository import Repository
from tests.conftest import query_url
from tests.test_verify_holes import Store

RARELY = {"audit": {"checkpoint_every": 1000, "checkpoint_seconds": 3600}}


def checkpoint_seqs(s: Store) -> set[int]:
    return {int(seq) for (seq,) in query_url(s.url, "SELECT seq FROM checkpoints")}


def head(s: Store) -> tuple[int, str]:
    seq, kind = query_url(
        s.url, "SELECT seq, event_type FROM audit_events ORDER BY seq DESC LIMIT 1"
    )[0]
    return int(seq), str(kind)


def test_a_tail_event_outside_a_cycle_cannot_be_dropped(backend_url: str, tmp_path: Path) -> None:
    s = Store(tmp_path, backend_url, RARELY)
    assert s.cli("once").exit_code == 0
    assert s.cli("once").exit_code == 0
    result = s.cli("keys", "rotate")
    assert result.exit_code == 0, result.output
    seq, kind = head(s)
    assert kind == "keys_rotated"
    assert seq in checkpoint_seqs(s)  # committed with its own signed checkpoint
    assert f'"seq":{seq},' in s.anchor.read_text()  # and anchored right after
    assert s.verify()[:2] == (0, [])
    # Someone with SQL rights (but not the anchor file) drops the event and its checkpoint.
    assert s.write(f"DELETE FROM audit_events WHERE seq = {seq}")
    assert s.write(f"DELETE FROM checkpoints WHERE seq = {seq}")
    code, found, _ = s.verify()
    assert code == 1
    assert (seq, "truncated") in found


def test_a_daemons_own_events_are_signed_and_its_cycles_follow_the_policy(
    backend_url: str, tmp_path: Path
) -> None:
    s = Store(tmp_path, backend_url, merge_schedule(RARELY))
    run_daemon(
        load_settings(s.config, env={}), emit=lambda _line: None, max_cycles=1, handle_signals=False
    )
    s = Store(tmp_path, backend_url, {**merge_schedule(RARELY), "thresholds": {"dir": 0.75}})
    run_daemon(
        load_settings(s.config, env={}), emit=lambda _line: None, max_cycles=2, handle_signals=False
    )  # new rules: monitor_changed
    events = [
        (int(seq), str(kind))
        for seq, kind in query_url(s.url, "SELECT seq, event_type FROM audit_events ORDER BY seq")
    ]
    own = {seq for seq, kind in events if kind not in ROUTINE}
    kinds = {kind for _, kind in events}
    assert {"daemon_started", "daemon_stopped", "monitor_changed"} <= kinds
    signed = checkpoint_seqs(s)
    assert own <= signed, sorted(own - signed)
    # Cycles an hour apart in policy terms: none of the three signed its own checkpoint.
    cycles = {seq for seq, kind in events if kind == "cycle_completed"}
    assert len(cycles) == 3
    assert not cycles & signed
    assert s.verify()[:2] == (0, [])


def append_then_fail(repo: Repository, ts: str) -> None:
    with repo.sessions.begin() as session:
        serialise(session)
        append(session, "daemon_leading", "daemon", {}, ts)
        raise RuntimeError("rolled back")


def merge_schedule(overrides: Mapping[str, object]) -> dict[str, object]:
    return {**overrides, "schedule": {"interval_seconds": 0.05}}


def test_missed_cycles_are_sealed_by_the_policy_not_at_once(
    backend_url: str, tmp_path: Path
) -> None:
    """A routine event right after a checkpoint waits for the policy; one written
    ``checkpoint_seconds`` later is signed in its own transaction. A rolled-back write
    signs nothing."""
    s = Store(
        tmp_path, backend_url, {"audit": {"checkpoint_every": 1000, "checkpoint_seconds": 60}}
    )
    settings = load_settings(s.config, env={})
    repo = open_repository(settings)
    try:
        Sealer.of(settings, open_signing_key(settings, repo)).attach(repo)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        first = repo.append_event("config_changed", "cli", {"note": "x"}, ts=rfc3339(start))
        assert checkpoint_seqs(s) == {first.seq}
        missed = repo.append_event(
            "cycle_missed", "daemon", {"reason": "r"}, ts=rfc3339(start + timedelta(seconds=30))
        )
        assert checkpoint_seqs(s) == {first.seq}  # inside the documented window
        later = repo.append_event(
            "cycle_missed", "daemon", {"reason": "r"}, ts=rfc3339(start + timedelta(seconds=61))
        )
        assert checkpoint_seqs(s) == {first.seq, later.seq}
        assert missed.seq < later.seq
        with pytest.raises(RuntimeError, match="rolled back"):
            append_then_fail(repo, rfc3339(start))
        assert checkpoint_seqs(s) == {first.seq, later.seq}
        assert repo.head()[0] == later.seq
    finally:
        repo.engine.dispose()
    assert s.anchor.read_text().count("\n") == 2
    assert s.verify()[:2] == (0, [])
