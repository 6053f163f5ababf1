"""Engines, schema migration and the daemon locks: how the store meets the disk.

SQLite (the embedded default) is opened with WAL, ``synchronous=FULL`` (a committed cycle
survives power loss), a busy timeout, foreign keys on, and every write transaction starts
with ``BEGIN IMMEDIATE`` so two writers queue instead of failing mid-transaction. Readers
open the file read-only (``mode=ro``) and never create it. PostgreSQL (``postgresql+psycopg``)
gets a lock timeout in place of the busy timeout, and readers a session that refuses writes
(``default_transaction_read_only``). One SQLite daemon per file is enforced with ``flock``;
several PostgreSQL daemons may share a database and elect a leader with a session advisory
lock (:class:`LeaderLock`). The schema is created and changed only by Alembic
(``migrations/``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rfc8785
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from fairlens_monitor.errors import AlreadyRunningError, StoreError

BUSY_TIMEOUT_MS = 5000
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def sqlite_path(url: str) -> Path | None:
    """Return the file of a SQLite URL, or None for other back ends."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def canonical_json(value: Any) -> str:
    """Serialise a JSON column value in RFC 8785 form (plain JSON if it cannot be).

    Audit payloads are then stored as the very bytes the chain hashes, which lets
    verification compare text instead of parsing every payload (see ``audit.StoredRecord``).
    """
    known = getattr(value, "canonical_text", None)  # audit.CanonicalPayload
    if isinstance(known, str):
        return known
    try:
        return rfc8785.dumps(value).decode("utf-8")
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        return json.dumps(value)


def make_engine(url: str, *, readonly: bool = False,
                busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Engine:
    """Create an engine for ``url`` with the project's durability settings.

    Args:
        url: a SQLAlchemy URL (``sqlite:////abs/path.db`` after config resolution).
        readonly: open for reading only; a missing SQLite file is then an error instead of
            being created.
        busy_timeout_ms: how long a SQLite statement waits for another writer's lock.

    Returns:
        The engine.

    Raises:
        StoreError: a read-only open of a SQLite file that does not exist.
    """
    path = sqlite_path(url)
    if path is None:
        options = f"-c lock_timeout={int(busy_timeout_ms)}"
        if readonly:
            options += " -c default_transaction_read_only=on"
        is_pg = make_url(url).get_backend_name() == "postgresql"
        return create_engine(url, pool_pre_ping=True, json_serializer=canonical_json,
                             connect_args={"options": options} if is_pg else {})
    if readonly:
        if not path.exists():
            raise StoreError(url, f"no database file at {path}; if the database was lost, "
                                  "restore it from a backup (fairlens-monitor restore FILE); "
                                  "a new installation starts with 'fairlens-monitor run'")
        engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true",
                               json_serializer=canonical_json,
                               connect_args={"timeout": busy_timeout_ms / 1000})
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, json_serializer=canonical_json,
                               connect_args={"timeout": busy_timeout_ms / 1000})
    _configure_sqlite(engine, readonly=readonly, busy_timeout_ms=busy_timeout_ms)
    return engine


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


def alembic_config(url: str) -> Config:
    """Return an Alembic config pointing at this project's ``migrations/`` folder.

    Raises:
        StoreError: the migrations folder is not where a checkout keeps it.
    """
    script_location = PROJECT_ROOT / "migrations"
    if not (script_location / "env.py").exists():
        raise StoreError(url, f"migrations not found at {script_location}; run from a "
                              "checkout of fairlens-monitor (pip install -e .)")
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def head_revision(url: str) -> str:
    """Return the newest migration revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None, "migrations/versions holds no revision"  # noqa: S101
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the database's Alembic revision, None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, url: str) -> tuple[str | None, str]:
    """Migrate the database to the newest revision in one transaction.

    Args:
        engine: a writable engine.
        url: the same database's URL (for the Alembic config and messages).

    Returns:
        ``(revision before, revision after)``.

    Raises:
        StoreError: the migration failed; nothing was changed.
    """
    cfg = alembic_config(url)
    try:
        before = current_revision(engine)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return before, head_revision(url)
    except SQLAlchemyError as exc:
        raise StoreError(url, f"migration failed: {exc.__class__.__name__}: {exc}") from None


def ensure_schema(engine: Engine, url: str) -> None:
    """Migrate an empty database; refuse one at another revision.

    Args:
        engine: a writable engine.
        url: the same database's URL.

    Raises:
        StoreError: the database is at a revision other than head.
    """
    revision, head = current_revision(engine), head_revision(url)
    if revision is None:
        upgrade(engine, url)
    elif revision != head:
        raise StoreError(url, f"schema is at revision {revision} but this version needs "
                              f"{head}; run 'fairlens-monitor db upgrade' (back it up first)")


def check_readable(engine: Engine, url: str) -> None:
    """Make sure a database can be read by this version, or say what to do.

    Args:
        engine: an engine on the database (read-only is enough).
        url: its URL, for messages.

    Raises:
        StoreError: the database is locked past the busy timeout, empty (no schema yet), or
            at a schema revision other than this version's.
    """
    try:
        revision = current_revision(engine)
    except OperationalError as exc:
        if sqlite_path(url) is None:
            raise StoreError(url, f"cannot connect: {str(exc.orig).strip()}") from None
        raise StoreError(url, f"cannot be read right now ({exc.orig}); it may be locked by a "
                              "long write: try again") from None
    head = head_revision(url)
    if revision is None:
        raise StoreError(url, "is empty: the daemon has not created its schema yet; start "
                              "it with 'make run' or 'fairlens-monitor run'")
    if revision != head:
        raise StoreError(url, f"is at schema revision {revision}, this version reads {head}; "
                              "run 'fairlens-monitor db upgrade' (back it up first)")


@contextmanager
def instance_lock(url: str) -> Iterator[Path | None]:
    """Hold the single-daemon lock of a SQLite database for the duration of the block.

    An exclusive ``flock`` on ``<database>.lock``; the kernel releases it when the process
    dies, even by ``kill -9``, so a crash never leaves a stale lock. Other back ends yield
    None at once: several daemons may share a server database, and :class:`LeaderLock`
    decides which one runs each cycle.

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
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise AlreadyRunningError(str(lock_path), f"pid {holder}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield lock_path
    finally:
        os.close(fd)


LEADER_LOCK_KEY = 0x464C4C44  # "FLLD": the daemons' leader lock on PostgreSQL
CHAIN_LOCK_KEY = 0x464C4348  # "FLCH": serialises audit-chain appends on PostgreSQL


class LeaderLock:
    """Which of several daemons on one PostgreSQL database runs the cycles.

    Holds ``pg_try_advisory_lock`` on a dedicated connection. The server releases a session
    lock when its session ends — the daemon stops, crashes or is killed — so a standby's next
    :meth:`try_acquire` (once per interval) takes over. On SQLite there is one daemon per
    file (:func:`instance_lock`) and :meth:`try_acquire` is always True.
    """

    def __init__(self, engine: Engine) -> None:
        """Prepare the lock for ``engine`` (no connection is taken yet)."""
        self.engine = engine
        self._conn: Connection | None = None
        self.server = engine.dialect.name == "postgresql"

    def try_acquire(self) -> bool:
        """Return True when this process leads (taking the lock if it is free).

        A connection lost while leading counts as losing the lead; the lock is tried again
        on a new connection.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the server cannot be reached, so nobody can tell
                who leads.
        """
        if not self.server:
            return True
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql("SELECT 1")
                return True
            except SQLAlchemyError:
                self.release()
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            won = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                    {"k": LEADER_LOCK_KEY}).scalar())
        except SQLAlchemyError:
            conn.close()
            raise
        if won:
            self._conn = conn
        else:
            conn.close()
        return won

    def release(self) -> None:
        """Give the lead up (closing the session releases the lock)."""
        if self._conn is not None:
            try:
                self._conn.invalidate()  # really close the session, not back to the pool
                self._conn.close()
            except SQLAlchemyError:
                pass
            self._conn = None
