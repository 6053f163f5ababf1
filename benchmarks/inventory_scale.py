"""How fast the page's landing view (the portfolio inventory) renders cold on a big store.

Builds (once, then reuses) a SQLite database at head holding 200 monitors × a year of hourly
cycles: 1,752,000 runs, 3,504,000 readings (two scenarios), their hourly rollup rows and a
few open alerts, written in SQL (``INSERT … SELECT`` over a recursive counter; the audit
chain is left empty: the inventory does not read it, and the page's verifier is stubbed).
Then times cold renders of the inventory through Streamlit's AppTest (caches cleared, a new
session each time) and the inventory query alone. Goal (issue 19): < 2 s cold.

    python benchmarks/inventory_scale.py [--dir DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairlens_monitor.store.db import make_engine  # noqa: E402
from fairlens_monitor.store.schema import upgrade  # noqa: E402

MONITORS = 200
HOURS = 24 * 365
GOAL_SECONDS = 2.0


def build(path: Path) -> None:
    """The database: every monitor's year of hourly runs, readings and rollup rows."""
    url = f"sqlite:///{path}"
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    upgrade(engine, url)
    engine.dispose()
    end = int(datetime.now(UTC).timestamp() // 3600)  # the current hour
    start = end - HOURS + 1
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.executescript(
            f"""
            CREATE TEMP TABLE hours(h INTEGER PRIMARY KEY);
            WITH RECURSIVE c(h) AS (SELECT {start} UNION ALL SELECT h + 1 FROM c WHERE h < {end})
            INSERT INTO hours SELECT h FROM c;
            CREATE TEMP TABLE names(i INTEGER PRIMARY KEY, name TEXT);
            WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {MONITORS - 1})
            INSERT INTO names SELECT i, printf('model_%03d', i) FROM c;
            INSERT INTO monitors (name, created_at, paused, schedule, interval_seconds)
              SELECT name, datetime({start} * 3600, 'unixepoch'), 0, 'every 3600s', 3600.0
              FROM names;
            """  # noqa: S608 - numbers computed here, no outside text
        )
        # one run per monitor and hour, in time order (ids grow with time, as a daemon writes)
        conn.execute(
            "INSERT INTO runs (monitor, cycle_index, actor, scheduled_for, started_at, "
            "finished_at, status, config_hash, code_version) "
            "SELECT n.name, h.h - ?, 'daemon', strftime('%Y-%m-%d %H:%M:%f000', h.h * 3600, "
            "'unixepoch'), strftime('%Y-%m-%d %H:%M:%f000', h.h * 3600, 'unixepoch'), "
            "strftime('%Y-%m-%d %H:%M:%f000', h.h * 3600 + 5, 'unixepoch'), "
            # a tenth of the monitors stopped two days ago: stale
            "CASE WHEN n.i % 10 = 9 AND h.h > ? - 48 THEN 'failed' ELSE 'ok' END, "
            "'bench', 'bench' FROM hours h CROSS JOIN names n ORDER BY h.h, n.i",
            (start, end),
        )
        for scenario, level in (("reference", "0.0"), ("monitored", "(n.i % 7) * 0.05")):
            conn.execute(
                "INSERT INTO readings (monitor, run_id, scenario, measured_at, source, "  # noqa: S608
                "protected_attribute, group_label, reference_label, group_applicants, "
                "group_approved, reference_applicants, reference_approved, group_rate, "
                "reference_rate, dir, gap, dir_threshold, gap_threshold, dir_alert, gap_alert, "
                "config_hash, code_version, verdict) "
                "SELECT r.monitor, r.id, ?, r.started_at, 'simulator', 'gender', 'Female', "
                f"'Male', 500, CAST(350 * (1 - {level}) AS INTEGER), 500, 350, "
                f"0.7 * (1 - {level}), 0.7, 1 - {level}, 0.7 * {level}, 0.8, 0.2, "
                f"1 - {level} < 0.8, 0.7 * {level} > 0.2, 'bench', 'bench', "
                f"CASE WHEN 1 - {level} < 0.8 THEN 'adverse' ELSE 'ok' END "
                "FROM runs r JOIN names n ON n.name = r.monitor ORDER BY r.id",
                (scenario,),
            )
        conn.execute(
            "INSERT INTO reading_rollups (monitor, scenario, bucket, first_at, last_at, "
            "first_reading_id, last_reading_id, readings, dir_n, dir_sum, dir_min, dir_max, "
            "gap_n, gap_sum, group_approved, group_applicants, reference_approved, "
            "reference_applicants, verdict_ok, verdict_adverse, verdict_inconclusive, "
            "verdict_no_data, alerts, dir_alerts, gap_alerts, drift_alerts) "
            "SELECT monitor, scenario, CAST(strftime('%s', measured_at) AS INTEGER) / 3600, "
            "measured_at, measured_at, id, id, 1, 1, dir, dir, dir, 1, gap, group_approved, "
            "group_applicants, reference_approved, reference_applicants, verdict = 'ok', "
            "verdict = 'adverse', 0, 0, verdict = 'adverse', dir_alert, gap_alert, 0 "
            "FROM readings"
        )
        conn.execute(
            "INSERT INTO alerts (monitor, run_id, reading_id, created_at, kind, token, key_id, "
            "state, verdict, dir) SELECT monitor, run_id, id, measured_at, 'dir', 'x', 'k', "
            "'open', 'adverse', dir FROM readings WHERE id IN (SELECT max(id) FROM readings "
            "WHERE scenario = 'monitored' AND verdict = 'adverse' GROUP BY monitor)"
        )
        conn.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench_inventory")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder: Path = args.dir
    db = folder / "inventory.db"
    if not db.exists():
        began = time.perf_counter()
        build(db)
        print(f"built {db} in {time.perf_counter() - began:.0f} s")
    with sqlite3.connect(db) as conn:
        counts = [
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
            for t in ("monitors", "runs", "readings", "reading_rollups")
        ]
    print(
        f"monitors {counts[0]:,}, runs {counts[1]:,}, readings {counts[2]:,}, "
        f"rollup rows {counts[3]:,}; {db.stat().st_size / 1e9:.2f} GB"
    )
    config = folder / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite:///{db}"},
                "keys": {"dir": str(folder / "keys")},
                "simulation": {"n_samples": 1000, "seed": 7, "drift": 0.0},
                "schedule": {"interval_seconds": 3600},
                "thresholds": {"dir": 0.8, "gap": 0.2},
                "alerts": {"echo_plaintext": False},
            }
        )
    )
    query_only(config)
    renders(config, args.repeat)
    print(f"load average: {Path('/proc/loadavg').read_text().strip()} on {os.cpu_count()} CPUs")


def query_only(config: Path) -> None:
    """The inventory query alone (cold engine)."""
    from fairlens_monitor.config.settings import load_settings
    from fairlens_monitor.viewer import data, inventory

    settings = load_settings(config, env={})
    began = time.perf_counter()
    engine = data.open_readonly(settings)
    rows = inventory.inventory(engine, datetime.now(UTC))
    engine.dispose()
    took = time.perf_counter() - began
    stale = sum(r.stale for r in rows)
    print(f"inventory query: {len(rows)} monitors ({stale} stale) in {took:.3f} s")


def renders(config: Path, repeat: int) -> None:
    """Cold renders of the landing view, the page's background verifier stubbed out (it
    walks the chain in another process; the inventory does not wait for it)."""
    import streamlit as st
    from streamlit import config as st_config
    from streamlit.testing.v1 import AppTest

    os.environ["FAIRLENS_CONFIG"] = str(config)
    st_config.set_option("server.address", "127.0.0.1")
    page = str(ROOT / "fairlens_monitor" / "viewer" / "page.py")
    real_run = subprocess.run

    def stub(argv: Any, *args: Any, **kwargs: Any) -> Any:
        if "verify" in argv:
            doc = {
                "intact": True,
                "walk": "full",
                "count": 0,
                "anchored_seq": 0,
                "unanchored_events": 0,
                "last_verified_seq": 0,
            }
            return subprocess.CompletedProcess(argv, 0, json.dumps(doc), "")
        return real_run(argv, *args, **kwargs)

    # A server scans the installed packages for components once, at start; AppTest does it
    # on every run (~1 s here). Both figures are printed: with that scan, and without.
    from streamlit.components.v2.component_manager import BidiComponentManager

    scan = BidiComponentManager.discover_and_register_components
    subprocess.run = stub  # type: ignore[assignment]
    try:
        AppTest.from_file(page, default_timeout=120).run()  # imports and first-run costs
        seen: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeat):
            for scanned in (True, False):
                BidiComponentManager.discover_and_register_components = (  # type: ignore[method-assign]
                    scan if scanned else lambda *a, **k: None
                )
                st.cache_data.clear()
                st.cache_resource.clear()  # a new chain watcher and row ledger too
                at = AppTest.from_file(page, default_timeout=120)
                began = time.perf_counter()
                at.run()
                seen[scanned].append(time.perf_counter() - began)
                [table] = [d.value for d in at.dataframe if "Monitor" in d.value.columns]
                assert len(table) == MONITORS, len(table)
                assert not at.exception, [e.value for e in at.exception]
        for scanned, walls in seen.items():
            walls.sort()
            print(
                f"cold inventory render ({MONITORS} monitors x {HOURS:,} hourly cycles, "
                f"{'with' if scanned else 'without'} AppTest's component scan): best "
                f"{walls[0]:.2f} s, median {walls[len(walls) // 2]:.2f} s "
                f"(goal < {GOAL_SECONDS:g} s)"
            )
    finally:
        subprocess.run = real_run
        BidiComponentManager.discover_and_register_components = scan  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
