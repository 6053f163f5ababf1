"""Measure any decision file once: the ``fairlens-monitor measure`` command's library half.

Reads a CSV (or Parquet, when ``pyarrow`` is installed) at the edge, validates the named
columns against the file's header, then runs the same pure measurement the daemon runs
(:mod:`fairlens_monitor.fairness.groups`) and returns the statistics and verdict as a plain
report (rendered for people by :mod:`fairlens_monitor.cli.measure_report`). Nothing is stored.

A plain CSV (no banded attribute, no score) is cut into one byte range per core, each parsed
by its own pyarrow reader with the group, decision and label columns dictionary-encoded
(:mod:`fairlens_monitor.sources.csvparts`), and counted on those codes in the reading
threads (:mod:`fairlens_monitor.fairness.codecounts`): no frame is built. A value that count
cannot take (a missing or non-binary decision, a personal-looking group) sends the file to
the chunked count (pyarrow's streaming reader in frames of ``chunk_rows``,
:mod:`fairlens_monitor.sources.arrowcsv`), whose error names the rows; a file pyarrow refuses
is read again with the pandas reader. So the counts and errors are the pandas reader's in
every case.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness import counts as count_table
from fairlens_monitor.fairness import stats
from fairlens_monitor.fairness.cells import missing_report, numeric_cells
from fairlens_monitor.fairness.codecounts import CodedCounts, NeedsRowDetail
from fairlens_monitor.fairness.codecounts import count_table as coded_table
from fairlens_monitor.fairness.explain import analyze_feature_impact
from fairlens_monitor.fairness.groups import (
    GroupSpec,
    group_labels,
)
from fairlens_monitor.fairness.metrics import numbers
from fairlens_monitor.fairness.report import to_json
from fairlens_monitor.monitoring.measure import judge_counts
from fairlens_monitor.security.masking import quoted_redacted
from fairlens_monitor.sources.arrowcsv import (
    FastReadRefused,
    arrow_chunks,
    check_columns,
    readable,
)
from fairlens_monitor.sources.csvparts import reduce_parts
from fairlens_monitor.sources.files import FileChunks

if TYPE_CHECKING:
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
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(
            f"{path.name}: cannot read it: {quoted_redacted(str(exc), [*columns, 'utf-8'])}"
        ) from None


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
    score_bins: int = count_table.DEFAULT_SCORE_BINS,
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
        score_bins: equal-width bins the score is counted in.

    Returns:
        The count table of the whole file (with ``_score_bin``/``_score_sum`` when scored).

    Raises:
        DataError: as :func:`iter_decisions`, or a bad value, named with its rows; a score
            missing, not a number or outside [0, 1].
    """
    needed = list(dict.fromkeys([*spec.attributes, outcome, *filter(None, [label, score])]))

    def reduce(chunk: pd.DataFrame) -> pd.DataFrame:
        return count_table.normalise(
            chunk,
            spec,
            outcome,
            label=label,
            where=f"file {path.name}",
            score=score,
            score_bins=score_bins,
            missing_values=missing_values,
        )

    coded = [*spec.attributes, outcome, *filter(None, [label])]  # few distinct values
    try:
        if readable(path) and score is None and not set(spec.attributes) & set(spec.bands):
            try:
                return _count_coded(
                    path, spec, outcome, label, chunk_rows, progress, missing_values
                )
            except NeedsRowDetail:  # a bad value: the chunked count names its rows
                pass
        tables = _reduce_chunks(path, needed, chunk_rows, progress, reduce, coded=coded)
    except FastReadRefused:  # e.g. a short row pandas reads as missing cells: its way
        tables = _reduce_chunks(path, needed, chunk_rows, progress, reduce)
    return count_table.combine(tables)


def _count_coded(
    path: Path,
    spec: GroupSpec,
    outcome: str,
    label: str | None,
    chunk_rows: int,
    progress: Callable[[int], None] | None,
    missing_values: Collection[str],
) -> pd.DataFrame:
    """Count a plain CSV on its parser's dictionary codes, one byte range per core.

    ``progress`` is called with the rows counted so far each time another ``chunk_rows``
    are done (from the reading threads), and once with the total.

    Raises:
        DataError: the header is too long or wide or lacks a column; the file is unreadable.
        FastReadRefused: pyarrow refused the file (read it with pandas).
        NeedsRowDetail: a value the chunked count would reject, or no rows (count it so).
    """
    needed = list(dict.fromkeys([*spec.attributes, outcome, *filter(None, [label])]))
    lock = threading.Lock()
    done = [0, 0]  # rows counted, rows last reported

    def start() -> CodedCounts:
        return CodedCounts([*spec.attributes, outcome, *filter(None, [label])])

    def step(counts: CodedCounts, batch: pa.RecordBatch) -> None:
        arrays = [batch.column(name) for name in counts.columns]
        if any(a.null_count for a in arrays):  # not with these options; never guess
            raise NeedsRowDetail
        counts.add(
            [a.dictionary.to_pylist() for a in arrays],
            [a.indices.to_numpy() for a in arrays],
        )
        if progress is not None:
            with lock:
                done[0] += batch.num_rows
                if done[0] - done[1] >= chunk_rows:
                    done[1] = done[0]
                    progress(done[0])

    with _read_errors(path, needed):
        check_columns(path, needed)
        # the statistics' scipy import, on the core the parse leaves idle now and then
        threading.Thread(target=stats.warm_up, name="scipy import", daemon=True).start()
        parts = reduce_parts(path, needed, start, step, coded=needed)
    table = coded_table(parts, spec, outcome, label, missing_values=missing_values)
    if progress is not None and done[1] != done[0]:
        progress(done[0])
    return table


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


def measure_file(
    path: Path,
    spec: GroupSpec,
    outcome: str,
    *,
    label: str | None = None,
    explain_by: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
    score: str | None = None,
    score_bins: int = count_table.DEFAULT_SCORE_BINS,
    missing_values: Collection[str] = (),
) -> dict[str, Any]:
    """Measure a decision file once.

    Args:
        path: CSV or Parquet file, one row per decision.
        spec: groups, reference and thresholds.
        outcome: the decision column (0/1, true/false, yes/no in any case).
        label: optional ground-truth column (e.g. repaid) for the outcome metrics.
        explain_by: optional numeric column to test as an explanation of the gap (this one
            needs the two compared groups' rows in memory: quantile bands are global).
        chunk_rows: rows read at a time; the counts never need more.
        progress: called with the rows read so far.
        score: optional model score column (in [0, 1]) for per-group AUC and calibration
            gap; needs ``label``.
        score_bins: equal-width bins the score is counted in.
        missing_values: texts that also mean "missing"; empty and whitespace-only cells
            (and Parquet nulls) always do, ``NA`` and the like only when listed.

    Returns:
        A JSON-ready report: file, rows, settings, ``missing_values`` (the texts treated as
        missing, ``""`` first), verdict, groups, outcome metrics and (with ``explain_by``)
        the decomposition of the gap.

    Raises:
        DataError: bad file, column or values, or a named group value that does not occur.
        ValueError: ``score`` without ``label``.
    """
    if path.exists() and not path.is_file():  # a FIFO would block for ever, a device never end
        raise DataError(
            f"{path.name}: not a regular file (a folder, FIFO or device); give a "
            "CSV or Parquet decision file"
        )
    if score is not None and label is None:
        raise ValueError(
            "a score needs a label: AUC and calibration compare the score with the true outcome"
        )
    counts = count_file(
        path,
        spec,
        outcome,
        label,
        chunk_rows=chunk_rows,
        progress=progress,
        missing_values=missing_values,
        score=score,
        score_bins=score_bins,
    )
    table, assessment, metrics = judge_counts(counts, spec, score_bins)
    report: dict[str, Any] = {
        "file": str(path),
        "rows": int(table.applicants.sum()),
        "outcome": outcome,
        "label": label,
        **({"score": score, "score_bins": score_bins} if score else {}),
        "protected_attribute": spec.attribute_name,
        "settings": {
            "reference": spec.reference,
            "threshold": spec.threshold,
            "alpha": spec.alpha,
            "confidence": spec.confidence,
            "min_group_size": spec.min_group_size,
            "min_group_share": spec.min_group_share,
            "shortfall": spec.shortfall,
        },
        "missing_values": missing_report(missing_values),
        **to_json(assessment, metrics),
    }
    if explain_by and assessment.headline is not None:
        h, ref = assessment.headline.label, assessment.reference.label
        columns = list(dict.fromkeys([*spec.attributes, outcome, explain_by]))
        parts = []
        for chunk in iter_decisions(path, columns, chunk_rows):
            where = f"file {path.name}"
            groups = group_labels(chunk, spec, where=where, missing_values=missing_values)
            feature = numbers(
                numeric_cells(chunk[explain_by], missing_values),
                f"column '{explain_by}' of {where}",
                explain_by,
            )
            parts.append(
                chunk.assign(_group=groups, **{explain_by: feature})[groups.isin([h, ref])]
            )
        decomposition = analyze_feature_impact(
            pd.concat(parts), "_group", h, ref, outcome, feature=explain_by
        )
        report["explanation"] = {
            "feature": explain_by,
            "verdict": decomposition["verdict"],
            "explained_share": decomposition["explained_share"],
            "causes": decomposition["causes"],
        }
    return report
