"""Persistence: the **log** step's I/O edge (SQLAlchemy 2 over SQLite or PostgreSQL).

``models`` are the tables (the schema itself is owned by Alembic, ``migrations/``), ``db``
makes engines, finds the migrations and runs them, ``repository`` reads and writes through
sessions, scoped to one monitor (``chainstore``: its reads of the audit events and
checkpoints; ``monitors``: the portfolio's ``monitors`` table), ``cyclewrite``
writes one cycle's rows and audit events in one transaction of Core statements, ``mappers``
turns a measured cycle into rows, ``rowstore`` computes and checks the row digests that bind
stored rows to the chain, ``lease`` is the PostgreSQL leader lease, ``copy`` copies a whole
history between databases, ``maintenance`` holds the alert workflow, retention and key-
rotation writes, ``errors`` the store's error.

May import: ``fairlens_monitor.audit``, ``fairlens_monitor.monitoring``,
``fairlens_monitor.sources`` (types), ``fairlens_monitor.config``,
``fairlens_monitor.fairness``, ``fairlens_monitor.security``, ``fairlens_monitor.errors``;
never ``ops``, ``cli`` or ``viewer``.
"""
