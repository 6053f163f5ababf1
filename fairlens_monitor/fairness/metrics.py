"""Measure: turn decisions into group counts and counts into fairness metrics.

simulate → **measure** → detect → alert → log. Every metric here is a function of a small
table of counts (applicants and approvals per group), built with vectorised pandas/numpy
operations — never a Python loop over rows. The functions are pure: no I/O, no clock.

Definitions (for the unprivileged group *u* and the privileged group *p*):
    rate(g) = approvals(g) / applicants(g)           (0 when the group is empty)
    DIR     = rate(u) / rate(p)                      (None when rate(p) == 0)
    gap     = |rate(p) - rate(u)|
Ratios and differences are computed from the integer counts with one final division, so a
DIR of exactly 0.8 is exactly 0.8 and sits on the right side of the four-fifths line.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness.cells import text_codes
from fairlens_monitor.fairness.words import FALSE_WORDS, TRUE_WORDS
from fairlens_monitor.security.masking import value_forms

DEFAULT_DIR_THRESHOLD = 0.8
DEFAULT_GAP_THRESHOLD = 0.2


@dataclass(frozen=True)
class GroupCounts:
    """Applicants and approvals of one group."""

    applicants: int
    approved: int

    def __post_init__(self) -> None:
        if not 0 <= self.approved <= self.applicants:
            raise ValueError(
                f"need 0 <= approved <= applicants, got {self.approved} of {self.applicants}"
            )

    @property
    def rate(self) -> float:
        """Approval rate; 0.0 for an empty group."""
        return self.approved / self.applicants if self.applicants else 0.0


@dataclass(frozen=True)
class DisparateImpact:
    """The two-group reading: rates, DIR, gap and the threshold flags."""

    unprivileged: GroupCounts
    privileged: GroupCounts
    dir: float | None
    gap: float
    dir_alert: bool
    gap_alert: bool
    reason: str | None
    message: str | None


def require_columns(
    df: pd.DataFrame | Iterable[Any], columns: list[str], *, where: str = "the data"
) -> None:
    """Check that ``df`` has every column in ``columns``.

    Args:
        df: the decisions, or just the column names a file's header declares.
        columns: column names that must be present.
        where: how to name the data in the error (e.g. a file name).

    Raises:
        DataError: naming the first missing column and how many columns there are — never
            the names found: a file without a header row has its first row of data there.
    """
    names = list(df.columns if isinstance(df, pd.DataFrame) else df)
    for column in columns:
        if column not in names:
            raise DataError(missing_column(where, column, len(names)), column=column)


def missing_column(where: str, column: str, n_columns: int) -> str:
    """The message for a configured column the data lacks: its name and the column count,
    not the names that are there (they may be a row of data; see :func:`require_columns`)."""
    return (
        f"{where} has no column '{column}' ({n_columns} columns found, names not shown "
        "as they may be data, e.g. a file without a header row; names must match "
        "exactly, case included)"
    )


def binary_outcome(
    values: pd.Series,
    column: str,
    role: str = "outcome",
    weights: np.ndarray | None = None,
    *,
    missing_values: Collection[str] = (),
) -> np.ndarray:
    """Convert an outcome column to a boolean array.

    Accepts booleans, the numbers 0 and 1 (also as text in any numeric form: ``1``,
    ``1.0``), and the words true/false, yes/no, y/n, t/f in any case — the same answer
    whatever dtype a chunk of the column was read as.

    Args:
        values: the outcome column.
        column: its name, for error messages.
        role: what the column is, for error messages (``outcome`` or ``label``).
        weights: decisions per row when ``values`` are distinct values with counts (a
            source's ``GROUP BY``); errors then count decisions, not rows.
        missing_values: texts that also mean "missing" (empty and whitespace-only cells
            and NULLs always do; see :mod:`fairlens_monitor.fairness.cells`).

    Returns:
        A numpy bool array of the same length.

    Raises:
        DataError: on missing values or values that are not binary, with their count and up
            to five of their forms (never the values).
    """

    def count(mask: np.ndarray) -> int:
        return int(mask.sum() if weights is None else np.asarray(weights)[mask].sum())

    typed = pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    codes, texts = (None, []) if typed else text_codes(values, missing_values)
    missing = values.isna().to_numpy() if codes is None else codes < 0
    if missing.any():
        article = "an" if role[0] in "aeiou" else "a"
        raise DataError(
            f"{role} column '{column}' has {count(missing)} missing "
            f"values; every decision needs {article} {role}",
            column=column,
        )
    if pd.api.types.is_bool_dtype(values):
        return np.asarray(values.to_numpy(dtype=bool), dtype=bool)
    if codes is None:
        array = values.to_numpy()
        bad = ~np.isin(array, (0, 1))
        if bad.any():
            _raise_not_binary(column, pd.Series(array[bad]), role, count(bad))
        return np.asarray(array, dtype=bool)
    words = pd.Series(texts, dtype=object).str.lower()  # decided once per distinct text
    is_true = np.array(words.isin(TRUE_WORDS), dtype=bool)  # a writable copy
    bad = ~(is_true | words.isin(FALSE_WORDS).to_numpy())
    if bad.any():  # numeric text such as 1.0 or 0.00: the number decides, as for a float
        number = pd.to_numeric(words[bad], errors="coerce").to_numpy(dtype=float)
        is_true[bad] = number == 1
        bad[bad] = ~np.isin(number, (0.0, 1.0))
    if bad[codes].any():
        _raise_not_binary(column, values[bad[codes]], role, count(bad[codes]))
    return np.asarray(is_true[codes], dtype=bool)


def examples(values: pd.Series, limit: int = 5) -> str:
    """Up to ``limit`` distinct values for an error message, as their forms only (``'9'``,
    ``'aaaa'``; :func:`fairlens_monitor.security.masking.value_forms`): a cell's content never
    reaches an error, the log or the audit trail."""
    return value_forms(pd.unique(values)[: limit * 4], limit)


def numbers(
    values: pd.Series, describe: str, column: str, weights: np.ndarray | None = None
) -> np.ndarray:
    """Convert a numeric column to floats, missing values as NaN.

    Args:
        values: the column.
        describe: how the error starts, e.g. ``stratum column 'score' of file x.csv``.
        column: its name, recorded on the error.
        weights: decisions per row when ``values`` are distinct values with counts.

    Returns:
        A float array aligned with ``values``.

    Raises:
        DataError: a present value is not a number, with the count and the values' forms.
    """
    if pd.api.types.is_numeric_dtype(values):
        numeric = pd.to_numeric(values, errors="coerce")
        bad = (numeric.isna() & values.notna()).to_numpy()
    else:  # text: parse each distinct value once
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        parsed = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").to_numpy(
            dtype=float
        )
        numeric = pd.Series(np.append(parsed, np.nan)[codes], index=values.index)
        bad = (codes >= 0) & np.append(np.isnan(parsed), False)[codes]
    if bad.any():
        count = int(bad.sum() if weights is None else np.asarray(weights)[bad].sum())
        raise DataError(
            f"{describe} has {count} values that are not numbers (forms: "
            f"{examples(values[bad])}); if they mark missing values, list them "
            "in source.missing_values (measure: --missing-value)",
            column=column,
        )
    return np.asarray(numeric.to_numpy(dtype=float), dtype=float)


def _raise_not_binary(column: str, bad: pd.Series, role: str, n_bad: int) -> None:
    raise DataError(
        f"{role} column '{column}' has {n_bad} values that are not binary "
        f"(forms: {examples(bad)}); expected 0/1, true/false or yes/no",
        column=column,
    )


def group_counts(groups: pd.Series, outcome: np.ndarray, value: Any) -> GroupCounts:
    """Count applicants and approvals of the rows whose group equals ``value``.

    Args:
        groups: the protected-attribute column.
        outcome: boolean outcomes aligned with ``groups``.
        value: the group to count.

    Returns:
        The group's counts (zero counts when the value does not occur).
    """
    mask = (groups == value).to_numpy(dtype=bool)
    return GroupCounts(applicants=int(mask.sum()), approved=int(outcome[mask].sum()))


def disparate_impact(
    unprivileged: GroupCounts,
    privileged: GroupCounts,
    *,
    dir_threshold: float = DEFAULT_DIR_THRESHOLD,
    gap_threshold: float = DEFAULT_GAP_THRESHOLD,
    unprivileged_name: str = "unprivileged",
    privileged_name: str = "privileged",
) -> DisparateImpact:
    """Compute DIR, gap and threshold flags from two groups' counts.

    Args:
        unprivileged: counts of the protected (unprivileged) group.
        privileged: counts of the privileged group.
        dir_threshold: DIR below this raises ``dir_alert`` (four-fifths rule: 0.8).
        gap_threshold: a gap above this raises ``gap_alert``.
        unprivileged_name: how messages name the unprivileged group.
        privileged_name: how messages name the privileged group.

    Returns:
        The reading. ``dir`` is None (reason ``male_rate_zero``) when the privileged rate is 0;
        ``dir_alert`` is then True, since no fairness can be shown.
    """
    u, p = unprivileged, privileged
    notes = [
        f"no rows for the {name} group; its rate is taken as 0"
        for name, g in ((unprivileged_name, u), (privileged_name, p))
        if g.applicants == 0
    ]
    reason = None
    ratio: float | None
    if p.approved == 0:
        ratio = None
        reason = "male_rate_zero"
        notes.append(f"{privileged_name} approval rate is zero: DIR is not computable")
    else:
        ratio = (u.approved * p.applicants) / (u.applicants * p.approved) if u.applicants else 0.0
    if u.applicants and p.applicants:
        gap = abs(p.approved * u.applicants - u.approved * p.applicants) / (
            u.applicants * p.applicants
        )
    else:
        gap = abs(p.rate - u.rate)
    return DisparateImpact(
        unprivileged=u,
        privileged=p,
        dir=ratio,
        gap=gap,
        dir_alert=ratio is None or ratio < dir_threshold,
        gap_alert=gap > gap_threshold,
        reason=reason,
        message="; ".join(notes) or None,
    )


def calculate_disparate_impact_ratio(
    df: pd.DataFrame,
    protected_attribute: str = "gender",
    protected_value: Any = "Female",
    privileged_value: Any = "Male",
    outcome: str = "approved",
    *,
    dir_threshold: float = DEFAULT_DIR_THRESHOLD,
    gap_threshold: float = DEFAULT_GAP_THRESHOLD,
) -> dict[str, Any]:
    """Measure the Disparate Impact Ratio of a frame of decisions (the original API).

    Args:
        df: one row per decision.
        protected_attribute: column holding the group.
        protected_value: the unprivileged group's value (reported as ``female_*``).
        privileged_value: the privileged group's value (reported as ``male_*``).
        outcome: column holding the decision (bool, 0/1 or yes/no words).
        dir_threshold: DIR below this sets ``dir_alert``.
        gap_threshold: a gap above this sets ``gap_alert``.

    Returns:
        ``{"female_rate", "male_rate", "dir", "dir_alert", "gap", "gap_alert", "reason",
        "message", "details"}``; ``details`` holds both groups' applicant and approval counts.

    Raises:
        DataError: a column is missing or the outcome is not binary.
    """
    require_columns(df, [protected_attribute, outcome])
    y = binary_outcome(df[outcome], outcome)
    groups = df[protected_attribute]
    reading = disparate_impact(
        group_counts(groups, y, protected_value),
        group_counts(groups, y, privileged_value),
        dir_threshold=dir_threshold,
        gap_threshold=gap_threshold,
        unprivileged_name=f"{protected_attribute} == {protected_value!r}",
        privileged_name=f"{protected_attribute} == {privileged_value!r}",
    )
    return reading_to_dict(
        reading,
        protected_attribute=protected_attribute,
        protected_value=protected_value,
        privileged_value=privileged_value,
        outcome=outcome,
    )


def reading_to_dict(
    reading: DisparateImpact,
    *,
    protected_attribute: str,
    protected_value: Any,
    privileged_value: Any,
    outcome: str,
) -> dict[str, Any]:
    """Render a reading in the original API's dictionary shape.

    Args:
        reading: the computed reading.
        protected_attribute: column name, recorded in ``details``.
        protected_value: unprivileged value, recorded in ``details``.
        privileged_value: privileged value, recorded in ``details``.
        outcome: outcome column, recorded in ``details``.

    Returns:
        A JSON-serialisable dict (see :func:`calculate_disparate_impact_ratio`).
    """
    u, p = reading.unprivileged, reading.privileged
    return {
        "female_rate": u.rate,
        "male_rate": p.rate,
        "dir": reading.dir,
        "dir_alert": reading.dir_alert,
        "gap": reading.gap,
        "gap_alert": reading.gap_alert,
        "reason": reading.reason,
        "message": reading.message,
        "details": {
            "protected_attribute": protected_attribute,
            "protected_value": _plain(protected_value),
            "privileged_value": _plain(privileged_value),
            "outcome": outcome,
            "female_count": u.applicants,
            "female_approved": u.approved,
            "male_count": p.applicants,
            "male_approved": p.approved,
        },
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
