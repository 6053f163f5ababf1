"""Statistics behind a verdict: known values, independent oracles, and German Credit."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency
from statsmodels.stats.proportion import proportion_confint

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.fairness import stats
from fairlens_monitor.fairness.groups import GroupSpec, assess
from tests.factories import table_from_frame

GERMAN = Path(__file__).parent / "data" / "german_credit.csv"


def fisher_two_sided(a: int, n1: int, c: int, n2: int) -> float:
    """Fisher's exact test from the hypergeometric law, written out with math.comb."""
    k, total = a + c, n1 + n2

    def prob(x: int) -> float:
        return math.comb(n1, x) * math.comb(n2, k - x) / math.comb(total, k)

    observed = prob(a)
    support = range(max(0, k - n2), min(k, n1) + 1)
    return min(1.0, sum(prob(x) for x in support if prob(x) <= observed * (1 + 1e-7)))


def z_test(a: int, n1: int, c: int, n2: int) -> float:
    """Pooled two-proportion z-test, normal tail from math.erfc."""
    pooled = (a + c) / (n1 + n2)
    z = (a / n1 - c / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return math.erfc(abs(z) / math.sqrt(2))


def mover_cp(a: int, n1: int, c: int, n2: int) -> tuple[float, float]:
    """MOVER-R for p1/p2 (Newcombe 2013, eq. 7.x) from statsmodels' Clopper–Pearson limits."""
    l1, u1 = proportion_confint(a, n1, alpha=0.05, method="beta")
    l2, u2 = proportion_confint(c, n2, alpha=0.05, method="beta")
    p1, p2 = a / n1, c / n2
    low = (
        p1 * p2 - math.sqrt(max(0.0, (p1 * p2) ** 2 - l1 * u2 * (2 * p1 - l1) * (2 * p2 - u2)))
    ) / (u2 * (2 * p2 - u2))
    high = (
        p1 * p2 + math.sqrt(max(0.0, (p1 * p2) ** 2 - u1 * l2 * (2 * p1 - u1) * (2 * p2 - l2)))
    ) / (l2 * (2 * p2 - l2))
    return low, high


def test_four_of_ten_against_six_of_ten_is_noise() -> None:
    c = stats.compare(4, 10, 6, 10)
    assert c.ratio == pytest.approx(2 / 3)
    assert c.test == "fisher"
    assert c.p_value == pytest.approx(fisher_two_sided(4, 10, 6, 10))
    assert round(c.p_value, 2) == 0.66
    assert stats.verdict(c, c.p_value, threshold=0.8, alpha=0.05, min_group_size=5)[0] == (
        "inconclusive"
    )


def test_a_large_clear_difference_is_adverse() -> None:
    c = stats.compare(300, 1000, 600, 1000)
    assert c.test == "z"
    assert c.p_value < 1e-6
    assert stats.verdict(c, c.p_value, threshold=0.8, alpha=0.05, min_group_size=30)[0] == (
        "adverse"
    )


def test_small_groups_are_inconclusive_whatever_the_ratio() -> None:
    c = stats.compare(0, 20, 20, 20)
    verdict, reason = stats.verdict(c, c.p_value, threshold=0.8, alpha=0.05, min_group_size=30)
    assert verdict == "inconclusive"
    assert "20 applicants" in reason


def test_a_significant_difference_above_the_line_is_ok() -> None:
    c = stats.compare(8200, 10000, 9000, 10000)  # ratio 0.911, p ~ 0
    assert c.p_value < 1e-9
    assert stats.verdict(c, c.p_value, threshold=0.8, alpha=0.05, min_group_size=30)[0] == "ok"


def test_reference_without_approvals_is_inconclusive() -> None:
    c = stats.compare(5, 50, 0, 50)
    assert c.ratio is None
    assert stats.verdict(c, c.p_value, threshold=0.8, alpha=0.05, min_group_size=30)[0] == (
        "inconclusive"
    )


def test_shortfall_is_expected_at_the_pooled_rate_minus_actual() -> None:
    # pooled rate (88 + 612) / 1000 = 0.7; 149 * 0.7 = 104.3 expected, 88 approved.
    assert stats.shortfall(88, 149, 612, 851) == pytest.approx(16.3)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 400), st.integers(1, 400), st.data())
def test_p_value_matches_independent_oracles(n1: int, n2: int, data: st.DataObject) -> None:
    a = data.draw(st.integers(0, n1))
    c = data.draw(st.integers(0, n2))
    p, test = stats.difference_p_value(a, n1, c, n2)
    total, k = n1 + n2, a + c
    small = min(n1, n2) < 30 or min(n1, n2) * min(k, total - k) / total < 5
    assert test == ("none" if k in (0, total) else "fisher" if small else "z")
    if a + c in (0, n1 + n2):
        assert (p, test) == (1.0, "none")
    elif test == "fisher":
        assert p == pytest.approx(fisher_two_sided(a, n1, c, n2), rel=1e-6, abs=1e-12)
    else:
        chi2 = chi2_contingency([[a, n1 - a], [c, n2 - c]], correction=False)
        assert p == pytest.approx(chi2.pvalue, rel=1e-9, abs=1e-15)
        assert p == pytest.approx(z_test(a, n1, c, n2), rel=1e-9, abs=1e-15)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2000), st.data())
def test_clopper_pearson_matches_statsmodels(n: int, data: st.DataObject) -> None:
    x = data.draw(st.integers(0, n))
    low, high = stats.clopper_pearson(x, n)
    oracle = proportion_confint(x, n, alpha=0.05, method="beta")
    assert float(low) == pytest.approx(oracle[0], rel=1e-9, abs=1e-15)
    assert float(high) == pytest.approx(oracle[1], rel=1e-9, abs=1e-15)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 1000), st.integers(1, 1000), st.data())
def test_ratio_interval_matches_the_mover_formula(n1: int, n2: int, data: st.DataObject) -> None:
    a = data.draw(st.integers(1, n1))
    c = data.draw(st.integers(1, n2))
    low, high = stats.ratio_ci(a, n1, c, n2)
    expected = mover_cp(a, n1, c, n2)
    assert low == pytest.approx(expected[0], rel=1e-9)
    assert high == pytest.approx(expected[1], rel=1e-9)


@settings(max_examples=500, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.data())
def test_ratio_interval_always_contains_its_estimate(n1: int, n2: int, data: st.DataObject) -> None:
    a = data.draw(st.integers(0, n1))
    c = data.draw(st.integers(0, n2))
    low, high = stats.ratio_ci(a, n1, c, n2)
    ratio = stats.impact_ratio(a, n1, c, n2)
    assert low is not None
    assert low >= 0
    if ratio is None:  # no approvals in the reference: undefined ratio, unbounded interval
        assert high is None
        return
    assert high is not None
    assert low <= ratio * (1 + 1e-12)
    assert ratio <= high * (1 + 1e-12)
    assert low < high


def test_ratio_interval_at_the_edges() -> None:
    # everybody approved in both groups: a real interval around 1, not [1, 1]
    low, high = stats.ratio_ci(30, 30, 30, 30)
    assert low is not None
    assert high is not None
    assert low < 1 < high
    assert (low, high) == pytest.approx(
        (
            proportion_confint(30, 30, method="beta")[0],
            1 / proportion_confint(30, 30, method="beta")[0],
        )
    )
    # 0/100 against 60/100: ratio 0, and the interval starts at 0 (the old one was
    # 0.001–0.132, which excluded its own estimate)
    low, high = stats.ratio_ci(0, 100, 60, 100)
    assert low == 0.0
    assert high is not None
    assert 0 < high < 0.2
    # no approval in the reference: undefined ratio, [low, ∞)
    low, high = stats.ratio_ci(5, 100, 0, 100)
    assert stats.impact_ratio(5, 100, 0, 100) is None
    assert low is not None
    assert low > 0
    assert high is None
    assert stats.format_interval(low, high).endswith("–∞")
    assert stats.format_interval(0.5, None, digits=2, sep=", ") == "0.50, ∞"  # console line
    assert stats.ratio_ci(0, 0, 10, 20) == (None, None)
    assert stats.format_interval(None, None) == "undefined"


def exact_coverage(n: int, p1: float, p2: float) -> float:
    """The probability that the interval covers p1/p2, summed over every possible table."""
    from scipy.stats import binom

    truth = p1 / p2
    a = np.arange(n + 1, dtype=float)[:, None]
    c = np.arange(n + 1, dtype=float)[None, :]
    low, high = stats.ratio_interval(a, n, c, n)
    covered = (low <= truth * (1 + 1e-12)) & (truth * (1 - 1e-12) <= high)
    return float((binom.pmf(a, n, p1) * binom.pmf(c, n, p2) * covered).sum())


@pytest.mark.parametrize("n", [30, 100])
def test_coverage_is_at_least_nominal_on_a_grid_with_extreme_rates(n: int) -> None:
    # exact (no Monte-Carlo error); the Katz interval covered 69.8 % at 30 per group with
    # 0.97 vs 0.99, 0 % for a group rate of 0, and collapsed to [1, 1] at 100 % vs 100 %
    rates = (0.0, 0.01, 0.3, 0.97, 0.99, 1.0)
    values = [exact_coverage(n, p1, p2) for p1 in rates for p2 in rates if p2 > 0]
    assert min(values) >= 0.93
    assert sum(values) / len(values) >= 0.945


def test_a_p_value_that_underflows_is_not_a_false_zero() -> None:
    c = stats.compare(0, 100_000, 100_000, 100_000)  # z-test: 2·Φ(−447) underflows
    assert c.test == "z"
    assert c.p_value == stats.P_FLOOR
    assert stats.format_p(c.p_value, c.test) == "< 1e-300"
    f = stats.compare(0, 2_000, 29, 29)  # Fisher: 29 of 2,029 approvals all in one group
    assert f.test == "fisher"
    assert f.p_value > 0
    assert stats.verdict(c, c.p_value, threshold=0.8, alpha=0.05, min_group_size=30)[1] == (
        "ratio 0.000 < 0.8, p < 1e-300 < 0.05"
    )


def test_p_values_print_no_more_precision_than_their_test_has() -> None:
    # Titanic-like tail: the z-test said 3.4e-108 where Fisher's exact said 5.2e-103
    assert stats.format_p(3.4e-108, "z") == "< 1e-06"
    assert stats.format_p(5.2e-103, "fisher") == "5.2e-103"
    assert stats.format_p(0.0016, "z") == "0.0016"
    assert stats.format_p(1.0, "none") == "1"


def test_holm_matches_its_definition() -> None:
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001, 0.9, 0.02]) == pytest.approx([1.0, 0.004, 1.0, 0.06])
    assert stats.holm([]) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_never_lowers_a_p_value_and_keeps_the_order(ps: list[float]) -> None:
    adjusted = stats.holm(ps)
    assert all(q >= p for p, q in zip(ps, adjusted, strict=True))
    assert all(q <= 1.0 for q in adjusted)
    for p1, q1 in zip(ps, adjusted, strict=True):
        for p2, q2 in zip(ps, adjusted, strict=True):
            if p1 < p2:
                assert q1 <= q2


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return pd.read_csv(GERMAN)


def test_german_credit_by_sex(german: pd.DataFrame) -> None:
    spec = GroupSpec(attributes=("sex",), privileged_value="male", unprivileged_value="female")
    result = assess(table_from_frame(german, spec, "risk"), spec)
    female = result.headline
    assert female is not None
    assert female.comparison is not None
    c = female.comparison
    assert (c.approved, c.applicants, c.reference_approved, c.reference_applicants) == (
        201,
        310,
        499,
        690,
    )
    assert round(c.ratio or 0, 4) == 0.8966
    low, high = mover_cp(201, 310, 499, 690)
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high), rel=1e-9)
    assert (round(low, 3), round(high, 3)) == (0.811, 0.984)
    assert c.test == "z"
    assert round(c.p_value, 3) == round(z_test(201, 310, 499, 690), 3) == 0.017
    # 0.8966 clears the four-fifths line: significant, but not practically adverse.
    assert result.verdict == "ok"


def test_german_credit_by_age_band(german: pd.DataFrame) -> None:
    spec = GroupSpec(
        attributes=("age",),
        bands={"age": (25.0,)},
        privileged_value=">=25",
        unprivileged_value="<25",
    )
    result = assess(table_from_frame(german, spec, "risk"), spec)
    young = result.headline
    assert young is not None
    assert young.comparison is not None
    c = young.comparison
    assert (c.approved, c.applicants, c.reference_approved, c.reference_applicants) == (
        88,
        149,
        612,
        851,
    )
    assert round(c.ratio or 0, 4) == 0.8212
    low, high = mover_cp(88, 149, 612, 851)
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high), rel=1e-9)
    assert round(c.p_value, 3) == round(z_test(88, 149, 612, 851), 3) == 0.002
    assert c.shortfall == pytest.approx(149 * 0.7 - 88)
    # Passes the four-fifths rule; the gap is nonetheless real. Not adverse at 0.8 ...
    assert result.verdict == "ok"
    # ... but adverse under a stricter 0.9 line, where the significance now matters.
    strict = assess(
        table_from_frame(german, spec, "risk"),
        GroupSpec(
            attributes=("age",),
            bands={"age": (25.0,)},
            privileged_value=">=25",
            unprivileged_value="<25",
            threshold=0.9,
        ),
    )
    assert strict.verdict == "adverse"


@pytest.mark.parametrize(
    ("verdict", "ci_low", "drift", "level"),
    [
        ("adverse", 0.6, False, "high"),
        ("ok", 0.78, True, "high"),  # drifting, and the interval reaches below the line
        ("ok", 0.85, True, "medium"),  # drifting, interval still above the line
        ("inconclusive", 0.5, False, "medium"),
        ("ok", 0.79, False, "medium"),  # cannot rule out a breach
        ("ok", None, False, "medium"),
        ("ok", 0.82, False, "low"),
    ],
)
def test_risk_level(verdict: stats.Verdict, ci_low: float | None, drift: bool, level: str) -> None:
    assert stats.risk_level(verdict, ci_low, drift, threshold=0.8) == level


def test_the_shortfall_rule_is_off_by_default_and_opt_in(german: pd.DataFrame) -> None:
    # 29 CFR 1607.4D: German Credit by age passes four-fifths (0.821) but is significant
    # (p 0.0016) with 16.3 approvals short.
    def by_age(shortfall: float | None) -> tuple[str, str]:
        spec = GroupSpec(
            attributes=("age",),
            bands={"age": (25.0,)},
            privileged_value=">=25",
            unprivileged_value="<25",
            shortfall=shortfall,
        )
        result = assess(table_from_frame(german, spec, "risk"), spec)
        return result.verdict, result.reason

    assert by_age(None)[0] == "ok"
    verdict, reason = by_age(10)
    assert verdict == "adverse"
    assert reason == (
        "<25: ratio 0.821 >= 0.8 but significant (p 0.0016 < 0.05) with a "
        "shortfall of 16.3 approvals >= 10 (29 CFR 1607.4D)"
    )
    assert by_age(20)[0] == "ok"  # significant, but fewer than 20 approvals short


def test_the_shortfall_rule_needs_significance() -> None:
    c = stats.compare(70, 100, 80, 100)  # ratio 0.875, shortfall 5, p ≈ 0.1
    assert c.p_value > 0.05
    assert (
        stats.verdict(c, c.p_value, threshold=0.8, alpha=0.05, min_group_size=30, shortfall_min=1)[
            0
        ]
        == "ok"
    )


def test_the_explanation_prints_a_tiny_p_value_as_a_bound(settings: Settings) -> None:
    from fairlens_monitor.ops.measuring import measure_scenario

    # 1,000 applicants at drift 1.0: the z-test's p is far below 1e-6
    result = measure_scenario(settings, 0, "monitored", 1.0)
    assert result.explanation is not None
    assert "p < 1e-06 (z)" in result.explanation
    assert "p = <" not in result.explanation


def test_warm_up_leaves_a_missing_scipy_to_the_statistics_that_need_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``measure`` warms the import on a thread: an error there would be a stray traceback."""
    monkeypatch.setitem(sys.modules, "scipy.special", None)  # import now raises ImportError
    stats.warm_up()  # …which is not raised here
    with pytest.raises(ImportError):
        stats.clopper_pearson(3, 10)
