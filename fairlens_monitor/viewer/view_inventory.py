"""The landing view: the portfolio's inventory, one row per monitor, worst first (Streamlit).

Reads :func:`viewer.inventory.inventory` and draws it as one table (name, verdict with its
colour and the stale flag, open alerts, the last reading's age, DIR, a week's sparkline on
one DIR scale for every row). Narrow enough for 800 px beside the sidebar: the last
reading's UTC time is on the monitor's page, and "as of" above the table says when now is.
A monitor's name is a link to its page (``?monitor=NAME``); choosing its row, or the
monitor in the sidebar, opens it too. The choice is kept in the URL, so a monitor's page can
be bookmarked and shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote

import pandas as pd
import streamlit as st

from fairlens_monitor.viewer import fmt
from fairlens_monitor.viewer.inventory import MonitorStatus

VERDICT = {  # what the verdict cell says (its colour: COLOUR, by the first word)
    "adverse": "ADVERSE",
    "inconclusive": "inconclusive",
    "drifting": "drifting",
    "warning": "warning",
    "ok": "ok",
    "no_data": "no data",
}
COLOUR = {  # cell background per verdict cell's first word
    "ADVERSE": "#f8c9c9",
    "STALE": "#fde2b5",
    "inconclusive": "#fde2b5",
    "drifting": "#fde2b5",
    "warning": "#fde2b5",
    "ok": "#cdebd3",
    "✗": "#f8c9c9",  # a DIR that fails its digest check
}


def _colour(cell: object) -> str:
    word = str(cell).split(" ")[0]
    return f"background-color: {COLOUR[word]}" if word in COLOUR else ""


def verdict_text(row: MonitorStatus) -> str:
    """The verdict cell: paused/retired monitors say so; a stale one says it first."""
    if row.state != "active":
        return row.state
    shown = VERDICT.get(str(row.verdict), "no reading yet")
    return f"STALE · {shown}" if row.stale else shown


LINK_TEXT = r"\?monitor=(.+)"  # the link cell shows the name the URL carries


def link(name: str) -> str:
    """The monitor's page, relative to this one (``?monitor=NAME``): the Monitor cell is a
    link to it, so a click opens it (the row selection does too)."""
    return f"?monitor={quote(name, safe='')}"


def dir_text(row: MonitorStatus, failed: Mapping[int, str]) -> str:
    """The DIR cell: ``✗ 0.950`` when the reading it comes from fails its digest check."""
    shown = fmt.number(row.dir)
    return f"✗ {shown}" if row.reading_id is not None and row.reading_id in failed else shown


def inventory_frame(
    rows: list[MonitorStatus], now: datetime, failed: Mapping[int, str] | None = None
) -> pd.DataFrame:
    """The inventory as the page's table shows it.

    Args:
        rows: the inventory, worst first.
        now: the time ages are judged at.
        failed: reading ids that fail their digest check (their DIR is marked ✗).
    """
    return pd.DataFrame(
        {
            "Monitor": [link(r.name) for r in rows],
            "Verdict": [verdict_text(r) for r in rows],
            "Open alerts": [r.open_alerts for r in rows],
            "Last reading": [
                fmt.DASH if r.last_reading_at is None else fmt.ago(r.last_reading_at, now)
                for r in rows
            ],
            "DIR": [dir_text(r, failed or {}) for r in rows],
            "7-day DIR": [list(r.trend) for r in rows],
        }
    )


def trend_scale(rows: list[MonitorStatus]) -> tuple[float, float]:
    """One DIR scale for every sparkline, from 0 to at least 1.25: a per-row scale made a
    steady 0.99–1.00 look as steep as a fall from 1.0 to 0.4 (seen in Chromium)."""
    highest = max((v for r in rows for v in r.trend), default=0.0)
    return 0.0, max(1.25, highest)


def render(
    rows: list[MonitorStatus], now: datetime, failed: Mapping[int, str] | None = None
) -> str | None:
    """Draw the inventory; return the monitor whose row was chosen (None: none).

    Args:
        rows: the inventory, worst first.
        now: the time ages are judged at.
        failed: reading ids that fail their digest check, and why (their DIR is marked).
    """
    stale = [r.name for r in rows if r.stale]
    adverse = [r.name for r in rows if r.state == "active" and r.verdict == "adverse"]
    st.subheader(f"Portfolio — {len(rows)} monitors")
    st.caption(
        f"as of {fmt.when(now)} · worst first · click a name (or choose a row) to open its monitor"
    )
    if not rows:
        st.info("No monitor has run yet: the daemon has not completed a cycle.")
        return None
    if adverse:
        st.error(f"**{len(adverse)} ADVERSE**: " + ", ".join(adverse))
    if stale:
        st.warning(
            f"**{len(stale)} STALE** (no successful run for over 3 intervals): " + ", ".join(stale)
        )
    failed = failed or {}
    edited = [r for r in rows if r.reading_id is not None and r.reading_id in failed]
    if edited:
        st.error(
            "**✗ DIR NOT verified** (marked ✗ below): the newest reading of "
            + ", ".join(f"{r.name} (#{r.reading_id})" for r in edited)
            + " differs from what the audit trail recorded; the value shown is as stored now."
        )
    frame = inventory_frame(rows, now, failed)
    low, high = trend_scale(rows)
    event = st.dataframe(
        frame.style.map(_colour, subset=["Verdict", "DIR"]),
        hide_index=True,
        width="stretch",
        key="inventory",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "Monitor": st.column_config.LinkColumn(
                "Monitor", display_text=LINK_TEXT, help="opens the monitor's page"
            ),
            "7-day DIR": st.column_config.LineChartColumn(
                "7-day DIR",
                help=f"DIR, monitored, 6-hour means; every row on one scale, {low:g}–{high:g}",
                width="small",
                y_min=low,
                y_max=high,
            ),
            "Open alerts": st.column_config.NumberColumn(
                "Open alerts", format="%d", help="open or acknowledged alert episodes"
            ),
            "Last reading": st.column_config.TextColumn(
                "Last reading", help="how long before 'as of' the newest reading was taken"
            ),
        },
    )
    chosen = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    return rows[int(chosen[0])].name if chosen else None
