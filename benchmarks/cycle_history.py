"""A year of stored cycles for ``cycle_overhead.py``, built once and cached under ``var/``.

A template of real cycles is run first (the drift ramps up, an alert episode opens, the
drift drops and it resolves; one cycle fails; a checkpoint is signed after every cycle, as
with one-minute cycles and ``checkpoint_seconds: 60``), then its rows are copied in SQL
until the database holds N cycles: runs (``ok`` and ``failed``), readings of both scenarios
with their group results, alert episodes (all resolved but the newest copy's), audit events
of the real sizes and checkpoints, every id, foreign key and seq shifted per copy. So every
table a cycle reads grows with N (a query that scanned one would grow with it). The events
copied are not a valid chain (their hashes are numbers): the benchmark never verifies.

The file is cached as ``var/bench-cycle-history-<N>-rev<schema revision>-b<builder>.db``;
a run copies it, so every run starts from the same history.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from fairlens_monitor.audit import anchor
from fairlens_monitor.audit.checkpoints import Checkpoint

BUILDER = 1  # bump when the template or the copying changes: the cached files are rebuilt
TEMPLATE_RAMP = 60  # cycles of the default ramp (30 quiet, 30 rising): an alert opens
TEMPLATE_QUIET = 10  # cycles at drift 0 after it: the episode resolves

# Per table, the columns shifted per copy: ``column: table whose id (or seq) range it is in``.
SHIFTS: dict[str, dict[str, str]] = {
    "runs": {"id": "runs"},
    "readings": {"id": "readings", "run_id": "runs"},
    "group_results": {"id": "group_results", "reading_id": "readings"},
    "alerts": {
        "id": "alerts",
        "run_id": "runs",
        "reading_id": "readings",
        "last_reading_id": "readings",
    },
    "audit_events": {"id": "audit_events", "seq": "seq"},
    "checkpoints": {"id": "checkpoints", "seq": "seq"},
}


def cached_history(
    folder: Path, cycles: int, revision: str, template: Callable[[Path], None]
) -> Path:
    """The cached database holding at least ``cycles`` stored cycles, built if missing.

    Args:
        folder: where cached files live (``var/``).
        cycles: how many cycles the history should hold.
        revision: the schema revision the code migrates to (part of the file name).
        template: runs the template's real cycles into a new database at the given path.

    Returns:
        The cached file (never opened for writing by a run: copy it first).
    """
    target = folder / f"bench-cycle-history-{cycles}-rev{revision}-b{BUILDER}.db"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    work = target.with_suffix(".building")
    for stale in (work, work.with_name(work.name + "-wal"), work.with_name(work.name + "-shm")):
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    template(work)
    with sqlite3.connect(work) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        stored = replicate(conn, cycles)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        newest = conn.execute(
            "SELECT seq, head_hash, ts, key_id, signature, prev FROM checkpoints "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    # the anchor file ends at the newest checkpoint, as the daemon's would (or the first
    # checkpoint a run writes would append every copied one)
    anchor.append(target.with_suffix(".anchor.jsonl"), Checkpoint(*newest))
    work.rename(target)
    for left in ("-wal", "-shm"):
        work.with_name(work.name + left).unlink(missing_ok=True)
    print(f"built {target.name}: {stored:,} cycles in {time.perf_counter() - started:.0f} s")
    return target


def copy_history(source: Path, to: Path) -> None:
    """Copy a cached history (its WAL was checkpointed into the file) to ``to``, and make
    the copy durable: otherwise the run's first fsync of the database would write out the
    whole copy (gigabytes at 500k cycles) and be timed as part of a cycle."""
    shutil.copyfile(source, to)
    with to.open("rb+") as handle:
        os.fsync(handle.fileno())


def replicate(conn: sqlite3.Connection, cycles: int) -> int:
    """Copy the template's rows until ``cycles`` cycles are stored; return how many are.

    The template's newest copy stays as it was (an episode it left open stays open); every
    older copy's episodes are resolved, as a year of history would have them.
    """
    ok = int(conn.execute("SELECT count(*) FROM runs WHERE status = 'ok'").fetchone()[0])
    copies = max(1, -(-cycles // ok))
    top = {
        table: int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0])  # noqa: S608
        for table in ("runs", "readings", "group_results", "alerts", "audit_events", "checkpoints")
    }
    top["seq"] = int(conn.execute("SELECT coalesce(max(seq), 0) FROM audit_events").fetchone()[0])
    conn.execute("CREATE TEMP TABLE copies (n INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO copies VALUES (?)", ((n,) for n in range(1, copies)))
    for table, shifts in SHIFTS.items():
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        values = []
        for c in columns:
            if c in shifts:
                values.append(f'"{c}" + n * {top[shifts[c]]}')
            elif table == "runs" and c == "cycle_index":
                values.append(f'"{c}" + n * {ok}')
            elif table == "audit_events" and c in ("hash", "prev_hash"):
                step = "" if c == "hash" else " - 1"
                values.append(f"printf('%064x', seq + n * {top['seq']}{step})")
            else:
                values.append(f'"{c}"')
        names = ", ".join(f'"{c}"' for c in columns)
        conn.execute(
            f"INSERT INTO {table} ({names}) SELECT {', '.join(values)} "  # noqa: S608
            f"FROM copies, {table} ORDER BY n, {table}.id"
        )
    newest = (copies - 1) * top["alerts"]
    conn.execute(
        "UPDATE alerts SET state = 'resolved', closed_at = created_at "
        "WHERE state != 'resolved' AND id <= ?",
        (newest,),
    )
    conn.commit()
    return copies * ok
