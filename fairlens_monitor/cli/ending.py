"""Ending the command-line process: at once, for a command that holds nothing to release.

A normal exit tears the interpreter down: every module's objects are freed, atexit handlers
and the thread pools of pyarrow and ``concurrent.futures`` are joined, then the C++ libraries'
static objects are destroyed. With pandas, pyarrow and scipy loaded that costs ~0.08 s, a
tenth of ``measure`` on a 10-million-row file (docs/PERFORMANCE.md). A command that writes
nothing and holds no connection, lock or file open for writing (``measure``) asks, once its
output is written, to skip it: :func:`end` then flushes the standard streams and the
logging handlers and ends the process with :func:`os._exit`.

Only the console entry point (:func:`fairlens_monitor.cli.main.main`) ends the process; a
command run in-process (click's test runner, a notebook) only sets the request, so nothing
here ends a test run.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

_requested = False


def quick_exit_requested() -> bool:
    """Whether the command that ran asked for :func:`request_quick_exit`."""
    return _requested


def request_quick_exit() -> None:
    """Ask the console entry point to end the process without tearing the interpreter down.

    For a command that holds nothing to release: it has written nothing but its output, holds
    no database connection, lock or file open for writing, and has no thread left that must
    finish (a thread still importing is not such work).
    """
    global _requested
    _requested = True


def reset() -> None:
    """Forget a request (the entry point calls this before it runs a command)."""
    global _requested
    _requested = False


def end(code: int) -> NoReturn:
    """End the process with ``code``: at once if the command asked for it, else normally.

    The quick way first flushes stdout, stderr and the logging handlers; if a flush fails (a
    closed pipe), the process ends the normal way, which reports it as Python always does.

    Args:
        code: the exit code (0 ok, 1 a problem found, 2 usage or input error).

    Raises:
        SystemExit: always, unless the process ended at once.
    """
    if _requested:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed pipe or stream: let Python say so
            sys.exit(code)
        logging.shutdown()
        os._exit(code)
    sys.exit(code)
