"""Drift over time: the CUSUM chart stays quiet on noise and catches a real shift quickly."""

from __future__ import annotations

import numpy as np
import pytest

from fairlens_monitor import stats
from fairlens_monitor.simulate import generate_loan_data, scenario_seed
from fairlens_monitor.trend import CusumSettings, cusum_path, cusum_step, fit_baseline

SETTINGS = CusumSettings()


def simulated_points(rates: np.ndarray, rng: np.random.Generator,
                     n: int = 500) -> list[tuple[float, float]]:
    """(log ratio, se) per cycle: unprivileged rate ``rates[t]`` vs a privileged 0.70."""
    a = rng.binomial(n, rates)
    c = rng.binomial(n, 0.7, size=len(rates))
    points = [stats.log_ratio_se(int(x), n, int(y), n) for x, y in zip(a, c, strict=True)]
    return [p for p in points if p is not None]


def test_no_drift_alert_in_500_cycles_of_the_real_simulator_at_constant_drift() -> None:
    points = []
    for cycle in range(SETTINGS.baseline_readings + 500):
        df = generate_loan_data(1000, 0.3, seed=scenario_seed(42, cycle, "monitored"))
        female, male = df[df.gender == "Female"], df[df.gender == "Male"]
        pair = stats.log_ratio_se(int(female.approved.sum()), len(female),
                                  int(male.approved.sum()), len(male))
        assert pair is not None
        points.append(pair)
    path = cusum_path(points, SETTINGS)
    assert path[: SETTINGS.baseline_readings] == [None] * SETTINGS.baseline_readings
    assert max(s for s in path if s is not None) <= SETTINGS.threshold


def test_false_alarm_rate_over_500_cycles_is_low() -> None:
    rng = np.random.default_rng(7)
    runs, cycles = 300, SETTINGS.baseline_readings + 500
    alarms = sum(
        max(s for s in cusum_path(simulated_points(np.full(cycles, 0.58), rng), SETTINGS)
            if s is not None) > SETTINGS.threshold
        for _ in range(runs))
    # Simulated at 4,000 runs: 0.7 % (docs/STATISTICS.md). Allow sampling error at 300 runs.
    assert alarms / runs <= 0.03


@pytest.mark.parametrize(("new_rate", "within"), [(0.595, 6), (0.63, 12)])
def test_a_step_down_is_detected_within_a_bounded_number_of_cycles(new_rate: float,
                                                                   within: int) -> None:
    rng = np.random.default_rng(11)
    before = SETTINGS.baseline_readings + 20
    delays = []
    for _ in range(200):
        rates = np.r_[np.full(before, 0.7), np.full(60, new_rate)]
        path = cusum_path(simulated_points(rates, rng), SETTINGS)
        assert all(s is None or s <= SETTINGS.threshold for s in path[:before])
        hits = [t for t, s in enumerate(path) if s is not None and s > SETTINGS.threshold]
        delays.append(hits[0] - before + 1)
    # DIR 1.0 -> 0.85 (new_rate 0.595) or -> 0.90 (0.63), at 500 applicants per group.
    assert np.percentile(delays, 95) <= within


def test_detection_comes_before_the_four_fifths_line_on_a_slow_ramp() -> None:
    rng = np.random.default_rng(3)
    ramp = np.r_[np.full(SETTINGS.baseline_readings, 0.7), np.linspace(0.7, 0.4, 60)]
    first_drift, first_below = [], []
    for _ in range(100):
        points = simulated_points(ramp, rng)
        path = cusum_path(points, SETTINGS)
        first_drift.append(next(t for t, s in enumerate(path)
                                if s is not None and s > SETTINGS.threshold))
        first_below.append(next(t for t, (x, _) in enumerate(points) if np.exp(x) < 0.8))
    assert np.mean(np.array(first_drift) < np.array(first_below)) >= 0.95


def test_one_wild_reading_cannot_signal_alone() -> None:
    baseline = fit_baseline([(0.0, 0.05), (0.01, 0.05), (-0.01, 0.05)])
    assert cusum_step(0.0, -5.0, 0.05, baseline, SETTINGS) <= SETTINGS.threshold
    assert cusum_step(0.0, 0.0, 0.05, baseline, SETTINGS) == 0.0


def test_over_dispersed_baselines_widen_the_chart() -> None:
    noisy = fit_baseline([(0.2 * (-1) ** i, 0.01) for i in range(30)])
    assert noisy.dispersion > 10
    with pytest.raises(ValueError, match="at least 2"):
        fit_baseline([(0.0, 0.1)])
