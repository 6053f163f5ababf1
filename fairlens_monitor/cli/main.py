"""The ``fairlens-monitor`` command line: a thin click layer over the library.

Every command loads and validates the config first (nothing is written before that), then
calls one library function and prints its result as lines or, with ``--json``, as JSON.
Library errors (``FairlensError``) become one ``error: ...`` line on stderr and the error's
exit code. Exit codes: 0 ok; 1 a problem was found (tampered chain, an adverse verdict from
``measure``, or an adverse/drifting reading with ``once --fail-on-alert``); 2 usage, config,
data, key or database error.

Start-up stays quick: this module imports click and the light shared helpers only; each
command imports its library half when it runs, and the commands of the modules beside this
one are loaded on first use (``LAZY_SUBCOMMANDS``), so ``--help`` loads neither pandas nor
SQLAlchemy and ``measure`` never loads the database layer (tests/test_cli_imports.py).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import click

from fairlens_monitor import __version__
from fairlens_monitor.cli import ending
from fairlens_monitor.cli.common import (
    ANCHOR_OPTION,
    JSON_OPTION,
    LAST_OPTION,
    NEW_CHAIN_OPTION,
    PUBKEY_OPTION,
    LazyGroup,
    dump,
    portfolio_of,
    reader,
    record_hash,
    run_console,
    scoped_reader,
    settings_of,
    show,
    trail_paths,
    writer,
)
from fairlens_monitor.security.masking import configure_logging

# The commands of the modules beside this one, imported only when run or listed: `measure`
# loads neither the database layer nor the other commands' modules.
LAZY_SUBCOMMANDS = {
    "verify": "fairlens_monitor.cli.verifying:verify",
    "measure": "fairlens_monitor.cli.operations:measure",
    "alerts": "fairlens_monitor.cli.operations:alerts",
    "keys": "fairlens_monitor.cli.maintenance:keys",
    "backup": "fairlens_monitor.cli.maintenance:backup",
    "restore": "fairlens_monitor.cli.maintenance:restore",
    "retention": "fairlens_monitor.cli.maintenance:retention",
    "view": "fairlens_monitor.cli.page:view",
    "monitors": "fairlens_monitor.cli.monitors:monitors",
    "once": "fairlens_monitor.cli.cycles:once",
    "page-token": "fairlens_monitor.cli.page:page_token",
    "report": "fairlens_monitor.cli.report:report",
    "notify": "fairlens_monitor.cli.notify:notify",
}


@click.group(cls=LazyGroup, lazy_subcommands=LAZY_SUBCOMMANDS)
@click.option(
    "--config",
    "config_path",
    default="config.yaml",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The config file.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Overrides logging.level from the config.",
)
@click.version_option(__version__, prog_name="fairlens-monitor")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, log_level: str | None) -> None:
    """FairLens Monitor: watch a decision system for fairness drift.

    Exit codes: 0 ok, 1 problem found (e.g. tampered audit chain), 2 usage/config error.
    """
    configure_logging((log_level or "INFO").upper())
    for noisy in ("alembic", "apscheduler"):  # their INFO lines say nothing to an operator
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = {"config_path": config_path, "log_level": log_level and log_level.upper()}


@cli.command()
@click.option(
    "--cycles",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many cycles (default: run until SIGINT/SIGTERM).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=1, max=65535),
    default=None,
    help="Serve /metrics and /healthz on this port (overrides metrics.port; "
    "bound to metrics.address, 127.0.0.1 unless set).",
)
@NEW_CHAIN_OPTION
@click.pass_context
def run(ctx: click.Context, cycles: int | None, metrics_port: int | None, new_chain: bool) -> None:
    """Run the monitoring daemon: every monitor on its own schedule (interval or cron).

    On PostgreSQL several daemons may run with one config: they split the monitors between
    them, and take over a dead or frozen daemon's within leadership.lease_seconds.
    """
    from fairlens_monitor.ops.daemon import run_daemon  # deferred: pandas and the scheduler

    portfolio = portfolio_of(ctx)
    if metrics_port is not None:  # the service section is every monitor's: set it in each
        portfolio = {
            name: replace(own, metrics=replace(own.metrics, port=metrics_port))
            for name, own in portfolio.items()
        }
    run_daemon(
        portfolio,
        emit=lambda line: click.echo(line),
        max_cycles=cycles,
        new_chain=new_chain,
    )


MONITOR_OPTION = click.option(
    "--monitor",
    "monitor",
    metavar="NAME",
    help="Only this monitor's (a name under monitors: in the config, or a retired one).",
)


@cli.command()
@LAST_OPTION
@MONITOR_OPTION
@JSON_OPTION
@click.pass_context
def history(ctx: click.Context, last: int, monitor: str | None, as_json: bool) -> None:
    """Show the newest stored readings (both scenarios of each run), of every monitor or one."""
    from fairlens_monitor.cli.render import reading_json, reading_line

    repo = scoped_reader(ctx, monitor)
    rows = repo.latest_readings(last, every_monitor=monitor is None)
    show(rows, as_json, reading_json, reading_line, empty="no readings yet")


@cli.group(invoke_without_command=True)
@LAST_OPTION
@MONITOR_OPTION
@JSON_OPTION
@click.pass_context
def audit(ctx: click.Context, last: int, monitor: str | None, as_json: bool) -> None:
    """Show the newest audit events (the chain's tail), or run an audit subcommand.

    With --monitor, the newest events whose payload names that monitor.
    """
    from fairlens_monitor.cli.render import audit_json, audit_line
    from fairlens_monitor.ops.inventory import monitor_events

    if ctx.invoked_subcommand is not None:
        return
    repo = scoped_reader(ctx, monitor)
    records = repo.audit_tail(last) if monitor is None else monitor_events(repo, monitor, last)
    show(records, as_json, audit_json, audit_line, empty="no audit events yet")


@audit.command("export")
@click.option(
    "--jsonl",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (replaced).",
)
@click.pass_context
def audit_export(ctx: click.Context, path: Path) -> None:
    """Export the whole chain and every stored row it records as JSON lines, verifiable
    offline with scripts/offline_verify.py (see docs/AUDITORS.md)."""
    from fairlens_monitor.ops.export import export_jsonl

    events, rows = export_jsonl(reader(settings_of(ctx)), path)
    click.echo(f"wrote {events} events and {rows} rows to {path}")


@cli.command("verify-entry")
@click.argument("hash_hex", metavar="HASH", callback=record_hash)
@JSON_OPTION
@ANCHOR_OPTION
@PUBKEY_OPTION
@click.pass_context
def verify_entry(
    ctx: click.Context,
    hash_hex: str,
    as_json: bool,
    anchor_file: Path | None,
    public_key: Path | None,
) -> None:
    """Prove that the audit record with this HASH is in the intact chain (exit 1 if not)."""
    from fairlens_monitor.cli.render import audit_json
    from fairlens_monitor.ops.verification import prove_entry

    settings = settings_of(ctx)
    proof = prove_entry(
        reader(settings),
        hash_hex,
        **trail_paths(settings, anchor_file, public_key),
        checkpoint_every=settings.audit.checkpoint_every,
    )
    rec = proof.record
    if as_json:
        dump(
            {
                "proven": proof.proven,
                "record": audit_json(rec) if rec else None,
                "chain_verified_up_to": proof.chain.last_verified_seq,
                "anchored_by_checkpoint_at_seq": proof.covered_by,
            }
        )
    elif rec is None:
        click.echo(f"no audit record has hash {hash_hex}")
    elif proof.proven:
        anchored = (
            f"covered by a signed checkpoint at seq {proof.covered_by}"
            if proof.covered_by
            else "not yet covered by a signed checkpoint"
        )
        click.echo(
            f"record seq {rec.seq} ({rec.event_type}, {rec.ts}) is in the chain, which "
            f"verifies from genesis to seq {proof.chain.last_verified_seq}; {anchored}"
        )
    else:
        click.echo(
            f"record seq {rec.seq} found, but the chain is broken at or before it "
            f"({proof.chain.verified_text})"
        )
    if not proof.proven:
        ctx.exit(1)


@cli.command()
@click.pass_context
def checkpoint(ctx: click.Context) -> None:
    """Sign the current chain head now and append it to the anchor file."""
    from fairlens_monitor.audit.chain import rfc3339
    from fairlens_monitor.ops.app import open_signing_key
    from fairlens_monitor.ops.audit_trail import reconcile_anchor, write_checkpoint

    settings = settings_of(ctx)
    repo = writer(settings)
    signer = open_signing_key(settings, repo)
    if added := reconcile_anchor(repo, settings.audit.anchor_file):
        click.echo(f"appended {added} recorded checkpoints the anchor file lacked")
    cp = write_checkpoint(
        repo, signer, anchor_file=settings.audit.anchor_file, ts=rfc3339(datetime.now(UTC))
    )
    if cp is None:
        click.echo("nothing to checkpoint: the chain is empty or its head is already anchored")
    else:
        click.echo(
            f"checkpoint at seq {cp.seq} {cp.head_hash} appended to {settings.audit.anchor_file}"
        )


@cli.command()
@click.argument("token")
@click.pass_context
def decrypt(ctx: click.Context, token: str) -> None:
    """Print the plaintext of an alert TOKEN ('-' reads it from stdin) with the local key."""
    from fairlens_monitor.security.crypto import load_cipher

    if token == "-":  # noqa: S105 - the stdin marker, not a password
        token = sys.stdin.read()
    cipher = load_cipher(settings_of(ctx).keys.dir, create=False)
    click.echo(cipher.decrypt(token))


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Migrate the database to the newest schema (creates it when missing)."""
    from fairlens_monitor.audit.chain import rfc3339
    from fairlens_monitor.store.db import make_engine
    from fairlens_monitor.store.maintenance import record_row_baseline
    from fairlens_monitor.store.repository import Repository
    from fairlens_monitor.store.schema import upgrade

    url = settings_of(ctx).database.url
    engine = make_engine(url)
    try:
        before, after = upgrade(engine, url)
        baseline = record_row_baseline(Repository(engine), ts=rfc3339(datetime.now(UTC)))
    finally:
        engine.dispose()
    click.echo(
        f"database at revision {after}"
        + ("" if before == after else f" (was {before or 'empty'})")
        + (f"; rows stored before row digests recorded at seq {baseline.seq}" if baseline else "")
    )


@db.command("copy")
@click.argument("src_url")
@click.argument("dst_url")
@click.pass_context
def db_copy(ctx: click.Context, src_url: str, dst_url: str) -> None:
    """Copy the history in SRC_URL into the empty database DST_URL, verified on both sides.

    For moving from SQLite to PostgreSQL, e.g. ``db copy sqlite:///var/fairlens.db
    postgresql+psycopg://fairlens@db-host/fairlens``. The source's chain and checkpoints are
    verified first (with the configured anchor file and public key), and the copy's inside
    its own transaction before the commit: exit 0 when both verify; 1 when either does not,
    and then nothing is left in DST_URL; 2 on a usage or database error.
    """
    from fairlens_monitor.ops.dbcopy import copy_verified  # deferred: the copy's imports

    result, report = copy_verified(settings_of(ctx), src_url, dst_url)
    rows = ", ".join(f"{n} {name}" for name, n in result.rows.items())
    click.echo(f"copied {rows}; chain head seq {result.head_seq}")
    click.echo(
        f"copy verified: {report.count} events intact, anchored up to seq "
        f"{report.anchored_seq} (checked before the copy committed)"
    )


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Print the database's schema revision and the newest this version knows."""
    from fairlens_monitor.store.db import make_engine
    from fairlens_monitor.store.schema import current_revision, head_revision

    url = settings_of(ctx).database.url
    engine = make_engine(url, readonly=True)
    try:
        click.echo(f"current: {current_revision(engine) or 'empty'}  head: {head_revision(url)}")
    finally:
        engine.dispose()


def main() -> NoReturn:
    """Console-script entry point: every error is one stderr line and a documented exit code
    (see :func:`fairlens_monitor.cli.common.run_console`).

    A command that holds nothing to release (``measure``) ends the process as soon as its
    output is flushed, without tearing the interpreter down (:mod:`.ending`).
    """
    ending.reset()
    try:
        code = run_console(cli)
    except SystemExit as exc:  # a command's own exit code, e.g. measure's 1 when adverse
        if not (ending.quick_exit_requested() and isinstance(exc.code, int)):
            raise
        code = exc.code
    ending.end(code)
