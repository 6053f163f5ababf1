"""Operations: the only layer that joins the store, the audit chain, security and sources.

The whole cycle lives here: ``cycle`` runs simulate/read → measure → detect → alert → log
once inside one transaction, ``daemon`` schedules it (APScheduler) with leadership
(``leadership``) and graceful stops, ``sealing`` signs checkpoints in the cycle's transaction, ``audit_trail``
verifies the chain against the database, the keys and the anchor file, ``export`` writes
the examiner's export, ``governance`` records config changes, and ``backup``, ``restore``,
``retention`` and ``keys`` (rotation) are the maintenance operations. ``app`` opens the
resources (repository, cipher, signing key) from settings; ``measure_file`` measures a
decision file once without storing anything.

May import: every layer below it (``store``, ``audit``, ``monitoring``, ``sources``,
``config``, ``fairness``, ``security``, ``errors``); never ``cli`` or ``viewer``.
"""
