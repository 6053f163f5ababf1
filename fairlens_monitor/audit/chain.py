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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

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


@dataclass(frozen=True)
class Anomaly:
    """One fault found in the chain: where (seq; None for a row no event accounts for),
    what kind, and for a stored row its table and id."""

    seq: int | None
    kind: str
    detail: str
    table: str | None = None
    id: int | None = None


@dataclass(frozen=True)
class AnchorClaim:
    """A checkpoint's claim that the chain had ``head_hash`` at ``seq``.

    ``signature_ok`` is decided by the caller (``checkpoints.verify_checkpoint``), so this
    module needs no key.
    """

    seq: int
    head_hash: str
    signature_ok: bool
    source: str


@dataclass(frozen=True)
class ChainReport:
    """The result of walking the whole chain (and checking its anchors)."""

    count: int
    head_seq: int
    head_hash: str
    last_verified_seq: int
    anchored_seq: int = 0
    checkpoints_checked: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """True when no anomaly was found."""
        return not self.anomalies

    @property
    def unanchored(self) -> int:
        """How many events come after the newest verified checkpoint."""
        return max(0, self.head_seq - self.anchored_seq)


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
    return rfc8785.dumps(
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


def verify_chain(
    stored: Iterable[AuditRecord | StoredRecord],
    by_seq: Iterable[Link | AuditRecord],
    anchors: Iterable[AnchorClaim] = (),
    start: tuple[int, str] = (1, GENESIS_HASH),
) -> ChainReport:
    """Check every record and link, and every anchored checkpoint; report every anomaly.

    Two streaming passes keep memory flat however long the chain is:

    1. ``stored`` (storage order, ascending row id): each record's hash is recomputed over
       its stored canonical bytes, and those bytes must say exactly what the record's stored
       fields say (``modified``); a seq stored after a higher one is ``reordered``.
    2. ``by_seq`` (ascending seq): a missing seq range is one ``gap`` at its first seq; a
       ``prev_hash`` that is not the previous record's hash is a ``broken_link`` (not reported
       right after a gap, which already explains it); a repeated seq is ``reordered``.
       When pass 1 found the rows stored in seq order with every link intact, it has seen
       exactly what pass 2 would see, and ``by_seq`` is not read at all.

    Then each anchor claim: a bad signature or a head hash that differs from the chain's hash
    at that seq is ``bad_checkpoint``; a claim beyond the chain's last seq is ``truncated``,
    reported at the first missing seq.

    Args:
        stored: the records in storage order.
        by_seq: the same records (or just their :class:`Link` fields) in seq order.
        anchors: checkpoint claims from the anchor file (and/or the database).
        start: the first seq the chain must have and the ``prev_hash`` it must carry:
            ``(1, GENESIS_HASH)``, or after a signed retention prune ``(N + 1, hash at N)``.
            Claims below the start concern deleted history and are not checked.

    Returns:
        The report. ``last_verified_seq`` is the highest seq below every anomaly and, when
        a signed head differs from the chain (history rewritten at or before it, then
        rehashed), no higher than the newest good checkpoint below that head;
        ``anchored_seq`` the highest seq covered by a valid checkpoint up to there.
    """
    claims = sorted(
        (a for a in anchors if a.seq >= start[0] or not a.signature_ok), key=lambda a: a.seq
    )
    wanted = {a.seq for a in claims}
    hash_at: dict[int, str] = {}
    anomalies: list[Anomaly] = []
    count, highest = 0, 0
    # Storage order is normally seq order: then the links are checked in this same pass and
    # the seq-order pass (a second full read) is skipped, because it would see the same
    # rows in the same order.
    linear, expected, prev_hash = True, start[0], start[1]
    sha256, tag, fromhex = hashlib.sha256, DOMAIN_TAG, bytes.fromhex
    for rec in stored:  # the hot loop: the common case takes no function call but sha256
        count += 1
        seq, canonical, link_hash = rec.seq, rec.canonical, rec.hash
        if type(seq) is not int:  # a damaged seq column: say where it stood, then skip it
            anomalies.append(
                Anomaly(highest + 1, "modified", "the seq column does not hold an integer")
            )
            linear = False
            continue
        try:
            fast = (
                type(rec) is StoredRecord
                and (rec.payload_text is None or canonical == canonical_text_of(rec))
                and type(canonical) is str
                and len(rec.prev_hash) == 64
                and sha256(tag + fromhex(rec.prev_hash) + canonical.encode()).hexdigest()
                == link_hash
            )
        except (ValueError, TypeError):  # prev_hash is not hex text: the slow path says so
            fast = False
        if not fast:
            anomalies.extend(_content_anomalies(rec))
        if seq < highest:
            anomalies.append(Anomaly(seq, "reordered", f"seq {seq} is stored after seq {highest}"))
        else:
            highest = seq
        if linear:
            if seq != expected or rec.prev_hash != prev_hash:
                linear = False
            else:
                if seq in wanted:
                    hash_at[seq] = link_hash
                prev_hash, expected = link_hash, seq + 1

    head_hash = prev_hash
    if not linear:
        hash_at = {}
        expected, prev_hash, head_hash = start[0], start[1], start[1]
        for link in by_seq:
            if type(link.seq) is not int:  # reported as modified by the first pass
                continue
            if link.seq < expected:
                anomalies.append(Anomaly(link.seq, "reordered", f"seq {link.seq} appears twice"))
                continue
            if link.seq > expected:
                anomalies.append(
                    Anomaly(expected, "gap", f"seq {expected}..{link.seq - 1} missing")
                )
            elif link.prev_hash != prev_hash:
                anomalies.append(
                    Anomaly(
                        link.seq,
                        "broken_link",
                        "prev_hash does not match the previous record's hash",
                    )
                )
            if link.seq in wanted:
                hash_at[link.seq] = link.hash
            prev_hash = head_hash = link.hash
            expected = link.seq + 1
    head_seq = expected - 1

    anchored, good, rewritten = 0, [], []
    for claim in claims:
        if not claim.signature_ok:
            anomalies.append(
                Anomaly(claim.seq, "bad_checkpoint", f"signature does not verify ({claim.source})")
            )
        elif claim.seq > head_seq:
            anomalies.append(
                Anomaly(
                    head_seq + 1,
                    "truncated",
                    f"a checkpoint ({claim.source}) anchors seq {claim.seq} "
                    f"but the chain ends at seq {head_seq}",
                )
            )
        elif claim.seq in hash_at and hash_at[claim.seq] != claim.head_hash:
            anomalies.append(
                Anomaly(
                    claim.seq,
                    "bad_checkpoint",
                    f"chain hash at seq {claim.seq} differs from the signed "
                    f"head ({claim.source}): history was rewritten",
                )
            )
            rewritten.append(claim.seq)
        elif claim.seq in hash_at:
            anchored = max(anchored, claim.seq)
            good.append(claim.seq)
    anomalies = _dedupe(anomalies)
    first_bad = min((a.seq for a in anomalies if a.seq is not None), default=head_seq + 1)
    for seq in rewritten:  # something at or before seq was rewritten, and rehashed onwards:
        # only what a good checkpoint below it vouches for is still verified
        first_bad = min(first_bad, max((g for g in good if g < seq), default=start[0] - 1) + 1)
    return ChainReport(
        count=count,
        head_seq=head_seq,
        head_hash=head_hash,
        last_verified_seq=min(head_seq, first_bad - 1),
        anchored_seq=min(anchored, first_bad - 1),
        checkpoints_checked=len(claims),
        anomalies=sorted(anomalies, key=lambda a: (a.seq or 0, a.kind)),
    )


def _dedupe(anomalies: list[Anomaly]) -> list[Anomaly]:
    seen: set[tuple[int | None, str]] = set()
    out = []
    for a in anomalies:
        if (a.seq, a.kind) not in seen:
            seen.add((a.seq, a.kind))
            out.append(a)
    return out


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


def _content_anomalies(rec: AuditRecord | StoredRecord) -> list[Anomaly]:
    # The hash covers the stored canonical bytes, so two checks suffice: the bytes hash to
    # the stored hash, and they say exactly what the row's columns say. (Recomputing RFC 8785
    # for every record is ~15x slower and adds nothing: a non-canonical rewrite of the bytes
    # changes the hash and so breaks the link or a signed checkpoint.) The second check is a
    # text comparison when the payload column holds canonical text (rows written since 0.3),
    # else a parse of both sides and an exact comparison.
    # A damaged row may hold NULL, a number or a blob where text was written (SQLite keeps
    # any type): every such column is a modification, never a crash.
    if not all(
        type(v) is str
        for v in (rec.ts, rec.event_type, rec.actor, rec.canonical, rec.prev_hash, rec.hash)
    ):
        return [Anomaly(rec.seq, "modified", "a column does not hold the text written")]
    fast = (
        isinstance(rec, StoredRecord)
        and type(rec.seq) is int
        and (rec.payload_text is None or canonical_text_of(rec) == rec.canonical)
    )
    if not fast and not _same_fields(rec):
        return [Anomaly(rec.seq, "modified", "stored fields differ from the hashed bytes")]
    try:
        if chain_hash(rec.prev_hash, rec.canonical.encode("utf-8")) != rec.hash:
            return [Anomaly(rec.seq, "modified", "hash does not match the record's content")]
    except ValueError:
        return [Anomaly(rec.seq, "modified", "prev_hash is not 64 hex digits")]
    return []


def _same_fields(rec: AuditRecord | StoredRecord) -> bool:
    try:
        hashed = json.loads(rec.canonical)
        payload = rec.payload
    except (ValueError, TypeError):
        return False
    if not isinstance(payload, Mapping):  # every event's payload is an object
        return False
    return (
        isinstance(hashed, dict)
        and hashed.get("seq") == rec.seq
        and type(rec.seq) is int
        and hashed.get("ts") == rec.ts
        and hashed.get("event_type") == rec.event_type
        and hashed.get("actor") == rec.actor
        and len(hashed) == 5
        and _json(hashed.get("payload")) == _json(payload)
    )


def _json(value: Any) -> str:
    """Comparable text of a JSON value: numbers as floats (RFC 8785 writes 1.0 as 1, so JSON
    cannot tell them apart), but true, 1 and "1" stay distinct."""
    return json.dumps(json.loads(json.dumps(value), parse_int=float), sort_keys=True)
