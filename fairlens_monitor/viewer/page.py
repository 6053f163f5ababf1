"""The trend page: a read-only Streamlit view of the stored history, for a risk officer.

The last step after **log**: it only reads what the daemon wrote (``viewer_data`` opens the
database read-only) and refreshes its data every 5 s without reloading the page
(``st.fragment(run_every=5)``). Run it with ``fairlens-monitor view`` or
``FAIRLENS_CONFIG=config.yaml streamlit run fairlens_monitor/viewer/page.py``. Explanations are
decrypted only for a session signed in with the page token (``page_auth``); served beyond
loopback (``server.address`` not a loopback address, or unset), it shows nothing before.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from fairlens_monitor.config.monitors import load_portfolio
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.errors import FairlensError
from fairlens_monitor.fairness.stats import format_interval, format_p
from fairlens_monitor.security.crypto import load_cipher
from fairlens_monitor.security.page_auth import is_loopback, load_page_token, token_matches
from fairlens_monitor.security.passwords import scrub, shown_url
from fairlens_monitor.viewer import data
from fairlens_monitor.viewer.rows import LiveLedger
from fairlens_monitor.viewer.watch import ChainWatcher

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


@st.cache_data(ttl=5, show_spinner=False)
def _load(url: str, range_name: str, monitor: str, _settings: Settings) -> dict[str, Any]:
    """Everything the page shows of one monitor, read in one go (cached 5 s per database,
    range and monitor)."""
    engine = data.open_readonly(_settings)
    try:
        span = data.RANGES[range_name]
        since = None if span is None else datetime.now(UTC) - span
        latest = data.latest(engine, monitor=monitor)
        # With two groups the history query already has both rates; read group_results (a
        # join over every group row) only when there are more groups to draw.
        many = latest is not None and data.group_count(latest.reading) > 2
        wide = range_name in data.WIDE
        return {
            "latest": latest,
            "history": data.history(engine, since=since, rollup=wide, monitor=monitor),
            "groups": (
                data.group_history(engine, since=since, monitor=monitor) if many else pd.DataFrame()
            ),
            "alerts": data.alerts(engine, since=since, monitor=monitor),
            "health": data.health(engine, monitor=monitor),
        }
    finally:
        engine.dispose()


@st.cache_data(ttl=5, show_spinner=False)
def _monitors(url: str, configured: tuple[str, ...], _settings: Settings) -> list[str]:
    """The monitors to choose from: the config's, in its order, then any other the database
    holds (a retired one's history stays readable). The config's alone when it cannot be
    read (the page then says why)."""
    try:
        engine = data.open_readonly(_settings)
    except FairlensError:
        return list(configured)
    try:
        stored = data.monitor_names(engine)
    finally:
        engine.dispose()
    return [*configured, *(n for n in stored if n not in configured)]


@st.cache_resource(show_spinner=False)
def _watcher(config_path: str) -> ChainWatcher:
    return ChainWatcher(config_path)


@st.cache_resource(show_spinner=False)
def _live(config_path: str) -> LiveLedger:
    return LiveLedger()


def _marks(settings: Settings, table: str, ids: list[int]) -> dict[int, tuple[bool, str]]:
    """Each shown row of ``table`` checked against its digest on the chain (viewer_rows)."""
    try:
        engine = data.open_readonly(settings)
    except FairlensError as exc:
        return {i: (False, f"cannot check: {exc}") for i in ids}
    try:
        return _live(config_path()).marks(engine, table, ids)
    except Exception as exc:  # the page says so instead of failing
        return {i: (False, f"cannot check: {type(exc).__name__}") for i in ids}
    finally:
        engine.dispose()


def _dir_chart(hist: pd.DataFrame, threshold: float) -> alt.LayerChart | alt.FacetChart:
    base = alt.Chart(hist).encode(x=alt.X("time:T", title="time (UTC)"))
    band = (
        base.transform_filter(alt.datum.scenario == "monitored")
        .mark_area(opacity=0.2)
        .encode(y=alt.Y("ci_low:Q", title="DIR"), y2="ci_high:Q")
    )
    line = base.mark_line().encode(
        y="dir_mean:Q",
        color=alt.Color("scenario:N"),
        tooltip=["time:T", "scenario:N", "dir_mean:Q", "dir_min:Q", "dir_max:Q", "readings:Q"],
    )
    marks = (
        base.transform_filter(alt.datum.alerts > 0)
        .mark_point(color="red", filled=True, size=40)
        .encode(y="dir_min:Q")
    )
    rule = (
        alt.Chart(pd.DataFrame({"y": [threshold]}))
        .mark_rule(color="red", strokeDash=[6, 4])
        .encode(y="y:Q")
    )
    return alt.layer(band, line, marks, rule)


def _drift_chart(hist: pd.DataFrame, threshold: float) -> alt.LayerChart | alt.FacetChart:
    line = (
        alt.Chart(hist)
        .mark_line()
        .encode(
            x=alt.X("time:T", title="time (UTC)"),
            y=alt.Y("drift_max:Q", title="statistic"),
            tooltip=["time:T", "drift_max:Q"],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"y": [threshold]}))
        .mark_rule(color="orange", strokeDash=[6, 4])
        .encode(y="y:Q")
    )
    return alt.layer(line, rule)


@st.fragment(run_every=5)
def dashboard(settings: Settings, range_name: str, signed_in: bool, monitor: str) -> None:
    """The data part of the page: re-run every 5 s without reloading the page."""
    url = settings.database.url
    watcher = _watcher(config_path())
    chain = watcher.status(wait=1.0)
    if watcher.alarm is not None:
        st.error(
            f"**Audit trail TAMPERED** — first anomaly: {watcher.alarm}. What this page "
            "shows may not be what was recorded; run `fairlens-monitor verify`."
        )
    try:
        loaded = _load(url, range_name, monitor, settings)
    except FairlensError as exc:
        st.warning(scrub(str(exc), url))
        return
    latest: data.Latest | None = loaded["latest"]
    if latest is None:
        st.info(
            "No readings with decisions yet: the daemon has not completed a cycle, or "
            "every window so far was empty (no_data)."
        )
        return
    row = latest.reading
    if latest.empty_since is not None:
        st.warning(
            f"No decisions in the source's windows since "
            f"{latest.empty_since:%Y-%m-%d %H:%M} UTC (no_data readings); showing the "
            "newest reading with decisions."
        )
    colour, label = STATUS[latest.status]
    cols = st.columns(4)
    delta = (
        None
        if latest.previous_dir is None or row["dir"] is None
        else (f"{row['dir'] - latest.previous_dir:+.3f}")
    )
    cols[0].metric(
        "Monitored DIR",
        "n/a" if row["dir"] is None else f"{row['dir']:.3f}",
        delta=delta,
        help="Disparate Impact Ratio of the newest monitored reading",
    )
    cols[0].markdown(f":{colour}[**{label}**]")
    cols[0].caption(
        f"95% interval {format_interval(*latest.interval)} "
        + (
            ""
            if row.get("p_value") is None
            else f" · p = {format_p(row['p_value'], row['test'])} ({row['test']})"
        )
    )
    if row.get("verdict_reason"):
        cols[0].caption(f"Verdict: {row['verdict']} — {row['verdict_reason']}")
    if row.get("risk_level"):
        cols[0].markdown(f"Risk level: **{str(row['risk_level']).upper()}**")
    reading_id = int(row["reading_id"])
    verified, why = _marks(settings, "readings", [reading_id])[reading_id]
    cols[0].markdown(
        f":green[✓ reading {reading_id} verified] — {why}"
        if verified
        else f":red[**✗ reading {reading_id} NOT verified** — {why}]"
    )
    cols[1].metric("Approval gap", f"{row['gap']:.3f}")
    cols[2].metric(
        f"{row['group_label']} approved",
        f"{row['group_approved']}/{row['group_applicants']}",
    )
    cols[3].metric(
        f"{row['reference_label']} approved",
        f"{row['reference_approved']}/{row['reference_applicants']}",
    )

    hist = loaded["history"]
    st.subheader("DIR over time")
    st.altair_chart(_dir_chart(hist, float(row["dir_threshold"])), width="stretch")
    left, right = st.columns(2)
    left.subheader("Approval-rate gap")
    left.line_chart(hist, x="time", y="gap_mean", color="scenario")
    right.subheader("Approval rate per group (monitored)")
    per_group: pd.DataFrame = loaded["groups"]
    if not per_group.empty:
        right.line_chart(per_group, x="time", y="rate", color="group")
    else:  # readings from before per-group rows were stored
        groups = {
            "group_rate": str(row["group_label"]),
            "reference_rate": str(row["reference_label"]),
        }
        right.line_chart(
            hist[hist["scenario"] == "monitored"].rename(columns=groups),
            x="time",
            y=list(groups.values()),
        )
    monitored = hist[hist["scenario"] == "monitored"]
    if monitored["drift_max"].notna().any():
        st.subheader("Drift statistic (CUSUM on log DIR, monitored)")
        st.altair_chart(
            _drift_chart(monitored, settings.drift_detection.threshold), width="stretch"
        )

    _alerts(settings, loaded["alerts"], signed_in)
    _health(settings, loaded["health"], chain)


def _alerts(settings: Settings, table: pd.DataFrame, signed_in: bool) -> None:
    st.subheader(f"Alerts ({len(table)})")
    if table.empty:
        st.caption("No alert in this time range.")
        return
    marks = _marks(settings, "alerts", [int(i) for i in table["alert_id"]])
    table = table.assign(
        verified=["✓" if marks[int(i)][0] else "✗ " + marks[int(i)][1] for i in table["alert_id"]]
    )
    if not all(ok for ok, _ in marks.values()):
        st.error("Some alert rows below are NOT what the audit trail recorded (column 'verified').")
    st.dataframe(table, hide_index=True, width="stretch")
    chosen = st.selectbox("Explanation of alert", table["alert_id"].tolist(), key="alert")
    if not signed_in:  # the key may be readable here: decrypt only for a signed-in reader
        st.info("encrypted — sign in to read (page token, in the sidebar)")
        return
    engine = data.open_readonly(settings)
    try:
        token = data.alert_token(engine, int(chosen))
    finally:
        engine.dispose()
    try:
        cipher = load_cipher(settings.keys.dir, create=False)
    except FairlensError:
        st.info("encrypted — key not available here")
        return
    try:
        st.write(cipher.decrypt(token or ""))
    except FairlensError as exc:
        st.warning(f"encrypted — {exc}")


def _health(settings: Settings, health: data.Health, chain: str) -> None:
    st.subheader("Daemon health")
    cols = st.columns(4)
    age = health.age(datetime.now(UTC))
    cols[0].metric(
        "Last successful cycle", "never" if age is None else f"{age.total_seconds():.0f} s ago"
    )
    cols[1].metric("Failed runs", health.failed)
    cols[2].metric("Missed runs", health.missed)
    cols[3].markdown(f"**Audit chain:** {chain}")
    if health.last_error:
        st.caption(f"Last failure: {health.last_error}")


def config_path() -> str:
    """The config this page shows: ``FAIRLENS_CONFIG``, else ./config.yaml (absolute)."""
    return str(Path(os.environ.get("FAIRLENS_CONFIG", "config.yaml")).resolve())


def _source_text(settings: Settings) -> str:
    src = settings.source
    where = src.table or ("query" if src.query else Path(src.path or "").name)
    return (
        f"- source: {src.kind} `{where}`, outcome `{src.outcome}`, window {src.window}"
        + (f", stratum `{src.stratum}`" if src.stratum else "")
        + "\n"
    )


def main() -> None:
    """Render the page."""
    st.set_page_config(page_title="FairLens Monitor", layout="wide")
    st.title("FairLens Monitor — fairness drift")
    try:
        portfolio = load_portfolio(config_path())
    except FairlensError as exc:
        st.error(f"Configuration problem: {scrub(str(exc))}")
        return
    settings = next(iter(portfolio.values()))  # the service sections are every monitor's
    exposed = not is_loopback(st.get_option("server.address"))
    with st.sidebar:
        signed_in = _sign_in(settings)
    if exposed and not signed_in:
        st.info(
            "This page is served beyond this machine: sign in with the page token (in "
            "the sidebar) to see it."
        )
        return
    with st.sidebar:
        names = _monitors(settings.database.url, tuple(portfolio), settings)
        monitor = str(st.selectbox("Monitor", names, key="monitor")) if len(names) > 1 else names[0]
        # a retired monitor's rules are no longer configured: the first one's are shown
        settings = portfolio.get(monitor, settings)
        range_name = st.radio("Time range", list(data.RANGES), index=1, key="range")
        if st.button("Refresh now"):
            st.cache_data.clear()
        sim, th = settings.simulation, settings.thresholds
        st.markdown("**Values in use** (set in the daemon's config, not here)")
        st.markdown(
            f"- monitor: `{monitor}`\n"
            f"- database: `{shown_url(settings.database.url)}`\n"
            f"- schedule: {settings.schedule.describe()}\n"
            + (
                _source_text(settings)
                if sim is None
                else f"- n_samples: {sim.n_samples}\n"
                f"- drift: {sim.drift.mode} {sim.drift.start:g}"
                + (
                    f" → {sim.drift.end:g} over {sim.drift.cycles} cycles"
                    if sim.drift.mode == "ramp"
                    else ""
                )
                + "\n"
            )
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
    dashboard(settings, str(range_name), signed_in, monitor)


def _sign_in(settings: Settings) -> bool:
    """The sidebar's sign-in: whether this browser session gave the page token.

    The token is read again on every run, so a rotated token signs every session out.
    """
    try:
        expected = load_page_token(settings.keys.dir)
    except FairlensError as exc:
        st.warning(f"Sign-in unavailable: {exc}")
        return False
    if expected is None:
        st.caption(
            "No page token: explanations stay encrypted. Create one with "
            "`fairlens-monitor page-token`."
        )
        return False
    given = st.text_input("Page token", type="password", key="page_token")
    if not given:
        return False
    if not token_matches(given, expected):
        st.error("Wrong page token.")
        return False
    st.caption("Signed in: explanations are decrypted.")
    return True


main()
