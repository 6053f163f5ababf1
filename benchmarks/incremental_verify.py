"""What an incremental `verify` costs beside a full one, on a year of real events.

Takes the benchmark database of ``chain_verify.py`` (built there once, reused), copies it,
signs a checkpoint of its head with a fresh key, appends ``--new`` events made as the others
(a real cycle's payload and rows copied under new ids, with their digests: real cycles would
each advance the benchmark's 262,800 copied open alerts), then times, interleaved, best of
``--repeat``:

- ``fairlens-monitor verify --json`` (the full walk) and
  ``fairlens-monitor verify --json --incremental --verified-to <checkpoint seq>`` (what the
  trend page runs every minute), whole processes: wall and the child's CPU time;
- ``fairlens-monitor --help``, the floor of any command's process (start-up and imports);
- in process, ``verify_incremental``.

    python benchmarks/incremental_verify.py [--events 262800] [--new 60] [--dir DIR]

Goal (issue 17): the page's verifier costs O(new events), not O(history).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.chain_verify import append_cycles, build, sample_payload  # noqa: E402
from fairlens_monitor.audit.chain import rfc3339  # noqa: E402
from fairlens_monitor.config.settings import load_settings  # noqa: E402
from fairlens_monitor.ops.app import open_repository, open_signing_key  # noqa: E402
from fairlens_monitor.ops.audit_trail import write_checkpoint  # noqa: E402
from fairlens_monitor.ops.incremental import verify_incremental  # noqa: E402


def child(args: list[str]) -> tuple[float, float, dict[str, object] | None]:
    """Run one command; return its wall time, its CPU time (user + system) and its JSON."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "fairlens_monitor", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0,):
        raise SystemExit(f"{args}: exit {done.returncode}: {done.stderr.strip()[-300:]}")
    doc = json.loads(done.stdout) if "--json" in args else None
    return wall, cpu, doc


def append_events(db: Path, work: Path, new: int) -> None:
    """Append ``new`` events as ``chain_verify.build`` made the others: a real cycle's payload
    and rows (run, readings, group results, alert) copied under the next ids, with digests."""
    payload, sample = sample_payload(work)
    with sqlite3.connect(db) as conn:
        head_seq, prev = conn.execute(
            "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    append_cycles(db, payload, sample, head_seq, prev, new, datetime.now(UTC), timedelta(seconds=1))


def prepare(source: Path, work: Path, new: int) -> tuple[Path, int, int]:
    """Copy the database, sign its head, append ``new`` events; return config, cp seq, head."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "var").mkdir(parents=True)
    db = work / "var" / "fairlens.db"
    shutil.copyfile(source, db)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.pop("monitors", None)  # one monitor: the demo's shared defaults
    config["database"]["url"] = f"sqlite:///{db}"
    config["audit"]["anchor_file"] = str(work / "anchor.jsonl")
    config["keys"]["dir"] = str(work / "keys")
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    settings = load_settings(work / "config.yaml", env={})
    repo = open_repository(settings)
    try:
        signer = open_signing_key(settings, repo)
        cp = write_checkpoint(
            repo, signer, anchor_file=settings.audit.anchor_file, ts=rfc3339(datetime.now(UTC))
        )
        assert cp is not None
    finally:
        repo.engine.dispose()
    (work / "sample").mkdir()
    append_events(db, work / "sample", new)
    return work / "config.yaml", cp.seq, cp.seq + new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=262_800)
    parser.add_argument("--new", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench-chain")
    args = parser.parse_args()
    source = args.dir / f"{args.events}-rows" / "var" / "fairlens.db"
    if not source.exists():
        source.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        build(source, args.events, False, False, True)
        print(f"built {args.events:,} events in {time.perf_counter() - t:.1f} s ({source})")
    config, cp_seq, head = prepare(source, args.dir / "incremental", args.new)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load average "
        f"{Path('/proc/loadavg').read_text().split()[:3]}, {os.cpu_count()} CPUs"
    )
    print(f"events: {args.events:,} + {head - cp_seq} after the checkpoint at seq {cp_seq}")
    base = ["--config", str(config)]
    runs: dict[str, list[tuple[float, float]]] = {"full": [], "incremental": [], "help": []}
    for _ in range(args.repeat):  # interleaved, so load affects all three alike
        wall, cpu, doc = child([*base, "verify", "--json"])
        assert doc is not None
        assert (doc["intact"], doc["walk"]) == (True, "full"), doc
        runs["full"].append((wall, cpu))
        wall, cpu, doc = child(
            [*base, "verify", "--json", "--incremental", "--verified-to", str(cp_seq)]
        )
        assert doc is not None
        assert (doc["intact"], doc["walk"]) == (True, "incremental"), doc
        assert doc["count"] == head - cp_seq + 1, doc
        runs["incremental"].append((wall, cpu))
        runs["help"].append(child([*base, "--help"])[:2])
    for name, label in (
        ("full", "verify (full walk)"),
        ("incremental", f"verify --incremental ({head - cp_seq + 1} events walked)"),
        ("help", "--help (process start-up floor)"),
    ):
        wall = min(w for w, _ in runs[name])
        cpu = min(c for _, c in runs[name])
        print(f"{label}: best of {args.repeat}: wall {wall:.3f} s, CPU {cpu:.3f} s")
    full_cpu = min(c for _, c in runs["full"])
    inc_cpu = min(c for _, c in runs["incremental"])
    floor_cpu = min(c for _, c in runs["help"])
    print(
        f"full / incremental CPU: {full_cpu / inc_cpu:.1f}x; incremental above the start-up "
        f"floor: {inc_cpu - floor_cpu:.3f} s CPU"
    )
    settings = load_settings(config, env={})
    repo = open_repository(settings, readonly=True)
    anchor, key = settings.audit.anchor_file, settings.keys.public_key
    best = float("inf")
    for _ in range(args.repeat):
        c = time.process_time()
        done = verify_incremental(repo, anchor_file=anchor, public_key=key, verified_to=cp_seq)
        best = min(best, time.process_time() - c)
        assert done.chain.intact
    repo.engine.dispose()
    print(f"in process, verify_incremental: CPU best of {args.repeat}: {best * 1000:.1f} ms")


if __name__ == "__main__":
    main()
