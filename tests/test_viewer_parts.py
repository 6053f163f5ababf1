"""The page's pure parts: gaps over outages, the UTC time axis, ages and tables for people,
staleness, and the chain verdict's one-line reason (issue 19)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from fairlens_monitor.viewer import charts, fmt
from fairlens_monitor.viewer.inventory import MonitorStatus, is_stale
from fairlens_monitor.viewer.series import mark_gaps
from fairlens_monitor.viewer.watch import anchored_text, last_line

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def hourly(hours: list[int], scenario: str = "monitored") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": pd.to_datetime([T0 + timedelta(hours=h) for h in hours], utc=True),
            "scenario": scenario,
            "dir_mean": 0.9,
        }
    )


def test_an_outage_splits_the_line_and_a_regular_series_does_not() -> None:
    regular = mark_gaps(hourly(list(range(10))), by="scenario", expected=timedelta(hours=1))
    assert regular["segment"].nunique() == 1
    outage = mark_gaps(hourly([0, 1, 2, 3, 10, 11, 12]), by="scenario", expected=timedelta(hours=1))
    assert list(outage["segment"]) == ["monitored#0"] * 4 + ["monitored#1"] * 3


def test_gaps_are_per_line_and_follow_the_bucket_width() -> None:
    both = pd.concat([hourly([0, 1, 2, 9, 10]), hourly([0, 1, 2, 3, 4], "reference")])
    marked = mark_gaps(both, by="scenario", expected=None)
    assert marked.groupby("scenario")["segment"].nunique().to_dict() == {
        "monitored": 2,
        "reference": 1,
    }
    # a downsampled series steps by its bucket (6 h): 6-hour steps are no gap
    assert (
        mark_gaps(hourly([0, 6, 12, 18]), by="scenario", expected=timedelta(hours=1))[
            "segment"
        ].nunique()
        == 1
    )


def test_one_point_and_no_point_have_no_gap() -> None:
    assert list(mark_gaps(hourly([0]), by="scenario", expected=None)["segment"]) == ["monitored#0"]
    assert mark_gaps(hourly([]), by="scenario", expected=None).empty


@pytest.mark.parametrize(
    ("hours", "label"),
    [(1, "%H:%M:%S"), (30, "%d %b %H:%M"), (24 * 90, "%d %b"), (24 * 800, "%b %Y")],
)
def test_the_time_axis_is_utc_with_a_format_for_its_span(hours: int, label: str) -> None:
    axis = charts.time_axis(hourly([0, hours])).to_dict()
    assert isinstance(axis, dict)
    assert axis["scale"] == {"type": "utc"}
    assert axis["title"] == "time (UTC)"
    assert axis["axis"]["labelExpr"] == f"utcFormat(datum.value, '{label}')"


def test_ages_read_in_human_units() -> None:
    now = T0
    assert fmt.ago(now - timedelta(seconds=1196), now) == "19 min ago"
    assert fmt.ago(now - timedelta(seconds=42), now) == "42 s ago"
    assert fmt.ago(now - timedelta(hours=3, minutes=5), now) == "3 h 5 min ago"
    assert fmt.ago(now - timedelta(days=2, hours=1), now) == "2 days ago"
    assert fmt.ago(None, now) == "never"
    assert fmt.span(timedelta(seconds=0.05)) == "0.05 s"
    assert fmt.when(pd.Timestamp("2026-12-05 14:31:07.123456")) == "2026-12-05 14:31 UTC"
    assert fmt.when(None) == "—"


def test_the_alert_table_has_human_names_and_values() -> None:
    raw = pd.DataFrame(
        {
            "alert_id": [7],
            "state": ["open"],
            "created_at": pd.to_datetime(["2026-12-05 14:31:07.123456"], utc=True),
            "closed_at": pd.to_datetime([None], utc=True),
            "kind": ["dir"],
            "dir": [0.61234],
            "p_value": [None],
        }
    )
    shown = fmt.alert_table(raw)
    assert list(shown.columns) == ["Alert", "State", "Raised", "Kind", "DIR", "p"]
    assert shown.iloc[0].tolist() == ["#7", "open", "2026-12-05 14:31 UTC", "DIR", "0.612", "—"]
    # a p-value below 0.0001 is never a bare 0.0000 (seen in Chromium: it read as p = 0)
    tiny = fmt.alert_table(raw.assign(p_value=[3e-12]))
    assert tiny["p"].tolist() == ["< 0.0001"]
    assert [fmt.p_value(p) for p in (0.0123, 0.0016, 0.5)] == ["0.012", "0.0016", "0.500"]
    closed = raw.assign(state="resolved", closed_at=pd.to_datetime(["2026-12-06 09:00"], utc=True))
    assert fmt.alert_table(closed)["Closed"].tolist() == ["2026-12-06 09:00 UTC"]


def test_stale_after_three_intervals_only_for_an_active_monitor() -> None:
    now = T0
    assert not is_stale("active", now - timedelta(hours=2), 3600, now)
    assert is_stale("active", now - timedelta(hours=3, seconds=1), 3600, now)
    assert is_stale("active", None, 3600, now)
    assert not is_stale("paused", None, 3600, now)
    assert not is_stale("active", None, None, now)  # interval unknown: not judged


def test_worst_first() -> None:
    def row(
        name: str, verdict: str | None, stale: bool = False, state: str = "active"
    ) -> MonitorStatus:
        return MonitorStatus(name, state, verdict, 0.9, 0, None, None, 60.0, stale, ())

    rows = [
        row("fine", "ok"),
        row("gone", "adverse", state="retired"),
        row("late", "ok", stale=True),
        row("amber", "inconclusive"),
        row("red", "adverse"),
    ]
    assert [r.name for r in sorted(rows, key=lambda r: r.rank)] == [
        "red",
        "late",
        "amber",
        "fine",
        "gone",
    ]


def test_the_chain_cell_gets_one_line_never_a_traceback() -> None:
    stderr = 'Traceback (most recent call last):\n  File "x", line 1\nPermissionError: [Errno 13]\n'
    assert last_line(stderr) == "PermissionError: [Errno 13]"
    assert last_line("error: cannot verify: permission denied reading k\n") == (
        "cannot verify: permission denied reading k"
    )
    assert last_line("") == "no reason given"


def test_a_chain_with_no_checkpoint_says_so_not_anchored_to_seq_0() -> None:
    # seen in Chromium: "anchored up to seq 0" read as if seq 0 were vouched for
    assert anchored_text({"anchored_seq": 0, "unanchored_events": 118}) == (
        "no signed checkpoint yet (118 events unanchored)"
    )
    assert anchored_text({"anchored_seq": 100, "unanchored_events": 18}) == (
        "anchored up to seq 100 (18 not yet anchored)"
    )


def test_the_gap_chart_draws_its_threshold_line() -> None:
    hist = hourly([0, 1, 2]).assign(gap_mean=0.05)
    spec = charts.gap_chart(hist, 0.2, expected=timedelta(hours=1)).to_dict()
    assert isinstance(spec, dict)
    rules = [
        layer for layer in spec["layer"] if layer["mark"]["type"] == "rule"
    ]  # the dashed threshold line
    [rule] = rules
    values = spec["datasets"][rule["data"]["name"]]
    assert values == [{"y": 0.2, "label": "threshold 0.2"}]


def test_daemon_restarts_are_chart_annotations(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fairlens_monitor.config.settings import load_settings
    from fairlens_monitor.viewer import data, episode
    from tests.test_viewer import seeded

    config = seeded(write_config, drift=0.0, cycles=1)
    seeded(write_config, drift=0.0, cycles=1)  # the daemon started twice
    engine = data.open_readonly(load_settings(config, env={}))
    try:
        marks = episode.chart_events(engine, since=None, until=None, monitor="default")
        later = episode.chart_events(
            engine, since=datetime.now(UTC) + timedelta(hours=1), until=None, monitor="default"
        )
    finally:
        engine.dispose()
    assert list(marks["label"]) == ["daemon (re)started"] * 2
    assert marks["time"].is_monotonic_increasing
    assert later.empty


def _layers(spec: dict[str, object]) -> list[dict[str, object]]:
    """Every leaf layer of a (nested) layered Vega-Lite spec."""
    inner = spec.get("layer")
    if not isinstance(inner, list):
        return [spec]
    return [leaf for layer in inner for leaf in _layers(layer)]


@pytest.mark.parametrize("kind", ["dir", "gap", "drift", "rate"])
def test_a_reading_alone_between_two_outages_is_drawn_as_a_dot(kind: str) -> None:
    """A run of one reading is a line of no length (drawn as nothing): it gets a dot."""
    hist = hourly([0, 1, 2, 8, 14, 15, 16]).assign(
        gap_mean=0.05, drift_max=1.5, ci_low=0.8, ci_high=1.0, alerts=0, dir_min=0.9, readings=1
    )
    hour = timedelta(hours=1)
    chart = {
        "dir": lambda: charts.dir_chart(hist, 0.8, expected=hour),
        "gap": lambda: charts.gap_chart(hist, 0.2, expected=hour),
        "drift": lambda: charts.drift_chart(hist, 4.0, expected=hour),
        "rate": lambda: charts.rate_chart(
            hist.assign(group="A", rate=0.5)[["time", "group", "rate"]], expected=hour
        ),
    }[kind]()
    spec = chart.to_dict()
    assert isinstance(spec, dict)
    dots = [
        layer
        for layer in _layers(spec)
        if isinstance(layer.get("mark"), dict)
        and layer["mark"] == {"type": "point", "filled": True, "size": 30}
    ]
    [dot] = dots
    data = dot["data"]
    assert isinstance(data, dict)
    [row] = spec["datasets"][data["name"]]
    assert pd.Timestamp(row["time"]) == pd.Timestamp(T0 + timedelta(hours=8))


def test_a_series_without_lone_readings_gets_no_dots() -> None:
    spec = charts.dir_chart(
        hourly([0, 1, 2, 9, 10]).assign(ci_low=0.8, ci_high=1.0, alerts=0, dir_min=0.9, readings=1),
        0.8,
        expected=timedelta(hours=1),
    ).to_dict()
    assert isinstance(spec, dict)
    assert not [
        layer
        for layer in _layers(spec)
        if layer.get("mark") == {"type": "point", "filled": True, "size": 30}
    ]
