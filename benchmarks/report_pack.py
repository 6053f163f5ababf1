"""How long `report` takes to write an examiner's pack, and where the time goes.

Builds a SQLite database with N real hourly cycles of one monitor (``ops.sequence.run_portfolio``
with a fixed clock, drift ramping so alerts open), then times ``ops.report_pack.make_pack``
over the whole period, split into its steps, beside the floor it cannot beat: the project's
own whole-chain verification (``verify_store``) on the same database, which the pack runs
first. The pages (chart, HTML, PDF) cost about the same whatever N is; the verification and
the CSV files grow with it.

    python benchmarks/report_pack.py [--cycles 2000] [--dir DIR]

Goal (issue 19 item 10): the pack within 2x of the verification floor plus 10 s of pages.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.ops.report_pack import make_pack
from fairlens_monitor.ops.sequence import run_portfolio
from fairlens_monitor.ops.verification import verify_store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def main() -> None:
    """Build the database (once per folder), then time the pack and the floor."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="fairlens-report-bench-"))
    config = root / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": "sqlite:///var/fairlens.db"},
                "schedule": {"interval_seconds": 3600},
                "thresholds": {"dir": 0.8, "gap": 0.2},
                "simulation": {"n_samples": 1000, "seed": 7, "drift": 0.4},
                "keys": {"dir": "var/keys"},
                "audit": {"checkpoint_every": 50},
            }
        )
    )
    settings = load_settings(config, env={})
    repo = open_repository(settings)
    done = repo.completed_cycles()
    if done < args.cycles:
        signer = open_signing_key(settings, repo)
        cipher = open_cipher(settings, repo)
        started = time.perf_counter()
        for hour in range(done, args.cycles):
            at = T0 + timedelta(hours=hour)
            run_portfolio(
                {"default": settings},
                repo,
                cipher,
                signer,
                names=["default"],
                clock=lambda at=at: at,  # type: ignore[misc]
                actor="cli",
            )
        print(f"built {args.cycles - done} cycles in {time.perf_counter() - started:.1f} s")
    repo.engine.dispose()
    reader = open_repository(settings, readonly=True)
    anchor, public = settings.audit.anchor_file, settings.keys.public_key
    started = time.perf_counter()
    verify_store(
        reader,
        anchor_file=anchor,
        public_key=public,
        checkpoint_every=settings.audit.checkpoint_every,
    )
    floor = time.perf_counter() - started
    out = root / f"pack-{int(time.time())}"
    started = time.perf_counter()
    pack = make_pack(
        reader,
        monitor="default",
        start=T0,
        end=T0 + timedelta(hours=args.cycles),
        out=out,
        key_dir=settings.keys.dir,
        anchor_file=anchor,
        public_key=public,
        checkpoint_every=settings.audit.checkpoint_every,
        now=datetime.now(UTC),
    )
    total = time.perf_counter() - started
    reader.engine.dispose()
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    print(f"{args.cycles} cycles, {pack.readings} readings, chain head seq {pack.head_seq}")
    print(f"verification floor (verify_store): {floor:.2f} s")
    print(f"pack (make_pack, verification included): {total:.2f} s from {rfc3339(T0)}")
    goal = 2 * floor + 10
    print(f"goal: <= 2 x floor + 10 s = {goal:.2f} s -> {'met' if total <= goal else 'MISSED'}")
    print("files: " + ", ".join(f"{n} {s / 1024:.0f} KiB" for n, s in sorted(sizes.items())))


if __name__ == "__main__":
    main()
