"""Copy a monitor database to another back end (``fairlens-monitor db copy``), ids intact.

For moving from the embedded SQLite file to PostgreSQL (or back, or to a fresh file). The
destination must be empty or freshly migrated with no rows; it is migrated to head, then
every table is copied in foreign-key order in one transaction, with the same ids, times,
payloads and stored canonical bytes, so the hash chain and the signed checkpoints verify on
the copy exactly as on the source. On PostgreSQL the id sequences are moved past the copied
ids. The caller verifies the copy inside the copy's transaction (``check``), so a copy that
does not verify is rolled back whole (the CLI runs the full chain verification there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, Table, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from fairlens_monitor.store.db import make_engine
from fairlens_monitor.store.errors import StoreError
from fairlens_monitor.store.models import (
    Alert,
    AuditEvent,
    AuditPayloadEdit,
    Base,
    CheckpointRow,
    GroupResult,
    Monitor,
    Reading,
    ReadingRollup,
    Run,
    SourceFile,
)
from fairlens_monitor.store.repository import Repository
from fairlens_monitor.store.schema import check_readable, current_revision, upgrade

TABLES: list[Table] = [
    Base.metadata.tables[m.__tablename__]
    for m in (
        Monitor,
        Run,
        Reading,
        GroupResult,
        SourceFile,
        Alert,
        ReadingRollup,
        AuditEvent,
        AuditPayloadEdit,
        CheckpointRow,
    )
]
BATCH = 5000


@dataclass(frozen=True)
class CopyResult:
    """Rows copied per table, and the chain head of the copy."""

    rows: dict[str, int]
    head_seq: int


def copy_database(
    src_url: str, dst_url: str, check: Callable[[Repository], None] | None = None
) -> CopyResult:
    """Copy every row of the monitor's tables from ``src_url`` to ``dst_url``.

    Args:
        src_url: the source database (opened read-only; must be at this version's schema).
        dst_url: the destination (created/migrated; must hold no rows).
        check: called with a repository that reads the destination through the copy's own
            connection, after every row is written and before the commit; whatever it
            raises rolls the whole copy back (``db copy`` verifies the chain here, so a copy
            that does not verify leaves no row behind).

    Returns:
        Rows per table and the copied chain's head seq.

    Raises:
        StoreError: the source cannot be read, the destination holds rows or is at another
            revision, or the copy failed (then nothing was written to the destination's
            tables).
        Exception: whatever ``check`` raised (nothing was written then either).
    """
    if src_url == dst_url:
        raise StoreError(dst_url, "source and destination are the same database")
    src = make_engine(src_url, readonly=True)
    dst = make_engine(dst_url)
    try:
        check_readable(src, src_url)
        if current_revision(dst) is not None:
            _require_empty(dst_url, dst)
        upgrade(dst, dst_url)
        counts: dict[str, int] = {}
        with src.connect() as reader, dst.begin() as writer:
            for table in TABLES:
                result = reader.execution_options(yield_per=BATCH).execute(
                    select(table).order_by(*table.primary_key.columns)
                )
                counts[table.name] = 0
                for part in result.mappings().partitions(BATCH):
                    writer.execute(insert(table), [dict(row) for row in part])
                    counts[table.name] += len(part)
            if writer.dialect.name == "postgresql":
                for table in (t for t in TABLES if "id" in t.c):
                    writer.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "  # noqa: S608
                            f"coalesce((SELECT max(id) FROM {table.name}), 0) + 1, false)"
                        )
                    )
            head = writer.scalar(select(func.max(AuditEvent.seq))) or 0
            if check is not None:
                check(Repository(dst, bind=writer))
        return CopyResult(counts, int(head))
    finally:
        src.dispose()
        dst.dispose()


def _require_empty(url: str, engine: Engine) -> None:
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            try:
                n = conn.scalar(select(func.count()).select_from(table)) or 0
            except SQLAlchemyError:  # a table of a later revision may not exist yet
                conn.rollback()
                continue
            if n:
                raise StoreError(
                    url,
                    f"destination already holds {n} rows in '{table.name}'; "
                    "copy only into an empty database",
                )
