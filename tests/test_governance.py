"""Change tracking: a changed threshold is always on the audit record, key by key."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.ops.daemon import run_daemon
from fairlens_monitor.ops.governance import diff


def test_diff_lists_changed_keys_with_old_and_new_values() -> None:
    old = {"thresholds": {"dir": 0.8, "gap": 0.2}, "measurement": {"bands": []}}
    new = {"thresholds": {"dir": 0.75, "gap": 0.2}, "alerts.close_after": 3}
    assert diff(old, new) == [
        {"key": "alerts.close_after", "old": None, "new": 3},
        {"key": "measurement.bands", "old": [], "new": None},
        {"key": "thresholds.dir", "old": 0.8, "new": 0.75},
    ]
    assert diff(old, old) == []


def changes(config: Path) -> list[dict[str, object]]:
    events = json.loads(
        CliRunner()
        .invoke(cli, ["--config", str(config), "audit", "--last", "100", "--json"])
        .stdout
    )
    # a rule change: monitor_changed (with its monitors row); config_changed before 0015, or
    # for a monitor the table does not list yet
    kinds = ("config_changed", "monitor_changed")
    return [e["details"] for e in events if e["event_type"] in kinds and e["details"]["changes"]]


def test_each_start_records_what_changed(write_config: Callable[..., Path]) -> None:
    quick = {"schedule": {"interval_seconds": 0.05}}
    config = write_config(quick)
    run_daemon(
        load_settings(config, env={}), emit=lambda _: None, max_cycles=1, handle_signals=False
    )
    assert changes(config) == []  # the first start's snapshot is in daemon_started
    run_daemon(
        load_settings(config, env={}), emit=lambda _: None, max_cycles=1, handle_signals=False
    )
    assert changes(config) == []  # same rules: nothing to record

    write_config({**quick, "thresholds": {"dir": 0.75, "gap": 0.2, "alpha": 0.01}})
    run_daemon(
        load_settings(config, env={}), emit=lambda _: None, max_cycles=1, handle_signals=False
    )
    [change] = changes(config)
    assert change["changes"] == [
        {"key": "thresholds.alpha", "old": 0.05, "new": 0.01},
        {"key": "thresholds.dir", "old": 0.8, "new": 0.75},
    ]
    assert change["old_config_hash"] != change["new_config_hash"]

    # A manual cycle under yet other rules is recorded too, by the CLI.
    write_config({**quick, "thresholds": {"dir": 0.75, "gap": 0.25, "alpha": 0.01}})
    assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    latest = changes(config)[-1]
    assert latest["changes"] == [{"key": "thresholds.gap", "old": 0.2, "new": 0.25}]
    assert CliRunner().invoke(cli, ["--config", str(config), "verify"]).exit_code == 0
