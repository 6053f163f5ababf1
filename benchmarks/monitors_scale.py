"""Many monitors in one daemon: are they all measured every interval, on PostgreSQL?

Creates a fresh PostgreSQL database (``fairlens_bench_scale_<random>``, dropped at the end
unless ``--keep``), a table of synthetic decisions for the SQL-source monitors, and a config
of N simulator monitors plus S SQL-source monitors, all at one interval; migrates it and runs
the real daemon (``fairlens-monitor run``) for ``--minutes``, then stops it with SIGTERM.
While it runs, the daemon's resident set size (VmRSS) is sampled every few seconds.

Reports, beside the issue's goals (issue 18, item 7):

- missed fires: ``cycle_missed`` events, and fires with no run (each monitor's expected
  count over the run minus its runs) — goal 0, or a documented maximum;
- daemon RSS over time (first sample after warm-up vs. last) — goal: flat (< 10 % growth);
- per-cycle time p50/p99 (``finished_at - started_at`` of the ok runs);
- commits/s of the whole daemon (runs + events per second of the run) — the audit chain's
  lock must not be the bottleneck: every monitor's cycle commits through it;
- database size per monitor-year (``pg_database_size`` growth / monitors / run fraction of
  a year, at this interval).

    python benchmarks/monitors_scale.py [--monitors 200] [--sql-monitors 5] \\
        [--interval 60] [--minutes 30] [--workers 4] [--keep]

Needs ``FAIRLENS_TEST_PG`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
Linux only (reads /proc). A short check: ``--monitors 20 --interval 10 --minutes 2``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from fairlens_monitor.store.db import make_engine
from fairlens_monitor.store.schema import upgrade

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("FAIRLENS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
YEAR = 365.25 * 86400
RSS_EVERY = 5.0  # seconds between RSS samples


def rss_kb(pid: int) -> int | None:
    """The process's resident set size in KiB (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def make_database(admin: sa.Engine) -> tuple[str, str]:
    """Create a fresh database; return its name and URL."""
    name = f"fairlens_bench_scale_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG).set(database=name).render_as_string(hide_password=False)
    return name, url


def make_decisions(url: str, rows: int) -> None:
    """A ``bench_decisions`` table the SQL monitors count (a group, a decision, a time)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE bench_decisions AS SELECT "
                "CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END AS grp, "
                "(random() < CASE WHEN g % 2 = 0 THEN 0.6 ELSE 0.5 END)::int AS approved, "
                "now() - (g % 86400) * interval '1 second' AS decided_at "
                "FROM generate_series(1, :n) AS g"
            ),
            {"n": rows},
        )
        conn.execute(sa.text("CREATE INDEX ON bench_decisions (decided_at)"))
    engine.dispose()


def config_for(url: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    monitors: dict[str, Any] = {f"sim_{k:03d}": None for k in range(args.monitors)}
    for k in range(args.sql_monitors):
        monitors[f"sql_{k:02d}"] = {
            "source": {
                "kind": "sql",
                "url": url,
                "table": "bench_decisions",
                "outcome": "approved",
                "timestamp": "decided_at",
                "window": "24h",
            },
            "measurement": {
                "protected_attributes": ["grp"],
                "privileged_value": "a",
                "unprivileged_value": "b",
            },
        }
    return {
        "database": {"url": url},
        "schedule": {"interval_seconds": args.interval, "misfire_grace_seconds": args.interval},
        "simulation": {"n_samples": args.n_samples, "seed": 7, "drift": 0.0},
        "thresholds": {"dir": 0.8, "gap": 0.2},
        "keys": {"dir": str(folder / "keys")},
        "alerts": {"echo_plaintext": False},
        "audit": {"anchor_file": str(folder / "anchor.jsonl")},
        "retention": {"daily": False},
        "daemon": {"workers": args.workers},
        "monitors": monitors,
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(url: str, started: float, stopped: float, args: argparse.Namespace) -> dict[str, Any]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        durations = [
            float(d)
            for (d,) in conn.execute(
                sa.text(
                    "SELECT extract(epoch FROM finished_at - started_at) FROM runs "
                    "WHERE status = 'ok'"
                )
            )
        ]
        per_monitor: dict[str, int] = {
            str(m): int(n)
            for m, n in conn.execute(
                sa.text("SELECT monitor, count(*) FROM runs GROUP BY monitor")
            ).all()
        }
        missed_events = conn.execute(
            sa.text("SELECT count(*) FROM audit_events WHERE event_type = 'cycle_missed'")
        ).scalar_one()
        events = conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one()
        failed = conn.execute(
            sa.text("SELECT count(*) FROM runs WHERE status = 'failed'")
        ).scalar_one()
        size = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
    engine.dispose()
    seconds = stopped - started
    total = args.monitors + args.sql_monitors
    expected = int(seconds // args.interval)  # fires per monitor in the run (at least)
    no_run = sum(max(0, expected - 1 - per_monitor.get(m, 0)) for m in monitor_names(args))
    runs = sum(per_monitor.values())
    return {
        "seconds": seconds,
        "runs": runs,
        "failed": int(failed),
        "missed_events": int(missed_events),
        "fires_without_run": no_run,
        "p50": percentile(durations, 0.5),
        "p99": percentile(durations, 0.99),
        "commits_per_s": (runs + int(events)) / seconds,
        "runs_per_s": runs / seconds,
        "db_bytes": int(size),
        "per_monitor_year": int(size) / total * (YEAR / seconds),
    }


def monitor_names(args: argparse.Namespace) -> list[str]:
    return [f"sim_{k:03d}" for k in range(args.monitors)] + [
        f"sql_{k:02d}" for k in range(args.sql_monitors)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--monitors", type=int, default=200)
    parser.add_argument("--sql-monitors", type=int, default=5)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--sql-rows", type=int, default=200_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    name, url = make_database(admin)
    folder = Path(tempfile.mkdtemp(prefix="fairlens-scale-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        make_decisions(url, args.sql_rows)
        config = folder / "config.yaml"
        config.write_text(yaml.safe_dump(config_for(url, args, folder)))
        engine = make_engine(url)
        upgrade(engine, url)
        engine.dispose()
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            base_size = conn.execute(
                sa.text("SELECT pg_database_size(current_database())")
            ).scalar_one()
        engine.dispose()
        proc = subprocess.Popen(
            [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started = time.monotonic()
        deadline = started + args.minutes * 60
        samples: list[tuple[float, int]] = []
        while time.monotonic() < deadline and proc.poll() is None:
            kb = rss_kb(proc.pid)
            if kb:  # None once gone, 0 before the interpreter has started
                samples.append((time.monotonic() - started, kb))
            time.sleep(RSS_EVERY)  # the sampling period of a measurement, not a wait
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=600)
        figures = measure(url, started, stopped, args)
        figures["per_monitor_year"] = (
            (figures["db_bytes"] - int(base_size))
            / (args.monitors + args.sql_monitors)
            * (YEAR / figures["seconds"])
        )
        report(args, figures, samples, code)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def report(
    args: argparse.Namespace, f: dict[str, Any], samples: list[tuple[float, int]], code: int
) -> None:
    total = args.monitors + args.sql_monitors
    print(
        f"{args.monitors} simulator + {args.sql_monitors} SQL monitors, every "
        f"{args.interval:g} s, {f['seconds'] / 60:.1f} min, {args.workers} workers "
        f"(daemon exit {code})"
    )
    print(
        f"runs: {f['runs']} ({f['failed']} failed); missed fires: {f['missed_events']} "
        f"cycle_missed events, {f['fires_without_run']} fires without a run   (goal: 0)"
    )
    print(
        f"per-cycle time: p50 {f['p50'] * 1000:.0f} ms, p99 {f['p99'] * 1000:.0f} ms "
        f"(budget: the interval shared by {total} monitors on {args.workers} workers = "
        f"{args.interval * args.workers / total * 1000:.0f} ms per cycle)"
    )
    print(
        f"commits/s: {f['commits_per_s']:.1f} (runs {f['runs_per_s']:.2f}/s; needed: "
        f"{total / args.interval:.2f} runs/s)"
    )
    print(f"database size per monitor-year: {f['per_monitor_year'] / 2**20:.1f} MiB")
    warm = [kb for t, kb in samples if t >= min(60.0, args.minutes * 60 / 3)]
    if warm:
        growth = (warm[-1] - warm[0]) / warm[0] * 100
        print(
            f"daemon RSS: {warm[0] / 1024:.0f} MiB after warm-up -> {warm[-1] / 1024:.0f} MiB "
            f"at the end ({growth:+.1f} %; goal < 10 %)"
        )
        step = max(1, len(samples) // 10)
        print(
            "RSS over time (s: MiB): "
            + ", ".join(f"{t:.0f}: {kb / 1024:.0f}" for t, kb in samples[::step])
        )


if __name__ == "__main__":
    main()
