"""Explanations must be true: credit score is named as a cause only when the data shows it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness.explain import (
    analyze_feature_impact,
    generate_explanation,
    welch_p_value,
)
from fairlens_monitor.fairness.metrics import calculate_disparate_impact_ratio
from fairlens_monitor.sources.simulator import generate_loan_data


def test_simulated_gap_is_not_explained_by_credit_score() -> None:
    df = generate_loan_data(20_000, 0.6, seed=1)
    analysis = analyze_feature_impact(df)
    assert analysis["verdict"] == "not_explained"
    assert analysis["bands_with_gap"] == analysis["bands_compared"] == 5
    assert abs(analysis["explained_share"]) < 0.1
    text = " ".join(analysis["causes"])
    assert "not explained by credit score" in text
    assert "credit scores are alike" in text
    assert "lower average" not in text


@pytest.mark.parametrize("seed", range(40))
def test_simulator_never_blames_credit_score_across_seeds(seed: int) -> None:
    df = generate_loan_data(1000, 0.5, seed=seed)
    causes = analyze_feature_impact(df)["causes"]
    assert not any("lower average" in c for c in causes), causes


def confounded(n: int = 6000, seed: int = 3) -> pd.DataFrame:
    """Women have lower scores; approval depends on score only."""
    rng = np.random.default_rng(seed)
    gender = np.where(rng.random(n) < 0.5, "Female", "Male")
    score = np.where(gender == "Female", rng.normal(610, 40, n), rng.normal(690, 40, n))
    approved = rng.random(n) < 1 / (1 + np.exp(-(score - 650) / 25))
    return pd.DataFrame({"gender": gender, "credit_score": score, "approved": approved})


def test_score_driven_gap_is_attributed_to_credit_score() -> None:
    analysis = analyze_feature_impact(confounded())
    assert analysis["verdict"] in ("explained", "partly_explained")
    assert analysis["explained_share"] > 0.6
    assert analysis["causes"][0].startswith("lower average credit score for Female applicants")


def test_band_table_counts_add_up() -> None:
    df = generate_loan_data(3000, 0.4, seed=9)
    bands = analyze_feature_impact(df)["bands"]
    assert sum(b["unprivileged_count"] for b in bands) == (df["gender"] == "Female").sum()
    assert sum(b["privileged_count"] for b in bands) == (df["gender"] == "Male").sum()


def test_explanation_text_forms() -> None:
    assert generate_explanation(0.64, ["a", "b"]) == (
        "DIR = 0.64 (<0.8). Potential bias — likely causes: a; b."
    )
    assert generate_explanation(0.85, []) == (
        "DIR = 0.85 (>=0.8). System considered fair; no action needed."
    )
    assert generate_explanation(None, ["x"]) == "DIR not computable: male approval rate zero."
    assert generate_explanation(0.7, ["c"], threshold=0.75).startswith("DIR = 0.70 (<0.75).")


def test_explanation_of_a_real_alert_names_the_reason() -> None:
    df = generate_loan_data(5000, 0.8, seed=2)
    dir_value = calculate_disparate_impact_ratio(df)["dir"]
    text = generate_explanation(dir_value, analyze_feature_impact(df)["causes"])
    assert text.startswith(f"DIR = {dir_value:.2f} (<0.8). Potential bias — likely causes: ")
    assert "not explained by credit score" in text


def test_no_gap_is_said_plainly() -> None:
    df = pd.DataFrame(
        {
            "gender": ["Female", "Male"] * 50,
            "credit_score": range(100),
            "approved": [True, False] * 50,
        }
    )
    analysis = analyze_feature_impact(df)
    assert analysis["verdict"] == "no_gap"
    assert analysis["causes"] == ["no approval gap against Female applicants"]


def test_missing_feature_column_is_named() -> None:
    df = generate_loan_data(10, 0.0).drop(columns="credit_score")
    with pytest.raises(DataError, match="'credit_score'"):
        analyze_feature_impact(df)


@given(
    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=40),
    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=40),
)
@settings(max_examples=200, deadline=None)
def test_welch_p_value_matches_scipy(a: list[float], b: list[float]) -> None:
    from scipy.stats import ttest_ind

    x, y = np.array(a), np.array(b)
    assume(x.var() > 1e-6 or y.var() > 1e-6)
    with warnings.catch_warnings():  # scipy warns about its own precision on constant groups
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = ttest_ind(x, y, equal_var=False).pvalue
    assert welch_p_value(x, y) == pytest.approx(expected, rel=1e-7, abs=1e-12)


def test_welch_p_value_degenerate_groups() -> None:
    assert welch_p_value(np.array([1.0]), np.array([1.0, 2.0])) == 1.0
    assert welch_p_value(np.array([3.0, 3.0]), np.array([3.0, 3.0])) == 1.0
    assert welch_p_value(np.array([3.0, 3.0]), np.array([4.0, 4.0])) == 0.0


# ------------------------------------------------ counts (a source's GROUP BY) = expanded rows

count_tables = st.lists(
    st.tuples(
        st.sampled_from(["F", "M"]), st.booleans(), st.integers(300, 850), st.integers(1, 40)
    ),
    min_size=4,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(count_tables)
def test_decomposition_of_counts_equals_that_of_the_expanded_rows(
    table: list[tuple[str, bool, int, int]],
) -> None:
    from fairlens_monitor.fairness.explain import analyze_feature_impact

    counts = pd.DataFrame(table, columns=["g", "y", "score", "n"])
    rows = counts.loc[counts.index.repeat(counts.n)].drop(columns="n")
    weighted = analyze_feature_impact(counts, "g", "F", "M", "y", feature="score", weight="n")
    expanded = analyze_feature_impact(rows, "g", "F", "M", "y", feature="score")
    assert weighted["verdict"] == expanded["verdict"]
    assert weighted["causes"] == expanded["causes"]
    assert weighted["bands"] == expanded["bands"]
    for key in (
        "overall_gap",
        "within_band_gap",
        "explained_share",
        "standardised_difference",
        "difference_p_value",
    ):
        if expanded[key] is None:
            assert weighted[key] is None
        else:
            assert weighted[key] == pytest.approx(expanded[key], rel=1e-9, abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-50, 50), st.integers(0, 9)), min_size=1, max_size=30).filter(
        lambda xs: sum(w for _, w in xs) > 0
    ),
    st.lists(st.floats(0, 1), min_size=1, max_size=7),
)
def test_weighted_quantiles_equal_numpy_on_the_repeated_values(
    pairs: list[tuple[int, int]], probabilities: list[float]
) -> None:
    from fairlens_monitor.fairness.explain import weighted_quantiles

    x = np.array([v for v, _ in pairs], dtype=float)
    w = np.array([c for _, c in pairs], dtype=float)
    expected = np.quantile(np.repeat(x, w.astype(int)), probabilities)
    assert weighted_quantiles(x, w, np.array(probabilities)) == pytest.approx(expected, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 100), st.integers(1, 5)), min_size=1, max_size=20),
    st.lists(st.tuples(st.integers(0, 100), st.integers(1, 5)), min_size=1, max_size=20),
)
def test_weighted_welch_equals_scipy_on_the_repeated_values(
    a: list[tuple[int, int]], b: list[tuple[int, int]]
) -> None:
    from scipy.stats import ttest_ind

    from fairlens_monitor.fairness.explain import welch_p_value

    xa, wa = (np.array(v, dtype=float) for v in zip(*a, strict=True))
    xb, wb = (np.array(v, dtype=float) for v in zip(*b, strict=True))
    ra, rb = np.repeat(xa, wa.astype(int)), np.repeat(xb, wb.astype(int))
    got = welch_p_value(xa, xb, wa, wb)
    if len(ra) < 2 or len(rb) < 2 or ra.var() + rb.var() == 0:
        assert got == welch_p_value(ra, rb)  # the degenerate cases agree with themselves
        return
    with warnings.catch_warnings():  # scipy warns when one group is constant
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = float(ttest_ind(ra, rb, equal_var=False).pvalue)
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-12)
