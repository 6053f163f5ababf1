"""Maintenance commands: key status and rotation, backup, restore, retention.

Registered on the main group in :mod:`fairlens_monitor.cli.main`. Each command loads the
config first, writes nothing on bad input, and leaves every change on the audit record (the
operations themselves are in :mod:`fairlens_monitor.ops`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.audit.events import BACKUP_MADE
from fairlens_monitor.cli.common import (
    JSON_OPTION,
    dump,
    sealed_writer,
    settings_of,
    trail_paths,
)


@click.group()
def keys() -> None:
    """Key management: status of the key folder, rotation of the alert key."""


@keys.command("status")
@JSON_OPTION
@click.pass_context
def keys_status(ctx: click.Context, as_json: bool) -> None:
    """List the key folder and files: role, fingerprint, age, permissions. Exit 1 if one is
    exposed (a file group or others may read, a folder they may enter)."""
    from fairlens_monitor.ops.keys import FOLDER_ROLE, key_status

    key_dir = settings_of(ctx).keys.dir
    files = key_status(key_dir)
    if as_json:
        dump([vars(f) for f in files])
    elif not files:
        click.echo(f"no key files in {key_dir}")
    for f in [] if as_json else files:
        fix = f"chmod 700 {key_dir}" if f.role == FOLDER_ROLE else f"chmod 600 {key_dir / f.name}"
        flag = "ok" if f.private_ok else f"EXPOSED (fix: {fix})"
        click.echo(
            f"{f.name:<34} {f.role:<44} id={f.key_id or '-':<16} "
            f"age={f.age_days:.1f}d {f.mode} {flag}"
        )
    if any(not f.private_ok for f in files):
        ctx.exit(1)


@keys.command("rotate")
@click.pass_context
def keys_rotate(ctx: click.Context) -> None:
    """New alert key; every stored token re-encrypted in one transaction (audited)."""
    from fairlens_monitor.ops.keys import rotate_alert_key

    settings = settings_of(ctx)
    repo, _key = sealed_writer(settings)  # keys_rotated commits with its signed checkpoint
    done = rotate_alert_key(settings.keys.dir, repo, ts=rfc3339(datetime.now(UTC)))
    click.echo(
        f"alert key rotated: {done.old_key_id} -> {done.new_key_id}; {done.alerts} "
        f"tokens re-encrypted; audit seq {done.audit_seq}; the old key is kept as "
        f"fernet-{done.old_key_id}.retired (older backups need it)"
    )


@click.command()
@click.argument("dest", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
def backup(ctx: click.Context, dest: Path) -> None:
    """Copy the SQLite database to DEST while the daemon runs, and verify the copy.

    The copy is a consistent snapshot (SQLite's online backup API); it is kept only after
    PRAGMA integrity_check and the full chain and checkpoint verification pass on it. The
    backup is recorded as a `backup_made` audit event in the source database.
    """
    from fairlens_monitor.ops.backup import backup_payload, backup_sqlite

    settings = settings_of(ctx)
    made = backup_sqlite(
        settings.database.url,
        dest,
        busy_timeout_ms=settings.database.busy_timeout_ms,
        **trail_paths(settings, None, None),
    )
    record = sealed_writer(settings)[0].append_event(
        BACKUP_MADE,
        "cli",
        backup_payload(made),
        ts=rfc3339(datetime.now(UTC)),
    )
    click.echo(
        f"backup {made.path}: {made.size:,} bytes, chain head seq {made.head_seq}, "
        f"integrity ok, chain verified; sha256 {made.sha256}; audit seq {record.seq}"
    )


@click.command()
@click.argument("src", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--accept-loss",
    is_flag=True,
    help="Restore even though the backup ends before checkpoints in the anchor "
    "file: the lost anchored seqs are named in the signed restore statement.",
)
@click.pass_context
def restore(ctx: click.Context, src: Path, accept_loss: bool) -> None:
    """Replace the SQLite database with the backup SRC (stop the daemon first).

    Refuses a backup that fails integrity_check or chain verification, and one that ends
    before checkpoints in the anchor file unless --accept-loss. The replaced file is
    kept beside it (renamed). A signed `chain_restored` event explains the gap to the anchor
    file, a new checkpoint is signed, and the result is verified. Exit 0 when it verifies.
    """
    from fairlens_monitor.ops.restore import restore_sqlite
    from fairlens_monitor.security.crypto import load_signing_key

    settings = settings_of(ctx)
    # The database may be gone (that is why one restores): never create or open it here.
    done = restore_sqlite(
        settings, src, load_signing_key(settings.keys.dir, create=False), accept_loss=accept_loss
    )
    lost = done.superseded_to - done.from_seq
    gone = (
        f"{lost} later events anchored before the restore are lost (seq "
        f"{done.from_seq + 1}...{done.superseded_to})"
        if lost
        else "no anchored history was lost"
    )
    click.echo(
        f"restored from {src.name} at seq {done.from_seq}; {gone}; recorded as seq "
        f"{done.restore_seq}"
        + ("" if done.replaced is None else f"; the replaced file is {done.replaced}")
    )
    click.echo(
        f"verified: {done.report.chain.count} events intact, "
        f"{done.report.superseded} superseded checkpoints set aside"
    )


@click.group()
def retention() -> None:
    """Delete rows past their retention period; prune the audit chain up to a checkpoint."""


@retention.command("apply")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@JSON_OPTION
@click.pass_context
def retention_apply(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Apply retention.* now (the daemon also does it once a day)."""
    from fairlens_monitor.ops.retention import apply_retention

    settings = settings_of(ctx)
    repo, key = sealed_writer(settings)
    done = apply_retention(settings.retention, repo, key, now=datetime.now(UTC), dry_run=dry_run)
    if as_json:
        dump(done)
        return
    verb = "would delete" if dry_run else "deleted"
    pruned = (
        ""
        if done["pruned_to"] is None
        else f"; audit chain pruned up to signed checkpoint seq {done['pruned_to']}"
    )
    click.echo(
        f"{verb}: {done['readings']} readings, {done['group_results']} group rows, "
        f"{done['source_files']} file records, {done['alerts']} resolved alerts, "
        f"{done['runs']} runs, "
        f"{done['audit_events']} audit events{pruned}"
    )
