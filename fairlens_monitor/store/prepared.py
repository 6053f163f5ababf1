"""Prepared INSERTs on the DB-API cursor: the cycle's hot writes without per-statement overhead.

simulate → measure → detect → alert → **log**. A cycle inserts a run, two readings of some
sixty columns, a few group rows and its audit events. Through SQLAlchemy Core each
statement built its cache key, looked up its compiled form, processed its parameters and
built a result object, which cost several times what SQLite takes to run it. Here the SQL
text and the columns' bind processors (the same functions SQLAlchemy applies: an aware
time to the back end's form, a boolean to 0/1 on SQLite, a JSON value to its canonical
text) are prepared once per table, column set and dialect, and each row is one
``cursor.execute`` on the session's own DB-API connection, inside its transaction: the
lease's commit hook and every rule of the transaction are untouched.

SQLite hands back the new id as ``lastrowid``; PostgreSQL through ``RETURNING``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Table

Processor = Callable[[Any], Any] | None


class PreparedInsert:
    """The SQL and bind processors of one ``INSERT`` (a table, a set of columns, a dialect)."""

    __slots__ = ("keys", "processors", "returning", "sql")

    def __init__(self, table: Table, keys: Sequence[str], dialect: Dialect) -> None:
        """Prepare ``INSERT INTO table (keys) VALUES (...)`` for ``dialect``.

        Raises:
            KeyError: a key is not a column of ``table``.
        """
        columns = [table.c[k] for k in keys]
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        names = ", ".join(f'"{c.name}"' for c in columns)
        marks = ", ".join(mark for _ in columns)
        self.keys = tuple(keys)
        self.returning = dialect.name != "sqlite"
        returning = ' RETURNING "id"' if self.returning else ""
        # the names are our tables' and columns' (never data); values are bound
        self.sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks}){returning}'  # noqa: S608
        self.processors: tuple[Processor, ...] = tuple(
            c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns
        )

    def run(self, cursor: Any, values: dict[str, Any]) -> int:
        """Insert one row (``values`` holds every key) and return its new id."""
        params = tuple(
            value if process is None else process(value)
            for value, process in zip((values[k] for k in self.keys), self.processors, strict=True)
        )
        cursor.execute(self.sql, params)
        if self.returning:
            return int(cursor.fetchone()[0])
        return int(cursor.lastrowid)


_PREPARED: dict[tuple[str, tuple[str, ...], str], PreparedInsert] = {}


def insert_values(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` (column → value; each row may set other columns) and return their ids,
    in order, through the connection's DB-API cursor inside its open transaction.

    Args:
        conn: the write transaction's connection.
        table: the table (its integer ``id`` is assigned by the database).
        rows: the rows' values.

    Returns:
        The new ids.
    """
    if not rows:
        return []
    dialect = conn.dialect
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        ids = []
        for row in rows:
            key = (table.name, tuple(row), dialect.name)
            prepared = _PREPARED.get(key)
            if prepared is None:
                prepared = _PREPARED[key] = PreparedInsert(table, key[1], dialect)
            ids.append(prepared.run(cursor, row))
        return ids
    finally:
        cursor.close()
