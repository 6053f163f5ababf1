"""The real daemon's ``/metrics`` and ``/healthz`` (issue 20), scraped over 127.0.0.1.

Each test starts ``fairlens-monitor run --metrics-port PORT`` as a subprocess on a real
database with two monitors, with a real unix datagram socket as ``$NOTIFY_SOCKET`` (the
systemd protocol), and parses what it serves with ``prometheus_client.parser``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.errors import ConfigError
from tests.conftest import PG_SERVER, query_url
from tests.helpers.wait import LineReader, stop, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
MONITORS = ("cards", "autos")
CLI = (sys.executable, "-m", "fairlens_monitor")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Notify:
    """A real ``$NOTIFY_SOCKET``: a bound unix datagram socket collecting what is sent."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="fl-notify-", dir="/tmp")  # short: sun_path limit
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        """Receive what has arrived (waiting at most 0.2 s for the first)."""
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return self.messages

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify() -> Iterator[Notify]:
    n = Notify()
    yield n
    n.close()


def get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (127.0.0.1)
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode()


def health(port: int) -> int | None:
    """``/healthz``'s status, or None while nothing answers (starting)."""
    try:
        return get(f"http://127.0.0.1:{port}/healthz")[0]
    except urllib.error.URLError:
        return None


def unhealthy(port: int) -> str | None:
    """``/healthz``'s body when it says 503, else None."""
    status, body = get(f"http://127.0.0.1:{port}/healthz")
    return body if status == 503 else None


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` parsed: (sample name, sorted labels) -> value."""
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def start(config: Path, port: int, notify: Notify, *extra: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "NOTIFY_SOCKET": notify.path,
        "WATCHDOG_USEC": "1000000",  # WatchdogSec=1: a ping every half second while healthy
    }
    return subprocess.Popen(
        [*CLI, "--config", str(config), "run", "--metrics-port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=env,
    )


def two_monitors(write_config: Callable[..., Path], url: str, **extra: Any) -> Path:
    return write_config(
        {
            "database": {"url": url, **extra.pop("database", {})},
            "schedule": {"interval_seconds": 0.3, "misfire_grace_seconds": 5},
            "monitors": dict.fromkeys(MONITORS),
            **extra,
        }
    )


def ok_runs(url: str) -> dict[str, int]:
    rows = query_url(url, "SELECT monitor, count(*) FROM runs WHERE status = 'ok' GROUP BY monitor")
    return {str(m): int(n) for m, n in rows}


def test_metrics_match_the_database_and_the_watchdog_follows_health(
    write_config: Callable[..., Path], backend_url: str, notify: Notify
) -> None:
    """Scrape the real daemon: every per-monitor and service value equals the database's;
    READY, WATCHDOG while healthy, STOPPING at SIGTERM arrive on the socket; a SIGSTOPped
    daemon's endpoint stops answering and its pings stop, and both come back on SIGCONT."""
    url = backend_url
    port = free_port()
    config = two_monitors(write_config, url)
    proc = start(config, port, notify)
    assert proc.stdout is not None
    out = LineReader(proc.stdout)
    try:
        wait_for(lambda: "READY=1" in notify.drain(), what="READY=1")
        wait_for(
            lambda: all(ok_runs(url).get(m, 0) >= 3 for m in MONITORS), what="three cycles each"
        )
        # hold the values still: pause both monitors (audited; their fires are skipped)
        for name in MONITORS:
            subprocess.run(
                [*CLI, "--config", str(config), "monitors", "pause", name, "--by", "test"],
                check=True,
                capture_output=True,
                cwd=REPO,
                timeout=300,
            )

        def caught_up() -> bool:
            now, runs = scrape(port), ok_runs(url)
            return all(
                value(now, "fairlens_cycles_total", monitor=m, status="ok") == runs[m]
                for m in MONITORS
            )

        wait_for(caught_up, what="the counters to match the runs after the pause")
        samples = scrape(port)
        for name in MONITORS:
            row = query_url(
                url,
                "SELECT dir, dir_ci_low, dir_ci_high, verdict, drift_statistic FROM readings "
                f"WHERE monitor = '{name}' AND scenario = 'monitored' ORDER BY id DESC LIMIT 1",
            )[0]
            assert value(samples, "fairlens_dir", monitor=name) == pytest.approx(row[0])
            assert value(samples, "fairlens_dir_ci_low", monitor=name) == pytest.approx(row[1])
            assert value(samples, "fairlens_dir_ci_high", monitor=name) == pytest.approx(row[2])
            stat = value(samples, "fairlens_drift_statistic", monitor=name)
            assert stat == (None if row[4] is None else pytest.approx(row[4]))
            for verdict in ("ok", "inconclusive", "adverse", "no_data"):
                got = value(samples, "fairlens_verdict", monitor=name, verdict=verdict)
                assert got == (1.0 if verdict == row[3] else 0.0)
            alerts = query_url(
                url,
                f"SELECT count(*) FROM alerts WHERE monitor = '{name}' "
                "AND state IN ('open', 'acknowledged')",
            )[0][0]
            assert value(samples, "fairlens_open_alerts", monitor=name) == alerts
            finished = query_url(
                url,
                f"SELECT finished_at FROM runs WHERE monitor = '{name}' AND status = 'ok' "
                "ORDER BY id DESC LIMIT 1",
            )[0][0]
            at = datetime.fromisoformat(str(finished).replace("Z", "+00:00"))
            if at.tzinfo is None:  # stored in UTC
                at = at.replace(tzinfo=UTC)
            stamp = value(samples, "fairlens_last_success_timestamp_seconds", monitor=name)
            assert stamp is not None
            assert abs(stamp - at.timestamp()) < 1.0
            assert (
                value(samples, "fairlens_cycles_total", monitor=name, status="ok")
                == (ok_runs(url)[name])
            )
            assert value(samples, "fairlens_cycles_total", monitor=name, status="failed") == 0
            assert value(samples, "fairlens_is_leader", monitor=name) == 1.0
            count = value(samples, "fairlens_cycle_duration_seconds_count", monitor=name)
            assert count == ok_runs(url)[name]
        head = query_url(url, "SELECT max(seq) FROM audit_events")[0][0]
        assert value(samples, "fairlens_chain_head_seq") == head
        assert value(samples, "fairlens_outbox_pending") == 0.0  # no outbox table here
        assert value(samples, "fairlens_service_leader") == 1.0
        # healthy (waited for: with 0.3 s intervals a fire late by a busy machine's 0.9 s
        # is, rightly, a 503 for a moment)
        wait_for(lambda: get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n"), what="200")
        assert get(f"http://127.0.0.1:{port}/nothing")[0] == 404
        wait_for(lambda: notify.drain().count("WATCHDOG=1") >= 2, what="watchdog pings")

        os.kill(proc.pid, signal.SIGSTOP)  # frozen: nothing inside can notice
        try:
            notify.drain()
            notify.messages.clear()
            with pytest.raises((TimeoutError, urllib.error.URLError)):
                get(f"http://127.0.0.1:{port}/healthz", timeout=2.0)
            assert "WATCHDOG=1" not in notify.drain()  # systemd would restart it
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        wait_for(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, what="healthz")
        wait_for(lambda: "WATCHDOG=1" in notify.drain(), what="pings again")

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
        wait_for(lambda: "STOPPING=1" in notify.drain(), what="STOPPING=1")
    finally:
        stop(proc)
    out.join()


def test_a_stuck_cycle_makes_healthz_503_and_stops_the_pings(
    write_config: Callable[..., Path], tmp_path: Path, notify: Notify
) -> None:
    """A cycle blocked on the database's write lock (held here, busy timeout a minute) is a
    stuck daemon: /healthz says 503 naming the monitor; the pings stop; released, all is
    well again."""
    db = tmp_path / "var" / "fairlens.db"
    url = f"sqlite:///{db}"
    config = two_monitors(write_config, url, database={"busy_timeout_ms": 120_000})
    port = free_port()
    proc = start(config, port, notify)
    assert proc.stdout is not None
    out = LineReader(proc.stdout)
    holder = None
    try:
        wait_for(lambda: health(port) == 200, what="healthy")
        wait_for(lambda: all(ok_runs(url).get(m, 0) >= 1 for m in MONITORS), what="cycles")
        holder = sqlite3.connect(db, isolation_level=None, timeout=60)
        holder.execute("BEGIN IMMEDIATE")  # every cycle's write now waits
        body = str(wait_for(lambda: unhealthy(port), what="a 503"))
        assert body.startswith("unhealthy: monitor ")
        assert "no cycle completed" in body
        assert "while leading" in body
        assert body.count("\n") == 1  # one line
        notify.drain()
        notify.messages.clear()
        assert "WATCHDOG=1" not in notify.drain()
        samples = scrape(port)  # metrics still answer (reads pass a writer under WAL)
        assert value(samples, "fairlens_is_leader", monitor="cards") == 1.0
        holder.execute("ROLLBACK")
        holder.close()
        holder = None
        wait_for(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, what="healthy")
        wait_for(lambda: "WATCHDOG=1" in notify.drain(), what="pings again")
        proc.terminate()
        assert proc.wait(timeout=120) == 0
    finally:
        if holder is not None:
            holder.close()
        stop(proc)
    out.join()


@pytest.mark.skipif(not os.environ.get("FAIRLENS_TEST_PG"), reason="FAIRLENS_TEST_PG not set")
def test_an_unreachable_database_makes_healthz_503(
    write_config: Callable[..., Path], pg_url: str, notify: Notify
) -> None:
    """PostgreSQL refuses the daemon's database (connections closed and not allowed):
    /healthz says 503 "database unreachable"; allowed again, 200."""
    name = pg_url.rsplit("/", 1)[1]
    port = free_port()
    proc = start(two_monitors(write_config, pg_url), port, notify)
    assert proc.stdout is not None
    out = LineReader(proc.stdout)
    admin = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    try:
        wait_for(lambda: health(port) == 200, what="healthy")
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                {"d": name},
            )
        body = str(wait_for(lambda: unhealthy(port), what="a 503"))
        assert body.startswith("unhealthy: database unreachable")
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        wait_for(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, what="healthy")
        proc.terminate()
        assert proc.wait(timeout=120) == 0
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        stop(proc)
    out.join()


def test_a_port_in_use_is_a_clear_error_exit_2(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = two_monitors(write_config, f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*CLI, "--config", str(config), "run", "--metrics-port", str(port), "--cycles", "1"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
        )
    assert done.returncode == 2
    assert "metrics.port" in done.stderr
    assert "in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert not query_url(f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}", "SELECT 1 FROM runs")


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"port": "9100x"}, "metrics.port"),
        ({"port": 0}, "metrics.port"),
        ({"port": 70000}, "metrics.port"),
        ({"port": 9187.5}, "metrics.port"),
        ({"port": True}, "metrics.port"),
        ({"port": 9187, "address": "localhost:9187"}, "metrics.address"),
        ({"port": 9187, "address": ""}, "metrics.address"),
        ({"port": 9187, "bind": "::"}, "metrics.bind"),
    ],
)
def test_metrics_config_errors_name_the_key(
    write_config: Callable[..., Path], section: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write_config({"metrics": section}), env={})
    assert err.value.key == key


def test_metrics_config_defaults_off_on_loopback(write_config: Callable[..., Path]) -> None:
    plain = load_settings(write_config(), env={})
    assert plain.metrics.port is None
    assert plain.metrics.address == "127.0.0.1"
    on = load_settings(write_config({"metrics": {"port": 9187, "address": "::1"}}), env={})
    assert (on.metrics.port, on.metrics.address) == (9187, "::1")
    assert on.config_hash() == plain.config_hash()  # where it listens shapes no reading


def test_outbox_pending_is_read_once_the_outbox_exists(
    make_settings: Callable[..., Any],
) -> None:
    """0 while the outbox (migration 0017) is empty; then the count of its pending rows,
    not the delivered or dead ones."""
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry, generate_latest

    from fairlens_monitor.ops.app import open_repository
    from fairlens_monitor.ops.metrics import FairlensCollector
    from fairlens_monitor.store.db import make_engine
    from fairlens_monitor.store.lease import Lease
    from fairlens_monitor.store.monitor_lease import MonitorLeases
    from fairlens_monitor.store.outbox import NOTIFICATIONS

    settings = make_settings()
    writer = open_repository(settings).engine
    reader = make_engine(settings.database.url, readonly=True)
    daemon: Any = SimpleNamespace(
        runners={},
        lease=Lease(reader, lease_seconds=5, holder="t"),
        leases=MonitorLeases(reader, lease_seconds=5, holder="t", monitors=[]),
        chain_check=SimpleNamespace(walked_at=None),
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FairlensCollector(daemon, reader))

    def pending() -> float | None:
        families = text_string_to_metric_families(generate_latest(registry).decode())
        return value(
            {(s.name, ()): s.value for f in families for s in f.samples}, "fairlens_outbox_pending"
        )

    try:
        assert pending() == 0.0  # migrated (0017): the outbox is there, empty
        now = datetime(2026, 1, 1, tzinfo=UTC)
        states = ["pending", "pending", "delivered", "dead"]
        with writer.begin() as conn:
            conn.execute(
                NOTIFICATIONS.insert(),
                [
                    {
                        "created_at": now,
                        "monitor": "default",
                        "channel": "hook",
                        "event_type": "alert_raised",
                        "idempotency_key": f"key-{i}",
                        "status": state,
                        "attempts": 0,
                        "next_attempt_at": now,
                    }
                    for i, state in enumerate(states)
                ],
            )
        assert pending() == 2.0
    finally:
        reader.dispose()
        writer.dispose()
