"""The ``report`` command: the examiner's pack of one monitor over one period, signed.

``fairlens-monitor report --monitor NAME --from DATE --to DATE --out DIR`` verifies the
whole audit chain, then writes report.html, report.pdf, readings.csv, group_results.csv,
alerts.csv, MANIFEST.json and MANIFEST.json.sig into DIR (``ops.report_pack``). Dates are UTC;
``--from`` is inclusive, ``--to`` exclusive. Exit 0 written; 1 the chain is not intact
(nothing written or signed); 2 a bad argument, a DIR that exists and is not empty (or is a
link or a file), an unknown monitor, or a trail that cannot be verified. The database is
only read. The library half loads when the command runs (tests/test_cli_imports.py).
"""

from __future__ import annotations

import logging
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from fairlens_monitor.cli.common import ANCHOR_OPTION, PUBKEY_OPTION, reader, settings_of

# 2026-01-31, 2026-01-31T06:00, 2026-01-31T06:00:00, optionally with Z or +00:00 (UTC only)
DATE_FORM = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?")
UTC_SUFFIXES = ("Z", "z", "+00:00", "+0000")
MAX_YEAR = 9998


class UtcDate(click.ParamType[datetime, Any]):
    """A date or date-time in UTC: ``YYYY-MM-DD`` (midnight) or ``YYYY-MM-DDTHH:MM[:SS]``,
    optionally ending in ``Z`` or ``+00:00``; another offset is refused (say it in UTC)."""

    name = "date"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        """Return the aware UTC datetime, or fail naming the option (the value is not
        echoed: it could be anything)."""
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        body = next((text[: -len(s)] for s in UTC_SUFFIXES if text.endswith(s)), text)
        if not DATE_FORM.fullmatch(body):
            self.fail(
                "expected a UTC date YYYY-MM-DD or date-time YYYY-MM-DDTHH:MM[:SS] "
                "(optionally ending in Z; other offsets are refused: convert to UTC)",
                param,
                ctx,
            )
        try:
            moment = datetime.fromisoformat(body.replace(" ", "T")).replace(tzinfo=UTC)
        except ValueError:
            self.fail(
                "not a real calendar date or time of day (check month, day, hour)", param, ctx
            )
        if moment.year > MAX_YEAR:  # the chart's time axis must end before year 10000
            self.fail(f"a year up to {MAX_YEAR}", param, ctx)
        return moment


@click.command()
@click.option(
    "--monitor",
    "monitor",
    default="default",
    show_default=True,
    help="The monitor to report on (its name in the database).",
)
@click.option(
    "--from",
    "start",
    required=True,
    type=UtcDate(),
    help="Start of the period, UTC, inclusive (YYYY-MM-DD or YYYY-MM-DDTHH:MM).",
)
@click.option(
    "--to",
    "end",
    required=True,
    type=UtcDate(),
    help="End of the period, UTC, exclusive (a date alone means its midnight).",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write; created, or an existing EMPTY folder (never written over).",
)
@click.option(
    "--decrypt-explanations",
    is_flag=True,
    help="Print the alerts' explanations in clear (needs the alert key readable here). "
    "Without it they stay encrypted: the pack shows the key id and the token's SHA-256.",
)
@ANCHOR_OPTION
@PUBKEY_OPTION
@click.pass_context
def report(
    ctx: click.Context,
    monitor: str,
    start: datetime,
    end: datetime,
    out: Path,
    decrypt_explanations: bool,
    anchor_file: Path | None,
    public_key: Path | None,
) -> None:
    """Write the examiner's pack of one monitor over [--from, --to) into --out, signed with
    the report key (report_ed25519.key in keys.dir, created on first use).

    The whole audit chain is verified first, in the same read snapshot the report is drawn
    from. Exit 0 written; 1 chain not intact (nothing written or signed); 2 bad arguments,
    a refused --out folder, an unknown monitor, or a trail that cannot be verified.
    """
    from fairlens_monitor.cli.common import trail_paths
    from fairlens_monitor.errors import KeyFileError
    from fairlens_monitor.ops.report_pack import check_out, make_pack
    from fairlens_monitor.security.crypto import load_cipher
    from fairlens_monitor.store.monitors import check_name

    try:
        check_name(monitor, "--monitor")
    except ValueError:
        raise click.BadParameter(
            "a monitor name is 1-64 characters of a-z, 0-9 and _", param_hint="'--monitor'"
        ) from None
    if end <= start:
        raise click.BadParameter(
            "must be later than --from (the period is [--from, --to))", param_hint="'--to'"
        )
    check_out(out)  # before the database is opened: a refused folder costs nothing
    for chatty in ("fontTools", "matplotlib", "fpdf", "PIL"):  # their INFO lines say nothing
        logging.getLogger(chatty).setLevel(logging.WARNING)
    settings = settings_of(ctx)
    cipher = None
    if decrypt_explanations:
        try:
            cipher = load_cipher(settings.keys.dir, create=False)
        except OSError as exc:  # a key folder this user may not enter
            raise KeyFileError(
                str(settings.keys.dir),
                f"the alert key is not readable here ({exc.strerror}); run without "
                "--decrypt-explanations to keep the explanations encrypted",
            ) from None
    paths = trail_paths(settings, anchor_file, public_key)
    pack = make_pack(
        reader(settings),
        monitor=monitor,
        start=start,
        end=end,
        out=out,
        key_dir=settings.keys.dir,
        **paths,
        checkpoint_every=settings.audit.checkpoint_every,
        now=datetime.now(UTC),
        cipher=cipher,
    )
    anchored = (
        f"covered by the signed checkpoint at seq {pack.checkpoint_seq}"
        if pack.checkpoint_seq
        else "no signed checkpoint yet"
    )
    click.echo(
        f"wrote {len(pack.files)} files to {pack.folder}: {pack.readings} readings, "
        f"{pack.alerts} alert episodes; chain verified up to seq {pack.head_seq} "
        f"({anchored}); MANIFEST.json signed with report key {pack.report_key_id}"
    )
    click.echo(
        f"check: cd {shlex.quote(str(pack.folder))} && openssl pkeyutl -verify -pubin -inkey "
        "report_ed25519.pub -rawin -in MANIFEST.json -sigfile MANIFEST.json.sig"
    )
