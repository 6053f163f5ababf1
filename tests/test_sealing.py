"""No silent tail loss (issue 14, item 3): checkpoints signed in the cycle's transaction.

A cycle that opens or resolves an alert, or that ends ``audit.checkpoint_seconds`` after
the newest checkpoint, signs the head in the same transaction as its rows; checkpoints are
chained, so `verify` checks one signature for the newest and a hash for the rest.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import create_engine, text

from fairlens_monitor.audit import checkpoints
from fairlens_monitor.audit.checkpoints import NO_PREVIOUS, claims, digest, sign_checkpoint
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.errors import ConfigError
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.ops.cycle import run_cycle
from fairlens_monitor.ops.sealing import Sealer, seal_due
from fairlens_monitor.ops.verification import verify_store
from tests.conftest import query_url
from tests.test_verify_holes import Store

H = "ab" * 32


def cp_at(seq: int, ts: str) -> checkpoints.Checkpoint:
    return checkpoints.Checkpoint(seq, H, ts, "k", "s", NO_PREVIOUS)


@pytest.mark.parametrize(
    ("last", "head", "ts", "transition", "due"),
    [
        (None, 1, "2026-01-01T00:00:00.000000Z", False, True),  # the first checkpoint
        ((5, "2026-01-01T00:00:00.000000Z"), 6, "2026-01-01T00:00:59.999999Z", False, False),
        ((5, "2026-01-01T00:00:00.000000Z"), 6, "2026-01-01T00:01:00.000000Z", False, True),
        ((5, "2026-01-01T00:00:00.000000Z"), 6, "2026-01-01T00:00:01.000000Z", True, True),
        ((5, "2026-01-01T00:00:00.000000Z"), 55, "2026-01-01T00:00:01.000000Z", False, True),
        ((6, "2026-01-01T00:00:00.000000Z"), 6, "2026-01-01T01:00:00.000000Z", True, False),
        ((5, "garbage"), 6, "2026-01-01T00:00:01.000000Z", False, True),
    ],
)
def test_the_sealing_policy(
    last: tuple[int, str] | None, head: int, ts: str, transition: bool, due: bool
) -> None:
    assert (
        seal_due(
            last=None if last is None else cp_at(*last),
            head_seq=head,
            head_ts=ts,
            transition=transition,
            every=50,
            seconds=60.0,
        )
        is due
    )


def test_chained_checkpoints_cost_one_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    key = Ed25519PrivateKey.generate()
    made: list[checkpoints.Checkpoint] = []
    for seq in range(1, 201):
        prev = NO_PREVIOUS if not made else digest(made[-1])
        made.append(sign_checkpoint(key, seq=seq, head_hash=H, ts=f"t{seq:04d}", prev=prev))
    calls: list[int] = []
    real = checkpoints.verify_checkpoint

    def counted(k: Ed25519PublicKey, cp: checkpoints.Checkpoint) -> bool:
        calls.append(cp.seq)
        return real(k, cp)

    monkeypatch.setattr(checkpoints, "verify_checkpoint", counted)
    assert all(c.signature_ok for c in claims(key.public_key(), made, "anchor"))
    assert calls == [200]
    # an edited checkpoint in the middle is not vouched for by its successor's hash
    calls.clear()
    edited = list(made)
    edited[99] = checkpoints.Checkpoint(
        100, "cd" * 32, made[99].ts, made[99].key_id, made[99].signature, made[99].prev
    )
    found = claims(key.public_key(), edited, "anchor")
    assert [c.seq for c in found if not c.signature_ok] == [100]
    assert calls == [200, 100, 99]  # the chain below the break is checked from a signature
    # a forged newest line (no valid signature) vouches for nothing
    forged = [*made, checkpoints.Checkpoint(201, H, "t", "k", made[0].signature, digest(made[-1]))]
    assert [c.seq for c in claims(key.public_key(), forged, "a") if not c.signature_ok] == [201]


def test_checkpoint_seconds_is_validated(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    for bad in (0, -1, "soon"):
        with pytest.raises(ConfigError, match="checkpoint_seconds"):
            load_settings(write_config({"audit": {"checkpoint_seconds": bad}}), env={})
    assert load_settings(write_config({}), env={}).audit.checkpoint_seconds == 60.0


def test_an_alert_commits_with_its_checkpoint_and_cannot_be_dropped(
    backend_url: str, tmp_path: Path
) -> None:
    """The cycle that raises an alert signs a checkpoint of its own head in its own
    transaction: deleting that cycle's events (the tail) is `truncated`, exit 1."""
    s = Store(
        tmp_path,
        backend_url,
        {
            "simulation": {
                "drift": {"mode": "ramp", "hold": 2, "start": 1.0, "end": 1.0, "cycles": 2}
            },
            "audit": {"checkpoint_every": 1000, "checkpoint_seconds": 3600},
        },
    )
    for _ in range(5):
        assert s.cli("once").exit_code == 0
    raised = query_url(
        backend_url, "SELECT seq FROM audit_events WHERE event_type = 'alert_raised'"
    )
    assert raised, "the step drift should raise an alert"
    (alert_seq,) = raised[0]
    signed = {seq for (seq,) in query_url(backend_url, "SELECT seq FROM checkpoints")}
    assert alert_seq in signed  # the alert is the last event of its cycle
    assert s.anchor.read_text().count(f'"seq":{alert_seq},') == 1
    assert s.verify()[:2] == (0, [])
    assert s.write(f"DELETE FROM audit_events WHERE seq >= {alert_seq - 1}")
    assert s.write(f"DELETE FROM checkpoints WHERE seq >= {alert_seq - 1}")
    code, found, _ = s.verify()
    assert code == 1
    assert (alert_seq - 1, "truncated") in found


def test_checkpoint_seconds_bounds_the_unprotected_window(backend_url: str, tmp_path: Path) -> None:
    """With cycles 10 s apart and checkpoint_seconds 60, a checkpoint is signed at least
    every 60 s of cycle time: never more than 6 cycles' events unprotected."""
    s = Store(
        tmp_path, backend_url, {"audit": {"checkpoint_every": 1000, "checkpoint_seconds": 60}}
    )
    settings = load_settings(s.config, env={})
    repo = open_repository(settings)
    start, ticks = datetime(2026, 1, 1, tzinfo=UTC), itertools.count()
    clock = lambda: start + timedelta(seconds=5 * next(ticks))  # noqa: E731 - 2 calls/cycle
    try:
        cipher, key = open_cipher(settings, repo), open_signing_key(settings, repo)
        sealer = Sealer.of(settings, key)
        for _ in range(30):
            run_cycle(settings, repo, cipher, clock=clock, actor="cli", sealer=sealer)
        report = verify_store(
            repo,
            anchor_file=settings.audit.anchor_file,
            public_key=settings.keys.public_key,
        ).chain
    finally:
        repo.engine.dispose()
    times = [
        datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
        for (ts,) in query_url(backend_url, "SELECT ts FROM checkpoints ORDER BY id")
    ]
    assert len(times) >= 4
    assert all(b - a <= timedelta(seconds=70) for a, b in itertools.pairwise(times))
    assert report.intact
    assert report.head_seq - report.anchored_seq <= 6
    engine = create_engine(backend_url)
    try:
        with engine.connect() as conn:
            prevs = conn.execute(text("SELECT prev FROM checkpoints ORDER BY id")).all()
    finally:
        engine.dispose()
    assert prevs[0][0] == NO_PREVIOUS
    assert all(p is not None for (p,) in prevs)


@pytest.mark.parametrize(
    "ts", ["2026-12-02T06:00:00.000000Z", 'odd"quote', "tab\there", "ünï", "back\\slash", ""]
)
def test_the_fast_checkpoint_message_is_rfc8785(ts: str) -> None:
    import rfc8785

    fields: dict[str, int | str] = {
        "seq": 12,
        "head_hash": H,
        "ts": ts,
        "key_id": "0123abcd",
        "prev": NO_PREVIOUS,
    }
    assert checkpoints.message(12, H, ts, "0123abcd", NO_PREVIOUS) == (
        checkpoints.DOMAIN_TAG_V2 + rfc8785.dumps(fields)
    )
