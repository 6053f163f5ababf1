"""What the trend page's per-refresh row check costs: the newest 1,000 readings of a range.

Every refresh (5 s) the page checks the readings it draws against their digests on the
chain (``viewer.flags.newest_ids`` → ``viewer.rows.LiveLedger.marks``), so an edited row is
marked before the next background ``verify``. This writes 700 real cycles (1,400 readings
with their audit events) into a fresh database, replays the ledger once (the page's first
refresh), then times the check of the newest 1,000 readings as each later refresh runs it
(the ledger already up to date).

    python benchmarks/page_row_check.py [--dir DIR] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from fairlens_monitor.config.settings import load_settings  # noqa: E402
from fairlens_monitor.ops.app import open_cipher, open_repository  # noqa: E402
from fairlens_monitor.ops.cycle import run_cycle  # noqa: E402
from fairlens_monitor.viewer import data, flags  # noqa: E402
from fairlens_monitor.viewer.rows import LiveLedger  # noqa: E402

CYCLES = 700
CONFIG = {
    "database": {"url": "sqlite:///var/fairlens.db"},
    "schedule": {"interval_seconds": 60},
    "simulation": {"n_samples": 3000, "seed": 7, "drift": 0.0},
    "thresholds": {"dir": 0.8, "gap": 0.2},
    "keys": {"dir": "var/keys"},
    "alerts": {"echo_plaintext": False},
}


def fixed(moment: datetime) -> Callable[[], datetime]:
    """A clock that always says ``moment``."""
    return lambda: moment


def write_cycles(config: Path) -> None:
    """CYCLES real cycles, one a minute up to now (clocks set to the past)."""
    config.write_text(yaml.safe_dump(CONFIG))
    settings = load_settings(config, env={})
    repo = open_repository(settings)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        cipher = open_cipher(settings, repo)
        for minutes in range(CYCLES, 0, -1):
            run_cycle(
                settings, repo, cipher, clock=fixed(now - timedelta(minutes=minutes)), actor="bench"
            )
    finally:
        repo.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench_row_check")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    folder: Path = args.dir
    config = folder / "config.yaml"
    if not (folder / "var" / "fairlens.db").exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_cycles(config)
    engine = data.open_readonly(load_settings(config, env={}))
    try:
        ids = flags.newest_ids(engine, monitor="default", since=None, until=None)
        live = LiveLedger()
        began = time.perf_counter()
        live.marks(engine, "readings", ids[:1])  # the first refresh replays the whole chain
        first = time.perf_counter() - began
        walls = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            marks = live.marks(engine, "readings", ids)
            walls.append(time.perf_counter() - began)
    finally:
        engine.dispose()
    assert all(ok for ok, _ in marks.values()), "a reading failed its check"
    median = statistics.median(walls)
    print(
        f"{len(ids):,} readings checked per refresh: median {median * 1000:.1f} ms, best "
        f"{min(walls) * 1000:.1f} ms ({median / len(ids) * 1e6:.0f} µs a row); the first "
        f"refresh's ledger replay {first * 1000:.0f} ms"
    )
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
