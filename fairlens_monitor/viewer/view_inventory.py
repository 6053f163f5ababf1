"""The landing view: the portfolio's inventory, one row per monitor, worst first (Streamlit).

Reads :func:`viewer.inventory.inventory` and draws it as one table (name, verdict with its
colour, DIR, a week's sparkline, open alerts, last reading, stale flag). Choosing a row (or
the monitor in the sidebar) opens that monitor's page: the choice is kept in the URL
(``?monitor=NAME``), so a monitor's page can be bookmarked and shared.
"""

from __future__ import annotations

from datetime import datetime

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


def inventory_frame(rows: list[MonitorStatus], now: datetime) -> pd.DataFrame:
    """The inventory as the page's table shows it."""
    return pd.DataFrame(
        {
            "Monitor": [r.name for r in rows],
            "Verdict": [verdict_text(r) for r in rows],
            "DIR": [fmt.number(r.dir) for r in rows],
            "Trend (7 days)": [list(r.trend) for r in rows],
            "Open alerts": [r.open_alerts for r in rows],
            "Last reading": [
                fmt.DASH
                if r.last_reading_at is None
                else f"{fmt.when(r.last_reading_at)} ({fmt.ago(r.last_reading_at, now)})"
                for r in rows
            ],
            "Stale": ["yes" if r.stale else "no" for r in rows],
        }
    )


def render(rows: list[MonitorStatus], now: datetime) -> str | None:
    """Draw the inventory; return the monitor whose row was chosen (None: none)."""
    stale = [r.name for r in rows if r.stale]
    adverse = [r.name for r in rows if r.state == "active" and r.verdict == "adverse"]
    st.subheader(f"Portfolio — {len(rows)} monitors")
    st.caption(f"as of {fmt.when(now)} · worst first · choose a row to open its monitor")
    if not rows:
        st.info("No monitor has run yet: the daemon has not completed a cycle.")
        return None
    if adverse:
        st.error(f"**{len(adverse)} ADVERSE**: " + ", ".join(adverse))
    if stale:
        st.warning(
            f"**{len(stale)} STALE** (no successful run for over 3 intervals): " + ", ".join(stale)
        )
    frame = inventory_frame(rows, now)
    event = st.dataframe(
        frame.style.map(_colour, subset=["Verdict"]),
        hide_index=True,
        width="stretch",
        key="inventory",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "Trend (7 days)": st.column_config.LineChartColumn(
                "Trend (7 days)", help="DIR, monitored, 6-hour means", width="small"
            ),
            "Open alerts": st.column_config.NumberColumn("Open alerts", format="%d"),
        },
    )
    chosen = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    return rows[int(chosen[0])].name if chosen else None
