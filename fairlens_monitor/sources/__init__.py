"""Decision sources: where a cycle's decisions come from (the simulator, files, SQL).

**read** → counts → measure → detect → alert → log. ``base`` holds what a cycle asks of a
source (:class:`~fairlens_monitor.sources.base.Batch`, ``DecisionSource``, ``open_source``)
and the file and SQL sources; ``files`` reads decision files chunk by chunk with their
digests, ``sql`` and ``sql_window`` count in the database, ``simulator`` makes decisions
up. ``csvparts`` is ``measure``'s parallel CSV reader: it imports neither pandas nor
SQLAlchemy, so ``measure`` can start parsing a plain CSV without them.

May import: ``fairlens_monitor.fairness``, ``fairlens_monitor.config``,
``fairlens_monitor.security``, ``fairlens_monitor.errors``. This ``__init__`` imports
nothing, so that importing one module of the package loads only what that module needs.
"""
