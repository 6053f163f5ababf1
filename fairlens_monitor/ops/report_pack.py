"""The examiner's pack, on disk: the folder, the CSV files, the manifest and its signature.

:func:`make_pack` is what ``fairlens-monitor report`` runs, in this order, so that a refused
pack leaves nothing behind and a written one is whole:

1. the output folder is checked (:func:`check_out`): it must not exist, or be an empty
   folder; a symbolic link, a file or a non-empty folder is refused (exit 2), never written
   into or over;
2. one read transaction of the (read-only) database is opened; the project's own whole-chain
   verification runs in it (``report.verified``): not intact → exit 1, nothing written,
   nothing signed, no key created;
3. the report key is loaded (created 0600 on first use, never the checkpoint key:
   ``security.report_key``), the period is gathered from the same snapshot
   (``report.gather``), the chart and pages drawn;
4. the folder is created (0755, or 0700 with explanations in clear, whose files are then
   0600) and opened once (``O_DIRECTORY | O_NOFOLLOW``); every file is created inside it
   through that descriptor with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (a symlink swapped in is
   refused, never followed), hashed as written, and synced: ``readings.csv`` and
   ``group_results.csv`` stream from the snapshot, then ``alerts.csv``, ``report.html``,
   ``report.pdf``, ``report_ed25519.pub``, ``MANIFEST.json`` (every file's SHA-256 and size,
   the period, the monitor, the verified head and covering checkpoint, the key fingerprints)
   and last ``MANIFEST.json.sig`` (raw 64-byte Ed25519 signature over MANIFEST.json). A
   failure on the way removes the files written so far (and the folder, if it made it).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fairlens_monitor import __version__
from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.errors import FairlensError, KeyFileError
from fairlens_monitor.ops.report import ReportData, gather, snapshot, verified
from fairlens_monitor.ops.report_pdf import render_pdf
from fairlens_monitor.ops.report_render import chart_png, render_html
from fairlens_monitor.security.crypto import AlertCipher, load_public_key
from fairlens_monitor.security.report_key import (
    REPORT_PUBLIC_FILE,
    load_report_key,
    public_pem,
    report_key_id,
)
from fairlens_monitor.store import reportreads
from fairlens_monitor.store.repository import Repository

MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.json.sig"
FORMAT = "fairlens-report/1"
ALERT_COLUMNS = (
    "id",
    "kind",
    "state",
    "created_at",
    "closed_at",
    "verdict",
    "dir",
    "key_id",
    "token_sha256",
    "explanation",
    "steps",
)
# A text cell a spreadsheet would run as a formula is written with a leading apostrophe
# (OWASP's advice on CSV injection); numbers, including negative ones, are left alone.
FORMULA_START = ("=", "+", "@", "\t", "\r", "-")


class OutFolderError(FairlensError):
    """The output folder is refused (exists and is not empty, a symlink, a file...): exit 2."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"--out {path}: {problem}")


@dataclass(frozen=True)
class Pack:
    """A written pack: where, its files' digests, and what it says about the chain."""

    folder: Path
    files: dict[str, str]  # name -> SHA-256 hex, MANIFEST.json included
    head_seq: int
    checkpoint_seq: int | None
    report_key_id: str
    readings: int
    alerts: int


def check_out(path: Path) -> None:
    """Refuse an output folder the pack may not be written into.

    Raises:
        OutFolderError: ``path`` is a symbolic link, exists and is not a folder, or is a
            folder that is not empty.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise OutFolderError(
            path,
            "is a symbolic link; give the real folder (a pack is never written through a link)",
        )
    if not stat.S_ISDIR(info.st_mode):
        raise OutFolderError(path, "exists and is not a folder; give a new or empty folder")
    if any(path.iterdir()):
        raise OutFolderError(
            path,
            "exists and is not empty; give a new or empty folder (a "
            "pack is never written over another)",
        )


class _Folder:
    """The pack's folder, opened once; files are created inside it, never through a link."""

    def __init__(self, path: Path, *, private: bool = False) -> None:
        check_out(path)
        self.path = path
        self.made = False
        # explanations in clear are for the key's holders: the owner's only (0700/0600)
        self.mode = 0o600 if private else 0o644
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(path, 0o700 if private else 0o755)
            self.made = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise OutFolderError(path, f"cannot create it: {exc.strerror}") from None
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            raise OutFolderError(path, f"cannot open it as a folder: {exc.strerror}") from None
        if os.listdir(self.fd):
            os.close(self.fd)
            raise OutFolderError(path, "is no longer empty; give a new or empty folder")
        self.files: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    @contextmanager
    def create(self, name: str) -> Iterator[Callable[[bytes], None]]:
        """Create ``name`` in the folder; yield a function that appends bytes to it."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            fd = os.open(name, flags, self.mode, dir_fd=self.fd)
        except OSError as exc:
            raise OutFolderError(self.path, f"cannot create {name}: {exc.strerror}") from None
        self.files[name] = ""
        digest, size = hashlib.sha256(), 0

        def write(chunk: bytes) -> None:
            nonlocal size
            view = memoryview(chunk)
            try:
                while view:
                    view = view[os.write(fd, view) :]
            except OSError as exc:  # a full disk, a quota
                raise OutFolderError(self.path, f"cannot write {name}: {exc.strerror}") from None
            digest.update(chunk)
            size += len(chunk)

        try:
            yield write
            os.fsync(fd)
        finally:
            os.close(fd)
        self.files[name], self.sizes[name] = digest.hexdigest(), size

    def put(self, name: str, data: bytes) -> None:
        """Write a whole file."""
        with self.create(name) as write:
            write(data)

    def close(self) -> None:
        """Sync the folder's entries and close it."""
        os.fsync(self.fd)
        os.close(self.fd)

    def discard(self) -> None:
        """Remove what was written (and the folder, when this pack made it and nothing else
        is in it). Best effort: it runs while another error propagates, which it must not
        hide."""
        for name in self.files:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self.fd)
        os.close(self.fd)
        if self.made:
            with contextlib.suppress(OSError):  # someone else's file in it: leave the folder
                os.rmdir(self.path)


def cell(value: Any) -> str:
    """One CSV cell: times in RFC 3339 UTC, booleans ``true``/``false``, None empty, floats
    in full precision; text that a spreadsheet would run as a formula gets a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return rfc3339(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_START):
        return "'" + text
    return text


def write_csv(
    folder: _Folder, name: str, header: Iterable[str], rows: Iterable[Iterable[Any]]
) -> int:
    """Write a CSV file a megabyte at a time. Returns how many data rows it has."""
    count = 0
    with folder.create(name) as write:
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        out.writerow(list(header))
        for row in rows:
            out.writerow([cell(v) for v in row])
            count += 1
            if buf.tell() > 1 << 20:
                write(buf.getvalue().encode("utf-8"))
                buf.seek(0)
                buf.truncate()
        write(buf.getvalue().encode("utf-8"))
    return count


def make_pack(
    repo: Repository,
    *,
    monitor: str,
    start: datetime,
    end: datetime,
    out: Path,
    key_dir: Path,
    anchor_file: Path,
    public_key: Path,
    checkpoint_every: int,
    now: datetime,
    cipher: AlertCipher | None = None,
) -> Pack:
    """Verify the chain, then write and sign the pack (see the module docstring for the steps).

    Args:
        repo: a read-only repository on the database.
        monitor: the monitor's name.
        start: the period's start (aware UTC, inclusive).
        end: the period's end (aware UTC, exclusive).
        out: the output folder (must not exist, or be empty).
        key_dir: the key folder (the report key lives there).
        anchor_file: the anchor file (for the verification).
        public_key: the checkpoint public key (for the verification).
        checkpoint_every: ``audit.checkpoint_every``.
        now: the report's time (aware UTC).
        cipher: the alert key, to print explanations in clear; None keeps them encrypted.

    Returns:
        What was written.

    Raises:
        OutFolderError: the folder is refused (exit 2).
        ReportRefusedError: the chain is not intact (exit 1): nothing written or signed.
        UnknownMonitorError: no such monitor (exit 2).
        CannotVerifyError, KeyFileError: the trail cannot be verified, or the report key is
            exposed, corrupt or the checkpoint key (exit 2).
    """
    check_out(out)
    stamp = rfc3339(now)
    conn = snapshot(repo)
    try:
        bound = Repository(repo.engine, monitor=monitor, bind=conn)
        integrity = verified(
            bound,
            anchor_file=anchor_file,
            public_key=public_key,
            checkpoint_every=checkpoint_every,
            at=stamp,
        )
        data = gather(
            conn, monitor, start, end, integrity=integrity, generated_at=stamp, cipher=cipher
        )
        checkpoint_key = None
        with contextlib.suppress(KeyFileError):  # no checkpoint key: nothing to confuse
            checkpoint_key = load_public_key(public_key)
        key = load_report_key(key_dir, checkpoint_key=checkpoint_key)
        key_id = report_key_id(key)
        chart = chart_png(data)
        html = render_html(data, chart, key_id).encode("utf-8")
        pdf = render_pdf(data, chart, key_id)
        folder = _Folder(out, private=cipher is not None)
        try:
            readings = write_csv(
                folder,
                "readings.csv",
                reportreads.READING_COLUMNS,
                reportreads.period_readings(conn, monitor, start, end),
            )
            write_csv(
                folder,
                "group_results.csv",
                ("scenario", "measured_at", *reportreads.GROUP_COLUMNS),
                reportreads.group_rows(conn, monitor, start, end),
            )
            write_csv(folder, "alerts.csv", ALERT_COLUMNS, _alert_rows(data))
            folder.put("report.html", html)
            folder.put("report.pdf", pdf)
            folder.put(REPORT_PUBLIC_FILE, public_pem(key))
            manifest = _manifest(data, folder, key_id, public_pem(key).decode("ascii"))
            folder.put(MANIFEST, manifest)
            folder.put(SIGNATURE, key.sign(manifest))
            folder.close()
        except BaseException:
            folder.discard()
            raise
    finally:
        conn.rollback()
        conn.close()
    cp = integrity.checkpoint
    return Pack(
        out,
        dict(folder.files),
        integrity.head_seq,
        cp.seq if cp else None,
        key_id,
        readings,
        len(data.alerts),
    )


def _alert_rows(data: ReportData) -> Iterator[list[Any]]:
    for a in data.alerts:
        steps = "; ".join(
            f"{s.ts} {s.action} by {s.by or '—'} (seq {s.seq})" + (f": {s.note}" if s.note else "")
            for s in a.timeline
        )
        yield [
            a.id,
            a.kind,
            a.state,
            a.created_at,
            a.closed_at,
            a.verdict,
            a.dir,
            a.key_id,
            a.token_sha256,
            a.explanation,
            steps,
        ]


def _manifest(data: ReportData, folder: _Folder, key_id: str, pem: str) -> bytes:
    """MANIFEST.json's bytes: sorted keys, two-space indent, UTF-8, a final newline."""
    integrity, cp = data.integrity, data.integrity.checkpoint
    doc = {
        "format": FORMAT,
        "generator": f"fairlens-monitor {__version__}",
        "monitor": data.monitor,
        "period": {
            "from": rfc3339(data.start),
            "to": rfc3339(data.end),
            "from_is": "inclusive",
            "to_is": "exclusive",
            "timezone": "UTC",
        },
        "generated_at": data.generated_at,
        "files": {
            name: {"sha256": digest, "bytes": folder.sizes[name]}
            for name, digest in sorted(folder.files.items())
        },
        "chain": {
            "verified_at": integrity.verified_at,
            "verified_from_seq": integrity.from_seq,
            "events_walked": integrity.events,
            "head_seq": integrity.head_seq,
            "head_hash": integrity.head_hash,
            "intact": True,
        },
        "checkpoint": None
        if cp is None
        else {
            "seq": cp.seq,
            "head_hash": cp.head_hash,
            "ts": cp.ts,
            "key_id": cp.key_id,
            "signature": cp.signature,
            "public_key_fingerprint": integrity.checkpoint_key_id,
            "in_anchor_file": integrity.in_anchor,
            "in_database": integrity.in_database,
        },
        "report_key": {"fingerprint": key_id, "file": REPORT_PUBLIC_FILE, "pem": pem},
        "explanations": data.explanations,
        "signature": {"file": SIGNATURE, "algorithm": "Ed25519 (raw 64 bytes over this file)"},
    }
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
