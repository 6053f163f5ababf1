"""What one cycle costs beyond generating its data, on a SQLite file with fsync.

Runs N cycles the way the daemon does (execute_cycle, then a signed checkpoint when one is
due) against a fresh SQLite database opened as the daemon opens it (WAL,
``synchronous=FULL``: every commit is fsynced). The simulated data of every cycle is
generated before the clock starts and handed to the cycle from a cache, so the times are the
monitor's own work: measurement and statistics, explanation, encryption, the transaction
with its readings, group rows, episode and audit events, and the checkpoints. For scale the
data generation and the pure measurement are timed too.

    python benchmarks/cycle_overhead.py [--cycles 500] [--n-samples 1000]
                                        [--checkpoint-seconds 60] [--no-attach]

Checkpoints are signed as the daemon signs them: inside the cycle's transaction when an
alert opens or resolves or ``--checkpoint-seconds`` passed (a tiny value, e.g. 1e-9, signs
one every cycle: the worst case), and every ``checkpoint_every`` events otherwise.

Goal (issue 5): p50 under 20 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairlens_monitor import measure  # noqa: E402
from fairlens_monitor.app import open_cipher, open_repository, open_signing_key  # noqa: E402
from fairlens_monitor.audit import rfc3339  # noqa: E402
from fairlens_monitor.config import load_settings  # noqa: E402
from fairlens_monitor.cycle import execute_cycle  # noqa: E402
from fairlens_monitor.sealing import Sealer  # noqa: E402
from fairlens_monitor.simulate import generate_loan_data, scenario_seed  # noqa: E402
from fairlens_monitor.trail import checkpoint_due, write_checkpoint  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--checkpoint-seconds", type=float, default=60.0)
    parser.add_argument("--no-attach", action="store_true",
                        help="Leave the commit hook that seals other events off (to compare).")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fairlens-cycle-"))
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["simulation"]["n_samples"] = args.n_samples
    config["alerts"]["echo_plaintext"] = False
    config["audit"]["checkpoint_seconds"] = args.checkpoint_seconds
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    settings = load_settings(folder / "config.yaml", env={})
    from fairlens_monitor.store.db import make_engine, upgrade

    engine = make_engine(settings.database.url)
    upgrade(engine, settings.database.url)
    engine.dispose()

    sim = settings.simulator()
    cache, generation = {}, []
    for i in range(args.cycles):
        for scenario, level in (("reference", 0.0), ("monitored", sim.drift.level_at(i))):
            seed = scenario_seed(sim.seed, i, scenario)
            t = time.perf_counter()
            cache[(level, seed)] = generate_loan_data(sim.n_samples, level, seed=seed)
            generation.append(time.perf_counter() - t)
    measure.generate_loan_data = lambda n, level, seed: cache[(level, seed)]  # type: ignore[assignment]

    pure = []
    for i in range(min(args.cycles, 200)):
        t = time.perf_counter()
        measure.measure_cycle(settings, i)
        pure.append(time.perf_counter() - t)

    repo = open_repository(settings)
    cipher, signer = open_cipher(settings, repo), open_signing_key(settings, repo)
    sealer = Sealer.of(settings, signer)
    if not args.no_attach:  # as the daemon: events outside cycles are sealed by a hook
        sealer.attach(repo)
    times, alerts = [], 0
    for _ in range(args.cycles):
        t = time.perf_counter()
        outcome = execute_cycle(settings, repo, cipher, clock=lambda: datetime.now(UTC),
                                actor="daemon", sealer=sealer)
        if checkpoint_due(repo, settings.audit.checkpoint_every,
                          head_seq=outcome.audit[-1].seq):
            write_checkpoint(repo, signer, anchor_file=settings.audit.anchor_file,
                             ts=rfc3339(datetime.now(UTC)))
        times.append(time.perf_counter() - t)
        alerts += outcome.alert_id is not None
    checkpoints = repo.checkpoint_count()
    repo.engine.dispose()

    def ms(values: list[float]) -> str:
        return (f"p50 {1000 * statistics.median(values):6.2f} ms   p95 "
                f"{1000 * percentile(values, 0.95):6.2f} ms   max {1000 * max(values):6.2f} ms")

    print(f"{args.cycles} cycles of 2 x {args.n_samples} applicants, SQLite WAL + "
          f"synchronous=FULL ({settings.database.url})")
    print(f"whole cycle without data generation  {ms(times)}   ({alerts} alerts opened, "
          f"{checkpoints} checkpoints signed; checkpoint_seconds {args.checkpoint_seconds:g})")
    print(f"  of which measure + detect (pure)   {ms(pure)}")
    print(f"data generation (per scenario)       {ms(generation)}")


if __name__ == "__main__":
    main()
