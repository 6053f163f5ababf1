"""The whole chain's walk, split over the machine's cores when the database is a SQLite file.

simulate → measure → detect → alert → **log**, checked at storage speed. ``verify`` reads
every event once; one Python process hashes at most one core's worth. :func:`walk_chain`
splits a long SQLite chain by row id into one stretch per usable core: this process walks
the first stretch while worker processes (this module's ``_work`` in ``python -I``,
plain ``sqlite3`` and the pure ``audit.segments``: no SQLAlchemy, no ORM) walk the others,
then ``audit.segments.join_segments`` checks every boundary link and the start. The result
is exactly ``verify_chain``'s.

It falls back to the serial walk (``verify_chain`` over ``Repository.iter_stored``, the
one path PostgreSQL and a bound connection take) whenever splitting cannot help or cannot
be trusted to equal it:

- one usable core, or a chain shorter than ``min_events`` (starting a process costs more
  than it saves);
- not a SQLite file (PostgreSQL, a connection inside an open transaction such as ``db
  copy``'s, whose rows no other connection sees);
- any stretch not plainly intact, any boundary that does not link, a worker that fails:
  the serial walk then reports every anomaly at its seq, in order. An intact chain is read
  once; a tampered one once split and once serially.

Each stretch is a separate read (its own snapshot): rows appended meanwhile lie above the
last id planned and are not walked; rows deleted meanwhile (a prune) break a boundary and
so cause the serial walk.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import quote

from fairlens_monitor.audit.segments import Segment, join_segments, walk_segment
from fairlens_monitor.audit.verify import AnchorClaim, ChainReport, claims_to_check
from fairlens_monitor.store.rowtap import RowTap

if TYPE_CHECKING:
    from fairlens_monitor.store.repository import Repository

# Below this many events one process walks: a worker's start (~80 ms of CPU for an
# interpreter and its imports; on a chain with row digests, SQLAlchemy too, for the row
# tap's parser in store.rowstore) is worth it only when each stretch takes much longer.
MIN_EVENTS = 40_000
MAX_WORKERS = 8
HEAD_START = 20_000  # ~ what one core walks while a worker starts (see _bounds)
MMAP_BYTES = 1 << 34  # as chainstore's: the file is memory-mapped for the read
WORKER = "fairlens_monitor.store.chainwalk"  # the module whose _work a worker runs
COLUMNS = "seq, ts, event_type, actor, prev_hash, hash, canonical"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def walk_chain(
    repo: Repository,
    anchors: Sequence[AnchorClaim],
    start: tuple[int, str],
    *,
    workers: int | None = None,
    min_events: int | None = None,
) -> tuple[ChainReport, RowTap]:
    """Walk the whole chain (as ``verify_chain``), split over the cores when it pays.

    Args:
        repo: the repository.
        anchors: the checkpoint claims to check.
        start: the first seq and its ``prev_hash`` (``verify_chain``'s ``start``).
        workers: how many stretches at most (default: the usable cores, at most
            ``MAX_WORKERS``); 1 walks serially.
        min_events: below this many rows (by id range) the walk is serial (default:
            :data:`MIN_EVENTS`).

    Returns:
        The report (equal to ``verify_chain``'s over the same rows) and the row tap that saw
        every row event (its ledger is the row check's).
    """
    count = min(MAX_WORKERS, usable_cores()) if workers is None else workers
    if count > 1:
        least = MIN_EVENTS if min_events is None else min_events
        found = _split_walk(repo, anchors, start, count, least)
        if found is not None:
            return found
    from fairlens_monitor.audit.verify import verify_chain

    tap = RowTap()
    report = verify_chain(tap.watch(repo.iter_stored()), repo.iter_links(), anchors, start)
    return report, tap


def _split_walk(
    repo: Repository,
    anchors: Sequence[AnchorClaim],
    start: tuple[int, str],
    count: int,
    min_events: int,
) -> tuple[ChainReport, RowTap] | None:
    """The split walk, or None when it does not apply or the chain is not plainly intact."""
    uri = _sqlite_uri(repo)
    if uri is None:
        return None
    try:
        with _open(uri) as conn:
            low, high = conn.execute("SELECT min(id), max(id) FROM audit_events").fetchone()
            edited = conn.execute("SELECT count(*) FROM audit_payload_edits").fetchone()[0]
    except sqlite3.Error:  # locked, damaged: the serial walk says what it can
        return None
    if type(low) is not int or type(high) is not int or high - low + 1 < min_events:
        return None
    sql = _select(bool(edited))
    wanted = frozenset(a.seq for a in claims_to_check(anchors, start))
    bounds = _bounds(low, high, count)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        try:
            for lo, hi in bounds[1:]:
                procs.append(_spawn(uri, sql, lo, hi, wanted))
        except (OSError, ValueError):  # no interpreter to start (embedded, out of processes)
            return None
        tap = RowTap()
        try:
            with _open(uri) as conn:
                mine = walk_segment(conn.execute(sql, bounds[0]), wanted, tap.note, tap.types)
        except sqlite3.Error:  # e.g. text that is not UTF-8: the serial walk reports it
            return None
        if mine is None:
            return None
        segments: list[Segment | None] = [mine]
        for proc in procs:
            segment, payloads, last_seq = _result(proc)
            if segment is None:
                return None
            segments.append(segment)
            tap.merge(payloads, last_seq)
        report = join_segments(segments, anchors, start)
        return None if report is None else (report, tap)
    finally:
        for proc in procs:  # only the workers started here, each by its own handle
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _bounds(low: int, high: int, count: int) -> list[tuple[int, int]]:
    """``count`` contiguous id ranges covering ``low..high``: equal, except that the first
    (this process's, which starts at once while each worker first starts an interpreter) is
    longer by up to :data:`HEAD_START` ids."""
    total = high - low + 1
    lead = min(HEAD_START, total // (4 * count))
    size = max(1, -(-(total - lead) // count))  # ceiling division
    out = [(low, min(high, low + lead + size - 1))]
    while out[-1][1] < high:
        begin = out[-1][1] + 1
        out.append((begin, min(high, begin + size - 1)))
    return out


def _select(edited: bool) -> str:
    """The stretch's query: ``iter_stored``'s columns, ``edited`` last (migration 0013)."""
    flag = "seq IN (SELECT seq FROM audit_payload_edits)" if edited else "0"
    return f"SELECT {COLUMNS}, {flag} FROM audit_events WHERE id BETWEEN ? AND ? ORDER BY id"  # noqa: S608


def _sqlite_uri(repo: Repository) -> str | None:
    """A read-only URI of the repository's SQLite file, or None (another back end, a
    connection inside an open transaction, a database in memory)."""
    if repo.bind is not None or repo.engine.dialect.name != "sqlite":
        return None
    with repo.engine.connect() as conn:
        raw: Any = conn.connection.dbapi_connection
        rows = raw.execute("PRAGMA database_list").fetchall()
    path = next((row[2] for row in rows if row[1] == "main"), "")
    return _file_uri(Path(path)) if path else None


def _file_uri(path: Path) -> str | None:
    """The read-only URI of ``path``, every character a URI gives a meaning to escaped (a
    ``#`` or ``?`` in a folder's name must not name another file). As ``db.readonly_uri``: a
    file or folder this process cannot write is opened ``immutable`` (no ``-shm`` to create),
    and None for a read-only file beside a non-empty ``-wal`` (the serial walk's engine
    refuses it with the reason)."""
    target = f"file:{quote(str(path))}?mode=ro"
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return target
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return None
    return target + "&immutable=1"


class _open:
    """A read-only ``sqlite3`` connection for one stretch, the file memory-mapped."""

    def __init__(self, uri: str) -> None:
        self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5.0)
        self.conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *_: object) -> None:
        self.conn.close()


def _spawn(uri: str, sql: str, lo: int, hi: int, wanted: frozenset[int]) -> subprocess.Popen[bytes]:
    """Start a worker on ``lo..hi``; its job goes through its stdin (no shell, no argv).

    This interpreter in isolated mode (``-I``: no current folder or ``PYTHONPATH`` on its
    path, so a stray ``sqlite3.py`` where ``verify`` runs is never imported), with this
    package's own folder first, so the worker runs exactly this code.
    """
    package = str(Path(__file__).resolve().parents[2])
    code = f"import sys; sys.path.insert(0, {package!r}); import {WORKER} as w; w._work()"
    proc = subprocess.Popen(  # noqa: S603 (this interpreter, our own module, no shell)
        [sys.executable, "-I", "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    job = pickle.dumps((uri, sql, lo, hi, wanted), pickle.HIGHEST_PROTOCOL)
    try:
        cast("IO[bytes]", proc.stdin).write(job)
        cast("IO[bytes]", proc.stdin).close()
    except OSError:  # it died at once: _result says None
        pass
    return proc


def _result(proc: subprocess.Popen[bytes]) -> tuple[Segment | None, list[Any], int]:
    """A worker's stretch, or ``(None, [], 0)`` when it failed."""
    data = cast("IO[bytes]", proc.stdout).read()
    if proc.wait() != 0 or not data:
        return None, [], 0
    try:
        segment, payloads, last_seq = pickle.loads(data)  # noqa: S301 (our own child's output)
    except Exception:
        return None, [], 0
    return segment, payloads, last_seq


def _work() -> None:
    """A worker: walk the stretch named on stdin, write its result to stdout (pickled)."""
    uri, sql, lo, hi, wanted = pickle.loads(sys.stdin.buffer.read())  # noqa: S301
    tap = RowTap()
    with _open(uri) as conn:
        segment = walk_segment(conn.execute(sql, (lo, hi)), wanted, tap.note, tap.types)
    payloads = tap.payloads if segment is not None else []
    sys.stdout.buffer.write(
        pickle.dumps((segment, payloads, tap.last_seq), pickle.HIGHEST_PROTOCOL)
    )
