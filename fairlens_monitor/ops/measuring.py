"""From settings to readings: the rules a reading is judged by, and the simulated scenarios.

simulate → **measure** → detect → alert → log. :func:`rules_of` picks from the validated
settings what the pure measure step needs (:class:`~fairlens_monitor.monitoring.measure.Rules`);
:func:`measure_cycle` simulates the reference (drift 0) and the monitored scenario of one
cycle with the built-in simulator and measures them. Pure: the seed is derived from the
config and the cycle index, so a stored reading can be reproduced. Here, in the operations
layer, because it joins a source (the simulator) with the monitoring step.
"""

from __future__ import annotations

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.fairness.explain import analyze_feature_impact
from fairlens_monitor.monitoring.measure import (
    GROUP_COLUMN,
    DriftState,
    Rules,
    ScenarioResult,
    drift_step,
    explain,
    headline_comparison,
    headline_point,
    legacy_metrics,
    measure_frame,
)
from fairlens_monitor.sources.simulator import generate_loan_data, scenario_seed


def rules_of(settings: Settings) -> Rules:
    """Return what the measure step needs from these settings.

    Args:
        settings: validated settings.

    Returns:
        The group spec, thresholds, drift chart, label, stratum and score bins.
    """
    return Rules(
        spec=settings.group_spec(),
        dir_threshold=settings.thresholds.dir,
        gap_threshold=settings.thresholds.gap,
        chart=settings.drift_detection,
        label=settings.measurement.label,
        stratum=settings.source.stratum,
        score_bins=settings.measurement.score_bins,
    )


def measure_scenario(
    settings: Settings,
    cycle_index: int,
    scenario: str,
    drift_level: float,
    drift: DriftState | None = None,
) -> ScenarioResult:
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
    rules = rules_of(settings)
    sim = settings.simulator()
    seed = scenario_seed(sim.seed, cycle_index, scenario)
    df = generate_loan_data(sim.n_samples, drift_level, seed=seed)
    assessment, outcome, labels = measure_frame(df, rules)
    statistic = (
        None if drift is None else drift_step(drift, headline_point(assessment), rules.chart)
    )
    drift_alert = statistic is not None and statistic > rules.chart.threshold
    metrics = legacy_metrics(assessment, rules)

    def explained() -> str:  # written only when asked for (see ScenarioResult.explained)
        h, ref = headline_comparison(assessment)[0], assessment.reference
        causes = analyze_feature_impact(
            df.assign(**{GROUP_COLUMN: labels}), GROUP_COLUMN, h.label, ref.label, "approved"
        )["causes"]
        return explain(assessment, rules, statistic, causes)

    return ScenarioResult(
        scenario,
        drift_level,
        len(df),
        seed,
        assessment,
        outcome,
        statistic,
        drift_alert,
        explained if scenario == "monitored" else None,
        metrics,
    )


def measure_cycle(
    settings: Settings, cycle_index: int, drift: DriftState | None = None
) -> tuple[ScenarioResult, ScenarioResult]:
    """Measure the reference (drift 0) and the monitored scenario of a cycle (pure).

    Args:
        settings: validated settings; ``simulation.drift`` gives the monitored drift level.
        cycle_index: zero-based cycle index.
        drift: the monitored scenario's drift chart state (default: a fresh chart).

    Returns:
        ``(reference, monitored)``.
    """
    level = settings.simulator().drift.level_at(cycle_index)
    return (
        measure_scenario(settings, cycle_index, "reference", 0.0),
        measure_scenario(settings, cycle_index, "monitored", level, drift or DriftState()),
    )
