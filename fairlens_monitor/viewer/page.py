"""The risk officer's page: a read-only Streamlit view of the portfolio and of each monitor.

The last step after **log**: it only reads what the daemons wrote (``viewer.data`` opens the
database read-only; a read-only copy in a read-only folder is opened ``immutable=1`` and said
to be one). The landing view is the inventory (one row per monitor, worst first,
``view_inventory``); choosing a monitor (a row, the sidebar, or ``?monitor=NAME``) opens its
page (``view_monitor``). The data part refreshes every ``REFRESH_SECONDS`` in place
(``st.fragment(run_every=...)``; the reads are cached per database state, and the fade
Streamlit gives elements while a run is pending is switched off). A broken audit chain is a
red banner at the top of every view. Run it with ``fairlens-monitor view`` or
``FAIRLENS_CONFIG=config.yaml streamlit run fairlens_monitor/viewer/page.py``.
Explanations are decrypted only for a session signed in with the page token
(``page_auth``); served beyond loopback, it shows nothing before sign-in.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import streamlit as st
from sqlalchemy import text

from fairlens_monitor.config.monitors import load_portfolio
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.errors import FairlensError
from fairlens_monitor.security.page_auth import is_loopback, load_page_token, token_matches
from fairlens_monitor.security.passwords import scrub
from fairlens_monitor.viewer import data, flags, fmt, inventory, view_inventory, view_monitor
from fairlens_monitor.viewer.rows import LiveLedger
from fairlens_monitor.viewer.sidebar import values_in_use
from fairlens_monitor.viewer.view_alerts import Marks
from fairlens_monitor.viewer.watch import ChainWatcher

REFRESH_SECONDS = 5
INVENTORY = "(portfolio inventory)"
CUSTOM = "custom dates"
NO_FADE = """<style>
[data-stale="true"], .stale-element, [data-testid="stElementContainer"][data-stale="true"] {
  opacity: 1 !important; transition: none !important; }
@media (max-width: 1000px) {  /* at 800 px the 300 px sidebar cut the tables' last columns */
  section[data-testid="stSidebar"] { width: 230px !important; min-width: 230px !important;
    max-width: 230px !important; } }
</style>"""


@st.cache_data(max_entries=64, show_spinner=False)
def _monitor_data(
    url: str, monitor: str, since: Any, until: Any, rollup: bool, version: Any, _s: Settings
) -> dict[str, Any]:
    """One monitor's reads, cached per database state (``version``) and range."""
    return view_monitor.load(_s, monitor, since, until, rollup=rollup)


@st.cache_data(max_entries=8, show_spinner=False)
def _inventory(url: str, version: Any, minute: int, _s: Settings) -> list[inventory.MonitorStatus]:
    """The inventory, cached per database state and minute (staleness moves with time)."""
    engine = data.open_readonly(_s)
    try:
        return inventory.inventory(engine, datetime.now(UTC))
    finally:
        engine.dispose()


def _version(settings: Settings) -> tuple[int, int]:
    """The database state: the chain's newest seq (every write appends an event) and the
    newest reading id (a cheap read that tells a refresh whether anything changed)."""
    engine = data.open_readonly(settings)
    try:
        with engine.connect() as conn:
            seq = conn.execute(text("SELECT max(seq) FROM audit_events")).scalar()
            reading = conn.execute(text("SELECT max(id) FROM readings")).scalar()
        return int(seq or 0), int(reading or 0)
    finally:
        engine.dispose()


@st.cache_resource(show_spinner=False)
def _watcher(config_path: str) -> ChainWatcher:
    return ChainWatcher(config_path)


@st.cache_resource(show_spinner=False)
def _live(config_path: str) -> LiveLedger:
    return LiveLedger()


def _marks(settings: Settings) -> Marks:
    """A checker of shown rows against their digests on the chain (``viewer.rows``)."""

    def check(table: str, ids: list[int]) -> dict[int, tuple[bool, str]]:
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

    return check


def window(range_name: str, now: datetime) -> tuple[datetime | None, datetime | None, bool]:
    """(since, until, read the rollup) of a preset range or of the chosen custom dates."""
    if range_name == CUSTOM:
        days = st.session_state.get("custom_dates")
        if isinstance(days, tuple) and len(days) == 2:
            since = datetime.combine(days[0], time(), tzinfo=UTC)
            until = datetime.combine(days[1], time(), tzinfo=UTC) + timedelta(days=1)
            return since, until, until - since >= data.ROLLUP_FROM
        return None, None, True
    span = data.RANGES[range_name]
    if span is None:
        return None, None, range_name in data.WIDE
    # to the minute: one cache entry per minute, not per refresh
    start = (now - span).replace(second=0, microsecond=0)
    return start, None, range_name in data.WIDE


@st.fragment(run_every=REFRESH_SECONDS)
def dashboard(
    portfolio: dict[str, Settings], monitor: str | None, range_name: str, signed_in: bool
) -> None:
    """The data part of the page: re-run every ``REFRESH_SECONDS`` without reloading it."""
    settings = next(iter(portfolio.values()))
    url = settings.database.url
    watcher = _watcher(config_path())
    chain = watcher.status(wait=1.0)
    if watcher.alarm is not None:
        st.error(
            f"**Audit trail TAMPERED** — first anomaly: {watcher.alarm}. What this page "
            "shows may not be what was recorded; run `fairlens-monitor verify`."
        )
    now = datetime.now(UTC)
    try:
        version = _version(settings)
        if monitor is None:
            rows = _inventory(url, version, int(now.timestamp() // 60), settings)
            st.markdown(f"**Audit chain:** {chain}")
            shown = [r.reading_id for r in rows if r.reading_id is not None]
            checked = _marks(settings)("readings", shown)
            failed = flags.failed_ids(checked, watcher.failed.get("readings"))
            picked = view_inventory.render(rows, now, failed)
            if picked is not None:
                st.query_params["monitor"] = picked
                st.rerun(scope="app")
            return
        mine = portfolio.get(monitor, settings)
        since, until, rollup = window(range_name, now)
        loaded = {
            **_monitor_data(url, monitor, since, until, rollup, version, mine),
            "key": (url, monitor, str(since), str(until), rollup, version),
        }
    except FairlensError as exc:
        st.warning(scrub(str(exc), url))
        return
    st.header(f"Monitor {monitor}")
    view_monitor.render(
        mine,
        monitor,
        loaded,
        now=now,
        signed_in=signed_in,
        marks=_marks(settings),
        known=watcher.failed,
        configured=monitor in portfolio,
    )
    st.markdown(f"**Audit chain:** {chain}")
    st.caption(f"Refreshed {fmt.when(now)}; every {REFRESH_SECONDS} s.")


def config_path() -> str:
    """The config this page shows: ``FAIRLENS_CONFIG``, else ./config.yaml (absolute)."""
    return str(Path(os.environ.get("FAIRLENS_CONFIG", "config.yaml")).resolve())


def _monitor_names(settings: Settings, portfolio: dict[str, Settings]) -> list[str]:
    """The monitors in the database (by name), then any configured one not there yet."""
    try:
        engine = data.open_readonly(settings)
    except FairlensError:
        return list(portfolio)
    try:
        with engine.connect() as conn:
            stored = [
                str(n) for (n,) in conn.execute(text("SELECT name FROM monitors ORDER BY name"))
            ]
    except Exception:
        stored = []
    finally:
        engine.dispose()
    return stored + [n for n in portfolio if n not in stored]


def main() -> None:
    """Render the page."""
    st.set_page_config(
        page_title="FairLens Monitor", layout="wide", initial_sidebar_state="expanded"
    )
    st.markdown(NO_FADE, unsafe_allow_html=True)
    st.title("FairLens Monitor — fairness drift")
    try:
        portfolio = load_portfolio(config_path())
    except FairlensError as exc:
        st.error(f"Configuration problem: {scrub(str(exc))}")
        return
    settings = next(iter(portfolio.values()))
    exposed = not is_loopback(st.get_option("server.address"))
    with st.sidebar:
        signed_in = _sign_in(settings)
    if exposed and not signed_in:
        st.info(
            "This page is served beyond this machine: sign in with the page token (in "
            "the sidebar) to see it."
        )
        return
    if data.read_only_copy(settings):
        st.caption(
            "Read-only copy: the database file or its folder cannot be written here; it is "
            "opened immutable (no locks, nothing written)."
        )
    names = _monitor_names(settings, portfolio)
    wanted = st.query_params.get("monitor")
    options = [INVENTORY, *names]
    with st.sidebar:
        chosen = st.selectbox(
            "Monitor",
            options,
            index=options.index(wanted) if wanted in options else 0,
            key=f"monitor_{wanted}",
        )
        monitor = None if chosen == INVENTORY else str(chosen)
        if monitor != wanted:
            if monitor is None:
                st.query_params.pop("monitor", None)
            else:
                st.query_params["monitor"] = monitor
        range_name = "last day"
        if monitor is not None:
            ranges = [*data.RANGES, CUSTOM]
            asked = st.query_params.get("range")  # a bookmarkable range: ?range=last+week
            range_name = str(
                st.radio(
                    "Time range",
                    ranges,
                    index=ranges.index(asked) if asked in ranges else 1,
                    key="range",
                )
            )
            if range_name == CUSTOM:
                today = datetime.now(UTC).date()
                st.date_input(
                    "From – to (UTC, whole days)",
                    value=(today - timedelta(days=30), today),
                    key="custom_dates",
                )
        if st.button("Refresh now"):
            st.cache_data.clear()
        if monitor is not None and monitor in portfolio:
            values_in_use(portfolio[monitor])
        elif monitor is not None:  # another config runs it: its values are not known here
            st.caption(
                f"Values in use: monitor {monitor} is not in this page's config "
                f"({Path(config_path()).name}); its daemon runs it from another config, whose "
                "values this page cannot show. The DIR and gap thresholds drawn are those "
                "stored with each reading."
            )
    dashboard(portfolio, monitor, range_name, signed_in)


def _sign_in(settings: Settings) -> bool:
    """The sidebar's sign-in: whether this browser session gave the page token.

    The token is read again on every run, so a rotated token signs every session out.
    """
    try:
        expected = load_page_token(settings.keys.dir)
    except FairlensError as exc:
        st.warning(f"Sign-in unavailable: {exc}")
        return False
    except OSError:  # a key folder this process may not read
        st.warning(
            "Sign-in unavailable: the key folder cannot be read here; explanations stay "
            "encrypted — key not available here."
        )
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
