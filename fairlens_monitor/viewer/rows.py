"""The page's own check of what it shows: each row on screen against its digest on the chain.

Beside the trend page (``viewer``). The full ``verify`` runs in the background once a minute;
between runs a row shown on the page could be edited. So the page keeps the chain's row
ledger (``rowcheck.RowLedger``) up to date incrementally — each refresh replays only the
events appended since — and recomputes the digest of the headline reading and of every
alert it shows. A handful of rows: milliseconds per refresh.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from sqlalchemy import Engine, func, select

from fairlens_monitor.audit.rowcheck import RowLedger, mark
from fairlens_monitor.store.models import AuditEvent
from fairlens_monitor.store.rowstore import ledger, stored_rows


class LiveLedger:
    """The chain's row digests for one database, brought up to date on each call."""

    def __init__(self) -> None:
        """Start empty; the first :meth:`marks` replays the whole chain once."""
        self.book: RowLedger | None = None
        self.lock = threading.Lock()

    def marks(self, engine: Engine, table: str, ids: Iterable[int]) -> dict[int, tuple[bool, str]]:
        """Whether each row shown is the row the chain recorded.

        Args:
            engine: a (read-only) engine on the database.
            table: ``readings``, ``alerts``, … (see ``rowforms.TABLES``).
            ids: the ids on screen.

        Returns:
            Per id, ``(verified, reason)`` (see :func:`rowcheck.mark`).
        """
        ids = list(ids)
        with self.lock:
            if self.book is None:
                with engine.connect() as conn:
                    first = conn.scalar(select(func.min(AuditEvent.seq)))
                self.book = ledger(engine, pruned_to=int(first or 1) - 1)
            else:
                ledger(engine, into=self.book)
            expected = self.book.rows[table]
            rows = stored_rows(engine, table, ids)
            return {i: mark(expected.get(i), table, rows.get(i)) for i in ids}
