"""Measure any decision file once: the ``fairlens-monitor measure`` command's library half.

Reads a CSV (or Parquet, when ``pyarrow`` is installed) at the edge
(:mod:`fairlens_monitor.ops.file_count`: the quickest count that gives the chunked count's
result, without pandas for a plain CSV), then runs the same pure judgement the daemon runs
(:func:`fairlens_monitor.fairness.outcomes.judge_table`) and returns the statistics and
verdict as a plain report (rendered for people by
:mod:`fairlens_monitor.cli.measure_report`). Nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness.codecounts import group_table as coded_group_table
from fairlens_monitor.fairness.groups import Assessment, GroupSpec, GroupTable
from fairlens_monitor.fairness.outcomes import judge_table
from fairlens_monitor.fairness.report import to_json
from fairlens_monitor.fairness.words import missing_report
from fairlens_monitor.ops.file_count import CHUNK_ROWS, CountJob, count_job, iter_decisions


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
    score_bins: int | None = None,
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
        score_bins: equal-width bins the score is counted in (default
            :data:`fairlens_monitor.fairness.counts.DEFAULT_SCORE_BINS`).
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
    if score is not None and score_bins is None:
        from fairlens_monitor.fairness.counts import DEFAULT_SCORE_BINS

        score_bins = DEFAULT_SCORE_BINS
    job = CountJob(
        path, spec, outcome, label, chunk_rows, progress, missing_values, score, score_bins
    )
    counted = count_job(
        job,
        lambda parts: coded_group_table(parts, spec, outcome, label, missing_values=missing_values),
    )
    if isinstance(counted, GroupTable):  # a plain CSV's coded count: no frame, no pandas
        table = counted
        assessment, metrics = judge_table(table, spec)
    else:  # counted chunk by chunk: a count table (binned scores too, with a score)
        from fairlens_monitor.fairness.counts import DEFAULT_SCORE_BINS
        from fairlens_monitor.monitoring.measure import judge_counts

        bins = DEFAULT_SCORE_BINS if score_bins is None else score_bins
        table, assessment, metrics = judge_counts(counted, spec, bins)
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
        report["explanation"] = _explanation(
            path, spec, outcome, explain_by, assessment, chunk_rows, missing_values
        )
    return report


def _explanation(
    path: Path,
    spec: GroupSpec,
    outcome: str,
    explain_by: str,
    assessment: Assessment,
    chunk_rows: int,
    missing_values: Collection[str],
) -> dict[str, Any]:
    """Test ``explain_by`` as an explanation of the headline group's gap (a second pass
    over the file, keeping the two compared groups' rows)."""
    import pandas as pd

    from fairlens_monitor.fairness.cells import numeric_cells
    from fairlens_monitor.fairness.explain import analyze_feature_impact
    from fairlens_monitor.fairness.groups import group_labels
    from fairlens_monitor.fairness.metrics import numbers

    if assessment.headline is None:  # the caller checks; nothing to explain without it
        raise ValueError("an explanation needs a headline group")
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
        parts.append(chunk.assign(_group=groups, **{explain_by: feature})[groups.isin([h, ref])])
    decomposition = analyze_feature_impact(
        pd.concat(parts), "_group", h, ref, outcome, feature=explain_by
    )
    return {
        "feature": explain_by,
        "verdict": decomposition["verdict"],
        "explained_share": decomposition["explained_share"],
        "causes": decomposition["causes"],
    }
