"""The schema's revision: migrate it (Alembic, one migrator at a time) or check it before reading.

How the store meets its schema. The schema is created and changed only by Alembic
(``migrations/``, shipped inside the wheel as ``_migrations``; see ``migrations_folder``):
``upgrade`` migrates in one transaction (on PostgreSQL behind an advisory lock, on SQLite
behind ``BEGIN IMMEDIATE``), ``ensure_schema`` is what a writer runs at start, and
``check_readable`` what a reader runs — with plain SQL against ``SCHEMA_HEAD``, so a read
command never loads Alembic (it costs a quarter of a second of start-up).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from fairlens_monitor.store.db import sqlite_path
from fairlens_monitor.store.errors import StoreError

if TYPE_CHECKING:  # Alembic loads only where the schema is migrated or checked in depth
    from alembic.config import Config


# A wheel carries the top-level migrations/ inside the package (pyproject.toml's package-dir).
PACKAGED_MIGRATIONS = Path(__file__).resolve().parents[1] / "_migrations"


CHECKOUT_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def migrations_folder(url: str) -> Path:
    """Return the Alembic migrations folder this code runs with (the one place that finds it).

    The copy inside the installed package comes first, so an installed package never
    picks up some other ``migrations`` folder that happens to sit beside it in
    site-packages; a checkout (or ``pip install -e .``) has no such copy and uses the
    repository's ``migrations/``, the folder ``alembic.ini`` names too.

    Args:
        url: the database's URL, for the error message only.

    Returns:
        The folder holding ``env.py`` and ``versions/``.

    Raises:
        StoreError: neither place holds an ``env.py`` (a broken installation).
    """
    for folder in (PACKAGED_MIGRATIONS, CHECKOUT_MIGRATIONS):
        if (folder / "env.py").is_file():
            return folder
    raise StoreError(
        url,
        f"the schema migrations are missing: neither {PACKAGED_MIGRATIONS} (an installed "
        f"package) nor {CHECKOUT_MIGRATIONS} (a checkout) holds env.py; reinstall "
        "fairlens-monitor from its wheel, or run pip install . in a checkout",
    )


def alembic_config(url: str) -> Config:
    """Return an Alembic config on this installation's migrations (``migrations_folder``).

    Raises:
        StoreError: the migrations folder is missing.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_folder(url)))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def head_revision(url: str) -> str:
    """Return the newest migration revision this code knows (``SCHEMA_HEAD``, read from the
    migrations themselves)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None, "migrations/versions holds no revision"  # noqa: S101
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the database's Alembic revision, None for an empty database."""
    from alembic.runtime.migration import MigrationContext

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
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.util.exc import CommandError

    cfg = alembic_config(url)
    try:
        with engine.begin() as conn:
            # One migrator at a time: SQLite's BEGIN IMMEDIATE already holds the write lock;
            # on PostgreSQL a transaction-level advisory lock queues the others, which then
            # find the schema at head and change nothing.
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL lock_timeout = '120s'"))  # a migration's length
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
            before = MigrationContext.configure(conn).get_current_revision()
            if before is not None:
                refuse_newer(url, before)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        if before is not None and before.isdigit() and int(before) < REPACK_BELOW:
            _repack(engine)
        return before, head_revision(url)
    except SQLAlchemyError as exc:
        raise StoreError(url, f"migration failed: {one_line(exc)}") from None
    except CommandError as exc:
        raise StoreError(url, f"migration failed: {' '.join(str(exc).split())[:200]}") from None


# Migration 0013 dropped the second copy of every audit payload; SQLite's DROP COLUMN leaves
# each row alone in the page it had, so the file is repacked once (VACUUM, which cannot run
# inside the migration's transaction) when an upgrade crosses it.
REPACK_BELOW = 13


def _repack(engine: Engine) -> None:
    """VACUUM a SQLite file after an upgrade across 0013 (a database another process holds
    open is left as it is: still correct, only larger and slower to verify)."""
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as conn:
            conn.connection.dbapi_connection.execute("VACUUM")  # type: ignore[union-attr]
    except (OperationalError, sqlite3.OperationalError):
        pass


def one_line(exc: SQLAlchemyError) -> str:
    """The driver's own message of a database error, first line only (no SQL, no values)."""
    orig = getattr(exc, "orig", None)
    text_ = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig if orig is not None else exc).__name__}: {text_[0] if text_ else ''}"


def ensure_schema(engine: Engine, url: str) -> None:
    """Migrate an empty database; refuse one at another revision.

    Args:
        engine: a writable engine.
        url: the same database's URL.

    Raises:
        StoreError: the database is at a revision other than head.
    """
    try:
        revision = current_revision(engine)
    except OperationalError as exc:
        raise StoreError(
            url,
            f"cannot be opened: {one_line(exc)}; check that the path is a "
            "database file in a folder this user can write",
        ) from None
    head = head_revision(url)
    if revision is None:
        upgrade(engine, url)
    elif revision != head:
        refuse_newer(url, revision)
        raise StoreError(
            url,
            f"schema is at revision {revision} but this version needs "
            f"{head}; run 'fairlens-monitor db upgrade' (back it up first)",
        )


def refuse_newer(url: str, revision: str) -> None:
    """Refuse a database at a revision this version's migrations do not know.

    Raises:
        StoreError: the revision is unknown, so a newer version wrote the database.
    """
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util.exc import CommandError

    script = ScriptDirectory.from_config(alembic_config(url))
    try:
        known = script.get_revision(revision) is not None
    except (CommandError, RevisionError):
        known = False
    if not known:
        raise StoreError(
            url,
            f"this database was written by a newer version (revision "
            f"{revision[:40]}); upgrade fairlens-monitor",
        )


# The revision this code's models match: what a reader checks without loading Alembic
# (tests/test_migrations holds it equal to the migrations' head).
SCHEMA_HEAD = "0017"


def stored_revision(engine: Engine) -> str | None:
    """The database's revision read with plain SQL (what ``current_revision`` returns, without
    Alembic's start-up cost): None when there is no version table or it is empty.

    Raises:
        OperationalError: the database cannot be read (locked, unreachable).
    """
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            found = conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).first()
        else:
            found = conn.exec_driver_sql("SELECT to_regclass('alembic_version')").scalar()
        if not found:
            return None
        rows = [r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
    return ",".join(sorted(map(str, rows))) or None


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
        revision = stored_revision(engine)
    except OperationalError as exc:
        if sqlite_path(url) is None:
            raise StoreError(url, f"cannot connect: {str(exc.orig).strip()}") from None
        raise StoreError(
            url,
            f"cannot be read right now ({exc.orig}); it may be locked by a long write: try again",
        ) from None
    head = SCHEMA_HEAD
    if revision is None:
        raise StoreError(
            url,
            "is empty: the daemon has not created its schema yet; start "
            "it with 'make run' or 'fairlens-monitor run'",
        )
    if revision != head:
        refuse_newer(url, revision)
        raise StoreError(
            url,
            f"is at schema revision {revision}, this version reads {head}; "
            "run 'fairlens-monitor db upgrade' (back it up first)",
        )


MIGRATE_LOCK_KEY = 0x464C4D47  # "FLMG": one schema migration at a time on PostgreSQL
