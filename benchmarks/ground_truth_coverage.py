"""Coverage of the ground-truth intervals (Newcombe, MOVER-R ratio, average odds) by simulation.

Run: ``.venv/bin/python benchmarks/ground_truth_coverage.py [--sims 4000]``. For every cell of
the grid (rows per group 30/100/300/1,000 for each of the two compared denominators; true
rates 0.05/0.3/0.7/0.95 for the group and the reference) it draws binomial counts, builds the
95 % interval of :mod:`fairlens_monitor.fairness.intervals` and counts how often it holds the true
value. The ratio interval is the DIR's (``stats.ratio_interval``, MOVER-R Clopper–Pearson);
Katz's log interval, which readings used before, is printed beside it for comparison: Katz
draws with a zero count have no interval — shown as the undefined share and counted as not
covering. Monte-Carlo margin with 4,000 draws per
cell: ±0.0069 (two standard errors at 95 %). Pure numpy, seeded, a few seconds.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from fairlens_monitor.fairness import intervals, stats

SIZES = (30, 100, 300, 1000)
RATES = (0.05, 0.3, 0.7, 0.95)


Cell = tuple[int, float, float, float, float]


def katz(x1: np.ndarray, n1: int, x2: np.ndarray, n2: int) -> intervals.Interval:
    """Katz's log interval of ``(x1/n1) / (x2/n2)`` (Katz et al. 1978): the one before.

    NaN where a count is 0 (the log method is undefined there).
    """
    a1, a2 = np.asarray(x1, float), np.asarray(x2, float)
    z = intervals.z_value(0.95)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(a1 / n1) - np.log(a2 / n2)
        se = np.sqrt(np.maximum(1 / a1 - 1 / n1 + 1 / a2 - 1 / n2, 0.0))
        low, high = np.exp(log_ratio - z * se), np.exp(log_ratio + z * se)
    ok = (a1 > 0) & (a2 > 0)
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def coverage(
    sims: int, sizes: tuple[int, ...] = SIZES, rates: tuple[float, ...] = RATES, seed: int = 2026
) -> dict[str, list[Cell]]:
    """Simulate every cell of the grid.

    Args:
        sims: draws per cell.
        sizes: rows per denominator (the same for the group and the reference).
        rates: true rates, taken in every (group, reference) pair.
        seed: the generator's seed.

    Returns:
        Per method (``newcombe``, ``ratio``, ``katz`` (before), ``average_odds``) the cells
        ``(m, p_group, p_reference, coverage, undefined share)``.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, list[Cell]] = {"newcombe": [], "ratio": [], "katz": [], "average_odds": []}
    for m, p1, p2 in itertools.product(sizes, rates, rates):
        x1, x2 = rng.binomial(m, p1, sims), rng.binomial(m, p2, sims)
        low, high = intervals.newcombe(x1, m, x2, m)
        out["newcombe"].append(
            (m, p1, p2, float(np.mean((low <= p1 - p2) & (p1 - p2 <= high))), 0.0)
        )
        low, high = stats.ratio_interval(x1, m, x2, m)
        hit = (low <= p1 / p2 * (1 + 1e-12)) & (p1 / p2 * (1 - 1e-12) <= high)
        out["ratio"].append((m, p1, p2, float(np.mean(hit)), float(np.mean(np.isnan(low)))))
        low, high = katz(x1, m, x2, m)
        hit = (low <= p1 / p2) & (p1 / p2 <= high)  # NaN (undefined) compares False
        out["katz"].append((m, p1, p2, float(np.mean(hit)), float(np.mean(np.isnan(low)))))
        # Average odds: TPR rates p1 (group) / p2 (reference) on m positives each, FPR rates
        # 1 - p2 / 1 - p1 on m negatives each (a different pair of rates, same grid).
        t1, t2 = x1, x2
        f1, f2 = rng.binomial(m, 1 - p2, sims), rng.binomial(m, 1 - p1, sims)
        d_t, d_f = t1 / m - t2 / m, f1 / m - f2 / m
        low, high = intervals.mover_sum(
            (d_f, d_t), intervals.newcombe(f1, m, f2, m), intervals.newcombe(t1, m, t2, m)
        )
        truth = ((1 - p2) - (1 - p1) + p1 - p2) / 2
        out["average_odds"].append(
            (m, p1, p2, float(np.mean((low / 2 <= truth) & (truth <= high / 2))), 0.0)
        )
    return out


def main() -> None:
    """Print, per method and group size, the worst and mean coverage over the rate pairs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=4000)
    sims = parser.parse_args().sims
    result = coverage(sims)
    margin = 2 * (0.95 * 0.05 / sims) ** 0.5
    print(f"95 % intervals, {sims:,} draws per cell, Monte-Carlo margin ±{margin:.4f}")
    print(f"{'method':<13} {'m':>5} {'worst':>7} {'(cell)':>14} {'mean':>7} {'undefined':>10}")
    for method, cells in result.items():
        for m in SIZES:
            row = [c for c in cells if c[0] == m]
            worst = min(row, key=lambda c: c[3])
            print(
                f"{method:<13} {m:>5} {worst[3]:>7.3f} {f'({worst[1]}, {worst[2]})':>14} "
                f"{np.mean([c[3] for c in row]):>7.3f} "
                f"{np.mean([c[4] for c in row]):>10.3f}"
            )


if __name__ == "__main__":
    main()
