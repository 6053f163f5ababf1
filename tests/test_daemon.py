"""The daemon with the real APScheduler scheduler: cycles, failures, signals, one instance."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from fairlens_monitor.audit.verify import verify_chain
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.ops.daemon import Daemon, run_daemon
from fairlens_monitor.security.crypto import AlertCipher
from tests.conftest import backend_builder, query_url
from tests.factories import sqlite_file
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def make_settings(backend_url: str, write_config: Callable[..., Path]) -> Callable[..., Settings]:
    """The in-process daemon tests run on both back ends (see conftest.backend_url)."""
    return backend_builder(backend_url, write_config)


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    return query_url(settings.database.url, sql)


def test_scheduler_runs_cycles_and_stops_cleanly(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        {
            "schedule": {"interval_seconds": 0.2},
            "simulation": {"drift": {"mode": "ramp", "start": 0.0, "end": 1.0, "cycles": 4}},
        }
    )
    lines: list[str] = []
    started = time.monotonic()
    stats = run_daemon(settings, emit=lines.append, max_cycles=4, handle_signals=False)
    elapsed = time.monotonic() - started
    assert (stats.cycles_ok, stats.cycles_failed) == (4, 0)
    assert elapsed >= 0.6  # four fires 0.2 s apart: the interval is honoured, not a busy loop
    assert query(settings, "SELECT cycle_index, status, actor FROM runs ORDER BY id") == [
        (i, "ok", "daemon") for i in range(4)
    ]
    assert query(settings, "SELECT count(*) FROM readings") == [(8,)]
    scheduled = [r[0] for r in query(settings, "SELECT scheduled_for FROM runs ORDER BY id")]
    assert all(s is not None for s in scheduled)
    kinds = [r[0] for r in query(settings, "SELECT event_type FROM audit_events ORDER BY seq")]
    assert kinds[:2] == ["monitor_added", "daemon_started"]  # the portfolio, then the start
    assert kinds[-1] == "daemon_stopped"
    assert kinds.count("cycle_completed") == 4
    assert kinds.count("alert_raised") == query(settings, "SELECT count(*) FROM alerts")[0][0]
    assert any(line.startswith("⚠ ALERT: Fairness Drift Detected!") for line in lines)
    assert lines[-1].startswith("stopped (completed 4 cycles): 4 ok, 0 failed")
    repo = open_repository(settings, readonly=True)
    assert verify_chain(repo.iter_records(), repo.iter_links()).intact
    repo.engine.dispose()


class FlakyCipher(AlertCipher):
    """Fault injection: the first encryption fails, later ones work."""

    failures_left = 1

    def encrypt(self, plaintext: str) -> str:
        if FlakyCipher.failures_left:
            FlakyCipher.failures_left -= 1
            raise OSError("injected: key store unavailable")
        return super().encrypt(plaintext)


def test_a_failing_cycle_is_recorded_and_the_daemon_keeps_going(
    make_settings: Callable[..., Settings], clock: Callable[[], datetime]
) -> None:
    settings = make_settings({"schedule": {"interval_seconds": 0.1}, "simulation": {"drift": 1.0}})
    FlakyCipher.failures_left = 1  # per run: the test runs once per back end
    repo = open_repository(settings)
    real = open_cipher(settings, repo)
    lines: list[str] = []
    daemon = Daemon(
        {"default": settings},
        repo,
        FlakyCipher(real.fernet, real.key_id, real.path),
        open_signing_key(settings, repo),
        clock=clock,
        emit=lines.append,
        max_cycles=3,
    )
    stats = daemon.run()
    assert (stats.cycles_ok, stats.cycles_failed) == (2, 1)
    assert query(settings, "SELECT status FROM runs ORDER BY id") == [("failed",), ("ok",), ("ok",)]
    assert any("cycle failed: OSError: injected" in line for line in lines)
    assert verify_chain(repo.iter_records(), repo.iter_links()).intact
    repo.engine.dispose()


def start_daemon(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def cycles(settings: Settings) -> int:
    """How many runs the daemon committed (0 before its database and schema exist)."""
    if not sqlite_file(settings).exists():
        return 0
    try:
        return int(query(settings, "SELECT count(*) FROM runs")[0][0])
    except OperationalError:
        return 0  # schema not created yet


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_the_cycle_and_exits_zero(
    write_config: Callable[..., Path],
    sqlite_settings: Callable[..., Settings],
    signum: signal.Signals,
) -> None:
    # SQLite: a second daemon on the same file is refused (on PostgreSQL it would stand by,
    # see test_backends.py).
    config = write_config({"schedule": {"interval_seconds": 0.2}})
    settings = sqlite_settings({"schedule": {"interval_seconds": 0.2}})
    proc = start_daemon(config)
    try:
        wait_for(lambda: cycles(settings) >= 2, what="the daemon's first two cycles")
        second = subprocess.run(
            [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
            check=False,
        )
        assert second.returncode == 2
        assert "already running" in second.stderr
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"stopped ({signum.name})" in out
    assert "✅ Model Fairness Stable." in out
    last = query(
        settings, "SELECT event_type, payload FROM audit_events ORDER BY seq DESC LIMIT 1"
    )[0]
    assert last[0] == "daemon_stopped"
    assert signum.name in str(last[1])
    runs = query(settings, "SELECT count(*) FROM runs")[0][0]
    readings = query(settings, "SELECT count(*) FROM readings")[0][0]
    assert readings == 2 * runs  # no half-written cycle


def test_an_unreachable_server_is_a_failed_cycle_recorded_later(
    make_settings: Callable[..., Settings],
    clock: Callable[[], datetime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fairlens_monitor.store.repository import Repository

    settings = make_settings({"schedule": {"interval_seconds": 0.1}})
    calls = {"position": 0, "record": 0}
    real_position, real_record = Repository.cycle_inputs, Repository.save_failed_run
    gone = OperationalError("SELECT 1", {}, ConnectionRefusedError("injected"))

    def position(self: Repository, *args: Any, **kwargs: Any) -> Any:
        calls["position"] += 1
        if calls["position"] == 2:  # the server is gone for the second cycle...
            raise gone
        return real_position(self, *args, **kwargs)

    def record(self: Repository, *args: Any, **kwargs: Any) -> Any:
        calls["record"] += 1
        if calls["record"] == 1:  # ...and still gone when its failure is to be recorded
            raise gone
        return real_record(self, *args, **kwargs)

    monkeypatch.setattr(Repository, "cycle_inputs", position)
    monkeypatch.setattr(Repository, "save_failed_run", record)
    repo = open_repository(settings)
    lines: list[str] = []
    daemon = Daemon(
        {"default": settings},
        repo,
        open_cipher(settings, repo),
        open_signing_key(settings, repo),
        clock=clock,
        emit=lines.append,
        max_cycles=3,
    )
    stats = daemon.run()
    assert (stats.cycles_ok, stats.cycles_failed) == (2, 1)  # three fires in all
    assert any("cycle failed: ConnectionRefusedError: injected" in line for line in lines)
    # The outage is on the record, in order, once the database answered again.
    assert [r[0] for r in query(settings, "SELECT status FROM runs ORDER BY id")] == [
        "ok",
        "failed",
        "ok",
    ]
    assert verify_chain(repo.iter_records(), repo.iter_links()).intact
    repo.engine.dispose()


def test_the_daily_jobs_run_in_the_daemon(
    make_settings: Callable[..., Settings], clock: Callable[[], datetime]
) -> None:
    # 0.5 s, not 0.05: on a busy machine a cycle takes seconds, and every fire it overlaps
    # becomes a cycle_missed event to record (hundreds at 0.05 s: a minute of writes).
    settings = make_settings(
        {
            "schedule": {"interval_seconds": 0.5},
            "backup": {"dir": "var/backups", "interval_hours": 24},
        }
    )
    repo = open_repository(settings)
    lines: list[str] = []
    jobs: set[str] = set()

    def emit(line: str) -> None:
        lines.append(line)
        jobs.update(job.id for job in daemon.scheduler.get_jobs())

    daemon = Daemon(
        {"default": settings},
        repo,
        open_cipher(settings, repo),
        open_signing_key(settings, repo),
        clock=clock,
        emit=emit,
        max_cycles=2,
    )
    daemon.run()
    assert {"fairness-cycle:default", "retention", "verify"} <= jobs
    assert ("backup" in jobs) == settings.database.url.startswith("sqlite")
    daemon.lease.tick()  # the stop released the service lease; the daily job runs as leader
    assert daemon.lease.leading
    daemon._retention()  # what the daily job does (the fixed clock is in 2026-01)
    assert any(line.startswith("retention: deleted 0 readings") for line in lines)
    repo.engine.dispose()


def test_a_second_signal_during_the_first_stop_request_does_not_deadlock(
    sqlite_settings: Callable[..., Settings],
    clock: Callable[[], datetime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two SIGTERMs at once (a process-group kill of the daemon and of a `timeout`, `sh -c`
    or init wrapper that forwards it, or Ctrl-C twice): the second handler ran inside the
    first one's `request_stop`, on the same main thread, and waited for ever on its lock —
    the daemon stopped cycling, never recorded its stop and never exited. Seen with
    `timeout 30 fairlens-monitor run` killed as a group."""
    import threading

    settings = sqlite_settings({"schedule": {"interval_seconds": 0.1}})
    repo = open_repository(settings)
    daemon = Daemon(
        {"default": settings},
        repo,
        open_cipher(settings, repo),
        open_signing_key(settings, repo),
        clock=clock,
        emit=lambda _line: None,
        max_cycles=None,
    )
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name == "fairlens-stop":  # the second signal lands while it starts
            daemon.request_stop("SIGTERM")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    asker = threading.Thread(target=daemon.request_stop, args=("SIGTERM",), daemon=True)
    real_start(asker)
    asker.join(timeout=30)
    assert not asker.is_alive(), "the second stop request waited for ever on the first"
    assert daemon.stats.stop_reason == "SIGTERM"
    repo.engine.dispose()
