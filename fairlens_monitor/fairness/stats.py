"""Statistics of one group against a reference group: the evidence behind a verdict.

simulate → **measure** → detect → alert → log. The four-fifths rule alone misleads both
ways (4/10 vs 6/10 approved gives DIR 0.67 on noise; a large sample can "pass" at 0.82 with a
real difference), so the EEOC guidelines (29 CFR 1607.4D) ask for practical *and*
statistical significance. Everything here is a pure function of integer counts:

* the impact ratio (DIR) with a MOVER-R confidence interval built from the two groups'
  Clopper–Pearson limits (Zou & Donner 2008; Newcombe 2013): it always contains the
  estimate, stays a real interval when both groups are 100 % approved, and covers the true
  ratio in at least 95 % of readings over the whole grid of ``docs/STATISTICS.md``;
* a two-sided p-value: Fisher's exact test when an expected cell count is below 5 or a group
  has fewer than 30 applicants, the two-proportion z-test otherwise (distributions from
  scipy); never a false zero (floored at :data:`P_FLOOR`) and printed with no more precision
  than its test has (:func:`format_p`);
* the shortfall: approvals the group would have had at the pooled rate of the two groups,
  minus its actual approvals (positive = fewer than expected);
* Holm's step-down adjustment when one reading compares several groups;
* the verdict: ``adverse`` (ratio below the threshold and significant at ``alpha``, or —
  opt-in, 29 CFR 1607.4D — significant with a shortfall of at least ``shortfall_min``
  approvals), ``inconclusive`` (below the threshold but not significant, a group smaller
  than the minimum size, or a reference group with no approvals) or ``ok``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

Verdict = Literal["ok", "inconclusive", "adverse"]
VERDICTS: tuple[Verdict, ...] = ("ok", "inconclusive", "adverse")  # in order of severity
FISHER_MIN_EXPECTED = 5.0  # Cochran's rule for the normal approximation
FISHER_MIN_GROUP = 30  # below this many applicants in a group, use the exact test anyway
P_FLOOR = 1e-300  # p-values below this are stored as this bound and printed "< 1e-300"
Z_TAIL = 1e-6  # below this the z-test's normal approximation has no meaningful digits


def warm_up() -> None:
    """Import the special functions the intervals and the z-test use (``scipy.special``) now.

    For a caller with time to spare before it needs them: ``measure`` calls this on a thread
    while its file is parsed, so the statistics do not wait ~0.1 s for the import afterwards.
    Importing twice costs nothing; if scipy cannot be imported, the statistics raise that
    error where they need it, so here it is ignored.
    """
    try:
        import scipy.special  # noqa: F401  (the import is the whole point)
    except ImportError:
        return


@dataclass(frozen=True)
class Comparison:
    """One group measured against the reference group (before any multiple-test adjustment).

    ``ratio`` is None when the reference group has no approvals (undefined). ``ci_low`` and
    ``ci_high`` are None when either group is empty; ``ci_high`` alone is None when the
    reference group has no approvals (the interval is unbounded above: ``[ci_low, ∞)``).
    ``test`` is ``fisher``, ``z`` or ``none`` (a group is empty, or nobody/everybody was
    approved, so there is nothing to test; p is then 1). ``p_value`` is never 0: below
    :data:`P_FLOOR` it is that bound.
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


def impact_ratio(
    approved: int, applicants: int, ref_approved: int, ref_applicants: int
) -> float | None:
    """Return the group's rate over the reference's, from the counts with one division.

    Returns:
        The ratio; 0.0 for an empty group; None when the reference rate is 0.
    """
    if ref_approved == 0:
        return None
    if applicants == 0:
        return 0.0
    return (approved * ref_applicants) / (applicants * ref_approved)


def log_ratio_se(
    approved: int, applicants: int, ref_approved: int, ref_applicants: int
) -> tuple[float, float] | None:
    """Return ``(log ratio, standard error)`` of the Katz method (the drift chart's input).

    When either approval count is zero, 0.5 is added to both groups' approvals and
    applicants, so the logarithm and its variance are finite. The reading's interval is
    :func:`ratio_interval`, not this.

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


def clopper_pearson(
    approved: ArrayLike, applicants: ArrayLike, *, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Clopper–Pearson ("exact") limits of approval rates, vectorised.

    Args:
        approved: approvals per group (array-like of counts).
        applicants: applicants per group, each > 0.
        confidence: two-sided coverage, in (0, 1).

    Returns:
        ``(low, high)`` arrays: 0 below when nobody was approved, 1 above when everybody was.
        Equal to ``statsmodels.stats.proportion.proportion_confint(method="beta")`` (tested).
    """
    from scipy.special import betaincinv  # deferred: scipy costs start-up time

    tail = (1 - confidence) / 2
    if np.ndim(approved) == 0 and np.ndim(applicants) == 0:  # one reading: no array work
        k, m = float(approved), float(applicants)  # type: ignore[arg-type]
        return (
            np.asarray(betaincinv(k, m - k + 1, tail) if k > 0 else 0.0),
            np.asarray(betaincinv(k + 1, m - k, 1 - tail) if k < m else 1.0),
        )
    x = np.asarray(approved, dtype=float)
    n = np.asarray(applicants, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(x > 0, betaincinv(np.maximum(x, 1), n - x + 1, tail), 0.0)
        high = np.where(x < n, betaincinv(x + 1, np.maximum(n - x, 1), 1 - tail), 1.0)
    return low, high


def ratio_interval(
    approved: ArrayLike,
    applicants: ArrayLike,
    ref_approved: ArrayLike,
    ref_applicants: ArrayLike,
    *,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Confidence interval of the impact ratio p₁/p₂, vectorised (MOVER-R, Clopper–Pearson).

    The method of variance estimates recovery for a ratio (Zou & Donner 2008, Stat Med
    27:1693; Newcombe 2013, *Confidence Intervals for Proportions and Related Measures*,
    ch. 7; Donner & Zou 2012) combines each group's own limits (l, u) into limits for the
    ratio::

        low  = (p₁p₂ − √((p₁p₂)² − l₁u₂(2p₁ − l₁)(2p₂ − u₂))) / (u₂(2p₂ − u₂))
        high = (p₁p₂ + √((p₁p₂)² − u₁l₂(2p₁ − u₁)(2p₂ − l₂))) / (l₂(2p₂ − l₂))

    With Clopper–Pearson limits for each group it covers the true ratio in ≥ 95 % of
    readings in every cell of the grid in ``docs/STATISTICS.md`` (rates 0–1, 30–1,000 per
    group; computed exactly by ``benchmarks/error_rates.py``), always contains the estimate,
    is ``[0, high]`` when the group has no approvals and ``[low, ∞)`` when the reference has
    none.

    Args:
        approved: approvals of the compared group(s).
        applicants: its applicants.
        ref_approved: approvals of the reference group(s).
        ref_applicants: its applicants.
        confidence: two-sided coverage, in (0, 1).

    Returns:
        ``(low, high)`` float arrays; ``high`` is ``inf`` where the reference has no
        approvals, both are NaN where either group has no applicants.
    """
    a, n1 = np.asarray(approved, dtype=float), np.asarray(applicants, dtype=float)
    c, n2 = np.asarray(ref_approved, dtype=float), np.asarray(ref_applicants, dtype=float)
    empty = (n1 <= 0) | (n2 <= 0)
    n1s, n2s = np.where(empty, 1.0, n1), np.where(empty, 1.0, n2)
    l1, u1 = clopper_pearson(np.minimum(a, n1s), n1s, confidence=confidence)
    l2, u2 = clopper_pearson(np.minimum(c, n2s), n2s, confidence=confidence)
    p1, p2 = a / n1s, c / n2s
    pp = p1 * p2
    # pp * pp, not pp ** 2: on a numpy scalar ``**`` calls C pow(), which differs from the
    # array path's exact square in the last bit for ~0.1 % of inputs, and the difference
    # below cancels down to those bits (found by Hypothesis: 271/281 against 271/281)
    square = pp * pp
    with np.errstate(invalid="ignore", divide="ignore"):
        low = (pp - np.sqrt(np.maximum(square - l1 * u2 * (2 * p1 - l1) * (2 * p2 - u2), 0.0))) / (
            u2 * (2 * p2 - u2)
        )
        high = (pp + np.sqrt(np.maximum(square - u1 * l2 * (2 * p1 - u1) * (2 * p2 - l2), 0.0))) / (
            l2 * (2 * p2 - l2)
        )
    low = np.where(a <= 0, 0.0, np.maximum(low, 0.0))
    high = np.where(c <= 0, np.inf, high)
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def ratio_ci(
    approved: int,
    applicants: int,
    ref_approved: int,
    ref_applicants: int,
    *,
    confidence: float = 0.95,
) -> tuple[float | None, float | None]:
    """Return the impact ratio's interval for one comparison (see :func:`ratio_interval`).

    Args:
        approved: approvals of the compared group.
        applicants: its applicants.
        ref_approved: approvals of the reference group.
        ref_applicants: its applicants.
        confidence: coverage, in (0, 1).

    Returns:
        ``(low, high)``; ``(low, None)`` when the reference has no approvals (unbounded
        above); ``(None, None)`` when a group has no applicants.
    """
    low, high = ratio_interval(
        approved, applicants, ref_approved, ref_applicants, confidence=confidence
    )
    lo, hi = float(low), float(high)
    if math.isnan(lo):
        return None, None
    return lo, None if math.isinf(hi) else hi


def difference_p_value(
    approved: int, applicants: int, ref_approved: int, ref_applicants: int
) -> tuple[float, str]:
    """Two-sided p-value for "the two approval rates differ".

    Fisher's exact test (``scipy.stats.fisher_exact``) when any expected cell count of the
    2×2 table is below 5 or a group has fewer than 30 applicants; otherwise the pooled
    two-proportion z-test, whose normal tail is ``scipy.special.ndtr`` (the z-test equals
    Pearson's chi-square test without continuity correction, which the tests use as an
    oracle). A p-value too small for a float is :data:`P_FLOOR`, never 0.

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
        return float(min(1.0, max(P_FLOOR, fisher_exact(table).pvalue))), "fisher"
    from scipy.special import ndtr

    pooled = approvals / total
    z = (approved / n1 - ref_approved / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(min(1.0, max(P_FLOOR, 2 * ndtr(-abs(z))))), "z"


def format_p(p: float, test: str = "fisher") -> str:
    """Print a p-value with no more precision than its test has.

    Args:
        p: the p-value (raw or adjusted).
        test: the test that produced it: ``z`` (normal approximation), ``fisher`` (exact)
            or ``none``.

    Returns:
        Two significant digits (``0.0016``); ``< 1e-300`` at :data:`P_FLOOR`; for the
        z-test ``< 1e-06`` below :data:`Z_TAIL`, where the normal tail has no meaningful
        digits left (3e-108 from the z-test against Fisher's 5e-103 on the same table).
    """
    if p <= P_FLOOR:
        return f"< {P_FLOOR:.0e}"
    if test == "z" and p < Z_TAIL:
        return f"< {Z_TAIL:.0e}"
    return f"{p:.2g}"


def format_interval(
    low: float | None, high: float | None, *, digits: int = 3, sep: str = "–"
) -> str:
    """Print an impact-ratio interval: ``0.811–0.984``, ``0.210–∞`` or ``undefined``.

    Args:
        low: lower end, None when there is no interval (an empty group).
        high: upper end, None when unbounded (the reference had no approvals).
        digits: decimals.
        sep: between the ends.

    Returns:
        The text.
    """
    if low is None:
        return "undefined"
    return f"{low:.{digits}f}{sep}{'∞' if high is None else f'{high:.{digits}f}'}"


def shortfall(approved: int, applicants: int, ref_approved: int, ref_applicants: int) -> float:
    """Return the group's expected approvals at the pooled rate minus its actual approvals.

    The pooled rate is that of the two groups together (the null hypothesis of the test).
    Positive means the group was approved less often than the pool; 0.0 for empty groups.
    """
    total = applicants + ref_applicants
    if total == 0:
        return 0.0
    return applicants * (approved + ref_approved) / total - approved


def compare(
    approved: int,
    applicants: int,
    ref_approved: int,
    ref_applicants: int,
    *,
    confidence: float = 0.95,
) -> Comparison:
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
    ci_low, ci_high = ratio_ci(
        approved, applicants, ref_approved, ref_applicants, confidence=confidence
    )
    p, test = difference_p_value(approved, applicants, ref_approved, ref_applicants)
    return Comparison(
        approved=approved,
        applicants=applicants,
        reference_approved=ref_approved,
        reference_applicants=ref_applicants,
        ratio=impact_ratio(approved, applicants, ref_approved, ref_applicants),
        ci_low=ci_low,
        ci_high=ci_high,
        gap=rate(ref_approved, ref_applicants) - rate(approved, applicants),
        p_value=p,
        test=test,
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


def verdict(
    comparison: Comparison,
    p_value: float,
    *,
    threshold: float,
    alpha: float,
    min_group_size: int,
    shortfall_min: float | None = None,
) -> tuple[Verdict, str]:
    """Judge a comparison by practical and statistical significance.

    Args:
        comparison: the group against the reference.
        p_value: the p-value to judge by (Holm-adjusted when the reading has several groups).
        threshold: the impact-ratio threshold (four-fifths rule: 0.8).
        alpha: significance level.
        min_group_size: fewer applicants than this in either group makes it inconclusive.
        shortfall_min: opt-in second half of 29 CFR 1607.4D: a ratio at or above the
            threshold is still ``adverse`` when significant and the group's shortfall is at
            least this many approvals (practical significance in decisions, not in ratio).
            None (the default) leaves the rule off.

    Returns:
        ``(verdict, reason)``, the reason in a few words for people.
    """
    smallest = min(comparison.applicants, comparison.reference_applicants)
    if smallest < min_group_size:
        return "inconclusive", f"a group has {smallest} applicants (< {min_group_size})"
    if comparison.ratio is None:
        return "inconclusive", "the reference group has no approvals"
    p_text = format_p(p_value, comparison.test)
    if comparison.ratio >= threshold:
        if shortfall_min is not None and p_value < alpha and comparison.shortfall >= shortfall_min:
            return "adverse", (
                f"ratio {comparison.ratio:.3f} >= {threshold:g} but significant "
                f"(p {p_text} < {alpha:g}) with a shortfall of "
                f"{comparison.shortfall:.1f} approvals >= {shortfall_min:g} "
                "(29 CFR 1607.4D)"
            )
        return "ok", f"ratio {comparison.ratio:.3f} >= {threshold:g}"
    if p_value < alpha:
        return "adverse", f"ratio {comparison.ratio:.3f} < {threshold:g}, p {p_text} < {alpha:g}"
    return "inconclusive", (
        f"ratio {comparison.ratio:.3f} < {threshold:g} but not significant "
        f"(p {p_text} >= {alpha:g})"
    )


def worst(verdicts: Sequence[Verdict]) -> Verdict:
    """Return the most severe of ``verdicts`` (``ok`` for none)."""
    return max(verdicts, key=VERDICTS.index, default="ok")


RiskLevel = Literal["low", "medium", "high"]


def risk_level(
    verdict: Verdict, ci_low: float | None, drift_alert: bool, *, threshold: float
) -> RiskLevel:
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
