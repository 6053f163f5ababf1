"""The outbox's commands: send a test message, deliver what is due, list the outbox.

Registered lazily on the main group (``cli.main.LAZY_SUBCOMMANDS``): importing this module
loads click and the light shared helpers only; each command imports the database layer and
the worker when it runs. ``notify test CHANNEL`` goes through the outbox like any alert (a
row, a claimed attempt, an audit event of the outcome) and waits for the outcome: exit 0
delivered, 1 failed, 2 an unknown channel or a bad config.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import click

from fairlens_monitor.cli.common import JSON_OPTION, dump, reader, settings_of, writer

WAIT_MARGIN_S = 10.0  # beyond the channel's own timeout, for a daemon's claim to settle


@click.group()
def notify() -> None:
    """Notifications: test a channel, deliver what is due, list the outbox."""


@notify.command("test")
@click.argument("channel")
@click.pass_context
def notify_test(ctx: click.Context, channel: str) -> None:
    """Send a test message to CHANNEL through the outbox and wait for the outcome.

    Exit 0 when the channel accepted it, 1 when it failed (the response status is shown),
    2 when CHANNEL is not in notify.channels or the config is invalid.
    """
    from fairlens_monitor.ops.notify.worker import deliver_due, enqueue_test, status_of

    settings = settings_of(ctx)
    channels = settings.notify.channels
    if channel not in channels:
        known = ", ".join(sorted(channels)) or "none are configured"
        raise click.UsageError(f"no channel {channel!r} in notify.channels (channels: {known})")
    repo = writer(settings)
    row = enqueue_test(repo, channel, at=datetime.now(UTC))
    deadline = time.monotonic() + channels[channel].timeout_seconds + WAIT_MARGIN_S
    while True:
        deliver_due(repo, settings.notify, now=lambda: datetime.now(UTC), actor="cli", only=[row])
        status, attempts, last = status_of(repo, row)
        if status != "pending" or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # a daemon claimed it first: wait for its outcome
    if status == "delivered":
        click.echo(f"notification #{row} to {channel}: delivered ({last})")
        return
    click.echo(
        f"notification #{row} to {channel}: {status} after {attempts} attempt(s) "
        f"({last or 'no answer yet'})",
        err=True,
    )
    ctx.exit(1)


@notify.command("send")
@click.pass_context
def notify_send(ctx: click.Context) -> None:
    """Attempt every due notification once (what the daemon's outbox worker does), up to
    notify.workers at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from fairlens_monitor.ops.app import open_cipher
    from fairlens_monitor.ops.notify.worker import deliver_due

    settings = settings_of(ctx)
    repo = writer(settings)
    cipher = open_cipher(settings, repo) if settings.notify.include_explanation else None
    with ThreadPoolExecutor(max_workers=settings.notify.workers) as pool:
        attempts = deliver_due(
            repo,
            settings.notify,
            now=lambda: datetime.now(UTC),
            cipher=cipher,
            actor="cli",
            pool=pool,
        )
    for a in attempts:
        click.echo(
            f"#{a.notification_id} {a.channel} attempt {a.attempt}: {a.status} ({a.response})"
        )
    click.echo(f"{len(attempts)} attempt(s)")
    if any(a.status != "delivered" for a in attempts):
        ctx.exit(1)


@notify.command("list")
@click.option("--failed", is_flag=True, help="Only dead rows and pending ones that failed.")
@click.option(
    "--last",
    type=click.IntRange(1, 100_000),
    default=50,
    show_default=True,
    help="How many of the newest rows.",
)
@JSON_OPTION
@click.pass_context
def notify_list(ctx: click.Context, failed: bool, last: int, as_json: bool) -> None:
    """Show the outbox, newest first: channel, event, status, attempts, last response."""
    from fairlens_monitor.audit.chain import rfc3339
    from fairlens_monitor.store import outbox

    repo = reader(settings_of(ctx))
    with repo.sessions() as s:
        rows = outbox.listing(s, failed=failed, limit=last)
    out: list[dict[str, Any]] = [
        {
            "id": r.id,
            "created_at": rfc3339(r.created_at),
            "monitor": r.monitor,
            "channel": r.channel,
            "event": r.event_type,
            "status": r.status,
            "attempts": r.attempts,
            "next_attempt_at": rfc3339(r.next_attempt_at),
            "last_status": r.last_status,
            "alert_id": r.alert_id,
            "audit_seq": r.audit_seq,
            "idempotency_key": r.idempotency_key,
        }
        for r in rows
    ]
    if as_json:
        dump(out)
        return
    if not out:
        click.echo("no notifications" + (" failed" if failed else ""))
    for r in out:
        click.echo(
            f"#{r['id']:<6} {r['created_at'][:19]}Z  {r['monitor']:<12} {r['channel']:<12} "
            f"{r['event']:<18} {r['status']:<9} attempts {r['attempts']}  "
            f"{r['last_status'] or '-'}"
        )
