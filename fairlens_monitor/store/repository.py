"""The repository: the only code that reads and writes the monitor's tables.

Each public write is one transaction. A cycle's run row, readings, alert and audit events
commit together or not at all, and audit appends take the chain head inside that same
write transaction — under ``BEGIN IMMEDIATE`` on SQLite, under a transaction-level advisory
lock (``pg_advisory_xact_lock``) on PostgreSQL — so concurrent writers form one linear
chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, Text, cast, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from fairlens_monitor.audit.chain import GENESIS_HASH, AuditRecord, Link, StoredRecord
from fairlens_monitor.audit.checkpoints import Checkpoint
from fairlens_monitor.audit.events import CYCLE_FAILED
from fairlens_monitor.errors import DamagedRecordError
from fairlens_monitor.store.cyclewrite import (
    RUNS,
    CycleRows,
    Events,
    SavedCycle,
    Seal,
    append,
    drift_history,
    insert_rows,
    position,
    serialise,
    write_cycle,
)
from fairlens_monitor.store.models import (
    Alert,
    AuditEvent,
    CheckpointRow,
    GroupResult,
    Reading,
    Run,
    SourceFile,
)
from fairlens_monitor.store.rowstore import row_digests

CHECKPOINTS: Table = CheckpointRow.__table__  # type: ignore[assignment]
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


class Repository:
    """Reads and writes runs, readings, alerts and audit events through one engine."""

    def __init__(self, engine: Engine, *, bind: Connection | None = None) -> None:
        """Wrap ``engine``; the repository never creates or migrates the schema.

        Args:
            engine: the database.
            bind: read through this connection instead, inside its open transaction (so
                ``db copy`` verifies what it wrote before it commits).
        """
        self.engine = engine
        self.bind = bind
        self.sessions = sessionmaker(engine if bind is None else bind, expire_on_commit=False)

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """A connection for streaming reads: the bound one, or a new one from the engine."""
        if self.bind is not None:
            yield self.bind
            return
        with self.engine.connect() as conn:
            yield conn

    def cycle_position(self) -> tuple[int, int]:
        """Return ``(ok runs, newest ok run id)``: what the next cycle builds on.

        The count is the next cycle's index; the id changes with every committed cycle, so a
        cycle that read this before measuring can tell, under the chain lock, whether another
        process committed one in between (see ``save_cycle``'s ``expect``).
        """
        with self._connect() as conn:
            return position(conn)

    def completed_cycles(self) -> int:
        """Return the next cycle's zero-based index: one past the newest ``ok`` run's (the
        number of runs that finished ``ok``, unless retention deleted some)."""
        return self.cycle_position()[0]

    def alert_count(self) -> int:
        """Return how many alerts (encrypted tokens) the database holds."""
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Alert)) or 0)

    def save_cycle(
        self,
        run: Run,
        readings: Sequence[Reading],
        groups: Sequence[Sequence[GroupResult]],
        candidates: dict[str, Alert],
        qualifies: dict[str, bool],
        events: Events,
        *,
        close_after: int,
        actor: str,
        ts: str,
        files: Sequence[SourceFile] = (),
        judge: bool = True,
        expect: tuple[int, int] | None = None,
        seal: Seal | None = None,
    ) -> SavedCycle:
        """Commit a whole cycle in one transaction, alert episodes included.

        Args:
            run: the run row (status ``ok``).
            readings: its readings (reference, then monitored); ``run_id`` is filled in here.
            groups: the group rows of each reading, in the same order.
            candidates: per alert kind, the alert to add if this reading opens an episode.
            qualifies: per alert kind, whether the monitored reading meets its condition.
            events: called once the rows have ids and the episode transitions are known;
                returns ``(event_type, payload)`` pairs to append to the audit chain.
            close_after: clean readings in a row that resolve an episode.
            actor: who ran the cycle (``daemon`` or ``cli``).
            ts: RFC 3339 time of the audit events.
            files: the decision files read, attached to the last reading.
            judge: False for a ``no_data`` reading: alert episodes are neither advanced nor
                closed by a window without decisions.
            expect: the :meth:`cycle_position` the cycle was measured from; checked under
                the chain lock, so a cycle whose index or drift history another process
                changed meanwhile is not committed.
            seal: signs a checkpoint of the new head inside this transaction when one is
                due (``sealing.Sealer``); None signs none.

        Returns:
            The ids assigned, the alert transitions and the audit records appended.

        Raises:
            StaleCycleError: ``expect`` no longer holds; nothing was committed (measure
                again from the new position).
            sqlalchemy.exc.SQLAlchemyError: the write failed; nothing was committed.
        """
        with self.sessions.begin() as s:
            return write_cycle(
                s,
                CycleRows(run, readings, groups, candidates, qualifies, files, judge),
                events,
                close_after=close_after,
                actor=actor,
                ts=ts,
                expect=expect,
                seal=seal,
            )

    def drift_history(
        self, attribute: str, baseline_readings: int
    ) -> tuple[list[tuple[int, int, int, int]], float]:
        """Return what the drift chart needs about earlier monitored readings.

        Args:
            attribute: the protected attribute as stored (readings of another attribute
                belong to another chart).
            baseline_readings: how many of the first readings form the baseline.

        Returns:
            ``(rows, previous)``: the headline counts ``(approved, applicants,
            reference approved, reference applicants)`` of the first ``baseline_readings``
            assessed readings, and the latest reading's drift statistic (0.0 if none).
        """
        with self._connect() as conn:
            return drift_history(conn, attribute, baseline_readings)

    def cycle_inputs(
        self, attribute: str, baseline_readings: int
    ) -> tuple[tuple[int, int], list[tuple[int, int, int, int]], float]:
        """:meth:`cycle_position` and :meth:`drift_history` read together, in one
        transaction (what a cycle reads before measuring).

        Returns:
            ``(position, rows, previous)``.
        """
        with self._connect() as conn:
            return (position(conn), *drift_history(conn, attribute, baseline_readings))

    def seen_files(self) -> dict[str, tuple[str, int, int]]:
        """Return, per decision file path, its newest recorded ``(sha256, size, mtime_ns)``."""
        newest = select(func.max(SourceFile.id)).group_by(SourceFile.path)
        with self.sessions() as s:
            rows = s.execute(
                select(
                    SourceFile.path, SourceFile.sha256, SourceFile.size_bytes, SourceFile.mtime_ns
                ).where(SourceFile.id.in_(newest))
            ).all()
        return {str(p): (str(h), int(size), int(mtime)) for p, h, size, mtime in rows}

    def save_failed_run(self, run: Run, payload: dict[str, Any], *, ts: str) -> SavedCycle:
        """Record a failed run and its ``cycle_failed`` audit event in one transaction.

        Args:
            run: the run row (status ``failed``, with ``error``).
            payload: audit details; ``run_id`` is added here.
            ts: RFC 3339 time of the audit event.

        Returns:
            The run id and the audit record.
        """
        with self.sessions.begin() as s:
            serialise(s)
            insert_rows(s.connection(), RUNS, [run])
            record = append(
                s,
                CYCLE_FAILED,
                run.actor,
                {"run_id": run.id, **payload, "row_digests": row_digests(s, {"runs": [run.id]})},
                ts,
            )
            return SavedCycle(run.id, [], [], [record])

    def append_event(
        self, event_type: str, actor: str, payload: dict[str, Any], *, ts: str
    ) -> AuditRecord:
        """Append one audit event in its own transaction and return it."""
        with self.sessions.begin() as s:
            serialise(s)
            return append(s, event_type, actor, payload, ts)

    def events_of_type(self, event_type: str) -> list[tuple[int, dict[str, Any]]]:
        """Return ``(seq, payload)`` of every audit event of this type, in seq order.

        A damaged row (payload not a JSON object) is left out: verification reports it.
        """
        with self.sessions() as s:
            rows = s.execute(
                select(AuditEvent.seq, cast(AuditEvent.payload, Text))
                .where(AuditEvent.event_type == event_type)
                .order_by(AuditEvent.seq)
            ).all()
        return [
            (seq, payload)
            for seq, text_ in rows
            if type(seq) is int and (payload := _object(text_)) is not None
        ]

    def last_settings_snapshot(
        self, event_types: Sequence[str]
    ) -> tuple[dict[str, Any] | None, str | None]:
        """Return the newest recorded settings snapshot and config hash.

        Args:
            event_types: the audit events that carry a ``settings`` snapshot.

        Returns:
            ``(settings, config_hash)`` of the newest such event; the settings are None when
            it carries none (recorded before snapshots existed), and both are None when no
            such event exists.
        """
        with self.sessions() as s:  # a standby's daemon_started carries no snapshot: skip it
            payloads = s.scalars(
                select(AuditEvent.payload)
                .where(AuditEvent.event_type.in_(tuple(event_types)))
                .order_by(AuditEvent.seq.desc())
                .limit(100)
            )
            payload = next((p for p in payloads if p.get("role") != "standby"), None)
        if payload is None:
            return None, None
        settings = payload.get("settings")
        digest = payload.get("new_config_hash", payload.get("config_hash"))
        return (
            settings if isinstance(settings, dict) else None,
            digest if isinstance(digest, str) else None,
        )

    def latest_readings(self, last: int) -> list[Reading]:
        """Return the ``last`` most recent readings, oldest first."""
        with self.sessions() as s:
            rows = s.scalars(select(Reading).order_by(Reading.id.desc()).limit(last)).all()
        return list(reversed(rows))

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

    def iter_stored(self, batch: int = 20000) -> Iterator[StoredRecord]:
        """Yield every audit row in storage order with its payload column as stored text.

        What verification reads, as fast as the driver delivers it: a plain DB-API cursor
        (server-side on PostgreSQL, so memory stays flat), no JSON parsed here, and the
        payload text only for rows whose columns the database could not match to their
        hashed text (see :class:`~fairlens_monitor.audit.chain.StoredRecord`).
        """
        if self.engine.dialect.name == "postgresql":
            quote, payload = "to_json({})::text", "payload::text"
        else:
            quote, payload = "json_quote({})", "CAST(payload AS TEXT)"
        # The database compares each row's columns with its hashed text (see
        # audit.canonical_text_of) and sends the payload only when they differ: NULL =
        # matched (a stored '' or NULL payload arrives as '' or 'null': never "matched").
        rebuilt = " || ".join(
            [
                "'{\"actor\":'",
                quote.format("actor"),
                "',\"event_type\":'",
                quote.format("event_type"),
                "',\"payload\":'",
                payload,
                "',\"seq\":'",
                "CAST(seq AS TEXT)",
                "',\"ts\":'",
                quote.format("ts"),
                "'}'",
            ]
        )
        sql = (
            f"SELECT seq, ts, event_type, actor, CASE WHEN canonical = ({rebuilt}) THEN NULL "  # noqa: S608
            f"ELSE COALESCE({payload}, 'null') END, prev_hash, hash, canonical "
            "FROM audit_events ORDER BY id"
        )
        with self._connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            server_side = self.engine.dialect.name == "postgresql"
            cursor = raw.cursor(name="fairlens_verify") if server_side else raw.cursor()
            try:
                cursor.execute(sql)
                while rows := cursor.fetchmany(batch):
                    yield from map(StoredRecord._make, rows)
            finally:
                cursor.close()

    def iter_links(self, batch: int = 20000) -> Iterator[Link]:
        """Yield ``(seq, prev_hash, hash)`` of every audit record in seq order."""
        with self._connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(
                select(AuditEvent.seq, AuditEvent.prev_hash, AuditEvent.hash).order_by(
                    AuditEvent.seq
                )
            )
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


RECORD_COLUMNS = (
    AuditEvent.seq,
    AuditEvent.ts,
    AuditEvent.event_type,
    AuditEvent.actor,
    cast(AuditEvent.payload, Text),
    AuditEvent.prev_hash,
    AuditEvent.hash,
    AuditEvent.canonical,
)


def checked_record(row: Sequence[Any]) -> AuditRecord:
    """Build a record from a row of :data:`RECORD_COLUMNS` (payload as text).

    Raises:
        DamagedRecordError: a column is not of its type or the payload is not a JSON object
            (the row was damaged; ``verify`` says how).
    """
    seq, ts, event_type, actor, payload_text, prev_hash, hash_, canonical = row
    payload = _object(payload_text)
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


def _object(payload_text: object) -> dict[str, Any] | None:
    """The payload column parsed, or None when it is not the text of a JSON object."""
    if not isinstance(payload_text, str):
        return None
    try:
        value = json.loads(payload_text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
