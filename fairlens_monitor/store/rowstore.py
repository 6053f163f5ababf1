"""Row digests at the database edge: take them inside a write, check them in ``verify``.

Both sides read rows the same way — a plain DB-API cursor on the form's columns, values as
the driver returns them — and hand them to ``rowforms``, so the digest a transaction records
is exactly the one ``verify`` recomputes later, on SQLite, on PostgreSQL and after
``db copy``. See ``rowcheck`` for what the events record and how they are replayed.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.orm import Session

from fairlens_monitor.audit.events import (
    ALERT_RAISED,
    ALERT_RESOLVED,
    CHAIN_PRUNED,
    CYCLE_COMPLETED,
    MONITOR_EVENTS,
    ROWS_BASELINE,
)
from fairlens_monitor.audit.rowcheck import ROW_EVENTS, CheckedEntries, RowLedger
from fairlens_monitor.audit.rowforms import CURRENT_FORM, FORMS, TABLES
from fairlens_monitor.audit.verify import Anomaly
from fairlens_monitor.store.models import AuditEvent

Digests = dict[str, Any]
ROW_EVENT_TYPES = frozenset(ROW_EVENTS)


def _select(table: str, where: str = "") -> str:
    columns = ", ".join(f'"{c}"' for c in FORMS[CURRENT_FORM][table].columns)
    return f'SELECT {columns} FROM "{table}"{where} ORDER BY "id"'  # noqa: S608 (names are ours)


def row_digests(s: Session, written: Mapping[str, Iterable[int]]) -> Digests:
    """Digest the rows this transaction wrote, as the database now holds them.

    Args:
        s: the write transaction's session (flushed).
        written: per table, the ids written or changed.

    Returns:
        ``{"form": CURRENT_FORM, "<table>": [[id, digest], ...]}`` for the tables with ids.
    """
    cursor = s.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    out: Digests = {"form": CURRENT_FORM}
    try:
        for table in TABLES:
            ids = sorted({int(i) for i in written.get(table, ())})
            if not ids:
                continue
            form = FORMS[CURRENT_FORM][table]
            cursor.execute(_select(table, f' WHERE "id" IN ({", ".join(map(str, ids))})'))
            out[table] = [[row[0], form.digest(row)] for row in cursor.fetchall()]
    finally:
        cursor.close()
    return out


def stored_rows(engine: Engine, table: str, ids: Iterable[int]) -> dict[int, Sequence[Any]]:
    """The stored rows of ``table`` with these ids (current form's columns), by id."""
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(_select(table, f' WHERE "id" IN ({", ".join(map(str, wanted))})'))
            return {row[0]: row for row in cursor.fetchall()}
        finally:
            cursor.close()


@contextmanager
def _connection(db: Engine | Connection) -> Iterator[Connection]:
    """A connection to read through: ``db`` itself when it is one (e.g. ``db copy``'s open
    transaction, whose rows no other connection sees yet), else a new one of the engine."""
    if isinstance(db, Connection):
        yield db
        return
    with db.connect() as conn:
        yield conn


def iter_table(
    engine: Engine | Connection, table: str, batch: int = 20000
) -> Iterator[Sequence[Any]]:
    """Yield every row of ``table`` (current form's columns, id order), streaming.

    A plain DB-API cursor, server-side on PostgreSQL so memory stays flat.
    """
    with _connection(engine) as conn:
        raw: Any = conn.connection.dbapi_connection
        if engine.dialect.name == "postgresql":
            cursor = raw.cursor(name=f"fairlens_rows_{table}")
            try:
                cursor.execute(_select(table))
                while rows := cursor.fetchmany(batch):
                    yield from rows
            finally:
                cursor.close()
            return
        yield from _iter_sqlite(raw, table, batch)


def _iter_sqlite(raw: Any, table: str, batch: int) -> Iterator[Sequence[Any]]:
    """SQLite rows; text that is not UTF-8 (a hand edit) is read on with its bad bytes kept
    as surrogates, so such a row is reported as modified instead of stopping ``verify``."""
    last: int | None = None
    try:
        cursor = raw.cursor()
        try:
            cursor.execute(_select(table))
            while rows := cursor.fetchmany(batch):
                yield from rows
                last = rows[-1][0]
            return
        except sqlite3.OperationalError as exc:
            if "decode" not in str(exc):
                raise
        finally:
            cursor.close()
        # Read on from after the last whole batch, leniently (bytes kept as surrogates).
        raw.text_factory = _lenient
        cursor = raw.cursor()
        try:
            cursor.execute(_select(table, "" if last is None else f' WHERE "id" > {int(last)}'))
            while rows := cursor.fetchmany(batch):
                yield from rows
        finally:
            cursor.close()
    finally:
        raw.text_factory = str


def _lenient(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def ledger(
    engine: Engine | Connection, pruned_to: int = 0, *, into: RowLedger | None = None
) -> RowLedger:
    """Replay the chain's row entries (from the hashed canonical bytes) into a ledger.

    Args:
        engine: the database (or an open connection to read through).
        pruned_to: the seq up to which the chain was pruned (verify's start − 1); the
            ``chain_pruned`` event that names it carries the ledger of the pruned events.
        into: a ledger to bring up to date: only events after its ``last_seq`` are read
            (and no carried ledger: it has seen those events itself).
    """
    out = RowLedger() if into is None else into
    after = out.last_seq
    types = ", ".join(f"'{t}'" for t in ROW_EVENTS)
    payloads = []
    with _connection(engine) as conn:
        raw: Any = conn.connection.dbapi_connection
        server_side = engine.dialect.name == "postgresql"
        cursor = raw.cursor(name="fairlens_row_events") if server_side else raw.cursor()
        try:
            # From a seq on (an incremental check), the seq index finds the rows: through
            # the event_type index SQLite would visit every cycle's event (no index on ``||``).
            kind = "(event_type || '')" if after else "event_type"
            cursor.execute(
                "SELECT seq, event_type, canonical FROM audit_events "  # noqa: S608
                f"WHERE {kind} IN ({types}) AND seq > {int(after)} ORDER BY seq"
            )
            while batch := cursor.fetchmany(5000):
                for seq, event_type, canonical in batch:
                    payload = _row_entries(canonical)
                    number = _seq(seq)
                    if isinstance(payload, dict) and number is not None:
                        payloads.append((number, str(event_type), payload))
        finally:
            cursor.close()
    return replay_entries(out, payloads, pruned_to, carry=into is None)


def replay_entries(
    out: RowLedger, payloads: list[tuple[int, str, Any]], pruned_to: int, *, carry: bool
) -> RowLedger:
    """Apply the row events' entries (ascending seq) to ``out``, after the ledger the
    ``chain_pruned`` event naming ``pruned_to`` carried (when ``carry``)."""
    carried = [
        p
        for _, t, p in payloads
        if carry and t == CHAIN_PRUNED and pruned_to and p.get("pruned_to") == pruned_to
    ]
    if carried:
        try:
            out.carry(carried[-1])
        except (TypeError, ValueError, KeyError):
            out.anomalies.append(
                Anomaly(None, "row_modified", "the pruned ledger carried forward is malformed")
            )
    for seq, event_type, payload in payloads:
        out.apply(seq, event_type, payload)
    return out


def _seq(value: Any) -> int | None:
    """An event's seq column as an int; None when damaged ('' or text in SQLite), an event
    the chain check already reports as modified."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


_DIGESTS_KEY = '"row_digests":{'
_DECODE = json.JSONDecoder().raw_decode
# The row_digests object exactly as RFC 8785 writes it for the known tables (keys sorted,
# ids plain integers, digests lower-case hex): read with two regular expressions instead of
# the JSON decoder. Any other text is decoded as JSON, so both give the same value.
_ENTRY = r'\[(?:0|[1-9][0-9]*),"[0-9a-f]{64}"\]'
_LIST = rf"\[((?:{_ENTRY}(?:,{_ENTRY})*)?)\]"
_STRICT = re.compile(
    rf'\{{(?:"alerts":{_LIST},)?"form":(0|[1-9][0-9]{{0,8}})'
    rf'(?:,"group_results":{_LIST})?(?:,"monitors":{_LIST})?(?:,"reading_rollups":{_LIST})?'
    rf'(?:,"readings":{_LIST})?'
    rf'(?:,"runs":{_LIST})?(?:,"source_files":{_LIST})?\}}'
)
_IDS = re.compile(r"\[([0-9]+),").findall  # within a text _STRICT matched: one per entry
_DIGESTS = re.compile(r'"([0-9a-f]{64})"').findall
_STRICT_TABLES = (
    "alerts",
    "group_results",
    "monitors",
    "reading_rollups",
    "readings",
    "runs",
    "source_files",
)


def _digests_at(canonical: str, at: int) -> Any:
    """The row_digests value that starts at ``at`` (see :data:`_STRICT`)."""
    strict = _STRICT.match(canonical, at)
    if strict is None:
        return _DECODE(canonical, at)[0]
    alerts, form, *rest = strict.groups()
    out: dict[str, Any] = {"form": int(form)}
    for table, text_ in zip(_STRICT_TABLES, (alerts, *rest), strict=True):
        if text_ is not None:
            out[table] = CheckedEntries(zip(map(int, _IDS(text_)), _DIGESTS(text_), strict=True))
    return out


def _row_entries(canonical: str) -> Any:
    """The payload's row entries from an event's hashed canonical text (None if unreadable).

    A cycle's event holds only ``row_digests``: its value is decoded alone, where it is
    (RFC 8785 text escapes every quote inside a string, so the key cannot be matched inside
    one). Events with deletions or a carried ledger are parsed whole.
    """
    try:
        if '"rows_deleted":' not in canonical and '"rows_carried":' not in canonical:
            at = canonical.find(_DIGESTS_KEY)
            if at < 0:
                return {}
            return {"row_digests": _digests_at(canonical, at + len('"row_digests":'))}
        payload = json.loads(canonical)["payload"]
    except (ValueError, TypeError, KeyError):
        return None  # the chain check reports this event as modified
    return payload


def check_rows(
    engine: Engine | Connection, pruned_to: int = 0, *, book: RowLedger | None = None
) -> list[Anomaly]:
    """Recompute every stored row's digest and compare it with the chain's record.

    ``engine`` may be an open connection, to check rows its transaction has not committed.
    ``book`` is the chain's ledger when the caller already has it (``rowtap.RowTap``,
    from the chain walk); else it is replayed from the database (:func:`ledger`).

    Returns:
        ``row_modified``, ``row_missing`` and ``row_unrecorded`` anomalies (empty when every
        row is exactly as recorded).
    """
    if book is None:
        book = ledger(engine, pruned_to)
    found = list(book.anomalies)
    for table in TABLES:
        found += book.check(table, iter_table(engine, table))
    return found


def carried_ledger(s: Session, up_to: int) -> dict[str, list[Any]]:
    """What events up to ``up_to`` recorded, for the ``chain_pruned`` event that deletes them.

    The ledger an earlier prune carried (the ``chain_pruned`` with the highest
    ``pruned_to`` among these events) is the starting point.

    Args:
        s: the retention transaction's session.
        up_to: the seq the chain is pruned to.

    Returns:
        ``{"<table>": [[id, digest, form, seq], ...]}`` of rows still recorded.
    """
    book = RowLedger()
    rows = s.execute(
        select(AuditEvent.seq, AuditEvent.event_type, AuditEvent.canonical)
        .where(AuditEvent.event_type.in_(ROW_EVENTS), AuditEvent.seq <= up_to)
        .order_by(AuditEvent.seq)
    ).all()
    payloads = [(int(seq), str(t), json.loads(c)["payload"]) for seq, t, c in rows]
    prunes = sorted(
        (int(p.get("pruned_to") or 0), i)
        for i, (_, t, p) in enumerate(payloads)
        if t == CHAIN_PRUNED
    )
    if prunes:
        book.carry(payloads[prunes[-1][1]][2])
    for seq, t, p in payloads:
        book.apply(seq, t, p)
    return {
        table: [[i, *e] for i, e in sorted(book.rows[table].items())]
        for table in TABLES
        if book.rows[table]
    }


def attach(
    events: Sequence[tuple[str, dict[str, Any]]], digests: Digests
) -> list[tuple[str, dict[str, Any]]]:
    """Put each written row's digest on the event of its transaction that concerns it.

    An alert goes to the ``alert_raised`` event naming its ``alert_id`` or the
    ``alert_resolved`` event listing it; every other row (and alerts a cycle only advanced)
    to the ``cycle_completed`` event, else to the last event.

    Args:
        events: the transaction's ``(event_type, payload)`` pairs, in order.
        digests: from :func:`row_digests`.

    Returns:
        The same events, payloads extended with ``row_digests`` where they carry rows.
    """
    if not events:
        return []
    form = digests["form"]
    alerts = {int(i): d for i, d in digests.get("alerts", ())}
    own: list[dict[str, list[Any]]] = [{} for _ in events]
    for n, (event_type, payload) in enumerate(events):
        ids = (
            [payload.get("alert_id")]
            if event_type == ALERT_RAISED
            else payload.get("alert_ids", [])
            if event_type == ALERT_RESOLVED
            else []
        )
        mine = [[i, alerts.pop(i)] for i in ids if isinstance(i, int) and i in alerts]
        if mine:
            own[n]["alerts"] = mine
    home = next((n for n, (t, _) in enumerate(events) if t == CYCLE_COMPLETED), len(events) - 1)
    for table in TABLES:
        rest = (
            [[i, d] for i, d in sorted(alerts.items())]
            if table == "alerts"
            else digests.get(table, [])
        )
        if rest:
            own[home][table] = own[home].get(table, []) + rest
    return [
        (t, {**p, "row_digests": {"form": form, **own[n]}} if own[n] else p)
        for n, (t, p) in enumerate(events)
    ]


ROLLUPS = "reading_rollups"
MONITORS = "monitors"
# The tables a migration filled without an event to record them: 0014 computed the rollup
# from the stored readings, 0015 inserted the ``default`` monitor. Each is baselined on its
# own the first time a writable start finds rows in it that no event records.
ADDED_BY_MIGRATION: tuple[str, ...] = (ROLLUPS, MONITORS)


def _recorded(table: str) -> str:
    return f'"{table}":[['  # in a payload that records (or carries) a row of ``table``


def baseline_tables(s: Session) -> tuple[str, ...]:
    """The tables whose stored rows no event records yet and need a ``rows_baseline``.

    Every table when rows exist that were written before row digests (no event records
    any digest); else each of :data:`ADDED_BY_MIGRATION` that has rows while no event has
    ever recorded one — the rows migration 0014 computed from the stored readings, the
    ``default`` monitor 0015 inserted. Cheap on every start: indexed lookups once a baseline
    (or any digest) exists; the scan for a recorded rollup row stops at the first cycle that
    wrote one, and a monitor row is recorded only by the monitor events (an indexed lookup).
    """
    if needs_baseline(s):
        return TABLES
    return tuple(table for table in ADDED_BY_MIGRATION if _unrecorded(s, table))


def _unrecorded(s: Session, table: str) -> bool:
    """True when ``table`` has rows and no event records (or baselines, or carries) any."""
    key = _recorded(table)
    baselined = s.scalar(
        select(AuditEvent.seq)
        .where(
            AuditEvent.event_type.in_((ROWS_BASELINE, CHAIN_PRUNED)),
            AuditEvent.canonical.contains(key),
        )
        .limit(1)
    )
    if baselined is not None or s.scalar(text(f"SELECT min(id) FROM {table}")) is None:  # noqa: S608
        return False
    if table == MONITORS:
        recorded = s.scalar(
            select(AuditEvent.seq).where(AuditEvent.event_type.in_(MONITOR_EVENTS)).limit(1)
        )
    else:
        recorded = s.scalar(
            select(AuditEvent.seq).where(AuditEvent.canonical.contains(key)).limit(1)
        )
    return recorded is None


def needs_baseline(s: Session) -> bool:
    """True when rows exist that were written before row digests (no event records any).

    Cheap on every start: one indexed lookup once the baseline (or any digest) exists.
    """
    if (
        s.scalar(select(AuditEvent.seq).where(AuditEvent.event_type == ROWS_BASELINE).limit(1))
        is not None
    ):
        return False
    recorded = AuditEvent.canonical.contains('"row_digests":') | AuditEvent.canonical.contains(
        '"rows_carried":'
    )
    if s.scalar(select(AuditEvent.seq).where(recorded).limit(1)) is not None:
        return False
    return any(s.scalar(select(func.count()).select_from(_table(t))) for t in TABLES)


def baseline_digests(s: Session, tables: Sequence[str] = TABLES) -> Digests:
    """Digests of every row of ``tables`` (default: all), as stored now (for
    ``rows_baseline``)."""
    cursor = s.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    out: Digests = {"form": CURRENT_FORM}
    try:
        for table in tables:
            form = FORMS[CURRENT_FORM][table]
            cursor.execute(_select(table))
            out[table] = [[row[0], form.digest(row)] for row in cursor.fetchall()]
    finally:
        cursor.close()
    return out


def _table(name: str) -> Any:
    from sqlalchemy import table

    return table(name)


# --- incremental verification (ops.incremental): the rows events after a checkpoint name ---


def rows_named(
    db: Engine | Connection, table: str, ids: Iterable[int], from_id: int | None = None
) -> list[Sequence[Any]]:
    """The stored rows of ``table`` with these ids, plus every row from ``from_id`` on.

    Args:
        db: the database, or an open connection (to read in the caller's snapshot).
        table: one of the digested tables.
        ids: the ids to read (those the events after a checkpoint name).
        from_id: also every row with ``id >= from_id`` (an insert-only table: every row
            written since the checkpoint, so a row no event names is seen too).

    Returns:
        The rows (current form's columns), in id order, each once.
    """
    wanted = sorted({int(i) for i in ids})
    found: dict[int, Sequence[Any]] = {}
    with _connection(db) as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            for at in range(0, len(wanted), 5000):
                listed = ", ".join(map(str, wanted[at : at + 5000]))
                cursor.execute(_select(table, f' WHERE "id" IN ({listed})'))
                found.update((row[0], row) for row in cursor.fetchall())
            if from_id is not None:
                cursor.execute(_select(table, f' WHERE "id" >= {int(from_id)}'))
                found.update((row[0], row) for row in cursor.fetchall())
        finally:
            cursor.close()
    ints = sorted(i for i in found if type(i) is int)
    return [found[i] for i in ints] + [row for i, row in found.items() if type(i) is not int]
