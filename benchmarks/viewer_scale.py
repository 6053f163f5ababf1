"""How fast the trend page renders on a year of one-minute cycles.

Builds (once, then reuses) a database migrated to head holding 525,600 readings (262,800
cycles of two scenarios, one a minute) and a valid 262,800-event audit chain — then times,
in one run:
the page's data queries for each time range, the chain verification the page shows, and a
full render of the page through Streamlit's AppTest (cold cache).

    python benchmarks/viewer_scale.py [--dir DIR]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairlens_monitor.audit.chain import GENESIS_HASH, build_record, rfc3339  # noqa: E402
from fairlens_monitor.config.settings import load_settings  # noqa: E402
from fairlens_monitor.fairness import stats  # noqa: E402
from fairlens_monitor.store.db import make_engine, upgrade  # noqa: E402

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
    engine = make_engine(url)
    upgrade(engine, url)
    engine.dispose()
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
            "INSERT INTO audit_events (seq, ts, event_type, actor, "
            "canonical, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
            events,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench-viewer-525k")
    folder = parser.parse_args().dir
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "year.db"
    if not db.exists():
        t = time.perf_counter()
        build(db)
        print(f"built {db} ({db.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s")
    config = folder / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite:///{db}"},
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
    print(f"readings: {n:,}; cycles: {CYCLES:,}")
    engine = data.open_readonly(settings)
    for name, span in data.RANGES.items():
        since = None if span is None else datetime.now(UTC) - span
        t = time.perf_counter()
        hist = data.history(engine, since=since)
        data.latest(engine)
        data.alerts(engine, since=since)
        data.health(engine)
        print(f"data for '{name}': {time.perf_counter() - t:.3f} s, {len(hist)} points")
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

    import os

    from streamlit.testing.v1 import AppTest

    os.environ["FAIRLENS_CONFIG"] = str(config)
    for label in ("cold", "warm"):
        at = AppTest.from_file(
            str(ROOT / "fairlens_monitor" / "viewer" / "page.py"), default_timeout=120
        )
        if label == "cold":
            at.run()  # a first run fills Streamlit's caches; measure with them cleared
            import streamlit as st

            st.cache_data.clear()
            st.cache_resource.clear()  # a new chain watcher too, as in a fresh server
            at = AppTest.from_file(
                str(ROOT / "fairlens_monitor" / "viewer" / "page.py"), default_timeout=120
            )
        t = time.perf_counter()
        at.run()
        print(
            f"full page render, {label} cache ('last day'): {time.perf_counter() - t:.2f} s;"
            f" chain shown as: {[m.value for m in at.markdown if 'Audit chain' in m.value]}"
            f"{' EXCEPTION' if at.exception else ''}"
        )
        at.sidebar.radio(key="range").set_value("all")
        t = time.perf_counter()
        at.run()
        print(f"full page render, {label} cache ('all'): {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
