"""The SQL source's time window: the predicate, and the index statement that serves it.

read → counts → measure → detect → alert → log. A windowed count reads only the rows of the
window if the database can find them through an index. The predicate is built here, and so
is the ``CREATE INDEX`` statement the user is told to run, from the same expression
(:func:`time_key`), so the two cannot drift apart:

- **PostgreSQL** and other back ends with a timestamp type: the raw column against bound
  parameters, ``col >= :window_start AND col < :window_end``; a plain index on the column
  serves it.
- **SQLite** has no timestamp type: times are ISO text in whatever forms the writer chose
  (``2026-11-23T10:00:00+01:00``, ``2026-11-23 09:00:00``, ``…Z``, with or without
  fractions), so comparing the raw text would miscount. The column goes through
  ``datetime()``, which turns every form into UTC ``YYYY-MM-DD HH:MM:SS``; an *expression
  index* on exactly ``datetime(col)`` serves it (:func:`index_statement`).

:func:`missing_index_hint` asks the database's own planner whether the count statement would
read the whole table, and if so returns the statement to run. Pure, apart from that query.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex

SQLITE_TIME_FORM = "%Y-%m-%d %H:%M:%S"  # what SQLite's datetime() returns, in UTC
START, END = "window_start", "window_end"  # the bound parameters' names
DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.dialect(),  # type: ignore[no-untyped-call]
}


def time_key(column: Any, dialect: str) -> Any:
    """The expression the window compares: ``datetime(col)`` on SQLite, else the column."""
    return sa.func.datetime(column) if dialect == "sqlite" else column


def window_bounds(window: tuple[datetime, datetime], dialect: str) -> tuple[Any, Any]:
    """The ``[start, end)`` bounds as the dialect compares them with :func:`time_key`.

    SQLite: UTC text in ``datetime()``'s own form (whole seconds, as ``datetime()`` returns);
    PostgreSQL: the aware datetimes (the session runs in UTC); others: naive UTC datetimes.
    """
    start, end = window
    if dialect == "sqlite":
        return tuple(t.astimezone(UTC).strftime(SQLITE_TIME_FORM) for t in (start, end))  # type: ignore[return-value]
    if dialect == "postgresql":
        return start, end
    return tuple(t.astimezone(UTC).replace(tzinfo=None) for t in (start, end))  # type: ignore[return-value]


def window_predicate(
    column: Any, window: tuple[datetime, datetime], dialect: str
) -> sa.ColumnElement[bool]:
    """``key >= :window_start AND key < :window_end`` with the key of :func:`time_key`.

    The bounds are bound parameters, never text in the statement, typed as the key (so no
    cast is rendered around them: PostgreSQL compares a ``timestamp`` or ``timestamptz``
    column with the driver's ``timestamptz`` directly, through the index).
    """
    lo, hi = window_bounds(window, dialect)
    key = time_key(column, dialect)
    return sa.and_(
        key >= sa.bindparam(START, lo, type_=key.type),
        key < sa.bindparam(END, hi, type_=key.type),
    )


def index_name(table: str, timestamp: str) -> str:
    """The name :func:`index_statement` gives the index (``<table>_<column>_window``)."""
    name = f"{table.rpartition('.')[2]}_{timestamp}_window"
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def index_statement(table: str, timestamp: str, dialect: str) -> str:
    """The ``CREATE INDEX`` that lets the window predicate read only the window's rows.

    Built from :func:`time_key`, the expression the predicate compares, so on SQLite it is
    ``CREATE INDEX IF NOT EXISTS decisions_decided_at_window ON decisions (datetime(decided_at))``.

    Args:
        table: the source table (``schema.name`` allowed).
        timestamp: its timestamp column.
        dialect: ``sqlite``, ``postgresql`` (others are rendered as PostgreSQL would).

    Returns:
        The statement, without a trailing ``;``.
    """
    schema, _, name = table.rpartition(".")
    target = sa.Table(name, sa.MetaData(), sa.Column(timestamp), schema=schema or None)
    index = sa.Index(index_name(table, timestamp), time_key(target.c[timestamp], dialect))
    compiled = CreateIndex(index, if_not_exists=True).compile(
        dialect=DIALECTS.get(dialect, DIALECTS["postgresql"])
    )
    return " ".join(str(compiled).split())


def scans_table(plan: list[str], table: str) -> bool:
    """Whether a query plan (one line per row) reads every row of ``table``.

    SQLite says ``SCAN decisions`` (``SEARCH decisions USING INDEX …`` for a range);
    PostgreSQL ``Seq Scan on decisions`` (also ``Parallel Seq Scan``).
    """
    name = re.escape(table.rpartition(".")[2])
    pattern = re.compile(rf"^SCAN {name}(\s|$)|Seq Scan on {name}(\s|$)")
    return any(pattern.search(line.strip()) for line in plan)


def query_plan(conn: sa.Connection, stmt: sa.Select[Any]) -> list[str]:
    """The database's plan for ``stmt``, one line per row.

    SQLite: ``EXPLAIN QUERY PLAN``. PostgreSQL: ``EXPLAIN`` with sequential scans priced
    out (``SET LOCAL enable_seqscan = off``, this transaction only), so a ``Seq Scan`` left
    in the plan means no index can serve the predicate — whatever the table's size.
    """
    dialect = conn.dialect.name
    compiled = stmt.compile(conn)
    params: Any = (
        tuple(compiled.params[k] for k in compiled.positiontup or ())
        if compiled.positional
        else dict(compiled.params)
    )
    if dialect == "sqlite":
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", params).fetchall()
        return [str(row[-1]) for row in rows]
    if dialect == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    rows = conn.exec_driver_sql(f"EXPLAIN {compiled.string}", params).fetchall()
    return [str(row[0]) for row in rows]


def missing_index_hint(
    conn: sa.Connection, stmt: sa.Select[Any], table: str, timestamp: str
) -> str | None:
    """Say which index to create when the windowed ``stmt`` would read the whole table.

    Returns:
        None when the planner uses an index for the window; otherwise a one-line hint naming
        the table and giving the :func:`index_statement` to run (no data values).
    """
    dialect = conn.dialect.name
    if not scans_table(query_plan(conn, stmt), table):
        return None
    return (
        f"source.window: the count query reads every row of table {table} because no index "
        f"serves its time window; create one (once, as the table's owner): "
        f"{index_statement(table, timestamp, dialect)};"
    )
