"""One monitor's page: the headline with its time, the staleness banner, the charts.

Drawn inside the page's refreshing fragment (:mod:`viewer.page`). Everything shown is of one
monitor (``monitor``), read by :func:`load` in one go and cached per database state (the
chain's newest seq), so a refresh with nothing new reads one number and redraws the same
values in place. Stale data never looks fresh: the headline says when its reading was taken
and how long ago, and a banner says when the newest successful run is older than three
intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.fairness.stats import format_interval, format_p
from fairlens_monitor.viewer import (
    charts,
    data,
    episode,
    flags,
    fmt,
    series,
    view_alerts,
    view_groups,
)

FLAG_LIST = 20  # readings failing their digest check listed by name above the charts
STATUS = {
    "adverse": ("red", "ADVERSE — DIR below the threshold and significant"),
    "inconclusive": (
        "orange",
        "INCONCLUSIVE — below the threshold but not significant, or a group too small",
    ),
    "drifting": ("orange", "DRIFTING — DIR shifting down (drift chart above its threshold)"),
    "warning": ("orange", "WARNING — approval gap above its threshold"),
    "ok": ("green", "OK"),
}


def load(
    settings: Settings,
    monitor: str,
    since: datetime | None,
    until: datetime | None,
    *,
    rollup: bool,
) -> dict[str, Any]:
    """Everything one monitor's page shows, read in one go.

    Raises:
        StoreError: the database cannot be read (the message says why).
    """
    engine = data.open_readonly(settings)
    try:
        latest = data.latest(engine, monitor)
        many = latest is not None and data.group_count(latest.reading) > 2
        return {
            "latest": latest,
            "history": series.history(
                engine, since=since, until=until, rollup=rollup, monitor=monitor
            ),
            "groups": series.group_history(engine, since=since, until=until, monitor=monitor)
            if many
            else pd.DataFrame(),
            "alerts": data.alerts(engine, since=since, until=until, monitor=monitor),
            "health": data.health(engine, monitor, interval=settings.schedule.expected_gap_seconds),
            "events": episode.chart_events(engine, since=since, until=until, monitor=monitor),
            # the readings the page checks against their digests on every refresh
            "check_ids": flags.newest_ids(engine, monitor=monitor, since=since, until=until),
            "range": (since, until),
        }
    finally:
        engine.dispose()


def stale_banner(health: data.Health, now: datetime) -> str | None:
    """The banner text when the newest successful run is older than 3 intervals, else None."""
    if not health.stale(now):
        return None
    every = fmt.span(timedelta(seconds=health.interval or 0))
    if health.last_ok is None:
        return f"**STALE** — no successful run yet (expected every {every})."
    return (
        f"**STALE** — the newest successful run finished {fmt.ago(health.last_ok, now)} "
        f"({fmt.when(health.last_ok)}), more than 3 intervals of {every}: the daemon may be "
        "stopped. The values below are as of then, not now."
    )


def render(
    settings: Settings,
    monitor: str,
    loaded: dict[str, Any],
    *,
    now: datetime,
    signed_in: bool,
    marks: view_alerts.Marks,
    known: Mapping[str, Mapping[int, str]] | None = None,
    configured: bool = True,
) -> None:
    """Draw one monitor's page from :func:`load`'s result.

    Args:
        settings: the monitor's settings.
        monitor: its name.
        loaded: :func:`load`'s result.
        now: the time ages and staleness are judged at.
        signed_in: whether this session gave the page token (explanations).
        marks: checks shown rows against their digests on the chain (table, ids).
        known: the rows the newest background ``verify`` found failing, by table and id
            (``watch.failed_rows``); marked too where the page did not check them itself.
        configured: whether ``settings`` are this monitor's own (False: the monitor is not
            in the page's config, so values only its config knows are not drawn).
    """
    health: data.Health = loaded["health"]
    banner = stale_banner(health, now)
    if banner is not None:
        st.warning(banner)
    latest: data.Latest | None = loaded["latest"]
    if latest is None:
        st.info(
            f"Monitor {monitor}: no readings with decisions yet — the daemon has not "
            "completed a cycle, or every window so far was empty (no_data)."
        )
        _health(health, now)
        return
    known = known or {}
    headline = int(latest.reading["reading_id"])
    checked = marks("readings", sorted({*loaded.get("check_ids", []), headline}))
    bad = flags.failed_ids(checked, known.get("readings"))
    flagged = _flagged(settings, monitor, loaded, bad, known.get("group_results"))
    drawn = {int(i) for i in flagged["reading_id"]}
    gone = {  # checked in this range, failing, and no row left to read back
        i: bad[i] for i in loaded.get("check_ids", []) if i in bad and i not in drawn
    }
    _headline(latest, now, checked[headline])
    expected = None if health.interval is None else timedelta(seconds=health.interval)
    checked_count = len(loaded.get("check_ids", []))
    _charts(settings, loaded, latest, expected, flagged, gone, checked_count, configured)
    view_groups.render(settings, monitor, latest, bad, known.get("group_results"))
    view_alerts.render(settings, monitor, loaded["alerts"], signed_in, marks, bad)
    _health(health, now)


def _flagged(
    settings: Settings,
    monitor: str,
    loaded: dict[str, Any],
    bad: Mapping[int, str],
    bad_groups: Mapping[int, str] | None,
) -> pd.DataFrame:
    """The shown range's readings that fail their digest check, as stored now."""
    if not bad and not bad_groups:
        return pd.DataFrame(columns=flags.COLUMNS)
    since, until = loaded.get("range", (None, None))
    engine = data.open_readonly(settings)
    try:
        return flags.failing_readings(
            engine,
            monitor=monitor,
            since=since,
            until=until,
            readings=bad,
            group_results=bad_groups,
        )
    finally:
        engine.dispose()


def _headline(latest: data.Latest, now: datetime, check: tuple[bool, str]) -> None:
    row = latest.reading
    if latest.empty_since is not None:
        st.warning(
            f"No decisions in the source's windows since {fmt.when(latest.empty_since)} "
            "(no_data readings); showing the newest reading with decisions."
        )
    measured = data.as_time(row["measured_at"])
    reading_id = int(row["reading_id"])
    verified, why = check
    st.markdown(
        f"**Newest reading** #{reading_id} — as of **{fmt.when(measured)}** "
        f"({fmt.ago(measured, now)})"
    )
    # next to the numbers it vouches for (not below the fold): an edited row shows its
    # edited values, so the mark must be read before them
    st.markdown(
        f":green[✓ reading {reading_id} verified] — {why}"
        if verified
        else f":red[**✗ reading {reading_id} NOT verified** — {why}]: the values below are "
        "as stored now, which may not be what was recorded"
    )
    colour, label = STATUS[latest.status]
    left, right = st.columns(2)
    delta = (
        None
        if latest.previous_dir is None or row["dir"] is None or not verified
        else f"{row['dir'] - latest.previous_dir:+.3f}"
    )
    unverified = "" if verified else " (✗ NOT verified)"
    left.metric(
        f"Monitored DIR{unverified}",
        "n/a" if row["dir"] is None else f"{row['dir']:.3f}",
        delta=delta,
        help="Disparate Impact Ratio of the newest monitored reading",
    )
    right.metric(f"Approval gap{unverified}", fmt.number(row["gap"]))
    st.markdown(f":{colour}[**{label}**]")
    st.caption(f"95% interval {format_interval(*latest.interval)}{p_text(row)}")
    group = fmt.count_pair(row["group_approved"], row["group_applicants"])
    st.markdown(
        f"- **{row['group_label']}**: {group} "
        f"approved\n- **{row['reference_label']}** (reference): "
        f"{fmt.count_pair(row['reference_approved'], row['reference_applicants'])} approved"
    )
    if row.get("verdict_reason"):
        st.caption(f"Verdict: {row['verdict']} — {row['verdict_reason']}")
    if row.get("risk_level"):
        st.markdown(f"Risk level: **{str(row['risk_level']).upper()}**")


def p_text(row: Mapping[str, Any]) -> str:
    """`` · p < 1e-06 (z)`` or `` · p = 0.0016 (fisher)``; empty without a p-value."""
    if row.get("p_value") is None:
        return ""
    shown = format_p(row["p_value"], row["test"])
    relation = shown if shown.startswith("<") else f"= {shown}"
    return f" · p {relation} ({row['test']})"


def _flag_list(flagged: pd.DataFrame, gone: Mapping[int, str], checked: int) -> None:
    """Say which readings of the range fail their digest check (or that the checked ones
    pass), above the charts that mark them; ``gone``: checked readings whose row is missing
    (nothing left to draw, so only listed)."""
    if flagged.empty and not gone:
        if checked:
            st.caption(
                f"✓ The newest {checked:,} readings in this range match their digests on the "
                "audit chain (checked on this refresh; older ones by the background verify)."
            )
        return
    st.error(
        f"**✗ In this range, {flags.failing_phrase(len(flagged) + len(gone))}** — black "
        "crosses (✗) on the charts, at the value as stored now, and listed here. What they "
        "show may not be what was recorded."
    )
    # a list, not a table: it wraps at 800 px where a six-column table cut the reason off
    lines = [f"- **#{i}**: {why} (deleted: nothing left to draw)" for i, why in gone.items()]
    lines += [
        f"- **#{int(r.reading_id)}** ({r.scenario}, {fmt.when(r.time)}): DIR "
        f"{fmt.number(r.dir)}, gap {fmt.number(r.gap)} as stored — {r.reason}"
        for r in flagged.itertuples()
    ]
    more = len(lines) - FLAG_LIST
    lines = lines[:FLAG_LIST] + (
        [f"- … and {more:,} more: `fairlens-monitor verify` lists them all"] if more > 0 else []
    )
    st.markdown("\n".join(lines))


def _charts(
    settings: Settings,
    loaded: dict[str, Any],
    latest: data.Latest,
    expected: timedelta | None,
    flagged: pd.DataFrame,
    gone: Mapping[int, str],
    checked: int,
    configured: bool,
) -> None:
    row = latest.reading
    hist: pd.DataFrame = loaded["history"]
    events: pd.DataFrame = loaded["events"]
    st.subheader("DIR over time")
    if hist.empty:  # seen in Chromium: empty axes with only the threshold lines on them
        st.info(
            "No readings in this time range: the newest is from "
            f"{fmt.when(data.as_time(row['measured_at']))}. Choose a wider range in the "
            "sidebar to see the charts."
        )
        return
    _flag_list(flagged, gone, checked)
    st.caption(
        "Lines: DIR per scenario (mean per time step); band: the monitored DIR's 95% "
        f"interval; red dots: adverse readings; red dashed line: the DIR threshold "
        f"{float(row['dir_threshold']):g}."
        + (
            ""
            if events.empty
            else f" Grey dashed lines: {len(events)} config changes or daemon restarts."
        )
    )
    # the flags change without a new database state (an edit appends nothing): in the key
    key = (loaded.get("key", (id(hist),)), tuple(int(i) for i in flagged["reading_id"]))
    _show(
        (key, "dir"),
        lambda: charts.dir_chart(
            hist, float(row["dir_threshold"]), expected=expected, events=events, flagged=flagged
        ),
    )
    # stacked, not side by side: at 800 px two columns cut the labels and legends
    st.subheader("Approval-rate gap")
    stored_gap = row.get("gap_threshold")
    gap_threshold = float(settings.thresholds.gap if stored_gap is None else stored_gap)
    st.caption(f"Orange dashed line: the gap threshold {gap_threshold:g}.")
    _show(
        (key, "gap"),
        lambda: charts.gap_chart(hist, gap_threshold, expected=expected, flagged=flagged),
    )
    st.subheader("Approval rate per group")
    per_group: pd.DataFrame = loaded["groups"]
    if per_group.empty:  # two groups: the history has both rates
        monitored = hist[hist["scenario"] == "monitored"]
        per_group = pd.concat(
            [
                pd.DataFrame(
                    {"time": monitored["time"], "group": str(row[label]), "rate": monitored[col]}
                )
                for label, col in (
                    ("group_label", "group_rate"),
                    ("reference_label", "reference_rate"),
                )
            ]
        )
    _show((key, "rates"), lambda: charts.rate_chart(per_group, expected=expected))
    monitored = hist[hist["scenario"] == "monitored"]
    if monitored["drift_max"].notna().any():
        st.subheader("Drift statistic (CUSUM on log DIR, monitored)")
        # the alarm threshold is not stored with the readings: only the config knows it
        h = settings.drift_detection.threshold if configured else None
        st.caption(
            f"Orange dashed line: the alarm threshold h = {h:g}."
            if h is not None
            else "No threshold line: this monitor is not in the page's config, which alone "
            "knows its alarm threshold."
        )
        _show(
            (key, "drift"),
            lambda: charts.drift_chart(monitored, h, expected=expected, flagged=flagged),
        )


@st.cache_data(max_entries=64, show_spinner=False)
def _spec(key: tuple[Any, ...], _build: Callable[[], Any]) -> dict[str, Any]:
    """A chart's Vega-Lite spec, built once per data state (``key``: the monitor, range and
    database state): Altair's schema validation costs a good fraction of a second per chart,
    too much to repeat on every refresh when nothing changed."""
    # legends on top, y labels in a fixed width: every chart's plot spans the same x range,
    # so one time lines up down the page (a legend at the side narrowed some plots only)
    chart = _build().configure_legend(orient="top").configure_axisY(minExtent=40)
    spec: dict[str, Any] = chart.to_dict()
    return spec


def _show(key: tuple[Any, ...], build: Callable[[], Any]) -> None:
    st.vega_lite_chart(spec=_spec(key, build), width="stretch")


def _health(health: data.Health, now: datetime) -> None:
    st.subheader("Daemon health (this monitor)")
    st.markdown(
        f"- Last successful cycle: **{fmt.ago(health.last_ok, now)}**"
        + ("" if health.last_ok is None else f" ({fmt.when(health.last_ok)})")
        + "\n"
        + (
            ""
            if health.interval is None
            else f"- Expected every {fmt.span(timedelta(seconds=health.interval))}\n"
        )
        + f"- Failed runs: **{health.failed}** · missed runs: **{health.missed}**"
    )
    if health.last_error:
        st.caption(f"Last failure: {health.last_error}")
