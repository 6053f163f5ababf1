"""The built-in loan-decision simulator: the demo source at the start of the pipeline.

simulate → measure → detect → alert → log. This module produces the decisions that the rest
of the cycle measures. It is pure: randomness comes in as a seed or a ``numpy`` Generator,
and nothing here reads the clock or touches global state, so a stored seed reproduces a
reading exactly.

Model: both groups draw credit scores from the same uniform distribution on [500, 800];
approval is a Bernoulli draw at 0.70 for men and ``max(0, 0.70 - 0.4 * drift_level)`` for
women, independent of the score. Credit score therefore never explains a simulated gap, and
the explanation module must say so. The ground truth ``repaid`` depends on the score alone
(0.55 at 500 rising to 0.95 at 800, the same for both groups), so approving women less is
never justified by who repays; ``age`` is uniform on 18..75 and unrelated to anything.
These two columns are drawn after the others, so adding them left every earlier seed's
decisions unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairlens_monitor.config.simulation import DriftSchedule, check_drift

__all__ = ["DriftSchedule", "generate_loan_data", "scenario_seed", "unprivileged_approval_rate"]

PRIVILEGED_APPROVAL_RATE = 0.70
DRIFT_PENALTY = 0.4
CREDIT_SCORE_MIN = 500
CREDIT_SCORE_MAX = 800
AGE_MIN, AGE_MAX = 18, 75


def scenario_seed(base_seed: int, cycle_index: int, scenario: str) -> int:
    """Derive the seed of one scenario of one cycle from the configured base seed.

    Independent streams per cycle and scenario, yet fully determined by the three inputs, so
    the stored seed (or these inputs) reproduce the reading.

    Args:
        base_seed: ``simulation.seed`` from the config.
        cycle_index: zero-based cycle index.
        scenario: ``"reference"`` or ``"monitored"``.

    Returns:
        A non-negative integer below 2**53 (exact in JSON and in the audit payload).
    """
    code = {"reference": 0, "monitored": 1}[scenario]
    state = np.random.SeedSequence([base_seed, cycle_index, code]).generate_state(2, np.uint32)
    return (int(state[0]) << 21) | (int(state[1]) & 0x1FFFFF)


def unprivileged_approval_rate(drift_level: float) -> float:
    """Return the simulated female approval rate for a drift level.

    Args:
        drift_level: how far the system has drifted, in [0, 1].

    Returns:
        ``max(0, 0.70 - 0.4 * drift_level)``.

    Raises:
        ValueError: if ``drift_level`` is outside [0, 1] or not a finite number.
    """
    check_drift(drift_level)
    return max(0.0, PRIVILEGED_APPROVAL_RATE - DRIFT_PENALTY * drift_level)


def generate_loan_data(
    n_samples: int,
    drift_level: float,
    seed: int | np.random.Generator = 42,
) -> pd.DataFrame:
    """Simulate ``n_samples`` loan decisions with the given amount of drift against women.

    Args:
        n_samples: number of applicants, at least 1. Both groups are always present: with
            ``n_samples == 1`` two rows are returned (one per group); otherwise women get
            ``n_samples // 2`` rows and men the rest, in a seeded random order.
        drift_level: in [0, 1]; 0 gives equal approval rates.
        seed: an integer seed or a ``numpy.random.Generator``; equal seeds give equal frames.

    Returns:
        A DataFrame with columns ``application_id`` (int, 1..rows), ``gender`` ('Male' or
        'Female'), ``credit_score`` (int in [500, 800]), ``approved`` (bool), ``age`` (int
        in [18, 75]) and ``repaid`` (bool, the ground truth).

    Raises:
        ValueError: if ``n_samples`` < 1 or ``drift_level`` is outside [0, 1].
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer):
        raise ValueError(f"n_samples must be an integer, got {n_samples!r}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    female_rate = unprivileged_approval_rate(drift_level)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    rows = max(int(n_samples), 2)
    is_female = np.zeros(rows, dtype=bool)
    is_female[: rows // 2] = True
    is_female = rng.permutation(is_female)
    credit_score = rng.integers(CREDIT_SCORE_MIN, CREDIT_SCORE_MAX + 1, size=rows)
    approval_rate = np.where(is_female, female_rate, PRIVILEGED_APPROVAL_RATE)
    approved = rng.random(rows) < approval_rate
    age = rng.integers(AGE_MIN, AGE_MAX + 1, size=rows)
    repay_rate = 0.55 + 0.40 * (credit_score - CREDIT_SCORE_MIN) / (
        CREDIT_SCORE_MAX - CREDIT_SCORE_MIN
    )
    repaid = rng.random(rows) < repay_rate
    return pd.DataFrame(
        {
            "application_id": np.arange(1, rows + 1, dtype=np.int64),
            "gender": np.where(is_female, "Female", "Male"),
            "credit_score": credit_score.astype(np.int64),
            "approved": approved,
            "age": age.astype(np.int64),
            "repaid": repaid,
        }
    )
