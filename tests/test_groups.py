"""More than two groups: bands, intersections, exclusions, Holm, and fairlearn as an oracle."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    equalized_odds_ratio,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness import stats
from fairlens_monitor.fairness.groups import (
    MISSING,
    GroupSpec,
    assess,
    count_groups,
    group_labels,
)
from fairlens_monitor.fairness.outcomes import outcome_metrics
from fairlens_monitor.fairness.report import to_json
from tests.factories import table_from_frame


def decisions(counts: dict[str, tuple[int, int]], column: str = "g") -> pd.DataFrame:
    """Rows with the given (approved, applicants) per group value."""
    rows = []
    for value, (approved, n) in counts.items():
        rows += [(value, i < approved) for i in range(n)]
    return pd.DataFrame(rows, columns=[column, "approved"])


def test_bands_and_intersections_label_every_row() -> None:
    df = pd.DataFrame({"gender": ["F", "M", "F", None], "age": [19, 25, 40.5, np.nan]})
    spec = GroupSpec(attributes=("gender", "age"), bands={"age": (25.0, 40.0)})
    assert list(group_labels(df, spec)) == [
        "F & <25",
        "M & [25, 40)",
        "F & >=40",
        f"{MISSING} & {MISSING}",
    ]


def test_a_banded_column_must_be_numeric() -> None:
    df = pd.DataFrame({"age": [20, "old"], "approved": [1, 0]})
    with pytest.raises(DataError, match=r"'age'.*1 values that are not numbers.*'aaa' \["):
        group_labels(df, GroupSpec(attributes=("age",), bands={"age": (25.0,)}))


def test_missing_values_form_their_own_counted_group() -> None:
    df = decisions({"A": (50, 100), "B": (45, 100)})
    df.loc[:9, "g"] = None
    table = table_from_frame(df, GroupSpec(attributes=("g",)), "approved")
    assert dict(zip(table.labels, table.applicants.tolist(), strict=True)) == {
        MISSING: 10,
        "A": 90,
        "B": 100,
    }


def test_small_groups_are_excluded_and_reported_with_counts() -> None:
    df = decisions({"A": (700, 1000), "B": (600, 1000), "C": (0, 20)})
    spec = GroupSpec(
        attributes=("g",),
        reference="highest",
        privileged_value=None,
        unprivileged_value=None,
        min_group_share=0.02,
    )
    result = assess(table_from_frame(df, spec, "approved"), spec)
    assert result.reference.label == "A"
    assert [(g.label, g.applicants, g.approved) for g in result.excluded] == [("C", 20, 0)]
    assert "20 of 2,020 rows = 1.0% (< 2.0%)" in (result.excluded[0].reason or "")
    assert result.verdict == "ok"  # B: 0.857, and C is not compared
    assert {g["group"]: g["role"] for g in to_json(result)["groups"]} == {
        "A": "reference",
        "B": "compared",
        "C": "excluded",
    }


def test_highest_rate_is_the_reference_under_ll144() -> None:
    df = decisions({"A": (300, 1000), "B": (600, 1000), "C": (580, 1000)})
    spec = GroupSpec(
        attributes=("g",), reference="highest", privileged_value=None, unprivileged_value=None
    )
    result = assess(table_from_frame(df, spec, "approved"), spec)
    assert result.reference.label == "B"
    assert result.headline is not None
    assert result.headline.label == "A"
    assert result.verdict == "adverse"
    assert "A: ratio 0.500" in result.reason


def test_holm_adjusts_p_values_across_the_groups_of_a_reading() -> None:
    counts = {"R": (24, 40), "A": (14, 40), "B": (20, 40), "C": (21, 40)}
    spec = GroupSpec(
        attributes=("g",),
        privileged_value="R",
        unprivileged_value=None,
        threshold=0.8,
        min_group_size=30,
    )
    result = assess(table_from_frame(decisions(counts), spec, "approved"), spec)
    compared = [g for g in result.groups if g.role == "compared"]
    raw = [g.comparison.p_value for g in compared if g.comparison]
    assert [g.p_adjusted for g in compared] == pytest.approx(stats.holm(raw))
    a = next(g for g in compared if g.label == "A")
    # A alone would be adverse at p < 0.05; after adjustment for 3 comparisons it is not.
    assert a.comparison is not None
    assert a.comparison.p_value < 0.05
    assert a.p_adjusted is not None
    assert a.p_adjusted >= 0.05
    assert a.verdict == "inconclusive"


def test_an_absent_privileged_value_is_named() -> None:
    spec = GroupSpec(attributes=("g",), privileged_value="Z")
    with pytest.raises(DataError, match=r"privileged value 'Z' does not occur in 'g'.*'A'"):
        assess(table_from_frame(decisions({"A": (1, 2), "B": (1, 2)}), spec, "approved"), spec)


def test_two_groups_reproduce_the_classic_reading() -> None:
    df = decisions({"Female": (280, 500), "Male": (350, 500)}, column="gender")
    spec = GroupSpec()
    result = assess(table_from_frame(df, spec, "approved"), spec)
    assert result.headline is not None
    assert result.headline.comparison is not None
    assert result.headline.comparison.ratio == 0.8
    assert result.verdict == "ok"


def _same(ours: float | None, theirs: float) -> bool:
    if ours is None:
        return math.isnan(theirs)
    return abs(ours - theirs) <= 1e-9


# fairlearn takes ~0.1 s per metric call, so the example count is kept modest.
@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 5),
    st.integers(1, 200),
    st.integers(0, 2**32 - 1),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_outcome_metrics_equal_fairlearn(
    k: int, n: int, seed: int, p_approve: float, p_label: float
) -> None:
    rng = np.random.default_rng(seed)
    groups = pd.Series(rng.integers(0, k, size=n).astype(str))
    y_pred = rng.random(n) < p_approve
    y_true = rng.random(n) < p_label
    table = count_groups(groups, y_pred, y_true)
    ours = outcome_metrics(table)
    kw = {"y_true": y_true.astype(int), "y_pred": y_pred.astype(int), "sensitive_features": groups}
    assert _same(ours.demographic_parity_difference, demographic_parity_difference(**kw))
    assert _same(ours.demographic_parity_ratio, demographic_parity_ratio(**kw))
    assert _same(ours.equal_opportunity_difference, equal_opportunity_difference(**kw))
    assert _same(ours.equalized_odds_difference, equalized_odds_difference(**kw))
    assert _same(ours.equalized_odds_ratio, equalized_odds_ratio(**kw))


def test_outcome_metrics_need_a_label() -> None:
    table = count_groups(pd.Series(["a", "b"]), np.array([True, False]))
    with pytest.raises(ValueError, match="ground-truth label"):
        outcome_metrics(table)
