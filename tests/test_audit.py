"""The hash chain: golden vectors, and every kind of tampering is found and located."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from fairlens_monitor.audit.chain import GENESIS_HASH, AuditRecord, build_record, json_safe, rfc3339
from fairlens_monitor.audit.checkpoints import (
    claims,
    parse_line,
    sign_checkpoint,
    verify_checkpoint,
)
from fairlens_monitor.audit.verify import AnchorClaim, ChainReport, verify_chain


def verify_records(
    records: Sequence[AuditRecord], anchors: Iterable[AnchorClaim] = ()
) -> ChainReport:
    """Verify an in-memory list of records (storage order), as verify_chain does a table."""
    return verify_chain(records, sorted(records, key=lambda r: r.seq), anchors)


def chain(n: int) -> list[AuditRecord]:
    records, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        rec = build_record(
            seq=seq,
            ts=f"2026-01-01T00:00:{seq:02d}.000000Z",
            event_type="cycle_completed",
            actor="daemon",
            payload={"run_id": seq, "dir": 0.5 + seq / 100},
            prev_hash=prev,
        )
        records.append(rec)
        prev = rec.hash
    return records


def test_golden_vector() -> None:
    """Hand-written canonical JSON and hash: an rfc8785 upgrade can never change them silently."""
    rec = build_record(
        seq=1,
        ts="2026-01-01T00:00:00.000000Z",
        event_type="test",
        actor="unit",
        payload={"b": 1, "a": "x", "f": 0.1, "n": None},
        prev_hash=GENESIS_HASH,
    )
    expected = (
        '{"actor":"unit","event_type":"test","payload":{"a":"x","b":1,"f":0.1,'
        '"n":null},"seq":1,"ts":"2026-01-01T00:00:00.000000Z"}'
    )
    assert rec.canonical == expected
    digest = hashlib.sha256(b"fairlens-audit-v1\x00" + bytes(32) + expected.encode()).hexdigest()
    assert rec.hash == digest


def test_non_finite_numbers_become_null_with_a_reason() -> None:
    safe = json_safe({"dir": math.inf, "nested": {"x": math.nan}, "ok": 1.5})
    assert safe == {
        "dir": None,
        "nested": {"x": None, "_nonfinite": {"x": "nan"}},
        "ok": 1.5,
        "_nonfinite": {"dir": "inf"},
    }
    rec = build_record(
        seq=1, ts="t", event_type="e", actor="a", payload={"dir": math.inf}, prev_hash=GENESIS_HASH
    )
    assert '"dir":null' in rec.canonical


def test_rfc3339_is_utc_with_z() -> None:
    moment = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2026-03-01T10:00:00.000000Z"
    assert rfc3339(datetime(2026, 1, 1, tzinfo=UTC)).endswith("Z")
    with pytest.raises(ValueError, match="aware"):
        rfc3339(datetime(2026, 1, 1))


def test_intact_chain() -> None:
    report = verify_records(chain(10))
    assert report.intact
    assert report.count == 10
    assert report.last_verified_seq == 10
    assert verify_records([]).intact


def test_modified_payload_is_located() -> None:
    records = chain(6)
    records[3] = dataclasses.replace(records[3], payload={"run_id": 4, "dir": 0.99})
    report = verify_records(records)
    assert [(a.seq, a.kind) for a in report.anomalies] == [(4, "modified")]
    assert report.last_verified_seq == 3


def test_record_rebuilt_with_new_hash_breaks_the_next_link() -> None:
    records = chain(6)
    forged = build_record(
        seq=3,
        ts=records[2].ts,
        event_type="cycle_completed",
        actor="daemon",
        payload={"run_id": 3, "dir": 0.95},
        prev_hash=records[1].hash,
    )
    records[2] = forged
    assert [(a.seq, a.kind) for a in verify_records(records).anomalies] == [(4, "broken_link")]


def test_deleted_record_is_exactly_one_gap() -> None:
    records = chain(6)
    del records[2]
    report = verify_records(records)
    assert [(a.seq, a.kind) for a in report.anomalies] == [(3, "gap")]
    assert report.last_verified_seq == 2


def test_deleted_range_is_one_gap() -> None:
    records = chain(8)
    del records[2:5]
    assert [(a.seq, a.kind, a.detail) for a in verify_records(records).anomalies] == [
        (3, "gap", "seq 3..5 missing")
    ]


def test_swapped_records_are_exactly_reordered() -> None:
    records = chain(6)
    records[2], records[3] = records[3], records[2]
    assert [(a.seq, a.kind) for a in verify_records(records).anomalies] == [(3, "reordered")]


def test_a_deleted_tail_is_invisible_without_checkpoints() -> None:
    """The limit of a plain chain, stated as a test: this is why checkpoints exist."""
    assert verify_records(chain(6)[:4]).intact


def test_all_anomalies_are_reported_not_just_the_first() -> None:
    records = chain(8)
    records[1] = dataclasses.replace(records[1], actor="mallory")
    records[6] = dataclasses.replace(records[6], ts="2020-01-01T00:00:00.000000Z")
    assert [(a.seq, a.kind) for a in verify_records(records).anomalies] == [
        (2, "modified"),
        (7, "modified"),
    ]


@given(
    index=st.integers(0, 4),
    field=st.sampled_from(
        ["ts", "event_type", "actor", "payload", "prev_hash", "hash", "canonical"]
    ),
    junk=st.text(min_size=1, max_size=8),
)
def test_any_single_change_is_detected(index: int, field: str, junk: str) -> None:
    records = chain(5)
    old = records[index]
    value: Any  # the type of whichever field this example picked
    if field == "payload":
        value = {**old.payload, "tampered": junk}
    elif field in ("prev_hash", "hash"):
        value = hashlib.sha256(junk.encode()).hexdigest()
    else:
        value = getattr(old, field) + junk
    records[index] = dataclasses.replace(old, **{field: value})
    report = verify_records(records)
    assert not report.intact
    seqs = [a.seq for a in report.anomalies if a.seq is not None]
    assert len(seqs) == len(report.anomalies)  # records alone: every fault names its event
    assert min(seqs) == index + 1


@pytest.fixture(scope="module")
def signer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def anchored(key: Ed25519PrivateKey, records: list[AuditRecord], *seqs: int) -> list[AnchorClaim]:
    cps = [sign_checkpoint(key, seq=s, head_hash=records[s - 1].hash, ts="t") for s in seqs]
    return claims(key.public_key(), cps, "test")


def test_checkpoints_anchor_the_chain(signer: Ed25519PrivateKey) -> None:
    records = chain(10)
    report = verify_records(records, anchored(signer, records, 4, 8))
    assert report.intact
    assert report.anchored_seq == 8
    assert report.unanchored == 2
    assert report.checkpoints_checked == 2


def test_truncated_tail_is_found_at_the_first_missing_seq(signer: Ed25519PrivateKey) -> None:
    records = chain(10)
    claims_ = anchored(signer, records, 5, 9)
    report = verify_records(records[:7], claims_)
    assert [(a.seq, a.kind) for a in report.anomalies] == [(8, "truncated")]
    assert report.anchored_seq == 5


def test_rebuilt_chain_breaks_the_checkpoint(signer: Ed25519PrivateKey) -> None:
    records = chain(6)
    claims_ = anchored(signer, records, 6)
    rebuilt, prev = [], GENESIS_HASH
    for rec in records:  # an insider rewrites seq 2 and recomputes every hash after it
        payload = {"run_id": 99} if rec.seq == 2 else rec.payload
        new = build_record(
            seq=rec.seq,
            ts=rec.ts,
            event_type=rec.event_type,
            actor=rec.actor,
            payload=payload,
            prev_hash=prev,
        )
        rebuilt.append(new)
        prev = new.hash
    assert verify_records(rebuilt).intact  # self-consistent...
    assert [(a.seq, a.kind) for a in verify_records(rebuilt, claims_).anomalies] == [
        (6, "bad_checkpoint")
    ]  # ...but not what was signed


def test_forged_or_altered_checkpoint_is_bad(signer: Ed25519PrivateKey) -> None:
    records = chain(6)
    good = sign_checkpoint(signer, seq=6, head_hash=records[5].hash, ts="t")
    altered = dataclasses.replace(good, seq=5, head_hash=records[4].hash)
    forged = sign_checkpoint(Ed25519PrivateKey.generate(), seq=6, head_hash=records[5].hash, ts="t")
    assert verify_checkpoint(signer.public_key(), good)
    assert not verify_checkpoint(signer.public_key(), altered)
    assert not verify_checkpoint(signer.public_key(), forged)
    report = verify_records(records, claims(signer.public_key(), [altered, forged], "x"))
    assert [(a.seq, a.kind) for a in report.anomalies] == [
        (5, "bad_checkpoint"),
        (6, "bad_checkpoint"),
    ]


def test_checkpoint_line_round_trips() -> None:
    key = Ed25519PrivateKey.generate()
    cp = sign_checkpoint(key, seq=3, head_hash="ab" * 32, ts="2026-01-01T00:00:00.000000Z")
    assert parse_line(cp.to_json()) == cp
    assert parse_line("{not json") is None
    assert parse_line('{"seq": 1}') is None


def test_a_type_change_in_the_payload_column_is_modified() -> None:
    records = chain(3)
    records[1] = dataclasses.replace(records[1], payload={**records[1].payload, "run_id": True})
    assert [(a.seq, a.kind) for a in verify_records(records).anomalies] == [(2, "modified")]
    same_number = dataclasses.replace(records[0], payload={**records[0].payload, "run_id": 1.0})
    assert verify_records([same_number, *chain(3)[1:]]).intact  # JSON has one number type
