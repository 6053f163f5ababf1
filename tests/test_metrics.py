"""Disparate impact: known values, edge cases, bad input, and fairlearn as an oracle."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, demographic_parity_ratio
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness.metrics import calculate_disparate_impact_ratio
from fairlens_monitor.fairness.stats import ratio_ci, ratio_interval


def frame(female: tuple[int, int], male: tuple[int, int]) -> pd.DataFrame:
    """Decisions with the given (approved, applicants) per group."""
    rows = []
    for group, (approved, n) in (("Female", female), ("Male", male)):
        rows += [(group, i < approved) for i in range(n)]
    return pd.DataFrame(rows, columns=["gender", "approved"])


def test_four_of_ten_against_six_of_ten() -> None:
    result = calculate_disparate_impact_ratio(frame((4, 10), (6, 10)))
    assert result["female_rate"] == 0.4
    assert result["male_rate"] == 0.6
    assert result["dir"] == pytest.approx(2 / 3)
    assert result["dir_alert"] is True
    assert result["gap"] == pytest.approx(0.2)
    assert result["gap_alert"] is False  # 0.2 is not > 0.2
    assert (result["details"]["female_count"], result["details"]["female_approved"]) == (10, 4)
    assert (result["details"]["male_count"], result["details"]["male_approved"]) == (10, 6)


def test_dir_exactly_on_the_line_does_not_alert() -> None:
    result = calculate_disparate_impact_ratio(frame((280, 500), (350, 500)))
    assert result["dir"] == 0.8
    assert result["dir_alert"] is False


def test_privileged_rate_zero_gives_no_dir_and_an_alert() -> None:
    result = calculate_disparate_impact_ratio(frame((3, 10), (0, 10)))
    assert result["dir"] is None
    assert result["reason"] == "male_rate_zero"
    assert result["dir_alert"] is True
    assert result["gap"] == pytest.approx(0.3)


@pytest.mark.parametrize("missing", ["Female", "Male"])
def test_missing_group_gives_rate_zero_and_a_message(missing: str) -> None:
    df = frame((4, 10), (6, 10))
    result = calculate_disparate_impact_ratio(df[df["gender"] != missing])
    rate_key = "female_rate" if missing == "Female" else "male_rate"
    assert result[rate_key] == 0.0
    assert f"'{missing}'" in result["message"]
    assert result["dir_alert"] is True


def test_empty_frame_is_measured_without_division_by_zero() -> None:
    result = calculate_disparate_impact_ratio(pd.DataFrame({"gender": [], "approved": []}))
    assert result["dir"] is None
    assert result["female_rate"] == result["male_rate"] == 0.0


@pytest.mark.parametrize(
    "values", [[1, 0, 1, 1], ["yes", "No", "YES", "yes"], ["true", "false", "True", "TRUE"]]
)
def test_binary_outcome_encodings(values: list[object]) -> None:
    df = pd.DataFrame({"gender": ["Female", "Female", "Male", "Male"], "approved": values})
    result = calculate_disparate_impact_ratio(df)
    assert result["female_rate"] == 0.5
    assert result["male_rate"] == 1.0


def test_non_binary_outcome_names_column_count_and_examples() -> None:
    df = pd.DataFrame({"gender": ["Female", "Male", "Male"], "approved": ["yes", "maybe", 2]})
    with pytest.raises(DataError, match=r"'approved' has 2 values .*'aaaaa', '9' \["):
        calculate_disparate_impact_ratio(df)
    with pytest.raises(DataError, match=r"'approved' has 1 values .*'9' \["):
        calculate_disparate_impact_ratio(pd.DataFrame({"gender": ["Male"] * 2, "approved": [1, 2]}))


def test_missing_outcome_values_are_an_error() -> None:
    df = pd.DataFrame({"gender": ["Female", "Male"], "approved": [1.0, np.nan]})
    with pytest.raises(DataError, match="1 missing values"):
        calculate_disparate_impact_ratio(df)


def test_missing_column_is_named() -> None:
    with pytest.raises(DataError, match="no column 'sex'"):
        calculate_disparate_impact_ratio(frame((1, 2), (1, 2)), protected_attribute="sex")


def test_other_attribute_and_values() -> None:
    df = pd.DataFrame({"age_band": ["young"] * 4 + ["old"] * 4, "hired": [1, 0, 0, 0, 1, 1, 0, 0]})
    result = calculate_disparate_impact_ratio(
        df,
        protected_attribute="age_band",
        protected_value="young",
        privileged_value="old",
        outcome="hired",
    )
    assert result["dir"] == 0.5


counts = st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(female=counts, male=counts)
@settings(max_examples=200, deadline=None)
def test_matches_fairlearn_and_keeps_invariants(
    female: tuple[int, int], male: tuple[int, int]
) -> None:
    df = frame(female, male)
    result = calculate_disparate_impact_ratio(df)
    y, groups = df["approved"].to_numpy(), df["gender"].to_numpy()
    assert result["gap"] == pytest.approx(
        demographic_parity_difference(y, y, sensitive_features=groups), abs=1e-12
    )
    if male[0] == 0:
        assert result["dir"] is None
        assert result["dir_alert"]
        return
    assert result["dir"] >= 0
    assert result["dir_alert"] == (result["dir"] < 0.8)
    assert result["gap_alert"] == (result["gap"] > 0.2)
    if result["female_rate"] <= result["male_rate"]:  # fairlearn's ratio is min/max
        assert result["dir"] == pytest.approx(
            demographic_parity_ratio(y, y, sensitive_features=groups), abs=1e-12
        )
    shuffled = df.sample(frac=1.0, random_state=0)
    assert calculate_disparate_impact_ratio(shuffled) == result


@example(u=(271, 281), p=(271, 281))  # pow() and an exact square once differed here
@given(u=counts, p=counts)
@settings(max_examples=200, deadline=None)
def test_ratio_interval_vectorised_equals_one_at_a_time(
    u: tuple[int, int], p: tuple[int, int]
) -> None:
    low, high = ratio_interval(
        np.array([u[0], 0]), np.array([u[1], 0]), np.array([p[0], 5]), np.array([p[1], 9])
    )
    one_low, one_high = ratio_ci(u[0], u[1], p[0], p[1])
    assert low[0] == one_low
    assert high[0] == (math.inf if one_high is None else one_high)
    assert math.isnan(low[1])  # an empty group: no interval
    assert math.isnan(high[1])
