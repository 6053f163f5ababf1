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
    """One audit row as verification reads it: the payload column as its stored text.

    Rows written by this version store the payload in RFC 8785 form, so the row's columns
    can be checked against the hashed bytes by comparing text (see
    :func:`canonical_text_of`); older rows fall back to a parse and an exact comparison.
    ``payload_text`` is None when the reader already made that text comparison in the
    database and it held (a stored ``''`` or ``'null'`` is a damaged payload, never "matched").
    The columns are typed as written; a damaged row may hold anything (SQLite keeps any type).
    """

    seq: int
    ts: str
    event_type: str
    actor: str
    payload_text: str | None
    prev_hash: str
    hash: str
    canonical: str

    @property
    def payload(self) -> Any:
        """The payload column parsed (raises ValueError when it is not JSON text)."""
        if not isinstance(self.payload_text, str):
            raise ValueError("the payload column holds no text")
        return json.loads(self.payload_text)


class CanonicalPayload(dict[str, Any]):
    """A payload that carries its RFC 8785 text, so storing it costs no second encoding.

    The store's JSON serializer writes ``canonical_text`` as is (see
    ``store.db.canonical_json``); the text is the payload's part of the record's canonical
    bytes, cut out by :func:`stored_payload`.
    """

    __slots__ = ("canonical_text",)

    def __init__(self, payload: Mapping[str, Any], canonical_text: str) -> None:
        """Wrap ``payload`` with its canonical text."""
        super().__init__(payload)
        self.canonical_text = canonical_text


def stored_payload(rec: AuditRecord) -> dict[str, Any]:
    """Return the payload to store for ``rec``: with its canonical text when it can be cut
    out of the record's canonical bytes exactly (always, for records this module built)."""
    head = f'{{"actor":{_quoted(rec.actor)},"event_type":{_quoted(rec.event_type)},"payload":'
    tail = rec.canonical.rfind(',"seq":')
    if rec.canonical.startswith(head) and tail > len(head):
        text = rec.canonical[len(head) : tail]
        row = StoredRecord(
            rec.seq, rec.ts, rec.event_type, rec.actor, text, rec.prev_hash, rec.hash, rec.canonical
        )
        if canonical_text_of(row) == rec.canonical:
            return CanonicalPayload(rec.payload, text)
    return dict(rec.payload)


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


def canonical_text_of(rec: StoredRecord) -> str:
    """The canonical text a row's columns stand for, if its payload text is canonical.

    RFC 8785 orders the five keys ``actor, event_type, payload, seq, ts``; the strings here
    are short ASCII names and times, which ``json.dumps`` writes exactly as RFC 8785 does.
    Equality with the stored canonical text therefore proves the columns say what the hashed
    bytes say; inequality proves nothing (e.g. an older row's payload text is not canonical)
    and the caller compares the parsed values instead.
    """
    return (
        f'{{"actor":{_quoted(rec.actor)},"event_type":{_quoted(rec.event_type)},'
        f'"payload":{rec.payload_text},"seq":{rec.seq},"ts":{_quoted(rec.ts)}}}'
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
