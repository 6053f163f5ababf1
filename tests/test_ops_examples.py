"""The Prometheus rules and the Grafana dashboard in examples/ name metrics the daemon serves.

The rules file is checked with ``promtool check rules`` when promtool is installed, and
always by structure (groups, rules, alert, expr, for, labels); every ``fairlens_*`` metric an
expression or a dashboard query names must be served: by a live scrape of the real daemon,
or — for the two that appear only after the daemon's first walk of its trail, 10 minutes in
— by the same collector after a real walk (``ops.chainwatch.ChainCheck``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fairlens_monitor.config.monitors import load_portfolio
from fairlens_monitor.ops.chainwatch import ChainCheck
from fairlens_monitor.ops.metrics import FairlensCollector
from fairlens_monitor.store.db import make_engine
from fairlens_monitor.store.lease import Lease
from fairlens_monitor.store.monitor_lease import MonitorLeases
from tests.conftest import BASE_CONFIG, merge
from tests.helpers.wait import LineReader, stop, wait_for
from tests.test_prometheus import free_port, health

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "examples" / "prometheus" / "fairlens.rules.yml"
DASHBOARD = REPO / "examples" / "grafana" / "fairlens-dashboard.json"
METRIC = re.compile(r"\bfairlens_[a-z_]+")
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def names_in(body: str) -> set[str]:
    """The sample names of a /metrics text (``_total``, ``_bucket``... included)."""
    return {s.name for f in text_string_to_metric_families(body) for s in f.samples}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name the real daemon serves (two monitors, a few cycles), plus those of
    the same collector after a real walk of the trail."""
    tmp = tmp_path_factory.mktemp("served")
    config = tmp / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            merge(
                BASE_CONFIG,
                {
                    "database": {"url": f"sqlite:///{tmp / 'var' / 'fairlens.db'}"},
                    "keys": {"dir": str(tmp / "var" / "keys")},
                    "audit": {"anchor_file": str(tmp / "var" / "anchor.jsonl")},
                    "schedule": {"interval_seconds": 0.3},
                    "drift_detection": {"baseline_readings": 3},
                    "monitors": {"cards": None, "autos": None},
                },
            )
        )
    )
    port = free_port()
    argv = [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"]
    proc = subprocess.Popen(
        [*argv, "--metrics-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    out = LineReader(proc.stdout)
    try:
        wait_for(lambda: health(port) == 200, what="the endpoint")

        def scraped() -> set[str]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                names = names_in(r.read().decode())
            # the drift statistic comes after the chart's baseline readings, a duration
            # after the first cycle's commit
            later = {"fairlens_drift_statistic", "fairlens_cycle_duration_seconds_bucket"}
            return names if later <= names else set()

        live = wait_for(scraped, what="a scrape with drift statistics and durations")
        proc.terminate()
        assert proc.wait(timeout=120) == 0
    finally:
        stop(proc)
    out.join()
    settings = next(iter(load_portfolio(config, env={}).values()))
    check = ChainCheck(settings, lambda _line: None)
    assert check.run() is not None  # a real walk of the trail the daemon wrote
    engine = make_engine(settings.database.url, readonly=True)
    try:
        daemon: Any = SimpleNamespace(
            runners={},
            lease=Lease(engine, lease_seconds=5, holder="test"),
            leases=MonitorLeases(engine, lease_seconds=5, holder="test", monitors=[]),
            chain_check=check,
        )
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FairlensCollector(daemon, engine))
        walked = names_in(generate_latest(registry).decode())
    finally:
        engine.dispose()
    assert {"fairlens_verify_ok", "fairlens_verify_timestamp_seconds"} <= walked
    return live | walked


def test_the_rules_have_the_structure_prometheus_reads() -> None:
    doc = yaml.safe_load(RULES.read_text())
    assert isinstance(doc, dict)
    assert set(doc) == {"groups"}
    names = set()
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        assert isinstance(group["name"], str)
        assert group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
            assert rule["alert"] not in names  # one name, one rule
            names.add(rule["alert"])
            assert isinstance(rule["expr"], str)
            assert rule["expr"].strip()
            assert DURATION.match(str(rule["for"])), rule["for"]
            assert rule["labels"]["severity"] in {"page", "ticket"}
            assert rule["annotations"]["summary"]
    # the three kinds of the issue: a stale monitor, an adverse verdict, a chain failure
    assert {"FairlensMonitorStale", "FairlensAdverseVerdict", "FairlensChainFailed"} <= names


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def rule_exprs() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [str(r["expr"]) for g in doc["groups"] for r in g["rules"]]


def dashboard_queries() -> list[str]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    queries = [str(t["expr"]) for p in doc["panels"] for t in p["targets"]]
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            queries.append(str(var["definition"]))
    return queries


@pytest.mark.parametrize("queries", [rule_exprs, dashboard_queries], ids=["rules", "dashboard"])
def test_every_metric_named_is_served(served: set[str], queries: Callable[[], list[str]]) -> None:
    named = {m for q in queries() for m in METRIC.findall(q)}
    assert named, "no fairlens metric named"
    assert named <= served, sorted(named - served)


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["title"]
    assert doc["uid"]
    assert doc["schemaVersion"] >= 30
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for p in doc["panels"]:
        assert {"x", "y", "w", "h"} <= set(p["gridPos"])
        assert p["targets"]
        assert all(t["expr"] and t["refId"] for t in p["targets"])
