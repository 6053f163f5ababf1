"""The audit chain: canonical bytes, hashing, verification, signed checkpoints, the anchor.

simulate → measure → detect → alert → **log**. ``chain`` holds the record format (canonical
JSON, SHA-256 links), ``verify`` the pure verification of a sequence of records;
``checkpoints`` signs and checks a chain head with Ed25519; ``anchor`` is the append-only
file of checkpoints outside the database; ``rowforms`` and ``rowcheck`` give every stored
row an auditor can read its digest and check it; ``events`` names the event types. Storage
is reached only through what the caller passes in (records, rows, a repository-shaped
object): the joining of the chain to the database, the key files and the anchor file happens
in :mod:`fairlens_monitor.ops`.

May import: ``fairlens_monitor.security``, ``fairlens_monitor.errors``.
"""
