"""The repository: the only code that reads and writes the monitor's tables.

Each public write is one transaction. A cycle's run row, readings, alert and audit events
commit together or not at all, and audit appends take the chain head inside that same
write transaction — under ``BEGIN IMMEDIATE`` on SQLite, under a transaction-level advisory
lock (``pg_advisory_xact_lock``) on PostgreSQL — so concurrent writers form one linear
chain. The reads of the chain's own tables (events, checkpoints) are
:class:`~fairlens_monitor.store.chainstore.ChainStore`, which ``Repository`` extends.

A repository is scoped to one monitor (``Repository(engine, monitor="auto_loans")``,
``repo.for_monitor(name)``; revision 0015): its cycle index, completed cycles, drift
history, open alert episodes, seen files, settings snapshot and latest readings are that
monitor's, every row it writes carries the monitor, and every event a monitor's write
appends names it (``"monitor": NAME``). The audit chain, its checkpoints and the
``monitors`` table are one for the whole service.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from fairlens_monitor.audit.chain import AuditRecord
from fairlens_monitor.audit.events import CYCLE_FAILED, MONITOR_EVENTS
from fairlens_monitor.store import monitors, outbox
from fairlens_monitor.store.chainstore import ChainStore, payload_of
from fairlens_monitor.store.cyclewrite import (
    RUNS,
    CycleRows,
    Events,
    SavedCycle,
    Seal,
    append,
    drift_history,
    ensure_monitor,
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
from fairlens_monitor.store.monitors import DEFAULT_MONITOR, MonitorRow, check_name
from fairlens_monitor.store.rowstore import row_digests

# What a settings snapshot carries: the rules, or (events older than snapshots) their hash.
_SNAPSHOT_KEYS = frozenset({"settings", "config_hash", "new_config_hash"})


class Repository(ChainStore):
    """Reads and writes one monitor's runs, readings and alerts, and the one audit chain,
    through one engine."""

    def __init__(
        self, engine: Engine, *, monitor: str = DEFAULT_MONITOR, bind: Connection | None = None
    ) -> None:
        """Wrap ``engine``; the repository never creates or migrates the schema.

        Args:
            engine: the database.
            monitor: the monitor whose rows this repository reads and writes (``default``:
                the one monitor of a single-monitor config).
            bind: read through this connection instead, inside its open transaction (so
                ``db copy`` verifies what it wrote before it commits).

        Raises:
            ValueError: ``monitor`` is not 1-64 characters of ``a-z``, ``0-9`` and ``_``.
        """
        self.engine = engine
        self.bind = bind
        self.monitor = check_name(monitor, "Repository(monitor=...)")
        self.sessions = sessionmaker(engine if bind is None else bind, expire_on_commit=False)
        outbox.watch_commits(self.sessions)  # a commit that wrote notifications wakes a worker
        self._listed = False  # the monitor's row is known to exist (see save_cycle)

    def for_monitor(self, name: str) -> Repository:
        """Return a repository of monitor ``name`` on the same engine (and connection).

        It shares this repository's session factory, so what is attached to it — the
        sealer of the writer's events (``ops.sealing``), the daemon's fencing of its
        commits (``store.lease``) — holds for every monitor's writes too.

        Raises:
            ValueError: ``name`` is not a valid monitor name.
        """
        scoped = Repository(self.engine, monitor=name, bind=self.bind)
        scoped.sessions = self.sessions
        return scoped

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
            return position(conn, self.monitor)

    def completed_cycles(self) -> int:
        """Return the next cycle's zero-based index: one past the newest ``ok`` run's (the
        number of runs that finished ``ok``, unless retention deleted some)."""
        return self.cycle_position()[0]

    def alert_count(self) -> int:
        """Return how many alerts (encrypted tokens) the database holds, of every monitor
        (what decides whether the alert key may be created)."""
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
        listing: MonitorRow | None = None,
        routes: outbox.Routes | None = None,
    ) -> SavedCycle:
        """Commit a whole cycle of this repository's monitor in one transaction, alert
        episodes included. On the monitor's first run its ``monitors`` row is inserted just
        before, with ``monitor_added``, in a transaction of its own (so a sealer attached to
        this repository signs that event at once, as ``ops.sealing`` does every such event).

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
            listing: the monitor's row as a first run creates it (``monitors.row_for``);
                None creates a bare one. Ignored once the row exists.
            routes: ``notify.on`` of the monitor: the notifications its alert events call
                for are written in this transaction (``store.outbox``); None writes none.

        Returns:
            The ids assigned, the alert transitions and the audit records appended
            (``added``: the ``monitor_added`` record when this run created the row).

        Raises:
            StaleCycleError: ``expect`` no longer holds; nothing was committed (measure
                again from the new position).
            sqlalchemy.exc.SQLAlchemyError: the write failed; nothing was committed.
        """
        rows = CycleRows(
            run,
            readings,
            groups,
            candidates,
            qualifies,
            files,
            judge,
            monitor=self.monitor,
            routes=routes,
        )
        added = self._ensure_listed(listing, run, ts)
        with self.sessions.begin() as s:
            saved = write_cycle(
                s,
                rows,
                events,
                close_after=close_after,
                actor=actor,
                ts=ts,
                expect=expect,
                seal=seal,
            )
        return replace(saved, added=added)

    def _ensure_listed(self, listing: MonitorRow | None, run: Run, ts: str) -> AuditRecord | None:
        """Make sure this monitor's row exists (its first run inserts it, with
        ``monitor_added``), in a transaction of its own; once known, no lookup again."""
        if self._listed:
            return None
        with self.sessions.begin() as s:
            serialise(s)
            row = listing or MonitorRow(self.monitor, run.started_at)
            added = ensure_monitor(s, row, actor=run.actor, ts=ts)
        self._listed = True
        return added

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
            reference approved, reference applicants)`` of this monitor's first
            ``baseline_readings`` assessed readings, and its latest reading's drift
            statistic (0.0 if none).
        """
        with self._connect() as conn:
            return drift_history(conn, attribute, baseline_readings, self.monitor)

    def cycle_inputs(
        self, attribute: str, baseline_readings: int
    ) -> tuple[tuple[int, int], list[tuple[int, int, int, int]], float]:
        """:meth:`cycle_position` and :meth:`drift_history` read together, in one
        transaction (what a cycle reads before measuring).

        Returns:
            ``(position, rows, previous)``.
        """
        with self._connect() as conn:
            return (
                position(conn, self.monitor),
                *drift_history(conn, attribute, baseline_readings, self.monitor),
            )

    def seen_files(self) -> dict[str, tuple[str, int, int]]:
        """Return, per decision file path this monitor read, its newest recorded
        ``(sha256, size, mtime_ns)``."""
        newest = (
            select(func.max(SourceFile.id))
            .where(SourceFile.monitor == self.monitor)
            .group_by(SourceFile.path)
        )
        with self.sessions() as s:
            rows = s.execute(
                select(
                    SourceFile.path, SourceFile.sha256, SourceFile.size_bytes, SourceFile.mtime_ns
                ).where(SourceFile.id.in_(newest))
            ).all()
        return {str(p): (str(h), int(size), int(mtime)) for p, h, size, mtime in rows}

    def save_failed_run(
        self,
        run: Run,
        payload: dict[str, Any],
        *,
        ts: str,
        listing: MonitorRow | None = None,
        routes: outbox.Routes | None = None,
        failing_after: int | None = None,
    ) -> SavedCycle:
        """Record a failed run of this monitor and its ``cycle_failed`` audit event (naming
        the monitor) in one transaction; on the monitor's first run its ``monitors`` row just
        before (see :meth:`save_cycle`), so a monitor failing from the start is in the
        inventory (and stale there).

        Args:
            run: the run row (status ``failed``, with ``error``).
            payload: audit details; ``run_id`` and ``monitor`` are added here.
            ts: RFC 3339 time of the audit event.
            listing: the monitor's row as a first run creates it (see :meth:`save_cycle`).
            routes: ``notify.on`` of the monitor (see :meth:`save_cycle`).
            failing_after: this many failed runs in a row is ``source_failing``.

        Returns:
            The run id and the audit record.
        """
        added = self._ensure_listed(listing, run, ts)
        with self.sessions.begin() as s:
            serialise(s)
            run.monitor = self.monitor
            insert_rows(s.connection(), RUNS, [run])
            record = append(
                s,
                CYCLE_FAILED,
                run.actor,
                {
                    "run_id": run.id,
                    **payload,
                    "monitor": self.monitor,
                    "row_digests": row_digests(s, {"runs": [run.id]}),
                },
                ts,
            )
            at = run.finished_at or run.started_at
            outbox.enqueue(s, [record], routes, at=at, failing_after=failing_after)
            return SavedCycle(run.id, [], [], [record], added=added)

    def append_event(
        self,
        event_type: str,
        actor: str,
        payload: dict[str, Any],
        *,
        ts: str,
        scoped: bool = False,
    ) -> AuditRecord:
        """Append one audit event in its own transaction and return it.

        Args:
            event_type: one of ``audit.events``.
            actor: who did it.
            payload: its details.
            ts: RFC 3339 time.
            scoped: the event concerns this repository's monitor: its payload gets
                ``"monitor": NAME`` (a service event such as ``daemon_leading`` does not).
        """
        if scoped:
            payload = {**payload, "monitor": self.monitor}
        with self.sessions.begin() as s:
            serialise(s)
            return append(s, event_type, actor, payload, ts)

    def monitor_rows(self) -> list[MonitorRow]:
        """Return every monitor's row (all of the service, by name)."""
        with self._connect() as conn:
            return monitors.read_rows(conn)

    def put_monitors(
        self,
        rows: Sequence[MonitorRow],
        *,
        event_type: str,
        payload: dict[str, Any],
        actor: str,
        ts: str,
    ) -> AuditRecord:
        """Write these monitors' rows and one audit event recording their digests, in one
        transaction (a row of the same name is updated in place, every column).

        Args:
            rows: the rows (each name once).
            event_type: one of ``audit.events.MONITOR_EVENTS`` (the events that may record
                a monitor row's new digest).
            payload: the event's details; ``rows`` (each row's values,
                ``monitors.listing``) and ``row_digests`` are added here, and ``monitor``
                (the row's name) when one row is written and the payload names none.
            actor: who made the change.
            ts: RFC 3339 time of the event.

        Returns:
            The appended record.

        Raises:
            ValueError: no rows, an invalid or repeated name, or another event type; nothing
                was written.
        """
        with self.sessions.begin() as s:
            serialise(s)
            return _write_monitors(s, rows, event_type, payload, actor, ts)

    def put_monitors_if(
        self,
        rows: Sequence[MonitorRow],
        *,
        expect: Sequence[MonitorRow | None],
        event_type: str,
        payload: dict[str, Any],
        actor: str,
        ts: str,
    ) -> AuditRecord | None:
        """:meth:`put_monitors`, only while the table still holds what the caller read.

        Two processes starting at once (a daemon and a ``once``) both read the table, then
        both record the same addition or change; with this, the second finds the first's
        row inside its own serialised transaction and writes nothing.

        Args:
            rows: as :meth:`put_monitors`.
            expect: for each row (same order), the row of that name as the caller read it
                (None: there was none).
            event_type: as :meth:`put_monitors`.
            payload: as :meth:`put_monitors`.
            actor: as :meth:`put_monitors`.
            ts: as :meth:`put_monitors`.

        Returns:
            The appended record, or None when a row changed since it was read (nothing
            was written).

        Raises:
            ValueError: as :meth:`put_monitors`, or ``expect`` not one per row.
        """
        if len(expect) != len(rows):
            raise ValueError("put_monitors_if expect: give one (or None) per row")
        with self.sessions.begin() as s:
            serialise(s)
            now = {row.name: row for row in monitors.read_rows(s)}
            if any(now.get(r.name) != seen for r, seen in zip(rows, expect, strict=True)):
                return None  # another process wrote them since the caller read them
            return _write_monitors(s, rows, event_type, payload, actor, ts)

    def last_settings_snapshot(
        self, event_types: Sequence[str]
    ) -> tuple[dict[str, Any] | None, str | None]:
        """Return this monitor's newest recorded settings snapshot and config hash.

        An event is this monitor's when its payload's ``monitor`` names it; one naming no
        monitor (written before revision 0015) is the ``default`` monitor's.

        Args:
            event_types: the audit events that carry a ``settings`` snapshot.

        Returns:
            ``(settings, config_hash)`` of the newest such event; the settings are None when
            it carries none (recorded before snapshots existed), and both are None when no
            such event exists.
        """
        mine: list[ColumnElement[bool]] = [AuditEvent.event_type.in_(tuple(event_types))]
        if self.monitor != DEFAULT_MONITOR:  # a prefilter: the payload is checked below
            mine.append(AuditEvent.canonical.contains(f'"monitor":"{self.monitor}"'))
        with self.sessions() as s:  # a standby's daemon_started carries no snapshot: skip it
            texts = s.scalars(
                select(AuditEvent.canonical)
                .where(*mine)
                .order_by(AuditEvent.seq.desc())
                .execution_options(yield_per=100)
            )
            payloads = (p for p in map(payload_of, texts) if p is not None)
            try:
                payload = next(
                    (
                        p
                        for p in payloads
                        if p.get("role") != "standby"
                        and p.get("monitor", DEFAULT_MONITOR) == self.monitor
                        and not _SNAPSHOT_KEYS.isdisjoint(p)  # not a first run's bare row
                    ),
                    None,
                )
            finally:
                texts.close()  # stopped early: close PostgreSQL's server-side cursor
        if payload is None:
            return None, None
        settings = payload.get("settings")
        digest = payload.get("new_config_hash", payload.get("config_hash"))
        return (
            settings if isinstance(settings, dict) else None,
            digest if isinstance(digest, str) else None,
        )

    def latest_readings(self, last: int, *, every_monitor: bool = False) -> list[Reading]:
        """Return this monitor's ``last`` most recent readings, oldest first (with
        ``every_monitor``, the service's newest of any monitor: ``history``'s default)."""
        query = select(Reading).order_by(Reading.id.desc()).limit(last)
        if not every_monitor:
            query = query.where(Reading.monitor == self.monitor)
        with self.sessions() as s:
            rows = s.scalars(query).all()
        return list(reversed(rows))


def _write_monitors(
    s: Session,
    rows: Sequence[MonitorRow],
    event_type: str,
    payload: dict[str, Any],
    actor: str,
    ts: str,
) -> AuditRecord:
    """Upsert ``rows`` and append the event recording their digests in the serialised
    transaction ``s`` (see :meth:`Repository.put_monitors`)."""
    if event_type not in MONITOR_EVENTS:
        raise ValueError("put_monitors event_type: use one of " + ", ".join(MONITOR_EVENTS))
    if not rows:
        raise ValueError("put_monitors rows: give at least one monitor row")
    extra = {"monitor": rows[0].name} if len(rows) == 1 and "monitor" not in payload else {}
    ids = monitors.upsert(s, rows)
    digests = row_digests(s, {"monitors": ids})
    listed = {"rows": [monitors.listing(r) for r in rows]}
    return append(s, event_type, actor, {**payload, **extra, **listed, "row_digests": digests}, ts)
