"""Decision counts: the contingency table every reading of a real source is measured from.

read (a file or SQL source) → **counts** → measure → detect → alert → log. A source never
hands over decision rows: a file source reduces each chunk it reads, a SQL source gets the
same shape from its ``GROUP BY``. Either way the raw columns are validated and normalised here
into one small table — group label, decision, ground truth, stratum value, and ``_n``, the
number of decisions with those values — which
:func:`fairlens_monitor.monitoring.measure.measure_counts` judges. Pure (no I/O, no clock).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness.cells import numeric_cells
from fairlens_monitor.fairness.groups import GroupSpec, GroupTable, count_groups
from fairlens_monitor.fairness.labels import attribute_codes
from fairlens_monitor.fairness.metrics import binary_outcome, examples, numbers, require_columns

GROUP = "_group"
APPROVED = "_approved"
LABEL = "_label"
STRATUM = "_stratum"
SCORE_BIN = "_score_bin"  # equal-width bin of the score on [0, 1]: 0 … bins - 1
SCORE_SUM = "_score_sum"  # the sum of the scores the row stands for (a count, like _n)
N = "_n"
SUMMED = (N, SCORE_SUM)
DEFAULT_SCORE_BINS = 100
EDGE_SLACK = 1e-9  # 0.29 · 100 = 28.999999999999996 in binary: still bin 29


def empty_counts(labelled: bool, stratified: bool, scored: bool = False) -> pd.DataFrame:
    """Return a count table with no rows (an empty window) and the usual columns."""
    columns = [
        GROUP,
        APPROVED,
        *([LABEL] if labelled else []),
        *([STRATUM] if stratified else []),
        *([SCORE_BIN] if scored else []),
        N,
        *([SCORE_SUM] if scored else []),
    ]
    return pd.DataFrame({c: pd.Series(dtype=object if c == GROUP else float) for c in columns})


def normalise(
    df: pd.DataFrame,
    spec: GroupSpec,
    outcome: str,
    *,
    label: str | None = None,
    stratum: str | None = None,
    weights: str | None = None,
    where: str = "the data",
    score: str | None = None,
    score_bins: int = DEFAULT_SCORE_BINS,
    missing_values: Collection[str] = (),
) -> pd.DataFrame:
    """Validate raw decision columns and reduce them to a count table.

    Args:
        df: decisions (one per row), or distinct values with counts in column ``weights``.
        spec: the protected attribute(s) and bands that form groups.
        outcome: the decision column (0/1, true/false, yes/no).
        label: the optional ground-truth column.
        stratum: the optional numeric column the explanation tests (e.g. credit score);
            missing values are kept as NaN (left out of the explanation only).
        weights: the count column when ``df`` is already aggregated; None = one per row.
        where: how to name the data in errors (e.g. ``file 2026-11-01.csv``).
        score: the optional model score column (numbers in [0, 1]); rows a SQL source
            already binned carry ``_score_bin`` and ``_score_sum`` instead.
        score_bins: how many equal-width bins the score is counted in.
        missing_values: texts that also mean "missing" in every column read; empty and
            whitespace-only cells and NULLs always do (:mod:`fairlens_monitor.fairness.cells`,
            whose one rule also makes the labels independent of the columns' dtypes).

    Returns:
        Columns ``_group``, ``_approved`` (bool), ``_label`` (bool, with a label),
        ``_stratum`` (float, with a stratum), ``_score_bin`` (int, with a score), ``_n``
        (decisions) and ``_score_sum`` (with a score), one row per distinct combination.

    Raises:
        DataError: a column is missing, a decision or label is missing or not binary, a
            stratum value is not a number, or a score is missing, not a number or outside
            [0, 1]; the message names the column and the count (and, except for scores,
            examples).
    """
    binned = score is not None and SCORE_BIN in df.columns
    needed = [
        outcome,
        *filter(None, [label, stratum, weights]),
        *([SCORE_BIN, SCORE_SUM] if binned else filter(None, [score])),
    ]
    require_columns(df, needed, where=where)
    w = None if weights is None else df[weights].to_numpy(dtype=float)
    miss = missing_values
    codes, names = attribute_codes(
        df, spec.attributes, spec.bands, where=where, missing_values=miss
    )
    out = {
        GROUP: codes,
        APPROVED: binary_outcome(df[outcome], outcome, weights=w, missing_values=miss),
    }
    if label:
        out[LABEL] = binary_outcome(df[label], label, "label", weights=w, missing_values=miss)
    if stratum:
        out[STRATUM] = numbers(
            numeric_cells(df[stratum], miss), f"stratum column '{stratum}' of {where}", stratum, w
        )
    if score:
        if binned:
            out[SCORE_BIN] = check_bins(df[SCORE_BIN], score, score_bins, w, where)
            out[SCORE_SUM] = df[SCORE_SUM].to_numpy(dtype=float)
        else:
            out[SCORE_BIN], out[SCORE_SUM] = bin_scores(df[score], score, score_bins, where)
    return _reduce(out, names, w)


def _reduce(
    out: dict[str, np.ndarray], names: list[str], weights: np.ndarray | None
) -> pd.DataFrame:
    """Count rows whose group is a code into ``names``: the count table, labels as texts.

    Rows are counted on the codes, never on label texts (which would be hashed once per
    row): with only the group, decision and label as keys, one ``bincount`` over a mixed-radix
    key; with a stratum or score, a ``groupby`` on the integer codes (the same sums in the
    same row order as before, so equal data still gives an equal table and digest). The few
    rows left get their labels and the canonical order of :func:`combine`.
    """
    labels = np.array(names, dtype=object)
    if STRATUM in out or SCORE_SUM in out:
        out[N] = np.ones(len(out[GROUP])) if weights is None else weights
        small = combine([pd.DataFrame(out)])
        small[GROUP] = labels[small[GROUP].to_numpy(dtype=np.int64)]
        return combine([small])
    labelled = LABEL in out
    width = 4 if labelled else 2  # decision (and label) under each group code
    key = out[GROUP] * width + out[APPROVED] * (width // 2)
    if labelled:
        key += out[LABEL]
    n = np.bincount(key, weights=weights, minlength=len(names) * width)
    cells = np.flatnonzero(n > 0)
    table = {
        GROUP: labels[cells // width],
        APPROVED: (cells // (width // 2)) % 2 == 1,
        **({LABEL: cells % 2 == 1} if labelled else {}),
        N: n[cells].astype(float),
    }
    return combine([pd.DataFrame(table)])


def bin_scores(
    values: pd.Series, column: str, bins: int, where: str = "the data"
) -> tuple[np.ndarray, np.ndarray]:
    """Put raw scores into ``bins`` equal-width bins on [0, 1] (vectorised).

    Bin ``i`` holds ``[i/bins, (i+1)/bins)``, the last also 1.0; a score within 1e-9 of a
    bin's lower edge counts in that bin, so decimal edges (0.29 with 100 bins) land where
    they read despite binary rounding. The SQL source computes the same expression.

    Args:
        values: the score column.
        column: its name, for errors.
        bins: how many bins (2 … 10,000).
        where: how to name the data in errors.

    Returns:
        ``(bin index per row, score per row as float)``.

    Raises:
        DataError: a score is missing, not a number or outside [0, 1] (the column and the
            count named, never the values).
    """
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    bad = ~((numeric >= 0) & (numeric <= 1))  # NaN (missing or not a number) is bad too
    if bad.any():
        raise DataError(
            f"score column '{column}' of {where} has {int(bad.sum())} values that "
            "are missing, not numbers or outside [0, 1]; scores must be "
            "probabilities (rescale them, or drop measurement.score)",
            column=column,
        )
    index = np.minimum(np.floor(numeric * bins + EDGE_SLACK), bins - 1).astype(np.int64)
    return index, numeric


def check_bins(
    values: pd.Series, column: str, bins: int, weights: np.ndarray | None, where: str
) -> np.ndarray:
    """Check score bins a SQL source computed (``-1`` or NULL flags a bad score).

    Raises:
        DataError: some decisions' score is missing, not a number or outside [0, 1] (the
            column and the count named).
    """
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    bad = ~((numeric >= 0) & (numeric < bins))
    if bad.any():
        count = int(bad.sum() if weights is None else weights[bad].sum())
        raise DataError(
            f"score column '{column}' of {where} has {count} values that are "
            "missing, not numbers or outside [0, 1]; scores must be "
            "probabilities (rescale them, or drop measurement.score)",
            column=column,
        )
    return np.asarray(numeric, dtype=np.int64)


def combine(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Add up count tables of disjoint decisions (e.g. the chunks of a file).

    Args:
        tables: count tables with the same columns.

    Returns:
        One count table, rows sorted by their values (so equal data gives an equal table).
    """
    whole = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    keys = [c for c in whole.columns if c not in SUMMED]
    if whole.empty:
        return whole.reset_index(drop=True)
    summed = (
        whole.groupby(keys, dropna=False, sort=True, observed=True)[
            [c for c in SUMMED if c in whole.columns]
        ]
        .sum()
        .reset_index()
    )
    return summed[summed[N] > 0].reset_index(drop=True)


def decisions(counts: pd.DataFrame) -> int:
    """Return how many decisions a count table holds."""
    return round(float(counts[N].sum())) if len(counts) else 0


def digest(counts: pd.DataFrame) -> str:
    """Return the SHA-256 of a count table in a canonical text form.

    Two readings with the same digest were measured from the same counts, so re-running a
    source's query (or re-reading its files) and comparing digests reproduces a reading.
    """
    table = counts.sort_values(
        [c for c in counts.columns if c not in SUMMED], kind="stable", na_position="last"
    )
    text = table.to_csv(index=False, lineterminator="\n", float_format="%.17g")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_timestamps(values: pd.Series, column: str, where: str) -> pd.Series:
    """Turn a timestamp column into aware UTC datetimes.

    Args:
        values: ISO 8601 text (``2026-11-23 10:00:00``, ``2026-11-23T10:00:00+01:00``) or
            datetimes; times without an offset are read as UTC.
        column: the column's name, for errors.
        where: how to name the data in errors.

    Returns:
        A ``datetime64[ns, UTC]`` Series aligned with ``values``.

    Raises:
        DataError: a value is missing or not a time (count and examples named).
    """
    if not (
        pd.api.types.is_datetime64_any_dtype(values) or isinstance(values.dtype, pd.DatetimeTZDtype)
    ):
        values = values.where(values.isna() | (values.astype(str).str.strip() != ""), None)
    if values.isna().any():
        raise DataError(
            f"timestamp column '{column}' of {where} has "
            f"{int(values.isna().sum())} missing values; every decision needs "
            "a time to fall in a window",
            column=column,
        )
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(UTC)
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.tz_localize(UTC)
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna()
    if bad.any():
        raise DataError(
            f"timestamp column '{column}' of {where} has {int(bad.sum())} values "
            f"that are not ISO 8601 times (forms: {examples(values[bad])})",
            column=column,
        )
    return parsed


def in_window(times: pd.Series, start: datetime, end: datetime) -> np.ndarray:
    """Return which times fall in ``[start, end)`` (both aware)."""
    lo, hi = pd.Timestamp(start).tz_convert(UTC), pd.Timestamp(end).tz_convert(UTC)
    return np.asarray(((times >= lo) & (times < hi)).to_numpy(dtype=bool), dtype=bool)


def group_table(counts: pd.DataFrame) -> GroupTable:
    """Sum a count table up per group: the one way from counted cells to the groups judged.

    The daemon (a source's batch), ``measure`` (a file, chunk by chunk) and the tests all
    count into this module's table first and come here for the per-group totals.

    Args:
        counts: a count table (``_group``, ``_approved``, ``_n``; ``_label`` when the
            ground truth is known).

    Returns:
        Applicants and approvals (and positives, true and false positives with a label)
        per group, in sorted label order.
    """
    truth = counts[LABEL].to_numpy(dtype=bool) if LABEL in counts else None
    return count_groups(
        counts[GROUP],
        counts[APPROVED].to_numpy(dtype=bool),
        truth,
        weights=counts[N].to_numpy(dtype=float),
    )
