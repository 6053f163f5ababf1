"""The command line (click): parse arguments, call the operations, map errors to exit codes.

``main`` holds the command group and the run/once/verify/audit/db commands, ``operations``
the measure and alerts commands, ``maintenance`` the keys/backup/restore/retention
commands, ``page`` the page token and the ``view`` server, ``common`` the shared options,
the error → exit-code mapping (0 ok, 1 problem found, 2 usage or config) and the masked
``error:`` line, ``render``, ``measure_report`` and ``textwidth`` the text and JSON output.

May import: every layer (it is the top, beside ``viewer``); nothing imports it except
``fairlens_monitor.__main__``.
"""
