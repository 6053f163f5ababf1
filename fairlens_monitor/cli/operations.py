"""The risk team's commands: measure a decision file once, and the alert workflow.

Registered on the main group in :mod:`fairlens_monitor.cli.main` (the maintenance commands
are in :mod:`fairlens_monitor.cli.maintenance`); each command loads the config first and
writes nothing on bad input. The module imports only click at load time (``measure`` must
not load the database layer); each command imports what it uses.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from fairlens_monitor.cli import ending
from fairlens_monitor.cli.common import (
    JSON_OPTION,
    LAST_OPTION,
    FiniteFloatRange,
    dump,
    portfolio_of,
    scoped_reader,
    settings_of,
    show,
    writer,
)
from fairlens_monitor.security.masking import looks_personal


def _band(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, tuple[float, ...]]:
    bands = {}
    for position, text in enumerate(values, start=1):  # the text is not echoed in errors
        column, _, edges = text.partition("=")
        try:
            numbers = tuple(float(e) for e in edges.split(","))
        except ValueError:
            numbers = ()
        if not column or not numbers or list(numbers) != sorted(set(numbers)):
            raise click.BadParameter(
                f"value {position} is not COLUMN=EDGE[,EDGE...] with "
                "increasing numbers, e.g. age=25 or age=25,40"
            )
        bands[column] = numbers
    return bands


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--protected-attribute",
    "attributes",
    multiple=True,
    required=True,
    help="Group column; give it twice for an intersection (e.g. sex and age).",
)
@click.option("--protected-value", help="The group to report on (default: the worst group).")
@click.option("--privileged-value", help="The reference group (needed unless --reference highest).")
@click.option(
    "--reference",
    type=click.Choice(["privileged", "highest"]),
    default="privileged",
    show_default=True,
    help="Compare with the privileged value, or with the group "
    "with the highest rate (NYC Local Law 144).",
)
@click.option("--outcome", required=True, help="Decision column (0/1, true/false, yes/no).")
@click.option("--label", help="Ground-truth column (e.g. repaid) for the outcome metrics.")
@click.option(
    "--band",
    "bands",
    multiple=True,
    callback=_band,
    metavar="COL=EDGES",
    help="Cut a numeric column into bands, e.g. age=25 or age=25,40.",
)
@click.option("--explain-by", help="Numeric column to test as an explanation of the gap.")
@click.option(
    "--score",
    help="Model score column (numbers in [0, 1]) for AUC and the "
    "calibration gap per group; needs --label.",
)
@click.option(
    "--score-bins",
    type=click.IntRange(2, 10_000),
    default=100,
    show_default=True,
    help="Equal-width bins the score is counted in.",
)
@click.option(
    "--missing-value",
    "missing_values",
    multiple=True,
    metavar="TEXT",
    help="Treat this text as a missing value (repeatable, e.g. --missing-value NA). "
    "Empty cells always are missing; NA, null, None are labels unless given here.",
)
@click.option(
    "--threshold",
    type=FiniteFloatRange(min=0, min_open=True),
    default=0.8,
    show_default=True,
    help="Impact-ratio threshold (four-fifths rule).",
)
@click.option(
    "--alpha",
    type=FiniteFloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Significance level.",
)
@click.option(
    "--min-group-size",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Groups smaller than this make a verdict inconclusive.",
)
@click.option(
    "--min-group-share",
    type=FiniteFloatRange(0, 0.5),
    default=0.02,
    show_default=True,
    help="Groups below this share of rows are excluded (counted).",
)
@click.option(
    "--shortfall",
    type=FiniteFloatRange(min=0, max=1e12, min_open=True),
    default=None,
    metavar="N",
    help="Opt-in 29 CFR 1607.4D rule: also adverse at a ratio above the threshold "
    "when significant and at least N approvals short (default: off).",
)
@JSON_OPTION
def measure(
    file: Path,
    attributes: tuple[str, ...],
    protected_value: str | None,
    privileged_value: str | None,
    reference: str,
    outcome: str,
    label: str | None,
    bands: dict[str, tuple[float, ...]],
    explain_by: str | None,
    score: str | None,
    score_bins: int,
    missing_values: tuple[str, ...],
    threshold: float,
    alpha: float,
    min_group_size: int,
    min_group_share: float,
    shortfall: float | None,
    as_json: bool,
) -> None:
    """Measure a decision FILE (CSV or Parquet) once: statistics and verdict.

    Exit 1 when the verdict is adverse, 0 when it is ok or inconclusive, 2 on bad input.
    Needs no config file and writes nothing. The file is read half a million rows at a time, so
    memory stays bounded (except with --explain-by, which keeps the two compared groups).
    """
    from fairlens_monitor.cli.measure_report import report_lines
    from fairlens_monitor.fairness.groups import GroupSpec
    from fairlens_monitor.ops.measure_file import measure_file  # deferred: pandas

    if len(attributes) > 2 or len(set(attributes)) != len(attributes):
        raise click.UsageError(
            "--protected-attribute: give one column, or two different columns for an intersection"
        )
    if reference == "privileged" and privileged_value is None:
        raise click.UsageError(
            "--privileged-value is required with --reference privileged "
            "(or use --reference highest)"
        )
    if score is not None and label is None:
        raise click.UsageError(
            "--score needs --label: AUC and calibration compare the score with the true outcome"
        )
    unknown = set(bands) - set(attributes)
    if unknown:
        raise click.UsageError(f"--band {sorted(unknown)[0]}: not a --protected-attribute")
    spec = GroupSpec(
        attributes=attributes,
        bands=bands,
        reference="highest" if reference == "highest" else "privileged",
        privileged_value=privileged_value if reference == "privileged" else None,
        unprivileged_value=protected_value,
        threshold=threshold,
        alpha=alpha,
        min_group_size=min_group_size,
        min_group_share=min_group_share,
        shortfall=shortfall,
    )
    progress = None
    if sys.stderr.isatty():  # a running count for big files; nothing when piped or in CI

        def progress(rows: int) -> None:
            click.echo(f"\rread {rows:,} rows…", nl=False, err=True)

    if any(not v.strip() for v in missing_values):
        raise click.UsageError(
            "--missing-value: give a non-empty text (empty cells are always missing)"
        )
    report = measure_file(
        file,
        spec,
        outcome,
        label=label,
        explain_by=explain_by,
        progress=progress,
        score=score,
        score_bins=score_bins,
        missing_values=missing_values,
    )
    if progress is not None:
        click.echo(err=True)
    if as_json:
        dump(report)
    else:
        for line in report_lines(report):
            click.echo(line)
    ending.request_quick_exit()  # it wrote nothing and holds nothing: skip the teardown
    sys.exit(1 if report["verdict"] == "adverse" else 0)


# An alert id is a SQLite/PostgreSQL BIGINT: a larger number was an OverflowError traceback.
ALERT_ID = click.IntRange(1, 2**63 - 1)


@click.group()
def alerts() -> None:
    """The alert workflow: list alert episodes, acknowledge or resolve them."""


@alerts.command("list")
@click.option(
    "--state",
    "state",
    default="active",
    show_default=True,
    type=click.Choice(["active", "open", "acknowledged", "resolved", "all"]),
    help="active = open or acknowledged.",
)
@LAST_OPTION
@click.option(
    "--monitor",
    "monitor",
    metavar="NAME",
    help="Only this monitor's (a name under monitors: in the config, or a retired one).",
)
@JSON_OPTION
@click.pass_context
def alerts_list(
    ctx: click.Context, state: str, last: int, monitor: str | None, as_json: bool
) -> None:
    """Show alert episodes (never their encrypted text), of every monitor or one."""
    from fairlens_monitor.cli.render import alert_json, alert_line
    from fairlens_monitor.store import maintenance

    states = {"active": ["open", "acknowledged"], "all": ["open", "acknowledged", "resolved"]}.get(
        state, [state]
    )
    repo = scoped_reader(ctx, monitor)
    rows = maintenance.list_alerts(repo, states, last, every_monitor=monitor is None)
    show(rows, as_json, alert_json, alert_line, empty=f"no {state} alerts")


NOT_PERSONAL = click.option(
    "--note-is-not-personal",
    "not_personal",
    is_flag=True,
    help="Record a note that looks like personal data anyway (a false alarm, e.g. a number "
    "that only resembles a phone or card number).",
)


def _transition(
    ctx: click.Context, alert_id: int, to: str, by: str, note: str | None, not_personal: bool
) -> None:
    from fairlens_monitor.audit.chain import rfc3339
    from fairlens_monitor.ops.app import open_signing_key
    from fairlens_monitor.ops.sealing import Sealer
    from fairlens_monitor.store import maintenance

    settings = settings_of(ctx)
    portfolio = portfolio_of(ctx)  # the alert's monitor's notify.on
    if not by.strip():
        raise click.BadParameter("name who does it (not blank)", param_hint="'--by'")
    if note and looks_personal(note) and not not_personal:  # the chain keeps it for ever
        raise click.BadParameter(
            "the note looks like it holds personal data (an e-mail, SSN, card or phone "
            "number); notes stay in the audit trail in clear and cannot be edited out. "
            "Rephrase it without applicant data, or add --note-is-not-personal if it is a "
            "false alarm (e.g. a ticket number)",
            param_hint="'--note'",
        )
    repo = writer(settings)
    sealer = Sealer.of(settings, open_signing_key(settings, repo))
    signed = []
    now = datetime.now(UTC)
    try:
        alert, record = maintenance.transition_alert(
            repo,
            alert_id,
            to,
            by=by,
            note=note,
            at=now,
            ts=rfc3339(now),
            seal=lambda s, head: signed.append(sealer.now(s, head)),
            routes=lambda monitor: portfolio.get(monitor, settings).notify.routes(),
        )
    except (LookupError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    for cp in signed:  # committed with the transition: now append it to the anchor file
        sealer.anchor(cp)
    click.echo(
        f"alert #{alert.id} ({alert.kind}) {to} by {by}; audit seq {record.seq}, signed checkpoint"
    )


@alerts.command("ack")
@click.argument("alert_id", type=ALERT_ID)
@click.option("--by", required=True, help="Who acknowledges it.")
@click.option("--note", help="Optional note (kept in the audit trail; no applicant data).")
@NOT_PERSONAL
@click.pass_context
def alerts_ack(
    ctx: click.Context, alert_id: int, by: str, note: str | None, not_personal: bool
) -> None:
    """Acknowledge an open alert: someone is looking at it (an audit event)."""
    _transition(ctx, alert_id, "acknowledged", by, note, not_personal)


@alerts.command("resolve")
@click.argument("alert_id", type=ALERT_ID)
@click.option("--by", required=True, help="Who resolves it.")
@click.option(
    "--note",
    required=True,
    help="Why it is resolved (required; kept in the audit trail; no applicant data).",
)
@NOT_PERSONAL
@click.pass_context
def alerts_resolve(
    ctx: click.Context, alert_id: int, by: str, note: str, not_personal: bool
) -> None:
    """Resolve an open or acknowledged alert, with a note (an audit event)."""
    _transition(ctx, alert_id, "resolved", by, note, not_personal)
