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
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from fairlens_monitor.audit import canonical

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


class StoredRecord(NamedTuple):
    """One audit row as verification reads it: the columns as stored, no payload parsed.

    Since migration 0013 the payload is stored once, inside ``canonical`` (the hashed
    bytes), so what is left to prove is that the other columns say what those bytes say
    (see :func:`frames`). ``edited`` is True for a row whose payload column differed from
    its hashed bytes when 0013 dropped that column (kept in ``audit_payload_edits``).
    The columns are typed as written; a damaged row may hold anything (SQLite keeps any type).
    """

    seq: int
    ts: str
    event_type: str
    actor: str
    prev_hash: str
    hash: str
    canonical: str
    edited: bool = False


def head_of(actor: object, event_type: object) -> str:
    """The canonical text before an event's payload, for these column values.

    RFC 8785 orders the five keys ``actor, event_type, payload, seq, ts``. A value that is
    not text gives a head no canonical text starts with (they all start with ``{"``).
    """
    if type(actor) is not str or type(event_type) is not str:
        return "\x00"
    return f'{{"actor":{_quoted(actor)},"event_type":{_quoted(event_type)},"payload":'


def frames(canonical: str, head: str, seq: int, ts: str) -> bool:
    """True when the hashed text starts with ``head`` and ends with ``seq`` and ``ts``.

    Then the row's columns say exactly what its hashed bytes say: the bytes are RFC 8785
    JSON of ``{actor, event_type, payload, seq, ts}`` (their hash proves it), a JSON string
    holds no bare ``"``, so the last ``,"seq":N,"ts":"…"}`` is the record's own seq and time,
    and a ``ts`` without ``"`` or ``\\`` is written verbatim. False proves nothing (an
    escaped time) and the caller compares parsed values instead.
    """
    return (
        canonical.startswith(head)
        and canonical.endswith(f',"seq":{seq},"ts":"{ts}"}}')
        and '"' not in ts
        and "\\" not in ts
    )


class Link(NamedTuple):
    """The chain fields of one record: all the seq-order pass of verification needs."""

    seq: int
    prev_hash: str
    hash: str


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
        bad = {
            str(k): repr(v)
            for k, v in value.items()
            if isinstance(v, float) and not math.isfinite(v)
        }
        if bad:
            out["_nonfinite"] = bad
        return out
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def canonical_bytes(
    seq: int, ts: str, event_type: str, actor: str, payload: Mapping[str, Any]
) -> bytes:
    """Return the RFC 8785 canonical JSON of the hashed fields of one event.

    Raises:
        rfc8785.CanonicalizationError: the payload holds a value JSON cannot express.
    """
    return canonical.jcs_bytes(
        {"seq": seq, "ts": ts, "event_type": event_type, "actor": actor, "payload": dict(payload)}
    )


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """Return ``SHA-256(domain tag ‖ prev_hash bytes ‖ canonical)`` as hex.

    Raises:
        ValueError: ``prev_hash`` is not 64 hex digits.
    """
    prev = bytes.fromhex(prev_hash)
    if len(prev) != 32:
        raise ValueError(f"prev_hash must be 32 bytes of hex, got {prev_hash!r}")
    return hashlib.sha256(DOMAIN_TAG + prev + canonical).hexdigest()


def build_record(
    *, seq: int, ts: str, event_type: str, actor: str, payload: Mapping[str, Any], prev_hash: str
) -> AuditRecord:
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
    return AuditRecord(
        seq=seq,
        ts=ts,
        event_type=event_type,
        actor=actor,
        payload=safe,
        prev_hash=prev_hash,
        hash=chain_hash(prev_hash, canonical),
        canonical=canonical.decode("utf-8"),
    )


_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')


def _quoted(text: str) -> str:
    """A JSON string literal as RFC 8785 writes it (the common plain case without a call
    into the encoder)."""
    return f'"{text}"' if _PLAIN.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def _json(value: Any) -> str:
    """Comparable text of a JSON value: numbers as floats (RFC 8785 writes 1.0 as 1, so JSON
    cannot tell them apart), but true, 1 and "1" stay distinct."""
    return json.dumps(json.loads(json.dumps(value), parse_int=float), sort_keys=True)
