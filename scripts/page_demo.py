"""Write a demo portfolio for the page's screenshots: three monitors in one database.

    python scripts/page_demo.py OUT_DIR [--tamper]

``default`` is healthy and fresh (hourly readings over two days, with a six-hour outage in
the middle, drawn as a gap); ``credit_cards`` drifts down to an adverse verdict with an open
alert; ``mortgages`` stopped a day ago (stale). Real cycles (``ops.cycle.run_cycle``) with
their clocks set to the past. ``--tamper`` then edits the newest ``credit_cards`` reading
behind the chain's back, so the page shows its tamper banner.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.ops.app import open_cipher, open_repository
from fairlens_monitor.ops.cycle import run_cycle

BASE: dict[str, Any] = {
    "database": {"url": "sqlite:///var/fairlens.db"},
    "schedule": {"interval_seconds": 3600},
    "simulation": {"n_samples": 3000, "seed": 7, "drift": 0.0},
    "thresholds": {"dir": 0.8, "gap": 0.2},
    "keys": {"dir": "var/keys"},
    "audit": {"anchor_file": "var/anchor.jsonl", "checkpoint_every": 20},
    "alerts": {"echo_plaintext": False},
}


def write(folder: Path, name: str, simulation: dict[str, Any]) -> Path:
    """A config beside the others, sharing the database and keys."""
    path = folder / name
    path.write_text(yaml.safe_dump({**BASE, "simulation": {**BASE["simulation"], **simulation}}))
    return path


def fixed(moment: datetime) -> Callable[[], datetime]:
    """A clock that always says ``moment``."""
    return lambda: moment


def run(config: Path, monitor: str, times: list[datetime]) -> None:
    """One real cycle of ``monitor`` at each time."""
    settings = load_settings(config, env={})
    repo = open_repository(settings).for_monitor(monitor)
    try:
        cipher = open_cipher(settings, repo)
        for moment in times:
            run_cycle(settings, repo, cipher, clock=fixed(moment), actor="demo")
    finally:
        repo.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--tamper", action="store_true")
    args = parser.parse_args()
    folder: Path = args.out
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = [now - timedelta(hours=h) for h in range(47, -1, -1)]
    healthy = write(folder, "config.yaml", {"drift": 0.0})
    drifting = write(
        folder,
        "credit_cards.yaml",
        {"drift": {"mode": "ramp", "start": 0.0, "end": 1.0, "cycles": 40}},
    )
    stopped = write(folder, "mortgages.yaml", {"drift": 0.2, "seed": 11})
    run(healthy, "default", [t for t in hours if not (20 <= (now - t).total_seconds() / 3600 < 26)])
    run(drifting, "credit_cards", hours)
    run(stopped, "mortgages", [t for t in hours if (now - t) > timedelta(hours=24)])
    if args.tamper:
        with sqlite3.connect(folder / "var" / "fairlens.db") as conn:
            conn.execute(
                "UPDATE readings SET dir = 0.95 WHERE id = (SELECT max(id) FROM readings "
                "WHERE monitor = 'credit_cards' AND scenario = 'monitored')"
            )
    print(f"wrote {folder}")


if __name__ == "__main__":
    main()
