"""Statistics behind a verdict: known values, independent oracles, and German Credit."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency
from scipy.stats.contingency import relative_risk

from fairlens_monitor import stats
from fairlens_monitor.groups import GroupSpec, assess, table_from_frame

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


def katz(a: int, n1: int, c: int, n2: int, z: float = 1.959963984540054) -> tuple[float, float]:
    log_rr = math.log((a / n1) / (c / n2))
    se = math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n2)
    return math.exp(log_rr - z * se), math.exp(log_rr + z * se)


def test_four_of_ten_against_six_of_ten_is_noise() -> None:
    c = stats.compare(4, 10, 6, 10)
    assert c.ratio == pytest.approx(2 / 3)
    assert c.test == "fisher"
    assert c.p_value == pytest.approx(fisher_two_sided(4, 10, 6, 10))
    assert round(c.p_value, 2) == 0.66
    assert stats.verdict(c, c.p_value, threshold=0.8, alpha=0.05, min_group_size=5)[0] == (
        "inconclusive")


def test_a_large_clear_difference_is_adverse() -> None:
    c = stats.compare(300, 1000, 600, 1000)
    assert c.test == "z"
    assert c.p_value < 1e-6
    assert stats.verdict(c, c.p_value, threshold=0.8, alpha=0.05, min_group_size=30)[0] == (
        "adverse")


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
        "inconclusive")


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
@given(st.integers(1, 500), st.integers(1, 500), st.data())
def test_katz_interval_matches_scipy_relative_risk(n1: int, n2: int,
                                                   data: st.DataObject) -> None:
    a = data.draw(st.integers(1, n1))
    c = data.draw(st.integers(1, n2))
    ours = stats.katz_ci(a, n1, c, n2)
    assert ours is not None
    oracle = relative_risk(a, n1, c, n2).confidence_interval(0.95)
    assert ours[0] == pytest.approx(oracle.low, rel=1e-9)
    assert ours[1] == pytest.approx(oracle.high, rel=1e-9)


def test_katz_interval_with_a_zero_cell_adds_a_half_everywhere() -> None:
    low, high = stats.katz_ci(0, 20, 10, 20) or (0.0, 0.0)
    expected = katz(0.5, 20.5, 10.5, 20.5)  # type: ignore[arg-type]
    assert (low, high) == pytest.approx(expected)
    assert stats.katz_ci(0, 0, 10, 20) is None


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
    for (p1, q1) in zip(ps, adjusted, strict=True):
        for (p2, q2) in zip(ps, adjusted, strict=True):
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
        201, 310, 499, 690)
    assert round(c.ratio or 0, 4) == 0.8966
    low, high = katz(201, 310, 499, 690)
    assert (round(c.ci_low or 0, 3), round(c.ci_high or 0, 3)) == (round(low, 3), round(high, 3))
    assert c.test == "z"
    assert round(c.p_value, 3) == round(z_test(201, 310, 499, 690), 3) == 0.017
    # 0.8966 clears the four-fifths line: significant, but not practically adverse.
    assert result.verdict == "ok"


def test_german_credit_by_age_band(german: pd.DataFrame) -> None:
    spec = GroupSpec(attributes=("age",), bands={"age": (25.0,)}, privileged_value=">=25",
                     unprivileged_value="<25")
    result = assess(table_from_frame(german, spec, "risk"), spec)
    young = result.headline
    assert young is not None
    assert young.comparison is not None
    c = young.comparison
    assert (c.approved, c.applicants, c.reference_approved, c.reference_applicants) == (
        88, 149, 612, 851)
    assert round(c.ratio or 0, 4) == 0.8212
    low, high = katz(88, 149, 612, 851)
    assert (round(c.ci_low or 0, 3), round(c.ci_high or 0, 3)) == (round(low, 3), round(high, 3))
    assert round(c.p_value, 3) == round(z_test(88, 149, 612, 851), 3) == 0.002
    assert c.shortfall == pytest.approx(149 * 0.7 - 88)
    # Passes the four-fifths rule; the gap is nonetheless real. Not adverse at 0.8 ...
    assert result.verdict == "ok"
    # ... but adverse under a stricter 0.9 line, where the significance now matters.
    strict = assess(table_from_frame(german, spec, "risk"),
                    GroupSpec(attributes=("age",), bands={"age": (25.0,)},
                              privileged_value=">=25", unprivileged_value="<25", threshold=0.9))
    assert strict.verdict == "adverse"


@pytest.mark.parametrize(("verdict", "ci_low", "drift", "level"), [
    ("adverse", 0.6, False, "high"),
    ("ok", 0.78, True, "high"),       # drifting, and the interval reaches below the line
    ("ok", 0.85, True, "medium"),     # drifting, interval still above the line
    ("inconclusive", 0.5, False, "medium"),
    ("ok", 0.79, False, "medium"),    # cannot rule out a breach
    ("ok", None, False, "medium"),
    ("ok", 0.82, False, "low"),
])
def test_risk_level(verdict: stats.Verdict, ci_low: float | None, drift: bool,
                    level: str) -> None:
    assert stats.risk_level(verdict, ci_low, drift, threshold=0.8) == level
