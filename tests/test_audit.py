"""The hash chain: golden vectors, and every kind of tampering is found and located."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairlens_monitor.audit import (
    GENESIS_HASH,
    AuditRecord,
    build_record,
    json_safe,
    rfc3339,
    verify_chain,
)


def chain(n: int) -> list[AuditRecord]:
    records, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        rec = build_record(seq=seq, ts=f"2026-01-01T00:00:{seq:02d}.000000Z",
                           event_type="cycle_completed", actor="daemon",
                           payload={"run_id": seq, "dir": 0.5 + seq / 100}, prev_hash=prev)
        records.append(rec)
        prev = rec.hash
    return records


def test_golden_vector() -> None:
    """Hand-written canonical JSON and hash: an rfc8785 upgrade can never change them silently."""
    rec = build_record(seq=1, ts="2026-01-01T00:00:00.000000Z", event_type="test",
                       actor="unit", payload={"b": 1, "a": "x", "f": 0.1, "n": None},
                       prev_hash=GENESIS_HASH)
    expected = ('{"actor":"unit","event_type":"test","payload":{"a":"x","b":1,"f":0.1,'
                '"n":null},"seq":1,"ts":"2026-01-01T00:00:00.000000Z"}')
    assert rec.canonical == expected
    digest = hashlib.sha256(b"fairlens-audit-v1\x00" + bytes(32) + expected.encode()).hexdigest()
    assert rec.hash == digest


def test_non_finite_numbers_become_null_with_a_reason() -> None:
    safe = json_safe({"dir": math.inf, "nested": {"x": math.nan}, "ok": 1.5})
    assert safe == {"dir": None, "nested": {"x": None, "_nonfinite": {"x": "nan"}}, "ok": 1.5,
                    "_nonfinite": {"dir": "inf"}}
    rec = build_record(seq=1, ts="t", event_type="e", actor="a", payload={"dir": math.inf},
                       prev_hash=GENESIS_HASH)
    assert '"dir":null' in rec.canonical


def test_rfc3339_is_utc_with_z() -> None:
    moment = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2026-03-01T10:00:00.000000Z"
    assert rfc3339(datetime(2026, 1, 1, tzinfo=UTC)).endswith("Z")
    with pytest.raises(ValueError, match="aware"):
        rfc3339(datetime(2026, 1, 1))


def test_intact_chain() -> None:
    report = verify_chain(chain(10))
    assert report.intact
    assert report.count == 10
    assert report.last_verified_seq == 10
    assert verify_chain([]).intact


def test_modified_payload_is_located() -> None:
    records = chain(6)
    records[3] = dataclasses.replace(records[3], payload={"run_id": 4, "dir": 0.99})
    report = verify_chain(records)
    assert [(a.seq, a.kind) for a in report.anomalies] == [(4, "modified")]
    assert report.last_verified_seq == 3


def test_record_rebuilt_with_new_hash_breaks_the_next_link() -> None:
    records = chain(6)
    forged = build_record(seq=3, ts=records[2].ts, event_type="cycle_completed",
                          actor="daemon", payload={"run_id": 3, "dir": 0.95},
                          prev_hash=records[1].hash)
    records[2] = forged
    assert [(a.seq, a.kind) for a in verify_chain(records).anomalies] == [(4, "broken_link")]


def test_deleted_record_is_a_gap() -> None:
    records = chain(6)
    del records[2]
    kinds = {(a.seq, a.kind) for a in verify_chain(records).anomalies}
    assert (3, "gap") in kinds
    assert (4, "broken_link") in kinds


def test_swapped_records_are_reordered() -> None:
    records = chain(6)
    records[2], records[3] = records[3], records[2]
    kinds = {(a.seq, a.kind) for a in verify_chain(records).anomalies}
    assert (3, "reordered") in kinds


def test_all_anomalies_are_reported_not_just_the_first() -> None:
    records = chain(8)
    records[1] = dataclasses.replace(records[1], actor="mallory")
    records[6] = dataclasses.replace(records[6], ts="2020-01-01T00:00:00.000000Z")
    assert [(a.seq, a.kind) for a in verify_chain(records).anomalies] == [
        (2, "modified"), (7, "modified")]


@given(index=st.integers(0, 4),
       field=st.sampled_from(["ts", "event_type", "actor", "payload", "prev_hash", "hash",
                              "canonical"]),
       junk=st.text(min_size=1, max_size=8))
def test_any_single_change_is_detected(index: int, field: str, junk: str) -> None:
    records = chain(5)
    old = records[index]
    value: object
    if field == "payload":
        value = {**old.payload, "tampered": junk}
    elif field in ("prev_hash", "hash"):
        value = hashlib.sha256(junk.encode()).hexdigest()
    else:
        value = getattr(old, field) + junk
    records[index] = dataclasses.replace(old, **{field: value})
    report = verify_chain(records)
    assert not report.intact
    assert min(a.seq for a in report.anomalies) == index + 1
