"""``python -m fairlens_monitor``: the same entry point as the ``fairlens-monitor`` script."""

from fairlens_monitor.cli.main import main

main()
