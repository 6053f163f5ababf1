"""``once``: one cycle of each chosen monitor now, stored, and printed.

Registered lazily on the main group (``cli.main.LAZY_SUBCOMMANDS``); the cycle's imports
(pandas, the database layer) load when it runs. The sequence itself is the library's
(:func:`fairlens_monitor.ops.sequence.run_portfolio`): the config's monitors are compared
with the database first, then each chosen monitor runs one cycle, a failing one not stopping
the others.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from fairlens_monitor.cli.common import (
    JSON_OPTION,
    NEW_CHAIN_OPTION,
    chosen_monitors,
    dump,
    failure_line,
    portfolio_of,
    sealed_writer,
    settings_of,
)


@click.command()
@JSON_OPTION
@click.option(
    "--monitor",
    "monitors",
    multiple=True,
    metavar="NAME",
    help="Run this monitor (repeatable; default: every monitor not paused).",
)
@click.option(
    "--fail-on-alert",
    is_flag=True,
    help="Exit 1 when a monitored verdict is adverse or drift is signalled.",
)
@NEW_CHAIN_OPTION
@click.pass_context
def once(
    ctx: click.Context,
    as_json: bool,
    monitors: tuple[str, ...],
    fail_on_alert: bool,
    new_chain: bool,
) -> None:
    """Run one cycle of each monitor now, store it, and print its result.

    With one monitor (the config has one, or one --monitor) --json prints that cycle's
    document; with several, {"monitors": {NAME: document}}. A monitor whose cycle fails
    does not stop the others (exit 2 after them).
    """
    from fairlens_monitor.cli.render import cycle_json, cycle_lines
    from fairlens_monitor.ops.app import open_cipher
    from fairlens_monitor.ops.inventory import monitor_events
    from fairlens_monitor.ops.sealing import Sealer  # deferred: pandas
    from fairlens_monitor.ops.sequence import run_portfolio

    portfolio = portfolio_of(ctx)
    names = chosen_monitors(portfolio, monitors)
    settings = settings_of(ctx)
    repo, signer = sealed_writer(settings)  # monitor_added, config_changed: signed at once
    cipher = open_cipher(settings, repo)
    run = run_portfolio(
        portfolio,
        repo,
        cipher,
        signer,
        names=names,
        clock=lambda: datetime.now(UTC),
        actor="cli",
        new_chain=new_chain,
        sealer=lambda scoped: Sealer.of(settings, signer).attach(scoped),
    )
    if run.aside is not None:
        click.echo(f"new chain started; the old chain's anchor file is kept as {run.aside}")
    single = len(names) == 1 or (not names and len(portfolio) == 1)
    if single and run.failures:
        raise next(iter(run.failures.values()))
    documents: dict[str, object] = {}
    for name, outcome in run.outcomes.items():
        plain = portfolio[name].alerts.echo_plaintext
        if as_json:  # one monitor: the chain's tail, as ever; several: each one's own
            tail = repo.audit_tail(5) if single else monitor_events(repo, name, 5)
            documents[name] = cycle_json(outcome, tail, echo_plaintext=plain)
        else:
            if not single:
                click.echo(f"── monitor {name}")
            for line in cycle_lines(outcome, echo_plaintext=plain):
                click.echo(line)
    for name in run.skipped:
        click.echo(f"monitor {name} is paused: not run", err=True)
    for name, exc in run.failures.items():
        documents[name] = {"error": failure_line(exc)}
        click.echo(f"error: monitor {name}: {failure_line(exc)}", err=True)
    if as_json:
        dump(next(iter(documents.values())) if single and documents else {"monitors": documents})
    if run.failures:  # a monitor not measured could hide an alert: its error comes first
        ctx.exit(2)
    if fail_on_alert and any(
        o.monitored is not None and (o.monitored.verdict == "adverse" or o.monitored.drift_alert)
        for o in run.outcomes.values()
    ):
        ctx.exit(1)
