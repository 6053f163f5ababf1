"""How the page writes times, ages and tables for a person (pure; no Streamlit).

Beside the page's views: times in UTC to the minute ("2026-12-05 14:31 UTC"), ages in the
largest sensible unit ("20 min ago", "3 h 5 min ago", "2 days ago"), and the alert table with
human column names and values (no ``gap_mean``, microsecond timestamps or ``None``).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

DASH = "—"


def when(moment: datetime | None) -> str:
    """A UTC time to the minute, or a dash."""
    if moment is None or pd.isna(moment):
        return DASH
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return f"{stamp:%Y-%m-%d %H:%M} UTC"


def span(delta: timedelta) -> str:
    """A duration in the largest sensible units: "45 s", "20 min", "3 h 5 min", "2 days"."""
    exact = max(0.0, delta.total_seconds())
    if exact < 10 and exact != int(exact):
        return f"{exact:.2g} s"
    seconds = int(exact)
    if seconds < 90:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days = hours // 24
    return f"{days} days"


def ago(moment: datetime | None, now: datetime) -> str:
    """How long before ``now`` ``moment`` was ("never" for None)."""
    if moment is None:
        return "never"
    return f"{span(now - moment)} ago"


def number(value: Any, digits: int = 3) -> str:
    """A float to ``digits`` decimals, or a dash for NULL/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{float(value):.{digits}f}"


def count_pair(approved: Any, applicants: Any) -> str:
    """``approved / applicants``, or a dash."""
    if approved is None or applicants is None or pd.isna(approved) or pd.isna(applicants):
        return DASH
    return f"{int(approved):,} of {int(applicants):,}"


def p_value(value: Any) -> str:
    """A p-value to two significant digits, ``< 0.0001`` below that (never a bare
    ``0.0000``, which reads as impossible), or a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    p = float(value)
    if p < 1e-4:
        return "< 0.0001"
    return f"{p:.2g}" if p < 0.01 else f"{p:.3f}"


STATE = {"open": "open", "acknowledged": "acknowledged", "resolved": "resolved"}
KIND = {"dir": "DIR", "gap": "approval gap", "drift": "drift"}


def alert_table(table: pd.DataFrame) -> pd.DataFrame:
    """The alert rows as the page shows them: human column names and values (few columns,
    so the table fits at 800 px; the counts are in the alert's detail)."""
    shown = pd.DataFrame(
        {
            "Alert": [f"#{int(i)}" for i in table["alert_id"]],
            "State": [STATE.get(str(s), str(s)) for s in table["state"]],
            "Raised": [when(t) for t in table["created_at"]],
            "Closed": [when(t) for t in table["closed_at"]],
            "Kind": [KIND.get(str(k), str(k)) for k in table["kind"]],
            "DIR": [number(d) for d in table["dir"]],
            "p": [p_value(p) for p in table["p_value"]],
        }
    )
    if (shown["Closed"] == DASH).all():  # none closed: the column would only hold dashes
        shown = shown.drop(columns="Closed")
    return shown


def alert_choice(row: pd.Series) -> str:
    """The alert picker's label: id, state, kind, when raised and its DIR."""
    return (
        f"#{int(row['alert_id'])} · {row['state']} · {KIND.get(str(row['kind']), row['kind'])} · "
        f"raised {when(row['created_at'])} · DIR {number(row['dir'])}"
    )
