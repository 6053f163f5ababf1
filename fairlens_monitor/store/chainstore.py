"""The audit chain's rows in the database: read events and checkpoints, append a checkpoint.

simulate → measure → detect → alert → **log**. :class:`ChainStore` is the part of the
:class:`~fairlens_monitor.store.repository.Repository` that reads the ``audit_events`` and
``checkpoints`` tables for verification, export and proofs (streamed in batches, so memory
stays flat whatever the chain's length) and stores a signed checkpoint. The helpers below
work inside a caller's session (the sealing hook).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from fairlens_monitor.audit.chain import GENESIS_HASH, AuditRecord, Link, StoredRecord
from fairlens_monitor.audit.checkpoints import Checkpoint
from fairlens_monitor.errors import DamagedRecordError
from fairlens_monitor.store.models import (
    AuditEvent,
    AuditPayloadEdit,
    CheckpointRow,
)

CHECKPOINTS: Table = CheckpointRow.__table__  # type: ignore[assignment]
# SQLite: verification maps the file into memory for its one full read (no read() copy per
# page); 0 again afterwards. Larger than any database the benchmark builds (~1 GB).
MMAP_BYTES = 1 << 34
LAST_CHECKPOINT_SEQ = select(func.max(CHECKPOINTS.c.seq))
LAST_CHECKPOINT = (
    select(
        CHECKPOINTS.c.seq,
        CHECKPOINTS.c.head_hash,
        CHECKPOINTS.c.ts,
        CHECKPOINTS.c.key_id,
        CHECKPOINTS.c.signature,
        CHECKPOINTS.c.prev,
    )
    .order_by(CHECKPOINTS.c.id.desc())
    .limit(1)
)

RECORD_COLUMNS = (
    AuditEvent.seq,
    AuditEvent.ts,
    AuditEvent.event_type,
    AuditEvent.actor,
    AuditEvent.prev_hash,
    AuditEvent.hash,
    AuditEvent.canonical,
)
EDITS: Table = AuditPayloadEdit.__table__  # type: ignore[assignment]


class ChainStore:
    """Reads of the chain's tables and the checkpoint write (mixed into ``Repository``)."""

    engine: Engine
    sessions: sessionmaker[Session]

    def _connect(self) -> AbstractContextManager[Connection]:
        """A connection for streaming reads (the repository supplies it)."""
        raise NotImplementedError

    def events_of_type(self, event_type: str) -> list[tuple[int, dict[str, Any]]]:
        """Return ``(seq, payload)`` of every audit event of this type, in seq order.

        The payload is read from the hashed bytes (its only stored copy). A damaged row
        (canonical text that is not a JSON object with an object payload) is left out:
        verification reports it.
        """
        with self.sessions() as s:
            rows = s.execute(
                select(AuditEvent.seq, AuditEvent.canonical)
                .where(AuditEvent.event_type == event_type)
                .order_by(AuditEvent.seq)
            ).all()
        return [
            (seq, payload)
            for seq, text_ in rows
            if type(seq) is int and (payload := payload_of(text_)) is not None
        ]

    def audit_tail(self, last: int) -> list[AuditRecord]:
        """Return the ``last`` audit records, oldest first.

        Raises:
            DamagedRecordError: one of them cannot be read as the record written.
        """
        with self.sessions() as s:
            rows = s.execute(
                select(*RECORD_COLUMNS).order_by(AuditEvent.id.desc()).limit(last)
            ).all()
        return [checked_record(row) for row in reversed(rows)]

    def iter_records(self, order: str = "id", batch: int = 5000) -> Iterator[AuditRecord]:
        """Yield every audit record as plain rows, streaming.

        Args:
            order: ``id`` (storage order) or ``seq``.
            batch: rows fetched at a time.

        Raises:
            DamagedRecordError: a row cannot be read as the record written.
        """
        column = {"id": AuditEvent.id, "seq": AuditEvent.seq}[order]
        with self._connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(
                select(*RECORD_COLUMNS).order_by(column)
            )
            try:
                for row in result:
                    yield checked_record(row)
            finally:
                result.close()  # a damaged row stops the stream: close its server cursor

    def iter_stored(self, batch: int = 20000, from_seq: int = 0) -> Iterator[StoredRecord]:
        """Yield every audit row in storage order, as verification reads it.

        ``from_seq``: only the rows with ``seq >= from_seq`` (an incremental walk; the seq
        index finds them, so the cost is that of the rows read).

        As fast as the driver delivers rows: a plain DB-API cursor (server-side on
        PostgreSQL, so memory stays flat; on SQLite the file is memory-mapped for the read),
        no JSON parsed, and each row the cursor's own tuple in :class:`StoredRecord`'s
        column order (``verify_chain`` unpacks it; no object is built per row). ``edited``
        is 1 for the seqs ``audit_payload_edits`` names (see migration 0013).
        """
        with self._connect() as conn:
            edits = conn.execute(select(func.count()).select_from(EDITS)).scalar()
            edited = "seq IN (SELECT seq FROM audit_payload_edits)" if edits else "0"
            sql = (
                f"SELECT seq, ts, event_type, actor, prev_hash, hash, canonical, {edited} "  # noqa: S608
                f"FROM audit_events{_from(from_seq)} ORDER BY id"
            )
            raw: Any = conn.connection.dbapi_connection
            server_side = self.engine.dialect.name == "postgresql"
            if not server_side:
                raw.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            cursor = raw.cursor(name="fairlens_verify") if server_side else raw.cursor()
            try:
                cursor.execute(sql)
                if server_side:
                    while rows := cursor.fetchmany(batch):
                        yield from rows
                else:
                    yield from cursor
            finally:
                cursor.close()
                if not server_side:
                    raw.execute("PRAGMA mmap_size = 0")

    def iter_links(self, batch: int = 20000, from_seq: int = 0) -> Iterator[Link]:
        """Yield ``(seq, prev_hash, hash)`` of every audit record in seq order (those with
        ``seq >= from_seq``)."""
        query = select(AuditEvent.seq, AuditEvent.prev_hash, AuditEvent.hash)
        if from_seq:
            query = query.where(AuditEvent.seq >= from_seq)
        with self._connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(query.order_by(AuditEvent.seq))
            for rows in result.partitions():
                yield from map(Link._make, rows)

    def find_event(self, hash_hex: str) -> AuditRecord | None:
        """Return the audit record with this hash, or None.

        Raises:
            DamagedRecordError: the row cannot be read as the record written.
        """
        with self.sessions() as s:
            row = s.execute(select(*RECORD_COLUMNS).where(AuditEvent.hash == hash_hex)).first()
        return checked_record(row) if row else None

    def head(self) -> tuple[int, str]:
        """Return the chain head as ``(seq, hash)``; ``(0, GENESIS_HASH)`` when empty."""
        with self.sessions() as s:
            row = s.execute(
                select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
            ).first()
            return (row[0], row[1]) if row else (0, GENESIS_HASH)

    def checkpoint_count(self) -> int:
        """Return how many checkpoints the database records."""
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(CheckpointRow)) or 0)

    def last_checkpoint_seq(self) -> int:
        """Return the seq of the newest checkpoint (0 when there is none)."""
        with self._connect() as conn:
            return int(conn.execute(LAST_CHECKPOINT_SEQ).scalar() or 0)

    def checkpoints(self) -> list[Checkpoint]:
        """Return every checkpoint recorded in the database, oldest first."""
        with self.sessions() as s:
            rows = s.execute(
                select(
                    CheckpointRow.seq,
                    CheckpointRow.head_hash,
                    CheckpointRow.ts,
                    CheckpointRow.key_id,
                    CheckpointRow.signature,
                    CheckpointRow.prev,
                ).order_by(CheckpointRow.id)
            ).all()  # plain rows: one a cycle
            return [Checkpoint(*r) for r in rows]

    def last_checkpoint(self) -> Checkpoint | None:
        """Return the checkpoint recorded last (the next one's ``prev``), or None."""
        with self.sessions() as s:
            return last_checkpoint_in(s)

    def save_checkpoint(self, cp: Checkpoint) -> None:
        """Record a signed checkpoint (its own transaction)."""
        with self.sessions.begin() as s:
            add_checkpoint(s, cp)


def _from(from_seq: int) -> str:
    """The WHERE clause of an incremental read (empty for a whole one). Through the seq
    index: ``WHERE seq >= N ORDER BY id`` makes SQLite walk the whole table in id order."""
    if not from_seq:
        return ""
    return f" WHERE id IN (SELECT id FROM audit_events WHERE seq >= {int(from_seq)})"  # noqa: S608


def last_checkpoint_in(s: Session) -> Checkpoint | None:
    """The checkpoint recorded last, read inside the caller's transaction (or None)."""
    row = s.connection().execute(LAST_CHECKPOINT).first()
    return None if row is None else Checkpoint(*row)


def add_checkpoint(s: Session, cp: Checkpoint) -> None:
    """Record ``cp`` inside the caller's transaction."""
    s.connection().execute(
        insert(CHECKPOINTS),
        {
            "seq": cp.seq,
            "head_hash": cp.head_hash,
            "ts": cp.ts,
            "key_id": cp.key_id,
            "signature": cp.signature,
            "prev": cp.prev,
        },
    )


def checked_record(row: Sequence[Any]) -> AuditRecord:
    """Build a record from a row of :data:`RECORD_COLUMNS`; the payload from the hashed text.

    Raises:
        DamagedRecordError: a column is not of its type or the canonical text is not a JSON
            object with an object payload (the row was damaged; ``verify`` says how).
    """
    seq, ts, event_type, actor, prev_hash, hash_, canonical = row
    payload = payload_of(canonical)
    if (
        payload is None
        or type(seq) is not int
        or not all(type(v) is str for v in (ts, event_type, actor, prev_hash, hash_, canonical))
    ):
        raise DamagedRecordError(seq)
    return AuditRecord(
        seq=seq,
        ts=ts,
        event_type=event_type,
        actor=actor,
        payload=payload,
        prev_hash=prev_hash,
        hash=hash_,
        canonical=canonical,
    )


def payload_of(canonical: object) -> dict[str, Any] | None:
    """The payload inside an event's hashed text, or None when that text is not a JSON
    object whose ``payload`` is an object (a damaged row)."""
    if not isinstance(canonical, str):
        return None
    try:
        value = json.loads(canonical)
    except ValueError:
        return None
    payload = value.get("payload") if isinstance(value, dict) else None
    return payload if isinstance(payload, dict) else None
