"""Measure and detect for one cycle's scenarios, with no I/O (the pure half of a cycle).

simulate/read → **measure** → **detect** → alert → log. ``measure_counts`` takes the count
table a file or SQL source read (:mod:`fairlens_monitor.sources`); ``measure_frame`` takes
the simulator's decisions (:mod:`fairlens_monitor.ops.measuring` runs the simulated
scenarios). Both form the configured groups,
judge them (:mod:`fairlens_monitor.fairness.groups`), compute the ground-truth metrics, advance the
CUSUM drift chart from the state the database passed in, and write the explanation text
that an alert would encrypt. Equal inputs give equal outputs, so a stored reading can be reproduced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import Any

import pandas as pd

from fairlens_monitor.config.detection import CusumSettings
from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness import stats
from fairlens_monitor.fairness.counts import (
    APPROVED,
    GROUP,
    SCORE_BIN,
    STRATUM,
    N,
    decisions,
    group_table,
)
from fairlens_monitor.fairness.explain import analyze_feature_impact, generate_explanation
from fairlens_monitor.fairness.groups import (
    Assessment,
    GroupResult,
    GroupSpec,
    GroupTable,
    assess,
    count_groups,
    group_labels,
)
from fairlens_monitor.fairness.metrics import binary_outcome
from fairlens_monitor.fairness.outcomes import (
    OutcomeMetrics,
    included_outcome_metrics,
    judge_table,
)
from fairlens_monitor.fairness.report import to_json
from fairlens_monitor.fairness.scores import score_metrics
from fairlens_monitor.monitoring.drift import Baseline, cusum_step, fit_baseline

GROUP_COLUMN = "_fairlens_group"


@dataclass(frozen=True)
class Rules:
    """What a reading is formed and judged by: the parts of the settings this module needs.

    Built from the validated settings at the operations layer
    (:func:`fairlens_monitor.ops.measuring.rules_of`), so the pure core never sees the
    whole configuration.

    Attributes:
        spec: how groups are formed and judged (attribute, values, reference, sizes, alpha).
        dir_threshold: the DIR alert threshold (four-fifths: 0.8).
        gap_threshold: the approval-rate gap alert threshold.
        chart: the CUSUM drift chart's settings.
        label: the ground-truth column, or None.
        stratum: the column that may explain a gap (e.g. credit score), or None.
        score_bins: how many bins a model score is counted in.
    """

    spec: GroupSpec
    dir_threshold: float
    gap_threshold: float
    chart: CusumSettings
    label: str | None = None
    stratum: str | None = None
    score_bins: int = 100


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
    drift_level: float | None  # simulator only
    n_samples: int
    seed: int | None  # simulator only
    assessment: Assessment
    outcome: OutcomeMetrics | None
    drift_statistic: float | None
    drift_alert: bool
    # the alert's explanation, or what writes it: written only when asked for (an alert
    # opens, or the plaintext is shown), as the stratum decomposition is a fifth of a cycle
    explained: str | Callable[[], str] | None
    metrics: dict[str, Any]

    @cached_property
    def explanation(self) -> str | None:
        """The explanation an alert on this reading carries (written on first use)."""
        return self.explained() if callable(self.explained) else self.explained

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
    return stats.log_ratio_se(
        c.approved, c.applicants, c.reference_approved, c.reference_applicants
    )


@lru_cache(maxsize=64)
def _fitted(points: tuple[tuple[float, float], ...]) -> Baseline:
    """The baseline of these points, fitted once: every cycle after the baseline passes the
    same points (a fit is a 64-step bisection, ~0.7 ms a cycle otherwise)."""
    return fit_baseline(points)


def drift_step(
    state: DriftState, point: tuple[float, float] | None, chart: CusumSettings
) -> float | None:
    """Advance the drift chart by one reading.

    Returns:
        The new statistic; None while the baseline is still being collected (or when the
        reading has no computable ratio and there is no earlier statistic).
    """
    if len(state.baseline_points) < chart.baseline_readings:
        return None
    if point is None:
        return state.previous
    baseline = _fitted(state.baseline_points[: chart.baseline_readings])
    return cusum_step(state.previous, point[0], point[1], baseline, chart)


def measure_frame(
    df: pd.DataFrame, rules: Rules, *, where: str = "the data"
) -> tuple[Assessment, OutcomeMetrics | None, pd.Series]:
    """Form and judge the configured groups of a frame of decisions (column ``approved``).

    Returns:
        ``(assessment, outcome metrics or None, group label per row)``.

    Raises:
        DataError: a column is missing, values are not binary, or there is no group to
            compare with the reference.
    """
    spec = rules.spec
    labels = group_labels(df, spec, where=where)
    label_column = rules.label
    truth = binary_outcome(df[label_column], label_column, "label") if label_column else None
    table = count_groups(labels, binary_outcome(df["approved"], "approved"), truth)
    assessment = assess(table, spec)
    if assessment.headline is None:
        wanted = spec.unprivileged_value
        raise DataError(
            f"no group to compare with the reference {assessment.reference.label!r}"
            + (f": {wanted!r} does not occur or is excluded" if wanted else ""),
            column=spec.attribute_name,
        )
    outcome = included_outcome_metrics(table, assessment, spec.confidence)
    return assessment, outcome, labels


def judge_counts(
    counts: pd.DataFrame, spec: GroupSpec, score_bins: int
) -> tuple[GroupTable, Assessment, OutcomeMetrics | None]:
    """Judge a count table: the one path from counts to a verdict, for the daemon and ``measure``.

    Args:
        counts: a count table (:mod:`fairlens_monitor.fairness.counts`); with ``_score_bin``
            when a model score was counted.
        spec: how groups are formed and judged.
        score_bins: the bins the score was counted in.

    Returns:
        ``(per-group table, assessment, outcome metrics or None)``; with a score, every
        group's AUC and calibration gap join its ground-truth metrics.

    Raises:
        DataError: the privileged or the named protected value does not occur.
    """
    table = group_table(counts)
    assessment, outcome = judge_table(table, spec)
    if outcome is not None and SCORE_BIN in counts:
        outcome = replace(outcome, extra=score_metrics(counts, score_bins))
    return table, assessment, outcome


def measure_counts(
    counts: pd.DataFrame, rules: Rules, drift: DriftState | None = None
) -> ScenarioResult:
    """Measure the count table a file or SQL source read for one window (pure).

    Args:
        counts: a count table from :mod:`fairlens_monitor.fairness.counts` with at least one
            decision (with ``_score_bin`` when ``measurement.score`` is set: then every group's AUC
            and calibration gap join its ground-truth metrics).
        rules: the groups, thresholds, drift chart, stratum and score bins.
        drift: the drift chart's state; None starts a fresh chart.

    Returns:
        The monitored reading's results (no drift level or seed: the data is real).

    Raises:
        DataError: the privileged or the named protected value does not occur, or no group
            can be compared with the reference.
    """
    _, assessment, outcome = judge_counts(counts, rules.spec, rules.score_bins)
    h, _ = headline_comparison(assessment)
    statistic = drift_step(drift or DriftState(), headline_point(assessment), rules.chart)
    drift_alert = statistic is not None and statistic > rules.chart.threshold

    def explained() -> str:
        causes = stratum_causes(counts, h.label, assessment.reference.label, rules.stratum)
        return explain(assessment, rules, statistic, causes)

    return ScenarioResult(
        "monitored",
        None,
        decisions(counts),
        None,
        assessment,
        outcome,
        statistic,
        drift_alert,
        explained,
        legacy_metrics(assessment, rules),
    )


def stratum_causes(
    counts: pd.DataFrame, group: str, reference: str, stratum: str | None
) -> list[str]:
    """Test whether the stratum (e.g. credit score) explains the gap, from counts.

    Args:
        counts: the count table (with ``_stratum`` when a stratum is configured).
        group: the headline group's label.
        reference: the reference group's label.
        stratum: the stratum column's name in the source, or None.

    Returns:
        Ranked cause sentences (see
        :func:`~fairlens_monitor.fairness.explain.analyze_feature_impact`); says plainly when no
        stratum is configured or values were missing.
    """
    if stratum is None or STRATUM not in counts:
        return [
            "no stratum column is configured (source.stratum), so whether a legitimate "
            "factor such as credit score explains the gap was not tested"
        ]
    known = counts[counts[STRATUM].notna()]
    missing = decisions(counts) - decisions(known)
    name = stratum if stratum not in counts.columns else STRATUM
    causes: list[str] = list(
        analyze_feature_impact(
            known.rename(columns={STRATUM: name}),
            GROUP,
            group,
            reference,
            APPROVED,
            feature=name,
            weight=N,
        )["causes"]
    )
    if missing:
        causes.append(
            f"{missing} decisions without a {stratum} value were left out of this comparison"
        )
    return causes


def legacy_metrics(assessment: Assessment, rules: Rules) -> dict[str, Any]:
    """The headline comparison in the original API's dictionary shape (``female_*`` etc.)."""
    (h, c), ref = headline_comparison(assessment), assessment.reference
    gap = abs(c.gap)
    return {
        "female_rate": h.rate,
        "male_rate": ref.rate,
        "dir": c.ratio,
        "dir_alert": c.ratio is None or c.ratio < rules.dir_threshold,
        "gap": gap,
        "gap_alert": gap > rules.gap_threshold,
        "reason": "male_rate_zero" if c.ratio is None else None,
        "message": None
        if c.ratio is not None
        else f"{ref.label} approval rate is zero: DIR is not computable",
        "verdict": assessment.verdict,
        "details": {
            "protected_attribute": rules.spec.attribute_name,
            "protected_value": h.label,
            "privileged_value": ref.label,
            "outcome": "approved",
            "female_count": h.applicants,
            "female_approved": h.approved,
            "male_count": ref.applicants,
            "male_approved": ref.approved,
        },
    }


def explain(
    assessment: Assessment, rules: Rules, drift_statistic: float | None, causes: Sequence[str]
) -> str:
    """Write the explanation an alert on this reading would carry (encrypted).

    Args:
        assessment: the reading's judged groups.
        rules: the thresholds and the drift chart's settings.
        drift_statistic: the CUSUM statistic, or None while the baseline is collected.
        causes: ranked sentences from the stratum (credit-score) decomposition.

    Returns:
        The original FairLens sentence with the causes, then the verdict with its interval,
        p-value and shortfall, the drift statistic and any excluded groups.
    """
    (h, c), ref = headline_comparison(assessment), assessment.reference
    chart = rules.chart
    drifting = drift_statistic is not None and drift_statistic > chart.threshold
    if drifting and c.ratio is not None and c.ratio >= rules.dir_threshold:
        lead = (
            f"DIR = {c.ratio:.2f} (>={rules.dir_threshold:g}) but drifting down: drift "
            f"statistic {drift_statistic:.1f} above {chart.threshold:g}. Context: "
            f"{'; '.join(causes)}."
        )
    else:
        lead = generate_explanation(c.ratio, list(causes), threshold=rules.dir_threshold)
    parts = [lead, f"Verdict {assessment.verdict} ({assessment.reason})."]
    if c.ci_low is not None:
        p = h.p_adjusted if h.p_adjusted is not None else c.p_value
        ci = stats.format_interval(c.ci_low, c.ci_high)
        p_text = stats.format_p(p, c.test)
        p_part = f"p {p_text}" if p_text.startswith("<") else f"p = {p_text}"
        parts.append(
            f"{h.label} vs {ref.label}: 95% CI {ci}, {p_part} ({c.test}), "
            f"shortfall {c.shortfall:.1f} approvals."
        )
    if drift_statistic is not None:
        parts.append(
            f"Drift statistic {drift_statistic:.1f} "
            f"({'above' if drift_statistic > chart.threshold else 'within'} "
            f"{chart.threshold:g})."
        )
    excluded = assessment.excluded
    if excluded:
        parts.append(
            "Excluded (too small): "
            + ", ".join(f"{g.label} {g.approved}/{g.applicants}" for g in excluded)
            + "."
        )
    return " ".join(parts)


def baseline_from_rows(
    rows: Sequence[tuple[int, int, int, int]],
) -> tuple[tuple[float, float], ...]:
    """Turn stored headline counts ``(a, n, ref_a, ref_n)`` into drift-chart points."""
    points = (stats.log_ratio_se(*row) for row in rows)
    return tuple(p for p in points if p is not None)
