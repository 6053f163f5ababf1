"""The ``verify`` command: the whole chain by default, or only what follows a checkpoint.

``verify`` walks every event and every row (the proof); ``verify --incremental`` starts from
the newest signed checkpoint (at or below ``--verified-to``, the seq an earlier walk
verified) and walks only the events and rows after it (``ops.incremental``): what the trend
page and the daemon run every few minutes, with a full walk at least once a day.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from fairlens_monitor.cli.common import (
    ANCHOR_OPTION,
    JSON_OPTION,
    PUBKEY_OPTION,
    dump,
    reader,
    settings_of,
    trail_paths,
)


class CannotVerify(click.ClickException):
    """The trail could not be read: exit 2 (cannot verify), never 1 (tampered)."""

    exit_code = 2


@click.command()
@JSON_OPTION
@ANCHOR_OPTION
@PUBKEY_OPTION
@click.option(
    "--incremental",
    is_flag=True,
    help="Walk only from the newest signed checkpoint on (see --verified-to); a full "
    "walk when none can start it. Events before it are vouched for by its signature only.",
)
@click.option(
    "--verified-to",
    type=click.IntRange(min=0),
    metavar="SEQ",
    help="With --incremental: start from the newest signed checkpoint at or below SEQ "
    "(the head an earlier walk verified), so every event is walked at least once.",
)
@click.pass_context
def verify(
    ctx: click.Context,
    as_json: bool,
    anchor_file: Path | None,
    public_key: Path | None,
    incremental: bool,
    verified_to: int | None,
) -> None:
    """Walk the whole chain and its signed checkpoints (or, with --incremental, the part
    after a signed checkpoint).

    Exit 0 intact, 1 tampered, 2 cannot verify (missing database or public key, or a
    trail file this user may not read).
    """
    # the library half loads when the command runs, not when `--help` lists it; the
    # renderer (the ORM models, numpy) only for a tampered chain, the incremental walk only
    # when asked for
    from fairlens_monitor.audit.chain import rfc3339

    if verified_to is not None and not incremental:
        raise click.UsageError("--verified-to needs --incremental")
    settings = settings_of(ctx)
    started = rfc3339(datetime.now(UTC))
    paths = trail_paths(settings, anchor_file, public_key)
    every = settings.audit.checkpoint_every
    repo = reader(settings)
    try:
        if incremental:
            from fairlens_monitor.ops.incremental import verify_incremental

            trail = verify_incremental(
                repo, **paths, verified_to=verified_to, checkpoint_every=every
            )
        else:
            from fairlens_monitor.ops.verification import verify_store

            trail = verify_store(repo, **paths, checkpoint_every=every)
    except PermissionError as exc:  # a key folder or anchor file this user may not read
        raise CannotVerify(
            f"cannot verify: permission denied reading {exc.filename or 'a trail file'}; "
            "run as a user who may read the key folder and the anchor file, or give a "
            "readable copy with --public-key / --anchor-file"
        ) from None
    report = trail.chain
    first = report.anomalies[0] if report.anomalies else None
    if as_json:
        # A command remembers nothing between runs: it knows the last full walk only when
        # it is one (the page and the daemon keep theirs in memory).
        full = trail.walk == "full"
        dump({**trail.to_json(), "walked_at": started, "last_full_walk": started if full else None})
    elif first is None:
        click.echo(trail.intact_line())
    if not as_json:
        if trail.note:
            click.echo(f"  full walk: {trail.note}")
        lines = []
        if first is not None:
            from fairlens_monitor.cli.render import tampered_lines

            lines = tampered_lines(report)
        for line in [
            *lines[:-1],
            *(f"  warning: seq {w.seq}: {w.kind}: {w.detail}" for w in trail.warnings),
            *lines[-1:],
        ]:
            click.echo(line)  # the verdict line last
    if first is not None:
        ctx.exit(1)
