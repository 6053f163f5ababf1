"""The page with many monitors in one database (issue 18/19), through Streamlit's AppTest.

Two monitors are written by real cycles into one SQLite file: ``default`` (no drift, cycles
now) and ``beta`` (full drift, cycles two days ago, so its alert is two days old and still
open and its newest run is stale). Each view is asserted against the database.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.ops.app import open_cipher, open_repository
from fairlens_monitor.ops.cycle import run_cycle
from tests.test_viewer import alert_rows, page, text_of

HOUR = 3600.0


def fixed(moment: datetime) -> Callable[[], datetime]:
    """A clock that always says ``moment``."""
    return lambda: moment


def cycles(config: Path, monitor: str, at: list[datetime]) -> None:
    """Run one real cycle of ``monitor`` (the config's settings) at each of ``at``."""
    settings = load_settings(config, env={})
    repo = open_repository(settings).for_monitor(monitor)
    try:
        cipher = open_cipher(settings, repo)
        for moment in at:
            run_cycle(settings, repo, cipher, clock=fixed(moment), actor="cli")
    finally:
        repo.engine.dispose()


@pytest.fixture
def portfolio(write_config: Callable[..., Path]) -> Path:
    """config.yaml (monitor ``default``, fresh) and beta.yaml (monitor ``beta``, adverse,
    two days old) on one database; returns config.yaml."""
    now = datetime.now(UTC)
    hourly = {"schedule": {"interval_seconds": HOUR}}
    config = write_config({**hourly, "simulation": {"drift": 0.0, "n_samples": 4000}})
    beta = write_config(
        {**hourly, "simulation": {"drift": 1.0, "n_samples": 4000}}, name="beta.yaml"
    )
    cycles(beta, "beta", [now - timedelta(days=2, hours=1), now - timedelta(days=2)])
    cycles(config, "default", [now - timedelta(minutes=10), now - timedelta(minutes=5)])
    return config


def db(config: Path) -> sqlite3.Connection:
    return sqlite3.connect(config.parent / "var" / "fairlens.db")


def newest(config: Path, monitor: str) -> tuple[float, int]:
    with db(config) as conn:
        value, open_alerts = conn.execute(
            "SELECT dir, (SELECT count(*) FROM alerts WHERE monitor = ? AND state = 'open') "
            "FROM readings WHERE monitor = ? AND scenario = 'monitored' "
            "ORDER BY id DESC LIMIT 1",
            (monitor, monitor),
        ).fetchone()
    return float(value), int(open_alerts)


def test_each_monitor_shows_its_own_numbers(
    portfolio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for monitor in ("default", "beta"):
        at = page(portfolio, monkeypatch, monitor)
        value, open_alerts = newest(portfolio, monitor)
        assert at.metric[0].label == "Monitored DIR"
        assert at.metric[0].value == f"{value:.3f}"
        assert any(f"Monitor {monitor}" in str(h.value) for h in at.header)
        shown = text_of(at)
        if monitor == "beta":
            assert ":red[**ADVERSE" in shown
            assert open_alerts == 1
            assert len(alert_rows(at)) == 1
        else:
            assert ":green[**OK**]" in shown
            assert "No alert in this time range, and none open." in shown
    assert newest(portfolio, "default")[0] != newest(portfolio, "beta")[0]


def test_the_inventory_lists_every_monitor_worst_first(
    portfolio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = page(portfolio, monkeypatch, monitor=None)
    [table] = [d.value for d in at.dataframe if "Monitor" in d.value.columns]
    # adverse (and stale) first; each name a link to its monitor's page
    assert list(table["Monitor"]) == ["?monitor=beta", "?monitor=default"]
    [grid] = [d for d in at.dataframe if "Monitor" in d.value.columns]
    name = json.loads(grid.proto.columns)["Monitor"]
    assert name["type_config"]["type"] == "link"
    text = re.compile(name["type_config"]["display_text"].replace("(?<", "(?P<"))
    found = [text.search(u) for u in table["Monitor"]]
    assert [m.group(1) for m in found if m is not None] == ["beta", "default"]
    beta, default = table.iloc[0], table.iloc[1]
    assert beta["Verdict"] == "STALE · ADVERSE"
    assert default["Verdict"] == "ok"
    assert beta["DIR"] == f"{newest(portfolio, 'beta')[0]:.3f}"
    assert default["DIR"] == f"{newest(portfolio, 'default')[0]:.3f}"
    assert (beta["Open alerts"], default["Open alerts"]) == (1, 0)
    assert beta["Last reading"] == "2 days ago"
    assert default["Last reading"] == "5 min ago"
    # six columns, the stale flag in the verdict: the table fits at 800 px (seen in Chromium)
    assert list(table.columns) == [
        "Monitor",
        "Verdict",
        "Open alerts",
        "Last reading",
        "DIR",
        "7-day DIR",
    ]
    spark = json.loads(grid.proto.columns)["7-day DIR"]["type_config"]
    assert (spark["y_min"], spark["y_max"]) == (0.0, 1.25)  # one scale for every row
    assert len([x for x in beta["7-day DIR"] if x == x]) >= 1  # a point (not NaN)
    shown = "\n".join(str(e.value) for e in [*at.error, *at.warning])
    assert "1 ADVERSE**: beta" in shown
    assert "1 STALE** (no successful run for over 3 intervals): beta" in shown
    at.query_params.clear()  # following the link: the page at ?monitor=beta
    at.query_params["monitor"] = table["Monitor"][0].split("=", 1)[1]
    at.run()
    assert any("Monitor beta" in str(h.value) for h in at.header)


@pytest.mark.parametrize("range_name", ["last hour", "last day", "last week", "all"])
def test_an_open_alert_is_listed_under_every_range(
    portfolio: Path, monkeypatch: pytest.MonkeyPatch, range_name: str
) -> None:
    at = page(portfolio, monkeypatch, "beta")
    at.radio(key="range").set_value(range_name).run()
    rows = alert_rows(at)
    with db(portfolio) as conn:
        [(alert_id, state)] = conn.execute(
            "SELECT id, state FROM alerts WHERE monitor = 'beta'"
        ).fetchall()
    assert state == "open"
    assert list(rows["Alert"]) == [f"#{alert_id}"]
    assert list(rows["State"]) == ["open"]
    assert any("Alerts (1; 1 open or acknowledged)" in str(s.value) for s in at.subheader)


def test_a_stale_monitor_says_so_and_a_fresh_one_does_not(
    portfolio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = page(portfolio, monkeypatch, "beta")
    banners = [str(w.value) for w in stale.warning if "STALE" in str(w.value)]
    assert len(banners) == 1
    assert banners[0].startswith("**STALE** — the newest successful run finished 2 days ago")
    assert "more than 3 intervals of 1 h" in banners[0]
    shown = text_of(stale)
    assert "as of **" in shown
    assert "(2 days ago)" in shown
    fresh = page(portfolio, monkeypatch, "default")
    assert not [w for w in fresh.warning if "STALE" in str(w.value)]
    assert "(5 min ago)" in text_of(fresh)


def test_the_drill_down_numbers_are_the_database_sums(
    portfolio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = page(portfolio, monkeypatch, "beta")
    with db(portfolio) as conn:
        sums = dict(
            (label, (approved, applicants))
            for label, approved, applicants in conn.execute(
                "SELECT x.label, sum(x.approved), sum(x.applicants) FROM group_results x "
                "JOIN readings g ON g.id = x.reading_id WHERE g.monitor = 'beta' "
                "AND g.scenario = 'monitored' GROUP BY x.label"
            )
        )
    [table] = [d.value for d in at.dataframe if "Group" in d.value.columns][:1]
    shown = {
        str(g).removesuffix(" (reference)"): a
        for g, a in zip(table["Group"], table["Approved"], strict=True)
    }
    assert shown == {g: f"{a:,} of {n:,}" for g, (a, n) in sums.items()}
    reference = next(g for g in table["Group"] if str(g).endswith("(reference)"))
    assert table.loc[table["Group"] == reference, "DIR"].item() == "1.000"
    ref_a, ref_n = sums[str(reference).removesuffix(" (reference)")]
    other = next(g for g in sums if g != str(reference).removesuffix(" (reference)"))
    a, n = sums[other]
    assert table.loc[table["Group"] == other, "DIR"].item() == f"{(a / n) / (ref_a / ref_n):.3f}"


def test_the_alert_detail_shows_its_audited_timeline(
    portfolio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from fairlens_monitor.cli.main import cli

    with db(portfolio) as conn:
        [(alert_id,)] = conn.execute("SELECT id FROM alerts WHERE monitor = 'beta'").fetchall()
    acked = CliRunner().invoke(
        cli,
        [
            "--config",
            str(portfolio),
            "alerts",
            "ack",
            str(alert_id),
            "--by",
            "risk.officer",
            "--note",
            "looking into it",
        ],
    )
    assert acked.exit_code == 0, acked.output
    at = page(portfolio, monkeypatch, "beta")
    [timeline] = [d.value for d in at.dataframe if "Step" in d.value.columns]
    with db(portfolio) as conn:
        records = conn.execute(
            "SELECT seq, hash FROM audit_events WHERE event_type IN "
            "('alert_raised', 'alert_acknowledged') ORDER BY seq"
        ).fetchall()
    assert list(timeline["Step"]) == ["raised", "acknowledged"]
    assert list(timeline["By"])[1] == "risk.officer"
    assert list(timeline["Note"])[1] == "looking into it"
    # seq and hash in one column, so the table fits at 800 px (seen in Chromium)
    assert list(timeline.columns) == [
        "Step",
        "When",
        "By",
        "Note",
        "Audit record",
        "Checkpoint",
    ]
    assert list(timeline["Audit record"]) == [f"seq {seq} · {h[:8]}…" for seq, h in records]
    rows = alert_rows(at)
    assert list(rows["State"]) == ["acknowledged"]  # still listed: acknowledged is open


def test_a_tampered_chain_is_a_red_banner_on_the_inventory(
    portfolio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streamlit as st

    from tests.test_viewer import chain_verdict

    with db(portfolio) as conn:
        conn.execute(
            "UPDATE readings SET dir = 0.99 WHERE id = (SELECT max(id) FROM readings "
            "WHERE monitor = 'beta')"
        )
    st.cache_resource.clear()  # a fresh chain watcher: its first walk is whole
    at = page(portfolio, monkeypatch, monitor=None)
    assert "TAMPERED at readings row" in chain_verdict(at)
    at.run()
    banner = str(at.error[0].value)
    assert banner.startswith("**Audit trail TAMPERED** — first anomaly: readings row ")
    assert "row_modified" in banner


def test_any_date_range_and_period_against_period(
    portfolio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A custom range without beta's readings still lists its open alert; the drill-down's
    second period holds the readings the first does not, summed as in the database."""
    today = datetime.now(UTC).date()
    at = page(portfolio, monkeypatch, "beta")
    at.radio(key="range").set_value("custom dates").run()
    at.date_input(key="custom_dates").set_value(
        (today - timedelta(days=20), today - timedelta(days=10))
    ).run()
    assert not at.exception, [e.value for e in at.exception]
    assert list(alert_rows(at)["State"]) == ["open"]  # open: listed whatever the range
    at.date_input(key="drill_period").set_value((today, today)).run()
    at.date_input(key="drill_other").set_value(
        (today - timedelta(days=3), today - timedelta(days=1))
    ).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("No reading with per-group counts" in str(c.value) for c in at.caption)
    with db(portfolio) as conn:
        sums = {
            label: f"{a:,} of {n:,}"
            for label, a, n in conn.execute(
                "SELECT x.label, sum(x.approved), sum(x.applicants) FROM group_results x "
                "JOIN readings g ON g.id = x.reading_id WHERE g.monitor = 'beta' "
                "AND g.scenario = 'monitored' GROUP BY x.label"
            )
        }
    [table] = [d.value for d in at.dataframe if "Group" in d.value.columns]
    shown = {
        str(g).removesuffix(" (reference)"): a
        for g, a in zip(table["Group"], table["Approved"], strict=True)
    }
    assert shown == sums


def test_a_range_without_readings_says_so_instead_of_empty_axes(
    portfolio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in Chromium: a stale monitor under 'last day' drew empty axes with only the
    threshold lines on them."""
    at = page(portfolio, monkeypatch, "beta")  # its readings are two days old
    shown = "\n".join(str(i.value) for i in at.info)
    assert "No readings in this time range: the newest is from " in shown
    assert not [s for s in at.subheader if "Approval-rate gap" in str(s.value)]
    at.radio(key="range").set_value("last week").run()
    assert not [i for i in at.info if "No readings in this time range" in str(i.value)]
    captions = "\n".join(str(c.value) for c in at.caption)
    with db(portfolio) as conn:
        [(dir_threshold, gap_threshold)] = conn.execute(
            "SELECT DISTINCT dir_threshold, gap_threshold FROM readings WHERE monitor = 'beta'"
        ).fetchall()
    # the lines on the charts are named, with the thresholds stored with the readings
    assert f"red dashed line: the DIR threshold {dir_threshold:g}." in captions
    assert f"Orange dashed line: the gap threshold {gap_threshold:g}." in captions


def test_a_monitor_missing_from_the_pages_config_shows_no_other_monitors_values(
    portfolio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in Chromium: a monitor run from another config file showed the values of the
    page's own config (another monitor's drift, sample size and alarm threshold)."""
    at = page(
        portfolio, monkeypatch, "beta"
    )  # beta runs from beta.yaml, the page reads config.yaml
    side = "\n".join(str(c.value) for c in at.sidebar.caption)
    assert "monitor beta is not in this page's config (config.yaml)" in side
    assert not [m for m in at.sidebar.markdown if "Values in use" in str(m.value)]
    at = page(portfolio, monkeypatch, "default")
    assert [m for m in at.sidebar.markdown if "Values in use" in str(m.value)]
