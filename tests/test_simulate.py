"""The simulator: shape, reproducibility, rates and the drift schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairlens_monitor.sources.simulator import DriftSchedule, generate_loan_data, scenario_seed


def test_columns_types_and_ranges() -> None:
    df = generate_loan_data(1001, 0.3, seed=1)
    assert list(df.columns) == [
        "application_id",
        "gender",
        "credit_score",
        "approved",
        "age",
        "repaid",
    ]
    assert df["application_id"].tolist() == list(range(1, 1002))
    assert set(df["gender"]) == {"Male", "Female"}
    assert df["credit_score"].between(500, 800).all()
    assert df["credit_score"].dtype == np.int64
    assert df["approved"].dtype == bool
    assert df["age"].between(18, 75).all()
    assert df["repaid"].dtype == bool


def test_ground_truth_follows_the_score_not_the_group() -> None:
    df = generate_loan_data(200_000, 1.0, seed=5)
    by_gender = df.groupby("gender")["repaid"].mean()
    assert abs(by_gender["Female"] - by_gender["Male"]) < 0.01
    low = df[df.credit_score < 560]["repaid"].mean()
    high = df[df.credit_score > 740]["repaid"].mean()
    assert low < 0.65 < 0.85 < high


def test_new_columns_leave_earlier_draws_unchanged() -> None:
    # Decisions recorded before age/repaid existed must still reproduce from their seed.
    rng = np.random.default_rng(9)
    is_female = rng.permutation(np.r_[np.ones(50, bool), np.zeros(50, bool)])
    score = rng.integers(500, 801, size=100)
    approved = rng.random(100) < np.where(is_female, 0.7 - 0.4 * 0.5, 0.7)
    df = generate_loan_data(100, 0.5, seed=9)
    assert (df["gender"].eq("Female").to_numpy() == is_female).all()
    assert (df["credit_score"].to_numpy() == score).all()
    assert (df["approved"].to_numpy() == approved).all()


@pytest.mark.parametrize(("n", "females", "males"), [(1, 1, 1), (2, 1, 1), (7, 3, 4), (10, 5, 5)])
def test_both_groups_present_and_split_evenly(n: int, females: int, males: int) -> None:
    counts = generate_loan_data(n, 0.0, seed=3)["gender"].value_counts()
    assert counts["Female"] == females
    assert counts["Male"] == males


def test_same_seed_same_frame_and_no_global_state() -> None:
    np.random.seed(0)
    first = generate_loan_data(500, 0.5, seed=11)
    np.random.seed(12345)
    second = generate_loan_data(500, 0.5, seed=11)
    assert first.equals(second)
    assert not first.equals(generate_loan_data(500, 0.5, seed=12))


def test_accepts_a_generator() -> None:
    a = generate_loan_data(100, 0.2, seed=np.random.default_rng(5))
    b = generate_loan_data(100, 0.2, seed=np.random.default_rng(5))
    assert a.equals(b)


@pytest.mark.parametrize("drift", [-0.01, 1.01, math.nan, math.inf])
def test_drift_outside_unit_interval_is_an_error(drift: float) -> None:
    with pytest.raises(ValueError, match="drift_level"):
        generate_loan_data(10, drift)


@pytest.mark.parametrize("n", [0, -5])
def test_n_samples_below_one_is_an_error(n: int) -> None:
    with pytest.raises(ValueError, match="n_samples"):
        generate_loan_data(n, 0.0)


@pytest.mark.parametrize(("drift", "female_rate"), [(0.0, 0.70), (0.5, 0.50), (1.0, 0.30)])
def test_approval_rates_follow_the_specification(drift: float, female_rate: float) -> None:
    n = 200_000
    df = generate_loan_data(n, drift, seed=2)
    rates = df.groupby("gender")["approved"].mean()
    for group, expected in (("Female", female_rate), ("Male", 0.70)):
        se = math.sqrt(expected * (1 - expected) / (n / 2))
        assert abs(rates[group] - expected) < 5 * se, (group, rates[group])


def test_credit_scores_share_one_distribution() -> None:
    df = generate_loan_data(200_000, 1.0, seed=4)
    means = df.groupby("gender")["credit_score"].mean()
    assert abs(means["Female"] - means["Male"]) < 1.0  # SE of the difference is ~0.39
    assert abs(means["Female"] - 650) < 1.0


def test_ramp_schedule_moves_linearly_then_holds() -> None:
    ramp = DriftSchedule("ramp", start=0.0, end=1.0, cycles=5)
    assert [ramp.level_at(i) for i in range(7)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert DriftSchedule("constant", 0.3).level_at(99) == 0.3
    with pytest.raises(ValueError, match="cycle_index"):
        ramp.level_at(-1)


def test_schedule_rejects_out_of_range_levels() -> None:
    with pytest.raises(ValueError, match="drift_level"):
        DriftSchedule("ramp", start=0.0, end=1.5, cycles=3)


@given(st.integers(0, 2**32 - 1), st.integers(0, 10**6))
def test_scenario_seeds_are_deterministic_distinct_and_json_exact(base: int, index: int) -> None:
    ref, mon = scenario_seed(base, index, "reference"), scenario_seed(base, index, "monitored")
    assert ref == scenario_seed(base, index, "reference")
    assert ref != mon
    assert 0 <= ref < 2**53
    assert 0 <= mon < 2**53
