"""Alembic environment: runs the migrations that own the monitor's schema.

Called by ``fairlens-monitor db upgrade`` (which passes its own connection, so the SQLite
durability settings and ``BEGIN IMMEDIATE`` apply), or by the ``alembic`` command, which
takes the URL from ``FAIRLENS_DB_URL`` or the config file. ``render_as_batch`` lets SQLite
alter tables.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context

from fairlens_monitor.store import outbox as _outbox  # noqa: F401  (registers notifications)
from fairlens_monitor.store.models import Base

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from fairlens_monitor.config.settings import load_settings

    return load_settings(os.environ.get("FAIRLENS_CONFIG", "config.yaml")).database.url


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, other: object
) -> bool:
    """Leave SQLite's generated ``audit_events.payload`` (migration 0013: computed from
    ``canonical`` when read, never written, so not mapped) out of autogenerate's comparison."""
    table = getattr(getattr(obj, "table", None), "name", None)
    return not (type_ == "column" and reflected and name == "payload" and table == "audit_events")


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    from fairlens_monitor.store.db import make_engine

    engine = make_engine(_url())
    try:
        with engine.begin() as conn:
            context.configure(
                connection=conn,
                target_metadata=target_metadata,
                render_as_batch=True,
                include_object=include_object,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:  # also when a migration refuses (0015's downgrade): no connection left open
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
