"""Engines and the daemon locks: how the store meets the disk.

SQLite (the embedded default) is opened with WAL, ``synchronous=FULL`` (a committed cycle
survives power loss), a busy timeout, foreign keys on, and every write transaction starts
with ``BEGIN IMMEDIATE`` so two writers queue instead of failing mid-transaction. Readers
open the file read-only (``mode=ro``) and never create it. PostgreSQL (``postgresql+psycopg``)
gets a lock timeout in place of the busy timeout, and readers a session that refuses writes
(``default_transaction_read_only``), TCP keepalives both ways and an
``idle_in_transaction_session_timeout``, so a frozen or vanished client cannot hold locks
for long. One SQLite daemon per file is enforced with ``flock``; several PostgreSQL daemons
may share a database and lead by lease (``store.lease``). The schema itself (migrating it,
checking its revision) is ``store.schema``'s.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rfc8785
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from fairlens_monitor.audit import canonical
from fairlens_monitor.errors import AlreadyRunningError
from fairlens_monitor.store.errors import StoreError

if TYPE_CHECKING:  # Alembic loads only where the schema is migrated or checked in depth
    pass

BUSY_TIMEOUT_MS = 5000
IDLE_IN_TRANSACTION_S = 60.0
# A dead peer is noticed within about 10 + 3 * 5 s on both sides of the connection (a host
# freeze or a network partition), not after the kernel's default two hours.
CLIENT_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
SERVER_KEEPALIVES = (
    "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
)


def sqlite_path(url: str) -> Path | None:
    """Return the file of a SQLite URL, or None for other back ends."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def canonical_json(value: Any) -> str:
    """Serialise a JSON column value in RFC 8785 form (plain JSON if it cannot be).

    (Audit payloads are no JSON column since migration 0013: they are stored only inside
    the hashed ``canonical`` text.)
    """
    try:
        return canonical.jcs_bytes(value).decode("utf-8")
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        return json.dumps(value)


def make_engine(
    url: str,
    *,
    readonly: bool = False,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    idle_in_transaction_s: float = IDLE_IN_TRANSACTION_S,
) -> Engine:
    """Create an engine for ``url`` with the project's durability settings.

    Args:
        url: a SQLAlchemy URL (``sqlite:////abs/path.db`` after config resolution).
        readonly: open for reading only; a missing SQLite file is then an error instead of
            being created.
        busy_timeout_ms: how long a SQLite statement waits for another writer's lock (the
            ``lock_timeout`` on PostgreSQL).
        idle_in_transaction_s: PostgreSQL ends a session of this engine that sits this long
            inside a transaction (a frozen process), releasing its locks.

    Returns:
        The engine.

    Raises:
        StoreError: a read-only open of a SQLite file that does not exist.
    """
    path = sqlite_path(url)
    if path is None:
        options = (
            f"-c lock_timeout={int(busy_timeout_ms)} -c idle_in_transaction_session_"
            f"timeout={max(1000, int(idle_in_transaction_s * 1000))} {SERVER_KEEPALIVES}"
        )
        if readonly:
            options += " -c default_transaction_read_only=on"
        is_pg = make_url(url).get_backend_name() == "postgresql"
        return create_engine(
            url,
            pool_pre_ping=True,
            json_serializer=canonical_json,
            connect_args={"options": options, **CLIENT_KEEPALIVES} if is_pg else {},
        )
    if readonly:
        if not path.exists():
            raise StoreError(
                url,
                f"no database file at {path}; if the database was lost, "
                "restore it from a backup (fairlens-monitor restore FILE); "
                "a new installation starts with 'fairlens-monitor run'",
            )
        engine = create_engine(
            f"sqlite:///{readonly_uri(path, url)}",
            json_serializer=canonical_json,
            connect_args={"timeout": busy_timeout_ms / 1000},
        )
    else:
        make_folder(path.parent, url)
        engine = create_engine(
            url, json_serializer=canonical_json, connect_args={"timeout": busy_timeout_ms / 1000}
        )
    _configure_sqlite(engine, readonly=readonly, busy_timeout_ms=busy_timeout_ms)
    return engine


def make_folder(folder: Path, url: str) -> None:
    """Create the database's folder (and its parents) unless it exists.

    Raises:
        StoreError: it cannot be created (e.g. under ``/sys`` or ``/proc``, or no permission).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            url,
            f"cannot create its folder {folder}: "
            f"{exc.strerror or type(exc).__name__}; give a database path "
            "in a writable folder",
        ) from None


def readonly_uri(path: Path, url: str) -> str:
    """The SQLite URI that opens ``path`` for reading, also from a read-only copy.

    A database in WAL mode (as the monitor writes it) needs its ``-shm`` file even to be
    read, which a reader cannot create in a read-only folder, nor use on a read-only file
    ("may be locked ... try again"). When the file or its folder is not writable by this
    process, the file is opened ``immutable=1``: SQLite then takes no locks and reads the
    main file only. Caveat: nobody may write the database while it is read so (an
    auditor's copy); and a non-empty ``-wal`` beside it holds commits that such a read
    would miss, so that case is refused.

    Raises:
        StoreError: the file or folder is read-only and a non-empty ``-wal`` file is beside it.
    """
    target = f"file:{path}?mode=ro"
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return target + "&uri=true"
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            url,
            f"is read-only here and {wal.name} beside it holds commits a "
            "read-only open cannot see; open it once where it is writable "
            "(or copy it with `fairlens-monitor backup`, which writes one "
            "self-contained file)",
        )
    return target + "&immutable=1&uri=true"


def _configure_sqlite(engine: Engine, *, readonly: bool, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


@contextmanager
def instance_lock(url: str) -> Iterator[Path | None]:
    """Hold the single-daemon lock of a SQLite database for the duration of the block.

    The lock belongs to the database file, not to the name it was reached by: an exclusive
    ``flock`` on ``<real path>.lock`` (the path with every symlink and ``..`` resolved, so a
    relative path or a symlink finds the same lock) and on the database file itself (its
    inode, so a hard link finds it too, once the file exists). ``flock`` locks are apart
    from SQLite's own ``fcntl`` locks on Linux (local file systems; WAL needs one anyway),
    and the block must close every engine on the database before it ends. The kernel
    releases both when the process dies, even by ``kill -9``, so a crash never leaves a
    stale lock. Other back ends yield None at once: several daemons may share a server
    database, and the lease decides which one runs each cycle (``store.lease``).

    Args:
        url: the database URL.

    Yields:
        The lock file's path (None for a server database).

    Raises:
        AlreadyRunningError: another process holds the lock.
    """
    path = sqlite_path(url)
    if path is None:
        yield None
        return
    make_folder(path.parent, url)
    real = path.resolve()
    lock_path = real.with_name(real.name + ".lock")
    fds: list[int] = []
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fds.append(fd)
        _flock(fd, lock_path, lock_path)
        if real.exists():  # a file not created yet has no other name
            fds.append(os.open(real, os.O_RDONLY))
            _flock(fds[-1], lock_path, None)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield lock_path
    finally:
        for held in reversed(fds):
            os.close(held)


def _flock(fd: int, lock_path: Path, pid_file: Path | None) -> None:
    """Take an exclusive ``flock`` on ``fd`` or say who holds it (the pid in ``pid_file``)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = "a process that opened the file by another name"
        if pid_file is not None:
            pid = pid_file.read_bytes()[:64].decode("ascii", "replace").strip()
            holder = f"pid {pid or 'unknown'}"
        raise AlreadyRunningError(str(lock_path), holder) from None


CHAIN_LOCK_KEY = 0x464C4348  # "FLCH": serialises audit-chain appends on PostgreSQL
