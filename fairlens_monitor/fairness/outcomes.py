"""Ground-truth fairness metrics from a count table (when the true outcome is known).

simulate → **measure** → detect → alert → log. Demographic parity, equal opportunity and
equalized odds, computed from the per-group counts of :mod:`fairlens_monitor.fairness.groups` with
fairlearn's definitions (fairlearn is the tests' oracle, not a dependency). Pure.

Per group, the error rates peers report (fairlearn, AIF360, Aequitas): true/false positive
and negative rates, precision (predictive parity), false discovery and false omission rates;
and for every compared group their difference and ratio against the reference group
(AIF360's sign: group minus reference, group over reference), the equal opportunity ratio
(TPR ratio) and the average odds difference, each with a closed-form 95 % interval from
:mod:`fairlens_monitor.fairness.intervals`. Unlike the five fairlearn-compatible summary metrics
(which, as fairlearn does, treat a rate with an empty denominator as 0), a rate whose
denominator is empty is **None** here, and so is every difference or ratio built on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fairlens_monitor.fairness import intervals, stats
from fairlens_monitor.fairness.groups import Assessment, GroupSpec, GroupTable, assess_named

# Each rate as (numerator, denominator) names of the confusion counts below.
RATES: dict[str, tuple[str, str]] = {
    "tpr": ("true_pos", "positives"),
    "fpr": ("false_pos", "negatives"),
    "fnr": ("false_neg", "positives"),
    "precision": ("true_pos", "predicted_pos"),
    "fdr": ("false_pos", "predicted_pos"),
    "for": ("false_neg", "predicted_neg"),
}
Bounds = tuple[float, float] | None


@dataclass(frozen=True)
class RateComparison:
    """One rate of a group against the reference's: difference and ratio, with intervals.

    ``difference`` = group − reference (Newcombe interval); ``ratio`` = group / reference
    (Katz log interval). None where undefined: a rate with an empty denominator, a ratio
    whose reference rate is 0, a log interval with a zero count.
    """

    difference: float | None
    difference_ci: Bounds
    ratio: float | None
    ratio_ci: Bounds


@dataclass(frozen=True)
class GroupErrorRates:
    """A group's confusion counts, its error rates, and (compared groups) its comparisons.

    ``rates`` maps ``tpr``, ``fpr``, ``fnr``, ``precision``, ``fdr``, ``for`` to the rate or
    None; ``comparisons`` maps the same names and ``average_odds`` (difference only) to a
    :class:`RateComparison` — empty for the reference and excluded groups.
    """

    label: str
    counts: Mapping[str, int]
    rates: Mapping[str, float | None]
    comparisons: Mapping[str, RateComparison] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data: the counts, the rates and ``vs_reference`` (if compared)."""
        out: dict[str, Any] = {**self.counts, **self.rates}
        if self.comparisons:
            out["vs_reference"] = {
                name: {
                    "difference": c.difference,
                    "difference_ci": _listed(c.difference_ci),
                    "ratio": c.ratio,
                    "ratio_ci": _listed(c.ratio_ci),
                }
                for name, c in self.comparisons.items()
            }
        return out


@dataclass(frozen=True)
class OutcomeMetrics:
    """Ground-truth fairness metrics over the included groups (fairlearn's definitions).

    A value is None where fairlearn's is NaN (a ratio whose largest group rate is 0).
    """

    demographic_parity_difference: float
    demographic_parity_ratio: float | None
    equal_opportunity_difference: float
    equalized_odds_difference: float
    equalized_odds_ratio: float | None
    groups: tuple[GroupErrorRates, ...] = ()
    extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def group_json(self, label: str) -> dict[str, Any]:
        """The ``ground_truth`` entry of one group in a reading's JSON (empty if unknown).

        Args:
            label: the group's label.

        Returns:
            ``{"ground_truth": {...}}`` with the group's error rates, comparisons and any
            ``extra`` per-group values (score metrics), or ``{}``.
        """
        doc: dict[str, Any] = {}
        for g in self.groups:
            if g.label == label:
                doc.update(g.to_json())
        doc.update(self.extra.get(label, {}))
        return {"ground_truth": doc} if doc else {}


def outcome_metrics(table: GroupTable, include: Sequence[str] | None = None) -> OutcomeMetrics:
    """Demographic parity, equal opportunity and equalized odds from the count table.

    Equal to ``fairlearn.metrics`` (``demographic_parity_difference``/``_ratio``,
    ``equal_opportunity_difference``, ``equalized_odds_difference``/``_ratio`` with their
    defaults) on the rows the table was counted from (tested with Hypothesis). As in
    fairlearn, a group with no positive (negative) labels has a true (false) positive rate of
    0, and when no group has a false positive the equalized odds ratio is the true positive
    rate ratio alone.

    Args:
        table: counts with ``positives``/``true_pos``/``false_pos``.
        include: labels of the groups to use (default: all).

    Returns:
        The metrics.

    Raises:
        ValueError: the table has no label counts or no group is included.
    """
    if table.positives is None or table.true_pos is None or table.false_pos is None:
        raise ValueError("outcome metrics need a ground-truth label column")
    keep = np.array([include is None or lab in include for lab in table.labels], dtype=bool)
    if not keep.any():
        raise ValueError("no group to compute outcome metrics over")
    n, a = table.applicants[keep], table.approved[keep]
    pos, tp, fp = table.positives[keep], table.true_pos[keep], table.false_pos[keep]
    neg = n - pos
    selection = a / n
    tpr = np.divide(tp, pos, out=np.zeros(len(n)), where=pos > 0)
    fpr = np.divide(fp, neg, out=np.zeros(len(n)), where=neg > 0)
    tpr_diff, fpr_diff = float(np.ptp(tpr)), float(np.ptp(fpr))
    tpr_ratio, fpr_ratio = _min_max_ratio(tpr), _min_max_ratio(fpr)
    return OutcomeMetrics(
        demographic_parity_difference=float(np.ptp(selection)),
        demographic_parity_ratio=_min_max_ratio(selection),
        equal_opportunity_difference=tpr_diff,
        equalized_odds_difference=max(tpr_diff, fpr_diff),
        equalized_odds_ratio=(
            tpr_ratio if tpr_ratio is None or fpr_ratio is None else min(tpr_ratio, fpr_ratio)
        ),
    )


def included_outcome_metrics(
    table: GroupTable, assessment: Assessment, confidence: float = 0.95
) -> OutcomeMetrics | None:
    """The ground-truth metrics over the groups the assessment did not exclude.

    The summary metrics use the included groups; every group gets its error rates, and every
    compared group its comparisons with the reference (:func:`error_rates`).

    Args:
        table: the counts the assessment was made from.
        assessment: which group is the reference and which are compared or excluded.
        confidence: the intervals' two-sided level.

    Returns:
        The metrics, or None when the table carries no label counts.
    """
    if table.positives is None:
        return None
    summary = outcome_metrics(table, [g.label for g in assessment.groups if g.role != "excluded"])
    compared = [g.label for g in assessment.groups if g.role == "compared"]
    groups = error_rates(table, assessment.reference.label, compared, confidence)
    return replace(summary, groups=groups)


def judge_table(table: GroupTable, spec: GroupSpec) -> tuple[Assessment, OutcomeMetrics | None]:
    """Judge a per-group table: the verdict, then the ground-truth metrics of its groups.

    The one step from per-group counts to a verdict, for the daemon's count tables
    (:func:`fairlens_monitor.monitoring.measure.judge_counts`) and ``measure``'s coded count.

    Args:
        table: applicants and approvals per group (label counts when the truth is known).
        spec: how the groups are judged.

    Returns:
        ``(assessment, outcome metrics or None without label counts)``.

    Raises:
        DataError: the privileged or the named protected value does not occur.
    """
    assessment = assess_named(table, spec)
    return assessment, included_outcome_metrics(table, assessment, spec.confidence)


def error_rates(
    table: GroupTable, reference: str, compared: Sequence[str], confidence: float = 0.95
) -> tuple[GroupErrorRates, ...]:
    """Every group's error rates, and the compared groups' comparisons with the reference.

    Definitions (AIF360's ``ClassificationMetric``; fairlearn's rates where they exist):
    TPR = TP/P, FPR = FP/N, FNR = FN/P, precision = TP/(TP+FP), FDR = FP/(TP+FP),
    FOR = FN/(FN+TN); a difference is group − reference, a ratio group / reference; the
    average odds difference is ((FPR_g − FPR_r) + (TPR_g − TPR_r)) / 2. Intervals: Newcombe
    for differences, MOVER-R Clopper–Pearson for ratios (:func:`stats.ratio_interval`, the
    DIR's interval), MOVER sum of the two Newcombe intervals (halved)
    for the average odds difference. Vectorised over the groups.

    Args:
        table: counts with ``positives``/``true_pos``/``false_pos``.
        reference: the reference group's label.
        compared: the labels of the groups to compare with it.
        confidence: the intervals' two-sided level.

    Returns:
        One entry per group of ``table``, in its order.

    Raises:
        ValueError: the table has no label counts, or ``reference`` is not one of its groups.
    """
    if table.positives is None or table.true_pos is None or table.false_pos is None:
        raise ValueError("error rates need a ground-truth label column")
    if reference not in table.labels:
        raise ValueError(f"reference group {reference!r} is not in the table")
    n, pos, tp, fp = table.applicants, table.positives, table.true_pos, table.false_pos
    counts = {
        "positives": pos,
        "negatives": n - pos,
        "true_pos": tp,
        "false_pos": fp,
        "false_neg": pos - tp,
        "true_neg": n - pos - fp,
        "predicted_pos": tp + fp,
        "predicted_neg": n - tp - fp,
    }
    r = table.labels.index(reference)
    # One (rate × group) matrix: every interval is computed once for all rates and groups.
    x = np.stack([counts[num] for num, _ in RATES.values()]).astype(float)
    m = np.stack([counts[den] for _, den in RATES.values()]).astype(float)
    xr, mr = x[:, r : r + 1], m[:, r : r + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(m > 0, x / m, np.nan)
        ratio = np.where(rate[:, r : r + 1] > 0, rate / rate[:, r : r + 1], np.nan)
    diff = rate - rate[:, r : r + 1]
    d_low, d_high = intervals.newcombe(x, m, xr, mr, confidence)
    q_low, q_high = stats.ratio_interval(x, m, xr, mr, confidence=confidence)
    q_high = np.where(np.isinf(q_high), np.nan, q_high)  # reference rate 0: ratio undefined
    t, f = list(RATES).index("tpr"), list(RATES).index("fpr")
    a_low, a_high = intervals.mover_sum(
        (diff[f], diff[t]), (d_low[f], d_high[f]), (d_low[t], d_high[t])
    )
    none = np.full(len(n), np.nan)  # the average odds difference has no ratio
    columns = [
        np.vstack([diff, (diff[f] + diff[t]) / 2]),
        np.vstack([d_low, a_low / 2]),
        np.vstack([d_high, a_high / 2]),
        np.vstack([ratio, none]),
        np.vstack([q_low, none]),
        np.vstack([q_high, none]),
    ]
    # NaN → None once, then plain Python per group (k small objects, no per-row work).
    d, dl, dh, q, ql, qh = (
        [[None if v != v else v for v in row] for row in a.tolist()] for a in columns
    )
    rates = [[None if v != v else v for v in row] for row in rate.tolist()]
    names = [*RATES, "average_odds"]
    wanted = set(compared) - {reference}
    plain = {k: v.tolist() for k, v in counts.items()}

    def bounds(low: float | None, high: float | None) -> Bounds:
        return None if low is None or high is None else (low, high)

    return tuple(
        GroupErrorRates(
            label,
            {k: int(v[i]) for k, v in plain.items()},
            {name: rates[j][i] for j, name in enumerate(RATES)},
            {
                name: RateComparison(
                    d[j][i], bounds(dl[j][i], dh[j][i]), q[j][i], bounds(ql[j][i], qh[j][i])
                )
                for j, name in enumerate(names)
            }
            if label in wanted
            else {},
        )
        for i, label in enumerate(table.labels)
    )


def _listed(bounds: Bounds) -> list[float] | None:
    return None if bounds is None else [bounds[0], bounds[1]]


def _min_max_ratio(values: np.ndarray) -> float | None:
    top = float(values.max())
    return None if top == 0 else float(values.min()) / top
