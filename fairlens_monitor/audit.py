"""The hash chain of audit events: canonical bytes, hashing and verification (pure).

simulate → measure → detect → alert → **log**. Every audit event is bound to the one before
it: ``hash = SHA-256(domain tag ‖ prev_hash ‖ canonical bytes)``, where the canonical bytes
are the RFC 8785 (JSON Canonicalization Scheme) encoding of ``{seq, ts, event_type, actor,
payload}`` and the genesis ``prev_hash`` is 32 zero bytes. The canonical bytes are stored
with the row, so verification never depends on how an ORM round-trips a value.

This module does no I/O: the store feeds it rows, and it returns what it found.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import rfc8785

DOMAIN_TAG = b"fairlens-audit-v1\x00"
GENESIS_HASH = "00" * 32


@dataclass(frozen=True)
class AuditRecord:
    """One audit event as stored: the hashed fields plus the chain fields."""

    seq: int
    ts: str
    event_type: str
    actor: str
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str
    canonical: str


@dataclass(frozen=True)
class Anomaly:
    """One fault found in the chain: where (seq) and what kind."""

    seq: int
    kind: str
    detail: str


@dataclass(frozen=True)
class ChainReport:
    """The result of walking the whole chain."""

    count: int
    last_verified_seq: int
    head_hash: str
    anomalies: list[Anomaly] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """True when no anomaly was found."""
        return not self.anomalies


def rfc3339(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with microseconds and a ``Z``.

    Raises:
        ValueError: ``moment`` is naive.
    """
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_safe(value: Any) -> Any:
    """Return ``value`` with every non-finite float replaced by None, noting why.

    RFC 8785 has no NaN or infinity. A mapping that held one gets a ``_nonfinite`` entry
    naming the keys and their original values (e.g. ``{"dir": "inf"}``).

    Args:
        value: JSON-like data (mappings, lists, scalars).

    Returns:
        A copy that :func:`canonical_bytes` accepts.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        out = {str(k): json_safe(v) for k, v in value.items()}
        bad = {str(k): repr(v) for k, v in value.items()
               if isinstance(v, float) and not math.isfinite(v)}
        if bad:
            out["_nonfinite"] = bad
        return out
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def canonical_bytes(seq: int, ts: str, event_type: str, actor: str,
                    payload: Mapping[str, Any]) -> bytes:
    """Return the RFC 8785 canonical JSON of the hashed fields of one event.

    Raises:
        rfc8785.CanonicalizationError: the payload holds a value JSON cannot express.
    """
    return rfc8785.dumps({"seq": seq, "ts": ts, "event_type": event_type, "actor": actor,
                          "payload": dict(payload)})


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """Return ``SHA-256(domain tag ‖ prev_hash bytes ‖ canonical)`` as hex.

    Raises:
        ValueError: ``prev_hash`` is not 64 hex digits.
    """
    prev = bytes.fromhex(prev_hash)
    if len(prev) != 32:
        raise ValueError(f"prev_hash must be 32 bytes of hex, got {prev_hash!r}")
    return hashlib.sha256(DOMAIN_TAG + prev + canonical).hexdigest()


def build_record(*, seq: int, ts: str, event_type: str, actor: str,
                 payload: Mapping[str, Any], prev_hash: str) -> AuditRecord:
    """Build the next record of the chain.

    Args:
        seq: this record's sequence number (previous + 1; 1 for the first).
        ts: RFC 3339 UTC time (see :func:`rfc3339`).
        event_type: e.g. ``cycle_completed``.
        actor: who caused it, e.g. ``daemon`` or ``cli``.
        payload: JSON-like details; non-finite numbers become null with a reason.
        prev_hash: the previous record's hash (``GENESIS_HASH`` for seq 1).

    Returns:
        The record, with its canonical bytes (as text) and hash.
    """
    safe = json_safe(payload)
    canonical = canonical_bytes(seq, ts, event_type, actor, safe)
    return AuditRecord(seq=seq, ts=ts, event_type=event_type, actor=actor, payload=safe,
                       prev_hash=prev_hash, hash=chain_hash(prev_hash, canonical),
                       canonical=canonical.decode("utf-8"))


def verify_chain(records: Iterable[AuditRecord]) -> ChainReport:
    """Walk every record in stored order and report every anomaly, not just the first.

    Kinds: ``modified`` (a field or the canonical bytes do not match the hash), ``gap`` (a
    seq is missing), ``reordered`` (a seq is out of order or repeated), ``broken_link``
    (``prev_hash`` is not the previous record's hash).

    Args:
        records: the chain in storage order (ascending row id).

    Returns:
        The report; ``last_verified_seq`` is the highest seq up to which no anomaly was found.
    """
    anomalies: list[Anomaly] = []
    prev_hash, expected_seq, count, last_ok = GENESIS_HASH, 1, 0, 0
    for rec in records:
        count += 1
        found = len(anomalies)
        anomalies.extend(_content_anomalies(rec))
        if rec.seq > expected_seq:
            anomalies.append(Anomaly(expected_seq, "gap",
                                     f"seq {expected_seq}..{rec.seq - 1} missing"))
        elif rec.seq < expected_seq:
            anomalies.append(Anomaly(rec.seq, "reordered",
                                     f"seq {rec.seq} appears after seq {expected_seq - 1}"))
        if rec.prev_hash != prev_hash:
            anomalies.append(Anomaly(rec.seq, "broken_link",
                                     "prev_hash does not match the previous record's hash"))
        if len(anomalies) == found and last_ok == rec.seq - 1:
            last_ok = rec.seq
        prev_hash, expected_seq = rec.hash, max(expected_seq, rec.seq + 1)
    return ChainReport(count=count, last_verified_seq=last_ok, head_hash=prev_hash,
                       anomalies=anomalies)


def _content_anomalies(rec: AuditRecord) -> list[Anomaly]:
    try:
        recomputed = canonical_bytes(rec.seq, rec.ts, rec.event_type, rec.actor, rec.payload)
    except (TypeError, ValueError, rfc8785.CanonicalizationError) as exc:
        return [Anomaly(rec.seq, "modified", f"fields cannot be canonicalised: {exc}")]
    if recomputed.decode("utf-8") != rec.canonical:
        return [Anomaly(rec.seq, "modified", "stored fields differ from the hashed bytes")]
    try:
        if chain_hash(rec.prev_hash, rec.canonical.encode("utf-8")) != rec.hash:
            return [Anomaly(rec.seq, "modified", "hash does not match the record's content")]
    except ValueError as exc:
        return [Anomaly(rec.seq, "modified", str(exc))]
    return []
