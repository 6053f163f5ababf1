"""What one cycle costs beyond generating its data, on a SQLite file with fsync.

Runs N cycles the way the daemon does (execute_cycle, then a signed checkpoint when one is
due) against a fresh SQLite database opened as the daemon opens it (WAL,
``synchronous=FULL``: every commit is fsynced). The simulated data of every cycle is
generated before the clock starts and handed to the cycle from a cache, so the times are the
monitor's own work: measurement and statistics, explanation, encryption, the transaction
with its readings, group rows, episode and audit events, and the checkpoints. For scale the
data generation and the pure measurement are timed too.

    python benchmarks/cycle_overhead.py [--cycles 500] [--n-samples 1000]
                                        [--checkpoint-seconds 60] [--history 0]
                                        [--no-attach]

Checkpoints are signed as the daemon signs them: inside the cycle's transaction when an
alert opens or resolves or ``--checkpoint-seconds`` passed (a tiny value, e.g. 1e-9, signs
one every cycle: the worst case), and every ``checkpoint_every`` events otherwise.

Each cycle is timed twice: wall time, and the process's CPU time (``time.process_time``),
which other work on a shared machine does not inflate. Interleaved with the cycles (one
after each), a bare fsynced commit — one small row inserted into a second SQLite file
opened the same way, ``BEGIN IMMEDIATE`` … ``COMMIT`` — is timed the same way: the floor
any durable cycle pays, under the same load at the same moments; the ratio of the two is
what to compare between runs.

``--history N`` first stores N earlier cycles (copies of one real cycle's run, readings and
group results, and N audit events whose hashes are not a valid chain: the benchmark never
verifies), so the cost of a cycle at a year of history can be compared with a fresh one.

Goals: p50 under 20 ms (issues 5 and 14); under 10 ms and flat in history (issue 17).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairlens_monitor.audit.chain import rfc3339  # noqa: E402
from fairlens_monitor.config.settings import load_settings  # noqa: E402
from fairlens_monitor.ops import measuring  # noqa: E402
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key  # noqa: E402
from fairlens_monitor.ops.audit_trail import checkpoint_due, write_checkpoint  # noqa: E402
from fairlens_monitor.ops.cycle import execute_cycle  # noqa: E402
from fairlens_monitor.ops.sealing import Sealer  # noqa: E402
from fairlens_monitor.sources.simulator import generate_loan_data, scenario_seed  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def build_history(db: Path, cycles: int) -> None:
    """Store ``cycles`` copies of the newest cycle's rows and as many (unchained) events."""
    with sqlite3.connect(db) as conn:
        run_cols = [r[1] for r in conn.execute("PRAGMA table_info(runs)") if r[1] != "id"]
        read_cols = [
            r[1]
            for r in conn.execute("PRAGMA table_info(readings)")
            if r[1] not in ("id", "run_id")
        ]
        (run_id,) = conn.execute("SELECT max(id) FROM runs").fetchone()
        base = conn.execute("SELECT max(seq) FROM audit_events").fetchone()[0] or 0
        runs = ", ".join(run_cols)
        reads = ", ".join(read_cols)
        for _ in range(cycles):
            cur = conn.execute(
                f"INSERT INTO runs ({runs}) SELECT {runs} FROM runs "  # noqa: S608
                "WHERE id = ?",
                (run_id,),
            )
            conn.execute(
                f"INSERT INTO readings (run_id, {reads}) SELECT ?, {reads} "  # noqa: S608
                "FROM readings WHERE run_id = ?",
                (cur.lastrowid, run_id),
            )
        conn.execute("UPDATE runs SET cycle_index = id - 1 WHERE status = 'ok'")
        conn.executemany(
            "INSERT INTO audit_events (seq, ts, event_type, actor, "
            "canonical, prev_hash, hash) VALUES (?, '2026-01-01T00:00:00Z', "
            "'history', 'bench', '{}', ?, ?)",
            ((base + 1 + i, f"{i:064x}", f"{i + 1:064x}") for i in range(cycles)),
        )


def bare_commit(conn: sqlite3.Connection) -> tuple[float, float]:
    """One fsynced commit of one small row: (wall, CPU) seconds."""
    t, c = time.perf_counter(), time.process_time()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t (x) VALUES ('x')")
    conn.execute("COMMIT")
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--checkpoint-seconds", type=float, default=60.0)
    parser.add_argument(
        "--no-attach",
        action="store_true",
        help="Leave the commit hook that seals other events off (to compare).",
    )
    parser.add_argument(
        "--history", type=int, default=0, help="store this many earlier cycles first"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fairlens-cycle-"))
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["simulation"]["n_samples"] = args.n_samples
    config["alerts"]["echo_plaintext"] = False
    config["audit"]["checkpoint_seconds"] = args.checkpoint_seconds
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    settings = load_settings(folder / "config.yaml", env={})
    from fairlens_monitor.store.db import make_engine, sqlite_path, upgrade

    engine = make_engine(settings.database.url)
    upgrade(engine, settings.database.url)
    engine.dispose()

    sim = settings.simulator()
    cache, generation = {}, []
    first = args.history + 1 if args.history else 0  # the first timed cycle's index
    indexes = [0, *range(first, first + args.cycles)] if args.history else range(args.cycles)
    for i in indexes:
        for scenario, level in (("reference", 0.0), ("monitored", sim.drift.level_at(i))):
            seed = scenario_seed(sim.seed, i, scenario)
            t = time.perf_counter()
            cache[(level, seed)] = generate_loan_data(sim.n_samples, level, seed=seed)
            generation.append(time.perf_counter() - t)

    def cached(n_samples: int, drift_level: float, seed: int) -> pd.DataFrame:
        return cache[(drift_level, seed)]

    # measure_cycle calls the name it imported into its own module; that module does not
    # re-export it, so the name is replaced through the module's namespace
    vars(measuring)["generate_loan_data"] = cached

    pure, pure_cpu = [], []
    for i in indexes[-min(args.cycles, 200) :]:
        t, c = time.perf_counter(), time.process_time()
        measuring.measure_cycle(settings, i)
        pure.append(time.perf_counter() - t)
        pure_cpu.append(time.process_time() - c)

    repo = open_repository(settings)
    cipher, signer = open_cipher(settings, repo), open_signing_key(settings, repo)
    sealer = Sealer.of(settings, signer)
    if not args.no_attach:  # as the daemon: events outside cycles are sealed by a hook
        sealer.attach(repo)
    if args.history:
        execute_cycle(settings, repo, cipher, clock=lambda: datetime.now(UTC), actor="daemon")
        t = time.perf_counter()
        build_history(sqlite_path(settings.database.url) or Path("not-sqlite"), args.history)
        print(f"stored {args.history:,} earlier cycles in {time.perf_counter() - t:.1f} s")
    bare = sqlite3.connect(folder / "bare.db", isolation_level=None)
    bare.execute("PRAGMA journal_mode = WAL")
    bare.execute("PRAGMA synchronous = FULL")
    bare.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT)")
    times, cpu, bare_wall, bare_cpu, alerts = [], [], [], [], 0
    for _ in range(args.cycles):
        t, c = time.perf_counter(), time.process_time()
        outcome = execute_cycle(
            settings, repo, cipher, clock=lambda: datetime.now(UTC), actor="daemon", sealer=sealer
        )
        if checkpoint_due(repo, settings.audit.checkpoint_every, head_seq=outcome.audit[-1].seq):
            write_checkpoint(
                repo, signer, anchor_file=settings.audit.anchor_file, ts=rfc3339(datetime.now(UTC))
            )
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        alerts += outcome.alert_id is not None
        wall_b, cpu_b = bare_commit(bare)
        bare_wall.append(wall_b)
        bare_cpu.append(cpu_b)
    checkpoints = repo.checkpoint_count()
    repo.engine.dispose()
    bare.close()

    def ms(values: list[float]) -> str:
        return (
            f"p50 {1000 * statistics.median(values):6.2f} ms   p95 "
            f"{1000 * percentile(values, 0.95):6.2f} ms   max {1000 * max(values):6.2f} ms"
        )

    print(
        f"{args.cycles} cycles of 2 x {args.n_samples} applicants, SQLite WAL + "
        f"synchronous=FULL ({settings.database.url})"
    )
    print(
        f"whole cycle without data generation  {ms(times)}   ({alerts} alerts opened, "
        f"{checkpoints} checkpoints signed; checkpoint_seconds {args.checkpoint_seconds:g})"
    )
    print(f"whole cycle, process CPU time        {ms(cpu)}")
    print(f"bare fsynced commit (interleaved)    {ms(bare_wall)}")
    print(f"bare fsynced commit, CPU time        {ms(bare_cpu)}")
    med = statistics.median
    print(
        f"cycle / bare commit, p50: wall {med(times) / med(bare_wall):.2f}x, "
        f"CPU {med(cpu) / med(bare_cpu):.2f}x"
    )
    print(f"  of which measure + detect (pure)   {ms(pure)}")
    print(f"  the same, process CPU time         {ms(pure_cpu)}")
    print(f"data generation (per scenario)       {ms(generation)}")


if __name__ == "__main__":
    main()
