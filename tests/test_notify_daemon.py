"""The real daemon delivers its outbox; ``kill -9`` mid-delivery loses nothing.

A ``fairlens-monitor run`` subprocess raises an alert (drift 1.0) and its outbox job posts
it to a receiver on 127.0.0.1 that checks the signature. The receiver holds the first
request open while the test kills the daemon with SIGKILL; a new daemon sends it again with
the same ``Idempotency-Key``. The long test (``pytest -m long``) does that 20 times at
random moments with a receiver failing 30 % of requests. Every wait is on an observable
event under a generous deadline.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import create_engine, text
from werkzeug import Request, Response

from fairlens_monitor.config.monitors import load_portfolio
from fairlens_monitor.ops.notify import message as m
from tests.helpers.wait import LineReader, stop, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
SECRET = "daemon-hook-secret-77"  # noqa: S105 (a test's own secret)
MONITORS = 10  # x 2 channels: 20 notifications to deliver across the kills


class Receiver:
    """Checks every request's signature; may hold the first one, or fail a share."""

    def __init__(
        self, server: HTTPServer, *, fail_share: float = 0.0, seed: int = 0, delay: float = 0.0
    ) -> None:
        self.lock = threading.Lock()
        self.seen: list[dict[str, Any]] = []
        self.hold_first = False
        self.holding = threading.Event()
        self.release = threading.Event()
        self.fail_share, self.random, self.delay = fail_share, random.Random(seed), delay
        for path in ("/hook", "/hook2"):
            server.expect_request(path, method="POST").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        body = request.get_data()
        ok = m.verify(
            SECRET.encode(),
            request.headers.get("X-FairLens-Timestamp", ""),
            body,
            request.headers.get("X-FairLens-Signature", ""),
            now=int(time.time()),
        )
        with self.lock:
            first = not self.seen
            fail = self.random.random() < self.fail_share
            self.seen.append(
                {
                    "ok": ok,
                    "key": request.headers.get("Idempotency-Key"),
                    "body": json.loads(body),
                    "status": 503 if fail else 200,
                }
            )
        time.sleep(self.delay)  # a slow receiver: deliveries spread over the daemons' lives
        if first and self.hold_first:
            self.holding.set()
            self.release.wait(60)  # the daemon is killed meanwhile: this answer goes nowhere
        if not ok:
            return Response("bad signature", status=401)
        return Response("no", status=503) if fail else Response("ok", status=200)


def write(tmp_path: Path, url: str, monitors: int = 1, channels: int = 1) -> Path:
    secret = tmp_path / "hook.secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    doc: dict[str, Any] = {
        "database": {"url": "sqlite:///var/fairlens.db"},
        "schedule": {"interval_seconds": 1.0, "misfire_grace_seconds": 5},
        "simulation": {"n_samples": 400, "seed": 7, "drift": 1.0},
        "thresholds": {"dir": 0.8, "gap": 0.2},
        "keys": {"dir": "var/keys"},
        "alerts": {"echo_plaintext": False},
        "notify": {
            "channels": {
                name: {"kind": "webhook", "url": url + suffix, "secret_file": str(secret)}
                for name, suffix in [("hook", ""), ("hook2", "2")][:channels]
            },
            "on": {"alert_raised": ["hook", "hook2"][:channels]},
            "backoff_seconds": 0.2,
            "max_backoff_seconds": 1.0,
            "max_attempts": 100,
        },
    }
    if monitors > 1:
        doc["monitors"] = {f"m{k}": {"simulation": {"seed": k}} for k in range(monitors)}
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(doc))  # JSON is YAML
    return config


class Daemon:
    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        self.out = LineReader(self.proc.stdout)

    def kill9(self) -> None:
        self.proc.kill()  # SIGKILL
        self.proc.wait(timeout=60)


def starts(config: Path) -> int:
    """How many daemons recorded their start (``daemon_started`` on the chain)."""
    found = rows(config, "SELECT count(*) FROM audit_events WHERE event_type = 'daemon_started'")
    return int(found[0][0]) if found else 0


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        stop(d.proc)


def rows(config: Path, sql: str) -> list[tuple[Any, ...]]:
    settings = next(iter(load_portfolio(config, env={}).values()))
    engine = create_engine(settings.database.url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    except Exception:
        return []  # not created yet
    finally:
        engine.dispose()


def chain_events(config: Path, kind: str) -> list[dict[str, Any]]:
    found = rows(config, f"SELECT canonical FROM audit_events WHERE event_type = '{kind}'")
    return [json.loads(c)["payload"] for (c,) in found]


def verify(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "verify"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_kill_9_mid_delivery_then_delivered_after_restart_with_the_same_key(
    tmp_path: Path, httpserver: HTTPServer, daemons: list[Daemon]
) -> None:
    receiver = Receiver(httpserver)
    receiver.hold_first = True
    config = write(tmp_path, httpserver.url_for("/hook"))
    first = Daemon(config)
    daemons.append(first)
    wait_for(receiver.holding.is_set, what="the daemon's first delivery")
    first.kill9()
    receiver.release.set()
    [(key, status, attempts)] = rows(
        config, "SELECT idempotency_key, status, attempts FROM notifications"
    )
    assert (status, attempts) == ("pending", 1)  # claimed, sent, never settled
    second = Daemon(config)
    daemons.append(second)
    wait_for(
        lambda: rows(config, "SELECT status FROM notifications") == [("delivered",)],
        what="delivery after the restart",
    )
    second.proc.terminate()
    second.proc.wait(timeout=120)
    assert [(s["key"], s["ok"]) for s in receiver.seen] == [(key, True), (key, True)]
    assert receiver.seen[0]["body"] == {
        **receiver.seen[1]["body"],
        "sent_at": receiver.seen[0]["body"]["sent_at"],
    }
    [delivered] = chain_events(config, "notification_delivered")
    assert delivered["attempt"] == 2
    assert delivered["idempotency_key"] == key
    assert chain_events(config, "notification_failed") == []
    result = verify(config)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.long
@pytest.mark.timeout(900)
def test_twenty_kill_9_with_a_receiver_failing_30_percent(
    tmp_path: Path, httpserver: HTTPServer, daemons: list[Daemon]
) -> None:
    receiver = Receiver(httpserver, fail_share=0.3, seed=20, delay=0.7)
    config = write(tmp_path, httpserver.url_for("/hook"), monitors=MONITORS, channels=2)
    chance = random.Random(2020)
    for k in range(20):
        d = Daemon(config)
        daemons.append(d)
        wait_for(lambda k=k: starts(config) > k, what="the daemon's start")  # type: ignore[misc]
        time.sleep(chance.uniform(0.0, 2.5))  # a random moment: the point of the test
        d.kill9()
    last = Daemon(config)
    daemons.append(last)
    wait_for(
        lambda: (
            (found := rows(config, "SELECT status FROM notifications"))
            and len(found) == 2 * MONITORS
            and {s for (s,) in found} == {"delivered"}
        ),
        timeout=600,
        what="every alert delivered",
    )
    last.proc.terminate()
    last.proc.wait(timeout=120)
    table = rows(config, "SELECT idempotency_key, audit_hash, attempts, monitor FROM notifications")
    assert sorted(mon for *_rest, mon in table) == sorted(2 * [f"m{k}" for k in range(MONITORS)])
    keys = {key: (audit, attempts) for key, audit, attempts, _mon in table}
    seen = Counter(s["key"] for s in receiver.seen)
    assert all(s["ok"] for s in receiver.seen)
    assert set(seen) == set(keys)  # duplicates only under a notification's own key
    for s in receiver.seen:
        assert s["body"]["audit"]["hash"] == keys[s["key"]][0]
    recorded = chain_events(config, "notification_delivered") + chain_events(
        config, "notification_failed"
    )
    by_key: dict[str, list[int]] = {}
    for e in recorded:
        by_key.setdefault(e["idempotency_key"], []).append(e["attempt"])
    for key, (_audit, attempts) in keys.items():
        numbers = by_key[key]
        assert len(numbers) == len(set(numbers))  # each attempt recorded once
        assert max(numbers) == attempts  # the last attempt (the delivery) is on the chain
        assert seen[key] <= attempts  # every send was a claimed, counted attempt
        # every attempt that was not cut short by a kill is on the chain
        assert len(numbers) >= attempts - 20
    assert sum(1 for e in recorded if e["status"] == "delivered") == 2 * MONITORS
    assert sum(1 for s in receiver.seen if s["status"] == 503) > 0  # the failures happened
    assert len(receiver.seen) > len(keys)  # and so did duplicates or retries
    result = verify(config)
    assert result.returncode == 0, result.stdout + result.stderr
