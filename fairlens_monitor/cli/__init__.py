"""The command line (click): parse arguments, call the operations, map errors to exit codes.

``main`` holds the command group and the run/once/verify/audit/db commands, ``operations``
the measure and alerts commands, ``maintenance`` the keys/backup/restore/retention
commands, ``page`` the page token and the ``view`` server, ``common`` the shared options,
the error → exit-code mapping (0 ok, 1 problem found, 2 usage or config) and the masked
``error:`` line, ``render``, ``measure_report`` and ``textwidth`` the text and JSON output.

May import: every layer (it is the top, beside ``viewer``); nothing imports it except
``fairlens_monitor.__main__``.
"""

import os

# numpy and scipy each bundle OpenBLAS, which starts a thread per core when imported; those
# threads spin waiting for matrix work this program never gives them (its arrays are count
# tables), taking a core from the CSV parse and the daemon's workers: `measure` on a 10M-row
# file spent 0.2 s more CPU and 0.1 s more wall with them (docs/PERFORMANCE.md). Set before
# any command imports numpy; an operator's own setting is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
