"""The ``file`` source: count a folder of CSV/Parquet decision logs, a chunk at a time.

read → counts → measure → detect → alert → log. This is the read edge for decision files:
it expands the configured path or glob, skips files a ``new_files`` window has already
measured, and reads each file's needed columns in chunks (bounded memory), keeping only the
rows in the window and reducing them to counts (:mod:`fairlens_monitor.fairness.counts`). Every
file's SHA-256 is taken over the very bytes that were parsed and compared with a second digest once
reading ends, so a file that changes while it is read fails the cycle instead of producing
a reading nobody could reproduce.
"""

from __future__ import annotations

import glob
import hashlib
import io
import stat
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness.counts import combine, in_window, normalise, parse_timestamps
from fairlens_monitor.fairness.groups import GroupSpec
from fairlens_monitor.fairness.metrics import require_columns
from fairlens_monitor.security.masking import quoted_redacted
from fairlens_monitor.security.safefiles import sha256_of
from fairlens_monitor.sources.csvhead import (  # re-exported: header limits, file kinds
    COMPRESSED_SUFFIXES as COMPRESSED_SUFFIXES,
)
from fairlens_monitor.sources.csvhead import MAX_COLUMNS as MAX_COLUMNS
from fairlens_monitor.sources.csvhead import MAX_HEADER_BYTES as MAX_HEADER_BYTES
from fairlens_monitor.sources.csvhead import PARQUET_SUFFIXES as PARQUET_SUFFIXES
from fairlens_monitor.sources.csvhead import check_header_line

DATA_SUFFIXES = (".csv", ".csv.gz", ".txt", *PARQUET_SUFFIXES)
BLOCK = 1 << 20
# A decision log's header names a few columns. Past these bounds the file is refused before
# pandas parses it (a header of a million columns took minutes and gigabytes to read).
# Every CSV cell as text, exactly as written: no type or missing-value guessing per chunk.
AS_TEXT: dict[str, Any] = {"dtype": object, "keep_default_na": False, "na_filter": False}


@dataclass(frozen=True)
class FileRead:
    """One file as read for a reading: where, what bytes (SHA-256), and how many rows."""

    path: str
    sha256: str
    size_bytes: int
    mtime_ns: int
    rows: int
    decisions: int


@dataclass(frozen=True)
class Columns:
    """The columns a file source reads and what each is for."""

    spec: GroupSpec
    outcome: str
    label: str | None = None
    stratum: str | None = None
    timestamp: str | None = None
    score: str | None = None
    score_bins: int = 100

    @property
    def needed(self) -> list[str]:
        """Every column to read, once each."""
        return list(
            dict.fromkeys(
                [
                    *self.spec.attributes,
                    self.outcome,
                    *filter(None, [self.label, self.stratum, self.timestamp, self.score]),
                ]
            )
        )


def match_files(pattern: str, *, follow_symlinks: bool = False) -> list[Path]:
    """Return the decision files a path, folder or glob names, sorted by path.

    The pattern's *folder* is the folder itself, or a glob's fixed prefix (the parts before
    the first one with ``*``, ``?`` or ``[``: ``/etc/*`` looks in ``/etc`` and matches every
    entry there), or a single file's parent. Every match must be a regular file inside that
    folder: a symbolic link is followed only to a file inside the folder, unless
    ``follow_symlinks`` (``source.follow_symlinks: true``); a match that is a folder, a FIFO,
    a device, a socket or a broken or looping link is refused. A refusal fails the cycle (it
    is not skipped quietly) and names the file, never its content.

    Args:
        pattern: a file, a folder (its ``.csv``/``.parquet`` files) or a glob (``**`` too).
        follow_symlinks: also read links to files outside the folder.

    Returns:
        The matching regular files (possibly none).

    Raises:
        DataError: the folder the pattern points into does not exist (a typo would otherwise
            look like a quiet source: every window empty), or a match is refused.
    """
    path = Path(pattern)
    if path.is_dir():
        folder = path
        found = [p for p in path.iterdir() if p.name.lower().endswith(DATA_SUFFIXES)]
    else:
        found = [Path(p) for p in glob.glob(pattern, recursive=True)]
        magic = next(
            (i for i, part in enumerate(path.parts) if glob.has_magic(part)), len(path.parts) - 1
        )
        folder = Path(*path.parts[:magic])  # the fixed part: the folder the glob looks in
        if not found and not folder.is_dir():
            raise DataError(
                f"source.path {pattern}: the folder {folder} does not exist; "
                "check the path (relative paths start at the config file)"
            )
    found.sort()
    for p in found:
        check_regular(p, folder, follow_symlinks=follow_symlinks)
    return found


def check_regular(path: Path, folder: Path, *, follow_symlinks: bool = False) -> None:
    """Refuse a match that is not a regular file inside ``folder`` (see :func:`match_files`).

    Raises:
        DataError: naming the file and what it is, and the fix.
    """
    try:
        mode = path.stat().st_mode  # follows links: a loop or a missing target raises
    except (OSError, RuntimeError):
        raise DataError(
            f"source.path: {path} is a symbolic link that cannot be followed (a "
            "loop or a missing target); remove it from the folder"
        ) from None
    if not stat.S_ISREG(mode):
        raise DataError(
            f"source.path: {path} is {_kind(mode)}, not a regular file; the "
            "source reads regular files only — remove it or narrow source.path "
            "(e.g. *.csv)"
        )
    if follow_symlinks:
        return
    inside = folder.resolve()
    if not path.resolve().is_relative_to(inside):
        raise DataError(
            f"source.path: {path} is a symbolic link to a file outside {inside}; "
            "remove the link, or set source.follow_symlinks: true to read it"
        )


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def check_header(path: Path) -> None:
    """Refuse a CSV whose header line is over ``MAX_HEADER_BYTES`` or ``MAX_COLUMNS`` columns.

    Only the first line is read (decompressed as pandas would, by the file's suffix), at
    most ``MAX_HEADER_BYTES`` + 1 bytes of it, so the check costs the same whatever the file.
    Columns are counted by their commas (a quoted comma in a name counts too).

    Raises:
        DataError: over either bound (naming the file and the bound, not the header).
    """
    from pandas.io.common import get_handle  # pandas' own suffix-to-decompressor rule

    with get_handle(path, "rb", compression="infer", is_text=False) as handles:
        line = handles.handle.readline(MAX_HEADER_BYTES + 1)
    if isinstance(line, str):  # not for binary handles; keeps the type checker honest
        line = line.encode("utf-8")
    check_header_line(line, path.name)


class HashingReader(io.RawIOBase):
    """A raw binary stream over an open file that hashes every byte handed on."""

    def __init__(self, raw: IO[bytes]) -> None:
        """Wrap an open binary file."""
        super().__init__()
        self.raw = raw
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        """A readable stream."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the file, hashing what was read."""
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.hash.update(data)
        return len(data)

    def finish(self) -> str:
        """Hash whatever the parser left unread and return the digest of the whole file."""
        while block := self.raw.read(BLOCK):
            self.hash.update(block)
        return self.hash.hexdigest()


class FileChunks:
    """The needed columns of one file, a chunk at a time; ``digest`` is set once read.

    A plain CSV is parsed from a stream that hashes as it goes, so ``digest`` is the SHA-256
    of the very bytes parsed; a compressed CSV (by its suffix, as pandas infers it) is hashed
    after reading and Parquet (read by random access) before. The caller's second digest
    after reading catches a change in every case. ``hashed=False`` skips the digest (the
    ``measure`` command needs none).

    A CSV's columns are read as text, with no guessing of missing values or types (an
    empty cell is ``""``), so a chunk's labels never depend on what else the chunk holds;
    :mod:`fairlens_monitor.fairness.cells` turns cells into labels and numbers. Parquet keeps its
    types, integers with nulls as Python ints (not floats).
    """

    def __init__(
        self, path: Path, columns: list[str], chunk_rows: int, *, hashed: bool = True
    ) -> None:
        """Prepare to read ``columns`` of ``path``."""
        self.path, self.columns, self.chunk_rows = path, columns, chunk_rows
        self.hashed = hashed
        self.digest: str | None = None

    def __iter__(self) -> Iterator[pd.DataFrame]:
        """Yield the chunks; afterwards ``digest`` holds the file's SHA-256 (if hashed).

        Raises:
            DataError: a needed column is missing (named with the file).
            OSError, ValueError, pandas.errors.ParserError: the file cannot be read.
        """
        where = f"file {self.path.name}"
        name = self.path.name.lower()
        if name.endswith(PARQUET_SUFFIXES):
            import pyarrow.parquet as pq

            self.digest = sha256_of(self.path) if self.hashed else None
            parquet = pq.ParquetFile(self.path)
            require_columns(parquet.schema_arrow.names, self.columns, where=where)
            for batch in parquet.iter_batches(batch_size=self.chunk_rows, columns=self.columns):
                yield batch.to_pandas(integer_object_nulls=True)
            return
        check_header(self.path)
        require_columns(pd.read_csv(self.path, nrows=0).columns, self.columns, where=where)
        if not self.hashed or name.endswith(COMPRESSED_SUFFIXES):
            yield from pd.read_csv(
                self.path, usecols=self.columns, chunksize=self.chunk_rows, **AS_TEXT
            )
            self.digest = sha256_of(self.path) if self.hashed else None
            return
        with self.path.open("rb") as raw:
            stream = HashingReader(raw)
            yield from pd.read_csv(
                io.BufferedReader(stream, BLOCK),
                usecols=self.columns,
                chunksize=self.chunk_rows,
                **AS_TEXT,
            )
            self.digest = stream.finish()


def read_file(
    path: Path,
    cols: Columns,
    window: tuple[datetime, datetime] | None,
    *,
    chunk_rows: int,
    missing_values: Collection[str] = (),
) -> tuple[pd.DataFrame, FileRead]:
    """Count one decision file's rows in the window, chunk by chunk.

    Args:
        path: a CSV (optionally gzip-compressed) or Parquet file.
        cols: the columns to read and their roles.
        window: ``[start, end)`` by the timestamp column, or None for every row.
        chunk_rows: rows per chunk (memory stays bounded whatever the file's size).
        missing_values: texts that also mean "missing" (``source.missing_values``).

    Returns:
        ``(count table, what was read)``; the count table may be empty.

    Raises:
        DataError: the file is missing, unreadable or corrupt, lacks a column, holds a bad
            value (named with its rows), or changed while it was read — always naming the
            file.
    """
    name = path.name
    try:
        before = path.stat()
        if not stat.S_ISREG(before.st_mode):  # swapped since it was matched: never open it
            raise DataError(f"{name}: {_kind(before.st_mode)}, not a regular file; refused")
        tables, rows, kept = [], 0, 0
        chunks = FileChunks(path, cols.needed, chunk_rows)
        for chunk in chunks:
            first = rows + 1
            rows += len(chunk)
            try:
                if window is not None and cols.timestamp:
                    times = parse_timestamps(chunk[cols.timestamp], cols.timestamp, f"file {name}")
                    chunk = chunk[in_window(times, *window)]
                kept += len(chunk)
                if len(chunk):
                    tables.append(
                        normalise(
                            chunk,
                            cols.spec,
                            cols.outcome,
                            label=cols.label,
                            stratum=cols.stratum,
                            where=f"file {name}",
                            score=cols.score,
                            score_bins=cols.score_bins,
                            missing_values=missing_values,
                        )
                    )
            except DataError as exc:
                raise DataError(
                    f"{exc} (in rows {first:,}–{rows:,} of {name})", column=exc.column
                ) from None
        parsed = chunks.digest or ""
        after = path.stat()
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or (
            sha256_of(path) != parsed
        ):
            raise DataError(
                f"{name}: the file changed while it was read (its SHA-256 before "
                "and after reading differ); the cycle will read it again"
            )
    except FileNotFoundError:
        raise DataError(f"{path}: the file disappeared before it could be read") from None
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(
            f"{name}: cannot read it: {type(exc).__name__}: "
            f"{quoted_redacted(str(exc), [*cols.needed, 'utf-8'])}"
        ) from None
    counts = combine(tables) if tables else pd.DataFrame()
    return counts, FileRead(str(path), parsed, after.st_size, after.st_mtime_ns, rows, kept)


def new_or_changed(
    files: list[Path], seen: Mapping[str, tuple[str, int, int]]
) -> tuple[list[Path], list[Path]]:
    """Split files into those a ``new_files`` window must read and those it may skip.

    A file is skipped when its path was measured before with the same size and
    modification time (hashing every old file each cycle would cost a full read of the
    history); anything else is read and its digest compared with the recorded one.

    Args:
        files: the matching files.
        seen: per path, the newest recorded ``(sha256, size_bytes, mtime_ns)``.

    Returns:
        ``(to read, skipped)``.
    """
    read, skipped = [], []
    for path in files:
        known = seen.get(str(path))
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if known is not None and (known[1], known[2]) == (stat.st_size, stat.st_mtime_ns):
            skipped.append(path)
        else:
            read.append(path)
    return read, skipped
