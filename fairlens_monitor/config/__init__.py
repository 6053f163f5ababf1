"""The config boundary: a YAML file (and environment variables) → frozen, validated settings.

Before the pipeline runs: every key is checked here and a bad one is refused with a message
naming the key and the fix (exit 2), so nothing below ever sees an unchecked value.
``settings`` holds the frozen ``Settings`` tree and ``load_settings`` (its sections are
``sections``); ``reader`` reads the file with bounded YAML; ``checks`` holds the typed key
readers; ``measurement`` and ``source`` parse those sections (``sql_check`` vets a source
query); ``simulation`` is the simulator's drift schedule, ``detection`` the CUSUM chart's
settings.

May import: ``fairlens_monitor.fairness`` (types such as ``GroupSpec``),
``fairlens_monitor.security`` (safe file reading), ``fairlens_monitor.errors``.
"""
