"""``ops.health``: the states the daemon can see in itself, and sd_notify on a real socket.

The end-to-end cases (a stuck cycle, an unreachable database, SIGSTOP, the watchdog of the
real daemon) are in tests/test_prometheus.py; here each branch of the check is driven on
its own: a real APScheduler scheduler and a real migrated SQLite database, a monotonic clock
the test moves, and the runners' and leases' state a daemon keeps.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops.app import open_repository
from fairlens_monitor.ops.health import STUCK_GAPS, HealthCheck, sd_notify, watchdog_period
from fairlens_monitor.ops.runner import MonitorStats
from fairlens_monitor.store.db import make_engine
from fairlens_monitor.store.monitor_lease import MonitorLeases


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(make_settings: Callable[..., Settings]) -> Iterator[dict[str, Any]]:
    """A migrated database, a running scheduler with one job, a daemon's visible state."""
    settings = make_settings({"schedule": {"interval_seconds": 10}})
    open_repository(settings).engine.dispose()  # migrates
    engine = make_engine(settings.database.url, readonly=True)
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(lambda: None, "interval", hours=1, id="fairness-cycle:cards")
    scheduler.start()
    runner = SimpleNamespace(settings=settings, stats=MonitorStats())
    daemon = SimpleNamespace(
        runners={"cards": runner},
        leases=MonitorLeases(engine, lease_seconds=5, holder="me", monitors=["cards"]),
        scheduler=scheduler,
        _stopper=None,
    )
    clock = Clock()
    try:
        yield {"daemon": daemon, "clock": clock, "check": HealthCheck(daemon, engine, clock=clock)}
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
        engine.dispose()


def test_healthy_then_a_monitor_with_no_cycle_for_three_intervals(world: dict[str, Any]) -> None:
    check, clock, daemon = world["check"], world["clock"], world["daemon"]
    assert check.check().ok
    clock.now += STUCK_GAPS * 10 - 1
    assert check.check().ok
    clock.now += 2  # three intervals of 10 s without a fire handled
    verdict = check.check()
    assert not verdict.ok
    assert verdict.reason.startswith("monitor cards: no cycle completed in 31s")
    assert "while leading" in verdict.reason
    daemon.runners["cards"].stats.handled_at = clock.now  # a cycle finished (or a paused fire)
    assert check.check().ok


def test_a_monitor_led_elsewhere_is_not_this_daemons_problem(world: dict[str, Any]) -> None:
    check, clock, daemon = world["check"], world["clock"], world["daemon"]
    daemon.leases = SimpleNamespace(leads=lambda _n: False, server=False, held=lambda: [])
    clock.now += 1000
    assert check.check().ok


def test_a_scheduler_that_no_longer_dispatches_is_stuck(world: dict[str, Any]) -> None:
    """The loop sleeps towards the job's old time and is never woken: the job, now due ten
    minutes ago, is not run — what a scheduler thread that hangs looks like from inside."""
    scheduler = world["daemon"].scheduler
    scheduler.wakeup = lambda: None  # the loop stays asleep (its next wake-up: in an hour)
    job = scheduler.get_job("fairness-cycle:cards")
    job.modify(next_run_time=datetime.now(UTC) - timedelta(minutes=10))
    verdict = world["check"].check()
    assert not verdict.ok
    assert verdict.reason.startswith("scheduler stuck: job fairness-cycle:cards was due")


def test_a_scheduler_that_stopped_and_a_stop_in_progress(world: dict[str, Any]) -> None:
    world["daemon"].scheduler.shutdown(wait=False)
    assert world["check"].check().reason == "scheduler not running"
    world["daemon"]._stopper = threading.Thread(target=lambda: None)
    assert world["check"].check().reason == "stopping"


def test_an_unreadable_database(world: dict[str, Any], tmp_path: Path) -> None:
    """The database file is replaced by one that is not a database: unreachable."""
    engine = make_engine(f"sqlite:///{tmp_path / 'gone.db'}", readonly=False)
    (tmp_path / "gone.db").write_bytes(b"not a database" * 100)
    try:
        verdict = HealthCheck(world["daemon"], engine).check()
    finally:
        engine.dispose()
    assert not verdict.ok
    assert verdict.reason.startswith("database unreachable (")
    assert "gone.db" not in verdict.reason  # the type of error, no path or message


# --- sd_notify -------------------------------------------------------------------------


@pytest.fixture
def short_dir() -> Iterator[str]:
    where = tempfile.mkdtemp(prefix="fl-sd-", dir="/tmp")  # unix socket paths are short
    yield where
    shutil.rmtree(where, ignore_errors=True)


def test_sd_notify_sends_one_datagram_to_the_socket(short_dir: str) -> None:
    path = os.path.join(short_dir, "n.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(10)
        assert sd_notify("READY=1", {"NOTIFY_SOCKET": path})
        assert sock.recv(100) == b"READY=1"


def test_sd_notify_reaches_an_abstract_socket() -> None:
    name = f"fl-sd-{os.getpid()}-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        assert sd_notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"WATCHDOG=1"


def test_sd_notify_without_a_socket_or_to_a_gone_one(short_dir: str) -> None:
    assert not sd_notify("READY=1", {})
    assert not sd_notify("READY=1", {"NOTIFY_SOCKET": os.path.join(short_dir, "none.sock")})


@pytest.mark.parametrize(
    ("env", "period"),
    [
        ({"WATCHDOG_USEC": "2000000"}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # meant for another
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_period(env: dict[str, str], period: float | None) -> None:
    assert watchdog_period(env) == period


# --- binding ---------------------------------------------------------------------------


def test_bind_errors_name_the_key() -> None:
    """A port in use names ``metrics.port``; an address not of this host ``metrics.address``;
    IPv6 loopback binds."""
    from fairlens_monitor.errors import ConfigError
    from fairlens_monitor.ops.health import bind

    watch: Any = None
    first = bind("127.0.0.1", 0, watch)
    port = first.server_address[1]
    try:
        with pytest.raises(ConfigError) as err:
            bind("127.0.0.1", port, watch)
        assert err.value.key == "metrics.port"
        assert "in use" in str(err.value)
    finally:
        first.server_close()
    with pytest.raises(ConfigError) as err:
        bind("192.0.2.1", 0, watch)  # TEST-NET-1: never this host's
    assert err.value.key == "metrics.address"
    if socket.has_ipv6:
        try:
            six = bind("::1", 0, watch)
        except ConfigError:
            pytest.skip("no IPv6 loopback here")
        assert six.address_family == socket.AF_INET6
        six.server_close()


def test_the_outbox_thread_ended_or_stuck_in_a_look(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With channels, the daemon's outbox thread (``ops.notify.courier``) is watched too: a
    look that never returns (a database call hanging) is stuck; an ended thread is down."""
    from fairlens_monitor.ops.notify import courier as courier_module
    from fairlens_monitor.ops.notify.courier import Courier

    daemon, engine = world["daemon"], world["check"].engine
    settings = daemon.runners["cards"].settings
    release, entered = threading.Event(), threading.Event()
    looks: list[int] = []

    def hanging(*_args: object, **_kwargs: object) -> dict[object, object]:
        looks.append(1)
        if len(looks) >= 3:  # two quick looks, then one that hangs
            entered.set()
            release.wait(60)
        return {}

    monkeypatch.setattr(courier_module, "due_lanes", hanging)
    courier = Courier(
        engine,
        settings.notify,
        clock=lambda: datetime.now(UTC),
        cipher=None,  # type: ignore[arg-type]  # never reached: no lane is due
        leading=lambda: True,
        poll=0.01,
    )
    daemon.courier = courier
    check = HealthCheck(daemon, engine, clock=world["clock"], courier_stuck=0.5)
    assert check.check().reason == "outbox worker not running"  # not started yet
    courier.start()
    try:
        assert entered.wait(60), "the courier never made its third look"
        patient = HealthCheck(daemon, engine, clock=world["clock"], courier_stuck=60)
        assert patient.check().ok  # a look in progress is not yet stuck
        deadline = time.monotonic() + 60
        while (verdict := check.check()).ok and time.monotonic() < deadline:
            entered.wait(0.05)  # the check's own threshold is what is waited for
        assert verdict.reason.startswith("outbox worker stuck: no look at the outbox in ")
    finally:
        release.set()
        courier.stop(timeout=30)
    assert check.check().reason == "outbox worker not running"
