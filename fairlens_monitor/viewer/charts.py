"""The page's charts (Altair): DIR with its interval band, approval gap, group rates, drift.

Pure builders over the frames of :mod:`viewer.series`. The time axis is drawn in UTC
whatever the browser's time zone (a ``utc`` scale, UTC tick labels) and titled so; its tick
format follows the span shown (seconds for minutes, hours for a day, dates beyond). Each
unbroken run of readings is its own line (``segment`` from :func:`series.mark_gaps`), so an
outage is a gap, not a straight segment across it, and a run of one reading (a line of
no length, which Vega draws as nothing) is a dot of its line's colour. Config changes and
daemon restarts are drawn as labelled vertical rules. Readings that fail their digest check
(:mod:`viewer.flags`) are black crosses at their value as stored now, with a legend entry.
"""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd

from fairlens_monitor.viewer.series import mark_gaps

HEIGHT = 240
Layered = alt.LayerChart | alt.FacetChart  # what alt.layer returns
FLAG = "✗ fails its digest check"  # the legend entry of a reading the chain does not vouch for
CROSS = "M-1,-1L1,1M1,-1L-1,1"  # an ✗ (Vega's "cross" is a plus)


def utc_x() -> alt.X:
    """A layer's x on the charts' UTC time scale (the axis itself: :func:`time_axis`)."""
    return alt.X("time:T", scale=alt.Scale(type="utc"))


def time_tip(*, seconds: bool = False) -> alt.Tooltip:
    """The tooltip line of a point's time, in UTC (to the second, or to the minute)."""
    return alt.Tooltip(
        "time:T", format=f"%Y-%m-%d %H:%M{':%S' if seconds else ''} UTC", formatType="utc"
    )


def time_axis(df: pd.DataFrame, title: str = "time (UTC)") -> alt.X:
    """An x encoding on ``time`` in UTC with a tick format suited to the span shown."""
    times = df["time"] if not df.empty else pd.Series([], dtype="datetime64[ns, UTC]")
    width = (times.max() - times.min()) if len(times) > 1 else pd.Timedelta(0)
    if width <= pd.Timedelta(hours=2):
        fmt = "%H:%M:%S"
    elif width <= pd.Timedelta(days=2):
        fmt = "%d %b %H:%M"
    elif width <= pd.Timedelta(days=400):
        fmt = "%d %b"
    else:
        fmt = "%b %Y"
    return alt.X(
        "time:T",
        title=title,
        scale=alt.Scale(type="utc"),
        # labelExpr, not format: the tick text itself, in UTC, whatever the browser's zone
        axis=alt.Axis(labelExpr=f"utcFormat(datum.value, '{fmt}')", labelOverlap=True, tickCount=6),
    )


def _events_layer(events: pd.DataFrame) -> Layered | None:
    """Vertical rules for config changes and restarts (``time``, ``label``)."""
    if events.empty:
        return None
    base = alt.Chart(events).encode(
        x=utc_x(),
        tooltip=[time_tip(), "label:N"],
    )
    return alt.layer(base.mark_rule(color="gray", strokeDash=[2, 2]))


def flag_layer(flagged: pd.DataFrame | None, y: str, title: str) -> alt.Chart | None:
    """Black crosses at the readings that fail their digest check (``viewer.flags``
    columns), at their value ``y`` as stored now, with a legend entry (:data:`FLAG`)."""
    if flagged is None or flagged.empty:
        return None
    points = flagged.dropna(subset=[y]).assign(flag=FLAG)
    if points.empty:
        return None
    layer: alt.Chart = (
        alt.Chart(points[["reading_id", "scenario", "time", y, "reason", "flag"]])
        .mark_point(shape=CROSS, filled=False, size=160, color="black", opacity=1, strokeWidth=3)
        .encode(
            x=utc_x(),
            y=alt.Y(f"{y}:Q"),
            shape=alt.Shape(
                "flag:N",
                title="row check",
                scale=alt.Scale(range=[CROSS]),
                legend=alt.Legend(symbolStrokeColor="black", symbolStrokeWidth=3),
            ),
            tooltip=[
                alt.Tooltip("reading_id:Q", title="reading"),
                time_tip(seconds=True),
                "scenario:N",
                alt.Tooltip(f"{y}:Q", format=".3f", title=f"{title} as stored"),
                alt.Tooltip("reason:N", title="check"),
            ],
        )
    )
    return layer


def lone_points(df: pd.DataFrame, y: str, color: str | None) -> alt.Chart | None:
    """Dots at the readings that are a run of their own (``segment`` of one row).

    Args:
        df: a frame from :func:`series.mark_gaps` (``time``, ``segment``, ``y``).
        y: the value column.
        color: the column the lines are coloured by (None: one colour).

    Returns:
        The layer, or None when every run has two readings or more.
    """
    if df.empty:
        return None
    alone = df[df.groupby("segment")["time"].transform("size") == 1].dropna(subset=[y])
    if alone.empty:
        return None
    encoding: dict[str, object] = {
        "x": utc_x(),
        "y": alt.Y(f"{y}:Q"),
        "tooltip": [
            time_tip(),
            alt.Tooltip(f"{y}:Q", format=".3f"),
        ],
    }
    if color is not None:
        encoding["color"] = alt.Color(f"{color}:N")
    keep = ["time", "segment", y] + ([] if color is None else [color])
    layer: alt.Chart = alt.Chart(alone[keep]).mark_point(filled=True, size=30).encode(**encoding)
    return layer


def _plus(chart: Layered, layer: alt.Chart | None) -> Layered:
    return chart if layer is None else alt.layer(chart, layer)


def _with_flags(chart: Layered, flagged: pd.DataFrame | None, y: str, title: str) -> Layered:
    layer = flag_layer(flagged, y, title)
    return chart if layer is None else alt.layer(chart, layer)


def _with_events(chart: Layered, events: pd.DataFrame | None) -> Layered:
    layer = None if events is None else _events_layer(events)
    return chart if layer is None else alt.layer(chart, layer)


def dir_chart(
    hist: pd.DataFrame,
    threshold: float,
    *,
    expected: timedelta | None,
    events: pd.DataFrame | None = None,
    flagged: pd.DataFrame | None = None,
) -> Layered:
    """DIR per scenario over time, the monitored interval band, adverse points, threshold,
    and the readings that fail their digest check (``flagged``)."""
    hist = mark_gaps(hist, by="scenario", expected=expected)
    x = time_axis(hist)
    base = alt.Chart(hist).encode(x=x)
    tip = [
        time_tip(seconds=True),
        "scenario:N",
        alt.Tooltip("dir_mean:Q", format=".3f", title="DIR (mean)"),
        alt.Tooltip("dir_min:Q", format=".3f", title="DIR (min)"),
        alt.Tooltip("readings:Q"),
    ]
    band = (
        base.transform_filter(alt.datum.scenario == "monitored")
        .mark_area(opacity=0.2)
        .encode(y=alt.Y("ci_low:Q", title="DIR"), y2="ci_high:Q", detail="segment:N")
    )
    line = base.mark_line(point=len(hist) < 40).encode(
        y="dir_mean:Q",
        color=alt.Color("scenario:N", title="scenario"),
        detail="segment:N",
        tooltip=tip,
    )
    marks = (
        base.transform_filter(alt.datum.alerts > 0)
        .mark_point(color="red", filled=True, size=40)
        .encode(y="dir_min:Q", tooltip=tip)
    )
    rule = (
        alt.Chart(pd.DataFrame({"y": [threshold]}))
        .mark_rule(color="red", strokeDash=[6, 4])
        .encode(y="y:Q")
    )
    chart = _plus(
        alt.layer(band, line, marks, rule), lone_points(hist, "dir_mean", "scenario")
    ).properties(height=HEIGHT)
    return _with_events(_with_flags(chart, flagged, "dir", "DIR"), events)


def gap_chart(
    hist: pd.DataFrame,
    threshold: float,
    *,
    expected: timedelta | None,
    flagged: pd.DataFrame | None = None,
) -> Layered:
    """Approval-rate gap per scenario, with its threshold line (e.g. 0.2) and the readings
    that fail their digest check (``flagged``)."""
    hist = mark_gaps(hist, by="scenario", expected=expected)
    line = (
        alt.Chart(hist)
        .mark_line()
        .encode(
            x=time_axis(hist),
            y=alt.Y("gap_mean:Q", title="approval gap"),
            color=alt.Color("scenario:N"),
            detail="segment:N",
            tooltip=[
                time_tip(),
                alt.Tooltip("gap_mean:Q", format=".3f", title="gap"),
            ],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"y": [threshold], "label": [f"threshold {threshold:g}"]}))
        .mark_rule(color="orange", strokeDash=[6, 4])
        .encode(y="y:Q", tooltip=["label:N"])
    )
    chart = _plus(alt.layer(line, rule), lone_points(hist, "gap_mean", "scenario"))
    return _with_flags(chart.properties(height=HEIGHT), flagged, "gap", "gap")


def rate_chart(rates: pd.DataFrame, *, expected: timedelta | None) -> Layered:
    """Approval rate per group over time (``time``, ``group``, ``rate``)."""
    rates = mark_gaps(rates, by="group", expected=expected)
    line = (
        alt.Chart(rates)
        .mark_line()
        .encode(
            x=time_axis(rates),
            y=alt.Y("rate:Q", title="approval rate", axis=alt.Axis(format="%")),
            color=alt.Color("group:N"),
            detail="segment:N",
            tooltip=[
                time_tip(),
                "group:N",
                alt.Tooltip("rate:Q", format=".1%"),
            ],
        )
    )
    return _plus(alt.layer(line), lone_points(rates, "rate", "group")).properties(height=HEIGHT)


def drift_chart(
    hist: pd.DataFrame,
    threshold: float | None,
    *,
    expected: timedelta | None,
    flagged: pd.DataFrame | None = None,
) -> Layered:
    """The CUSUM drift statistic (monitored) with its threshold (None: unknown, no line) and
    the monitored readings that fail their digest check (``flagged``)."""
    hist = mark_gaps(hist, by="scenario", expected=expected)
    line = (
        alt.Chart(hist)
        .mark_line()
        .encode(
            x=time_axis(hist),
            y=alt.Y("drift_max:Q", title="statistic"),
            detail="segment:N",
            tooltip=[
                time_tip(),
                alt.Tooltip("drift_max:Q", format=".2f"),
            ],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"y": [threshold]}))
        .mark_rule(color="orange", strokeDash=[6, 4])
        .encode(y="y:Q")
    )
    if flagged is not None and not flagged.empty:
        flagged = flagged[flagged["scenario"] == "monitored"]
    chart = alt.layer(line) if threshold is None else alt.layer(line, rule)
    chart = _plus(chart, lone_points(hist, "drift_max", None)).properties(height=HEIGHT)
    return _with_flags(chart, flagged, "drift_statistic", "statistic")
