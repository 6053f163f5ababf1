"""Statistics of one group against a reference group: the evidence behind a verdict.

simulate → **measure** → detect → alert → log. The four-fifths rule alone misleads both
ways (4/10 vs 6/10 approved gives DIR 0.67 on noise; a large sample can "pass" at 0.82 with a
real difference), so the EEOC guidelines (29 CFR 1607.4D) ask for practical *and*
statistical significance. Everything here is a pure function of integer counts:

* the impact ratio (DIR) with a Katz log confidence interval, adding 0.5 to every cell when an
  approval count is zero;
* a two-sided p-value: Fisher's exact test when an expected cell count is below 5 or a group
  has fewer than 30 applicants, the two-proportion z-test otherwise (distributions from scipy);
* the shortfall: approvals the group would have had at the pooled rate of the two groups,
  minus its actual approvals (positive = fewer than expected);
* Holm's step-down adjustment when one reading compares several groups;
* the verdict: ``adverse`` (ratio below the threshold and significant at ``alpha``),
  ``inconclusive`` (below the threshold but not significant, a group smaller than the minimum
  size, or a reference group with no approvals) or ``ok``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

Verdict = Literal["ok", "inconclusive", "adverse"]
VERDICTS: tuple[Verdict, ...] = ("ok", "inconclusive", "adverse")  # in order of severity
FISHER_MIN_EXPECTED = 5.0  # Cochran's rule for the normal approximation
FISHER_MIN_GROUP = 30  # below this many applicants in a group, use the exact test anyway


@dataclass(frozen=True)
class Comparison:
    """One group measured against the reference group (before any multiple-test adjustment).

    ``ratio`` is None when the reference group has no approvals. ``ci_low``/``ci_high`` are
    None when either group is empty. ``test`` is ``fisher``, ``z`` or ``none`` (a group is
    empty, or nobody/everybody was approved, so there is nothing to test; p is then 1).
    """

    approved: int
    applicants: int
    reference_approved: int
    reference_applicants: int
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    gap: float
    p_value: float
    test: str
    shortfall: float


def rate(approved: int, applicants: int) -> float:
    """Return ``approved / applicants``, or 0.0 for an empty group."""
    return approved / applicants if applicants else 0.0


def impact_ratio(approved: int, applicants: int, ref_approved: int,
                 ref_applicants: int) -> float | None:
    """Return the group's rate over the reference's, from the counts with one division.

    Returns:
        The ratio; 0.0 for an empty group; None when the reference rate is 0.
    """
    if ref_approved == 0:
        return None
    if applicants == 0:
        return 0.0
    return (approved * ref_applicants) / (applicants * ref_approved)


def log_ratio_se(approved: int, applicants: int, ref_approved: int,
                 ref_applicants: int) -> tuple[float, float] | None:
    """Return ``(log ratio, standard error)`` of the Katz method.

    When either approval count is zero, 0.5 is added to every cell (approvals and
    applicants of both groups) so the logarithm and its variance are finite.

    Returns:
        The pair, or None when either group has no applicants.
    """
    if applicants == 0 or ref_applicants == 0:
        return None
    a, n1, c, n2 = float(approved), float(applicants), float(ref_approved), float(ref_applicants)
    if a == 0 or c == 0:
        a, n1, c, n2 = a + 0.5, n1 + 0.5, c + 0.5, n2 + 0.5
    log_rr = math.log((a / n1) / (c / n2))
    return log_rr, math.sqrt(max(0.0, 1 / a - 1 / n1 + 1 / c - 1 / n2))


def katz_ci(approved: int, applicants: int, ref_approved: int, ref_applicants: int,
            *, confidence: float = 0.95) -> tuple[float, float] | None:
    """Return the Katz log confidence interval of the impact ratio.

    Agrees with ``scipy.stats.contingency.relative_risk(...).confidence_interval()`` where
    that is defined (no zero cell) and with the 0.5-adjusted formula where it is not (tested).

    Args:
        approved: approvals of the compared group.
        applicants: its applicants.
        ref_approved: approvals of the reference group.
        ref_applicants: its applicants.
        confidence: coverage, in (0, 1).

    Returns:
        ``(low, high)``, or None when a group has no applicants.
    """
    pair = log_ratio_se(approved, applicants, ref_approved, ref_applicants)
    if pair is None:
        return None
    log_rr, se = pair
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return math.exp(log_rr - z * se), math.exp(log_rr + z * se)


def difference_p_value(approved: int, applicants: int, ref_approved: int,
                       ref_applicants: int) -> tuple[float, str]:
    """Two-sided p-value for "the two approval rates differ".

    Fisher's exact test (``scipy.stats.fisher_exact``) when any expected cell count of the
    2×2 table is below 5 or a group has fewer than 30 applicants; otherwise the pooled
    two-proportion z-test, whose normal tail is ``scipy.special.ndtr`` (the z-test equals
    Pearson's chi-square test without continuity correction, which the tests use as an
    oracle).

    Returns:
        ``(p, test)`` with test ``fisher`` or ``z``; ``(1.0, "none")`` when a group is empty
        or the pooled rate is 0 or 1 (nothing to test).
    """
    n1, n2 = applicants, ref_applicants
    total, approvals = n1 + n2, approved + ref_approved
    if n1 == 0 or n2 == 0 or approvals in (0, total):
        return 1.0, "none"
    expected_min = min(n1, n2) * min(approvals, total - approvals) / total
    if min(n1, n2) < FISHER_MIN_GROUP or expected_min < FISHER_MIN_EXPECTED:
        from scipy.stats import fisher_exact  # deferred: scipy.stats costs start-up time

        table = [[approved, n1 - approved], [ref_approved, n2 - ref_approved]]
        return float(min(1.0, fisher_exact(table).pvalue)), "fisher"
    from scipy.special import ndtr

    pooled = approvals / total
    z = (approved / n1 - ref_approved / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(min(1.0, 2 * ndtr(-abs(z)))), "z"


def shortfall(approved: int, applicants: int, ref_approved: int, ref_applicants: int) -> float:
    """Return the group's expected approvals at the pooled rate minus its actual approvals.

    The pooled rate is that of the two groups together (the null hypothesis of the test).
    Positive means the group was approved less often than the pool; 0.0 for empty groups.
    """
    total = applicants + ref_applicants
    if total == 0:
        return 0.0
    return applicants * (approved + ref_approved) / total - approved


def compare(approved: int, applicants: int, ref_approved: int, ref_applicants: int,
            *, confidence: float = 0.95) -> Comparison:
    """Measure a group against the reference group.

    Args:
        approved: approvals of the compared group.
        applicants: its applicants.
        ref_approved: approvals of the reference group.
        ref_applicants: its applicants.
        confidence: coverage of the interval.

    Returns:
        The comparison (ratio, interval, gap = reference rate minus group rate, p-value, test
        and shortfall).

    Raises:
        ValueError: a count is negative or approvals exceed applicants.
    """
    for a, n in ((approved, applicants), (ref_approved, ref_applicants)):
        if not 0 <= a <= n:
            raise ValueError(f"need 0 <= approved <= applicants, got {a} of {n}")
    ci = katz_ci(approved, applicants, ref_approved, ref_applicants, confidence=confidence)
    p, test = difference_p_value(approved, applicants, ref_approved, ref_applicants)
    return Comparison(
        approved=approved, applicants=applicants, reference_approved=ref_approved,
        reference_applicants=ref_applicants,
        ratio=impact_ratio(approved, applicants, ref_approved, ref_applicants),
        ci_low=None if ci is None else ci[0], ci_high=None if ci is None else ci[1],
        gap=rate(ref_approved, ref_applicants) - rate(approved, applicants),
        p_value=p, test=test,
        shortfall=shortfall(approved, applicants, ref_approved, ref_applicants),
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values (controls the family-wise error rate).

    The i-th smallest p is multiplied by ``m - i`` (i from 0), a running maximum keeps the
    adjusted values monotone, and values are capped at 1. scipy offers only false-discovery
    control, so this short textbook procedure lives here (tested against its definition).

    Args:
        p_values: one p-value per comparison in the reading.

    Returns:
        Adjusted p-values in the input order.
    """
    m = len(p_values)
    order = np.argsort(np.asarray(p_values, dtype=float), kind="stable")
    adjusted = [0.0] * m
    running = 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (m - i) * float(p_values[index])))
        adjusted[int(index)] = running
    return adjusted


def verdict(comparison: Comparison, p_value: float, *, threshold: float, alpha: float,
            min_group_size: int) -> tuple[Verdict, str]:
    """Judge a comparison by practical and statistical significance.

    Args:
        comparison: the group against the reference.
        p_value: the p-value to judge by (Holm-adjusted when the reading has several groups).
        threshold: the impact-ratio threshold (four-fifths rule: 0.8).
        alpha: significance level.
        min_group_size: fewer applicants than this in either group makes it inconclusive.

    Returns:
        ``(verdict, reason)``, the reason in a few words for people.
    """
    smallest = min(comparison.applicants, comparison.reference_applicants)
    if smallest < min_group_size:
        return "inconclusive", f"a group has {smallest} applicants (< {min_group_size})"
    if comparison.ratio is None:
        return "inconclusive", "the reference group has no approvals"
    if comparison.ratio >= threshold:
        return "ok", f"ratio {comparison.ratio:.3f} >= {threshold:g}"
    if p_value < alpha:
        return "adverse", (f"ratio {comparison.ratio:.3f} < {threshold:g}, "
                           f"p {p_value:.2g} < {alpha:g}")
    return "inconclusive", (f"ratio {comparison.ratio:.3f} < {threshold:g} but not significant "
                            f"(p {p_value:.2g} >= {alpha:g})")


def worst(verdicts: Sequence[Verdict]) -> Verdict:
    """Return the most severe of ``verdicts`` (``ok`` for none)."""
    return max(verdicts, key=VERDICTS.index, default="ok")


RiskLevel = Literal["low", "medium", "high"]


def risk_level(verdict: Verdict, ci_low: float | None, drift_alert: bool, *,
               threshold: float) -> RiskLevel:
    """Summarise a reading for a risk officer: verdict, interval and trend together.

    ``high``: adverse, or drifting down with an interval that reaches below the threshold.
    ``medium``: inconclusive, drifting, or an interval that reaches below the threshold
    (the data cannot rule out a breach). ``low``: none of these.

    Args:
        verdict: the reading's verdict.
        ci_low: lower end of the DIR interval (None when not computable: treated as reaching
            below the threshold).
        drift_alert: whether the drift chart signals.
        threshold: the DIR threshold.

    Returns:
        ``low``, ``medium`` or ``high``.
    """
    reaches_below = ci_low is None or ci_low < threshold
    if verdict == "adverse" or (drift_alert and reaches_below):
        return "high"
    if verdict == "inconclusive" or drift_alert or reaches_below:
        return "medium"
    return "low"
