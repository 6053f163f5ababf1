"""Detect drift over time: a one-sided CUSUM chart on the log impact ratio.

simulate → measure → **detect** → alert → log. A per-reading threshold fires only once DIR
has crossed 0.8; a sustained downward shift should be seen before that. Each reading gives a
log impact ratio ``x`` and its Katz standard error ``se`` (from its counts). The first
``baseline_readings`` readings fix the in-control level (:func:`fit_baseline`): the mean
``mu`` and a between-reading variance ``tau2`` — real-world day-to-day variation of the
approval rates beyond binomial noise, added to each reading's own ``se**2`` so it does not
read as drift. ``tau2`` is the Q-profile upper confidence bound (confidence
``DISPERSION_CONFIDENCE``), not the point estimate: 30 readings estimate a spread with
±13 % error, and a chart scaled by an underestimate alarms several times as often. Then,
per reading::

    scale = sqrt(se**2 + tau2 + var(mu))
    z = clip((x - mu) / scale, -Z_CLIP, Z_CLIP)
    S = min(CAP, max(0, S_previous - z - slack))          # accumulates downward evidence
    drift signalled while S > threshold

``slack`` (k) is half the shift, in standard errors, the chart is tuned to catch quickly;
``threshold`` (h) sets the false-alarm rate. Clipping ``z`` means no single wild reading can
signal on its own, and the cap bounds how long the chart takes to recover after the ratio
returns to its baseline. Defaults (30 baseline readings, k 0.75, h 8, confidence 0.8) were
chosen by simulation; ``docs/STATISTICS.md`` gives the measured false-alarm rate and
detection delay (``benchmarks/drift_chart.py``), and the tests check both. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from fairlens_monitor.config.detection import CusumSettings

Z_CLIP = 6.0
# Keeps false alarms about half a point under the 1.5 % goal when rates vary day to day;
# 0.75 meets it with less room, 0.9 is slower to detect (docs/STATISTICS.md).
DISPERSION_CONFIDENCE = 0.8
MIN_SE = 1e-9
BISECTIONS = 64  # halvings of the bracket: the bound to 2**-64 of its bracket


@dataclass(frozen=True)
class Baseline:
    """The in-control level of the log ratio.

    Attributes:
        mean: the in-control mean log ratio (weighted by ``1 / (se**2 + between_variance)``).
        between_variance: ``tau2``, the upper confidence bound of the variance between
            readings beyond each reading's binomial ``se**2`` (0 under pure binomial noise).
        mean_variance: the variance of ``mean`` itself (``1 / sum of the weights``).
        readings: how many readings the level was fitted from.
    """

    mean: float
    between_variance: float
    mean_variance: float
    readings: int

    def scale(self, se: float) -> float:
        """Return the standard deviation of ``x - mean`` for a reading with error ``se``."""
        return math.sqrt(max(se, MIN_SE) ** 2 + self.between_variance + self.mean_variance)


def _generalised_q(x: np.ndarray, variances: np.ndarray, tau2: float) -> tuple[float, float, float]:
    """Return ``(Q, weighted mean, sum of weights)`` at between-reading variance ``tau2``."""
    weights = 1.0 / (variances + tau2)
    total = float(weights.sum())
    mean = float((weights * x).sum()) / total
    return float((weights * (x - mean) ** 2).sum()), mean, total


def between_variance_upper(
    x: np.ndarray, variances: np.ndarray, confidence: float = DISPERSION_CONFIDENCE
) -> float:
    """Return the Q-profile upper confidence bound of the between-reading variance.

    Viechtbauer (2007), *Confidence intervals for the amount of heterogeneity in
    meta-analysis*, Stat. Med. 26:37–52: the generalised
    ``Q(tau2) = sum((x - mean(tau2))**2 / (v + tau2))`` follows chi-square with ``m - 1``
    degrees of freedom at the true ``tau2`` and decreases in ``tau2``; the upper bound is
    the ``tau2`` where ``Q`` equals the ``1 - confidence`` quantile (0 when ``Q(0)`` is
    already below it). With equal ``v`` it is the chi-square upper bound of the sample
    variance, minus ``v``.

    Args:
        x: log ratios, at least two.
        variances: their sampling variances ``se**2`` (positive).
        confidence: one-sided confidence of the bound, in (0, 1).

    Returns:
        The bound, ``>= 0``.

    Raises:
        ValueError: fewer than two readings, or ``confidence`` outside (0, 1).
    """
    if len(x) < 2:
        raise ValueError(f"a between-reading variance needs at least 2 readings, got {len(x)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    from scipy.special import chdtri  # deferred: scipy costs start-up time (as in stats.py)

    target = float(chdtri(len(x) - 1, confidence))  # the (1 - confidence) quantile
    if _generalised_q(x, variances, 0.0)[0] <= target:
        return 0.0
    # Q(tau2) <= sum((x - xbar)**2) / tau2, so Q is at most the target at ``high``; Q
    # decreases in tau2, so bisection finds the crossing (no scipy.optimize: start-up time).
    low, high = 0.0, float(((x - x.mean()) ** 2).sum()) / target
    for _ in range(BISECTIONS):
        middle = (low + high) / 2
        if _generalised_q(x, variances, middle)[0] > target:
            low = middle
        else:
            high = middle
    return high


def fit_baseline(
    points: Sequence[tuple[float, float]], *, confidence: float = DISPERSION_CONFIDENCE
) -> Baseline:
    """Fit the in-control level from ``(log ratio, standard error)`` pairs.

    The between-reading variance is an additive component (DerSimonian–Laird's random-effects
    model): rates that vary day to day by a fixed amount add a fixed variance to the log
    ratio, whatever the reading's size, while ``se`` shrinks as the reading grows. Its
    upper confidence bound (:func:`between_variance_upper`) keeps the chart from being
    scaled by an underestimate; the mean is weighted by ``1 / (se**2 + tau2)``.

    Args:
        points: the baseline readings, at least two.
        confidence: one-sided confidence of the between-reading variance bound.

    Returns:
        The baseline.

    Raises:
        ValueError: fewer than two points, or ``confidence`` outside (0, 1).
    """
    if len(points) < 2:
        raise ValueError(f"a baseline needs at least 2 readings, got {len(points)}")
    x = np.array([p[0] for p in points], dtype=float)
    variances = np.maximum(np.array([p[1] for p in points], dtype=float), MIN_SE) ** 2
    tau2 = between_variance_upper(x, variances, confidence)
    _, mean, total = _generalised_q(x, variances, tau2)
    return Baseline(mean, tau2, 1.0 / total, len(points))


def cusum_step(
    previous: float, log_ratio: float, se: float, baseline: Baseline, settings: CusumSettings
) -> float:
    """Advance the lower CUSUM statistic by one reading.

    Args:
        previous: the statistic after the previous reading (0 to start).
        log_ratio: this reading's log impact ratio.
        se: its standard error.
        baseline: the in-control level.
        settings: slack and cap.

    Returns:
        The new statistic, in ``[0, settings.cap]``.
    """
    z = float(np.clip((log_ratio - baseline.mean) / baseline.scale(se), -Z_CLIP, Z_CLIP))
    return min(settings.cap, max(0.0, previous - z - settings.slack))


def cusum_path(
    points: Iterable[tuple[float, float]], settings: CusumSettings
) -> list[float | None]:
    """Run the chart over a whole history (for replays, tests and benchmarks).

    Args:
        points: ``(log ratio, standard error)`` per reading, oldest first.
        settings: the chart's settings.

    Returns:
        The statistic after each reading; None while the baseline is being collected.
    """
    out: list[float | None] = []
    collected: list[tuple[float, float]] = []
    baseline: Baseline | None = None
    statistic = 0.0
    for point in points:
        if baseline is None:
            collected.append(point)
            out.append(None)
            if len(collected) == settings.baseline_readings:
                baseline = fit_baseline(collected)
            continue
        statistic = cusum_step(statistic, point[0], point[1], baseline, settings)
        out.append(statistic)
    return out
