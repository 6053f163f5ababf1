"""Groups: from decision rows to a table of counts per group, and from counts to a verdict.

simulate → **measure** → detect → alert → log. A protected attribute may have any number of
values (age bands, say) or be the intersection of two attributes (gender × age band). Rows
become group labels once (:func:`group_labels`), labels become counts with one vectorised
pass (:func:`count_groups`, ``numpy.bincount``), and everything else — impact ratios against
a reference, intervals, Holm-adjusted p-values, verdicts and the ground-truth metrics — is
computed from that small table (:func:`assess`; ground truth in ``outcomes.py``). Pure.

Groups smaller than ``min_group_share`` of the rows (NYC Local Law 144 uses 2%) are reported
as ``excluded`` with their counts, never dropped silently; missing attribute values form
their own counted group, ``(missing)``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness import stats
from fairlens_monitor.fairness.words import JOIN
from fairlens_monitor.fairness.words import MISSING as MISSING  # re-exported (tests, docs)
from fairlens_monitor.security.masking import value_forms

if TYPE_CHECKING:  # pandas loads where rows are labelled and counted, not to judge counts
    import pandas as pd

Reference = Literal["privileged", "highest"]


@dataclass(frozen=True)
class GroupSpec:
    """How to form groups and judge them (validated in ``config.py`` and the CLI)."""

    attributes: tuple[str, ...] = ("gender",)
    bands: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    reference: Reference = "privileged"
    privileged_value: str | None = "Male"
    unprivileged_value: str | None = "Female"
    threshold: float = 0.8
    alpha: float = 0.05
    confidence: float = 0.95
    min_group_size: int = 30
    min_group_share: float = 0.02
    shortfall: float | None = None  # opt-in 29 CFR 1607.4D rule (see stats.verdict)

    @property
    def attribute_name(self) -> str:
        """The attribute as stored in a reading: one column, or ``a & b``."""
        return JOIN.join(self.attributes)


@dataclass(frozen=True)
class GroupTable:
    """Counts per group; ``positives``/``true_pos``/``false_pos`` when a label is known."""

    labels: tuple[str, ...]
    applicants: np.ndarray
    approved: np.ndarray
    positives: np.ndarray | None = None
    true_pos: np.ndarray | None = None
    false_pos: np.ndarray | None = None


@dataclass(frozen=True)
class GroupResult:
    """One group of a reading. ``role`` is ``reference``, ``compared`` or ``excluded``."""

    label: str
    role: str
    applicants: int
    approved: int
    rate: float
    share: float
    comparison: stats.Comparison | None = None
    p_adjusted: float | None = None
    verdict: stats.Verdict | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Assessment:
    """A whole reading: every group, the reference, the headline group and the verdict."""

    groups: tuple[GroupResult, ...]
    reference: GroupResult
    headline: GroupResult | None
    verdict: stats.Verdict
    reason: str

    @property
    def excluded(self) -> tuple[GroupResult, ...]:
        """Groups below the minimum share, reported but not compared."""
        return tuple(g for g in self.groups if g.role == "excluded")


def group_labels(
    df: pd.DataFrame,
    spec: GroupSpec,
    *,
    where: str = "the data",
    missing_values: Collection[str] = (),
) -> pd.Series:
    """Give every row its group label (vectorised; :func:`.labels.attribute_codes`).

    Labels follow :mod:`fairlens_monitor.fairness.cells`: the same text whatever the column's dtype
    (``1``, ``1.0`` and a CSV's ``1`` are one group), so labels never depend on chunking.

    Args:
        df: one row per decision.
        spec: the attribute column(s) and numeric bands.
        where: how to name the data in errors.
        missing_values: texts that also mean "missing" (empty cells and NULLs always do).

    Returns:
        A string Series aligned with ``df``: the value (or band) of one attribute, or
        ``"a & b"`` for two; missing values are labelled ``(missing)``.

    Raises:
        DataError: as :func:`.labels.attribute_codes`.
    """
    import pandas as pd

    from fairlens_monitor.fairness.labels import attribute_codes

    codes, names = attribute_codes(
        df, spec.attributes, spec.bands, where=where, missing_values=missing_values
    )
    return pd.Series(np.array(names, dtype=object)[codes], index=df.index, dtype=object)


def count_groups(
    labels: pd.Series,
    outcome: np.ndarray,
    label: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> GroupTable:
    """Count applicants and approvals (and label outcomes) per group with ``bincount``.

    Args:
        labels: the group label of each row.
        outcome: the boolean decision of each row.
        label: the boolean ground truth of each row (e.g. repaid), or None.
        weights: how many decisions each row stands for (rows of an aggregated count
            table); None = one each.

    Returns:
        The table, groups in sorted label order.
    """
    import pandas as pd

    codes, uniques = pd.factorize(labels, sort=True)
    return tally(codes, tuple(str(u) for u in uniques), outcome, label, weights)


def tally(
    codes: np.ndarray,
    names: tuple[str, ...],
    outcome: np.ndarray,
    label: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> GroupTable:
    """Count applicants and approvals (and label outcomes) per group code with ``bincount``.

    Args:
        codes: each row's group, an index into ``names``.
        names: the group labels, in sorted order (the table's order).
        outcome: the boolean decision of each row.
        label: the boolean ground truth of each row (e.g. repaid), or None.
        weights: how many decisions each row stands for; None = one each.

    Returns:
        The table, one entry per name (a name no row has counts zero).
    """
    k = len(names)
    w = None if weights is None else np.asarray(weights, dtype=float)

    def count(mask: np.ndarray | None = None) -> np.ndarray:
        mask_w = w if mask is None else mask if w is None else mask * w
        return np.rint(np.bincount(codes, weights=mask_w, minlength=k)).astype(np.int64)

    y = np.asarray(outcome, dtype=bool)
    if label is None:
        return GroupTable(names, count(), count(y.astype(float)))
    truth = np.asarray(label, dtype=bool)
    return GroupTable(
        names,
        count(),
        count(y.astype(float)),
        count(truth.astype(float)),
        count((y & truth).astype(float)),
        count((y & ~truth).astype(float)),
    )


def assess(table: GroupTable, spec: GroupSpec) -> Assessment:
    """Compare every group with the reference group and reach the reading's verdict.

    The reference is the privileged value, or (``reference: highest``, NYC LL144) the
    included group with the highest approval rate. Groups under ``min_group_share`` are
    excluded (reported, not compared). p-values are Holm-adjusted across the compared groups
    (a fixed reference) or across all pairs of included groups (``highest``, see
    :func:`holm_all_pairs`).
    The headline group is ``unprivileged_value`` when given, else the compared group with the
    lowest ratio. The verdict is the most severe of the compared groups' verdicts, and
    ``inconclusive`` when no group could be compared.

    Args:
        table: counts per group.
        spec: reference choice, thresholds and minimum sizes.

    Returns:
        The assessment.

    Raises:
        DataError: the table is empty, or a named privileged/unprivileged value is absent.
    """
    total = int(table.applicants.sum())
    if total == 0:
        raise DataError("no decisions to measure (0 rows)")
    shares = table.applicants / total
    base = [
        GroupResult(label, "compared", int(n), int(a), stats.rate(int(a), int(n)), float(s))
        for label, n, a, s in zip(
            table.labels, table.applicants, table.approved, shares, strict=True
        )
    ]
    reference = _reference(base, spec)
    compared = [g for g in base if g.label != reference.label and g.share >= spec.min_group_share]
    comparisons = [
        stats.compare(
            g.approved,
            g.applicants,
            reference.approved,
            reference.applicants,
            confidence=spec.confidence,
        )
        for g in compared
    ]
    raw = [c.p_value for c in comparisons]
    adjusted = holm_all_pairs(compared, raw) if spec.reference == "highest" else stats.holm(raw)
    results: dict[str, GroupResult] = {}
    for g, c, p in zip(compared, comparisons, adjusted, strict=True):
        v, why = stats.verdict(
            c,
            p,
            threshold=spec.threshold,
            alpha=spec.alpha,
            min_group_size=spec.min_group_size,
            shortfall_min=spec.shortfall,
        )
        results[g.label] = GroupResult(
            g.label, "compared", g.applicants, g.approved, g.rate, g.share, c, p, v, why
        )
    ordered = []
    for g in base:
        if g.label == reference.label:
            ordered.append(
                GroupResult(g.label, "reference", g.applicants, g.approved, g.rate, g.share)
            )
        elif g.label in results:
            ordered.append(results[g.label])
        else:
            ordered.append(
                GroupResult(
                    g.label,
                    "excluded",
                    g.applicants,
                    g.approved,
                    g.rate,
                    g.share,
                    reason=excluded_reason(g.applicants, total, spec.min_group_share),
                )
            )
    headline = _headline(list(results.values()), spec)
    # Nothing compared (one group, or all others too small) shows nothing: not "ok".
    verdict = (
        stats.worst([r.verdict for r in results.values() if r.verdict])
        if results
        else "inconclusive"
    )
    reason = _reason(verdict, list(results.values()), reference)
    ref_result = next(g for g in ordered if g.role == "reference")
    return Assessment(tuple(ordered), ref_result, headline, verdict, reason)


def holm_all_pairs(
    compared: Sequence[GroupResult], against_reference: Sequence[float]
) -> list[float]:
    """Holm-adjust the comparisons with a data-chosen reference over *all* pairs of groups.

    With ``reference: highest`` the reference is the group that happened to have the
    highest rate, so "each group against the reference" is not a family fixed in advance
    and Holm over those k − 1 tests lets false findings through (about twice alpha with all
    groups truly equal). Every comparison against the chosen reference is one of the
    k(k − 1)/2 pairwise comparisons, and Holm over all of them controls the family-wise
    error of every pairwise null, whichever pair the data picks: false ``adverse``
    verdicts stay at or below alpha (``benchmarks/error_rates.py``). No resampling: at
    most k(k − 1)/2 tests of the 2×2 tables.

    Args:
        compared: the included groups other than the reference.
        against_reference: their raw p-values against the reference, in the same order.

    Returns:
        The Holm-adjusted p-values of the comparisons against the reference, in order.
    """
    among = [
        stats.difference_p_value(a.approved, a.applicants, b.approved, b.applicants)[0]
        for i, a in enumerate(compared)
        for b in compared[i + 1 :]
    ]
    return stats.holm([*against_reference, *among])[: len(against_reference)]


def excluded_reason(applicants: int, total: int, minimum: float) -> str:
    """Why a group is excluded, e.g. ``1 of 51 rows = 1.96% (< 2.00%)``.

    Shows as many decimals (up to 6) as it takes for the share to differ visibly from the
    minimum and, for a group with rows, from zero: ``2.0% (< 2.0%)`` explained nothing.

    Args:
        applicants: the group's rows.
        total: all rows of the reading.
        minimum: ``min_group_share``.

    Returns:
        The reason text.
    """
    share = applicants / total if total else 0.0
    digits = 1
    while digits < 6 and (
        f"{share:.{digits}%}" == f"{minimum:.{digits}%}"
        or (applicants and float(f"{share * 100:.{digits}f}") == 0)
    ):
        digits += 1
    return f"{applicants:,} of {total:,} rows = {share:.{digits}%} (< {minimum:.{digits}%})"


def _reference(groups: list[GroupResult], spec: GroupSpec) -> GroupResult:
    if spec.reference == "privileged":
        for g in groups:
            if g.label == spec.privileged_value:
                return g
        raise DataError(
            f"privileged value {spec.privileged_value!r} does not occur in "
            f"'{spec.attribute_name}' ({_listing([g.label for g in groups])})",
            column=spec.attribute_name,
        )
    included = [g for g in groups if g.share >= spec.min_group_share] or groups
    return max(included, key=lambda g: (g.rate, g.applicants))


def _headline(compared: list[GroupResult], spec: GroupSpec) -> GroupResult | None:
    if spec.unprivileged_value is not None:
        for g in compared:
            if g.label == spec.unprivileged_value:
                return g
        return None
    if not compared:
        return None

    def key(g: GroupResult) -> tuple[float, float]:
        ratio = g.comparison.ratio if g.comparison else None
        return (float("inf") if ratio is None else ratio, -g.applicants)

    return min(compared, key=key)


def _reason(verdict: str, compared: list[GroupResult], reference: GroupResult) -> str:
    if not compared:
        return f"no group to compare with the reference {reference.label!r}"
    worst = [g for g in compared if g.verdict == verdict]
    return "; ".join(f"{g.label}: {g.reason}" for g in worst)


def _listing(labels: Sequence[str]) -> str:
    """The groups present, for an error: their count and forms, never the values (a
    misspelt configured label is then found by comparing forms: ``'Aaaa'`` vs ``'aaaa'``)."""
    return f"{len(labels)} values, forms: {value_forms(labels)}"


def require_value(table: GroupTable, value: str, what: str, attribute: str) -> None:
    """Raise DataError unless ``value`` is one of the table's group labels."""
    if value not in table.labels:
        raise DataError(
            f"{what} {value!r} does not occur in '{attribute}' ({_listing(table.labels)})",
            column=attribute,
        )


def assess_named(table: GroupTable, spec: GroupSpec) -> Assessment:
    """Check that the named privileged and protected values occur, then :func:`assess`.

    What a reading of real data needs (a value missing from the data is usually a
    misspelt label in the config); the simulator always has both.

    Raises:
        DataError: a named value does not occur in ``table``, or as :func:`assess`.
    """
    for value, what in (
        (spec.privileged_value, "privileged value"),
        (spec.unprivileged_value, "protected value"),
    ):
        if value is not None:
            require_value(table, value, what, spec.attribute_name)
    return assess(table, spec)
