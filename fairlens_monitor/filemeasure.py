"""Measure any decision file once: the ``fairlens-monitor measure`` command's library half.

Reads a CSV (or Parquet, when ``pyarrow`` is installed) at the edge, validates the named
columns against the file's header, then runs the same pure measurement the daemon runs
(:mod:`fairlens_monitor.groups`) and renders the statistics and verdict as lines or JSON.
Nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from fairlens_monitor.cells import missing_report, numeric_cells
from fairlens_monitor.errors import DataError
from fairlens_monitor.explain import analyze_feature_impact
from fairlens_monitor.groups import (
    GroupSpec,
    GroupTable,
    assess_named,
    group_labels,
    merge_tables,
    table_from_frame,
    to_json,
)
from fairlens_monitor.metrics import numbers
from fairlens_monitor.outcomes import included_outcome_metrics
from fairlens_monitor.sources.files import FileChunks
from fairlens_monitor.textwidth import display_width, pad, printable, wrap

CHUNK_ROWS = 500_000
LABEL_COLUMNS = 40  # the group column (20 wide) widens to the longest label up to this, then wraps


def iter_decisions(path: Path, columns: list[str],
                   chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Read only ``columns`` of a CSV or Parquet file, ``chunk_rows`` rows at a time.

    The file source's reader (:class:`~fairlens_monitor.sources.files.FileChunks`) without
    the digest, inside this command's error messages.

    Args:
        path: the file; ``.parquet``/``.pq`` is read as Parquet, anything else as CSV
            (compressed by its suffix, e.g. ``.csv.gz``).
        columns: the columns needed (checked against the header first).
        chunk_rows: rows per chunk: memory stays bounded whatever the file's size.

    Yields:
        Frames of at most ``chunk_rows`` rows (none for a file with a header only).

    Raises:
        DataError: the file is missing or unreadable (also part-way through), or a column
            is missing (named with the file).
    """
    try:
        yield from FileChunks(path, columns, chunk_rows, hashed=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path.name}: cannot read it: {exc}") from None


def count_file(path: Path, spec: GroupSpec, outcome: str, label: str | None = None, *,
               chunk_rows: int = CHUNK_ROWS,
               progress: Callable[[int], None] | None = None,
               missing_values: Collection[str] = ()) -> GroupTable:
    """Count a decision file's groups chunk by chunk (bounded memory).

    Args:
        path: CSV or Parquet file.
        spec: how rows become groups.
        outcome: the decision column.
        label: optional ground-truth column.
        chunk_rows: rows per chunk.
        progress: called with the rows read so far after each chunk.
        missing_values: texts that also mean "missing" (empty cells always do).

    Returns:
        The count table of the whole file.

    Raises:
        DataError: as :func:`iter_decisions`, or a bad value, named with its rows.
    """
    needed = list(dict.fromkeys([*spec.attributes, outcome, *filter(None, [label])]))
    tables, done = [], 0
    for chunk in iter_decisions(path, needed, chunk_rows):
        if chunk.empty:  # a header-only CSV still yields one empty chunk
            continue
        try:
            tables.append(table_from_frame(chunk, spec, outcome, label,
                                           where=f"file {path.name}",
                                           missing_values=missing_values))
        except DataError as exc:
            raise DataError(f"{exc} (in rows {done + 1:,}–{done + len(chunk):,} of "
                            f"{path.name})", column=exc.column) from None
        done += len(chunk)
        if progress is not None:
            progress(done)
    if not tables:
        raise DataError(f"{path.name}: no decisions to measure (the file has a header and "
                        "no rows)")
    return merge_tables(tables)


def measure_file(path: Path, spec: GroupSpec, outcome: str, *, label: str | None = None,
                 explain_by: str | None = None, chunk_rows: int = CHUNK_ROWS,
                 progress: Callable[[int], None] | None = None,
                 missing_values: Collection[str] = ()) -> dict[str, Any]:
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
        missing_values: texts that also mean "missing"; empty and whitespace-only cells
            (and Parquet nulls) always do, ``NA`` and the like only when listed.

    Returns:
        A JSON-ready report: file, rows, settings, ``missing_values`` (the texts treated as
        missing, ``""`` first), verdict, groups, outcome metrics and (with ``explain_by``)
        the decomposition of the gap.

    Raises:
        DataError: bad file, column or values, or a named group value that does not occur.
    """
    table = count_file(path, spec, outcome, label, chunk_rows=chunk_rows, progress=progress,
                       missing_values=missing_values)
    assessment = assess_named(table, spec)
    metrics = included_outcome_metrics(table, assessment)
    report: dict[str, Any] = {
        "file": str(path), "rows": int(table.applicants.sum()), "outcome": outcome,
        "label": label,
        "protected_attribute": spec.attribute_name,
        "settings": {"reference": spec.reference, "threshold": spec.threshold,
                     "alpha": spec.alpha, "confidence": spec.confidence,
                     "min_group_size": spec.min_group_size,
                     "min_group_share": spec.min_group_share},
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
            feature = numbers(numeric_cells(chunk[explain_by], missing_values),
                              f"column '{explain_by}' of {where}", explain_by)
            parts.append(chunk.assign(_group=groups, **{explain_by: feature})[
                groups.isin([h, ref])])
        decomposition = analyze_feature_impact(pd.concat(parts), "_group", h, ref, outcome,
                                               feature=explain_by)
        report["explanation"] = {"feature": explain_by, "verdict": decomposition["verdict"],
                                 "explained_share": decomposition["explained_share"],
                                 "causes": decomposition["causes"]}
    return report


def report_lines(report: dict[str, Any]) -> list[str]:
    """Render a :func:`measure_file` report for people (a table per group, then the verdict)."""
    names = [printable(g["group"]) for g in report["groups"]]
    width = min(max([20, *map(display_width, names)]), LABEL_COLUMNS)
    listed = [repr(v) for v in report.get("missing_values", [""]) if v]
    lines = [f"{report['file']}: {report['rows']:,} decisions, outcome '{report['outcome']}', "
             f"attribute '{report['protected_attribute']}', reference {report['reference']!r} "
             f"({report['settings']['reference']})",
             "missing values: " + ", ".join(["empty cells", *listed]),
             f"{pad('group', width)} {'role':<9} {'approved':>11} {'rate':>6} {'ratio':>6} "
             f"{'95% CI':>13} {'p (Holm)':>9} {'test':>6} {'shortfall':>9}  verdict"]
    for g, name in zip(report["groups"], names, strict=True):
        first, *more = wrap(name, width)  # a long label wraps below itself, never cut
        approved = f"{g['approved']}/{g['applicants']}"
        row = f"{pad(first, width)} {g['role']:<9} {approved:>11} {g['rate']:>6.3f}"
        if "impact_ratio" in g:
            ratio = "n/a" if g["impact_ratio"] is None else f"{g['impact_ratio']:.3f}"
            ci = ("" if g["ci_low"] is None else f"{g['ci_low']:.3f}–{g['ci_high']:.3f}")
            row += (f" {ratio:>6} {ci:>13} {g['p_adjusted']:>9.3g} {g['test']:>6} "
                    f"{g['shortfall']:>9.1f}  {g['verdict']}")
        elif g["role"] == "excluded":
            row += f"  (excluded: {g['reason']})"
        lines.append(row)
        lines.extend(more)
    lines.append(f"verdict: {report['verdict']} — {printable(report['reason'])}")
    metrics = report.get("outcome_metrics")
    if metrics:
        lines.append("ground truth ('" + str(report["label"]) + "'): " + ", ".join(
            f"{name.replace('_', ' ')} {'n/a' if v is None else f'{v:.3f}'}"
            for name, v in metrics.items()))
    if "explanation" in report:
        e = report["explanation"]
        lines.append(f"explanation by {e['feature']}: " + "; ".join(e["causes"]))
    return lines
