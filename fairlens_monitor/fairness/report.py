"""An assessment as plain data: the JSON shape of a reading's statistics.

measure → detect → alert → **log**: the ``measure`` command's report, a cycle's JSON and the
stored statistics of a reading all use this one shape (groups with their comparisons, the
verdict and, when ground truth is known, the outcome metrics). Pure.
"""

from __future__ import annotations

from typing import Any

from fairlens_monitor.fairness.groups import Assessment, GroupResult
from fairlens_monitor.fairness.outcomes import OutcomeMetrics


def to_json(assessment: Assessment, metrics: OutcomeMetrics | None = None) -> dict[str, Any]:
    """Render an assessment (and outcome metrics) as plain JSON-ready data.

    Returns:
        ``{"verdict", "reason", "reference", "headline", "groups": [...], "outcome_metrics"}``;
        with metrics, each group carries ``ground_truth`` (its error rates and comparisons).
    """

    def group(g: GroupResult) -> dict[str, Any]:
        out: dict[str, Any] = {
            "group": g.label,
            "role": g.role,
            "applicants": g.applicants,
            "approved": g.approved,
            "rate": g.rate,
            "share": g.share,
        }
        if g.comparison is not None:
            c = g.comparison
            out.update(
                {
                    "impact_ratio": c.ratio,
                    "ci_low": c.ci_low,
                    "ci_high": c.ci_high,
                    "gap": c.gap,
                    "p_value": c.p_value,
                    "p_adjusted": g.p_adjusted,
                    "test": c.test,
                    "shortfall": c.shortfall,
                    "verdict": g.verdict,
                }
            )
        if g.reason is not None:
            out["reason"] = g.reason
        if metrics is not None:  # per-group error rates (and score metrics), outcomes.py
            out.update(metrics.group_json(g.label))
        return out

    return {
        "verdict": assessment.verdict,
        "reason": assessment.reason,
        "reference": assessment.reference.label,
        "headline": None if assessment.headline is None else assessment.headline.label,
        "groups": [group(g) for g in assessment.groups],
        "outcome_metrics": None
        if metrics is None
        else {
            "demographic_parity_difference": metrics.demographic_parity_difference,
            "demographic_parity_ratio": metrics.demographic_parity_ratio,
            "equal_opportunity_difference": metrics.equal_opportunity_difference,
            "equalized_odds_difference": metrics.equalized_odds_difference,
            "equalized_odds_ratio": metrics.equalized_odds_ratio,
        },
    }
