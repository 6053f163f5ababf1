"""What the hourly rollup (``reading_rollups``, revision 0014) adds to a cycle.

Runs 2 x N cycles the way the daemon does (``execute_cycle`` on a SQLite file with WAL and
``synchronous=FULL``, the simulated data generated before the clock starts), alternating
cycles *with* the rollup upsert and cycles *without* it (``store.rollup.upsert`` replaced by
a no-op for those), so both halves run under the same load at the same moments. Prints the
p50 wall and process CPU time of each half and their difference, and the upsert's own time
(measured around the call inside the cycles that make it). The cycle's row digests cover
the rollup rows too; that cost is in the difference, not in the upsert's own time.

    python benchmarks/rollup_overhead.py [--cycles 300] [--n-samples 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairlens_monitor.config.settings import load_settings  # noqa: E402
from fairlens_monitor.ops import measuring  # noqa: E402
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key  # noqa: E402
from fairlens_monitor.ops.cycle import execute_cycle  # noqa: E402
from fairlens_monitor.ops.sealing import Sealer  # noqa: E402
from fairlens_monitor.sources.simulator import generate_loan_data, scenario_seed  # noqa: E402
from fairlens_monitor.store import rollup  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=300, help="cycles per half")
    parser.add_argument("--n-samples", type=int, default=1000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fairlens-rollup-"))
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.pop("monitors", None)  # one monitor: the demo's shared defaults
    config["simulation"]["n_samples"] = args.n_samples
    config["alerts"]["echo_plaintext"] = False
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    settings = load_settings(folder / "config.yaml", env={})

    sim = settings.simulator()
    cache: dict[tuple[float, int], pd.DataFrame] = {}
    for i in range(2 * args.cycles):
        for scenario, level in (("reference", 0.0), ("monitored", sim.drift.level_at(i))):
            seed = scenario_seed(sim.seed, i, scenario)
            cache[(level, seed)] = generate_loan_data(sim.n_samples, level, seed=seed)

    def cached(n_samples: int, drift_level: float, seed: int) -> pd.DataFrame:
        return cache[(drift_level, seed)]

    vars(measuring)["generate_loan_data"] = cached  # as benchmarks/cycle_overhead.py

    real = rollup.upsert
    own: list[tuple[float, float]] = []

    def measured(conn: Any, readings: Sequence[Any], monitor: str = "default") -> list[int]:
        t, c = time.perf_counter(), time.process_time()
        ids = real(conn, readings, monitor)
        own.append((time.perf_counter() - t, time.process_time() - c))
        return ids

    def skipped(conn: Any, readings: Sequence[Any], monitor: str = "default") -> list[int]:
        return []

    repo = open_repository(settings)
    cipher, signer = open_cipher(settings, repo), open_signing_key(settings, repo)
    sealer = Sealer.of(settings, signer)
    sealer.attach(repo)
    halves: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for i in range(2 * args.cycles):
        with_rollup = i % 2 == 0
        rollup.upsert = measured if with_rollup else skipped
        t, c = time.perf_counter(), time.process_time()
        execute_cycle(
            settings, repo, cipher, clock=lambda: datetime.now(UTC), actor="daemon", sealer=sealer
        )
        halves[with_rollup].append((time.perf_counter() - t, time.process_time() - c))
    rollup.upsert = real
    repo.engine.dispose()

    med = statistics.median

    def p50(values: list[tuple[float, float]]) -> tuple[float, float]:
        return 1000 * med(w for w, _ in values), 1000 * med(c for _, c in values)

    print(
        f"{args.cycles} + {args.cycles} interleaved cycles of 2 x {args.n_samples} applicants, "
        f"SQLite WAL + synchronous=FULL; load average {Path('/proc/loadavg').read_text().strip()}"
    )
    for label, key in (("with the rollup upsert   ", True), ("without (upsert a no-op)", False)):
        wall, cpu = p50(halves[key])
        print(f"cycle {label}: p50 wall {wall:6.2f} ms, p50 CPU {cpu:6.2f} ms")
    (w1, c1), (w0, c0) = p50(halves[True]), p50(halves[False])
    print(f"difference of the p50s: wall {w1 - w0:+.2f} ms, CPU {c1 - c0:+.2f} ms")
    wall, cpu = p50(own)
    print(f"the upsert alone (2 readings): p50 wall {wall:.3f} ms, p50 CPU {cpu:.3f} ms")


if __name__ == "__main__":
    main()
