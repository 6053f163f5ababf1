"""Measure and detect for one cycle's scenarios, with no I/O (the pure half of a cycle).

simulate → **measure** → **detect** → alert → log. ``measure_cycle`` simulates the reference
(drift 0) and the monitored scenario, forms the configured groups, judges them
(:mod:`fairlens_monitor.groups`), computes the ground-truth metrics, advances the CUSUM drift
chart from the state the database passed in, and writes the explanation text that an alert
would encrypt. Equal inputs give equal outputs, so a stored reading can be reproduced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fairlens_monitor import stats
from fairlens_monitor.config import Settings
from fairlens_monitor.errors import DataError
from fairlens_monitor.explain import analyze_feature_impact, generate_explanation
from fairlens_monitor.groups import (
    Assessment,
    GroupResult,
    assess,
    count_groups,
    group_labels,
    to_json,
)
from fairlens_monitor.metrics import binary_outcome
from fairlens_monitor.outcomes import OutcomeMetrics, included_outcome_metrics
from fairlens_monitor.simulate import generate_loan_data, scenario_seed
from fairlens_monitor.trend import cusum_step, fit_baseline

GROUP_COLUMN = "_fairlens_group"


@dataclass(frozen=True)
class DriftState:
    """What the drift chart needs from earlier readings of the monitored scenario.

    ``baseline_points`` are ``(log ratio, se)`` of the first readings (up to the configured
    baseline length); ``previous`` is the statistic after the latest reading (0 at first).
    """

    baseline_points: tuple[tuple[float, float], ...] = ()
    previous: float = 0.0


@dataclass(frozen=True)
class ScenarioResult:
    """One measured scenario: its inputs (enough to reproduce it) and its results."""

    scenario: str
    drift_level: float
    n_samples: int
    seed: int
    assessment: Assessment
    outcome: OutcomeMetrics | None
    drift_statistic: float | None
    drift_alert: bool
    explanation: str | None
    metrics: dict[str, Any]

    @property
    def headline(self) -> GroupResult:
        """The group the reading is about (always present: see :func:`measure_frame`)."""
        return headline_comparison(self.assessment)[0]

    @property
    def verdict(self) -> stats.Verdict:
        """The reading's verdict."""
        return self.assessment.verdict

    def statistics_json(self) -> dict[str, Any]:
        """Return the groups, verdict, outcome metrics and drift statistic as plain data."""
        doc = to_json(self.assessment, self.outcome)
        doc.update(drift_statistic=self.drift_statistic, drift_alert=self.drift_alert)
        return doc


def headline_comparison(assessment: Assessment) -> tuple[GroupResult, stats.Comparison]:
    """Return the headline group and its comparison.

    Raises:
        DataError: the assessment has no compared headline group.
    """
    h = assessment.headline
    if h is None or h.comparison is None:
        raise DataError(f"no group to compare with the reference {assessment.reference.label!r}")
    return h, h.comparison


def headline_point(assessment: Assessment) -> tuple[float, float] | None:
    """Return ``(log ratio, se)`` of the headline comparison, or None if not computable."""
    h = assessment.headline
    if h is None or h.comparison is None:
        return None
    c = h.comparison
    return stats.log_ratio_se(c.approved, c.applicants, c.reference_approved,
                              c.reference_applicants)


def drift_step(state: DriftState, point: tuple[float, float] | None,
               settings: Settings) -> float | None:
    """Advance the drift chart by one reading.

    Returns:
        The new statistic; None while the baseline is still being collected (or when the
        reading has no computable ratio and there is no earlier statistic).
    """
    chart = settings.drift_detection
    if len(state.baseline_points) < chart.baseline_readings:
        return None
    if point is None:
        return state.previous
    baseline = fit_baseline(state.baseline_points[: chart.baseline_readings])
    return cusum_step(state.previous, point[0], point[1], baseline, chart)


def measure_frame(df: pd.DataFrame, settings: Settings, *,
                  where: str = "the data") -> tuple[Assessment, OutcomeMetrics | None,
                                                    pd.Series]:
    """Form and judge the configured groups of a frame of decisions (column ``approved``).

    Returns:
        ``(assessment, outcome metrics or None, group label per row)``.

    Raises:
        DataError: a column is missing, values are not binary, or there is no group to
            compare with the reference.
    """
    spec = settings.group_spec()
    labels = group_labels(df, spec, where=where)
    label_column = settings.measurement.label
    truth = (binary_outcome(df[label_column], label_column, "label") if label_column
             else None)
    table = count_groups(labels, binary_outcome(df["approved"], "approved"), truth)
    assessment = assess(table, spec)
    if assessment.headline is None:
        wanted = spec.unprivileged_value
        raise DataError(f"no group to compare with the reference {assessment.reference.label!r}"
                        + (f": {wanted!r} does not occur or is excluded" if wanted else ""),
                        column=spec.attribute_name)
    outcome = included_outcome_metrics(table, assessment)
    return assessment, outcome, labels


def measure_scenario(settings: Settings, cycle_index: int, scenario: str,
                     drift_level: float, drift: DriftState | None = None) -> ScenarioResult:
    """Simulate and measure one scenario of one cycle (pure).

    Args:
        settings: validated settings (sample size, seed, groups, thresholds).
        cycle_index: zero-based index of the cycle; with the base seed it fixes the data.
        scenario: ``reference`` or ``monitored``.
        drift_level: the drift level to simulate.
        drift: the drift chart's state (monitored scenario only); None skips the chart.

    Returns:
        The scenario's inputs and results; the explanation for ``monitored`` only.
    """
    seed = scenario_seed(settings.simulation.seed, cycle_index, scenario)
    df = generate_loan_data(settings.simulation.n_samples, drift_level, seed=seed)
    assessment, outcome, labels = measure_frame(df, settings)
    statistic = None if drift is None else drift_step(drift, headline_point(assessment),
                                                      settings)
    drift_alert = statistic is not None and statistic > settings.drift_detection.threshold
    metrics = legacy_metrics(assessment, settings)
    explanation = None
    if scenario == "monitored":
        explanation = explain(df.assign(**{GROUP_COLUMN: labels}), assessment, settings,
                              statistic)
    return ScenarioResult(scenario, drift_level, len(df), seed, assessment, outcome, statistic,
                          drift_alert, explanation, metrics)


def measure_cycle(settings: Settings, cycle_index: int,
                  drift: DriftState | None = None) -> tuple[ScenarioResult, ScenarioResult]:
    """Measure the reference (drift 0) and the monitored scenario of a cycle (pure).

    Args:
        settings: validated settings; ``simulation.drift`` gives the monitored drift level.
        cycle_index: zero-based cycle index.
        drift: the monitored scenario's drift chart state (default: a fresh chart).

    Returns:
        ``(reference, monitored)``.
    """
    level = settings.simulation.drift.level_at(cycle_index)
    return (measure_scenario(settings, cycle_index, "reference", 0.0),
            measure_scenario(settings, cycle_index, "monitored", level, drift or DriftState()))


def legacy_metrics(assessment: Assessment, settings: Settings) -> dict[str, Any]:
    """The headline comparison in the original API's dictionary shape (``female_*`` etc.)."""
    (h, c), ref = headline_comparison(assessment), assessment.reference
    gap = abs(c.gap)
    return {
        "female_rate": h.rate, "male_rate": ref.rate, "dir": c.ratio,
        "dir_alert": c.ratio is None or c.ratio < settings.thresholds.dir,
        "gap": gap, "gap_alert": gap > settings.thresholds.gap,
        "reason": "male_rate_zero" if c.ratio is None else None,
        "message": None if c.ratio is not None else
        f"{ref.label} approval rate is zero: DIR is not computable",
        "verdict": assessment.verdict,
        "details": {
            "protected_attribute": settings.group_spec().attribute_name,
            "protected_value": h.label, "privileged_value": ref.label, "outcome": "approved",
            "female_count": h.applicants, "female_approved": h.approved,
            "male_count": ref.applicants, "male_approved": ref.approved,
        },
    }


def explain(df: pd.DataFrame, assessment: Assessment, settings: Settings,
            drift_statistic: float | None) -> str:
    """Write the explanation an alert on this reading would carry (encrypted).

    The original FairLens sentence with the ranked causes from the credit-score
    decomposition, then the verdict with its interval, p-value and shortfall, the drift
    statistic and any excluded groups.
    """
    (h, c), ref = headline_comparison(assessment), assessment.reference
    causes = analyze_feature_impact(df, GROUP_COLUMN, h.label, ref.label, "approved")["causes"]
    chart = settings.drift_detection
    drifting = drift_statistic is not None and drift_statistic > chart.threshold
    if drifting and c.ratio is not None and c.ratio >= settings.thresholds.dir:
        lead = (f"DIR = {c.ratio:.2f} (>={settings.thresholds.dir:g}) but drifting down: drift "
                f"statistic {drift_statistic:.1f} above {chart.threshold:g}. Context: "
                f"{'; '.join(causes)}.")
    else:
        lead = generate_explanation(c.ratio, causes, threshold=settings.thresholds.dir)
    parts = [lead, f"Verdict {assessment.verdict} ({assessment.reason})."]
    if c.ci_low is not None and c.ci_high is not None:
        parts.append(f"{h.label} vs {ref.label}: 95% CI {c.ci_low:.2f}–{c.ci_high:.2f}, "
                     f"p = {h.p_adjusted if h.p_adjusted is not None else c.p_value:.2g} "
                     f"({c.test}), shortfall {c.shortfall:.1f} approvals.")
    if drift_statistic is not None:
        parts.append(f"Drift statistic {drift_statistic:.1f} "
                     f"({'above' if drift_statistic > chart.threshold else 'within'} "
                     f"{chart.threshold:g}).")
    excluded = assessment.excluded
    if excluded:
        parts.append("Excluded (too small): " + ", ".join(
            f"{g.label} {g.approved}/{g.applicants}" for g in excluded) + ".")
    return " ".join(parts)


def baseline_from_rows(rows: Sequence[tuple[int, int, int, int]]) -> tuple[tuple[float, float],
                                                                           ...]:
    """Turn stored headline counts ``(a, n, ref_a, ref_n)`` into drift-chart points."""
    points = (stats.log_ratio_se(*row) for row in rows)
    return tuple(p for p in points if p is not None)
