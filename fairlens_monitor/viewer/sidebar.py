"""The page's sidebar text: the values in use for the chosen monitor (read from its config).

Beside :mod:`viewer.page`: says what the daemon measures and against which thresholds, so a
reader of the charts knows the rules; the values are set in the daemon's config, not here.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.security.passwords import shown_url


def _source_text(settings: Settings) -> str:
    src = settings.source
    where = src.table or ("query" if src.query else Path(src.path or "").name)
    return (
        f"- source: {src.kind} `{where}`, outcome `{src.outcome}`, window {src.window}"
        + (f", stratum `{src.stratum}`" if src.stratum else "")
        + "\n"
    )


def values_in_use(settings: Settings) -> None:
    """Write the monitor's configured values in the sidebar (call inside ``st.sidebar``)."""
    sim, th = settings.simulation, settings.thresholds
    st.markdown("**Values in use** (set in the daemon's config, not here)")
    drift = ""
    if sim is not None:
        drift = f"- n_samples: {sim.n_samples}\n- drift: {sim.drift.mode} {sim.drift.start:g}"
        if sim.drift.mode == "ramp":
            drift += f" → {sim.drift.end:g} over {sim.drift.cycles} cycles"
        drift += "\n"
    st.markdown(
        f"- database: `{shown_url(settings.database.url)}`\n"
        f"- schedule: {settings.schedule.describe()}\n"
        + (_source_text(settings) if sim is None else drift)
        + f"- thresholds: DIR < {th.dir:g} and p < {th.alpha:g} (adverse), "
        f"gap > {th.gap:g}, groups ≥ {th.min_group_size} applicants and "
        f"≥ {th.min_group_share:.0%} of rows\n"
        f"- groups: {' & '.join(settings.measurement.protected_attributes)}, "
        f"reference {settings.measurement.reference}\n"
        f"- drift chart: baseline {settings.drift_detection.baseline_readings}, "
        f"k {settings.drift_detection.slack:g}, "
        f"h {settings.drift_detection.threshold:g}\n"
        f"- alerts close after {settings.alerts.close_after} clean readings"
    )
