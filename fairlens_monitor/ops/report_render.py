"""The examiner's pack, its pages: the chart image, the shared wording, and ``report.html``.

``ops.report`` gathers what the pack says; this module says it. The chart is drawn with
matplotlib's Agg back end (no display, no browser) as a PNG, which ``report.html`` inlines as
a ``data:`` URI — the HTML file is self-contained: no script, no stylesheet or font fetched
from anywhere — and ``ops.report_pdf`` places on its page. The wording every page shares
(the summary lines, the methodology paragraph, number and time formats) is here, once. The
HTML comes from the Jinja2 template ``report.html.j2`` beside this module (shipped in the
wheel as package data), rendered with autoescaping on.
"""

from __future__ import annotations

import base64
import io
import math
from datetime import datetime
from importlib import resources
from itertools import pairwise
from typing import Any

from fairlens_monitor.ops.report import ReportData

TEMPLATE = "report.html.j2"
# A break in the lines where readings are further apart than this many times the usual
# spacing: an outage or missed cycles are gaps, not straight segments across.
GAP_FACTOR = 3.0
BUCKETS = 500  # at most this many points per line: a year of hourly readings stays legible


def when(moment: datetime | None) -> str:
    """A UTC time as the pages print it (``2026-01-05 14:03:07 UTC``), or an em dash."""
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def num(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``∞`` for infinity (an interval open above); an em
    dash for None or NaN."""
    if value is None or math.isnan(float(value)):
        return "—"
    if math.isinf(float(value)):
        return "∞" if float(value) > 0 else "−∞"
    return f"{float(value):.{digits}f}"


def stamp(ts: str) -> str:
    """An audit record's RFC 3339 time as the tables print it, under a "time (UTC)" heading
    (to the second; the CSV files and the records keep the microseconds)."""
    try:
        return f"{datetime.fromisoformat(ts.replace('Z', '+00:00')):%Y-%m-%d %H:%M:%S}"
    except ValueError:
        return ts


def span(low: float | None, high: float | None) -> str:
    """A range ``low – high``, or one em dash when neither end is known."""
    low_text, high_text = num(low), num(high)
    return "—" if low_text == high_text == "—" else f"{low_text} – {high_text}"


def period_line(data: ReportData) -> str:
    """The period in words: start inclusive, end exclusive, in UTC."""
    return f"from {when(data.start)} (inclusive) to {when(data.end)} (exclusive)"


def summary_rows(data: ReportData) -> list[tuple[str, str]]:
    """The period summary as (label, value) lines."""
    s = data.summary()
    rows = [
        ("Monitor", data.monitor),
        ("Period", period_line(data)),
        ("Runs", f"{s['runs_ok']} completed, {s['runs_failed']} failed"),
    ]
    for scenario in ("monitored", "reference"):
        part = s.get(scenario)
        if part is None:
            continue
        verdicts = ", ".join(
            f"{n} {v.replace('None', 'no verdict')}" for v, n in part["verdicts"].items()
        )
        rows.append(
            (
                f"Readings ({scenario})",
                f"{part['readings']}, {when(part['first'])} to {when(part['last'])}; "
                f"verdicts: {verdicts}",
            )
        )
        rows.append(
            (
                f"DIR ({scenario})",
                f"min {num(part['dir_min'])}, mean {num(part['dir_mean'])}, "
                f"max {num(part['dir_max'])}",
            )
        )
    if "monitored" not in s and "reference" not in s:
        rows.append(("Readings", "none in this period"))
    rows.append(
        (
            "Alert episodes",
            f"{s['alerts']} open at some time in the period ({s['alerts_raised_in_period']} "
            f"raised in it); {s['alerts_open_now']} still open or acknowledged",
        )
    )
    rows.append(("Explanations", data.explanations))
    return rows


def methodology(data: ReportData) -> list[str]:
    """The methodology paragraphs: thresholds, tests and multiplicity, as the period's
    readings record them (docs/STATISTICS.md is the long form)."""
    m = data.methodology

    def listed(key: str, fallback: str = "not recorded") -> str:
        return ", ".join(str(v) for v in m.get(key, [])) or fallback

    modes = m.get("reference_mode", [])
    if "highest" in modes:
        multiplicity = (
            "Holm's step-down adjustment over all pairs of included groups (the reference is "
            "the group with the highest rate, a family chosen by the data)"
        )
    elif modes:
        multiplicity = (
            "Holm's step-down adjustment over the compared groups (family-wise error at most alpha)"
        )
    else:  # no reading in the period: its family is not recorded either
        multiplicity = "Holm's step-down adjustment (its family follows the reference mode)"
    return [
        f"Each reading counts approvals per group of the protected attribute "
        f"({listed('protected_attribute')}) and compares every group with the reference "
        f"group (reference mode: {listed('reference_mode')}). The disparate "
        f"impact ratio (DIR) is the group's approval rate divided by the reference's, with "
        f"a MOVER-R interval (confidence {listed('confidence')}) built from each group's "
        f"Clopper–Pearson limits.",
        f"A group is adverse when its DIR is below the threshold ({listed('dir_threshold')}) "
        f"and its p-value, adjusted for multiplicity, is below alpha ({listed('alpha')}); "
        f"below the threshold but not significant is inconclusive, as is a group or "
        f"reference with fewer than {listed('min_group_size')} applicants. Groups below "
        f"{listed('min_group_share')} of the applicants are listed but not compared. The "
        f"approval-rate gap is flagged above {listed('gap_threshold')}.",
        f"Tests: Fisher's exact test for small tables (fewer than 30 applicants in a group "
        f"or an expected cell below 5), otherwise the pooled two-proportion z-test; both "
        f"two-sided (recorded: {listed('test')}). Multiplicity: {multiplicity}. Drift over "
        f"time is a CUSUM chart on the monitored readings. The thresholds above are the "
        f"ones stored with the readings of this period; a change of them during the period "
        f"is listed under configuration changes.",
    ]


def chart_png(data: ReportData) -> bytes:
    """The DIR with its interval, and the approval-rate gap, over the period (a PNG).

    Returns:
        The PNG's bytes (about 1,400 × 900 pixels).
    """
    import matplotlib  # deferred: only a report draws

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.4), dpi=140, sharex=True)
    try:
        drawn = False
        for scenario, colour in (("monitored", "#1f5fa8"), ("reference", "#8a8a8a")):
            pts = [p for p in data.points if p[0] == scenario]
            if not pts:
                continue
            drawn = True
            times, dirs, lows, highs, gaps = _broken(_bucketed(pts, data))
            top.plot(times, dirs, color=colour, lw=1.4, label=f"DIR ({scenario})")
            top.fill_between(times, lows, highs, color=colour, alpha=0.18, lw=0)
            bottom.plot(times, gaps, color=colour, lw=1.4, label=f"gap ({scenario})")
            # a line needs two points: a lone reading is a marker, its interval a bar
            for ax, values in ((top, dirs), (bottom, gaps)):
                alone = _alone(values)
                ax.plot(
                    [times[i] for i in alone],
                    [values[i] for i in alone],
                    ls="none",
                    marker="o",
                    ms=4,
                    color=colour,
                )
            alone = _alone(dirs)
            top.vlines(
                [times[i] for i in alone],
                [lows[i] for i in alone],
                [highs[i] for i in alone],
                color=colour,
                alpha=0.35,
                lw=3,
            )
        dir_line = _first(data.methodology.get("dir_threshold"), 0.8)
        gap_line = _first(data.methodology.get("gap_threshold"), 0.2)
        top.axhline(dir_line, color="#b3261e", ls="--", lw=1, label=f"threshold {dir_line:g}")
        bottom.axhline(gap_line, color="#b3261e", ls="--", lw=1, label=f"threshold {gap_line:g}")
        top.set_ylabel("disparate impact ratio")
        bottom.set_ylabel("approval-rate gap")
        top.set_title(
            f"{data.monitor}: DIR with its interval (band) and the gap, "
            f"{data.start:%Y-%m-%d %H:%M} to {data.end:%Y-%m-%d %H:%M} UTC",
            fontsize=10,
        )
        if not drawn:
            top.text(0.5, 0.5, "no readings in this period", ha="center", transform=top.transAxes)
        for ax in (top, bottom):
            ax.grid(True, color="#dddddd", lw=0.6)
            ax.legend(loc="lower left", fontsize=8, frameon=True, framealpha=0.9)
        locator = AutoDateLocator()  # type: ignore[no-untyped-call]
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz="UTC"))  # type: ignore[no-untyped-call]
        bottom.set_xlabel("time (UTC)")
        bottom.set_xlim(data.start, data.end)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()
    finally:
        plt.close(fig)


def _alone(values: list[Any]) -> list[int]:
    """Indexes of the drawn values with no drawn neighbour (NaN or the end on both sides)."""

    def drawn(i: int) -> bool:
        return 0 <= i < len(values) and not math.isnan(values[i])

    return [i for i in range(len(values)) if drawn(i) and not drawn(i - 1) and not drawn(i + 1)]


def _first(values: Any, default: float) -> float:
    return float(values[0]) if values else default


def chart_note(data: ReportData) -> str:
    """The sentence under the chart: what a point is, and what a break in a line means."""
    most = max(
        (sum(1 for p in data.points if p[0] == s) for s in ("monitored", "reference")), default=0
    )
    drawn = (
        f"Each point is the mean of the readings in 1/{BUCKETS} of the period (the band: the "
        f"lowest to the highest interval bound among them). "
        if most > BUCKETS
        else ""
    )
    return drawn + (
        "Lines break where readings are missing (an outage or missed cycles). Every reading "
        "is in readings.csv."
    )


def _bucketed(points: list[tuple[Any, ...]], data: ReportData) -> list[tuple[Any, ...]]:
    """At most :data:`BUCKETS` points: the readings of each equal slice of the period pooled
    (mean DIR and gap, lowest and highest interval bound); an empty slice stays empty, so an
    outage is still a gap. Few readings are drawn as they are."""
    if len(points) <= BUCKETS:
        return points
    width = (data.end - data.start) / BUCKETS
    slices: dict[int, list[tuple[Any, ...]]] = {}
    for p in points:
        slices.setdefault(int((p[1] - data.start) / width), []).append(p)
    out = []
    for index in sorted(slices):
        mine = slices[index]

        def pooled(col: int, how: Any, mine: list[tuple[Any, ...]] = mine) -> float | None:
            values = [float(p[col]) for p in mine if p[col] is not None]
            return how(values) if values else None

        mean = lambda v: sum(v) / len(v)  # noqa: E731 - one line, used three times
        at = data.start + width * (index + 0.5)
        out.append(
            (mine[0][0], at, pooled(2, mean), pooled(3, min), pooled(4, max), pooled(5, mean), None)
        )
    return out


def _broken(points: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Times and values with a NaN point wherever readings are unusually far apart."""
    steps = sorted((b[1] - a[1]).total_seconds() for a, b in pairwise(points))
    usual = steps[len(steps) // 2] if steps else 0.0
    nan = float("nan")
    cols: tuple[list[Any], ...] = ([], [], [], [], [])
    previous = None
    for p in points:
        if (
            previous is not None
            and usual > 0
            and (p[1] - previous).total_seconds() > GAP_FACTOR * usual
        ):
            for col, value in zip(
                cols, (previous + (p[1] - previous) / 2, nan, nan, nan, nan), strict=True
            ):
                col.append(value)
        for col, value in zip(cols, (p[1], p[2], p[3], p[4], p[5]), strict=True):
            col.append(nan if value is None else value)
        previous = p[1]
    return cols


def render_html(data: ReportData, chart: bytes, report_key: str) -> str:
    """``report.html``: the whole report in one self-contained file.

    Args:
        data: the gathered report.
        chart: the chart's PNG (inlined as a ``data:`` URI).
        report_key: the report public key's fingerprint (what signs the manifest).

    Returns:
        The HTML text.
    """
    import jinja2  # deferred: only a report renders

    source = resources.files("fairlens_monitor.ops").joinpath(TEMPLATE).read_text("utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["when"] = when
    env.filters["num"] = num
    env.filters["stamp"] = stamp
    env.globals["span"] = span
    return env.from_string(source).render(
        data=data,
        summary=summary_rows(data),
        methodology=methodology(data),
        integrity=data.integrity.statement(),
        chart=base64.b64encode(chart).decode("ascii"),
        chart_note=chart_note(data),
        period=period_line(data),
        report_key=report_key,
    )
