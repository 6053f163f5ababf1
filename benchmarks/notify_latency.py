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
``--workers`` is ``notify.workers``; ``--repo`` runs another checkout's daemon (before/after).

The floor beside the figures: a commit wakes the daemon's outbox worker at once, so the
expected latency is one signed POST plus the claim and settle transactions; without the
wake, half of ``ops.notify.worker.POLL_SECONDS`` more on average. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
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
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from fairlens_monitor.ops.notify import message as m
from fairlens_monitor.ops.notify.worker import POLL_SECONDS
from fairlens_monitor.store.outbox import Notification

REPO = Path(__file__).resolve().parents[1]
SECRET = b"bench-secret"
WATCH_SECONDS = 0.005  # how often the benchmark's reader looks for new notification rows


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
    parser.add_argument("--workers", type=int, help="notify.workers (default: the daemon's)")
    parser.add_argument(
        "--repo",
        type=Path,
        default=REPO,
        help="run the daemon of this checkout (a before/after on the same machine)",
    )
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
                **({} if args.workers is None else {"workers": args.workers}),
            },
            "monitors": {f"m{k:03d}": {"simulation": {"seed": k}} for k in range(args.monitors)},
        }
        config = folder / "config.yaml"
        config.write_text(json.dumps(doc))
        load = os.getloadavg()
        began = datetime.now(UTC)
        daemon = subprocess.Popen(
            [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
            cwd=args.repo,
            env={**os.environ, "PYTHONPATH": str(args.repo)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300 + (60 if args.burst else 0)
        seen: dict[str, float] = {}
        done_watching = threading.Event()
        watcher = threading.Thread(
            target=watch_commits, args=(folder / "var" / "fairlens.db", seen, done_watching)
        )
        watcher.start()
        try:
            while len(arrivals) < args.monitors and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            done_watching.set()
            watcher.join()
            daemon.terminate()
            daemon.wait(timeout=120)
            server.shutdown()
        engine = create_engine(f"sqlite:///{folder / 'var' / 'fairlens.db'}")
        with Session(engine) as s:
            rows = [
                (n.idempotency_key, n.created_at, n.last_attempt_at)
                for n in s.scalars(select(Notification))
            ]
        engine.dispose()
    done = [
        (created.timestamp(), seen[key], claimed.timestamp(), arrivals[key])
        for key, created, claimed in rows
        if key in arrivals
        and key in seen
        and isinstance(created, datetime)
        and isinstance(claimed, datetime)
    ]
    if not done:
        sys.exit("no notification arrived")
    latencies = sorted(arrived - created for created, _, _, arrived in done)
    p50, p99 = statistics.median(latencies), pct99(latencies)
    commits = sorted(arrived - committed for _, committed, _, arrived in done)
    waits = sorted(claimed - committed for _, committed, claimed, _ in done)
    sends = sorted(arrived - claimed for _, _, claimed, arrived in done)
    spread = max(c for _, c, _, _ in done) - min(c for _, c, _, _ in done)
    how = "burst (all at one minute)" if args.burst else f"interval {args.interval:g} s"
    print(
        f"monitors {args.monitors}, {how}, notify.workers {args.workers or 'default'}, "
        f"daemon of {args.repo}, "
        f"delivered {len(latencies)}"
    )
    print(f"signatures valid: {sum(checks)}/{len(checks)}")
    print(
        f"commit -> receipt p50 {statistics.median(commits) * 1000:.0f} ms, "
        f"p99 {pct99(commits) * 1000:.0f} ms, max {commits[-1] * 1000:.0f} ms "
        f"(commit: when a reader polling every {WATCH_SECONDS * 1000:g} ms first saw the row)"
    )
    print(
        f"cycle end (created_at) -> receipt p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
        f"(the figure measured before: includes the cycle's own wait for the write lock)"
    )
    print(
        f"  of which commit -> claim p50 {statistics.median(waits) * 1000:.0f} ms, "
        f"p99 {pct99(waits) * 1000:.0f} ms; claim -> receipt p50 "
        f"{statistics.median(sends) * 1000:.0f} ms, p99 {pct99(sends) * 1000:.0f} ms"
    )
    print(f"the alerts' commits spread over {spread * 1000:.0f} ms")
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


def watch_commits(db: Path, seen: dict[str, float], done: threading.Event) -> None:
    """Note when each notification row is first visible to a reader (~ its commit)."""
    while not db.exists() and not done.is_set():
        time.sleep(WATCH_SECONDS)
    engine = create_engine(f"sqlite:///{db}")
    try:
        while not done.is_set():
            # until the daemon has migrated the file there is no table to read
            with contextlib.suppress(OperationalError), engine.connect() as conn:
                keys = conn.exec_driver_sql("SELECT idempotency_key FROM notifications")
                now = time.time()
                for (key,) in keys:
                    seen.setdefault(key, now)
            time.sleep(WATCH_SECONDS)
    finally:
        engine.dispose()


def pct99(values: list[float]) -> float:
    """The 99th percentile of sorted ``values`` (nearest rank; the max below 100 values)."""
    return values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]


if __name__ == "__main__":
    main()
