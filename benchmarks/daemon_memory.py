"""Does the daemon's memory stay flat? Runs the real daemon for many fast cycles.

Starts `fairlens-monitor run --cycles N` as a subprocess on a fresh SQLite database with a
short interval (the demo config, drift ramp and alerts included), samples its resident set
size (VmRSS in /proc) as cycles complete, and compares the size after warm-up with the size
at the end.

    python benchmarks/daemon_memory.py [--cycles 5000] [--interval 0.01] [--warmup 500]

Goal (issue 5): under 10 % growth after warm-up. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def completed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.Error:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--n-samples", type=int, default=1000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fairlens-memory-"))
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.pop("monitors", None)  # one monitor: the demo's shared defaults
    config["schedule"]["interval_seconds"] = args.interval
    config["simulation"]["n_samples"] = args.n_samples
    config["alerts"]["echo_plaintext"] = False
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    db = folder / "var" / "fairlens.db"
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fairlens_monitor",
            "--config",
            str(folder / "config.yaml"),
            "run",
            "--cycles",
            str(args.cycles),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    samples: list[tuple[int, int]] = []
    next_mark = 0
    while proc.poll() is None:
        done = completed(db)
        if done >= next_mark:
            size = rss_kb(proc.pid)
            if size is not None:
                samples.append((done, size))
            next_mark = done + max(1, args.cycles // 50)
        time.sleep(0.2)
    took = time.monotonic() - started
    warm = next(size for done, size in samples if done >= args.warmup)
    end = samples[-1][1]
    peak = max(size for _, size in samples)
    print(
        f"{completed(db):,} cycles in {took:.0f} s (interval {args.interval:g} s, "
        f"2 x {args.n_samples} applicants a cycle), exit {proc.returncode}"
    )
    for done, size in [*samples[:: max(1, len(samples) // 10)], samples[-1]]:
        print(f"  after {done:>6,} cycles: RSS {size / 1024:7.1f} MiB")
    print(
        f"RSS after warm-up ({args.warmup} cycles) {warm / 1024:.1f} MiB, at the end "
        f"{end / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB: growth "
        f"{100 * (end - warm) / warm:+.1f} %"
    )


if __name__ == "__main__":
    main()
