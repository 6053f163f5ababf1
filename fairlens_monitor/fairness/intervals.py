"""Closed-form confidence intervals for proportions, their differences and their ratios.

measure → **intervals** (of the ground-truth metrics in :mod:`fairlens_monitor.fairness.outcomes`).
Every function is vectorised over numpy arrays of counts and pure; none resamples, so a
reading with dozens of groups costs microseconds. A bound that is not defined (an empty
denominator, a zero count under the log method) is NaN here; callers turn NaN into None.

- **Wilson score interval** of one proportion (Wilson 1927), equal to statsmodels'
  ``proportion_confint(method="wilson")``.
- **Newcombe hybrid score interval** of a difference ``p1 - p2`` of independent proportions
  (Newcombe 1998, method 10: the Wilson intervals of both proportions combined), equal to
  statsmodels' ``confint_proportions_2indep(method="newcomb", compare="diff")``.
- Ratios ``p1 / p2`` use the DIR's interval, :func:`fairlens_monitor.fairness.stats.ratio_interval`
  (MOVER-R from Clopper–Pearson limits): one home for the ratio of two proportions.
- **MOVER sum** (Zou & Donner 2008): the interval of a sum of independent estimates from
  their own intervals — the construction Newcombe's method is an instance of — used for the
  average odds difference.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

Interval = tuple[np.ndarray, np.ndarray]


def z_value(confidence: float) -> float:
    """Return the two-sided standard normal quantile for ``confidence`` (1.96 for 0.95).

    Raises:
        ValueError: ``confidence`` is not in (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _floats(*values: np.ndarray | float | int) -> list[np.ndarray]:
    return [np.asarray(v, dtype=float) for v in values]


def wilson(x: np.ndarray | int, n: np.ndarray | int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of the proportion ``x / n``.

    Args:
        x: successes (array or scalar), ``0 <= x <= n``.
        n: trials.
        confidence: two-sided level.

    Returns:
        ``(low, high)`` arrays; NaN where ``n == 0``. Always inside [0, 1] and always
        containing ``x / n``.
    """
    xf, nf = _floats(x, n)
    z = z_value(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = xf / nf
        denom = 1 + z * z / nf
        centre = (p + z * z / (2 * nf)) / denom
        half = z * np.sqrt(p * (1 - p) / nf + z * z / (4 * nf * nf)) / denom
        low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    # The bounds touch the estimate exactly at 0 and 1; rounding must not push them past it.
    return np.where(nf > 0, np.minimum(low, p), np.nan), np.where(
        nf > 0, np.maximum(high, p), np.nan
    )


def newcombe(
    x1: np.ndarray | int,
    n1: np.ndarray | int,
    x2: np.ndarray | int,
    n2: np.ndarray | int,
    confidence: float = 0.95,
) -> Interval:
    """Newcombe's hybrid score interval of the difference ``x1/n1 - x2/n2``.

    Args:
        x1: successes of the first (compared) group.
        n1: its trials.
        x2: successes of the second (reference) group.
        n2: its trials.
        confidence: two-sided level.

    Returns:
        ``(low, high)``; NaN where either ``n`` is 0. Inside [-1, 1], containing the
        difference.
    """
    a1, b1, a2, b2 = _floats(x1, n1, x2, n2)
    l1, u1 = wilson(a1, b1, confidence)
    l2, u2 = wilson(a2, b2, confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = a1 / b1, a2 / b2
    d = p1 - p2
    return (
        d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def mover_sum(
    estimates: tuple[np.ndarray, np.ndarray], first: Interval, second: Interval
) -> Interval:
    """Interval of ``e1 + e2`` from the intervals of two independent estimates (MOVER).

    ``low = e1 + e2 - sqrt((e1 - l1)² + (e2 - l2)²)``, ``high`` likewise with the upper
    distances (Zou & Donner 2008); with Wilson intervals of two proportions this is exactly
    Newcombe's interval.

    Args:
        estimates: ``(e1, e2)``.
        first: ``(l1, u1)`` of ``e1``.
        second: ``(l2, u2)`` of ``e2``.

    Returns:
        ``(low, high)``; NaN where any input is NaN.
    """
    e1, e2 = estimates
    total = e1 + e2
    return (
        total - np.sqrt((e1 - first[0]) ** 2 + (e2 - second[0]) ** 2),
        total + np.sqrt((first[1] - e1) ** 2 + (second[1] - e2) ** 2),
    )
