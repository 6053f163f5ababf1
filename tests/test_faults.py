"""Crash and fault injection on real database files: kill -9, concurrent writers, a locked
database, a full disk, and key problems. After each, the trail must verify and no cycle may
be half written."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import event

from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.ops.daemon import Daemon
from fairlens_monitor.ops.verification import verify_store
from tests.factories import sqlite_file
from tests.helpers.wait import LineReader, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def db_path(settings: Settings) -> Path:
    return sqlite_file(settings)


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path(settings)) as conn:
        return conn.execute(sql).fetchall()


def assert_consistent(settings: Settings) -> int:
    """integrity_check ok, chain + checkpoints verify, no run half written; returns head seq."""
    assert query(settings, "PRAGMA integrity_check") == [("ok",)]
    repo = open_repository(settings, readonly=True)
    try:
        report = verify_store(
            repo,
            anchor_file=settings.audit.anchor_file,
            public_key=settings.keys.public_key,
        ).chain
    finally:
        repo.engine.dispose()
    assert report.intact, report.anomalies
    ok_runs = {r[0] for r in query(settings, "SELECT id FROM runs WHERE status = 'ok'")}
    readings: dict[int, int] = dict(
        query(settings, "SELECT run_id, count(*) FROM readings GROUP BY run_id")
    )
    assert readings == dict.fromkeys(ok_runs, 2), "a run without exactly its two readings"
    completed = {
        json.loads(p)["run_id"]
        for (p,) in query(
            settings, "SELECT payload FROM audit_events WHERE event_type = 'cycle_completed'"
        )
    }
    assert completed == ok_runs, "an ok run without its audit event, or the reverse"
    alerts = {a for (a,) in query(settings, "SELECT id FROM alerts")}
    raised = {
        json.loads(p)["alert_id"]
        for (p,) in query(
            settings, "SELECT payload FROM audit_events WHERE event_type = 'alert_raised'"
        )
    }
    assert alerts == raised
    return report.head_seq


def start_daemon(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )


FAST = {
    "schedule": {"interval_seconds": 0.02},
    "simulation": {"drift": 0.9, "n_samples": 200},
    "audit": {"checkpoint_every": 7},
}


def start_watched(config: Path) -> tuple[subprocess.Popen[str], LineReader]:
    """Start the daemon with its stdout collected line by line (to see its cycles commit)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    return proc, LineReader(proc.stdout)


def kill_moments(rng: random.Random, kills: int) -> list[tuple[str, float]]:
    """Where each kill lands, chosen by the seeded ``rng``: one in four during start-up (at a
    random point up to 0.5 s after the spawn: imports, opening the database, the schema
    check; or up to 0.2 s after the "running every" line: the first cycle), the others just
    after the k-th cycle of that start committed (k from 1 to 8, a random 0-40 ms later:
    inside a cycle or between two, 20 ms apart)."""
    moments: list[tuple[str, float]] = []
    for i in range(kills):
        if i % 4 == 0:
            moments.append(
                rng.choice([("spawn", rng.uniform(0, 0.5)), ("started", rng.uniform(0, 0.2))])
            )
        else:
            moments.append((f"cycle {rng.randint(1, 8)}", rng.uniform(0, 0.04)))
    return moments


def printed_or_exited(
    out: LineReader, text: str, n: int, proc: subprocess.Popen[str]
) -> Callable[[], bool]:
    return lambda: out.count(text) >= n or proc.poll() is not None


@pytest.mark.timeout(900)  # twenty daemon starts: minutes on a busy machine, seconds idle
def test_kill_9_at_random_moments_never_half_writes(
    write_config: Callable[..., Path], make_settings: Callable[..., Settings]
) -> None:
    config, settings = write_config(FAST), make_settings(FAST)
    heads = []
    # Each kill waits for an observable event of that start (the process spawned, its
    # "running every" line, the k-th "[cycle" line printed after its commit), then a small
    # random offset: the moments hit start-up sometimes and running cycles mostly, on any
    # machine, without a window calibrated to how fast this one starts.
    for when, jitter in kill_moments(random.Random(20261123), 20):
        proc, out = start_watched(config)
        try:
            if when == "started":
                wait_for(printed_or_exited(out, "running every", 1, proc), what="the start line")
            elif when.startswith("cycle"):
                k = int(when.split()[1])
                wait_for(printed_or_exited(out, "[cycle", k, proc), what=f"{k} committed cycles")
            assert proc.poll() is None, f"the daemon exited before the kill: {out.lines[-5:]}"
            time.sleep(jitter)  # a random moment after the event, not a wait for anything
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            out.join()
        if (
            db_path(settings).exists()
            and query(settings, "SELECT count(*) FROM sqlite_master WHERE name = 'alembic_version'")
            == [(1,)]
            and query(settings, "SELECT count(*) FROM alembic_version") == [(1,)]
        ):
            heads.append(assert_consistent(settings))
    assert len(heads) >= 12, "most kills should land after the schema exists"
    assert heads[-1] > 50, "the daemon should have completed many cycles across the kills"
    assert heads == sorted(heads), "the chain only ever grows"
    print("chain heads after each kill:", heads)
    final = subprocess.run(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run", "--cycles", "3"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert final.returncode == 0, final.stderr
    assert assert_consistent(settings) > heads[-1]  # the next start continues the chain
    assert query(settings, "SELECT event_type FROM audit_events ORDER BY seq DESC LIMIT 1") == [
        ("daemon_stopped",)
    ]


@pytest.mark.timeout(900)  # 2 x 25 cycles: seconds idle, minutes on a busy machine
def test_two_concurrent_writers_form_one_linear_chain(
    write_config: Callable[..., Path], make_settings: Callable[..., Settings]
) -> None:
    # The writers contend for SQLite's write lock on purpose: each waits for the other's
    # commit (the event), under a deadline generous enough for a busy machine, instead of the
    # 5 s default that a starved writer can exceed there.
    overrides = {
        "simulation": {"drift": 0.9, "n_samples": 200},
        "audit": {"checkpoint_every": 9},
        "database": {"busy_timeout_ms": 120_000},
    }
    config, settings = write_config(overrides), make_settings(overrides)
    assert CliRunner().invoke(cli, ["--config", str(config), "db", "upgrade"]).exit_code == 0
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.once_loop", str(config), "25"],
            cwd=REPO,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for proc in writers:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
    assert query(settings, "SELECT count(*), min(status), max(status) FROM runs") == [
        (50, "ok", "ok")
    ]
    events = query(settings, "SELECT count(*), min(seq), max(seq) FROM audit_events")
    [(count, low, high)] = events
    assert (low, high) == (1, count), "seq must be dense: no fork, no lost event"
    assert assert_consistent(settings) == count


def hold_write_lock(path: Path, release: threading.Event, started: threading.Event) -> None:
    """Hold SQLite's write lock until ``release`` is set (a generous 60 s at most)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    started.set()
    release.wait(60)
    conn.execute("COMMIT")
    conn.close()


def test_database_locked_past_the_busy_timeout(
    make_settings: Callable[..., Settings], clock: Callable[[], datetime]
) -> None:
    settings = make_settings(
        {
            "database": {"busy_timeout_ms": 100},
            "schedule": {"interval_seconds": 0.15},
            "simulation": {"drift": 0.9},
        }
    )
    repo = open_repository(settings)
    lines: list[str] = []
    locked, release = threading.Event(), threading.Event()

    def emit(line: str) -> None:
        lines.append(line)
        if line.startswith("[cycle 0") and not locked.is_set():
            threading.Thread(
                target=hold_write_lock, args=(db_path(settings), release, locked), daemon=True
            ).start()
            locked.wait(60)  # the thread holds the lock: an event, generously bounded
        # hold the lock until two cycles have failed on it (an observable event, not a time
        # calibrated to this machine's speed), then let the daemon go on
        if sum("database is locked" in x for x in lines) >= 2:
            release.set()

    daemon = Daemon(
        settings,
        repo,
        open_cipher(settings, repo),
        open_signing_key(settings, repo),
        clock=clock,
        emit=emit,
        max_cycles=12,
    )
    stats = daemon.run()
    repo.engine.dispose()
    assert stats.cycles_failed >= 2
    assert stats.cycles_ok >= 3
    assert any("database is locked" in line for line in lines)
    failed = query(settings, "SELECT error FROM runs WHERE status = 'failed'")
    assert len(failed) == stats.cycles_failed  # recorded once the lock was gone
    assert {e for (e,) in failed} == {"OperationalError: database is locked"}
    statuses = [s for (s,) in query(settings, "SELECT status FROM runs ORDER BY started_at")]
    assert statuses[-1] == "ok"
    assert_consistent(settings)


def test_disk_full_then_space_returns(
    make_settings: Callable[..., Settings], clock: Callable[[], datetime]
) -> None:
    settings = make_settings({"schedule": {"interval_seconds": 0.05}, "simulation": {"drift": 0.9}})
    repo = open_repository(settings)
    cipher, signer = open_cipher(settings, repo), open_signing_key(settings, repo)
    disk = {"full": True}

    @event.listens_for(repo.engine, "connect")
    def _limit(dbapi_connection: Any, _record: Any) -> None:
        if disk["full"]:  # no page beyond what the file has now: like a full disk
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    repo.engine.dispose()
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        if sum("database or disk is full" in x for x in lines) == 3:
            disk["full"] = False  # space returns
            repo.engine.dispose()

    stats = Daemon(settings, repo, cipher, signer, clock=clock, emit=emit, max_cycles=8).run()
    repo.engine.dispose()
    assert stats.cycles_failed == 3
    assert stats.cycles_ok == 5
    failed = query(settings, "SELECT error FROM runs WHERE status = 'failed'")
    assert [e for (e,) in failed] == ["OperationalError: database or disk is full"] * 3
    assert_consistent(settings)


@pytest.mark.parametrize("problem", ["missing", "corrupt", "exposed"])
def test_signing_key_problems_refuse_to_start(
    write_config: Callable[..., Path], tmp_path: Path, problem: str
) -> None:
    config = write_config({"audit": {"checkpoint_every": 1}})
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    key = tmp_path / "var" / "keys" / "checkpoint_ed25519.key"
    if problem == "missing":
        key.unlink()
    elif problem == "corrupt":
        os.chmod(key, 0o600)
        key.write_text("-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n")
    else:
        key.chmod(0o644)
    result = runner.invoke(cli, ["--config", str(config), "run", "--cycles", "1"])
    assert result.exit_code == 2
    expected = {
        "missing": "signed checkpoints already exist",
        "corrupt": "corrupt",
        "exposed": "chmod 600",
    }[problem]
    assert expected in result.stderr
    assert not key.exists() or problem != "missing"  # never silently regenerated


def test_fernet_key_missing_with_stored_alerts_refuses_to_start(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config({"simulation": {"drift": 1.0}})
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    (tmp_path / "var" / "keys" / "fernet.key").unlink()
    result = runner.invoke(cli, ["--config", str(config), "run", "--cycles", "1"])
    assert result.exit_code == 2
    assert "would make them unreadable" in result.stderr
    assert not (tmp_path / "var" / "keys" / "fernet.key").exists()
