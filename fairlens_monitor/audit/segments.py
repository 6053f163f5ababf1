"""The chain walked in stretches (pure): each stretch alone, then the boundaries joined.

simulate → measure → detect → alert → **log**, checked on several cores. A long chain can
be split by storage position into stretches walked at the same time (one process each,
``store.chainwalk``): :func:`walk_segment` walks one stretch and says what a later join
needs — its first seq and ``prev_hash``, its last seq and hash, its count and its hashes at
the claimed seqs — or None as soon as the stretch is not plainly intact (any record that
would be an anomaly, or stored out of seq order). :func:`join_segments` then checks each
boundary link (a stretch's first ``prev_hash`` is the previous stretch's last hash, its
first seq the next one) and the start, and reports exactly what
:func:`~fairlens_monitor.audit.verify.verify_chain` reports for the same rows.

Only an intact chain is joined: anything irregular (a None stretch, a boundary that does not
link) returns None, and the caller walks the chain serially with ``verify_chain``, which
reports every anomaly at its seq, in order. A tampered chain costs that second walk; an
intact one is walked once, split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fairlens_monitor.audit.chain import DOMAIN_TAG, StoredRecord, head_of
from fairlens_monitor.audit.verify import (
    AnchorClaim,
    ChainReport,
    _content_anomalies,
    claims_to_check,
    judge,
)


@dataclass(frozen=True)
class Segment:
    """One stretch of the chain, walked and found intact on its own."""

    count: int
    first_seq: int
    first_prev: str  # the first record's prev_hash: the previous stretch's last hash
    last_seq: int
    last_hash: str
    hash_at: dict[int, str] = field(default_factory=dict)  # at the seqs asked for


def walk_segment(
    rows: Iterable[Sequence[Any]],
    wanted: Container[int],
    note: Callable[[int, str, str], None] | None = None,
    noted: Container[object] = (),
) -> Segment | None:
    """Walk one stretch of stored rows (storage order, ``iter_stored``'s columns).

    Every record must be what :func:`~fairlens_monitor.audit.verify.verify_chain` finds
    intact — its hash recomputed over its canonical bytes, its columns framing them — and
    each must follow the one before in seq (+1) and link (``prev_hash``).

    Args:
        rows: the stretch's rows as a DB-API cursor yields them (8-tuples).
        wanted: the seqs whose hash a claim needs (see ``claims_to_check``).
        note: called with ``(seq, event_type, canonical)`` of each intact record whose
            event type is in ``noted`` (the row check's ledger, ``store.rowtap``), here
            rather than by a wrapping generator, which cost a quarter of the walk.
        noted: the event types ``note`` is called for.

    Returns:
        The stretch's summary, or None at the first record that is not plainly intact and
        linked (the caller then walks serially), and for an empty stretch.
    """
    sha256, tag, fromhex = hashlib.sha256, DOMAIN_TAG, bytes.fromhex
    heads: dict[object, tuple[object, str]] = {}
    hash_at: dict[int, str] = {}
    count, first_seq, first_prev, expected, prev = 0, 0, "", 0, ""
    for rec in rows:  # the hot loop, as verify_chain's
        seq, ts, event_type, actor, prev_col, link_hash, canonical, edited = rec
        if type(seq) is not int or type(prev_col) is not str:
            return None
        if not count:
            first_seq, first_prev, expected, prev = seq, prev_col, seq, prev_col
        if seq != expected or prev_col != prev:
            return None
        cached = heads.get(event_type)
        if cached is None or cached[0] != actor:
            cached = heads[event_type] = (actor, head_of(actor, event_type))
        try:
            fast = (
                not edited
                and type(canonical) is str
                and type(ts) is str
                and canonical.startswith(cached[1])
                and canonical.endswith(f',"seq":{seq},"ts":"{ts}"}}')
                and '"' not in ts
                and "\\" not in ts
                and sha256(tag + fromhex(prev_col) + canonical.encode()).hexdigest() == link_hash
            )
        except (ValueError, TypeError):
            return None
        if not fast and _content_anomalies(StoredRecord._make(rec)):
            return None
        if seq in wanted:
            hash_at[seq] = link_hash
        if event_type in noted and note is not None:
            note(seq, event_type, canonical)
        prev, expected = link_hash, seq + 1
        count += 1
    if not count:
        return None
    return Segment(count, first_seq, first_prev, expected - 1, prev, hash_at)


def join_segments(
    segments: Sequence[Segment | None],
    anchors: Iterable[AnchorClaim],
    start: tuple[int, str],
) -> ChainReport | None:
    """The report of a chain walked in stretches, when every stretch and boundary holds.

    Args:
        segments: the stretches in storage order, together the whole chain.
        anchors: the checkpoint claims (as for ``verify_chain``).
        start: the first seq and its ``prev_hash`` (as for ``verify_chain``).

    Returns:
        The report ``verify_chain`` gives for the same rows; None when a stretch is None or
        a boundary does not link (the first stretch must start at ``start``; each next one
        at the seq after the previous one's last, with its last hash as ``prev_hash``).
    """
    claims = claims_to_check(anchors, start)
    expected, prev = start
    count, hash_at = 0, {}
    for segment in segments:
        if segment is None or segment.first_seq != expected or segment.first_prev != prev:
            return None
        count += segment.count
        hash_at.update(segment.hash_at)
        expected, prev = segment.last_seq + 1, segment.last_hash
    if not count:
        return None
    return judge(count, expected - 1, prev, hash_at, [], claims, start)
