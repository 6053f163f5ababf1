"""Run `fairlens-monitor once` N times in one process (a concurrent writer for the tests).

Usage: python -m tests.helpers.once_loop CONFIG N
"""

from __future__ import annotations

import sys

from fairlens_monitor.cli.main import cli


def main() -> None:
    config, count = sys.argv[1], int(sys.argv[2])
    for _ in range(count):
        code = cli.main(["--config", config, "once"], standalone_mode=False)
        if code not in (None, 0):
            sys.exit(code)


if __name__ == "__main__":
    main()
