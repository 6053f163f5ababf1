"""The outbox end to end: a real HTTP receiver that checks the signature, a real SMTP server.

An alert's notification is written in the alert's transaction and delivered by the worker
(``notify send`` here, the daemon in test_notify_daemon.py); every attempt is on the chain;
nothing leaves 127.0.0.1; neither the secret nor the explanation is stored in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pytest_httpserver import HTTPServer
from sqlalchemy import create_engine, text
from werkzeug import Request, Response

from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import Settings, load_settings
from fairlens_monitor.ops.app import open_cipher, open_repository
from fairlens_monitor.ops.notify import message as m
from fairlens_monitor.ops.notify.worker import deliver_due
from tests.conftest import merge
from tests.helpers.wait import wait_for


def identity(value: datetime) -> datetime:
    return value


SECRET = "whsec-9f2c41-never-stored"  # noqa: S105 (the test receiver's secret)


class Receiver:
    """A webhook receiver on 127.0.0.1 that checks the HMAC and fails on demand."""

    def __init__(self, server: HTTPServer) -> None:
        self.server, self.fail_next, self.status = server, 0, 503
        self.clock: Callable[[], float] = time.time  # what the receiver believes is now
        self.seen: list[dict[str, Any]] = []
        server.expect_request("/hook", method="POST").respond_with_handler(self.handle)
        server.expect_request("/chat", method="POST").respond_with_handler(self.chat)

    def handle(self, request: Request) -> Response:
        body = request.get_data()
        stamp = request.headers.get("X-FairLens-Timestamp", "")
        ok = m.verify(
            SECRET.encode(),
            stamp,
            body,
            request.headers.get("X-FairLens-Signature", ""),
            now=int(self.clock()),
        )
        self.seen.append(
            {"ok": ok, "key": request.headers.get("Idempotency-Key"), "body": json.loads(body)}
        )
        if not ok:
            return Response("bad signature", status=401)
        if self.fail_next:
            self.fail_next -= 1
            return Response("down", status=self.status)
        return Response("ok", status=200)

    def chat(self, request: Request) -> Response:
        self.seen.append({"chat": json.loads(request.get_data())})
        return Response("ok", status=200)


@pytest.fixture
def receiver(httpserver: HTTPServer) -> Receiver:
    assert httpserver.host in ("localhost", "127.0.0.1")
    return Receiver(httpserver)


class Setup:
    def __init__(self, config: Path, settings: Settings) -> None:
        self.config, self.settings = config, settings

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config), *args])

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        engine = create_engine(self.settings.database.url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def events(self, kind: str) -> list[dict[str, Any]]:
        repo = open_repository(self.settings, readonly=True)
        try:
            return [dict(r.payload) for r in repo.iter_records() if r.event_type == kind]
        finally:
            repo.engine.dispose()


@pytest.fixture
def setup(
    write_config: Callable[..., Path], tmp_path: Path, receiver: Receiver
) -> Callable[..., Setup]:
    secret = tmp_path / "hook.secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)

    def build(notify: dict[str, Any] | None = None, database: str | None = None) -> Setup:
        base = {
            "channels": {
                "hook": {
                    "kind": "webhook",
                    "url": receiver.server.url_for("/hook"),
                    "secret_file": str(secret),
                    "timeout_seconds": 5,
                },
                "chat": {"kind": "chat", "url": receiver.server.url_for("/chat")},
            },
            "on": {"alert_raised": ["hook"], "alert_acknowledged": ["hook"]},
            "page_url": "https://fairlens.example.org/page",
            "backoff_seconds": 1,
            "max_attempts": 3,
        }
        doc: dict[str, Any] = {"simulation": {"drift": 1.0}, "notify": merge(base, notify or {})}
        if database is not None:
            doc["database"] = {"url": database}
        config = write_config(doc)
        return Setup(config, load_settings(config, env={}))

    return build


def test_an_alert_is_delivered_signed_with_its_facts(
    setup: Callable[..., Setup], receiver: Receiver
) -> None:
    s = setup()
    assert s.cli("once").exit_code == 0
    [(alert_id,)] = s.rows("SELECT id FROM alerts")
    [raised] = s.events("alert_raised")
    [(key, status, audit_hash, attempts)] = s.rows(
        "SELECT idempotency_key, status, audit_hash, attempts FROM notifications"
    )
    assert status == "pending"
    assert attempts == 0
    repo = open_repository(s.settings, readonly=True)
    head = next(r for r in repo.iter_records() if r.event_type == "alert_raised")
    repo.engine.dispose()
    assert audit_hash == head.hash
    assert key == hashlib.sha256(f"{head.hash}:hook".encode()).hexdigest()
    assert raised["alert_id"] == alert_id

    sent = s.cli("notify", "send")
    assert sent.exit_code == 0, sent.output
    [got] = receiver.seen
    assert got["ok"]
    assert got["key"] == key
    body = got["body"]
    assert body["monitor"] == "default"
    assert body["event"] == "alert_raised"
    assert body["alert_id"] == alert_id
    assert body["audit"] == {"seq": head.seq, "hash": head.hash}
    assert body["verdict"] == "adverse"
    assert body["dir"]["value"] < 0.8
    assert body["dir"]["ci_low"] <= body["dir"]["value"] <= body["dir"]["ci_high"]
    assert len(body["groups"]) == 2
    assert all(g["applicants"] > 0 for g in body["groups"])
    assert body["page_url"] == "https://fairlens.example.org/page"
    assert "explanation" not in body
    assert s.rows("SELECT status, attempts, last_status FROM notifications") == [
        ("delivered", 1, "http 200")
    ]
    [delivered] = s.events("notification_delivered")
    assert delivered["channel"] == "hook"
    assert delivered["attempt"] == 1
    assert delivered["response"] == "http 200"
    assert delivered["reports_seq"] == head.seq
    assert s.cli("verify").exit_code == 0


def test_the_secret_and_the_explanation_never_reach_the_database(
    setup: Callable[..., Setup], receiver: Receiver
) -> None:
    s = setup({"include_explanation": True})
    assert s.cli("once").exit_code == 0
    assert s.cli("notify", "send").exit_code == 0
    explanation = receiver.seen[0]["body"]["explanation"]
    assert len(explanation) > 20
    repo = open_repository(s.settings)
    cipher = open_cipher(s.settings, repo)
    [(token,)] = s.rows("SELECT token FROM alerts")
    assert cipher.decrypt(token) == explanation  # decrypted at send time
    repo.engine.dispose()
    db = Path(s.settings.database.url.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert SECRET.encode() not in stored
    assert explanation[:40].encode() not in stored


def test_a_failing_receiver_is_retried_with_backoff_and_the_same_key(
    setup: Callable[..., Setup], receiver: Receiver
) -> None:
    s = setup()
    assert s.cli("once").exit_code == 0
    receiver.fail_next = 2
    repo = open_repository(s.settings)
    t0 = datetime.now(UTC)
    first = deliver_due(repo, s.settings.notify, now=lambda: t0, jitter=lambda: 0.0)
    assert [(a.attempt, a.status, a.response) for a in first] == [(1, "pending", "http 503")]
    # not due again before the backoff (1 s, jitter 0: 0.5 s) has passed
    assert deliver_due(repo, s.settings.notify, now=lambda: t0 + timedelta(seconds=0.4)) == []
    t1 = t0 + timedelta(seconds=0.6)
    second = deliver_due(repo, s.settings.notify, now=lambda: t1, jitter=lambda: 0.0)
    assert [(a.attempt, a.status) for a in second] == [(2, "pending")]
    assert deliver_due(repo, s.settings.notify, now=lambda: t1 + timedelta(seconds=0.9)) == []
    t2 = t1 + timedelta(seconds=1.1)  # second backoff: 2 s * [0.5, 1]
    third = deliver_due(repo, s.settings.notify, now=lambda: t2)
    assert [(a.attempt, a.status, a.response) for a in third] == [(3, "delivered", "http 200")]
    repo.engine.dispose()
    assert len({seen["key"] for seen in receiver.seen}) == 1
    assert len(receiver.seen) == 3
    failed = s.events("notification_failed")
    assert [(e["attempt"], e["status"], e["response"]) for e in failed] == [
        (1, "pending", "http 503"),
        (2, "pending", "http 503"),
    ]
    assert [e["attempt"] for e in s.events("notification_delivered")] == [3]


def test_dead_after_max_attempts_and_listed_as_failed(
    setup: Callable[..., Setup], receiver: Receiver
) -> None:
    s = setup({"max_attempts": 2})
    assert s.cli("once").exit_code == 0
    receiver.fail_next = 10
    repo = open_repository(s.settings)
    t = datetime.now(UTC)
    for k in range(3):
        deliver_due(repo, s.settings.notify, now=partial(identity, t + timedelta(seconds=3 * k)))
    repo.engine.dispose()
    assert s.rows("SELECT status, attempts FROM notifications") == [("dead", 2)]
    assert [e["status"] for e in s.events("notification_failed")] == ["pending", "dead"]
    listed = s.cli("notify", "list", "--failed", "--json")
    assert listed.exit_code == 0
    [row] = json.loads(listed.stdout)
    assert row["status"] == "dead"
    assert row["last_status"] == "http 503"
    assert row["channel"] == "hook"


def test_a_permanent_refusal_is_dead_at_once(
    setup: Callable[..., Setup], receiver: Receiver
) -> None:
    s = setup()
    assert s.cli("once").exit_code == 0
    receiver.fail_next, receiver.status = 1, 400
    assert s.cli("notify", "send").exit_code == 1
    assert s.rows("SELECT status, attempts, last_status FROM notifications") == [
        ("dead", 1, "http 400")
    ]


def test_an_acknowledgement_is_notified_in_its_transaction(
    setup: Callable[..., Setup], receiver: Receiver
) -> None:
    s = setup()
    assert s.cli("once").exit_code == 0
    [(alert_id,)] = s.rows("SELECT id FROM alerts")
    assert s.cli("alerts", "ack", str(alert_id), "--by", "risk-officer").exit_code == 0
    events = s.rows("SELECT event_type FROM notifications ORDER BY id")
    assert events == [("alert_raised",), ("alert_acknowledged",)]
    assert s.cli("notify", "send").exit_code == 0
    assert [seen["body"]["event"] for seen in receiver.seen] == [
        "alert_raised",
        "alert_acknowledged",
    ]
    assert receiver.seen[1]["body"]["alert_state"] == "acknowledged"


def test_no_route_no_row(setup: Callable[..., Setup]) -> None:
    s = setup({"on": {"alert_raised": None}})
    assert s.cli("once").exit_code == 0
    assert s.rows("SELECT count(*) FROM alerts") == [(1,)]
    assert s.rows("SELECT count(*) FROM notifications") == [(0,)]


def test_the_row_commits_with_the_alert_or_not_at_all(
    setup: Callable[..., Setup], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fairlens_monitor.store import outbox

    s = setup()

    def broken(*_args: Any, **_kwargs: Any) -> list[int]:
        raise RuntimeError("outbox insert failed")

    monkeypatch.setattr(outbox, "enqueue", broken)
    assert s.cli("once").exit_code != 0
    assert s.rows("SELECT count(*) FROM alerts") == [(0,)]
    assert s.rows("SELECT count(*) FROM audit_events WHERE event_type = 'alert_raised'") == [(0,)]


def test_source_failing_after_n_failed_runs_once_per_streak(
    setup: Callable[..., Setup], tmp_path: Path
) -> None:
    from fairlens_monitor.ops.cycle import FailedCycle, record_failure

    s = setup({"on": {"source_failing": ["hook"]}, "source_failing_after": 2})
    repo = open_repository(s.settings)
    now = datetime.now(UTC)
    for k in range(3):
        at = now + timedelta(seconds=k)
        record_failure(s.settings, repo, FailedCycle(at, at, "OSError: gone", "cli", None))
    repo.engine.dispose()
    assert s.rows("SELECT event_type, monitor FROM notifications") == [
        ("source_failing", "default")
    ]
    assert s.rows(
        "SELECT e.seq FROM notifications n JOIN audit_events e ON e.hash = n.audit_hash"
    ) == s.rows(
        "SELECT seq FROM audit_events WHERE event_type = 'cycle_failed' "
        "ORDER BY seq LIMIT 1 OFFSET 1"
    )


def test_notify_test_exit_codes(setup: Callable[..., Setup], receiver: Receiver) -> None:
    s = setup()
    ok = s.cli("notify", "test", "hook")
    assert ok.exit_code == 0, ok.output
    assert "delivered (http 200)" in ok.output
    assert receiver.seen[-1]["ok"]
    assert receiver.seen[-1]["body"]["event"] == "test"
    receiver.fail_next = 1
    failed = s.cli("notify", "test", "hook")
    assert failed.exit_code == 1
    assert "http 503" in failed.output
    unknown = s.cli("notify", "test", "pager")
    assert unknown.exit_code == 2
    assert "no channel 'pager'" in unknown.output
    chat = s.cli("notify", "test", "chat")
    assert chat.exit_code == 0
    blocks = receiver.seen[-1]["chat"]
    assert blocks["blocks"][0]["type"] == "header"
    assert "Test notification" in blocks["text"]
    assert s.rows("SELECT event_type, status FROM notifications ORDER BY id") == [
        ("test", "delivered"),
        ("test", "dead"),
        ("test", "delivered"),
    ]


def test_notify_test_on_a_bad_config_exits_2(write_config: Callable[..., Path]) -> None:
    config = write_config({"notify": {"channels": {"h": {"kind": "webhook", "url": "ftp://x"}}}})
    result = CliRunner().invoke(cli, ["--config", str(config), "notify", "test", "h"])
    assert result.exit_code == 2
    assert "notify.channels.h" in result.output


def test_a_replayed_body_under_another_timestamp_fails() -> None:
    body = m.body({"event": "alert_raised", "monitor": "x"})
    header = m.signature(SECRET.encode(), 1_800_000_000, body)
    expected = (
        "sha256=" + hmac.new(SECRET.encode(), b"1800000000." + body, hashlib.sha256).hexdigest()
    )
    assert header == expected
    assert m.verify(SECRET.encode(), "1800000000", body, header, now=1_800_000_100)
    assert not m.verify(SECRET.encode(), "1800000001", body, header, now=1_800_000_100)
    assert not m.verify(SECRET.encode(), "1800000000", body, header, now=1_800_000_301)
    assert not m.verify(b"other", "1800000000", body, header, now=1_800_000_000)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    delays = [m.backoff(a, base=5, cap=60, jitter=0.0) for a in range(1, 7)]
    assert delays == [2.5, 5.0, 10.0, 20.0, 30.0, 30.0]
    assert m.backoff(3, base=5, cap=60, jitter=0.999) == pytest.approx(20 * 0.9995, rel=1e-3)
    assert m.backoff(10_000, base=5, cap=60, jitter=1.0) == 60


def test_a_receiver_down_for_an_hour_gets_everything_when_back(
    setup: Callable[..., Setup], receiver: Receiver
) -> None:
    s = setup({"backoff_seconds": 5, "max_attempts": 16, "on": {"alert_acknowledged": ["hook"]}})
    assert s.cli("once").exit_code == 0
    [(alert_id,)] = s.rows("SELECT id FROM alerts")
    assert s.cli("alerts", "ack", str(alert_id), "--by", "ops").exit_code == 0
    receiver.server.stop()  # down: connections refused
    repo = open_repository(s.settings)
    start = datetime.now(UTC)
    now = start
    while now < start + timedelta(hours=1):
        deliver_due(repo, s.settings.notify, now=partial(identity, now), jitter=lambda: 0.5)
        now += timedelta(seconds=30)
    down = s.rows("SELECT status, attempts, last_status FROM notifications ORDER BY id")
    assert [r[0] for r in down] == ["pending", "pending"]
    assert all(8 <= r[1] < 16 and r[2].startswith("network") for r in down)
    receiver.server.start()  # back, on the same port
    receiver.clock = lambda: now.timestamp()
    while s.rows("SELECT count(*) FROM notifications WHERE status = 'pending'") != [(0,)]:
        assert now < start + timedelta(hours=3), "not delivered within two hours of coming back"
        deliver_due(repo, s.settings.notify, now=partial(identity, now), jitter=lambda: 0.5)
        now += timedelta(seconds=30)
    repo.engine.dispose()
    assert s.rows("SELECT status FROM notifications") == [("delivered",), ("delivered",)]
    assert sorted(seen["body"]["event"] for seen in receiver.seen) == [
        "alert_acknowledged",
        "alert_raised",
    ]
    assert all(seen["ok"] for seen in receiver.seen)


def test_a_tampered_trail_is_notified_once_per_finding(
    setup: Callable[..., Setup], receiver: Receiver
) -> None:
    from fairlens_monitor.ops.chainwatch import ChainCheck
    from tests.conftest import tamper

    s = setup({"on": {"chain_failed": ["hook"]}})
    assert s.cli("once").exit_code == 0
    tamper(s.settings.database.url, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    lines: list[str] = []
    check = ChainCheck(s.settings, lines.append)
    report = check.run()
    assert report is not None
    assert not report.chain.intact
    assert s.rows(
        "SELECT event_type, status FROM notifications WHERE event_type = 'chain_failed'"
    ) == [("chain_failed", "pending")]
    check.run()  # the same finding again: no second notification
    assert s.rows("SELECT count(*) FROM notifications WHERE event_type = 'chain_failed'") == [(1,)]
    assert s.cli("notify", "send").exit_code == 0
    assert [seen["body"]["event"] for seen in receiver.seen if seen["ok"]] == [
        "alert_raised",
        "chain_failed",
    ]


def test_a_chain_failed_message_names_the_first_anomaly_never_a_value(
    setup: Callable[..., Setup], receiver: Receiver
) -> None:
    """A stored reading changed behind the chain's back: the webhook's JSON, the chat text
    and the e-mail text name where (table, row id, the seq that recorded it) and what
    kind; the changed value is in none of them."""
    from fairlens_monitor.ops.chainwatch import ChainCheck
    from tests.conftest import tamper

    s = setup({"on": {"alert_raised": [], "chain_failed": ["hook", "chat"]}})
    assert s.cli("once").exit_code == 0
    reading = s.rows("SELECT max(id) FROM readings")[0][0]
    tamper(s.settings.database.url, f"UPDATE readings SET dir = 0.7654321 WHERE id = {reading}")
    report = ChainCheck(s.settings, lambda _line: None).run()
    assert report is not None
    first = report.chain.anomalies[0]
    assert (first.kind, first.table, first.id) == ("row_modified", "readings", reading)
    assert isinstance(first.seq, int)
    assert s.cli("notify", "send").exit_code == 0
    hook = [seen["body"] for seen in receiver.seen if "body" in seen]
    chat = [seen["chat"] for seen in receiver.seen if "chat" in seen]
    assert len(hook) == len(chat) == 1
    body = hook[0]
    assert body["event"] == "chain_failed"
    assert body["anomaly"] == {
        "seq": first.seq,
        "kind": "row_modified",
        "table": "readings",
        "row_id": reading,
    }
    assert "audit" not in body  # no audit record is reported: the location is the anomaly's
    where = f"first anomaly at readings row {reading} (seq {first.seq}) (row_modified)"
    subject, text_body = m.email_text(body)
    assert subject.startswith("[FairLens] Audit chain verification FAILED")
    assert where in text_body
    assert where in json.dumps(chat[0])
    for sent in (json.dumps(body), text_body, json.dumps(chat[0])):
        assert "7654321" not in sent  # the value put there is never quoted


def test_a_chain_failed_message_for_a_broken_link_names_its_seq(
    setup: Callable[..., Setup], receiver: Receiver
) -> None:
    from fairlens_monitor.ops.chainwatch import ChainCheck
    from tests.conftest import tamper

    s = setup({"on": {"alert_raised": [], "chain_failed": ["hook"]}})
    assert s.cli("once").exit_code == 0
    tamper(s.settings.database.url, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    assert ChainCheck(s.settings, lambda _line: None).run() is not None
    assert s.cli("notify", "send").exit_code == 0
    (body,) = [seen["body"] for seen in receiver.seen]
    assert body["anomaly"] == {"seq": 2, "kind": "modified"}
    assert "first anomaly at seq 2 (modified)" in m.email_text(body)[1]
    assert "mallory" not in json.dumps(body)


def test_the_operations_guide_receiver_accepts_ours_and_refuses_skew(tmp_path: Path) -> None:
    """The receiver docs/OPERATIONS.md shows, run as written (its secret path and port
    swapped for the test's): our signed message in, a 301 s old one and a bad one out."""
    import re
    import socket
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    guide = (Path(__file__).resolve().parents[1] / "docs" / "OPERATIONS.md").read_text()
    section = guide.split("## Notifications: the outbox, and a receiver", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert code is not None
    secret = tmp_path / "receiver.secret"
    secret.write_text(SECRET)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = code.group(1).replace("/etc/receiver/fairlens.secret", str(secret))
    script = script.replace('("127.0.0.1", 8080)', f'("127.0.0.1", {port})')
    (tmp_path / "receiver.py").write_text(script)
    proc = subprocess.Popen(
        [sys.executable, "-u", str(tmp_path / "receiver.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )

    def post(stamp: int, signature: str | None = None, key: str = "k1") -> int:
        body = m.body({"title": "Fairness alert raised", "event": "alert_raised"})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/hook",
            data=body,
            method="POST",
            headers={
                "X-FairLens-Timestamp": str(stamp),
                "X-FairLens-Signature": signature or m.signature(SECRET.encode(), stamp, body),
                "Idempotency-Key": key,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except urllib.error.URLError:
            return 0  # not listening yet

    try:
        now = int(time.time())
        assert wait_for(lambda: post(now) or None, what="the receiver") == 200
        assert post(int(time.time()), key="k1") == 200  # a retry: accepted, acted on once
        assert post(int(time.time()) - 301, key="k2") == 401
        assert post(int(time.time()), signature="sha256=" + "0" * 64, key="k3") == 401
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert out.splitlines() == ["Fairness alert raised"]


def test_the_outbox_on_both_back_ends(
    setup: Callable[..., Setup], receiver: Receiver, backend_url: str
) -> None:
    s = setup(database=backend_url)
    assert s.cli("once").exit_code == 0
    [(alert_id,)] = s.rows("SELECT id FROM alerts")
    assert s.cli("alerts", "ack", str(alert_id), "--by", "ops").exit_code == 0
    receiver.fail_next = 1
    repo = open_repository(s.settings)
    t = datetime.now(UTC)
    first = deliver_due(repo, s.settings.notify, now=partial(identity, t), jitter=lambda: 0.0)
    assert [(a.attempt, a.status) for a in first] == [(1, "pending"), (1, "delivered")]
    later = t + timedelta(seconds=2)
    again = deliver_due(repo, s.settings.notify, now=partial(identity, later))
    assert [(a.attempt, a.status) for a in again] == [(2, "delivered")]
    repo.engine.dispose()
    assert s.rows("SELECT event_type, status, attempts FROM notifications ORDER BY id") == [
        ("alert_raised", "delivered", 2),
        ("alert_acknowledged", "delivered", 1),
    ]
    assert s.cli("verify").exit_code == 0
