"""Per-monitor judgement: a count table → a reading, drift over time, alert episodes.

simulate/read → measure → **detect** → alert → log. ``measure`` turns a count table into a
reading and its verdict (the same path for the daemon and the ``measure`` command),
``drift`` is the CUSUM drift detector over the reading history (the statistics of "drift
over time"; the simulator's drift *schedule* is config), ``episodes`` is the alert state
machine (open → acknowledged → resolved). Pure: state in, state out; no I/O, no clock.

May import: ``fairlens_monitor.fairness``, ``fairlens_monitor.config``,
``fairlens_monitor.security`` (masking), ``fairlens_monitor.errors``.
"""
