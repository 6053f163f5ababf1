"""What one ``/metrics`` scrape costs with many monitors (issue 20).

Writes a config of N simulator monitors (one database: a fresh SQLite file, or with
``--pg`` a fresh PostgreSQL database, dropped at the end), starts the real daemon
(``fairlens-monitor run --metrics-port PORT``), waits until every monitor has ``--runs`` ok
runs, then scrapes ``/metrics`` ``--scrapes`` times one after another while the daemon keeps
running its cycles, and prints the scrape time p50/p99/max, the body's size and sample
count, and the machine's load average, beside the floor: a scrape must fit well inside
Prometheus's default 10 s scrape timeout — goal p99 < 250 ms at 200 monitors.

    python benchmarks/metrics_scrape.py [--monitors 200] [--interval 30] [--scrapes 50] [--pg]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import sqlalchemy as sa
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("FAIRLENS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
GOAL_P99_MS = 250.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ok_monitors(url: str, runs: int) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM (SELECT monitor FROM runs WHERE status = 'ok' "
                        "GROUP BY monitor HAVING count(*) >= :n) m"
                    ),
                    {"n": runs},
                ).scalar()
                or 0
            )
    except sa.exc.OperationalError:
        return 0  # not created yet
    finally:
        engine.dispose()


def cpu_per_scrape(url: str, monitors: int, repeat: int = 20) -> tuple[float, float]:
    """CPU ms (this process's, so independent of the machine's load) of one rendering of
    the daemon's registry over the same database: (p50, max) of ``repeat``."""
    from types import SimpleNamespace

    from prometheus_client import generate_latest

    from fairlens_monitor.ops.metrics import DaemonMetrics
    from fairlens_monitor.ops.runner import MonitorStats
    from fairlens_monitor.store.db import make_engine
    from fairlens_monitor.store.lease import Lease
    from fairlens_monitor.store.monitor_lease import MonitorLeases

    engine = make_engine(url, readonly=True)
    names = [f"m{i:04d}" for i in range(monitors)]
    daemon = SimpleNamespace(
        runners={n: SimpleNamespace(stats=MonitorStats(cycles_ok=3)) for n in names},
        lease=Lease(engine, lease_seconds=5, holder="bench"),
        leases=MonitorLeases(engine, lease_seconds=5, holder="bench", monitors=names),
        chain_check=SimpleNamespace(walked_at=None),
    )
    try:
        metrics = DaemonMetrics(daemon, engine)
        for name in names:
            for _ in range(3):
                metrics.observe(name, 0.1)
        costs = []
        for _ in range(repeat):
            began = time.process_time()
            generate_latest(metrics.registry)
            costs.append((time.process_time() - began) * 1000)
    finally:
        engine.dispose()
    return percentile(costs, 0.5), max(costs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--monitors", type=int, default=200)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=2, help="ok runs per monitor before scraping")
    ap.add_argument("--scrapes", type=int, default=50)
    ap.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fl-scrape-"))
    admin = None
    name = f"fairlens_bench_scrape_{uuid.uuid4().hex[:10]}"
    if args.pg:
        admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{folder / 'fairlens.db'}"
    config = {
        "database": {"url": url},
        "schedule": {"interval_seconds": args.interval, "misfire_grace_seconds": 60},
        "simulation": {"n_samples": 400, "seed": 7, "drift": 0.0},
        "thresholds": {"dir": 0.8, "gap": 0.2},
        "keys": {"dir": str(folder / "keys")},
        "audit": {"anchor_file": str(folder / "anchor.jsonl")},
        "alerts": {"echo_plaintext": False},
        "daemon": {"workers": 4},
        "monitors": {f"m{i:04d}": None for i in range(args.monitors)},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fairlens_monitor",
            "--config",
            str(path),
            "run",
            "--metrics-port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30 * args.interval + 600
        while ok_monitors(url, args.runs) < args.monitors:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the monitors did not all run in time")
            time.sleep(1.0)
        times: list[float] = []
        body = b""
        for _ in range(args.scrapes):
            began = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
                body = r.read()
            times.append((time.perf_counter() - began) * 1000)
        samples = sum(len(f.samples) for f in text_string_to_metric_families(body.decode()))
        load = os.getloadavg()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
        cpu_p50, cpu_max = cpu_per_scrape(url, args.monitors)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=300)
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    backend = "PostgreSQL" if args.pg else "SQLite"
    p99 = percentile(times, 0.99)
    print(f"{args.monitors} monitors on {backend}, {args.scrapes} scrapes while cycles run")
    print(f"  scrape ms: p50 {percentile(times, 0.5):.1f}  p99 {p99:.1f}  max {max(times):.1f}")
    print(f"  body {len(body) / 1024:.0f} KiB, {samples} samples")
    print(
        f"  CPU per scrape (in process, load-independent): p50 {cpu_p50:.1f} ms, "
        f"max {cpu_max:.1f} ms"
    )
    print(f"  load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")
    verdict = "ok" if p99 < GOAL_P99_MS else "OVER"
    print(f"  goal p99 < {GOAL_P99_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
