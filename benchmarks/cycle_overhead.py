"""What one cycle costs beyond generating its data, at 0, 100k and 500k stored cycles.

Runs cycles the way the daemon does (execute_cycle, then a signed checkpoint when one is
due) against SQLite databases opened as the daemon opens them (WAL, ``synchronous=FULL``:
every commit is fsynced). The simulated data of every cycle is generated before the clock
starts and handed to the cycle from a cache, so the times are the monitor's own work:
measurement and statistics, explanation, encryption, the transaction with its readings,
group rows, episode and audit events, and the checkpoints.

    python benchmarks/cycle_overhead.py [--history 0,100000,500000] [--rounds 3]
                                        [--cycles 200] [--warmup 60] [--n-samples 1000]
                                        [--checkpoint-seconds 60] [--no-attach]

Each history size is built once (``benchmarks/cycle_history.py``: a template of real cycles
copied until N cycles are stored, every table a cycle reads grown with it) and cached under
``var/`` by N and the schema revision; every run copies the cached file. The sizes run
interleaved: in each round, one run per size (in a rotated order), each ``--warmup``
untimed cycles (the default ramp reaches its full drift, an alert episode is open: the same
steady state at every size) and then ``--cycles`` timed ones.

Each cycle is timed twice: wall time, and the process's CPU time (``time.process_time``),
which other work on a shared machine does not inflate. Interleaved with the cycles (one
after each), a bare fsynced commit — one small row inserted into a second SQLite file
opened the same way — is timed the same way: the floor any durable cycle pays, under the
same load at the same moments. The table gives, per size, the pooled percentiles and the
ratios to the 0-history run.

Goals (issue 17): wall p50 under 10 ms at every size; CPU p50 at 500k within 1.2x of 0.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cycle_history import (  # noqa: E402
    TEMPLATE_QUIET,
    TEMPLATE_RAMP,
    cached_history,
    copy_history,
)
from fairlens_monitor.audit.chain import rfc3339  # noqa: E402
from fairlens_monitor.config.settings import Settings, load_settings  # noqa: E402
from fairlens_monitor.ops import measuring  # noqa: E402
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key  # noqa: E402
from fairlens_monitor.ops.audit_trail import checkpoint_due, write_checkpoint  # noqa: E402
from fairlens_monitor.ops.cycle import (  # noqa: E402
    FailedCycle,
    execute_cycle,
    record_failure,
    utc_now,
)
from fairlens_monitor.ops.sealing import Sealer  # noqa: E402
from fairlens_monitor.sources.simulator import generate_loan_data, scenario_seed  # noqa: E402
from fairlens_monitor.store.schema import head_revision  # noqa: E402

REAL_DATA = generate_loan_data
CACHE: dict[tuple[float, int], pd.DataFrame] = {}


def cached(n_samples: int, drift_level: float, seed: int) -> pd.DataFrame:
    """The pre-generated data of a cycle (or, outside the cache, generated now)."""
    data = CACHE.get((drift_level, seed))
    return REAL_DATA(n_samples, drift_level, seed=seed) if data is None else data


# measure_cycle calls the name it imported into its own module; that module does not
# re-export it, so the name is replaced through the module's namespace
vars(measuring)["generate_loan_data"] = cached


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def settings_for(
    folder: Path, db: Path, keys: Path, anchor_file: Path, args: argparse.Namespace, **over: Any
) -> Settings:
    """Settings of the demo config on ``db``, with these keys and anchor file."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.pop("monitors", None)  # one monitor: the demo's shared defaults
    config["database"]["url"] = f"sqlite:///{db}"
    config["keys"]["dir"] = str(keys)
    config["audit"]["anchor_file"] = str(anchor_file)
    config["audit"]["checkpoint_seconds"] = over.get("checkpoint_seconds", args.checkpoint_seconds)
    config["simulation"]["n_samples"] = args.n_samples
    if "drift" in over:
        config["simulation"]["drift"] = over["drift"]
    config["alerts"]["echo_plaintext"] = False
    path = folder / f"config-{len(list(folder.glob('config-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_settings(path, env={})


def template(args: argparse.Namespace) -> Any:
    """The history's template: real cycles (see ``cycle_history``), one checkpoint each."""

    def run(db: Path) -> None:
        keys, anchor_file = db.with_suffix(".keys"), db.with_suffix(".anchor.jsonl")
        shutil.rmtree(keys, ignore_errors=True)
        anchor_file.unlink(missing_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="fairlens-template-"))
        ramp = settings_for(folder, db, keys, anchor_file, args, checkpoint_seconds=1e-9)
        quiet = settings_for(
            folder,
            db,
            keys,
            anchor_file,
            args,
            checkpoint_seconds=1e-9,
            drift={"mode": "constant", "level": 0.0},
        )
        repo = open_repository(ramp)
        cipher, sealer = open_cipher(ramp, repo), Sealer.of(ramp, open_signing_key(ramp, repo))
        for n in range(TEMPLATE_RAMP + TEMPLATE_QUIET):
            settings = ramp if n < TEMPLATE_RAMP else quiet
            execute_cycle(settings, repo, cipher, clock=utc_now, actor="daemon", sealer=sealer)
            if n == TEMPLATE_RAMP // 2:
                now = utc_now()
                record_failure(ramp, repo, FailedCycle(now, now, "Bench: failed", "daemon", None))
        repo.engine.dispose()
        shutil.rmtree(folder)

    return run


def bare_commit(conn: sqlite3.Connection) -> tuple[float, float]:
    """One fsynced commit of one small row: (wall, CPU) seconds."""
    t, c = time.perf_counter(), time.process_time()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t (x) VALUES ('x')")
    conn.execute("COMMIT")
    return time.perf_counter() - t, time.process_time() - c


Series = dict[str, list[float]]


def one_run(args: argparse.Namespace, history: Path | None) -> Series:
    """Warm-up and timed cycles on a copy of ``history`` (None: a fresh database)."""
    folder = Path(tempfile.mkdtemp(prefix="fairlens-cycle-"))
    db, anchor_file = folder / "fairlens.db", folder / "anchor.jsonl"
    keys = folder / "keys"
    if history is not None:
        copy_history(history, db)
        keys = history.with_suffix(".keys")
        shutil.copyfile(history.with_suffix(".anchor.jsonl"), anchor_file)
    settings = settings_for(folder, db, keys, anchor_file, args)
    repo = open_repository(settings)
    cipher, signer = open_cipher(settings, repo), open_signing_key(settings, repo)
    sealer = Sealer.of(settings, signer)
    if not args.no_attach:  # as the daemon: events outside cycles are sealed by a hook
        sealer.attach(repo)
    sim, start = settings.simulator(), repo.completed_cycles()
    CACHE.clear()
    for i in range(start, start + args.warmup + args.cycles):
        for scenario, level in (("reference", 0.0), ("monitored", sim.drift.level_at(i))):
            seed = scenario_seed(sim.seed, i, scenario)
            CACHE[(level, seed)] = REAL_DATA(sim.n_samples, level, seed=seed)
    bare = sqlite3.connect(folder / "bare.db", isolation_level=None)
    bare.execute("PRAGMA journal_mode = WAL")
    bare.execute("PRAGMA synchronous = FULL")
    bare.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT)")
    out: Series = {k: [] for k in ("wall", "cpu", "bare_wall", "bare_cpu", "alerts")}
    gc.collect()
    for n in range(args.warmup + args.cycles):
        t, c = time.perf_counter(), time.process_time()
        outcome = execute_cycle(
            settings, repo, cipher, clock=utc_now, actor="daemon", sealer=sealer
        )
        if checkpoint_due(repo, settings.audit.checkpoint_every, head_seq=outcome.audit[-1].seq):
            write_checkpoint(
                repo, signer, anchor_file=settings.audit.anchor_file, ts=rfc3339(datetime.now(UTC))
            )
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        wall_b, cpu_b = bare_commit(bare)
        if n >= args.warmup:
            for key, value in zip(
                out, (wall, cpu, wall_b, cpu_b, float(outcome.alert_id is not None)), strict=True
            ):
                out[key].append(value)
    out["stored"] = [float(start)]
    repo.engine.dispose()
    bare.close()
    shutil.rmtree(folder)
    return out


def report(sizes: list[int], runs: dict[int, list[Series]]) -> None:
    """Print the per-size table (pooled over rounds) with ratios to the first size."""
    med = statistics.median

    def pooled(n: int, key: str) -> list[float]:
        return [v for run in runs[n] for v in run[key]]

    base = sizes[0]
    print(
        "| stored cycles | wall p50 | wall p95 | wall p99 | CPU p50 | CPU p95 | "
        f"CPU / at {base:,} | wall / at {base:,} | bare commit p50 | bare commit p99 |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in sizes:
        wall, cpu, bare = pooled(n, "wall"), pooled(n, "cpu"), pooled(n, "bare_wall")
        stored = int(runs[n][0]["stored"][0])
        print(
            f"| {stored:,} | {1000 * med(wall):.2f} ms | {1000 * percentile(wall, 0.95):.2f} ms "
            f"| {1000 * percentile(wall, 0.99):.2f} ms | {1000 * med(cpu):.2f} ms "
            f"| {1000 * percentile(cpu, 0.95):.2f} ms "
            f"| {med(cpu) / med(pooled(base, 'cpu')):.3f} "
            f"| {med(wall) / med(pooled(base, 'wall')):.3f} | {1000 * med(bare):.2f} ms "
            f"| {1000 * percentile(bare, 0.99):.2f} ms |"
        )
    print("\nper round, CPU p50 (ms) and its ratio to the same round's first size:")
    for r in range(len(runs[base])):
        first = med(runs[base][r]["cpu"])
        cells = [
            f"{n:,}: {1000 * med(runs[n][r]['cpu']):.2f} ({med(runs[n][r]['cpu']) / first:.3f})"
            for n in sizes
        ]
        print(f"  round {r + 1}: " + "   ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--history", default="0,100000,500000", help="stored cycles, comma-separated"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=200, help="timed cycles per run")
    parser.add_argument("--warmup", type=int, default=60, help="untimed cycles first, per run")
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--checkpoint-seconds", type=float, default=60.0)
    parser.add_argument(
        "--no-attach",
        action="store_true",
        help="Leave the commit hook that seals other events off (to compare).",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.history.split(",")]
    revision = head_revision("sqlite://")
    files = {
        n: cached_history(ROOT / "var", n, revision, template(args)) if n else None for n in sizes
    }
    if args.rounds < 1:  # only build the cached histories
        return
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {' '.join(load)}; "
        f"{args.rounds} rounds x {len(sizes)} sizes, {args.warmup} warm-up + {args.cycles} "
        f"timed cycles of 2 x {args.n_samples} applicants each; SQLite WAL + synchronous=FULL"
    )
    runs: dict[int, list[Series]] = {n: [] for n in sizes}
    for r in range(args.rounds):
        for n in sizes[r % len(sizes) :] + sizes[: r % len(sizes)]:
            run = one_run(args, files[n])
            runs[n].append(run)
            med = statistics.median
            print(
                f"  round {r + 1}, {int(run['stored'][0]):>7,} stored: wall p50 "
                f"{1000 * med(run['wall']):6.2f} ms, CPU p50 {1000 * med(run['cpu']):6.2f} ms, "
                f"bare commit p50 {1000 * med(run['bare_wall']):5.2f} ms, "
                f"{int(sum(run['alerts']))} alerts opened",
                flush=True,
            )
    with open("/proc/loadavg") as handle:
        print(f"load average at the end {' '.join(handle.read().split()[:3])}\n")
    report(sizes, runs)


if __name__ == "__main__":
    main()
