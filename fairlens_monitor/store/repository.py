"""The repository: the only code that reads and writes the monitor's tables.

Each public write is one transaction. A cycle's run row, readings, alert and audit events
commit together or not at all, and audit appends take the chain head inside that same
write transaction — under ``BEGIN IMMEDIATE`` on SQLite, under a transaction-level advisory
lock (``pg_advisory_xact_lock``) on PostgreSQL — so concurrent writers form one linear
chain. The reads of the chain's own tables (events, checkpoints) are
:class:`~fairlens_monitor.store.chainstore.ChainStore`, which ``Repository`` extends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.orm import sessionmaker

from fairlens_monitor.audit.chain import AuditRecord
from fairlens_monitor.audit.events import CYCLE_FAILED
from fairlens_monitor.store.chainstore import ChainStore, payload_of
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
    GroupResult,
    Reading,
    Run,
    SourceFile,
)
from fairlens_monitor.store.rowstore import row_digests


class Repository(ChainStore):
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
        candidates: Mapping[str, Alert],
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
            candidates: per alert kind, the alert to add if this reading opens an episode
                (looked up only then: a lazy mapping may build and encrypt it on demand).
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
            texts = s.scalars(
                select(AuditEvent.canonical)
                .where(AuditEvent.event_type.in_(tuple(event_types)))
                .order_by(AuditEvent.seq.desc())
                .limit(100)
            )
            payloads = (p for p in map(payload_of, texts) if p is not None)
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
