"""`measure` on a big CSV, whole process, beside its floor and fairlearn, in one run.

Each figure is a fresh process timed by ``os.wait4`` (wall, its own user+system CPU, its own
peak RSS), interleaved ``--repeat`` times, best of each printed:

- **floor**: a bare ``pyarrow.csv.read_csv`` of the columns ``measure`` needs (defaults: every
  core, types inferred), in a process that imports pyarrow and nothing else;
- **measure**: ``fairlens-monitor measure FILE --protected-attribute gender --privileged-value
  Male --outcome approved --label repaid`` (read, validate, count, statistics, report);
- **fairlearn**: pandas ``read_csv`` of the same columns, then ``demographic_parity_ratio`` and
  ``equalized_odds_difference`` (``--fairlearn-repeat`` runs, 0 to skip it: it takes minutes
  at 10M rows);
- ``--help`` and ``measure --help`` (start-up).

The CSV is the decision log of ``benchmarks/sources_scale.py`` (written once under
var/bench-sources). Goals (issue 17): measure within 1.5x the floor's wall time, peak RSS
< 300 MB, >= 30x faster than fairlearn whole-process, help < 0.4 s.

Every run's figures are printed with the load average at its start (the machine is shared:
absolute times move with load, the ratio of interleaved runs less), then the best of each
beside the floor with the ratio.

    python benchmarks/measure_csv.py [--rows 10000000] [--repeat 3] [--fairlearn-repeat 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["gender", "approved", "repaid"]
MEASURE = [
    "-m",
    "fairlens_monitor",
    "measure",
    "{csv}",
    "--protected-attribute",
    "gender",
    "--privileged-value",
    "Male",
    "--outcome",
    "approved",
    "--label",
    "repaid",
]
FLOOR = (
    "import sys, pyarrow.csv as c\n"
    "t = c.read_csv(sys.argv[1], convert_options=c.ConvertOptions(include_columns=sys.argv[2:]))\n"
    "assert t.num_rows > 0\n"
)
FAIRLEARN = (
    "import sys, pandas as pd\n"
    "from fairlearn.metrics import demographic_parity_ratio, equalized_odds_difference\n"
    "df = pd.read_csv(sys.argv[1], usecols=sys.argv[2:])\n"
    "kw = dict(y_true=df['repaid'], y_pred=df['approved'], sensitive_features=df['gender'])\n"
    "print(demographic_parity_ratio(**kw), equalized_odds_difference(**kw))\n"
)


@dataclass(frozen=True)
class Run:
    """One child process: wall seconds, its own CPU seconds and peak RSS (MiB), and the
    1-minute load average when it started."""

    wall: float
    cpu: float
    rss: float
    load: float = 0.0


def child(args: Sequence[str], ok: Sequence[int] = (0, 1)) -> Run:
    """Run ``python args`` in a fresh process (output discarded) and measure it."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        raise SystemExit(f"{' '.join(args[:4])} … failed with exit code {code}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, load)


def best(runs: list[Run]) -> Run:
    """The minimum of each figure over the runs (the least disturbed by other load); the
    load is the highest any of them started under."""
    return Run(
        min(r.wall for r in runs),
        min(r.cpu for r in runs),
        min(r.rss for r in runs),
        max(r.load for r in runs),
    )


def ensure_csv(rows: int, folder: Path) -> Path:
    """The decision log of ``rows`` rows, written once by sources_scale.py's generator."""
    csv = folder / f"measure-{rows}.csv"
    if not csv.exists():
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "sources_scale.py"),
                "--rows",
                str(rows),
                "--write-csv",
                str(csv),
            ],
            check=True,
        )
        print(f"wrote {csv} in {time.perf_counter() - started:.0f} s")
    return csv


def line(name: str, run: Run, note: str = "") -> None:
    print(f"{name:<34} {run.wall:>8.2f} s {run.cpu:>8.2f} s {run.rss:>8.0f} MB  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fairlearn-repeat", type=int, default=1, help="0: skip fairlearn")
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench-sources")
    args = parser.parse_args()
    csv = ensure_csv(args.rows, args.dir)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(
        f"measure on {csv.name} ({args.rows:,} rows, {csv.stat().st_size / 1e6:.0f} MB), "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load average {' '.join(load)}, "
        f"{os.cpu_count()} cores; best of {args.repeat} interleaved runs"
    )
    measure = [a.format(csv=csv) for a in MEASURE]
    floor_args = ["-c", FLOOR, str(csv), *COLUMNS]
    runs: dict[str, list[Run]] = {"floor": [], "measure": [], "help": [], "measure --help": []}
    child(floor_args)  # warm the page cache: every figure below reads a cached file
    print(f"{'run':<34} {'wall':>10} {'CPU':>10} {'peak RSS':>11}  load at start")
    for i in range(args.repeat):
        pair = child(floor_args), child(measure)
        runs["floor"].append(pair[0])
        runs["measure"].append(pair[1])
        line(f"{i + 1}: floor", pair[0], f"{pair[0].load:.2f}")
        line(
            f"{i + 1}: measure",
            pair[1],
            f"{pair[1].load:.2f}; {pair[1].wall / pair[0].wall:.2f}x wall, "
            f"{pair[1].cpu / pair[0].cpu:.2f}x CPU of the floor run before it",
        )
        runs["help"].append(child(["-m", "fairlens_monitor", "--help"]))
        runs["measure --help"].append(child(["-m", "fairlens_monitor", "measure", "--help"]))
    floor, ours = best(runs["floor"]), best(runs["measure"])
    print(f"best of {args.repeat}{'':<24} {'wall':>10} {'CPU':>10} {'peak RSS':>11}")
    line("floor: pyarrow read_csv, columns", floor, f"load <= {floor.load:.2f}")
    line(
        "fairlens-monitor measure",
        ours,
        f"{ours.wall / floor.wall:.2f}x floor wall (goal <= 1.5), "
        f"{ours.cpu / floor.cpu:.2f}x floor CPU; RSS goal < 300 MB; load <= {ours.load:.2f}",
    )
    for name in ("help", "measure --help"):
        line(f"fairlens-monitor {name}", best(runs[name]), "goal < 0.4 s wall")
    if args.fairlearn_repeat > 0:
        fair = [child(["-c", FAIRLEARN, str(csv), *COLUMNS]) for _ in range(args.fairlearn_repeat)]
        theirs = best(fair)
        line(
            "fairlearn: pandas read + metrics",
            theirs,
            f"measure {theirs.wall / ours.wall:.1f}x faster wall, "
            f"{theirs.cpu / ours.cpu:.1f}x less CPU (goal >= 30x); load <= {theirs.load:.2f}",
        )


if __name__ == "__main__":
    main()
