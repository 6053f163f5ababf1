"""Row digests of the rows a transaction inserted, from the values it inserted.

simulate → measure → detect → alert → **log**. A cycle records the digest of every row it
wrote (``audit.rowforms``); :func:`~fairlens_monitor.store.rowstore.row_digests` reads the
rows back to take them, one ``SELECT`` per table. For a row this transaction has just
inserted from Python values, the database hands back exactly those values, as long as each
is of the plain type its column stores unchanged on SQLite and PostgreSQL alike:

- ``i``: an ``int``; ``s``: a ``str`` without NUL; ``b``: a ``bool``; ``t``: an aware
  ``datetime`` from year 1000 on (SQLite keeps it as UTC text with microseconds, PostgreSQL
  as ``timestamptz``: both read back as the same instant);
- ``f``: a ``float`` other than ``-0.0`` (SQLite may store a whole REAL as an integer and
  hand back ``0.0``); NaN is NULL on SQLite and NaN on PostgreSQL, which the form writes
  ``null`` either way;
- NULL (None, or a column left out that has no server default).

Then :func:`inserted_digests` digests the values directly, with the same compiled form
``verify`` uses on the stored row. Anything else — a subclass (``numpy.float64``, a pandas
``Timestamp``), ``-0.0``, a JSON value (its text depends on the serializer), a column left
to a server default — makes that table's rows read back as before. Rows a transaction
*changed* (alert episodes) are always read back: their other columns are as stored, which
only the database knows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from fairlens_monitor.audit.rowforms import CURRENT_FORM, FORMS, RowForm
from fairlens_monitor.store.models import Base
from fairlens_monitor.store.rowstore import Digests, row_digests

_ABSENT = object()


def _plain(kind: str, v: Any) -> bool:
    """Whether ``v`` is stored and read back unchanged in a column of this kind."""
    if v is None:
        return True
    cls = v.__class__
    if kind == "f":
        return cls is float and not (v == 0.0 and str(v)[0] == "-")
    if kind == "i":
        return cls is int
    if kind == "s":
        return cls is str and "\x00" not in v
    if kind == "b":
        return cls is bool
    if kind == "t":
        return cls is datetime and v.tzinfo is not None and v.year >= 1000
    return False  # JSON: its stored text depends on the engine's serializer


def digest_of(form: RowForm, table: Table, obj: Base) -> str | None:
    """The digest ``obj``'s row will have once inserted, or None when that is not certain.

    Args:
        form: the current form of ``table``.
        table: the row's table.
        obj: the inserted model instance (its ``id`` filled in).
    """
    state = vars(obj)
    values = []
    for name, kind in zip(form.columns, form.kinds, strict=True):
        v = state.get(name, _ABSENT)
        if v is _ABSENT:
            if table.c[name].server_default is not None:
                return None
            v = None
        if not _plain(kind, v):
            return None
        values.append(v)
    return form.digest(values)


def inserted_digests(
    s: Session,
    inserted: Mapping[str, tuple[Table, Sequence[Base]]],
    changed: Mapping[str, Iterable[int]],
) -> Digests:
    """Digest the rows this transaction wrote: ``inserted`` from their values where certain,
    ``changed`` (and inserted rows that are not certain) read back as stored.

    Args:
        s: the write transaction's session.
        inserted: per table name, the table and the instances inserted (ids filled in).
        changed: per table name, the ids of rows updated.

    Returns:
        What :func:`~fairlens_monitor.store.rowstore.row_digests` returns for all of them.
    """
    known: dict[str, list[list[Any]]] = {}
    unknown: dict[str, set[int]] = {name: set(ids) for name, ids in changed.items()}
    for name, (table, objs) in inserted.items():
        if not objs:
            continue
        form = FORMS[CURRENT_FORM][name]
        digests = [digest_of(form, table, obj) for obj in objs]
        if name in unknown or None in digests:
            unknown.setdefault(name, set()).update(int(obj.id) for obj in objs)  # type: ignore[attr-defined]
        else:
            ids = [int(obj.id) for obj in objs]  # type: ignore[attr-defined]
            known[name] = sorted([[i, d] for i, d in dict(zip(ids, digests, strict=True)).items()])
    out = row_digests(s, {name: ids for name, ids in unknown.items() if ids})
    for name, entries in known.items():
        out[name] = entries
    return {"form": out["form"], **{t: out[t] for t in FORMS[CURRENT_FORM] if t in out}}
