"""Concurrent writers and cold starts on both back ends: real processes, real databases.

Every wait here is on an observable event (a process exiting, a row committed, a line
printed) with a generous deadline, never a sleep sized to this machine.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from fairlens_monitor.audit.verify import verify_chain
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.errors import AlreadyRunningError
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.ops.cycle import run_cycle, utc_now
from fairlens_monitor.ops.daemon import Daemon as DaemonSession
from fairlens_monitor.store.db import instance_lock, sqlite_path
from fairlens_monitor.store.lease import FencedError, Lease
from tests.conftest import BASE_CONFIG, merge, query_url
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
RAMP = {
    "simulation": {
        "drift": {"mode": "ramp", "start": 0.0, "end": 1.0, "cycles": 60},
        "n_samples": 300,
    },
    "drift_detection": {"baseline_readings": 5},
}


def write(tmp_path: Path, url: str, overrides: dict[str, Any], name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(merge(BASE_CONFIG, {"database": {"url": url}, **overrides})))
    return path


def spawn(args: list[str], n: int) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]


def finish(procs: list[subprocess.Popen[str]], timeout: float = 240) -> list[tuple[int, str, str]]:
    outputs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


@pytest.mark.long
@pytest.mark.timeout(400)
def test_concurrent_once_processes_get_distinct_cycles_and_true_predecessors(
    backend_url: str, tmp_path: Path
) -> None:
    """4 processes x 25 `once` on one database: 100 distinct indexes, and the same drift
    statistics as the same 100 cycles run one after another."""
    config = write(tmp_path, backend_url, RAMP)
    done = finish(spawn(["-m", "tests.helpers.once_loop", str(config), "25"], 4))
    assert [code for code, _, _ in done] == [0] * 4, [err[-500:] for _, _, err in done]
    rows = query_url(
        backend_url,
        "SELECT r.cycle_index, g.seed, g.drift_statistic FROM runs r "
        "JOIN readings g ON g.run_id = r.id WHERE r.status = 'ok' "
        "AND g.scenario = 'monitored' ORDER BY r.cycle_index",
    )
    assert [r[0] for r in rows] == list(range(100))
    assert len({r[1] for r in rows}) == 100  # no seed measured twice
    # The same cycles run one by one in a fresh database: the statistic of each follows from
    # its true predecessor only if the concurrent run matches it exactly.
    alone = load_settings(
        write(tmp_path, f"sqlite:///{tmp_path / 'alone.db'}", RAMP, "alone.yaml"), env={}
    )
    repo = open_repository(alone)
    cipher = open_cipher(alone, repo)
    expected = [
        run_cycle(alone, repo, cipher, clock=utc_now, actor="cli").monitored for _ in range(100)
    ]
    repo.engine.dispose()
    assert [r[2] for r in rows] == [m.drift_statistic if m else None for m in expected]


def test_simultaneous_cold_starts_all_succeed(backend_url: str, tmp_path: Path) -> None:
    """Three `once` at once on an empty database and an empty key folder: all exit 0."""
    config = write(tmp_path, backend_url, {})
    done = finish(spawn(["-m", "fairlens_monitor", "--config", str(config), "once"], 3))
    assert [code for code, _, _ in done] == [0, 0, 0], [err for _, _, err in done]
    assert all("Traceback" not in err for _, _, err in done)
    assert query_url(backend_url, "SELECT count(DISTINCT cycle_index), count(*) FROM runs") == [
        (3, 3)
    ]
    keys = tmp_path / "var" / "keys"
    assert sorted(p.name for p in keys.iterdir()) == [
        "checkpoint_ed25519.key",
        "checkpoint_ed25519.pub",
        "fernet.key",
    ]


def test_simultaneous_daemon_starts_on_an_empty_postgresql(pg_url: str, tmp_path: Path) -> None:
    """Three `run --cycles 1` at once on an empty PostgreSQL database: all exit 0."""
    config = write(tmp_path, pg_url, {"leadership": {"lease_seconds": 2}})
    done = finish(
        spawn(["-m", "fairlens_monitor", "--config", str(config), "run", "--cycles", "1"], 3),
        timeout=120,
    )
    errors = [err for code, _, err in done if code != 0]
    assert not errors, errors
    assert all("IntegrityError" not in err and "Traceback" not in err for _, _, err in done)


def test_the_instance_lock_follows_symlinks_and_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "data" / "fairlens.db"
    real.parent.mkdir()
    real.write_bytes(b"")
    (tmp_path / "alias").symlink_to(real.parent)
    (tmp_path / "link.db").symlink_to(real)
    os.link(real, tmp_path / "hard.db")
    monkeypatch.chdir(tmp_path / "data")
    with instance_lock(f"sqlite:///{real}"):
        for other in (
            tmp_path / "alias" / "fairlens.db",
            tmp_path / "link.db",
            tmp_path / "hard.db",
            Path("fairlens.db"),
            Path("..") / "alias" / "fairlens.db",
        ):
            with pytest.raises(AlreadyRunningError), instance_lock(f"sqlite:///{other}"):
                pass
    with instance_lock(f"sqlite:///{tmp_path / 'link.db'}"):  # released: free again
        pass


def test_a_second_daemon_through_a_symlink_is_refused(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config({"schedule": {"interval_seconds": 0.2}})
    first = subprocess.Popen(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout is not None
        line = first.stdout.readline()  # printed once it holds the lock and the schema
        assert "running every" in line, line
        (tmp_path / "link.db").symlink_to(tmp_path / "var" / "fairlens.db")
        # An absolute path is taken as written (a relative one is resolved by the config).
        second = write_config(
            {"database": {"url": f"sqlite:///{tmp_path / 'link.db'}"}}, name="second.yaml"
        )
        refused = subprocess.run(
            [
                sys.executable,
                "-m",
                "fairlens_monitor",
                "--config",
                str(second),
                "run",
                "--cycles",
                "1",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert refused.returncode == 2, refused.stderr
        assert "already running" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    finally:
        first.terminate()
        first.communicate(timeout=60)


class Daemon:
    """A real `fairlens-monitor run` whose stdout lines are collected as they come."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
        self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def events(url: str, kind: str) -> list[dict[str, Any]]:
    rows = query_url(
        url, f"SELECT canonical FROM audit_events WHERE event_type = '{kind}' ORDER BY seq"
    )
    return [json.loads(str(c))["payload"] for (c,) in rows]  # the payload's only stored copy


def test_a_frozen_leader_is_replaced_and_cannot_write_when_it_wakes(
    pg_url: str, tmp_path: Path
) -> None:
    """SIGSTOP the leader: the standby takes over when the lease expires, records why and the
    fires nobody ran; SIGCONT: the old leader stands down and writes no cycle."""
    base = {"schedule": {"interval_seconds": 0.5}, "leadership": {"lease_seconds": 2}}
    first = write(tmp_path, pg_url, base)
    # The standby has other rules: it must not record them while it stands by.
    second = write(tmp_path, pg_url, merge(base, {"thresholds": {"dir": 0.75}}), "b.yaml")
    assert (
        subprocess.run(
            [sys.executable, "-m", "fairlens_monitor", "--config", str(first), "db", "upgrade"],
            cwd=REPO,
            capture_output=True,
            timeout=120,
            check=False,
        ).returncode
        == 0
    )
    leader = Daemon(first)
    standby: Daemon | None = None
    try:
        wait_for(lambda: leader.said("leading: this daemon"), what="the first leader")
        standby = Daemon(second)
        wait_for(
            lambda: standby is not None and standby.said("standby: another daemon"),
            what="the standby",
        )
        wait_for(
            lambda: query_url(pg_url, "SELECT count(*) FROM runs")[0][0] >= 2,
            what="the leader's cycles",
        )
        # the standby kept quiet (a change of a listed monitor's rules is monitor_changed)
        assert events(pg_url, "config_changed") == events(pg_url, "monitor_changed") == []
        leader.proc.send_signal(signal.SIGSTOP)
        takeover = wait_for(
            lambda: [e for e in events(pg_url, "daemon_leading") if e["pid"] == standby.proc.pid],
            what="the takeover",
        )
        assert "expired" in takeover[0]["reason"]
        assert takeover[0]["epoch"] == 2
        wait_for(
            lambda: standby is not None and standby.said("leading: this daemon"),
            what="the new leader's line",
        )
        # Now the standby's rules are in force, and the record says so.
        changed = events(pg_url, "monitor_changed")
        assert [c["key"] for c in changed[-1]["changes"]] == ["thresholds.dir"]
        assert changed[-1]["monitor"] == "default"
        missed = events(pg_url, "cycle_missed")
        assert any(m["reason"] == "no leader: takeover" for m in missed)
        runs_at_takeover = query_url(pg_url, "SELECT count(*) FROM runs")[0][0]
        wait_for(
            lambda: query_url(pg_url, "SELECT count(*) FROM runs")[0][0] >= runs_at_takeover + 2,
            what="the new leader's cycles",
        )
        leader.proc.send_signal(signal.SIGCONT)
        wait_for(
            lambda: leader.said("stood down: this daemon lost the lead"),
            what="the old leader standing down",
        )
        wait_for(
            lambda: query_url(pg_url, "SELECT count(*) FROM runs")[0][0] >= runs_at_takeover + 4,
            what="more cycles after the wake-up",
        )
    finally:
        leader.stop()
        if standby is not None:
            standby.stop()
    # One cycle per index: the woken leader committed nothing of its own.
    assert query_url(
        pg_url, "SELECT count(*) - count(DISTINCT cycle_index) FROM runs WHERE status = 'ok'"
    ) == [(0,)]
    repo = open_repository(load_settings(first, env={}), readonly=True)
    try:
        assert verify_chain(repo.iter_records(), repo.iter_links()).intact
    finally:
        repo.engine.dispose()


def test_a_leader_that_lost_the_lease_cannot_commit(pg_url: str, tmp_path: Path) -> None:
    """The fencing token: the epoch is checked inside the writing transaction."""
    settings = load_settings(write(tmp_path, pg_url, {"leadership": {"lease_seconds": 30}}), env={})
    old = open_repository(settings)
    new = open_repository(settings)
    a = Lease(old.engine, lease_seconds=30, holder="host:1:a")
    b = Lease(new.engine, lease_seconds=30, holder="host:2:b")
    a.install(old.sessions)
    b.install(new.sessions)
    try:
        assert a.tick() is not None
        assert a.leading
        assert b.tick() is None
        assert not b.leading
        with pytest.raises(FencedError):
            new.append_event("probe", "daemon", {}, ts="2026-01-01T00:00:00Z")
        old.append_event("by_a", "daemon", {}, ts="2026-01-01T00:00:00Z")
        # A freezes; its lease runs out (made to, here) and B takes over with epoch 2.
        with old.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE leadership SET acquired_at = now() - interval '60 s', "
                    "expires_at = now() - interval '1 s'"
                )
            )
        change = b.tick()
        assert change is not None
        assert change.epoch == 2
        assert "expired" in change.reason
        assert a.leading  # A, frozen, still believes it leads: its commit is refused
        with pytest.raises(FencedError, match="no longer leads"):
            old.append_event("late", "daemon", {}, ts="2026-01-01T00:00:01Z")
        assert not a.leading
        new.append_event("by_b", "daemon", {}, ts="2026-01-01T00:00:02Z")
        kinds = [
            r[0] for r in query_url(pg_url, "SELECT event_type FROM audit_events ORDER BY seq")
        ]
        assert "late" not in kinds
        assert kinds[-2:] == ["by_a", "by_b"]
    finally:
        old.engine.dispose()
        new.engine.dispose()


def test_fires_skipped_while_a_cycle_runs_are_recorded(
    sqlite_settings: Callable[..., Any], clock: Callable[[], Any]
) -> None:
    settings = sqlite_settings(
        {"schedule": {"interval_seconds": 0.1}, "database": {"busy_timeout_ms": 120000}}
    )
    repo = open_repository(settings)
    path = Path(str(sqlite_path(settings.database.url)))
    held = threading.Event()

    def hold() -> None:  # a long write elsewhere: the daemon's next cycle waits for it
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        wait_for(lambda: daemon.stats.missed >= 3, what="skipped fires")
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold)

    def emit(line: str) -> None:
        if line.startswith("[cycle") and not holder.is_alive() and not held.is_set():
            holder.start()
            held.wait(60)

    daemon = DaemonSession(
        {"default": settings},
        repo,
        open_cipher(settings, repo),
        open_signing_key(settings, repo),
        clock=clock,
        emit=emit,
        max_cycles=3,
    )
    daemon.run()
    holder.join()
    repo.engine.dispose()
    missed = events(settings.database.url, "cycle_missed")
    assert len(missed) >= 3
    assert all(m["reason"] == "the previous cycle was still running" for m in missed)


def test_missed_fires_of_a_takeover_are_listed_and_capped() -> None:
    from datetime import UTC, datetime, timedelta

    from fairlens_monitor.store.lease import missed_fires

    last = datetime(2026, 1, 1, tzinfo=UTC)
    assert missed_fires(None, last, 1.0, 100) == []
    assert missed_fires(last, last + timedelta(seconds=0.9), 1.0, 100) == []
    listed = missed_fires(last, last + timedelta(seconds=3.5), 1.0, 100)
    assert [when for when, _ in listed] == [last + timedelta(seconds=k) for k in (1, 2, 3)]
    capped = missed_fires(last, last + timedelta(hours=1), 1.0, 100)
    assert len(capped) == 101
    assert capped[-1][1] == "no leader: takeover (3500 more fires not listed one by one)"
