"""The daemon over a portfolio: a job per monitor, failure isolation, paused monitors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fairlens_monitor.audit.verify import verify_chain
from fairlens_monitor.config.monitors import load_portfolio
from fairlens_monitor.ops.app import open_repository
from fairlens_monitor.ops.daemon import run_daemon
from tests.conftest import query_url
from tests.helpers.wait import LineReader, stop, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]

BROKEN = {
    "source": {
        "kind": "file",
        "path": "missing/*.csv",
        "outcome": "approved",
    },
    "measurement": {"protected_attributes": ["g"], "privileged_value": "a"},
}


def portfolio_config(write_config: Callable[..., Path], url: str, **extra: object) -> Path:
    return write_config(
        {
            "database": {"url": url},
            "schedule": {"interval_seconds": 0.3},
            "monitors": {"cards": None, "broken": BROKEN, **extra},
        }
    )


@pytest.mark.timeout(400)  # a real daemon process on a busy machine
def test_a_failing_monitor_does_not_stop_the_others(
    write_config: Callable[..., Path], backend_url: str
) -> None:
    """A real daemon (``run``) with two monitors, one whose file source is missing: that
    monitor's runs fail, each recorded; the other's cycles go on, one index after another."""
    config = portfolio_config(write_config, backend_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    out = LineReader(proc.stdout)
    try:
        wait_for(lambda: out.count("[broken] cycle failed") >= 3, what="three failed cycles")
        wait_for(lambda: out.count("[cards]") >= 3, what="the other monitor's cycles")
        proc.terminate()
        assert proc.wait(timeout=120) == 0
    finally:
        stop(proc)
    out.join()
    runs = query_url(
        backend_url, "SELECT monitor, status, cycle_index, error FROM runs ORDER BY id"
    )
    cards = [r for r in runs if r[0] == "cards"]
    broken = [r for r in runs if r[0] == "broken"]
    assert cards
    assert all(r[1] == "ok" for r in cards)
    assert [r[2] for r in cards] == list(range(len(cards)))  # its own cycle index
    assert len(broken) >= 3
    assert all(r[1] == "failed" for r in broken)
    assert all("source.path" in r[3] or "missing" in r[3] for r in broken), broken[0][3]
    failed = query_url(
        backend_url, "SELECT count(*) FROM audit_events WHERE event_type = 'cycle_failed'"
    )[0][0]
    assert failed == len(broken)
    assert any("stopped (SIGTERM)" in line for line in out.lines)
    repo = open_repository(load_portfolio(config, env={})["cards"], readonly=True)
    try:
        assert verify_chain(repo.iter_records(), repo.iter_links()).intact
    finally:
        repo.engine.dispose()


def test_a_paused_monitor_is_skipped(write_config: Callable[..., Path], backend_url: str) -> None:
    config = write_config(
        {
            "database": {"url": backend_url},
            "schedule": {"interval_seconds": 0.2},
            "monitors": {"cards": None, "autos": None},
        }
    )
    portfolio = load_portfolio(config, env={})
    lines: list[str] = []
    run_daemon(portfolio, emit=lines.append, max_cycles=2, handle_signals=False)
    from click.testing import CliRunner

    from fairlens_monitor.cli.main import cli

    paused = CliRunner().invoke(
        cli, ["--config", str(config), "monitors", "pause", "autos", "--by", "tester"]
    )
    assert paused.exit_code == 0, paused.output
    before = query_url(backend_url, "SELECT count(*) FROM runs WHERE monitor = 'autos'")[0][0]
    stats = run_daemon(portfolio, emit=lines.append, max_cycles=4, handle_signals=False)
    assert stats.cycles_ok == 4
    after = query_url(
        backend_url, "SELECT monitor, count(*) FROM runs GROUP BY monitor ORDER BY monitor"
    )
    assert dict(after)["autos"] == before  # paused: no run while it stays paused
    assert dict(after)["cards"] >= 4
    resumed = CliRunner().invoke(
        cli, ["--config", str(config), "monitors", "resume", "autos", "--by", "tester"]
    )
    assert resumed.exit_code == 0, resumed.output
    run_daemon(portfolio, emit=lines.append, max_cycles=4, handle_signals=False)
    again = query_url(backend_url, "SELECT count(*) FROM runs WHERE monitor = 'autos'")[0][0]
    assert again > before  # resumed: it runs again, no restart of anything else needed


def test_a_cron_monitor_gets_a_cron_job_beside_the_interval_ones(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    from fairlens_monitor.ops.app import open_cipher, open_signing_key
    from fairlens_monitor.ops.daemon import Daemon

    config = write_config(
        {
            "daemon": {"workers": 2},
            "monitors": {
                "cards": None,
                "autos": None,
                "weekly": {"schedule": {"interval_seconds": None, "cron": "0 6 * * 1"}},
            },
        }
    )
    portfolio = load_portfolio(config, env={})
    repo = open_repository(portfolio["cards"])
    triggers: dict[str, str] = {}
    next_fires: dict[str, Any] = {}

    def emit(line: str) -> None:
        for job in daemon.scheduler.get_jobs():
            triggers[job.id] = str(job.trigger)
            if hasattr(job, "next_run_time"):  # once the scheduler runs (not pending)
                next_fires[job.id] = job.next_run_time

    daemon = Daemon(
        portfolio,
        repo,
        open_cipher(portfolio["cards"], repo),
        open_signing_key(portfolio["cards"], repo),
        clock=lambda: __import__("datetime").datetime.now(__import__("datetime").UTC),
        emit=emit,
        max_cycles=2,
    )
    stats = daemon.run()
    repo.engine.dispose()
    assert stats.cycles_ok == 2
    assert (
        (triggers["fairness-cycle:weekly"])
        == "cron[month='*', day='*', day_of_week='mon', hour='6', minute='0']"
    )
    assert triggers["fairness-cycle:cards"].startswith("interval[")
    weekly = next_fires["fairness-cycle:weekly"]  # scheduled, not paused (None)
    assert weekly is not None
    assert (weekly.weekday(), weekly.hour, weekly.minute) == (0, 6, 0)
    assert daemon.scheduler._executors["default"]._pool._max_workers == 2  # daemon.workers
    runs = query_url(
        portfolio["cards"].database.url, "SELECT DISTINCT monitor FROM runs ORDER BY monitor"
    )
    assert ("weekly",) not in runs  # not due within the test
