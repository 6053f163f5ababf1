"""Delivery latency of the outbox: alert commit → the receiver has it (issue 20).

Runs the real daemon (``fairlens-monitor run``) on a fresh SQLite database with N simulator
monitors at drift 1.0 (each raises one alert on its first cycle) and one webhook channel to
a receiver on 127.0.0.1 (the standard library's threaded HTTP server, checking each
signature). For every notification the latency is the receiver's arrival time minus the
row's ``created_at`` — the alert's cycle end, a moment before its transaction commits — so
it is commit → receipt plus that moment.

    python benchmarks/notify_latency.py [--monitors 40] [--interval 4] [--burst] [--workers 4]

Without ``--burst`` the first cycles are staggered over the interval (``--monitors 20
--interval 20``: one alert a second, each alone in the outbox). With ``--burst`` every
monitor fires at the same minute (``schedule.cron: "* * * * *"``), so N alerts commit within
the time the daemon's ``daemon.workers`` need for N cycles and wait in the outbox together.
``--workers`` is ``notify.workers``.

The floor beside the figures: a commit wakes the daemon's outbox worker at once, so the
expected latency is one signed POST plus the claim and settle transactions; without the
wake, half of ``ops.notify.worker.POLL_SECONDS`` more on average. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from fairlens_monitor.ops.notify import message as m
from fairlens_monitor.ops.notify.worker import POLL_SECONDS
from fairlens_monitor.store.outbox import Notification

REPO = Path(__file__).resolve().parents[1]
SECRET = b"bench-secret"


def receiver() -> tuple[ThreadingHTTPServer, dict[str, float], list[bool]]:
    arrivals: dict[str, float] = {}
    checks: list[bool] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            at = time.time()
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ok = m.verify(
                SECRET,
                self.headers.get("X-FairLens-Timestamp", ""),
                body,
                self.headers.get("X-FairLens-Signature", ""),
                now=int(at),
            )
            checks.append(ok)
            arrivals.setdefault(self.headers["Idempotency-Key"], at)
            self.send_response(200 if ok else 401)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, arrivals, checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=40)
    parser.add_argument("--interval", type=float, default=4.0)
    parser.add_argument("--burst", action="store_true", help="every monitor fires at once")
    parser.add_argument("--workers", type=int, default=4, help="notify.workers")
    args = parser.parse_args()
    schedule: dict[str, object] = (
        {"cron": "* * * * *", "misfire_grace_seconds": 30}
        if args.burst
        else {"interval_seconds": args.interval, "misfire_grace_seconds": 30}
    )
    server, arrivals, checks = receiver()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        secret = folder / "hook.secret"
        secret.write_bytes(SECRET)
        secret.chmod(0o600)
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        doc = {
            "database": {"url": "sqlite:///var/fairlens.db"},
            "schedule": schedule,
            "simulation": {"n_samples": 400, "seed": 7, "drift": 1.0},
            "thresholds": {"dir": 0.8, "gap": 0.2},
            "keys": {"dir": "var/keys"},
            "notify": {
                "channels": {"hook": {"kind": "webhook", "url": url, "secret_file": str(secret)}},
                "on": {"alert_raised": ["hook"]},
                "workers": args.workers,
            },
            "monitors": {f"m{k:03d}": {"simulation": {"seed": k}} for k in range(args.monitors)},
        }
        config = folder / "config.yaml"
        config.write_text(json.dumps(doc))
        load = os.getloadavg()
        began = datetime.now(UTC)
        daemon = subprocess.Popen(
            [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300 + (60 if args.burst else 0)
        try:
            while len(arrivals) < args.monitors and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            daemon.terminate()
            daemon.wait(timeout=120)
            server.shutdown()
        engine = create_engine(f"sqlite:///{folder / 'var' / 'fairlens.db'}")
        with Session(engine) as s:
            rows = [(n.idempotency_key, n.created_at) for n in s.scalars(select(Notification))]
        engine.dispose()
    latencies = sorted(
        arrivals[key] - created.timestamp()
        for key, created in rows
        if key in arrivals and isinstance(created, datetime)
    )
    if not latencies:
        sys.exit("no notification arrived")
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    how = "burst (all at one minute)" if args.burst else f"interval {args.interval:g} s"
    print(
        f"monitors {args.monitors}, {how}, notify.workers {args.workers}, "
        f"delivered {len(latencies)}"
    )
    print(f"signatures valid: {sum(checks)}/{len(checks)}")
    print(
        f"latency p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms"
    )
    print(
        "floor: a commit wakes the outbox worker (one POST + claim and settle); its poll "
        f"every {POLL_SECONDS:g} s is only the backstop"
    )
    after = os.getloadavg()
    print(f"started {began:%Y-%m-%d %H:%M:%S} UTC")
    print(
        f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, after: "
        f"{after[0]:.2f} {after[1]:.2f} {after[2]:.2f} ({os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
