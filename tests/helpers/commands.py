"""The subcommands of a click group, its lazily imported ones included.

The main group loads the commands of the modules beside it on first use
(:class:`fairlens_monitor.cli.common.LazyGroup`), so ``group.commands`` holds only the ones
defined with it; tests that walk the whole command line ask click's public API instead.
"""

from __future__ import annotations

import click


def subcommands(group: click.Group) -> dict[str, click.Command]:
    """Every subcommand of ``group`` by name, sorted (importing the lazy ones)."""
    ctx = click.Context(group)
    found = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{name} is listed but cannot be loaded"
        found[name] = command
    return found
