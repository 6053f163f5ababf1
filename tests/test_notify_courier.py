"""The outbox's promptness: a commit wakes the worker, a burst goes out on several threads.

``store.outbox.DOORBELL`` rings after a commit that wrote notifications (never after a
rollback or a commit without any); the daemon's :class:`~fairlens_monitor.ops.notify.courier.
Courier`, polling only once an hour here, delivers a cycle's alert because of that ring; a
pass with a thread pool sends ``notify.workers`` messages at once, one lane per monitor and
channel, each lane in order. A real SQLite database, the real cycle (``once``), a real
threaded HTTP receiver on 127.0.0.1 that checks every signature.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import Settings, load_settings
from fairlens_monitor.ops.app import open_cipher, open_repository
from fairlens_monitor.ops.notify import message as m
from fairlens_monitor.ops.notify.courier import Courier
from fairlens_monitor.ops.notify.worker import deliver_due
from fairlens_monitor.store import outbox
from fairlens_monitor.store.repository import Repository
from tests.helpers.wait import wait_for

SECRET = b"courier-test-secret"
WORKERS = 4


class Receiver:
    """A threaded webhook receiver: checks signatures, counts requests in flight, and can
    hold each request until ``gather`` of them are in flight at once (then lets all pass)."""

    def __init__(self, gather: int = 0) -> None:
        self.seen: list[dict[str, Any]] = []
        self.in_flight = self.most = 0
        self.gather, self.gathered = gather, gather <= 1
        self.cond = threading.Condition()
        self.hold: str | None = None  # hold the messages of this monitor until release
        self.release, self.holding = threading.Event(), threading.Event()
        owner = self

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = m.verify(
                    SECRET,
                    self.headers.get("X-FairLens-Timestamp", ""),
                    body,
                    self.headers.get("X-FairLens-Signature", ""),
                    now=int(time.time()),
                )
                if json.loads(body).get("monitor") == owner.hold:
                    owner.holding.set()
                    owner.release.wait(60)
                with owner.cond:
                    owner.in_flight += 1
                    owner.most = max(owner.most, owner.in_flight)
                    if owner.in_flight >= owner.gather:
                        owner.gathered = True
                        owner.cond.notify_all()
                    # a generous bound: only a worker that sends one at a time reaches it
                    owner.cond.wait_for(lambda: owner.gathered, timeout=60)
                    owner.in_flight -= 1
                    owner.seen.append({"ok": ok, "body": json.loads(body)})
                self.send_response(200 if ok else 401)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def leading_courier(repo: Repository, settings: Settings, *, poll: float) -> Courier:
    """The daemon's outbox thread as the service leader has it (not started)."""
    return Courier(
        repo.engine,
        settings.notify,
        clock=lambda: datetime.now(UTC),
        cipher=open_cipher(settings, repo),
        leading=lambda: True,
        poll=poll,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(gather=WORKERS)
    yield r
    r.close()


@pytest.fixture
def configure(
    write_config: Callable[..., Path], tmp_path: Path, receiver: Receiver
) -> Callable[..., tuple[Path, Settings]]:
    secret = tmp_path / "hook.secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)

    def build(**extra: Any) -> tuple[Path, Settings]:
        notify = {
            "channels": {
                "hook": {"kind": "webhook", "url": receiver.url, "secret_file": str(secret)}
            },
            "on": {"alert_raised": ["hook"]},
            "workers": WORKERS,
            **extra,
        }
        config = write_config({"simulation": {"drift": 1.0}, "notify": notify})
        return config, load_settings(config, env={})

    return build


def test_the_doorbell_rings_after_a_commit_that_wrote_notifications_only(
    configure: Callable[..., tuple[Path, Settings]],
) -> None:
    _, settings = configure()
    repo = open_repository(settings)
    bell = outbox.DOORBELL.subscribe()
    at = datetime.now(UTC)
    try:
        repo.append_event("daemon_started", "test", {"pid": 1}, ts="2026-12-05T00:00:00Z")
        assert not bell.is_set()  # a commit without notifications
        with repo.sessions() as s, s.begin() as tx:
            outbox.add_one(s, monitor="m", channel="hook", event_type="test", key="k1", at=at)
            assert not bell.is_set()  # written, not yet committed
            tx.rollback()
        assert not bell.is_set()
        repo.append_event("daemon_started", "test", {"pid": 2}, ts="2026-12-05T00:00:01Z")
        assert not bell.is_set()  # the rolled-back write is not remembered
        with repo.sessions.begin() as s:
            outbox.add_one(s, monitor="m", channel="hook", event_type="test", key="k2", at=at)
            assert not bell.is_set()
        assert bell.is_set()  # committed: rung
    finally:
        outbox.DOORBELL.unsubscribe(bell)
        repo.engine.dispose()


def test_a_cycles_commit_wakes_the_courier_long_before_its_poll(
    configure: Callable[..., tuple[Path, Settings]], receiver: Receiver
) -> None:
    """The courier looks on its own once an hour here: the alert of a cycle run in this
    process arrives because its commit rang."""
    receiver.gathered = True  # one message: nothing to gather
    config, settings = configure()
    repo = open_repository(settings)  # migrates
    courier = leading_courier(repo, settings, poll=3600.0).start()
    try:
        wait_for(lambda: courier.passes >= 1, what="the courier's first pass")
        assert receiver.seen == []
        result = CliRunner().invoke(cli, ["--config", str(config), "once"])
        assert result.exit_code == 0, result.output
        assert "ALERT" in result.output
        wait_for(lambda: receiver.seen, timeout=60, what="the alert at the receiver")
        assert courier.passes >= 2
        assert [(s["ok"], s["body"]["event"]) for s in receiver.seen] == [(True, "alert_raised")]
    finally:
        courier.stop()
        repo.engine.dispose()
    with repo.sessions() as s:
        assert [(n.status, n.attempts) for n in outbox.listing(s, failed=False, limit=10)] == [
            ("delivered", 1)
        ]
    repo.engine.dispose()


def test_a_burst_goes_out_on_the_pool_one_lane_per_monitor_in_order(
    configure: Callable[..., tuple[Path, Settings]], receiver: Receiver
) -> None:
    """Eight monitors with two messages each: four in flight at once (the receiver holds
    each request until four are), never more; each monitor's two in the order written."""
    _, settings = configure()
    repo = open_repository(settings)
    at = datetime.now(UTC)
    with repo.sessions.begin() as s:
        for k in range(8):
            for n in range(2):
                outbox.add_one(
                    s, monitor=f"m{k}", channel="hook", event_type="test", key=f"{k}:{n}", at=at
                )
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            attempts = deliver_due(
                repo, settings.notify, now=lambda: datetime.now(UTC), actor="cli", pool=pool
            )
        events = [r.payload for r in repo.iter_records() if r.event_type.startswith("notif")]
    finally:
        repo.engine.dispose()
    assert receiver.most == WORKERS
    assert len(attempts) == 16
    assert all(a.status == "delivered" for a in attempts)
    assert all(seen["ok"] for seen in receiver.seen)
    keys = [seen["body"]["idempotency_key"] for seen in receiver.seen]
    assert sorted(keys) == sorted(f"{k}:{n}" for k in range(8) for n in range(2))  # each once
    for k in range(8):  # a lane keeps the order its rows were written in
        assert [key for key in keys if key.startswith(f"{k}:")] == [f"{k}:0", f"{k}:1"]
    assert sorted(e["notification_id"] for e in events) == sorted(
        a.notification_id for a in attempts
    )
    assert all(e["status"] == "delivered" and e["attempt"] == 1 for e in events)


def test_a_message_is_not_held_back_by_a_slow_one_on_its_way(
    configure: Callable[..., tuple[Path, Settings]], receiver: Receiver
) -> None:
    """Monitor "slow"'s message is held by the receiver; one of monitor "fast" committed
    meanwhile arrives while the slow one is still on its way (no look waits for the
    messages of the previous one); then the slow one is let through."""
    receiver.gathered, receiver.hold = True, "slow"
    _, settings = configure()
    repo = open_repository(settings)
    courier = leading_courier(repo, settings, poll=3600.0).start()
    at = datetime.now(UTC)
    try:
        with repo.sessions.begin() as s:
            outbox.add_one(s, monitor="slow", channel="hook", event_type="test", key="s", at=at)
        assert receiver.holding.wait(60), "the slow message never reached the receiver"
        with repo.sessions.begin() as s:
            outbox.add_one(s, monitor="fast", channel="hook", event_type="test", key="f", at=at)
        wait_for(lambda: receiver.seen, timeout=60, what="the fast message")
        assert [seen["body"]["monitor"] for seen in receiver.seen] == ["fast"]
        assert not receiver.release.is_set()  # the slow one is still on its way
    finally:
        receiver.release.set()
        wait_for(lambda: len(receiver.seen) == 2, timeout=60, what="the slow message")
        courier.stop()
        repo.engine.dispose()


def test_a_database_error_in_a_look_is_logged_masked_and_the_courier_goes_on(
    configure: Callable[..., tuple[Path, Settings]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SQLAlchemy's text of a failed statement carries its parameters: the log line has the
    driver's message only, and the thread looks again."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from fairlens_monitor.ops.notify import courier as courier_module

    looks: list[int] = []

    def failing(*_args: object, **_kwargs: object) -> dict[object, object]:
        looks.append(1)
        raise OperationalError(
            "SELECT body FROM notifications WHERE x = ?",
            {"x": "canary.applicant@example.com"},
            sqlite3.OperationalError("database is locked"),
        )

    monkeypatch.setattr(courier_module, "due_lanes", failing)
    _, settings = configure()
    repo = open_repository(settings)
    courier = leading_courier(repo, settings, poll=0.05)
    with caplog.at_level("ERROR", logger="fairlens_monitor.ops.notify.courier"):
        courier.start()
        try:
            wait_for(lambda: len(looks) >= 3, what="three looks despite the error")
        finally:
            courier.stop(timeout=30)
    assert "outbox not delivered: OperationalError: database is locked" in caplog.text
    assert "canary" not in caplog.text
    assert "SELECT" not in caplog.text
