"""Error rates of the verdict and coverage of the DIR interval, over a grid, in one run.

What an examiner asks of a monitor that runs unattended: with every group truly equal, how
often is a reading called ``adverse`` (the false-finding rate; goal ≤ alpha plus the
Monte-Carlo margin in every cell), how often is a real DIR of 0.7 found (power), and how
often does the 95 % interval cover the true ratio (goal ≥ 93 % in every cell, ≥ 94.5 % on
average). Everything runs through the project's own code (``groups.assess``,
``stats.ratio_interval``); the rules before issue 13 are computed beside it:

* ``old`` false-adverse / power with ``reference: highest``: Holm over the k − 1
  comparisons with the data-chosen reference (the rule before), next to ``new``: Holm over
  all k(k − 1)/2 pairs (``groups.holm_all_pairs``). With a fixed reference both are the
  same rule.
* coverage of the old Katz interval (0.5 added on a zero approval count) next to the new
  MOVER-R Clopper–Pearson interval. Coverage is computed *exactly* — the sum of the
  binomial probabilities of every table whose interval covers the true ratio — so it has no
  Monte-Carlo error at all.

Grid (issue 13): k = 2, 3, 5, 7 groups; n = 30, 100, 300, 1,000 applicants per group;
base approval rates 0.05, 0.3, 0.7, 0.95; fixed and highest reference; ``--readings``
simulated readings per cell (default 4,000). Power: the last group's rate is 0.7 × base.
Thresholds: DIR 0.8, alpha 0.05, minimum group size 30, minimum share 2 %.

    python benchmarks/error_rates.py [--readings 4000] [--workers 2] [--seed 2026]
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from scipy.stats import binom, norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fairlens_monitor.fairness import stats
from fairlens_monitor.fairness.groups import GroupResult, GroupSpec, GroupTable, assess

GRID_K = (2, 3, 5, 7)
GRID_N = (30, 100, 300, 1000)
GRID_BASE = (0.05, 0.3, 0.7, 0.95)
REFERENCES = ("privileged", "highest")
COVERAGE_RATES = (0.0, 0.01, 0.05, 0.3, 0.7, 0.95, 0.99, 1.0)
ALPHA, THRESHOLD, POWER_DIR = 0.05, 0.8, 0.7
Interval = Callable[[np.ndarray, int, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Cell:
    """One cell's result: adverse rates under the new and the old multiplicity rule."""

    k: int
    n: int
    base: float
    reference: str
    dir_level: float
    readings: int
    new: float
    old: float


@contextmanager
def cached_statistics() -> Iterator[None]:
    """Memoise the pure per-table statistics while simulating (same values, far fewer calls).

    Simulated readings repeat the same 2×2 tables over and over; the functions are pure, so
    caching changes no result, only the time. The originals are restored afterwards.
    """
    saved = stats.difference_p_value, stats.ratio_ci
    stats.difference_p_value = functools.lru_cache(maxsize=None)(saved[0])
    stats.ratio_ci = functools.lru_cache(maxsize=None)(saved[1])
    try:
        yield
    finally:
        stats.difference_p_value, stats.ratio_ci = saved


def spec_for(k: int, reference: str) -> GroupSpec:
    """The grid's settings for k groups ``g0``…: ``g0`` is the fixed reference."""
    fixed = reference == "privileged"
    return GroupSpec(
        attributes=("g",),
        reference="privileged" if fixed else "highest",
        privileged_value="g0" if fixed else None,
        unprivileged_value=None,
        threshold=THRESHOLD,
        alpha=ALPHA,
        min_group_size=30,
        min_group_share=0.02,
    )


def old_adverse(groups: tuple[GroupResult, ...], spec: GroupSpec) -> set[str]:
    """The rule before issue 13: Holm over the comparisons with the reference only.

    Returns:
        The labels of the groups that rule would call adverse.
    """
    compared = [g for g in groups if g.comparison is not None]
    adjusted = stats.holm([g.comparison.p_value for g in compared if g.comparison])
    return {
        g.label
        for g, p in zip(compared, adjusted, strict=True)
        if g.comparison is not None
        and stats.verdict(
            g.comparison,
            p,
            threshold=spec.threshold,
            alpha=spec.alpha,
            min_group_size=spec.min_group_size,
        )[0]
        == "adverse"
    }


def simulate_cell(
    k: int,
    n: int,
    base: float,
    reference: str,
    readings: int,
    rng: np.random.Generator,
    *,
    dir_level: float = 1.0,
) -> Cell:
    """Simulate ``readings`` readings of one cell and count adverse verdicts.

    Args:
        k: groups per reading.
        n: applicants per group.
        base: every group's approval rate, except the last one's: ``dir_level × base``.
        reference: ``privileged`` (``g0`` fixed) or ``highest``.
        readings: how many readings to simulate.
        rng: the random generator (seeded by the caller).
        dir_level: 1.0 for the false-finding rate; 0.7 for power.

    Returns:
        The share of readings judged adverse (new rule, old rule). For power only the
        lowered group's verdict counts.
    """
    spec = spec_for(k, reference)
    labels = tuple(f"g{i}" for i in range(k))
    rates = np.full(k, base)
    rates[-1] = base * dir_level
    applicants = np.full(k, n, dtype=np.int64)
    new = old = 0
    with cached_statistics():
        for _ in range(readings):
            approved = rng.binomial(n, rates).astype(np.int64)
            result = assess(GroupTable(labels, applicants, approved), spec)
            if dir_level == 1.0:
                new += result.verdict == "adverse"
                old += bool(old_adverse(result.groups, spec))
            else:
                last = next(g for g in result.groups if g.label == labels[-1])
                new += last.verdict == "adverse"
                old += labels[-1] in old_adverse(result.groups, spec)
    return Cell(k, n, base, reference, dir_level, readings, new / readings, old / readings)


def katz_old(a: np.ndarray, n1: int, c: np.ndarray, n2: int) -> tuple[np.ndarray, np.ndarray]:
    """The interval before issue 13: Katz, 0.5 added to approvals and applicants on a zero."""
    a, c = np.broadcast_arrays(np.asarray(a, float), np.asarray(c, float))
    zero = (a == 0) | (c == 0)
    aa, cc = np.where(zero, a + 0.5, a), np.where(zero, c + 0.5, c)
    m1, m2 = np.where(zero, n1 + 0.5, n1), np.where(zero, n2 + 0.5, n2)
    log_rr = np.log((aa / m1) / (cc / m2))
    se = np.sqrt(np.maximum(1 / aa - 1 / m1 + 1 / cc - 1 / m2, 0.0))
    z = norm.ppf(0.975)
    return np.exp(log_rr - z * se), np.exp(log_rr + z * se)


def new_interval(a: np.ndarray, n1: int, c: np.ndarray, n2: int) -> tuple[np.ndarray, np.ndarray]:
    """The project's interval (``stats.ratio_interval``) over a whole table of counts."""
    return stats.ratio_interval(a, n1, c, n2)


def coverage(n1: int, n2: int, p1: float, p2: float, interval: Interval) -> float | None:
    """Exact coverage of the true ratio p1/p2: the probability of the covering tables.

    Returns:
        The coverage, or None when the true ratio is undefined (p2 = 0).
    """
    if p2 == 0:
        return None
    truth = p1 / p2
    a = np.arange(n1 + 1, dtype=float)[:, None]
    c = np.arange(n2 + 1, dtype=float)[None, :]
    weight = binom.pmf(a, n1, p1) * binom.pmf(c, n2, p2)
    low, high = interval(a, n1, c, n2)
    tol = 1e-12 * max(truth, 1e-300)
    covered = (low <= truth + tol) & (truth - tol <= high)
    return float((weight * covered).sum())


def margin(p: float, runs: int) -> float:
    """Half-width of a 95 % Monte-Carlo interval for a rate p estimated from ``runs``."""
    return 1.959963984540054 * math.sqrt(max(p * (1 - p), 1e-12) / runs)


def _run(job: tuple[int, int, float, str, float, int, int]) -> Cell:
    k, n, base, reference, dir_level, readings, seed = job
    rng = np.random.default_rng(seed)
    return simulate_cell(k, n, base, reference, readings, rng, dir_level=dir_level)


def error_table(readings: int, workers: int, seed: int) -> list[Cell]:
    """Simulate every cell of the grid (false-adverse and power), ``workers`` at a time."""
    jobs = [
        (k, n, base, ref, level, readings, seed + i)
        for i, (k, n, base, ref, level) in enumerate(
            (k, n, b, r, lv)
            for k in GRID_K
            for n in GRID_N
            for b in GRID_BASE
            for r in REFERENCES
            for lv in (1.0, POWER_DIR)
        )
    ]
    with Pool(workers) as pool:
        return pool.map(_run, jobs, chunksize=1)


def recheck(cell: Cell, seed: int) -> Cell:
    """Simulate a cell again with ten times the readings, from another seed.

    A cell whose rule is exactly at alpha (k = 2 with the highest reference is one two-sided
    test, whose size is alpha up to the z-test's approximation) lands above the one-sided
    Monte-Carlo bound in about 1 of 40 runs by chance alone; ten times the readings tell
    chance from a real excess.
    """
    return simulate_cell(
        cell.k,
        cell.n,
        cell.base,
        cell.reference,
        cell.readings * 10,
        np.random.default_rng(seed),
        dir_level=cell.dir_level,
    )


def print_errors(cells: list[Cell], readings: int, seed: int) -> None:
    """Print false-adverse rate and power per cell, old and new rule side by side."""
    bound = ALPHA + margin(ALPHA, readings)
    by = {(c.k, c.n, c.base, c.reference, c.dir_level): c for c in cells}
    print(
        f"\nfalse-adverse rate (all groups equal) and power (last group at DIR {POWER_DIR}); "
        f"{readings:,} readings per cell; goal: false-adverse <= alpha + margin = "
        f"{bound:.2%}"
    )
    print(
        f"{'k':>2} {'n':>5} {'base':>5} | {'fixed ref':>9} {'power':>6} | "
        f"{'highest old':>11} {'new':>6} {'power old':>9} {'new':>6}"
    )
    for k in GRID_K:
        for n in GRID_N:
            for b in GRID_BASE:
                f0, f1 = by[(k, n, b, "privileged", 1.0)], by[(k, n, b, "privileged", POWER_DIR)]
                h0, h1 = by[(k, n, b, "highest", 1.0)], by[(k, n, b, "highest", POWER_DIR)]
                flag = " !" if max(f0.new, h0.new) > bound else ""
                print(
                    f"{k:>2} {n:>5} {b:>5.2f} | {f0.new:>9.2%} {f1.new:>6.1%} | "
                    f"{h0.old:>11.2%} {h0.new:>6.2%} {h1.old:>9.1%} {h1.new:>6.1%}{flag}"
                )
    nulls = [c for c in cells if c.dir_level == 1.0]
    worst_new = max(nulls, key=lambda c: c.new)
    worst_old = max(nulls, key=lambda c: c.old)
    print(
        f"worst false-adverse cell, new rule: {worst_new.new:.2%} (k={worst_new.k}, "
        f"n={worst_new.n}, base {worst_new.base}, {worst_new.reference}); cells above "
        f"{bound:.2%}: {sum(c.new > bound for c in nulls)} of {len(nulls)}"
    )
    print(
        f"worst false-adverse cell, old rule: {worst_old.old:.2%} (k={worst_old.k}, "
        f"n={worst_old.n}, base {worst_old.base}, {worst_old.reference}); cells above "
        f"{bound:.2%}: {sum(c.old > bound for c in nulls)} of {len(nulls)}"
    )
    for i, cell in enumerate(c for c in nulls if c.new > bound):
        again = recheck(cell, seed + 10_000 + i)
        print(
            f"  re-run k={cell.k}, n={cell.n}, base {cell.base}, {cell.reference} with "
            f"{again.readings:,} readings: {again.new:.2%} ± "
            f"{margin(again.new, again.readings):.2%}"
        )


def print_coverage() -> tuple[float, float]:
    """Print exact coverage per (n, reference rate, group rate), new (old) interval.

    Returns:
        ``(minimum, mean)`` of the new interval's coverage over the defined cells.
    """
    print(
        "\ncoverage of the 95 % DIR interval (exact): new MOVER-R Clopper–Pearson (old Katz); "
        "rows: reference rate, columns: group rate"
    )
    new_all: list[tuple[float, int, float, float]] = []
    old_all: list[tuple[float, int, float, float]] = []
    for n in GRID_N:
        print(f"n = {n} per group")
        print("  ref\\grp " + " ".join(f"{p1:>14g}" for p1 in COVERAGE_RATES))
        for p2 in COVERAGE_RATES:
            cells = []
            for p1 in COVERAGE_RATES:
                new = coverage(n, n, p1, p2, new_interval)
                old = coverage(n, n, p1, p2, katz_old)
                if new is None or old is None:
                    cells.append(f"{'undefined':>14}")
                    continue
                new_all.append((new, n, p1, p2))
                old_all.append((old, n, p1, p2))
                cells.append(f"{new:>6.1%} ({old:>5.1%})")
            print(f"  {p2:>7g} " + " ".join(cells))
    for name, values in (("new", new_all), ("old", old_all)):
        worst = min(values)
        mean = sum(v[0] for v in values) / len(values)
        print(
            f"{name}: minimum {worst[0]:.2%} (n={worst[1]}, group rate {worst[2]}, reference "
            f"rate {worst[3]}), mean {mean:.2%}, cells below 93 %: "
            f"{sum(v[0] < 0.93 for v in values)} of {len(values)}"
        )
    return min(new_all)[0], sum(v[0] for v in new_all) / len(new_all)


def main() -> None:
    """Run the grid and print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    started = time.perf_counter()
    print_coverage()
    print(f"(coverage: {time.perf_counter() - started:.0f} s)")
    cells = error_table(args.readings, args.workers, args.seed)
    print_errors(cells, args.readings, args.seed)
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s, {args.workers} workers, seed {args.seed}"
    )


if __name__ == "__main__":
    main()
