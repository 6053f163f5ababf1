"""Ground-truth error rates per group, their parities and intervals, against the oracles.

The intervals (Wilson, Newcombe, Katz) are checked against statsmodels to 1e-9; the rates
against fairlearn's ``true_positive_rate``/``false_positive_rate``/``false_negative_rate`` and
scikit-learn's ``precision_score`` (precision, and FOR as 1 − the negative class's
precision); the differences, ratios and the average odds difference against AIF360's
``ClassificationMetric`` (unprivileged = the compared group, privileged = the reference).
Where a rate's denominator is empty, fairlearn and AIF360 say 0 (or NaN); we say None, and
the tests check exactly that instead of the value.
"""

from __future__ import annotations

import math
import warnings
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    true_positive_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import precision_score
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from fairlens_monitor.fairness import intervals, stats
from fairlens_monitor.fairness.groups import GroupSpec, assess, count_groups
from fairlens_monitor.fairness.outcomes import (
    RATES,
    error_rates,
    included_outcome_metrics,
    outcome_metrics,
)
from fairlens_monitor.fairness.report import to_json

with warnings.catch_warnings():  # AIF360 logs (not warns) about optional extras
    warnings.simplefilter("ignore")
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import ClassificationMetric

TOL = 1e-9
counts = st.integers(0, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


def _close(ours: float | np.ndarray, theirs: float) -> bool:
    """``ours`` may be a 0-d array: the interval functions are vectorised."""
    return abs(float(ours) - float(theirs)) <= TOL


@settings(max_examples=100, deadline=None)
@given(counts, st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_equals_statsmodels(xn: tuple[int, int], confidence: float) -> None:
    x, n = xn
    low, high = intervals.wilson(x, n, confidence)
    if n == 0:
        assert math.isnan(low)
        assert math.isnan(high)
        return
    sm_low, sm_high = proportion_confint(x, n, alpha=1 - confidence, method="wilson")
    assert _close(low, sm_low)
    assert _close(high, sm_high)
    assert low <= x / n <= high


@settings(max_examples=100, deadline=None)
@given(
    counts.filter(lambda c: c[1] > 0),
    counts.filter(lambda c: c[1] > 0),
    st.sampled_from([0.9, 0.95, 0.99]),
)
def test_newcombe_equals_statsmodels(
    a: tuple[int, int], b: tuple[int, int], confidence: float
) -> None:
    low, high = intervals.newcombe(a[0], a[1], b[0], b[1], confidence)
    sm = confint_proportions_2indep(
        a[0], a[1], b[0], b[1], method="newcomb", compare="diff", alpha=1 - confidence
    )
    assert _close(low, sm[0])
    assert _close(high, sm[1])
    assert low <= a[0] / a[1] - b[0] / b[1] <= high


@settings(max_examples=100, deadline=None)
@given(counts.filter(lambda c: c[1] > 0), counts.filter(lambda c: c[1] > 0))
def test_ground_truth_ratios_use_the_dir_interval(a: tuple[int, int], b: tuple[int, int]) -> None:
    # one home for the interval of a ratio of two proportions: stats.ratio_interval
    groups = pd.Series(["g"] * a[1] + ["r"] * b[1])
    y_true = np.ones(a[1] + b[1], dtype=bool)  # all positive: TPR = approvals / applicants
    y_pred = np.array(
        [True] * a[0] + [False] * (a[1] - a[0]) + [True] * b[0] + [False] * (b[1] - b[0])
    )
    g = next(
        e for e in error_rates(count_groups(groups, y_pred, y_true), "r", ["g"]) if e.label == "g"
    )
    low, high = stats.ratio_ci(a[0], a[1], b[0], b[1])
    ci = g.comparisons["tpr"].ratio_ci
    if high is None:  # no reference approvals: the ratio is undefined
        assert ci is None
    else:
        assert ci is not None
        assert ci == pytest.approx((low, high), rel=1e-12)


def _frame(
    k: int, n: int, seed: int, p_approve: float, p_label: float
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = pd.Series(rng.integers(0, k, size=n).astype(str))
    return groups, rng.random(n) < p_approve, rng.random(n) < p_label


# fairlearn takes ~0.1 s per MetricFrame, so the example count is kept modest.
@settings(max_examples=15, deadline=None)
@given(
    st.integers(2, 4),
    st.integers(1, 150),
    st.integers(0, 2**32 - 1),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_group_rates_equal_fairlearn(
    k: int, n: int, seed: int, p_approve: float, p_label: float
) -> None:
    groups, y_pred, y_true = _frame(k, n, seed, p_approve, p_label)
    table = count_groups(groups, y_pred, y_true)
    ours = {g.label: g for g in error_rates(table, table.labels[0], table.labels)}
    nan = float("nan")
    theirs = MetricFrame(
        metrics={
            "tpr": partial(true_positive_rate, pos_label=1),
            "fpr": partial(false_positive_rate, pos_label=1),
            "fnr": partial(false_negative_rate, pos_label=1),
            "precision": partial(precision_score, pos_label=1, zero_division=nan),
            "npv": partial(precision_score, pos_label=0, zero_division=nan),
        },
        y_true=y_true.astype(int),
        y_pred=y_pred.astype(int),
        sensitive_features=groups,
    ).by_group
    for label, g in ours.items():
        row = theirs.loc[label]
        expected = {
            "tpr": row["tpr"],
            "fpr": row["fpr"],
            "fnr": row["fnr"],
            "precision": row["precision"],
            "fdr": 1 - row["precision"],
            "for": 1 - row["npv"],
        }
        for name, (_, den) in RATES.items():
            value = g.rates[name]
            if g.counts[den] == 0:  # fairlearn says 0 (or NaN) here; we say undefined
                assert value is None, (name, label)
            else:
                assert value is not None, (name, label)
                assert _close(value, expected[name]), (name, label)


def _aif360(groups: pd.Series, y_pred: np.ndarray, y_true: np.ndarray) -> ClassificationMetric:
    g = groups.astype(float).to_numpy()
    truth = pd.DataFrame({"g": g, "y": y_true.astype(float)})
    pred = pd.DataFrame({"g": g, "y": y_pred.astype(float)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ClassificationMetric(
            BinaryLabelDataset(df=truth, label_names=["y"], protected_attribute_names=["g"]),
            BinaryLabelDataset(df=pred, label_names=["y"], protected_attribute_names=["g"]),
            unprivileged_groups=[{"g": 0}],
            privileged_groups=[{"g": 1}],
        )


def _aif(metric: ClassificationMetric, name: str) -> float:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return float(getattr(metric, name)())


def _match(ours: float | None, theirs: float) -> bool:
    if ours is None:
        return not math.isfinite(theirs)
    return math.isfinite(theirs) and abs(ours - theirs) <= TOL * max(1.0, abs(theirs))


AIF_NAMES = {  # our comparison → AIF360's difference and ratio methods (None: AIF360 has none)
    "tpr": ("true_positive_rate_difference", None),
    "fpr": ("false_positive_rate_difference", "false_positive_rate_ratio"),
    "fnr": ("false_negative_rate_difference", "false_negative_rate_ratio"),
    "fdr": ("false_discovery_rate_difference", "false_discovery_rate_ratio"),
    "for": ("false_omission_rate_difference", "false_omission_rate_ratio"),
}


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 200), st.integers(0, 2**32 - 1), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_comparisons_equal_aif360(n: int, seed: int, p_approve: float, p_label: float) -> None:
    groups, y_pred, y_true = _frame(2, n, seed, p_approve, p_label)
    if groups.nunique() < 2:
        groups = pd.Series(["0", "1"] * (n // 2) + ["0"] * (n % 2))
    table = count_groups(groups, y_pred, y_true)
    compared = next(g for g in error_rates(table, "1", ["0"]) if g.label == "0")
    metric = _aif360(groups, y_pred, y_true)
    reference = next(g for g in error_rates(table, "1", ["0"]) if g.label == "1")
    c = compared.comparisons

    def check(name: str, difference: float, ratio: float | None) -> None:
        den = RATES[name][1] if name in RATES else None
        defined = den is None or min(compared.counts[den], reference.counts[den]) > 0
        if name == "average_odds":
            defined = all(
                min(compared.counts[d], reference.counts[d]) > 0 for d in ("positives", "negatives")
            )
        if not defined:  # AIF360 says NaN or 0 here; we say undefined
            assert c[name].difference is None, name
            assert c[name].ratio is None, name
            return
        assert _match(c[name].difference, difference), name
        if ratio is not None:
            assert _match(c[name].ratio, ratio), name

    for name, (difference, ratio) in AIF_NAMES.items():
        check(name, _aif(metric, difference), None if ratio is None else _aif(metric, ratio))
    with np.errstate(all="ignore"):
        tpr = metric.true_positive_rate(False) / metric.true_positive_rate(True)
        ppv = metric.positive_predictive_value(False) - metric.positive_predictive_value(True)
    check("tpr", _aif(metric, "equal_opportunity_difference"), float(tpr))  # EO ratio
    check("precision", float(ppv), None)  # predictive parity
    check("average_odds", _aif(metric, "average_odds_difference"), None)


def test_undefined_rates_are_none_and_the_fairlearn_five_are_unchanged() -> None:
    # Group "b": every label negative (no TPR/FNR) and nothing approved (no precision/FDR).
    groups = pd.Series(["a"] * 4 + ["b"] * 3)
    y_pred = np.array([1, 0, 1, 0, 0, 0, 0], dtype=bool)
    y_true = np.array([1, 1, 0, 0, 0, 0, 0], dtype=bool)
    table = count_groups(groups, y_pred, y_true)
    b = next(g for g in error_rates(table, "a", ["b"]) if g.label == "b")
    assert b.rates == {
        "tpr": None,
        "fpr": 0.0,
        "fnr": None,
        "precision": None,
        "fdr": None,
        "for": 0.0,
    }
    assert b.comparisons["tpr"].difference is None
    assert b.comparisons["tpr"].ratio is None
    assert b.comparisons["average_odds"].difference is None
    assert b.comparisons["fpr"].difference == -0.5
    assert b.comparisons["fpr"].ratio == 0.0
    assert b.comparisons["fpr"].ratio_ci is not None  # a ratio of 0 has the interval [0, u]
    assert b.comparisons["fpr"].ratio_ci[0] == 0.0
    assert b.comparisons["fpr"].difference_ci is not None
    summary = outcome_metrics(table)  # fairlearn's convention: an empty rate counts as 0
    assert summary.equal_opportunity_difference == 0.5


def test_the_reading_json_carries_every_groups_rates() -> None:
    groups, y_pred, y_true = _frame(3, 600, 7, 0.5, 0.6)
    table = count_groups(groups, y_pred, y_true)
    spec = GroupSpec(attributes=("g",), privileged_value="0", unprivileged_value=None)
    assessment = assess(table, spec)
    doc: dict[str, Any] = to_json(assessment, included_outcome_metrics(table, assessment))
    by_group = {g["group"]: g for g in doc["groups"]}
    assert "vs_reference" not in by_group["0"]["ground_truth"]  # the reference itself
    vs = by_group["1"]["ground_truth"]["vs_reference"]
    assert set(vs) == {*RATES, "average_odds"}
    low, high = vs["fpr"]["difference_ci"]
    assert low <= vs["fpr"]["difference"] <= high
    assert set(doc["outcome_metrics"]) == {  # the fairlearn five, as before
        "demographic_parity_difference",
        "demographic_parity_ratio",
        "equal_opportunity_difference",
        "equalized_odds_difference",
        "equalized_odds_ratio",
    }


def test_error_rates_need_labels_and_a_known_reference() -> None:
    table = count_groups(pd.Series(["a", "b"]), np.array([True, False]), np.array([1, 0]))
    with pytest.raises(ValueError, match="not in the table"):
        error_rates(table, "z", ["a"])
    with pytest.raises(ValueError, match="ground-truth label"):
        error_rates(count_groups(pd.Series(["a"]), np.array([True])), "a", [])
