"""Operations: the only layer that joins the store, the audit chain, security and sources.

The whole cycle lives here: ``sequence`` is the one run sequence (chain start → config
change → cycle → checkpoint) that ``once`` and the daemon share; ``cycle`` runs simulate/read
→ measure → detect → alert → log once inside one transaction, with ``measuring`` (settings →
``Rules``, the simulated scenarios) and ``console`` (its lines); ``daemon`` schedules it
(APScheduler) with ``leadership`` (the lease, missed fires) and graceful stops; ``sealing``
signs checkpoints in the cycle's transaction; ``audit_trail`` writes checkpoints and the
anchor file, ``verification`` checks the trail, a copy and one entry; ``export`` writes the
examiner's export, ``dbcopy`` a verified copy into another database; ``governance`` records
config changes; ``backup``, ``restore``, ``retention`` and ``keys`` (rotation) are the
maintenance operations; ``app`` opens the resources (repository, cipher, signing key);
``measure_file`` measures a decision file once without storing anything.

May import: every layer below it (``store``, ``audit``, ``monitoring``, ``sources``,
``config``, ``fairness``, ``security``, ``errors``); never ``cli`` or ``viewer``.
"""
