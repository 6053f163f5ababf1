"""The audit export: the chain and every row it vouches for, as JSON lines to check offline.

simulate → measure → detect → alert → **log** → export. ``audit export --jsonl FILE`` writes,
from one consistent snapshot of the database:

- one line per audit event, in seq order: ``timestamp``, ``event_type``, ``details`` (the
  original audit format) and ``seq``, ``actor``, ``prev_hash``, ``hash``, ``canonical`` —
  the exact hashed text;
- then one line per stored row of the tables bound to the chain (``rowforms.TABLES``):
  ``table``, ``id``, ``form`` and ``row``, the row's canonical text under the form its
  recording event used, so ``SHA-256("fairlens-row-v<form>\\0<table>\\0" ‖ row)`` is the
  digest that event carries.

``scripts/offline_verify.py`` checks such a file with the Python standard library alone.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from fairlens_monitor.audit.events import audit_json
from fairlens_monitor.audit.rowforms import CURRENT_FORM, FORMS, TABLES, in_form
from fairlens_monitor.errors import OutputFileError
from fairlens_monitor.store.repository import Repository
from fairlens_monitor.store.rowstore import iter_table, ledger


def export_jsonl(repo: Repository, path: Path) -> tuple[int, int]:
    """Write the chain, then every stored row, as JSON lines (see the module docstring).

    Args:
        repo: the repository (read-only is enough).
        path: the file to write (replaced only once the whole export is written).

    Returns:
        ``(events, rows)`` written.

    Raises:
        DamagedRecordError: an audit row cannot be read as the record written (no file is
            left).
        OutputFileError: ``path`` cannot be written (missing or read-only folder, a folder
            in its place).
    """
    events = rows = 0
    tmp = path.with_name(path.name + ".tmp")
    try:
        with _snapshot(repo) as (snap, conn), tmp.open("w", encoding="utf-8") as handle:
            first = 0
            for rec in snap.iter_records("seq"):
                first = first or rec.seq
                doc = {**audit_json(rec), "canonical": rec.canonical}
                handle.write(json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n")
                events += 1
            book = ledger(conn, pruned_to=max(0, first - 1))
            for table in TABLES:
                recorded = book.rows[table]
                for values in iter_table(conn, table):
                    form = recorded.get(values[0], ("", CURRENT_FORM, 0))[1]
                    doc = {
                        "table": table,
                        "id": values[0],
                        "form": form,
                        "row": row_text(form, table, values),
                    }
                    # ASCII: a hand-edited row may hold text that is not UTF-8
                    handle.write(json.dumps(doc, sort_keys=True) + "\n")
                    rows += 1
    except OSError as exc:
        _discard(tmp)
        raise OutputFileError(path, exc.strerror or type(exc).__name__) from None
    except BaseException:
        _discard(tmp)  # a damaged row stops the export: leave no half file
        raise
    try:
        tmp.replace(path)
    except OSError as exc:
        _discard(tmp)
        raise OutputFileError(path, exc.strerror or type(exc).__name__) from None
    return events, rows


def _discard(tmp: Path) -> None:
    """Remove a half-written export, if it could be created at all."""
    with contextlib.suppress(OSError):  # its folder is missing: nothing was written there
        tmp.unlink(missing_ok=True)


def row_text(form: int, table: str, values: Sequence[Any]) -> str:
    """The canonical text of a stored row (current form's columns) under form ``form``;
    under the current form when this version does not know ``form``."""
    found = in_form(form, table, values) if form != CURRENT_FORM else None
    if found is None:
        return FORMS[CURRENT_FORM][table].canonical(values)
    return found[0].canonical(found[1])


@contextmanager
def _snapshot(repo: Repository) -> Iterator[tuple[Repository, Connection]]:
    """The repository read through one connection in one transaction, so the rows match the
    events (a cycle committed meanwhile is in neither): SQLite's deferred ``BEGIN`` in WAL
    mode, PostgreSQL's ``REPEATABLE READ``."""
    if repo.bind is not None:
        yield repo, repo.bind
        return
    with repo.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield Repository(repo.engine, bind=conn), conn
