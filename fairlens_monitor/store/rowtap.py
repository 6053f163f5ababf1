"""The row check's ledger read during the chain walk, so ``verify`` reads each event once.

``verify`` walks every event's hashed text to check the chain, and the row check needs the
row digests inside the row events' text. :class:`RowTap` sits between the chain's reader and
the walk: it passes every row through unchanged and keeps the row entries as ``ledger``
would read them, so the row check does not read the whole chain a second time. A walk split
over processes (``store.chainwalk``) taps each stretch in its own process and merges the
notes (:meth:`RowTap.merge`). Importing it loads no SQLAlchemy (a walk's worker process
imports it): ``store.rowstore`` is loaded when a row event is first seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from fairlens_monitor.audit.rowcheck import ROW_EVENTS, RowLedger

_Row = TypeVar("_Row", bound=Sequence[Any])


class RowTap:
    """Passes the chain walk's rows through unchanged and keeps each row event's entries, so
    the row check needs no second read of every event's hashed text (one pass).

    Use: ``tap = RowTap(); verify_chain(tap.watch(repo.iter_stored()), ...)``, then
    ``check_rows(engine, pruned_to, book=tap.ledger(pruned_to))``. The entries are read from
    the same canonical text the walk hashes, exactly as :func:`ledger` reads them.
    """

    def __init__(self) -> None:
        """Start with nothing seen."""
        self.payloads: list[tuple[int, str, Any]] = []
        self.last_seq = 0

    def watch(self, rows: Iterable[_Row]) -> Iterator[_Row]:
        """Yield ``rows`` (``iter_stored``'s column order) and note their row entries."""
        keep, types, last = self.payloads.append, frozenset(ROW_EVENTS), 0
        entries: Callable[[Any], Any] | None = None
        for row in rows:
            yield row
            seq, event_type, canonical = row[0], row[2], row[6]
            if event_type in types and type(seq) is int:
                last = max(last, seq)
                # every row entry's key starts so (row_digests, rows_deleted, rows_carried)
                if type(canonical) is not str or '"row' in canonical:
                    if entries is None:
                        from fairlens_monitor.store import rowstore

                        entries = rowstore._row_entries
                    payload = entries(canonical)
                    if isinstance(payload, dict) and payload:
                        keep((seq, str(event_type), payload))
        self.last_seq = max(self.last_seq, last)

    types: frozenset[str] = frozenset(ROW_EVENTS)  # the event types ``note`` wants

    def note(self, seq: int, event_type: str, canonical: str) -> None:
        """Note one intact row event (what :meth:`watch` does per row, for a walk that
        calls back instead: ``audit.segments.walk_segment``).

        Args:
            seq: the event's seq.
            event_type: its type (one of :attr:`types`).
            canonical: its hashed text.
        """
        if seq > self.last_seq:  # no max(): this runs once an event
            self.last_seq = seq
        if '"row' in canonical:  # every row entry's key starts so
            from fairlens_monitor.store import rowstore

            payload = rowstore._row_entries(canonical)
            if isinstance(payload, dict) and payload:
                self.payloads.append((seq, event_type, payload))

    def ledger(self, pruned_to: int = 0) -> RowLedger:
        """The ledger of what the watched events recorded (as :func:`ledger` builds it)."""
        from fairlens_monitor.store.rowstore import replay_entries

        payloads = sorted(self.payloads, key=_first)  # storage order is seq order unless
        # tampered with (then the chain walk reports it); replay in seq order regardless
        out = replay_entries(RowLedger(), payloads, pruned_to, carry=True)
        out.last_seq = max(out.last_seq, self.last_seq)
        return out

    def merge(self, payloads: list[tuple[int, str, Any]], last_seq: int) -> None:
        """Add what another tap saw (a stretch of a split walk, ``store.chainwalk``).

        Args:
            payloads: that tap's ``payloads``.
            last_seq: that tap's ``last_seq``.
        """
        self.payloads.extend(payloads)
        self.last_seq = max(self.last_seq, last_seq)


def _first(entry: tuple[int, str, Any]) -> int:
    return entry[0]
