"""How fast the trend page renders on a year of one-minute cycles.

Builds (once, then reuses) a database at revision 0012 holding 525,600 readings (262,800
cycles of two scenarios, one a minute) and a valid 262,800-event audit chain, then migrates
it to head (timed: revision 0014 fills the hourly rollup from the readings in SQL) — then
times, in one run:
the page's data queries for each time range, the 'all' history from the readings and from
the rollup side by side (interleaved, wall and process CPU), the chain verification the page
shows, and full renders of the page through Streamlit's AppTest with cold caches, 'all'
drawn from the readings (as before revision 0014) and from the rollup, interleaved.

    python benchmarks/viewer_scale.py [--dir DIR] [--repeat 3] [--no-verify]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from alembic import command

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairlens_monitor.audit.chain import GENESIS_HASH, build_record, rfc3339  # noqa: E402
from fairlens_monitor.config.settings import load_settings  # noqa: E402
from fairlens_monitor.fairness import stats  # noqa: E402
from fairlens_monitor.store.db import make_engine  # noqa: E402
from fairlens_monitor.store.schema import (  # noqa: E402
    alembic_config,
    current_revision,
    head_revision,
    upgrade,
)

CYCLES = 262_800  # x 2 scenarios = 525,600 readings: a year of one-minute readings


READING_COLUMNS = (
    "id, run_id, scenario, measured_at, source, drift_level, n_samples, seed, "
    "protected_attribute, group_label, reference_label, group_applicants, "
    "group_approved, reference_applicants, reference_approved, group_rate, "
    "reference_rate, dir, dir_reason, gap, dir_threshold, gap_threshold, dir_alert, gap_alert, "
    "config_hash, code_version, verdict, p_value, test, dir_ci_low, dir_ci_high, shortfall"
)


def build(path: Path) -> None:
    url = f"sqlite:///{path}"
    path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "0012")  # the revision before the rollup
    rng = np.random.default_rng(1)
    start = datetime.now(UTC) - timedelta(minutes=2 * CYCLES)
    runs, readings, events, prev = [], [], [], GENESIS_HASH
    groups: list[tuple[object, ...]] = []  # the reference group has no ratio, p or verdict
    drift = np.clip(np.linspace(-0.5, 1.0, CYCLES), 0, 1)
    for i in range(CYCLES):
        at = start + timedelta(minutes=2 * i)
        stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f")
        runs.append((i + 1, i, "daemon", stamp, stamp, stamp, "ok", "0" * 64, "bench"))
        for j, (scenario, level) in enumerate((("reference", 0.0), ("monitored", drift[i]))):
            reading_id = 2 * i + j + 1
            u = int(rng.binomial(500, 0.7 - 0.4 * level))
            p = int(rng.binomial(500, 0.7))
            c = stats.compare(u, 500, p, 500)
            verdict = stats.verdict(c, c.p_value, threshold=0.8, alpha=0.05, min_group_size=30)[0]
            ratio = c.ratio
            readings.append(
                (
                    reading_id,
                    i + 1,
                    scenario,
                    stamp,
                    "simulator",
                    level,
                    1000,
                    i,
                    "gender",
                    "Female",
                    "Male",
                    500,
                    u,
                    500,
                    p,
                    u / 500,
                    p / 500,
                    ratio,
                    None,
                    abs(p - u) / 500,
                    0.8,
                    0.2,
                    int(ratio is None or ratio < 0.8),
                    int(abs(p - u) / 500 > 0.2),
                    "0" * 64,
                    "bench",
                    verdict,
                    c.p_value,
                    c.test,
                    c.ci_low,
                    c.ci_high,
                    c.shortfall,
                )
            )
            groups.append(
                (reading_id, "Female", "compared", 500, u, u / 500, 0.5, ratio, c.p_value, verdict)
            )
            groups.append((reading_id, "Male", "reference", 500, p, p / 500, 0.5, None, None, None))
        rec = build_record(
            seq=i + 1,
            ts=rfc3339(at),
            event_type="cycle_completed",
            actor="daemon",
            payload={"run_id": i + 1},
            prev_hash=prev,
        )
        prev = rec.hash
        events.append(
            (
                rec.seq,
                rec.ts,
                rec.event_type,
                rec.actor,
                json.dumps(rec.payload, separators=(",", ":")),  # 0012 still has the column
                rec.canonical,
                rec.prev_hash,
                rec.hash,
            )
        )
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO runs (id, cycle_index, actor, scheduled_for, started_at, "
            "finished_at, status, config_hash, code_version) VALUES "
            "(?,?,?,?,?,?,?,?,?)",
            runs,
        )
        conn.executemany(
            f"INSERT INTO readings ({READING_COLUMNS}) VALUES "  # noqa: S608
            f"({','.join('?' * len(READING_COLUMNS.split(',')))})",
            readings,
        )
        conn.executemany(
            "INSERT INTO group_results (reading_id, label, role, applicants, "
            "approved, rate, share, impact_ratio, p_value, verdict) VALUES "
            "(?,?,?,?,?,?,?,?,?,?)",
            groups,
        )
        conn.executemany(
            "INSERT INTO audit_events (seq, ts, event_type, actor, payload, "
            "canonical, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)",
            events,
        )


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench-viewer-525k")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-verify", action="store_true", help="skip the chain verification")
    args = parser.parse_args()
    folder = args.dir
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "year.db"
    url = f"sqlite:///{db}"
    if not db.exists():
        t = time.perf_counter()
        build(db)
        print(f"built {db} ({db.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s")
    engine = make_engine(url)
    if current_revision(engine) != head_revision(url):
        wall, cpu = timed(lambda: upgrade(engine, url))
        print(
            f"migrated to {head_revision(url)} (rollup filled in SQL): "
            f"{wall:.2f} s, CPU {cpu:.2f} s"
        )
    engine.dispose()
    config = folder / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": url},
                "schedule": {"interval_seconds": 60},
                "simulation": {"n_samples": 1000, "seed": 1, "drift": 0.0},
                "thresholds": {"dir": 0.8, "gap": 0.2},
                "keys": {"dir": str(folder / "keys")},
                "audit": {"anchor_file": str(folder / "anchor.jsonl")},
            }
        )
    )
    settings = load_settings(config, env={})

    from fairlens_monitor.ops.verification import verify_store
    from fairlens_monitor.store.repository import Repository
    from fairlens_monitor.viewer import data

    with sqlite3.connect(db) as conn:
        n = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
        hours = conn.execute("SELECT count(*) FROM reading_rollups").fetchone()[0]
    print(f"readings: {n:,}; cycles: {CYCLES:,}; rollup rows: {hours:,}")
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    engine = data.open_readonly(settings)
    for name, span in data.RANGES.items():
        since = None if span is None else datetime.now(UTC) - span
        t = time.perf_counter()
        hist = data.history(engine, since=since, rollup=name in data.WIDE)
        data.latest(engine)
        data.alerts(engine, since=since)
        data.health(engine)
        source = "rollup" if name in data.WIDE else "readings"
        print(f"data for '{name}' ({source}): {time.perf_counter() - t:.3f} s, {len(hist)} points")
    sides: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(args.repeat):
        for rollup in (False, True):
            sides[rollup].append(timed(partial(data.history, engine, since=None, rollup=rollup)))
    for rollup, runs in sides.items():
        print(
            f"history('all') from the {'rollup  ' if rollup else 'readings'}: best wall "
            f"{min(w for w, _ in runs):.3f} s, best CPU {min(c for _, c in runs):.3f} s "
            f"({args.repeat} interleaved runs)"
        )
    print(
        "  ratio readings/rollup (CPU): "
        f"{min(c for _, c in sides[False]) / max(1e-9, min(c for _, c in sides[True])):.0f}x"
    )
    if args.no_verify:
        engine.dispose()
        renders(config, data, args.repeat)
        print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
        return
    t = time.perf_counter()
    report = verify_store(
        Repository(engine), anchor_file=settings.audit.anchor_file, public_key=folder / "none.pub"
    ).chain
    took = time.perf_counter() - t
    print(
        f"chain verification: {report.count:,} events in {took:.2f} s "
        f"({report.count / took:,.0f} events/s), intact={report.intact}"
    )
    engine.dispose()

    renders(config, data, args.repeat)
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")


def renders(config: Path, data: Any, repeat: int) -> None:
    """Cold full renders of 'all', from the readings (the page before revision 0014) and from
    the rollup, interleaved: ``repeat`` pairs with the page's background verifier stubbed out
    (its ``verify`` process costs a minute of CPU on this database and competes for the two
    cores), then one pair with the real verifier, as a fresh server runs."""
    import os
    import subprocess

    import streamlit as st
    from streamlit import config as st_config
    from streamlit.testing.v1 import AppTest

    os.environ["FAIRLENS_CONFIG"] = str(config)
    st_config.set_option("server.address", "127.0.0.1")  # `fairlens-monitor view`'s default
    page = str(ROOT / "fairlens_monitor" / "viewer" / "page.py")
    wide, real_run = data.WIDE, subprocess.run

    def stub(argv: Any, *args: Any, **kwargs: Any) -> Any:
        if "verify" in argv:  # the page's verifier: an instant intact verdict instead
            doc = {
                "intact": True,
                "count": 0,
                "anchored_seq": 0,
                "unanchored_events": 0,
                "last_verified_seq": 0,
            }
            return subprocess.CompletedProcess(argv, 0, json.dumps(doc), "")
        return real_run(argv, *args, **kwargs)

    AppTest.from_file(page, default_timeout=120).run()  # imports and first-run costs
    seen: dict[tuple[bool, bool], list[tuple[float, float]]] = {}
    for stubbed in [True] * repeat + [False]:
        for rollup in (False, True):
            data.WIDE = wide if rollup else frozenset()  # the page reads it
            subprocess.run = stub if stubbed else real_run  # type: ignore[assignment]
            st.cache_data.clear()
            st.cache_resource.clear()  # a new chain watcher too, as in a fresh server
            at = AppTest.from_file(page, default_timeout=120)
            at.query_params["monitor"] = "default"  # the monitor's page, not the inventory
            day = timed(at.run)
            at.sidebar.radio(key="range").set_value("all")
            took = timed(at.run)
            seen.setdefault((stubbed, rollup), []).append(took)
            print(
                f"cold render, 'all' from the {'rollup  ' if rollup else 'readings'}, verifier "
                f"{'stubbed' if stubbed else 'real   '}: wall {took[0]:.2f} s, CPU {took[1]:.2f} s "
                f"(the cold 'last day' render before it: {day[0]:.2f} s)"
                f"{' EXCEPTION' if [e for e in at.exception if not e.is_warning] else ''}"
            )
    data.WIDE, subprocess.run = wide, real_run
    for (stubbed, rollup), runs in seen.items():
        walls = sorted(w for w, _ in runs)
        print(
            f"cold 'all' render from the {'rollup  ' if rollup else 'readings'} (verifier "
            f"{'stubbed' if stubbed else 'real'}, {len(runs)} runs): best wall {walls[0]:.2f} s, "
            f"median wall {walls[len(walls) // 2]:.2f} s, best CPU {min(c for _, c in runs):.2f} s"
        )


if __name__ == "__main__":
    main()
