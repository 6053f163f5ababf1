"""A standby daemon's ``/healthz`` on PostgreSQL: healthy beside a live leader, 503 with one
line once no daemon leads its monitor, healthy again once it leads (issue 20).

Two real ``fairlens-monitor run`` processes on one real PostgreSQL database
(``FAIRLENS_TEST_PG``), each serving ``/healthz`` on 127.0.0.1. A standby that *can* take a
frozen leader's monitor does so as soon as the lease expires (tests/test_concurrency.py), and
is then healthy as a leader; it reports "no live leader" only when it cannot take the
monitor either. Here an outside session holds the monitor's lease row (what a stuck
migration or an operator's open transaction does) while the leader is frozen with SIGSTOP:
the lease expires, nobody leads, and the standby says so; the row released, it takes over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.helpers.wait import LineReader, stop, wait_for
from tests.test_prometheus import free_port, get, health

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("FAIRLENS_TEST_PG"), reason="FAIRLENS_TEST_PG not set"),
]
REPO = Path(__file__).resolve().parents[1]
LEASE_SECONDS = 2  # the standby's verdict waits two lease times of no leader


def start(config: Path, port: int) -> tuple[subprocess.Popen[str], LineReader]:
    command = ("-m", "fairlens_monitor", "--config", str(config), "run", "--metrics-port")
    proc = subprocess.Popen(
        [sys.executable, *command, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    return proc, LineReader(proc.stdout)


def test_a_standby_is_healthy_beside_a_live_leader_and_503_with_none(
    write_config: Callable[..., Path], pg_url: str
) -> None:
    config = write_config(
        {
            "database": {"url": pg_url},
            "schedule": {"interval_seconds": 0.5, "misfire_grace_seconds": 5},
            "leadership": {"lease_seconds": LEASE_SECONDS},
            "monitors": {"cards": None},
        }
    )
    leader_port, standby_port = free_port(), free_port()
    leader, leader_out = start(config, leader_port)
    standby: subprocess.Popen[str] | None = None
    standby_out: LineReader | None = None
    admin = create_engine(pg_url)
    holder = None
    try:
        wait_for(lambda: leader_out.said("leading: this daemon"), what="the leader")
        wait_for(lambda: health(leader_port) == 200, what="the leader healthy")
        standby, standby_out = start(config, standby_port)
        reader = standby_out
        wait_for(lambda: reader.said("standby: another daemon"), what="the standby")
        wait_for(lambda: health(standby_port) == 200, what="the standby's endpoint")
        assert get(f"http://127.0.0.1:{standby_port}/healthz") == (200, "ok\n")

        leader.send_signal(signal.SIGSTOP)  # frozen: it stops renewing its lease
        holder = admin.connect()
        holder.execute(text("SELECT 1 FROM monitor_leases WHERE monitor = 'cards' FOR UPDATE"))

        def verdict() -> str | None:
            status, body = get(f"http://127.0.0.1:{standby_port}/healthz")
            return body if status == 503 else None

        body = str(wait_for(verdict, what="the standby's 503"))
        assert body.startswith(
            "unhealthy: standing by, but monitor cards has had no live leader for "
        ), body
        assert body.endswith("s\n")
        assert body.count("\n") == 1  # one line
        assert not reader.said("leading: this daemon")  # it could not take the monitor

        holder.rollback()  # the outside session lets go: the standby takes over
        holder.close()
        holder = None
        wait_for(lambda: reader.said("leading: this daemon"), what="the takeover")
        wait_for(lambda: health(standby_port) == 200, what="the new leader healthy")
        assert get(f"http://127.0.0.1:{standby_port}/healthz") == (200, "ok\n")
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
        admin.dispose()
        leader.send_signal(signal.SIGCONT)
        stop(leader)
        if standby is not None:
            stop(standby)
    leader_out.join()
    if standby_out is not None:
        standby_out.join()
