"""Drill-down: any attribute, compared group and reference, any date range, two periods.

As Arize and Arthur do: the reader chooses an attribute (or the intersection the monitor
measures), the reference group and a period (any dates, UTC, start inclusive, end
exclusive); the table gives every group's pooled counts, approval rate and DIR against the
chosen reference with its 95% interval, and the same for a second period below it (by
default the period of the same length just before: this quarter vs last). A period that
pools a reading failing its digest check (:mod:`viewer.flags`) says so above its table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.fairness.stats import ratio_interval
from fairlens_monitor.viewer import data, flags, fmt, series

INTERSECTION = "intersection (as measured)"


def regroup(totals: pd.DataFrame, part: int | None) -> pd.DataFrame:
    """Pool the stored groups by one attribute's value (``part``: its position in an
    ``A & B`` label; None keeps the labels as stored)."""
    if totals.empty or part is None:
        return totals[["group", "approved", "applicants"]].copy() if not totals.empty else totals
    pieces = totals["group"].astype(str).str.split(" & ")
    key = pieces.map(lambda p: p[part] if part < len(p) else "—")
    pooled = totals.assign(group=key).groupby("group", as_index=False)[["approved", "applicants"]]
    return pooled.sum()


def compare(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Each group's approval rate and DIR against ``reference``, with its 95% interval.

    Args:
        table: ``group``, ``approved``, ``applicants``.
        reference: the reference group's label.

    Returns:
        ``group``, ``approved``, ``applicants``, ``rate``, ``dir``, ``ci_low``, ``ci_high``
        (NaN where undefined; ``ci_high`` NaN also where it is unbounded).
    """
    if table.empty or reference not in set(table["group"]):
        return table.assign(rate=np.nan, dir=np.nan, ci_low=np.nan, ci_high=np.nan)
    ref = table[table["group"] == reference].iloc[0]
    approved = table["approved"].astype(float)
    applicants = table["applicants"].astype(float)
    rate = approved / applicants.where(applicants > 0)
    ref_rate = float(ref["approved"]) / float(ref["applicants"]) if ref["applicants"] else np.nan
    low, high = ratio_interval(
        table["approved"],
        table["applicants"],
        pd.Series(int(ref["approved"]), index=table.index),
        pd.Series(int(ref["applicants"]), index=table.index),
    )
    return table.assign(
        rate=rate,
        dir=rate / ref_rate if ref_rate else np.nan,
        ci_low=low,
        ci_high=np.where(np.isinf(high), np.nan, high),
    )


def shown(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The comparison as the page's table shows it."""
    return pd.DataFrame(
        {
            "Group": [f"{g} (reference)" if g == reference else str(g) for g in table["group"]],
            "Approved": [
                fmt.count_pair(a, n)
                for a, n in zip(table["approved"], table["applicants"], strict=True)
            ],
            "Rate": ["—" if pd.isna(r) else f"{r:.1%}" for r in table["rate"]],
            "DIR": [fmt.number(d) for d in table["dir"]],
            "95% interval": [
                fmt.DASH if pd.isna(lo) else f"{lo:.3f} – {'∞' if pd.isna(hi) else f'{hi:.3f}'}"
                for lo, hi in zip(table["ci_low"], table["ci_high"], strict=True)
            ],
        }
    )


def _failing(
    engine: Engine,
    monitor: str,
    since: datetime,
    until: datetime,
    bad: Mapping[int, str] | None,
    bad_groups: Mapping[int, str] | None,
) -> list[int]:
    """The ids of the period's readings known to fail their digest check (or whose
    per-group rows do)."""
    if not bad and not bad_groups:
        return []
    found = flags.failing_readings(
        engine,
        monitor=monitor,
        since=since,
        until=until,
        readings=bad or {},
        group_results=bad_groups,
    )
    return [int(i) for i in found["reading_id"]]


def _bounds(days: tuple[date, date]) -> tuple[datetime, datetime]:
    """UTC bounds of a date range: from the first day's start to the end of the last day."""
    start = datetime.combine(days[0], time(), tzinfo=UTC)
    return start, datetime.combine(days[1], time(), tzinfo=UTC) + timedelta(days=1)


def render(
    settings: Settings,
    monitor: str,
    latest: data.Latest,
    bad: Mapping[int, str] | None = None,
    bad_groups: Mapping[int, str] | None = None,
) -> None:
    """Draw the drill-down for ``monitor``.

    Args:
        settings: the monitor's settings (its attributes).
        monitor: whose readings.
        latest: the newest reading (the default period ends on its day).
        bad: reading ids known to fail their digest check, and why.
        bad_groups: per-group rows (``group_results``) known to fail theirs, and why.
    """
    with st.expander("Drill down: groups, reference, any period, period vs period"):
        attributes = list(settings.measurement.protected_attributes)
        choices = [INTERSECTION, *attributes] if len(attributes) > 1 else attributes
        attribute = st.selectbox("Attribute", choices, key="drill_attribute")
        part = (
            None
            if attribute == INTERSECTION or len(attributes) < 2
            else attributes.index(str(attribute))
        )
        newest = data.as_time(latest.reading["measured_at"]) or datetime.now(UTC)
        end = newest.date()
        this = st.date_input(
            "Period (UTC, whole days)", value=(end - timedelta(days=6), end), key="drill_period"
        )
        if not isinstance(this, tuple) or len(this) != 2:
            st.caption("Choose the period's first and last day.")
            return
        since, until = _bounds((this[0], this[1]))
        length = until - since
        other = st.date_input(
            "Compared with",
            value=((since - length).date(), (since - timedelta(days=1)).date()),
            key="drill_other",
        )
        low, high = since - length, since
        engine = data.open_readonly(settings)
        try:
            first = regroup(
                series.group_totals(engine, since=since, until=until, monitor=monitor), part
            )
            failing = [_failing(engine, monitor, since, until, bad, bad_groups)]
            second = None
            if isinstance(other, tuple) and len(other) == 2:
                low, high = _bounds((other[0], other[1]))
                second = regroup(
                    series.group_totals(engine, since=low, until=high, monitor=monitor), part
                )
                failing.append(_failing(engine, monitor, low, high, bad, bad_groups))
        finally:
            engine.dispose()
        periods = [(f"{this[0]} – {this[1]}", first)]
        if second is not None:
            periods.append((f"{low.date()} – {(high - timedelta(days=1)).date()}", second))
        groups = sorted({str(g) for _, t in periods if not t.empty for g in t["group"]})
        if not groups:
            st.caption("No reading with per-group counts in these periods.")
            return
        default = str(latest.reading["reference_label"])
        reference = str(
            st.selectbox(
                "Reference group",
                groups,
                index=groups.index(default) if default in groups else 0,
                key="drill_reference",
            )
        )
        # one under the other, not in columns: side by side, a period's table lost its
        # rate, DIR and interval columns below ~1,400 px (seen in Chromium at 1280 and 800)
        for (title, table), failed in zip(periods, failing, strict=True):
            column = st.container()
            column.markdown(f"**{title}**")
            if failed:
                column.error(
                    f"✗ Pooled here: {flags.failing_phrase(len(failed))} "
                    f"({flags.ids_text(failed)}); these totals may not be what was recorded."
                )
            if table.empty:
                column.caption("No reading with per-group counts in this period.")
            else:
                column.dataframe(shown(compare(table, reference), reference), hide_index=True)
