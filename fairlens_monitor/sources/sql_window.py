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

SQLite has no hash aggregation: a ``GROUP BY`` over rows found through a time index sorts
every row of the window in a temporary B-tree, most of the query's cost (docs/PERFORMANCE.md).
So for SQLite the recommended index holds the grouped columns first, in the statement's
``GROUP BY`` order (:func:`group_order`), then ``datetime(col)``. With the planner's statistics
(``ANALYZE``, once) SQLite answers the count with a *skip-scan*: for each distinct group it
seeks into the index and counts that group's rows in the window, reading only the index, in
group order, so nothing is sorted. Without statistics it reads the whole index in group
order (still no sort, but every row of the table), which :func:`missing_index_hint` reports.

:func:`missing_index_hint` asks the database's own planner whether the count statement would
read the whole table (or, on SQLite, sort the window's rows for its ``GROUP BY``), and if so
returns the statements to run. Pure, apart from the queries of the plan and (SQLite) of the
schema and its statistics.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex

SQLITE_TIME_FORM = "%Y-%m-%d %H:%M:%S"  # what SQLite's datetime() returns, in UTC
START, END = "window_start", "window_end"  # the bound parameters' names
T = TypeVar("T")
DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.dialect(),  # type: ignore[no-untyped-call]
}


def group_order(columns: Sequence[T]) -> list[T]:
    """The order the count statement groups by, and so the order of the grouped index.

    The last column first: the stratum, which has the most distinct values, so a sort-based
    ``GROUP BY`` (a source query, or a table without the grouped index) settles most
    comparisons at the first key; an index holds the columns in this same order.
    """
    return list(reversed(columns))


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


def index_name(table: str, timestamp: str, group_by: Sequence[str] = ()) -> str:
    """The name :func:`index_statement` gives the index.

    ``<table>_<column>_window`` for the time index alone; with grouped columns (SQLite)
    ``<table>_<column>_window_by_<columns in index order>``, so two monitors grouping the same
    table differently get two indexes, not one ``IF NOT EXISTS`` that silently skips the
    second.
    """
    name = f"{table.rpartition('.')[2]}_{timestamp}_window"
    if group_by:
        name += "_by_" + "_".join(group_order(group_by))
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def index_statement(table: str, timestamp: str, dialect: str, group_by: Sequence[str] = ()) -> str:
    """The ``CREATE INDEX`` that lets the count statement read only the window's rows.

    Built from :func:`time_key`, the expression the predicate compares. On PostgreSQL (and
    others) a plain index on the column: its ``GROUP BY`` hashes, ``group_by`` is not used.
    On SQLite, with ``group_by``, the grouped columns in :func:`group_order` and then
    ``datetime(col)``, e.g. ``CREATE INDEX IF NOT EXISTS
    decisions_decided_at_window_by_repaid_approved_gender ON decisions (repaid, approved,
    gender, datetime(decided_at))``, which lets SQLite count without sorting (module
    docstring; run :func:`statistics_statement` after it); without ``group_by`` (a source
    that also bins a score, which no index can hold in order) the time index alone,
    ``… decisions_decided_at_window ON decisions (datetime(decided_at))``.

    Args:
        table: the source table (``schema.name`` allowed).
        timestamp: its timestamp column.
        dialect: ``sqlite``, ``postgresql`` (others are rendered as PostgreSQL would).
        group_by: the columns the count statement groups by, in the source's order (as
            given to :func:`~fairlens_monitor.sources.sql.count_statement`), or empty.

    Returns:
        The statement, without a trailing ``;``.
    """
    grouped = list(group_by) if dialect == "sqlite" else []
    schema, _, name = table.rpartition(".")
    columns = dict.fromkeys([*grouped, timestamp])
    target = sa.Table(name, sa.MetaData(), *(sa.Column(c) for c in columns), schema=schema or None)
    keys = [target.c[c] for c in group_order(grouped)]
    index = sa.Index(
        index_name(table, timestamp, grouped), *keys, time_key(target.c[timestamp], dialect)
    )
    compiled = CreateIndex(index, if_not_exists=True).compile(dialect=dialect_of(dialect))
    return " ".join(str(compiled).split())


def statistics_statement(table: str, dialect: str) -> str:
    """The ``ANALYZE`` that gives the planner the statistics the grouped index needs.

    SQLite chooses the skip-scan of the grouped index only when ``sqlite_stat1`` says each
    group holds many rows; it is read from the file, so the table's owner runs this once
    (the monitor's connection is read-only). Growth later keeps the proportions it records.
    """
    schema, _, name = table.rpartition(".")
    target = sa.table(name, schema=schema or None)
    return f"ANALYZE {dialect_of(dialect).identifier_preparer.format_table(target)}"


def dialect_of(name: str) -> Dialect:
    """The SQLAlchemy dialect statements are rendered in (PostgreSQL's for unknown names)."""
    return DIALECTS.get(name, DIALECTS["postgresql"])


def grouped_columns(stmt: sa.Select[Any]) -> list[str] | None:
    """The source's columns ``stmt`` groups by, in the source's order (reversing
    :func:`group_order`); None when it also groups by an expression (a score's bin), which
    no index can hold in order, or groups by nothing."""
    terms = stmt._group_by_clauses  # the statement's own GROUP BY, as the index must match
    if not terms or not all(isinstance(t, sa.ColumnClause) for t in terms):
        return None
    return group_order([str(t.name) for t in terms])


def scans_table(plan: list[str], table: str) -> bool:
    """Whether a query plan (one line per row) reads every row of ``table``.

    SQLite says ``SCAN decisions`` (``SEARCH decisions USING INDEX …`` for a range);
    PostgreSQL ``Seq Scan on decisions`` (also ``Parallel Seq Scan``).
    """
    name = re.escape(table.rpartition(".")[2])
    pattern = re.compile(rf"^SCAN {name}(\s|$)|Seq Scan on {name}(\s|$)")
    return any(pattern.search(line.strip()) for line in plan)


def sorts_groups(plan: list[str]) -> bool:
    """Whether a SQLite plan sorts the rows for its ``GROUP BY`` (a temporary B-tree)."""
    return any(line.strip() == "USE TEMP B-TREE FOR GROUP BY" for line in plan)


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


def analysed(conn: sa.Connection, table: str, timestamp: str, group_by: Sequence[str]) -> bool:
    """Whether SQLite holds the grouped index of :func:`index_statement` and its statistics.

    Looks for the index by the name :func:`index_name` gives it and for its row in
    ``sqlite_stat1`` (absent until the first ``ANALYZE``).
    """
    schema = table.rpartition(".")[0] or None
    name = index_name(table, timestamp, group_by)
    master = sa.table("sqlite_master", sa.column("type"), sa.column("name"), schema=schema)
    present = {
        (kind, found)
        for kind, found in conn.execute(
            sa.select(master.c.type, master.c.name).where(master.c.name.in_([name, "sqlite_stat1"]))
        )
    }
    if present != {("index", name), ("table", "sqlite_stat1")}:
        return False
    stat = sa.table("sqlite_stat1", sa.column("idx"), schema=schema)
    return conn.execute(sa.select(stat.c.idx).where(stat.c.idx == name)).first() is not None


def missing_index_hint(
    conn: sa.Connection, stmt: sa.Select[Any], table: str, timestamp: str
) -> str | None:
    """Say which index to create when the windowed count ``stmt`` would read the whole table.

    On SQLite also when it would sort the window's rows for its ``GROUP BY`` although an
    index on its grouped columns (:func:`index_statement` with them) could spare it, unless
    that index is there with statistics (:func:`analysed`): then sorting is the planner's
    informed choice (a table that also has the time-only index and few rows per group).
    The SQLite hint includes the ``ANALYZE`` (:func:`statistics_statement`) the grouped
    index needs: without it SQLite reads the whole index, which is reported too. When the
    grouped index and its statistics are there and SQLite still reads every row (groups too
    small to skip through, e.g. a stratum with a value per decision), the hint gives the
    time-only index, whose sort of the window is then the cheaper plan.

    Returns:
        None when the planner uses an index for the window (and, where it can, for the
        groups); otherwise a one-line hint naming the table and giving the statements to
        run (no data values).
    """
    dialect = conn.dialect.name
    plan = query_plan(conn, stmt)
    grouped = (grouped_columns(stmt) or []) if dialect == "sqlite" else []
    ready = bool(grouped) and analysed(conn, table, timestamp, grouped)
    if scans_table(plan, table) and ready:
        # The grouped index and its statistics are there, yet SQLite reads every row: its
        # groups are too small to skip through; sorting the window is then the better plan.
        why = (
            f"reads every row of table {table}: its groups hold too few decisions each "
            "for SQLite to skip through the grouped index"
        )
        fix, grouped = "create the time-only index", []
    elif scans_table(plan, table):
        why = f"reads every row of table {table} because no index serves its time window"
        if grouped:
            why += " and groups (or the planner has no statistics for it)"
        fix = "create one"
    elif grouped and sorts_groups(plan) and not ready:
        why = (
            f"sorts every decision of its window in table {table} for its GROUP BY; an "
            "index on the grouped columns and the time spares the sort"
        )
        fix = "create it"
    else:
        return None
    statements = [index_statement(table, timestamp, dialect, grouped)]
    if grouped:
        statements.append(statistics_statement(table, dialect))
    run = " ".join(f"{statement};" for statement in statements)
    return f"source.window: the count query {why}; {fix} (once, as the table's owner): {run}"
