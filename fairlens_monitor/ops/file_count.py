"""Counting one decision file: the quickest way that gives the chunked count's result.

read → **counts** → measure → detect → alert → log; the reading half of ``measure``
(:mod:`fairlens_monitor.ops.measure_file`). A plain CSV (no banded attribute, no score) is
cut into one byte range per core, each parsed by its own pyarrow reader with the group,
decision and label columns dictionary-encoded (:mod:`fairlens_monitor.sources.csvparts`),
and counted on those codes in the reading threads
(:mod:`fairlens_monitor.fairness.codecounts`): no frame is built, and pandas is not even
imported unless a header or a decision text needs its rules. A value that count cannot take
(a missing or non-binary decision, a personal-looking group) sends the file to the chunked
count (pyarrow's streaming reader in frames of ``chunk_rows``,
:mod:`fairlens_monitor.sources.arrowcsv`), whose error names the rows; a file pyarrow
refuses is read again with the pandas reader. So the counts and errors are the pandas
reader's in every case.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness import stats
from fairlens_monitor.fairness.codecounts import CodedCounts, NeedsRowDetail
from fairlens_monitor.fairness.groups import GroupSpec
from fairlens_monitor.security.masking import quoted_redacted
from fairlens_monitor.sources.csvhead import (
    FastReadRefused,
    dictionary_codes,
    plain_header,
    readable,
)
from fairlens_monitor.sources.csvparts import reduce_parts

if TYPE_CHECKING:  # pandas loads for the chunked count, never for a plain CSV's coded count
    import pandas as pd
    import pyarrow as pa

CHUNK_ROWS = 500_000
T = TypeVar("T")


def iter_decisions(
    path: Path,
    columns: list[str],
    chunk_rows: int = CHUNK_ROWS,
    *,
    fast: bool = False,
    coded: Collection[str] = (),
) -> Iterator[pd.DataFrame]:
    """Read only ``columns`` of a CSV or Parquet file, ``chunk_rows`` rows at a time.

    The file source's reader (:class:`~fairlens_monitor.sources.files.FileChunks`) without
    the digest, inside this command's error messages.

    Args:
        path: the file; ``.parquet``/``.pq`` is read as Parquet, anything else as CSV
            (compressed by its suffix, e.g. ``.csv.gz``).
        columns: the columns needed (checked against the header first).
        chunk_rows: rows per chunk: memory stays bounded whatever the file's size.
        fast: read a plain CSV with pyarrow (cells as Arrow-backed text).
        coded: with ``fast``, columns of few distinct values, read as categoricals.

    Yields:
        Frames of at most ``chunk_rows`` rows (none for a file with a header only).

    Raises:
        DataError: the file is missing or unreadable (also part-way through), or a column
            is missing (named with the file).
        FastReadRefused: with ``fast``, pyarrow refused the file: read it without.
    """
    from fairlens_monitor.sources.arrowcsv import arrow_chunks
    from fairlens_monitor.sources.files import FileChunks

    with _read_errors(path, columns):
        if fast and readable(path):
            yield from arrow_chunks(path, columns, chunk_rows, coded)
        else:
            yield from FileChunks(path, columns, chunk_rows, hashed=False)


@contextmanager
def _read_errors(path: Path, columns: list[str]) -> Iterator[None]:
    """Turn a failure to read ``path`` into a DataError naming the file (never a cell)."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:  # pandas' ParserError is a ValueError
        if isinstance(exc, DataError):
            raise
        raise DataError(
            f"{path.name}: cannot read it: {quoted_redacted(str(exc), [*columns, 'utf-8'])}"
        ) from None


@dataclass(frozen=True)
class CountJob:
    """One file to count and how: what :func:`count_file` and :func:`measure_file` share."""

    path: Path
    spec: GroupSpec
    outcome: str
    label: str | None
    chunk_rows: int
    progress: Callable[[int], None] | None
    missing_values: Collection[str]
    score: str | None
    score_bins: int | None

    @property
    def coded(self) -> list[str]:
        """The columns of few distinct values: attributes, decision, label."""
        return [*self.spec.attributes, self.outcome, *filter(None, [self.label])]


def count_file(
    path: Path,
    spec: GroupSpec,
    outcome: str,
    label: str | None = None,
    *,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
    missing_values: Collection[str] = (),
    score: str | None = None,
    score_bins: int | None = None,
) -> pd.DataFrame:
    """Count a decision file chunk by chunk (bounded memory) into one count table.

    The same count table a file or SQL source gives the daemon
    (:mod:`fairlens_monitor.fairness.counts`): each chunk is validated and reduced with
    ``normalise``, the chunks are added with ``combine``.

    Args:
        path: CSV or Parquet file.
        spec: how rows become groups.
        outcome: the decision column.
        label: optional ground-truth column (required with ``score``).
        chunk_rows: rows per chunk.
        progress: called with the rows read so far after each chunk (on a plain CSV
            counted by byte ranges: each time about ``chunk_rows`` more are counted, from
            the reading threads, and once with the total).
        missing_values: texts that also mean "missing" (empty cells always do).
        score: optional model score column (numbers in [0, 1]), counted in bins.
        score_bins: equal-width bins the score is counted in (default
            :data:`fairlens_monitor.fairness.counts.DEFAULT_SCORE_BINS`).

    Returns:
        The count table of the whole file (with ``_score_bin``/``_score_sum`` when scored).

    Raises:
        DataError: as :func:`iter_decisions`, or a bad value, named with its rows; a score
            missing, not a number or outside [0, 1].
    """
    from fairlens_monitor.fairness.codecounts import count_table

    job = CountJob(
        path, spec, outcome, label, chunk_rows, progress, missing_values, score, score_bins
    )
    return count_job(
        job, lambda parts: count_table(parts, spec, outcome, label, missing_values=missing_values)
    )


def count_job(job: CountJob, from_parts: Callable[[list[CodedCounts]], T]) -> T | pd.DataFrame:
    """Count a file the quickest way that gives the chunked count's result.

    A plain CSV (no banded attribute, no score) is counted on its parser's codes and
    ``from_parts`` makes the result of the parts (a count table, or the group table without
    pandas); when that count must give way (a value it cannot take: ``NeedsRowDetail``;
    pyarrow refusing the file: ``FastReadRefused``) or does not apply, the file is counted
    chunk by chunk into a count table, whose errors name the rows.
    """
    spec, refused = job.spec, False
    if readable(job.path) and job.score is None and not set(spec.attributes) & set(spec.bands):
        try:
            return from_parts(_count_coded(job))
        except NeedsRowDetail:  # a bad value: the chunked count names its rows
            pass
        except FastReadRefused:  # e.g. a short row pandas reads as missing cells: its way
            refused = True
    return _count_chunks(job, coded=None if refused else job.coded)


def _count_chunks(job: CountJob, *, coded: list[str] | None) -> pd.DataFrame:
    """The chunked count: pyarrow's streaming reader (``coded`` columns dictionary-encoded),
    or, with ``coded`` None or when pyarrow refuses the file, the pandas reader."""
    from fairlens_monitor.fairness import counts as count_table

    label, score = job.label, job.score
    needed = list(dict.fromkeys([*job.spec.attributes, job.outcome, *filter(None, [label, score])]))
    bins = count_table.DEFAULT_SCORE_BINS if job.score_bins is None else job.score_bins

    def reduce(chunk: pd.DataFrame) -> pd.DataFrame:
        return count_table.normalise(
            chunk,
            job.spec,
            job.outcome,
            label=label,
            where=f"file {job.path.name}",
            score=score,
            score_bins=bins,
            missing_values=job.missing_values,
        )

    path, rows, progress = job.path, job.chunk_rows, job.progress
    try:
        tables = _reduce_chunks(path, needed, rows, progress, reduce, coded=coded)
    except FastReadRefused:  # e.g. a short row pandas reads as missing cells: its way
        tables = _reduce_chunks(path, needed, rows, progress, reduce)
    return count_table.combine(tables)


def _count_coded(job: CountJob) -> list[CodedCounts]:
    """Count a plain CSV on its parser's dictionary codes, one byte range per core.

    ``progress`` is called with the rows counted so far each time another ``chunk_rows``
    are done (from the reading threads), and once with the total. The header is checked
    without pandas when it is plain (:func:`~fairlens_monitor.sources.csvhead.plain_header`),
    else as the pandas reader reads it.

    Raises:
        DataError: the header is too long or wide or lacks a column; the file is unreadable.
        FastReadRefused: pyarrow refused the file (read it with pandas).
        NeedsRowDetail: a value the chunked count would reject (count it so).
    """
    needed = list(dict.fromkeys(job.coded))
    progress, lock = job.progress, threading.Lock()
    done = [0, 0]  # rows counted, rows last reported

    def start() -> CodedCounts:
        return CodedCounts(job.coded)

    def step(counts: CodedCounts, batch: pa.RecordBatch) -> None:
        arrays = [batch.column(name) for name in counts.columns]
        if any(a.null_count for a in arrays):  # not with these options; never guess
            raise NeedsRowDetail
        texts, indices = zip(*map(dictionary_codes, arrays), strict=True)
        counts.add(texts, indices)
        if progress is not None:
            with lock:
                done[0] += batch.num_rows
                if done[0] - done[1] >= job.chunk_rows:
                    done[1] = done[0]
                    progress(done[0])

    with _read_errors(job.path, needed):
        names = plain_header(job.path)
        if names is None or not set(needed) <= set(names):  # pandas' names and errors
            from fairlens_monitor.sources.arrowcsv import check_columns

            check_columns(job.path, needed)
        # the statistics' scipy import, on the core the parse leaves idle now and then
        threading.Thread(target=stats.warm_up, name="scipy import", daemon=True).start()
        parts = reduce_parts(job.path, needed, start, step, coded=needed)
    if progress is not None and done[1] != done[0]:
        progress(done[0])
    return parts


def _reduce_chunks(
    path: Path,
    columns: list[str],
    chunk_rows: int,
    progress: Callable[[int], None] | None,
    reduce: Callable[[pd.DataFrame], T],
    *,
    coded: Collection[str] | None = None,
) -> list[T]:
    """Read ``columns`` a chunk at a time and reduce each chunk to counts.

    A bad value's error is named with its rows and file; a file with a header and no rows is
    an error (there is nothing to measure). With ``coded`` (possibly empty), a plain CSV is
    read by pyarrow, those columns as categoricals (:func:`iter_decisions`).
    """
    tables: list[T] = []
    done = 0
    chunks = iter_decisions(path, columns, chunk_rows, fast=coded is not None, coded=coded or ())
    for chunk in chunks:
        if chunk.empty:  # a header-only CSV still yields one empty chunk
            continue
        try:
            tables.append(reduce(chunk))
        except DataError as exc:
            raise DataError(
                f"{exc} (in rows {done + 1:,}–{done + len(chunk):,} of {path.name})",
                column=exc.column,
            ) from None
        done += len(chunk)
        if progress is not None:
            progress(done)
    if not tables:
        raise DataError(f"{path.name}: no decisions to measure (the file has a header and no rows)")
    return tables
