"""The ``fairlens-monitor`` command line: a thin click layer over the library.

Every command loads and validates the config first (nothing is written before that), then
calls one library function and prints its result as lines or, with ``--json``, as JSON.
Library errors (``FairlensError``) become one ``error: ...`` line on stderr and the error's
exit code. Exit codes: 0 ok; 1 a problem was found (tampered chain, an adverse verdict from
``measure``, or an adverse/drifting reading with ``once --fail-on-alert``); 2 usage, config,
data, key or database error.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypedDict, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from fairlens_monitor import __version__
from fairlens_monitor.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.audit import rfc3339
from fairlens_monitor.config import Settings, load_settings
from fairlens_monitor.crypto import PUBLIC_KEY_FILE, load_cipher
from fairlens_monitor.errors import FairlensError
from fairlens_monitor.privacy import install_masking
from fairlens_monitor.render import (
    alert_json,
    alert_line,
    audit_json,
    audit_line,
    cycle_json,
    cycle_lines,
    reading_json,
    reading_line,
)
from fairlens_monitor.store.db import current_revision, head_revision, make_engine, upgrade
from fairlens_monitor.store.repository import Repository
from fairlens_monitor.trail import (
    checkpoint_due,
    export_jsonl,
    prove_entry,
    verify_store,
    write_checkpoint,
)

T = TypeVar("T")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
LAST_OPTION = click.option("--last", default=20, show_default=True,
                           type=click.IntRange(min=1), help="How many of the newest to show.")


class _Group(click.Group):
    """Turns library errors into one stderr line and their documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FairlensError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except SQLAlchemyError as exc:
            click.echo(f"error: database: {type(exc).__name__}: {exc}", err=True)
            ctx.exit(2)


def _settings(ctx: click.Context) -> Settings:
    settings: Settings | None = ctx.obj.get("settings")
    if settings is None:
        settings = load_settings(ctx.obj["config_path"])
        logging.getLogger().setLevel(ctx.obj.get("log_level") or settings.logging.level)
        ctx.obj["settings"] = settings
    return settings


def _dump(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))


def _show(items: Sequence[T], as_json: bool, to_json: Callable[[T], Any],
          to_line: Callable[[T], str], *, empty: str) -> None:
    if as_json:
        _dump([to_json(item) for item in items])
        return
    for item in items:
        click.echo(to_line(item))
    if not items:
        click.echo(empty)


def _reader(settings: Settings) -> Repository:
    """A read-only repository on a database whose schema this version understands.

    Its connections are closed when the command ends (``Context.call_on_close``).
    """
    return _closing(open_repository(settings, readonly=True))


def _writer(settings: Settings) -> Repository:
    """A writable repository on a migrated database, closed when the command ends."""
    return _closing(open_repository(settings))


def _closing(repo: Repository) -> Repository:
    click.get_current_context().call_on_close(repo.engine.dispose)
    return repo


@click.group(cls=_Group)
@click.option("--config", "config_path", default="config.yaml", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The config file.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"],
                                                 case_sensitive=False),
              help="Overrides logging.level from the config.")
@click.version_option(__version__, prog_name="fairlens-monitor")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, log_level: str | None) -> None:
    """FairLens Monitor: watch a decision system for fairness drift.

    Exit codes: 0 ok, 1 problem found (e.g. tampered audit chain), 2 usage/config error.
    """
    logging.basicConfig(stream=sys.stderr, level=(log_level or "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_masking()  # e-mails, phone numbers, SSN-like numbers and application ids
    for noisy in ("alembic", "apscheduler"):  # their INFO lines say nothing to an operator
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = {"config_path": config_path, "log_level": log_level and log_level.upper()}


@cli.command()
@click.option("--cycles", type=click.IntRange(min=1), default=None,
              help="Stop after this many cycles (default: run until SIGINT/SIGTERM).")
@click.pass_context
def run(ctx: click.Context, cycles: int | None) -> None:
    """Run the monitoring daemon: one cycle every schedule.interval_seconds."""
    from fairlens_monitor.daemon import run_daemon  # deferred: pandas and the scheduler

    settings = _settings(ctx)
    run_daemon(settings, emit=lambda line: click.echo(line), max_cycles=cycles)


@cli.command()
@JSON_OPTION
@click.option("--fail-on-alert", is_flag=True,
              help="Exit 1 when the monitored verdict is adverse or drift is signalled.")
@click.pass_context
def once(ctx: click.Context, as_json: bool, fail_on_alert: bool) -> None:
    """Run one cycle now, store it, and print its result."""
    from fairlens_monitor.cycle import execute_cycle  # deferred: pandas
    from fairlens_monitor.governance import record_config_change

    settings = _settings(ctx)
    repo = _writer(settings)
    cipher, signer = open_cipher(settings, repo), open_signing_key(settings, repo)
    record_config_change(settings, repo, actor="cli", ts=rfc3339(datetime.now(UTC)))
    outcome = execute_cycle(settings, repo, cipher, clock=lambda: datetime.now(UTC), actor="cli")
    if checkpoint_due(repo, settings.audit.checkpoint_every):
        write_checkpoint(repo, signer, anchor_file=settings.audit.anchor_file,
                         ts=rfc3339(datetime.now(UTC)))
    echo = settings.alerts.echo_plaintext
    if as_json:
        _dump(cycle_json(outcome, repo.audit_tail(5), echo_plaintext=echo))
    else:
        for line in cycle_lines(outcome, echo_plaintext=echo):
            click.echo(line)
    if fail_on_alert and (outcome.monitored.verdict == "adverse"
                          or outcome.monitored.drift_alert):
        ctx.exit(1)


@cli.command()
@LAST_OPTION
@JSON_OPTION
@click.pass_context
def history(ctx: click.Context, last: int, as_json: bool) -> None:
    """Show the newest stored readings (both scenarios of each run)."""
    rows = _reader(_settings(ctx)).latest_readings(last)
    _show(rows, as_json, reading_json, reading_line, empty="no readings yet")


@cli.group(invoke_without_command=True)
@LAST_OPTION
@JSON_OPTION
@click.pass_context
def audit(ctx: click.Context, last: int, as_json: bool) -> None:
    """Show the newest audit events (the chain's tail), or run an audit subcommand."""
    if ctx.invoked_subcommand is not None:
        return
    records = _reader(_settings(ctx)).audit_tail(last)
    _show(records, as_json, audit_json, audit_line, empty="no audit events yet")


@audit.command("export")
@click.option("--jsonl", "path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (replaced).")
@click.pass_context
def audit_export(ctx: click.Context, path: Path) -> None:
    """Export the whole chain as JSON lines, verifiable offline (see README)."""
    count = export_jsonl(_reader(_settings(ctx)), path)
    click.echo(f"wrote {count} events to {path}")


ANCHOR_OPTION = click.option("--anchor", "anchor_file", type=click.Path(dir_okay=False,
                             path_type=Path), help="Anchor file (default: audit.anchor_file).")
PUBKEY_OPTION = click.option("--public-key", type=click.Path(dir_okay=False, path_type=Path),
                             help="Checkpoint public key (default: in keys.dir).")


class _TrailPaths(TypedDict):
    anchor_file: Path
    public_key: Path


def _trail_paths(settings: Settings, anchor_file: Path | None,
                 public_key: Path | None) -> _TrailPaths:
    return {"anchor_file": anchor_file or settings.audit.anchor_file,
            "public_key": public_key or settings.keys.dir / PUBLIC_KEY_FILE}


@cli.command()
@JSON_OPTION
@ANCHOR_OPTION
@PUBKEY_OPTION
@click.pass_context
def verify(ctx: click.Context, as_json: bool, anchor_file: Path | None,
           public_key: Path | None) -> None:
    """Walk the whole chain and its signed checkpoints.

    Exit 0 intact, 1 tampered, 2 cannot verify (missing database or public key).
    """
    settings = _settings(ctx)
    trail = verify_store(_reader(settings), **_trail_paths(settings, anchor_file, public_key))
    report = trail.chain
    first = report.anomalies[0] if report.anomalies else None
    if as_json:
        _dump({"intact": report.intact, "count": report.count, "head_seq": report.head_seq,
               "head_hash": report.head_hash, "last_verified_seq": report.last_verified_seq,
               "anchored_seq": report.anchored_seq, "unanchored_events": report.unanchored,
               "checkpoints_checked": report.checkpoints_checked,
               "anchor_file_checkpoints": trail.anchor_checkpoints,
               "database_checkpoints": trail.database_checkpoints,
               "superseded_checkpoints": trail.superseded,
               "anchor_file": str(trail.anchor_file),
               "first_broken_seq": first.seq if first else None,
               "anomalies": [vars(a) for a in report.anomalies]})
    elif first is None:
        click.echo(f"audit chain intact: {report.count} events, head seq {report.head_seq} "
                   f"{report.head_hash}; checkpoints verified: {trail.anchor_checkpoints} in "
                   f"the anchor file, {trail.database_checkpoints} in the database; "
                   f"anchored up to seq {report.anchored_seq}, {report.unanchored} events "
                   "not yet anchored" + (f"; {trail.superseded} checkpoints of history lost "
                                         "before a signed restore set aside"
                                         if trail.superseded else ""))
    else:
        click.echo(f"audit chain TAMPERED: first broken seq {first.seq} ({first.kind}: "
                   f"{first.detail}); {len(report.anomalies)} anomalies in {report.count} "
                   f"events, verified up to seq {report.last_verified_seq}")
        for a in report.anomalies:
            click.echo(f"  seq {a.seq}: {a.kind}: {a.detail}")
    if first is not None:
        ctx.exit(1)


@cli.command("verify-entry")
@click.argument("hash_hex", metavar="HASH")
@JSON_OPTION
@ANCHOR_OPTION
@PUBKEY_OPTION
@click.pass_context
def verify_entry(ctx: click.Context, hash_hex: str, as_json: bool, anchor_file: Path | None,
                 public_key: Path | None) -> None:
    """Prove that the audit record with this HASH is in the intact chain (exit 1 if not)."""
    settings = _settings(ctx)
    proof = prove_entry(_reader(settings), hash_hex,
                        **_trail_paths(settings, anchor_file, public_key))
    rec = proof.record
    if as_json:
        _dump({"proven": proof.proven, "record": audit_json(rec) if rec else None,
               "chain_verified_up_to": proof.chain.last_verified_seq,
               "anchored_by_checkpoint_at_seq": proof.covered_by})
    elif rec is None:
        click.echo(f"no audit record has hash {hash_hex}")
    elif proof.proven:
        anchored = (f"covered by a signed checkpoint at seq {proof.covered_by}"
                    if proof.covered_by else "not yet covered by a signed checkpoint")
        click.echo(f"record seq {rec.seq} ({rec.event_type}, {rec.ts}) is in the chain, which "
                   f"verifies from genesis to seq {proof.chain.last_verified_seq}; {anchored}")
    else:
        click.echo(f"record seq {rec.seq} found, but the chain is broken at or before it "
                   f"(verified only up to seq {proof.chain.last_verified_seq})")
    if not proof.proven:
        ctx.exit(1)


def _band(_ctx: click.Context, _param: click.Parameter,
          values: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    bands = {}
    for text in values:
        column, _, edges = text.partition("=")
        try:
            numbers = tuple(float(e) for e in edges.split(","))
        except ValueError:
            numbers = ()
        if not column or not numbers or list(numbers) != sorted(set(numbers)):
            raise click.BadParameter(f"expected COLUMN=EDGE[,EDGE...] with increasing numbers, "
                                     f"e.g. age=25 or age=25,40; got {text!r}")
        bands[column] = numbers
    return bands


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--protected-attribute", "attributes", multiple=True, required=True,
              help="Group column; give it twice for an intersection (e.g. sex and age).")
@click.option("--protected-value", help="The group to report on (default: the worst group).")
@click.option("--privileged-value", help="The reference group (needed unless --reference "
              "highest).")
@click.option("--reference", type=click.Choice(["privileged", "highest"]), default="privileged",
              show_default=True, help="Compare with the privileged value, or with the group "
              "with the highest rate (NYC Local Law 144).")
@click.option("--outcome", required=True, help="Decision column (0/1, true/false, yes/no).")
@click.option("--label", help="Ground-truth column (e.g. repaid) for the outcome metrics.")
@click.option("--band", "bands", multiple=True, callback=_band, metavar="COL=EDGES",
              help="Cut a numeric column into bands, e.g. age=25 or age=25,40.")
@click.option("--explain-by", help="Numeric column to test as an explanation of the gap.")
@click.option("--threshold", type=click.FloatRange(min=0, min_open=True), default=0.8,
              show_default=True, help="Impact-ratio threshold (four-fifths rule).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.05, show_default=True, help="Significance level.")
@click.option("--min-group-size", type=click.IntRange(min=1), default=30, show_default=True,
              help="Groups smaller than this make a verdict inconclusive.")
@click.option("--min-group-share", type=click.FloatRange(0, 0.5), default=0.02,
              show_default=True, help="Groups below this share of rows are excluded (counted).")
@JSON_OPTION
def measure(file: Path, attributes: tuple[str, ...], protected_value: str | None,
            privileged_value: str | None, reference: str, outcome: str, label: str | None,
            bands: dict[str, tuple[float, ...]], explain_by: str | None, threshold: float,
            alpha: float, min_group_size: int, min_group_share: float, as_json: bool) -> None:
    """Measure a decision FILE (CSV or Parquet) once: statistics and verdict.

    Exit 1 when the verdict is adverse, 0 when it is ok or inconclusive, 2 on bad input.
    Needs no config file and writes nothing. The file is read a million rows at a time, so
    memory stays bounded (except with --explain-by, which keeps the two compared groups).
    """
    from fairlens_monitor.filemeasure import measure_file, report_lines  # deferred: pandas
    from fairlens_monitor.groups import GroupSpec

    if len(attributes) > 2 or len(set(attributes)) != len(attributes):
        raise click.UsageError("--protected-attribute: give one column, or two different "
                               "columns for an intersection")
    if reference == "privileged" and privileged_value is None:
        raise click.UsageError("--privileged-value is required with --reference privileged "
                               "(or use --reference highest)")
    unknown = set(bands) - set(attributes)
    if unknown:
        raise click.UsageError(f"--band {sorted(unknown)[0]}: not a --protected-attribute")
    spec = GroupSpec(attributes=attributes, bands=bands,
                     reference="highest" if reference == "highest" else "privileged",
                     privileged_value=privileged_value if reference == "privileged" else None,
                     unprivileged_value=protected_value, threshold=threshold, alpha=alpha,
                     min_group_size=min_group_size, min_group_share=min_group_share)
    progress = None
    if sys.stderr.isatty():  # a running count for big files; nothing when piped or in CI
        def progress(rows: int) -> None:
            click.echo(f"\rread {rows:,} rows…", nl=False, err=True)
    report = measure_file(file, spec, outcome, label=label, explain_by=explain_by,
                          progress=progress)
    if progress is not None:
        click.echo(err=True)
    if as_json:
        _dump(report)
    else:
        for line in report_lines(report):
            click.echo(line)
    sys.exit(1 if report["verdict"] == "adverse" else 0)


@cli.command()
@click.pass_context
def checkpoint(ctx: click.Context) -> None:
    """Sign the current chain head now and append it to the anchor file."""
    settings = _settings(ctx)
    repo = _writer(settings)
    cp = write_checkpoint(repo, open_signing_key(settings, repo),
                          anchor_file=settings.audit.anchor_file, ts=rfc3339(datetime.now(UTC)))
    if cp is None:
        click.echo("nothing to checkpoint: the chain is empty or its head is already anchored")
    else:
        click.echo(f"checkpoint at seq {cp.seq} {cp.head_hash} appended to "
                   f"{settings.audit.anchor_file}")


@cli.command()
@click.argument("token")
@click.pass_context
def decrypt(ctx: click.Context, token: str) -> None:
    """Print the plaintext of an alert TOKEN ('-' reads it from stdin) with the local key."""
    if token == "-":  # noqa: S105 - the stdin marker, not a password
        token = sys.stdin.read()
    cipher = load_cipher(_settings(ctx).keys.dir, create=False)
    click.echo(cipher.decrypt(token))


@cli.command()
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535),
              help="Port to serve the page on.")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1: this machine only).")
@click.pass_context
def view(ctx: click.Context, port: int, address: str) -> NoReturn:
    """Serve the read-only trend page (Streamlit) on the configured database."""
    config = Path(ctx.obj["config_path"]).resolve()
    _settings(ctx)  # a bad config stops here with its one-line error, exit 2
    viewer = Path(__file__).with_name("viewer.py")
    argv = [sys.executable, "-m", "streamlit", "run", str(viewer), "--server.headless", "true",
            "--server.port", str(port), "--server.address", address,
            "--browser.gatherUsageStats", "false"]
    os.execve(sys.executable, argv, {**os.environ, "FAIRLENS_CONFIG": str(config)})  # noqa: S606


@cli.group()
def alerts() -> None:
    """The alert workflow: list alert episodes, acknowledge or resolve them."""


@alerts.command("list")
@click.option("--state", "state", default="active", show_default=True,
              type=click.Choice(["active", "open", "acknowledged", "resolved", "all"]),
              help="active = open or acknowledged.")
@LAST_OPTION
@JSON_OPTION
@click.pass_context
def alerts_list(ctx: click.Context, state: str, last: int, as_json: bool) -> None:
    """Show alert episodes (never their encrypted text)."""
    states = {"active": ["open", "acknowledged"],
              "all": ["open", "acknowledged", "resolved"]}.get(state, [state])
    rows = _reader(_settings(ctx)).list_alerts(states, last)
    _show(rows, as_json, alert_json, alert_line, empty=f"no {state} alerts")


def _transition(ctx: click.Context, alert_id: int, to: str, by: str, note: str | None) -> None:
    repo = _writer(_settings(ctx))
    now = datetime.now(UTC)
    try:
        alert, record = repo.transition_alert(alert_id, to, by=by, note=note, at=now,
                                              ts=rfc3339(now))
    except (LookupError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"alert #{alert.id} ({alert.kind}) {to} by {by}; audit seq {record.seq}")


@alerts.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", required=True, help="Who acknowledges it.")
@click.option("--note", help="Optional note (kept in the audit trail; no applicant data).")
@click.pass_context
def alerts_ack(ctx: click.Context, alert_id: int, by: str, note: str | None) -> None:
    """Acknowledge an open alert: someone is looking at it (an audit event)."""
    _transition(ctx, alert_id, "acknowledged", by, note)


@alerts.command("resolve")
@click.argument("alert_id", type=int)
@click.option("--by", required=True, help="Who resolves it.")
@click.option("--note", required=True,
              help="Why it is resolved (required; kept in the audit trail; no applicant data).")
@click.pass_context
def alerts_resolve(ctx: click.Context, alert_id: int, by: str, note: str) -> None:
    """Resolve an open or acknowledged alert, with a note (an audit event)."""
    _transition(ctx, alert_id, "resolved", by, note)


@cli.group()
def keys() -> None:
    """Key management: status of the key folder, rotation of the alert key."""


@keys.command("status")
@JSON_OPTION
@click.pass_context
def keys_status(ctx: click.Context, as_json: bool) -> None:
    """List the key files: role, fingerprint, age, permissions. Exit 1 if one is exposed."""
    from fairlens_monitor.keys import key_status

    key_dir = _settings(ctx).keys.dir
    files = key_status(key_dir)
    if as_json:
        _dump([vars(f) for f in files])
    elif not files:
        click.echo(f"no key files in {key_dir}")
    for f in [] if as_json else files:
        flag = "ok" if f.private_ok else f"EXPOSED (fix: chmod 600 {key_dir / f.name})"
        click.echo(f"{f.name:<34} {f.role:<44} id={f.key_id or '-':<16} "
                   f"age={f.age_days:.1f}d {f.mode} {flag}")
    if any(not f.private_ok for f in files):
        ctx.exit(1)


@keys.command("rotate")
@click.pass_context
def keys_rotate(ctx: click.Context) -> None:
    """New alert key; every stored token re-encrypted in one transaction (audited)."""
    from fairlens_monitor.keys import rotate_alert_key

    settings = _settings(ctx)
    repo = _writer(settings)
    done = rotate_alert_key(settings.keys.dir, repo, ts=rfc3339(datetime.now(UTC)))
    click.echo(f"alert key rotated: {done.old_key_id} -> {done.new_key_id}; {done.alerts} "
               f"tokens re-encrypted; audit seq {done.audit_seq}; the old key is kept as "
               f"fernet-{done.old_key_id}.retired (older backups need it)")


@cli.command()
@click.argument("dest", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
def backup(ctx: click.Context, dest: Path) -> None:
    """Copy the SQLite database to DEST while the daemon runs, and verify the copy.

    The copy is a consistent snapshot (SQLite's online backup API); it is kept only after
    PRAGMA integrity_check and the full chain and checkpoint verification pass on it. The
    backup is recorded as a `backup_made` audit event in the source database.
    """
    from fairlens_monitor.backup import backup_sqlite

    settings = _settings(ctx)
    made = backup_sqlite(settings.database.url, dest,
                         busy_timeout_ms=settings.database.busy_timeout_ms,
                         **_trail_paths(settings, None, None))
    record = _writer(settings).append_event("backup_made", "cli", {
        "file": made.path.name, "head_seq": made.head_seq, "head_hash": made.head_hash,
        "sha256": made.sha256}, ts=rfc3339(datetime.now(UTC)))
    click.echo(f"backup {made.path}: {made.size:,} bytes, chain head seq {made.head_seq}, "
               f"integrity ok, chain verified; sha256 {made.sha256}; audit seq {record.seq}")


@cli.command()
@click.argument("src", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
def restore(ctx: click.Context, src: Path) -> None:
    """Replace the SQLite database with the backup SRC (stop the daemon first).

    Refuses a backup that fails integrity_check or chain verification. The replaced file is
    kept beside it (renamed). A signed `chain_restored` event explains the gap to the anchor
    file, a new checkpoint is signed, and the result is verified. Exit 0 when it verifies.
    """
    from fairlens_monitor.crypto import load_signing_key
    from fairlens_monitor.restore import restore_sqlite

    settings = _settings(ctx)
    # The database may be gone (that is why one restores): never create or open it here.
    done = restore_sqlite(settings, src, load_signing_key(settings.keys.dir, create=False))
    lost = done.superseded_to - done.from_seq
    gone = (f"{lost} later events anchored before the restore are lost (seq "
            f"{done.from_seq + 1}...{done.superseded_to})" if lost else
            "no anchored history was lost")
    click.echo(f"restored from {src.name} at seq {done.from_seq}; {gone}; recorded as seq "
               f"{done.restore_seq}"
               + ("" if done.replaced is None else f"; the replaced file is {done.replaced}"))
    click.echo(f"verified: {done.report.chain.count} events intact, "
               f"{done.report.superseded} superseded checkpoints set aside")


@cli.group()
def retention() -> None:
    """Delete rows past their retention period; prune the audit chain up to a checkpoint."""


@retention.command("apply")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@JSON_OPTION
@click.pass_context
def retention_apply(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Apply retention.* now (the daemon also does it once a day)."""
    from fairlens_monitor.retention import apply_retention

    settings = _settings(ctx)
    repo = _writer(settings)
    done = apply_retention(settings.retention, repo, open_signing_key(settings, repo),
                           now=datetime.now(UTC), dry_run=dry_run)
    if as_json:
        _dump(done)
        return
    verb = "would delete" if dry_run else "deleted"
    pruned = ("" if done["pruned_to"] is None else
              f"; audit chain pruned up to signed checkpoint seq {done['pruned_to']}")
    click.echo(f"{verb}: {done['readings']} readings, {done['group_results']} group rows, "
               f"{done['alerts']} resolved alerts, {done['runs']} runs, "
               f"{done['audit_events']} audit events{pruned}")


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Migrate the database to the newest schema (creates it when missing)."""
    url = _settings(ctx).database.url
    engine = make_engine(url)
    try:
        before, after = upgrade(engine, url)
    finally:
        engine.dispose()
    click.echo(f"database at revision {after}" + ("" if before == after else
                                                  f" (was {before or 'empty'})"))


@db.command("copy")
@click.argument("src_url")
@click.argument("dst_url")
@click.pass_context
def db_copy(ctx: click.Context, src_url: str, dst_url: str) -> None:
    """Copy the history in SRC_URL into the empty database DST_URL, then verify the copy.

    For moving from SQLite to PostgreSQL, e.g. ``db copy sqlite:///var/fairlens.db
    postgresql+psycopg://fairlens@db-host/fairlens``. The chain and its checkpoints are
    verified on the copy (with the configured anchor file and public key): exit 0 when it
    verifies, 1 when it does not, 2 on a usage or database error.
    """
    from fairlens_monitor.store.copy import copy_database

    settings = _settings(ctx)
    result = copy_database(src_url, dst_url)
    rows = ", ".join(f"{n} {name}" for name, n in result.rows.items())
    click.echo(f"copied {rows}; chain head seq {result.head_seq}")
    copy = Repository(make_engine(dst_url, readonly=True))
    try:
        report = verify_store(copy, **_trail_paths(settings, None, None)).chain
    finally:
        copy.engine.dispose()
    if report.intact:
        click.echo(f"copy verified: {report.count} events intact, anchored up to seq "
                   f"{report.anchored_seq}")
        return
    first = report.anomalies[0]
    click.echo(f"copy does NOT verify: first broken seq {first.seq} ({first.kind})", err=True)
    ctx.exit(1)


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Print the database's schema revision and the newest this version knows."""
    url = _settings(ctx).database.url
    engine = make_engine(url, readonly=True)
    try:
        click.echo(f"current: {current_revision(engine) or 'empty'}  head: {head_revision(url)}")
    finally:
        engine.dispose()


def main() -> NoReturn:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="fairlens-monitor"))
