"""The daemon seen from outside: ``/metrics`` and ``/healthz`` on one port, and systemd's
watchdog (``sd_notify``).

simulate → measure → detect → alert → log, **watched**. :class:`Watch` is started by the
daemon before its first write and stopped after its last. It serves, when ``metrics.port``
(or ``run --metrics-port``) is set, on ``metrics.address`` (127.0.0.1 unless set):

- ``GET /metrics``: the Prometheus text format of ``ops.metrics.DaemonMetrics``;
- ``GET /healthz``: ``200 ok`` when this daemon is healthy, else ``503`` and one line naming
  the first problem :class:`HealthCheck` found — the database unreadable, the scheduler not
  running or not dispatching (a job due long ago), the outbox's thread ended or stuck in one
  look for 2 minutes (with ``notify.channels``), a monitor this daemon leads with no fire
  handled within 3 expected gaps (a stuck cycle), or, standing by on PostgreSQL, a monitor
  with no live leader for two lease times.

Under systemd (``$NOTIFY_SOCKET`` set) it sends ``READY=1`` once the scheduler started,
``WATCHDOG=1`` every half ``WatchdogSec`` **only while** the health check passes (a stuck
daemon is restarted by systemd), and ``STOPPING=1`` when a stop begins. A frozen process
(SIGSTOP) answers nothing at all: that is the outside's to see (Prometheus ``up``, systemd's
watchdog timeout). Messages name keys, jobs and monitors, never a stored value.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.errors import ConfigError
from fairlens_monitor.ops.metrics import DaemonMetrics, Observed
from fairlens_monitor.store.db import make_engine

log = logging.getLogger(__name__)
STUCK_GAPS = 3  # a monitor led here with no fire handled in this many expected gaps: stuck
SCHEDULER_SLACK_SECONDS = 60.0  # a job due longer ago than its grace plus this: not dispatching
COURIER_STUCK_SECONDS = 120.0  # the outbox thread looks every second: this long is stuck
DEFAULT_PERIOD = 5.0  # seconds between the watch loop's checks without a systemd watchdog


@dataclass(frozen=True)
class Health:
    """One verdict of :meth:`HealthCheck.check`: healthy or not, and why (one line)."""

    ok: bool
    reason: str


class Watched(Observed, Protocol):
    """What the health check reads from a running daemon (``ops.daemon.Daemon``)."""

    scheduler: Any
    _stopper: threading.Thread | None

    @property
    def portfolio(self) -> Mapping[str, Settings]:
        """Monitor name -> its settings (the service sections are the same in each)."""


class HealthCheck:
    """Judges whether the daemon is doing its job; :meth:`check` is thread-safe."""

    def __init__(
        self,
        daemon: Watched,
        engine: Engine,
        *,
        clock: Callable[[], float] = time.monotonic,
        courier_stuck: float = COURIER_STUCK_SECONDS,
    ) -> None:
        """Start judging from now.

        Args:
            daemon: the daemon.
            engine: a read-only engine on its database (never waits for the write lock).
            clock: a monotonic clock in seconds (tests pass their own).
            courier_stuck: seconds without a look at the outbox that make its thread stuck
                (the thread keeps its own monotonic time).
        """
        self.daemon, self.engine, self.clock = daemon, engine, clock
        self.courier_stuck = courier_stuck
        self.started = clock()
        self._led_since: dict[str, float] = {}
        self._leaderless_since: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self) -> Health:
        """Judge now: the first problem found, in the order of the module docstring."""
        with self._lock:
            now = self.clock()
            try:
                reason = (
                    self._stopping()
                    or self._database()
                    or self._scheduler()
                    or self._courier()
                    or self._cycles(now)
                    or self._standby(now)
                )
            except Exception as exc:  # a check that cannot judge is not a healthy verdict
                log.exception("health check failed")
                reason = f"health check failed ({type(exc).__name__})"
        return Health(reason is None, reason or "ok")

    def _stopping(self) -> str | None:
        return "stopping" if self.daemon._stopper is not None else None

    def _database(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT max(seq) FROM audit_events")).scalar()
        except SQLAlchemyError as exc:
            return f"database unreachable ({type(exc).__name__})"
        return None

    def _scheduler(self) -> str | None:
        from apscheduler.schedulers.base import STATE_RUNNING

        scheduler = self.daemon.scheduler
        if scheduler.state != STATE_RUNNING:
            return "scheduler not running"
        wall = datetime.now(UTC)
        for job in scheduler.get_jobs():
            due = getattr(job, "next_run_time", None)
            if due is None:
                continue
            late = (wall - due).total_seconds()
            if late > (job.misfire_grace_time or 1) + SCHEDULER_SLACK_SECONDS:
                return f"scheduler stuck: job {job.id} was due {late:.0f}s ago"
        return None

    def _courier(self) -> str | None:
        """The outbox's thread (``ops.notify.courier``), when the daemon has channels."""
        courier = getattr(self.daemon, "courier", None)
        if courier is None:
            return None
        quiet = courier.quiet_seconds()
        if quiet is None:
            return "outbox worker not running"
        if quiet > self.courier_stuck:
            return f"outbox worker stuck: no look at the outbox in {quiet:.0f}s"
        return None

    def _cycles(self, now: float) -> str | None:
        for name, runner in self.daemon.runners.items():
            if not self.daemon.leases.leads(name):
                self._led_since.pop(name, None)
                continue
            since = self._led_since.setdefault(name, now)
            gap = runner.settings.schedule.expected_gap_seconds
            last = max(runner.stats.handled_at or 0.0, since, self.started)
            if now - last > STUCK_GAPS * gap:
                return (
                    f"monitor {name}: no cycle completed in {now - last:.0f}s "
                    f"({STUCK_GAPS} intervals of {gap:g}s) while leading"
                )
        return None

    def _standby(self, now: float) -> str | None:
        leases = self.daemon.leases
        if not leases.server or leases.held():
            return None
        try:
            holders = leases.survey().holders
        except SQLAlchemyError as exc:
            return f"database unreachable ({type(exc).__name__})"
        allowed = 2 * leases.lease_seconds
        for name in self.daemon.runners:
            if holders.get(name):
                self._leaderless_since.pop(name, None)
                continue
            since = self._leaderless_since.setdefault(name, now)
            if now - since > allowed:
                return (
                    f"standing by, but monitor {name} has had no live leader for {now - since:.0f}s"
                )
        return None


def sd_notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one ``sd_notify`` datagram to ``$NOTIFY_SOCKET`` (no-op without it).

    Args:
        message: e.g. ``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``.
        env: the environment; ``os.environ`` when None.

    Returns:
        Whether it was sent (False: no socket set, or it could not be reached — logged).
    """
    where = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not where:
        return False
    address = "\0" + where[1:] if where.startswith("@") else where  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify %s not sent: %s", message.split("=")[0], exc.strerror or exc)
        return False
    return True


def watchdog_period(env: Mapping[str, str] | None = None) -> float | None:
    """Half of systemd's ``WatchdogSec`` (``$WATCHDOG_USEC``), or None when it is off or
    meant for another process (``$WATCHDOG_PID``)."""
    env = os.environ if env is None else env
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


class Watch:
    """The daemon's endpoint and watchdog thread: :meth:`start`, then :meth:`stop`."""

    def __init__(self, daemon: Watched) -> None:
        """Prepare (nothing is bound or started; see :meth:`start`)."""
        self.daemon = daemon
        db = next(iter(daemon.portfolio.values())).database
        self.engine = make_engine(db.url, readonly=True, busy_timeout_ms=db.busy_timeout_ms)
        self.health = HealthCheck(daemon, self.engine)
        self.metrics = DaemonMetrics(daemon, self.engine)
        self.server: ThreadingHTTPServer | None = None
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stopping_sent = False

    @classmethod
    def start(cls, daemon: Watched) -> Watch:
        """Bind the endpoint (when configured) and start the watchdog loop (when there is an
        endpoint or ``$NOTIFY_SOCKET``; it also logs each change of the health verdict).

        Args:
            daemon: the daemon, before its scheduler starts.

        Returns:
            The running watch.

        Raises:
            ConfigError: the port is in use or not allowed, or the address is not this
                host's (exit 2, naming ``metrics.port`` or ``metrics.address``).
        """
        watch = cls(daemon)
        plan = next(iter(daemon.portfolio.values())).metrics
        if plan.port is not None:
            try:
                watch.server = bind(plan.address, plan.port, watch)
            except ConfigError:
                watch.engine.dispose()
                raise
            serving = threading.Thread(
                target=watch.server.serve_forever, name="fairlens-metrics", daemon=True
            )
            serving.start()
            watch._threads.append(serving)
            log.info("metrics and health on http://%s:%d/", plan.address, plan.port)
        if plan.port is None and not os.environ.get("NOTIFY_SOCKET"):
            return watch  # nobody asks: no thread, no query
        daemon.scheduler.add_listener(watch._on_started, _started_mask())
        period = watchdog_period()
        loop = threading.Thread(
            target=watch._loop, args=(period,), name="fairlens-watchdog", daemon=True
        )
        loop.start()
        watch._threads.append(loop)
        return watch

    def _on_started(self, _event: Any) -> None:
        sd_notify("READY=1")

    def _loop(self, period: float | None) -> None:
        """Check health every ``period`` (or DEFAULT_PERIOD); ping systemd while healthy."""
        last_reason = "ok"
        while not self._done.wait(period or DEFAULT_PERIOD):
            if self.daemon._stopper is not None:
                self._stopping()
                continue
            verdict = self.health.check()
            if verdict.reason != last_reason:
                (log.info if verdict.ok else log.warning)("health: %s", verdict.reason)
                last_reason = verdict.reason
            if verdict.ok and period is not None:
                sd_notify("WATCHDOG=1")

    def _stopping(self) -> None:
        if not self._stopping_sent:
            self._stopping_sent = True
            sd_notify("STOPPING=1")

    def stop(self) -> None:
        """Say STOPPING (once), close the endpoint and end the threads."""
        self._stopping()
        self._done.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self.engine.dispose()


def _started_mask() -> int:
    from apscheduler.events import EVENT_SCHEDULER_START

    return int(EVENT_SCHEDULER_START)


class _Handler(BaseHTTPRequestHandler):
    """``GET /metrics`` and ``GET /healthz``; anything else 404."""

    watch: Watch
    timeout = 10  # a client that sends nothing does not hold a thread for long

    def do_GET(self) -> None:
        """Answer one request."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.watch.metrics.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            verdict = self.watch.health.check()
            body = ("ok" if verdict.ok else f"unhealthy: {verdict.reason}") + "\n"
            self._send(200 if verdict.ok else 503, body.encode(), "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged at DEBUG only (a scrape every 15 s is not news)."""
        log.debug("%s " + format, self.address_string(), *args)


def bind(address: str, port: int, watch: Watch) -> ThreadingHTTPServer:
    """Bind the endpoint's server (not yet serving).

    Raises:
        ConfigError: the port is taken or not allowed, or the address is not this host's.
    """
    handler = type("Handler", (_Handler,), {"watch": watch})
    server_class = type(
        "Server",
        (ThreadingHTTPServer,),
        {"address_family": socket.AF_INET6 if ":" in address else socket.AF_INET},
    )
    try:
        server: ThreadingHTTPServer = server_class((address, port), handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                "metrics.port",
                f"port {port} on {address} is in use by another process; choose a free "
                "port (metrics.port or run --metrics-port)",
            ) from None
        if exc.errno == errno.EACCES:
            raise ConfigError(
                "metrics.port", f"port {port} needs privileges; choose a port above 1023"
            ) from None
        raise ConfigError(
            "metrics.address",
            f"cannot bind {address}:{port} ({exc.strerror or exc}); use an address of this "
            "host, e.g. 127.0.0.1",
        ) from None
    server.daemon_threads = True
    return server
