"""Append N audit events through the repository in one process (a concurrent chain writer).

Usage: python -m tests.helpers.append_loop URL N NAME
"""

from __future__ import annotations

import sys

from fairlens_monitor.store.db import make_engine
from fairlens_monitor.store.repository import Repository


def main() -> None:
    url, count, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    repo = Repository(make_engine(url, busy_timeout_ms=60_000))
    for i in range(count):
        repo.append_event(
            "test_append", name, {"writer": name, "i": i}, ts="2026-01-01T00:00:00.000000Z"
        )
    repo.engine.dispose()


if __name__ == "__main__":
    main()
