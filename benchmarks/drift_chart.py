"""False-alarm rate and detection delay of the CUSUM drift chart, by simulation.

Runs the project's own chart (``fairlens_monitor.trend.cusum_path``) on simulated readings
of 500 applicants per group (the demo's 1,000 per scenario), privileged approval rate 0.70:

* in control: the unprivileged rate constant (DIR 1.0, and DIR 0.83 = drift 0.3) for the
  baseline plus 500 cycles — how often does the chart signal anyway?
* a step: 50 quiet cycles after the baseline, then DIR 0.90 or 0.85 — how many cycles until
  it signals (median, 95th percentile)?
* a slow ramp from DIR 1.0 to 0.57 over 60 cycles — how often is drift signalled before the
  reading's own DIR first falls below 0.8?

    python benchmarks/drift_chart.py [--runs N] [--seed S]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fairlens_monitor import stats
from fairlens_monitor.trend import CusumSettings, cusum_path

N, PRIVILEGED = 500, 0.70


def points(rates: np.ndarray, rng: np.random.Generator) -> list[tuple[float, float]]:
    a, c = rng.binomial(N, rates), rng.binomial(N, PRIVILEGED, size=len(rates))
    out = [stats.log_ratio_se(int(x), N, int(y), N) for x, y in zip(a, c, strict=True)]
    return [p for p in out if p is not None]


def first_signal(path: list[float | None], h: float, start: int = 0) -> int | None:
    return next((t for t, s in enumerate(path) if t >= start and s is not None and s > h), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    chart = CusumSettings()
    rng = np.random.default_rng(args.seed)
    w, h = chart.baseline_readings, chart.threshold
    print(f"chart: baseline {w} readings, slack k={chart.slack}, threshold h={h}; "
          f"{N} applicants per group; {args.runs} runs per row")
    started = time.perf_counter()
    for dir_level in (1.0, 0.83):
        rates = np.full(w + 500, PRIVILEGED * dir_level)
        alarms = sum(first_signal(cusum_path(points(rates, rng), chart), h) is not None
                     for _ in range(args.runs))
        print(f"in control at DIR {dir_level:.2f}: false alarm within 500 cycles in "
              f"{alarms / args.runs:.2%} of runs")
    for dir_level in (0.90, 0.85):
        before = w + 50
        delays, early = [], 0
        for _ in range(args.runs // 2):
            rates = np.r_[np.full(before, PRIVILEGED), np.full(100, PRIVILEGED * dir_level)]
            path = cusum_path(points(rates, rng), chart)
            early += first_signal(path[:before], h) is not None
            hit = first_signal(path, h, start=before)
            delays.append(np.inf if hit is None else hit - before + 1)
        d = np.array(delays)
        print(f"step to DIR {dir_level:.2f}: signalled after median {np.median(d):.0f}, "
              f"p95 {np.percentile(d, 95):.0f} cycles; missed in 100 cycles "
              f"{np.mean(np.isinf(d)):.2%}; false alarm before the step "
              f"{early / (args.runs // 2):.2%}")
    ramp = np.r_[np.full(w, PRIVILEGED), np.linspace(PRIVILEGED, 0.4, 60)]
    ahead = 0
    for _ in range(args.runs // 4):
        pts = points(ramp, rng)
        drift = first_signal(cusum_path(pts, chart), h)
        below = next(t for t, (x, _) in enumerate(pts) if np.exp(x) < 0.8)
        ahead += drift is not None and drift < below
    print(f"ramp DIR 1.0 -> 0.57 over 60 cycles: drift signalled before the first reading "
          f"below 0.8 in {ahead / (args.runs // 4):.1%} of runs")
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
