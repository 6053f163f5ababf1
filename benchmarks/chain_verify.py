"""How fast `verify` checks the audit chain, on realistic events.

Builds (once, then reuses) a SQLite database migrated to head with a valid chain of N events
whose payloads are real `cycle_completed` payloads (taken from an actual cycle of the demo
config, run here first) with per-event counters, then times, in one run:
`verify_chain` over the repository's two streaming passes, and the `fairlens-monitor verify`
command end to end (process start, checkpoint checks and all).

Each event also stands for a real cycle's rows (issue 14): the run, its two readings, their
group results and the alert of that same demo cycle are copied under new ids, and the event
records their digests as a cycle does. The row check (``store.rowstore.check_rows``: replay
the digests from the chain, recompute every row's digest) is timed in rows/s beside a floor
measured in the same run: a raw cursor fetching the same rows plus one SHA-256 per row.

    python benchmarks/chain_verify.py [--events 262800] [--dir DIR] [--checkpoints K]

With ``--checkpoints K`` it also times the checkpoint checks `verify` makes for K chained
checkpoints (one signature, a hash for each of the rest) beside K checked one signature
each (the pre-0.9 way): what signing a checkpoint every cycle costs at verification.

    python benchmarks/chain_verify.py [--events 262800] [--dir DIR] [--no-rows]

It prints the chain's floor beside ``verify_chain``: a bare sqlite3 cursor reading every
canonical text with one SHA-256 each (``--page-size`` builds the file with another SQLite
page size). Goals (issue 17): ``verify_chain`` >= 250,000 events/s and the whole command
>= 180,000/s, within 1.5x of that floor; row checks within 1.5x of theirs (issue 14: 2x).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairlens_monitor.audit.chain import GENESIS_HASH, build_record, rfc3339  # noqa: E402
from fairlens_monitor.audit.checkpoints import (  # noqa: E402
    NO_PREVIOUS,
    Checkpoint,
    claims,
    digest,
    sign_checkpoint,
)
from fairlens_monitor.audit.rowforms import CURRENT_FORM, FORMS, TABLES  # noqa: E402
from fairlens_monitor.audit.verify import verify_chain  # noqa: E402
from fairlens_monitor.config.settings import load_settings  # noqa: E402
from fairlens_monitor.ops.app import open_cipher, open_repository  # noqa: E402
from fairlens_monitor.ops.cycle import run_cycle  # noqa: E402
from fairlens_monitor.store.chainwalk import (  # noqa: E402
    MAX_WORKERS,
    MIN_EVENTS,
    usable_cores,
    walk_chain,
)
from fairlens_monitor.store.db import make_engine  # noqa: E402
from fairlens_monitor.store.rowstore import _select, check_rows, ledger  # noqa: E402
from fairlens_monitor.store.rowtap import RowTap  # noqa: E402
from fairlens_monitor.store.schema import upgrade  # noqa: E402

Rows = dict[str, list[tuple[object, ...]]]
# Which columns hold a parent's id: (table, column index) → parent table.
PARENTS = {
    ("readings", 1): "runs",
    ("group_results", 1): "readings",
    ("alerts", 1): "runs",
    ("alerts", 2): "readings",
    ("source_files", 1): "readings",
}


def sample_payload(folder: Path) -> tuple[dict[str, object], Rows]:
    """Run one real cycle (drifted, with an alert); return its cycle_completed payload and
    the rows it stored (as a raw cursor reads them)."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.pop("monitors", None)  # one monitor: the demo's shared defaults
    config["database"]["url"] = "sqlite:///sample.db"
    config["simulation"]["drift"] = 0.9
    path = folder / "sample.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path, env={})
    repo = open_repository(settings)
    run_cycle(
        settings, repo, open_cipher(settings, repo), clock=lambda: datetime.now(UTC), actor="daemon"
    )
    [(_, payload)] = repo.events_of_type("cycle_completed")
    repo.engine.dispose()
    payload.pop("row_digests", None)
    with sqlite3.connect(folder / "sample.db") as conn:
        rows = {t: conn.execute(_select(t)).fetchall() for t in TABLES}
    return payload, rows


def copy_rows(
    sample: Rows, cycle: int, rows: dict[str, list[tuple[object, ...]]]
) -> dict[str, list[list[object]]]:
    """Append the sample cycle's rows under the ids of cycle ``cycle``; return their digests."""
    out: dict[str, list[list[object]]] = {}
    for table in TABLES:
        if not sample[table]:
            continue
        count = len(sample[table])
        digests = []
        for n, row in enumerate(sample[table]):
            values = list(row)
            values[0] = cycle * count + n + 1
            if table == "reading_rollups":  # unique per (monitor, hour, scenario): an hour each
                bucket = FORMS[CURRENT_FORM][table].columns.index("bucket")
                values[bucket] = int(values[bucket]) - cycle  # type: ignore[call-overload]
            for (t, col), parent in PARENTS.items():
                if t == table and values[col] is not None:
                    per = len(sample[parent])
                    values[col] = cycle * per + (int(values[col]) - 1) % per + 1  # type: ignore[call-overload]
            rows[table].append(tuple(values))
            digests.append([values[0], FORMS[CURRENT_FORM][table].digest(values)])
        out[table] = digests
    return out


def build(path: Path, events: int, small: bool, with_rows: bool, page_size: int) -> None:
    url = f"sqlite:///{path}"
    if page_size:
        with sqlite3.connect(path) as conn:  # before any table: fixes the file's page size
            conn.execute(f"PRAGMA page_size = {page_size}")
            conn.execute("VACUUM")
    engine = make_engine(url)
    upgrade(engine, url)
    engine.dispose()
    payload, sample = sample_payload(path.parent)
    if small:
        payload = {}
    start = datetime.now(UTC) - timedelta(minutes=events)
    append_cycles(path, payload, sample if with_rows else None, 0, GENESIS_HASH, events, start)


def append_cycles(
    path: Path,
    payload: dict[str, Any],
    sample: Rows | None,
    head_seq: int,
    prev: str,
    count: int,
    start: datetime,
    step: timedelta = timedelta(minutes=1),
) -> None:
    """Append ``count`` chained ``cycle_completed`` events after ``head_seq`` (hash ``prev``),
    copies of ``payload``, one ``step`` apart from ``start``; with a ``sample``, each also
    stands for a copy of the sample cycle's rows (stored, their digests in the event)."""
    rows = []
    table_rows: dict[str, list[tuple[object, ...]]] = {t: [] for t in TABLES}
    for i in range(head_seq, head_seq + count):
        body = json.loads(json.dumps(payload))
        body["run_id"], body["cycle_index"] = i + 1, i
        if sample is not None:
            body["row_digests"] = {"form": CURRENT_FORM, **copy_rows(sample, i, table_rows)}
        rec = build_record(
            seq=i + 1,
            ts=rfc3339(start + step * (i - head_seq)),
            event_type="cycle_completed",
            actor="daemon",
            payload=body,
            prev_hash=prev,
        )
        prev = rec.hash
        rows.append(
            (rec.seq, rec.ts, rec.event_type, rec.actor, rec.canonical, rec.prev_hash, rec.hash)
        )
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO audit_events (seq, ts, event_type, actor, "
            "canonical, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
            rows,
        )
        for table, values in table_rows.items():
            columns = FORMS[CURRENT_FORM][table].columns
            if values:
                conn.executemany(
                    f"INSERT INTO {table} ({', '.join(f'{c!r}' for c in columns)}) "  # noqa: S608
                    f"VALUES ({', '.join('?' for _ in columns)})",
                    values,
                )
    conn.close()  # the last connection: SQLite checkpoints the WAL into the file
    checkpoint(path)


def checkpoint(path: Path) -> bool:
    """Fold a left-over ``-wal`` file into the database (what a real one's writer does every
    1,000 pages); True when there was one. Until this change the benchmark left the whole
    chain (575 MB) in the WAL, and every reader process first rebuilt its index (~0.2-0.4 s
    of CPU in each `verify`, counted as start-up)."""
    wal = path.with_name(path.name + "-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        return False
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return True


def row_floor(db: Path) -> tuple[int, float]:
    """The floor: fetch the same rows with a raw cursor and SHA-256 each (its repr)."""
    t, count = time.perf_counter(), 0
    sha256 = hashlib.sha256
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        for table in TABLES:
            cursor = conn.execute(_select(table))
            while batch := cursor.fetchmany(20000):
                for row in batch:
                    sha256(repr(row).encode()).hexdigest()
                count += len(batch)
    return count, time.perf_counter() - t


def chain_floor(db: Path) -> int:
    """The chain's floor: a bare sqlite3 cursor reading every canonical text, one SHA-256
    each (no link, no column check, nothing kept); the file memory-mapped as verify maps it."""
    sha256, count = hashlib.sha256, 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.execute(f"PRAGMA mmap_size = {1 << 34}")
        for (text,) in conn.execute("SELECT canonical FROM audit_events ORDER BY id"):
            sha256(text.encode()).hexdigest()
            count += 1
    return count


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call; the CPU of this process and of every process it
    started and waited for meanwhile (a split walk's workers, a command's process)."""
    t, c = time.perf_counter(), time.process_time()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    fn()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = after.ru_utime + after.ru_stime - kids.ru_utime - kids.ru_stime
    return time.perf_counter() - t, time.process_time() - c + children


def time_checkpoints(count: int) -> None:
    """Time :func:`checkpoints.claims` on ``count`` chained and ``count`` unchained ones."""
    key = Ed25519PrivateKey.generate()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    chained: list[Checkpoint] = []
    for i in range(count):
        chained.append(
            sign_checkpoint(
                key,
                seq=2 * i + 2,
                head_hash=f"{i:064x}",
                ts=rfc3339(start + timedelta(minutes=i)),
                prev=digest(chained[-1]) if chained else NO_PREVIOUS,
            )
        )
    t = time.perf_counter()
    found = claims(key.public_key(), chained, "bench")
    took = time.perf_counter() - t
    assert all(c.signature_ok for c in found)
    print(
        f"{count:,} chained checkpoints checked in {took:.3f} s "
        f"({1e6 * took / count:.1f} µs each: one signature, a hash for each of the rest)"
    )
    sample = [
        sign_checkpoint(key, seq=c.seq, head_hash=c.head_hash, ts=c.ts)
        for c in chained[: min(count, 5000)]
    ]
    t = time.perf_counter()
    found = claims(key.public_key(), sample, "bench")
    took = time.perf_counter() - t
    print(
        f"unchained (pre-0.9): {1e6 * took / len(sample):.1f} µs each (one signature each; "
        f"{count:,} would take {took / len(sample) * count:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=262_800)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench-chain")
    parser.add_argument(
        "--small",
        action="store_true",
        help="tiny payloads ({run_id, cycle_index}) instead of real ones",
    )
    parser.add_argument(
        "--no-rows",
        action="store_true",
        help="events only, no stored rows (the chain as before issue 14)",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=0,
        help="build the database with this SQLite page size (default: SQLite's, 4096)",
    )
    parser.add_argument(
        "--checkpoints",
        type=int,
        default=0,
        help="also time the checks of this many chained checkpoints",
    )
    args = parser.parse_args()
    if args.checkpoints:
        time_checkpoints(args.checkpoints)
    folder = args.dir / (
        f"{args.events}{f'-p{args.page_size}' if args.page_size else ''}"
        f"{'-small' if args.small else ''}{'' if args.no_rows else '-rows'}"
    )
    db = folder / "var" / "fairlens.db"
    if not db.exists():
        shutil.rmtree(folder, ignore_errors=True)
        db.parent.mkdir(parents=True)
        t = time.perf_counter()
        build(db, args.events, args.small, not args.no_rows, args.page_size)
        print(f"built {args.events:,} events in {time.perf_counter() - t:.1f} s ({db})")
    if checkpoint(db):
        print("folded a left-over WAL file into the database first (see checkpoint())")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.pop("monitors", None)  # one monitor: the demo's shared defaults
    config["database"]["url"] = f"sqlite:///{db}"
    config["audit"]["anchor_file"] = str(folder / "anchor.jsonl")
    config["keys"]["dir"] = str(folder / "keys")
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    settings = load_settings(folder / "config.yaml", env={})
    repo = open_repository(settings, readonly=True)
    size = sum(len(r.canonical) for r in repo.iter_records()) / args.events
    cores = usable_cores()
    stretches = min(MAX_WORKERS, cores) if args.events >= MIN_EVENTS else 1
    print(
        f"machine: {cores} usable cores, Python {sys.version.split()[0]}, SQLite "
        f"{sqlite3.sqlite_version}; {loadavg()} at the start"
    )
    print(
        "every figure: best of 3, interleaved; wall time and CPU time (this process and the "
        "processes it waited for); on a busy machine read the CPU figures"
    )
    keys = ("floor", "verify_chain", "tapped", "walk", "command")
    chain = {k: [float("inf")] * 2 for k in keys}
    start = (1, GENESIS_HASH)
    for _ in range(3):  # interleaved, best of 3 each
        keep(chain, "floor", timed(lambda: chain_floor(db)))
        report = verify_chain(repo.iter_stored(), repo.iter_links())
        if not report.intact or report.count != args.events:
            raise SystemExit(f"chain did not verify: {report.anomalies[:3]}")
        keep(
            chain,
            "verify_chain",
            timed(lambda: verify_chain(repo.iter_stored(), repo.iter_links())),
        )
        walked = walk_chain(repo, [], start)[0]
        if walked != report:
            raise SystemExit("the split walk's report differs from verify_chain's")
        keep(chain, "tapped", timed(lambda: walk_chain(repo, [], start, workers=1)))
        keep(chain, "walk", timed(lambda: walk_chain(repo, [], start)))
        keep(chain, "command", timed(lambda: run_verify(folder)))
    if not args.no_rows:
        floor, check, replay = float("inf"), float("inf"), float("inf")
        floor_cpu, check_cpu = float("inf"), float("inf")
        tapped, tapped_cpu, walk, walk_cpu = [float("inf")] * 4
        for _ in range(3):
            c = time.process_time()
            count, took = row_floor(db)
            floor, floor_cpu = min(floor, took), min(floor_cpu, time.process_time() - c)
            t = time.perf_counter()
            ledger(repo.engine)
            replay = min(replay, time.perf_counter() - t)
            t, c = time.perf_counter(), time.process_time()
            found = check_rows(repo.engine)
            check = min(check, time.perf_counter() - t)
            check_cpu = min(check_cpu, time.process_time() - c)
            if found:
                raise SystemExit(f"rows did not verify: {found[:3]}")
            # as `verify` does it: the ledger read during the chain walk (RowTap)
            tap = RowTap()
            t, c = time.perf_counter(), time.process_time()
            verify_chain(tap.watch(repo.iter_stored()), repo.iter_links())
            book = tap.ledger()
            walk, walk_cpu = (
                min(walk, time.perf_counter() - t),
                min(walk_cpu, time.process_time() - c),
            )
            t, c = time.perf_counter(), time.process_time()
            found = check_rows(repo.engine, book=book)
            tapped = min(tapped, time.perf_counter() - t)
            tapped_cpu = min(tapped_cpu, time.process_time() - c)
            if found:
                raise SystemExit(f"rows did not verify: {found[:3]}")
        print(f"stored rows: {count:,} ({count / args.events:.1f} per event)")
        print(
            f"row floor (raw fetch + SHA-256 per row), best of 3: {floor:.2f} s = "
            f"{count / floor:,.0f} rows/s"
        )
        print(
            f"row check (replay digests + recompute every row), best of 3: {check:.2f} s "
            f"= {count / check:,.0f} rows/s = {check / floor:.2f}x the floor "
            f"(of which replaying the chain's digests {replay:.2f} s)"
        )
        print(
            f"row check / floor in process CPU time, best of 3: {check_cpu:.2f} s / "
            f"{floor_cpu:.2f} s = {check_cpu / floor_cpu:.2f}x"
        )
        print(
            f"row check with the ledger from the chain walk (as verify runs it), best of 3: "
            f"{tapped:.2f} s wall = {count / tapped:,.0f} rows/s = {tapped / floor:.2f}x the "
            f"floor; CPU {tapped_cpu:.2f} s = {tapped_cpu / floor_cpu:.2f}x"
        )
        vw, vc = chain["verify_chain"]
        print(
            f"  the walk with the tap + building the ledger: {walk:.2f} s wall, {walk_cpu:.2f} s "
            f"CPU (verify_chain alone {vw:.2f} s, {vc:.2f} s CPU: the tap adds "
            f"{walk_cpu - vc:+.2f} s CPU); walk + row check = {walk_cpu + tapped_cpu:.2f} s CPU "
            f"vs chain floor + row floor {chain['floor'][1] + floor_cpu:.2f} s = "
            f"{(walk_cpu + tapped_cpu) / (chain['floor'][1] + floor_cpu):.2f}x"
        )
    repo.engine.dispose()
    n = args.events
    print(f"events: {n:,}, mean canonical size {size:.0f} bytes")
    (fw, fc) = chain["floor"]

    def line(label: str, key: str) -> str:
        wall, cpu = chain[key]
        return (
            f"{label}: {wall:.2f} s wall = {n / wall:,.0f} events/s ({wall / fw:.2f}x the "
            f"floor), {cpu:.2f} s CPU = {n / cpu:,.0f} events/s ({cpu / fc:.2f}x)"
        )

    print(
        f"chain floor (one sqlite3 cursor over canonical + SHA-256 per row, one process): "
        f"{fw:.2f} s wall = {n / fw:,.0f} events/s, {fc:.2f} s CPU = {n / fc:,.0f} events/s"
    )
    print(line("verify_chain, serial (one process)", "verify_chain"))
    print(line("verify_chain + the row tap, serial (how verify walked before the split)", "tapped"))
    print(line(f"walk_chain as verify walks now, {stretches} stretch(es) in parallel", "walk"))
    print(line("fairlens-monitor verify, whole command (fresh process)", "command"))
    walk_wall, command_wall = chain["walk"][0], chain["command"][0]
    print(
        f"goal 2a, the chain walk >= 250,000 events/s and within 1.5x of the floor (wall): "
        f"{n / walk_wall:,.0f} events/s, {walk_wall / fw:.2f}x -> "
        f"{'met' if n / walk_wall >= 250_000 and walk_wall / fw <= 1.5 else 'NOT met'}"
    )
    print(
        f"goal 2b, the whole verify command >= 180,000 events/s (wall): "
        f"{n / command_wall:,.0f} events/s ({command_wall:.2f} s, {command_wall / fw:.2f}x the "
        f"floor) -> {'met' if n / command_wall >= 180_000 else 'NOT met'}"
    )
    print(
        f"{loadavg()} at the end. Wall figures hold only on an idle machine (load average "
        f"well under {cores}); under load compare the CPU columns"
    )


def loadavg() -> str:
    """The load average (1, 5, 15 minutes), as a phrase."""
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return f"load average {one} / {five} / {fifteen}"


def keep(best: dict[str, list[float]], key: str, took: tuple[float, float]) -> None:
    """Keep the lower wall and the lower CPU time of ``key``."""
    best[key] = [min(best[key][0], took[0]), min(best[key][1], took[1])]


def run_verify(folder: Path) -> None:
    """The whole ``fairlens-monitor verify`` command in a fresh process (exit 0 expected)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fairlens_monitor",
            "--config",
            str(folder / "config.yaml"),
            "verify",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"verify exited {done.returncode}: {done.stdout[-300:]} {done.stderr[-300:]}"
        )


if __name__ == "__main__":
    main()
