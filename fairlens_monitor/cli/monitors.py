"""The portfolio's commands: list the monitors, pause and resume one.

Registered lazily on the main group (``cli.main.LAZY_SUBCOMMANDS``): importing this module
loads click and the light shared helpers only; each command imports the database layer when
it runs. The paused state lives in the database (the ``monitors`` table), never in the config
file, and each pause or resume is an audit event naming the monitor, who did it and their
note, signed by a checkpoint in its own transaction.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from fairlens_monitor.cli.common import (
    JSON_OPTION,
    dump,
    portfolio_of,
    reader,
    sealed_writer,
    settings_of,
    unknown_monitor,
)
from fairlens_monitor.security.masking import looks_personal

if TYPE_CHECKING:
    from fairlens_monitor.ops.inventory import MonitorStatus

MAX_NOTE = 500  # characters: a reason, not a report (it stays on the chain for ever)
MAX_BY = 64  # characters: the ``monitors.paused_by`` column


@click.group()
def monitors() -> None:
    """The monitors of this service: list them, pause or resume one (audited)."""


@monitors.command("list")
@JSON_OPTION
@click.pass_context
def monitors_list(ctx: click.Context, as_json: bool) -> None:
    """Show every monitor: state (active, paused, retired), schedule, last reading, verdict.

    Monitors of the config not yet run are listed as active with no reading; monitors the
    config no longer names are listed as retired, with their history.
    """
    from fairlens_monitor.ops.inventory import inventory

    statuses = inventory(portfolio_of(ctx), reader(settings_of(ctx)), now=datetime.now(UTC))
    if as_json:
        dump([status.as_json() for status in statuses])
        return
    width = max([len(s.name) for s in statuses] + [7])
    click.echo(
        f"{'monitor':<{width}}  {'state':<7}  {'schedule':<16}  last reading          verdict"
    )
    for s in statuses:
        click.echo(_line(s, width))


def _line(s: MonitorStatus, width: int) -> str:
    last = "-" if s.last_reading_at is None else s.last_reading_at[:19] + "Z"
    verdict = s.verdict or "-"
    extras = []
    if s.dir is not None:
        extras.append(f"DIR={s.dir:.2f}")
    if s.open_alerts:
        extras.append(f"{s.open_alerts} open alert{'s' if s.open_alerts != 1 else ''}")
    if s.stale:
        extras.append("STALE")
    if s.paused_by:
        extras.append(f"paused by {s.paused_by}")
    return f"{s.name:<{width}}  {s.state:<7}  {s.schedule or '-':<16}  {last:<20}  {verdict}" + (
        "  " + ", ".join(extras) if extras else ""
    )


def _checked_text(value: str, option: str, limit: int, *, required: bool) -> str:
    """``value`` if it is printable text within ``limit`` characters (never echoed).

    Raises:
        click.BadParameter: blank (when ``required``), too long, or holding a control,
            format (direction marks, zero-width), surrogate, private-use or line/paragraph
            separator character; the value is not quoted back.
    """
    if required and not value.strip():
        raise click.BadParameter("name who does it (not blank)", param_hint=f"'{option}'")
    if len(value) > limit:
        raise click.BadParameter(
            f"at most {limit} characters ({len(value)} given); it stays on the audit trail",
            param_hint=f"'{option}'",
        )
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") for c in value):
        raise click.BadParameter(
            "contains control or invisible characters (a newline, a tab, an escape or "
            "a direction mark); write it on one line of plain text",
            param_hint=f"'{option}'",
        )
    return value


def _change(
    ctx: click.Context, name: str, by: str, note: str | None, not_personal: bool, *, pause: bool
) -> None:
    from fairlens_monitor.audit.chain import rfc3339
    from fairlens_monitor.ops.inventory import set_paused
    from fairlens_monitor.ops.sequence import begin_portfolio

    portfolio = portfolio_of(ctx)
    checked_by = _checked_text(by, "--by", MAX_BY, required=True)
    checked_note = None if note is None else _checked_text(note, "--note", MAX_NOTE, required=False)
    if checked_note and looks_personal(checked_note) and not not_personal:
        raise click.BadParameter(
            "the note looks like it holds personal data (an e-mail, SSN, card or phone "
            "number); notes stay in the audit trail in clear and cannot be edited out. "
            "Rephrase it without applicant data, or add --note-is-not-personal if it is a "
            "false alarm (e.g. a ticket number)",
            param_hint="'--note'",
        )
    if name not in portfolio:
        raise click.BadParameter(unknown_monitor(name, portfolio), param_hint="'NAME'")
    settings = settings_of(ctx)
    repo, _signer = sealed_writer(settings)  # the event is signed in its own transaction
    now = datetime.now(UTC)
    begin_portfolio(portfolio, repo, actor="cli", ts=rfc3339(now))
    record = set_paused(
        repo, name, paused=pause, by=checked_by, note=checked_note, at=now, actor="cli"
    )
    verb = "paused" if pause else "resumed"
    if record is None:
        click.echo(f"monitor {name} is already {'paused' if pause else 'active'}; nothing recorded")
        return
    click.echo(f"monitor {name} {verb} by {checked_by}; audit seq {record.seq}, signed checkpoint")


NAME_ARGUMENT = click.argument("name", metavar="NAME")
BY_OPTION = click.option("--by", required=True, help="Who does it (kept in the audit trail).")
NOTE_OPTION = click.option(
    "--note", help="Why (kept in the audit trail in clear; one line, no applicant data)."
)
NOT_PERSONAL = click.option(
    "--note-is-not-personal",
    "not_personal",
    is_flag=True,
    help="Record a note that looks like personal data anyway (a false alarm, e.g. a ticket "
    "number that only resembles a phone number).",
)


@monitors.command("pause")
@NAME_ARGUMENT
@BY_OPTION
@NOTE_OPTION
@NOT_PERSONAL
@click.pass_context
def monitors_pause(
    ctx: click.Context, name: str, by: str, note: str | None, not_personal: bool
) -> None:
    """Pause monitor NAME: the daemon and `once` skip it until it is resumed (an audit
    event, `monitor_paused`; the config file is not edited)."""
    _change(ctx, name, by, note, not_personal, pause=True)


@monitors.command("resume")
@NAME_ARGUMENT
@BY_OPTION
@NOTE_OPTION
@NOT_PERSONAL
@click.pass_context
def monitors_resume(
    ctx: click.Context, name: str, by: str, note: str | None, not_personal: bool
) -> None:
    """Resume paused monitor NAME (an audit event, `monitor_resumed`)."""
    _change(ctx, name, by, note, not_personal, pause=False)
