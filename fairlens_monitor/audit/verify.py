"""Verification of the hash chain (pure): anomalies, anchor claims, the chain's report.

simulate → measure → detect → alert → **log**, checked. :func:`verify_chain` streams the
stored records twice (storage order, then seq order), recomputes every canonical text and
hash from :mod:`fairlens_monitor.audit.chain`, and checks the anchor claims (signed
checkpoints); memory stays flat whatever the chain's length. No I/O: the caller feeds it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fairlens_monitor.audit.chain import (
    DOMAIN_TAG,
    GENESIS_HASH,
    AuditRecord,
    Link,
    StoredRecord,
    _json,
    chain_hash,
    frames,
    head_of,
)


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
    def verified_text(self) -> str:
        """How far the walk verified, in words: "verified only up to seq N", or "no event
        verified" (never "seq -1") when even the first event failed."""
        if self.last_verified_seq < 0:
            return "no event verified"
        return f"verified only up to seq {self.last_verified_seq}"

    @property
    def unanchored(self) -> int:
        """How many events come after the newest verified checkpoint."""
        return max(0, self.head_seq - self.anchored_seq)


def verify_chain(
    stored: Iterable[AuditRecord | StoredRecord | tuple[Any, ...]],
    by_seq: Iterable[Link | AuditRecord],
    anchors: Iterable[AnchorClaim] = (),
    start: tuple[int, str] = (1, GENESIS_HASH),
) -> ChainReport:
    """Check every record and link, and every anchored checkpoint; report every anomaly.

    Two streaming passes keep memory flat however long the chain is:

    1. ``stored`` (storage order, ascending row id): each record's hash is recomputed over
       its stored canonical bytes, and those bytes must say exactly what the record's stored
       fields say (``modified``); a seq stored after a higher one is ``reordered``. Rows may
       come as plain 8-tuples in :class:`StoredRecord`'s column order (what a DB-API cursor
       yields: no object built per row).
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
    claims = claims_to_check(anchors, start)
    wanted = {a.seq for a in claims}
    hash_at: dict[int, str] = {}
    anomalies: list[Anomaly] = []
    count, highest = 0, 0
    # Storage order is normally seq order: then the links are checked in this same pass and
    # the seq-order pass (a second full read) is skipped, because it would see the same
    # rows in the same order.
    linear, expected, prev_hash = True, start[0], start[1]
    sha256, tag, fromhex = hashlib.sha256, DOMAIN_TAG, bytes.fromhex
    heads: dict[object, tuple[object, str]] = {}  # event_type → (actor, head_of(...))
    for rec in stored:  # the hot loop: the common case calls sha256 and a few str methods
        count += 1
        if isinstance(rec, AuditRecord):
            seq, link_hash, prev_col = rec.seq, rec.hash, rec.prev_hash
            if type(seq) is not int:
                anomalies.append(
                    Anomaly(highest + 1, "modified", "the seq column does not hold an integer")
                )
                linear = False
                continue
            anomalies.extend(_content_anomalies(rec))
        else:
            seq, ts, event_type, actor, prev_col, link_hash, canonical, edited = rec
            if type(seq) is not int:  # a damaged seq column: say where it stood, skip it
                anomalies.append(
                    Anomaly(highest + 1, "modified", "the seq column does not hold an integer")
                )
                linear = False
                continue
            cached = heads.get(event_type)
            if cached is None or cached[0] != actor:
                cached = heads[event_type] = (actor, head_of(actor, event_type))
            # frames() inlined: the columns frame the hashed text, which hashes to the link
            try:
                fast = (
                    not edited
                    and type(canonical) is str
                    and type(ts) is str
                    and canonical.startswith(cached[1])
                    and canonical.endswith(f',"seq":{seq},"ts":"{ts}"}}')
                    and '"' not in ts
                    and "\\" not in ts
                    and sha256(tag + fromhex(prev_col) + canonical.encode()).hexdigest()
                    == link_hash
                )
            except (ValueError, TypeError):  # prev_hash is not hex text: the slow path says so
                fast = False
            if not fast:
                anomalies.extend(_content_anomalies(StoredRecord._make(rec)))
        if seq < highest:
            anomalies.append(Anomaly(seq, "reordered", f"seq {seq} is stored after seq {highest}"))
        else:
            highest = seq
        if linear:
            if seq != expected or prev_col != prev_hash:
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

    return judge(count, head_seq, head_hash, hash_at, anomalies, claims, start)


def claims_to_check(anchors: Iterable[AnchorClaim], start: tuple[int, str]) -> list[AnchorClaim]:
    """The claims a walk from ``start`` checks, by seq: those at or after the start, and
    every claim whose signature fails (below the start too).

    Args:
        anchors: the checkpoint claims.
        start: the walk's first seq and its ``prev_hash``.

    Returns:
        The claims, ascending seq; the walk must note its hash at each of their seqs.
    """
    return sorted(
        (a for a in anchors if a.seq >= start[0] or not a.signature_ok), key=lambda a: a.seq
    )


def judge(
    count: int,
    head_seq: int,
    head_hash: str,
    hash_at: Mapping[int, str],
    anomalies: list[Anomaly],
    claims: list[AnchorClaim],
    start: tuple[int, str],
) -> ChainReport:
    """The report of a walk: its anomalies plus each claim checked against the hashes seen.

    Args:
        count: the records walked.
        head_seq: the last seq of the chain (``start[0] - 1`` when empty).
        head_hash: the hash at ``head_seq``.
        hash_at: the chain's hash at each claimed seq the walk saw in order.
        anomalies: what the walk found (in the order found).
        claims: from :func:`claims_to_check`.
        start: the walk's first seq and ``prev_hash``.

    Returns:
        The report (see :func:`verify_chain`).
    """
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


def _content_anomalies(rec: AuditRecord | StoredRecord) -> list[Anomaly]:
    # The hash covers the stored canonical bytes, so two checks suffice: the bytes hash to
    # the stored hash, and they say exactly what the row's columns say. (Recomputing RFC 8785
    # for every record is ~15x slower and adds nothing: a non-canonical rewrite of the bytes
    # changes the hash and so breaks the link or a signed checkpoint.) A stored row keeps its
    # payload only inside the canonical bytes (migration 0013), so its other columns are
    # compared; an AuditRecord built elsewhere also carries a payload, compared by value
    # (JSON true is not 1).
    # A damaged row may hold NULL, a number or a blob where text was written (SQLite keeps
    # any type): every such column is a modification, never a crash.
    if not all(
        type(v) is str
        for v in (rec.ts, rec.event_type, rec.actor, rec.canonical, rec.prev_hash, rec.hash)
    ):
        return [Anomaly(rec.seq, "modified", "a column does not hold the text written")]
    if isinstance(rec, StoredRecord) and rec.edited:
        return [
            Anomaly(
                rec.seq,
                "modified",
                "the payload column differed from the hashed bytes (kept in audit_payload_edits)",
            )
        ]
    if not _same_fields(rec):
        return [Anomaly(rec.seq, "modified", "stored fields differ from the hashed bytes")]
    try:
        if chain_hash(rec.prev_hash, rec.canonical.encode("utf-8")) != rec.hash:
            return [Anomaly(rec.seq, "modified", "hash does not match the record's content")]
    except ValueError:
        return [Anomaly(rec.seq, "modified", "prev_hash is not 64 hex digits")]
    return []


def _same_fields(rec: AuditRecord | StoredRecord) -> bool:
    if isinstance(rec, StoredRecord) and frames(
        rec.canonical, head_of(rec.actor, rec.event_type), rec.seq, rec.ts
    ):
        return True
    try:
        hashed = json.loads(rec.canonical)
    except (ValueError, TypeError):
        return False
    if not (
        isinstance(hashed, dict)
        and hashed.get("seq") == rec.seq
        and type(rec.seq) is int
        and hashed.get("ts") == rec.ts
        and hashed.get("event_type") == rec.event_type
        and hashed.get("actor") == rec.actor
        and len(hashed) == 5
        and isinstance(hashed.get("payload"), Mapping)  # every event's payload is an object
    ):
        return False
    return isinstance(rec, StoredRecord) or _json(hashed["payload"]) == _json(rec.payload)
