"""Ground-truth fairness metrics from a count table (when the true outcome is known).

simulate → **measure** → detect → alert → log. Demographic parity, equal opportunity and
equalized odds, computed from the per-group counts of :mod:`fairlens_monitor.groups` with
fairlearn's definitions (fairlearn is the tests' oracle, not a dependency). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fairlens_monitor.groups import Assessment, GroupTable


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
        equalized_odds_ratio=(tpr_ratio if tpr_ratio is None or fpr_ratio is None
                              else min(tpr_ratio, fpr_ratio)),
    )


def included_outcome_metrics(table: GroupTable,
                             assessment: Assessment) -> OutcomeMetrics | None:
    """The ground-truth metrics over the groups the assessment did not exclude.

    Returns:
        The metrics, or None when the table carries no label counts.
    """
    if table.positives is None:
        return None
    return outcome_metrics(table, [g.label for g in assessment.groups if g.role != "excluded"])


def _min_max_ratio(values: np.ndarray) -> float | None:
    top = float(values.max())
    return None if top == 0 else float(values.min()) / top
