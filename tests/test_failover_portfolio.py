"""Three real daemons share 30 monitors on PostgreSQL; one is killed, one frozen (long).

``pytest -m long tests/test_failover_portfolio.py``. The daemons split the monitors (no one
over ``ceil(M/N) + 1``); ``kill -9`` one and ``SIGSTOP`` another: the survivor takes every
monitor within the lease, each monitor's fires nobody ran are ``cycle_missed`` events naming
it (at most one lease period's worth from the takeover), no (monitor, cycle index) is run
twice, and the frozen daemon, woken, is fenced and writes nothing for the monitors it lost.
Every wait is on an observable event (a row, a line) under a generous deadline.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fairlens_monitor.store.db import make_engine
from fairlens_monitor.store.schema import upgrade
from tests.conftest import BASE_CONFIG, merge, query_url
from tests.helpers.wait import LineReader, stop, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.long]
REPO = Path(__file__).resolve().parents[1]
MONITORS = [f"m{k:02d}" for k in range(30)]
INTERVAL, LEASE = 3.0, 4.0
LONG_WAIT = 300.0  # a busy 2-core machine runs 3 daemons × 30 monitors: minutes of margin


class Proc:
    """A real ``fairlens-monitor run`` with its output lines collected."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        self.out = LineReader(self.proc.stdout)

    @property
    def pid(self) -> int:
        return self.proc.pid


def migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine, url)
    finally:
        engine.dispose()


def holders(url: str) -> dict[str, str]:
    """monitor -> the pid (as text) of the daemon whose live lease it is under."""
    rows = query_url(
        url,
        "SELECT monitor, holder FROM monitor_leases "
        "WHERE holder IS NOT NULL AND expires_at > clock_timestamp()",
    )
    return {str(m): str(h).split(":")[1] for m, h in rows}


def ok_runs_since(url: str, since: datetime) -> Counter[str]:
    rows = query_url(
        url,
        f"SELECT monitor, count(*) FROM runs WHERE status = 'ok' AND started_at > "
        f"'{since.isoformat()}' GROUP BY monitor",
    )
    return Counter({str(m): int(n) for m, n in rows})


def server_now(url: str) -> datetime:
    value = query_url(url, "SELECT clock_timestamp()")[0][0]
    assert isinstance(value, datetime)
    return value


@pytest.mark.timeout(1800)  # minutes of generous waits on a busy 2-core machine
def test_three_daemons_thirty_monitors_kill_and_freeze(pg_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    doc = merge(
        BASE_CONFIG,
        {
            "database": {"url": pg_url},
            "schedule": {"interval_seconds": INTERVAL, "misfire_grace_seconds": 2},
            "simulation": {"n_samples": 200},
            "leadership": {"lease_seconds": LEASE},
            "daemon": {"workers": 4},
            "retention": {"daily": False},
            "monitors": dict.fromkeys(MONITORS),
        },
    )
    config.write_text(yaml.safe_dump(doc))
    migrate(pg_url)  # before the daemons: they start on a schema, not race to make one
    daemons = [Proc(config) for _ in range(3)]
    victim, sleeper, survivor = daemons
    try:
        # balanced: every monitor led by a live daemon, none over ceil(30 / 3) + 1
        def balanced() -> bool:
            led = holders(pg_url)
            per = Counter(led.values())
            return (
                len(led) == len(MONITORS)
                and len(per) == 3
                and max(per.values()) <= math.ceil(len(MONITORS) / 3) + 1
            )

        wait_for(balanced, LONG_WAIT, "the three daemons to share the 30 monitors")
        started = server_now(pg_url)
        wait_for(
            lambda: len(ok_runs_since(pg_url, started - timedelta(hours=1))) == len(MONITORS),
            LONG_WAIT,
            "a cycle of every monitor",
        )
        frozen_held = {m for m, pid in holders(pg_url).items() if pid == str(sleeper.pid)}
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=60)
        sleeper.proc.send_signal(signal.SIGSTOP)
        hit = server_now(pg_url)
        # the survivor takes every monitor once the two leases expire
        wait_for(
            lambda: (
                set(holders(pg_url).values()) == {str(survivor.pid)}
                and len(holders(pg_url)) == len(MONITORS)
            ),
            LONG_WAIT,
            "the survivor to lead every monitor",
        )
        wait_for(
            lambda: all(ok_runs_since(pg_url, hit)[m] >= 2 for m in MONITORS),
            LONG_WAIT,
            "two cycles of every monitor after the kill",
        )
        sleeper.proc.send_signal(signal.SIGCONT)
        woke = server_now(pg_url)
        if frozen_held:
            wait_for(
                lambda: sleeper.out.said("stood down: this daemon lost the lead of monitor"),
                LONG_WAIT,
                "the woken daemon to find itself fenced",
            )
        # it rejoins: the survivor gives back a share, and every monitor keeps running
        wait_for(
            lambda: str(sleeper.pid) in holders(pg_url).values(),
            LONG_WAIT,
            "the woken daemon to lead again",
        )
        wait_for(
            lambda: all(ok_runs_since(pg_url, woke)[m] >= 1 for m in MONITORS),
            LONG_WAIT,
            "a cycle of every monitor after the wake-up",
        )
        for d in (sleeper, survivor):
            d.proc.terminate()
        for d in (sleeper, survivor):
            assert d.proc.wait(timeout=LONG_WAIT) == 0
    finally:
        for d in daemons:
            if d.proc.poll() is None:
                d.proc.send_signal(signal.SIGCONT)
            stop(d.proc)
    assert_no_duplicate_cycles(pg_url)
    assert_missed_fires_recorded(pg_url)


def assert_no_duplicate_cycles(url: str) -> None:
    assert (
        query_url(
            url,
            "SELECT monitor, cycle_index FROM runs WHERE status = 'ok' "
            "GROUP BY monitor, cycle_index HAVING count(*) > 1",
        )
        == []
    )


def assert_missed_fires_recorded(url: str) -> None:
    """Every gap in a monitor's cycles is covered by cycle_missed events naming it, and a
    takeover listed at most one lease period's fires (plus the heartbeat and the fire
    the new leader's timer comes to)."""
    runs: dict[str, list[datetime]] = {}
    for monitor, started in query_url(
        url, "SELECT monitor, started_at FROM runs WHERE status = 'ok' ORDER BY started_at"
    ):
        runs.setdefault(str(monitor), []).append(started)
    missed: dict[str, list[dict[str, Any]]] = {}
    for (canonical,) in query_url(
        url, "SELECT canonical FROM audit_events WHERE event_type = 'cycle_missed' ORDER BY seq"
    ):
        payload = json.loads(str(canonical))["payload"]
        missed.setdefault(payload["monitor"], []).append(payload)
    assert set(runs) == set(MONITORS)
    step = timedelta(seconds=INTERVAL)
    bound = math.ceil((LEASE * 4 / 3 + 2 * INTERVAL) / INTERVAL)
    moved = 0
    for monitor, times in runs.items():
        events = missed.get(monitor, [])
        takeover = [e for e in events if e["reason"].startswith("no leader")]
        assert len(takeover) <= bound, (monitor, len(takeover))  # killed or frozen: once
        fires = sorted(datetime.fromisoformat(e["scheduled_for"]) for e in events)
        for a, b in itertools.pairwise(times):
            if b - a <= 2 * step:
                continue
            moved += 1
            within = [f for f in fires if a < f <= b]
            assert len(within) >= (b - a) // step - 2, (monitor, a, b, len(within))
    assert moved > 0, "the kill and the freeze left gaps to account for"
