"""Detect drift over time: a one-sided CUSUM chart on the log impact ratio.

simulate → measure → **detect** → alert → log. A per-reading threshold fires only once DIR
has crossed 0.8; a sustained downward shift should be seen before that. Each reading gives a
log impact ratio ``x`` and its Katz standard error ``se`` (from its counts). The first
``baseline_readings`` readings fix the in-control mean ``mu`` and an over-dispersion factor
``phi`` (the spread of the standardised baseline residuals, at least 1, so real-world
day-to-day variation beyond binomial noise does not read as drift). Then, per reading::

    z = clip((x - mu) / (se * phi), -Z_CLIP, Z_CLIP)
    S = min(CAP, max(0, S_previous - z - slack))          # accumulates downward evidence
    drift signalled while S > threshold

``slack`` (k) is half the shift, in standard errors, the chart is tuned to catch quickly;
``threshold`` (h) sets the false-alarm rate. Clipping ``z`` means no single wild reading can
signal on its own, and the cap bounds how long the chart takes to recover after the ratio
returns to its baseline. Defaults (30 baseline readings, k 0.75, h 8) were chosen by
simulation; ``docs/STATISTICS.md`` gives the measured false-alarm rate and detection delay,
and the tests check both. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

Z_CLIP = 6.0


@dataclass(frozen=True)
class CusumSettings:
    """Baseline length, slack (k) and decision threshold (h) of the chart."""

    baseline_readings: int = 30
    slack: float = 0.75
    threshold: float = 8.0

    @property
    def cap(self) -> float:
        """Upper bound of the statistic: twice the threshold."""
        return 2 * self.threshold


@dataclass(frozen=True)
class Baseline:
    """The in-control level: mean log ratio and over-dispersion factor."""

    mean: float
    dispersion: float
    readings: int


def fit_baseline(points: Sequence[tuple[float, float]]) -> Baseline:
    """Fit the in-control level from ``(log ratio, standard error)`` pairs.

    Args:
        points: the baseline readings, at least two.

    Returns:
        The baseline; ``dispersion`` is the sample standard deviation of the standardised
        residuals, floored at 1 (binomial noise).

    Raises:
        ValueError: fewer than two points.
    """
    if len(points) < 2:
        raise ValueError(f"a baseline needs at least 2 readings, got {len(points)}")
    x = np.array([p[0] for p in points], dtype=float)
    se = np.maximum(np.array([p[1] for p in points], dtype=float), 1e-9)
    mean = float(x.mean())
    residuals = (x - mean) / se
    return Baseline(mean, max(1.0, float(residuals.std(ddof=1))), len(points))


def cusum_step(previous: float, log_ratio: float, se: float, baseline: Baseline,
               settings: CusumSettings) -> float:
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
    scale = max(se, 1e-9) * baseline.dispersion
    z = float(np.clip((log_ratio - baseline.mean) / scale, -Z_CLIP, Z_CLIP))
    return min(settings.cap, max(0.0, previous - z - settings.slack))


def cusum_path(points: Iterable[tuple[float, float]],
               settings: CusumSettings) -> list[float | None]:
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
