"""``python -m fairlens_monitor``: the same entry point as the ``fairlens-monitor`` script.

Guarded: a ``spawn`` child process (the daemon's chain walk, ``ops.chainwatch``) imports the
parent's main module again, and must not start a second command.
"""

from fairlens_monitor.cli.main import main

if __name__ == "__main__":
    main()
