"""Real-source cycles at scale: a 10-million-row CSV read in bounded memory, and SQL counts
pushed down to the database against pulling the rows, on SQLite and PostgreSQL.

Builds (once, then reuses) a decision log of N rows — gender, age, credit score, decision,
repayment and decision time over 30 days, with a mild bias against women — then, in one run:

1. ``fairlens-monitor once`` on a file source over the CSV (the whole cycle in a fresh
   process: read in chunks, count, measure, store), with its wall time and peak RSS, for a
   window of ``all`` and of the last ``24h``;
2. for a second log of M rows loaded into a table (SQLite file, and PostgreSQL when
   reachable, in a database ``fairlens_bench`` of its own):
   the SQL source's ``GROUP BY`` against reading the same columns out and counting them in
   pandas (what a source without push-down would do), with the rows each sends back.

    python benchmarks/sources_scale.py [--rows 10000000] [--sql-rows 2000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairlens_monitor.config.settings import load_settings  # noqa: E402
from fairlens_monitor.fairness.counts import normalise  # noqa: E402
from fairlens_monitor.sources.base import SqlSource  # noqa: E402

END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
PG = os.environ.get("FAIRLENS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def decisions(rows: int, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    female = rng.random(rows) < 0.45
    score = np.clip(rng.normal(650, 70, rows), 300, 850).round().astype(np.int64)
    p = 1 / (1 + np.exp(-(score - 640) / 40)) - 0.06 * female
    seconds = np.sort(rng.integers(0, 30 * 86400, rows))
    when = pd.to_datetime(END.timestamp() - 30 * 86400 + seconds, unit="s", utc=True)
    return pd.DataFrame(
        {
            "gender": np.where(female, "Female", "Male"),
            "age": rng.integers(18, 80, rows),
            "credit_score": score,
            "approved": (rng.random(rows) < p).astype(np.int8),
            "repaid": (rng.random(rows) < 0.9).astype(np.int8),
            "decided_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )


def config(folder: Path, source: dict[str, object]) -> Path:
    doc = yaml.safe_load((ROOT / "config.yaml").read_text())
    doc.pop("monitors", None)  # one monitor: the demo's shared defaults
    doc.pop("simulation")
    doc["source"] = source
    doc["measurement"] = {
        "protected_attributes": ["gender"],
        "privileged_value": "Male",
        "unprivileged_value": "Female",
        "label": "repaid",
    }
    doc["alerts"]["echo_plaintext"] = False
    doc["database"]["url"] = f"sqlite:///{folder / 'monitor.db'}"
    doc["keys"]["dir"] = str(folder / "keys")
    doc["audit"]["anchor_file"] = str(folder / "anchor.jsonl")
    path = folder / f"config-{source['kind']}-{source.get('window', 'all')}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def once(path: Path) -> tuple[float, float, str]:
    """Run `once` in a fresh process; return (seconds, its own peak RSS in MiB, first line).

    The peak comes from wait4 for that one child; the parent stays small (the CSV is
    written by a child), since a child's peak counts the parent's pages until it execs.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fairlens_monitor",
            "--config",
            str(path),
            "once",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"once failed ({status}): {out}")
    return took, usage.ru_maxrss / 1024, out.splitlines()[0]


def sql_compare(url: str, df: pd.DataFrame, label: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS decisions"))
    t = time.perf_counter()
    frame = df.assign(decided_at=pd.to_datetime(df.decided_at, utc=True))
    if engine.dialect.name == "postgresql":  # COPY: inserts would take minutes
        frame.head(0).to_sql("decisions", engine, index=False)
        import psycopg

        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            assert isinstance(cursor, psycopg.Cursor), "COPY needs a postgresql+psycopg:// URL"
            with cursor as cur, cur.copy("COPY decisions FROM STDIN (FORMAT csv)") as copy:
                copy.write(frame.to_csv(index=False, header=False))
            raw.commit()
        finally:
            raw.close()
    else:
        frame.to_sql("decisions", engine, index=False, chunksize=5000)
    loaded = time.perf_counter() - t
    settings = load_settings(
        config(
            Path(os.environ["BENCH_DIR"]),
            {
                "kind": "sql",
                "url": url,
                "table": "decisions",
                "outcome": "approved",
                "timestamp": "decided_at",
                "stratum": "credit_score",
                "window": "7d",
            },
        ),
        env={},
    )
    source = SqlSource(settings.source, settings.group_spec(), "repaid")
    t = time.perf_counter()
    batch = source.read(END, {})
    pushed = time.perf_counter() - t
    source.close()
    t = time.perf_counter()
    start = END - timedelta(days=7)
    with engine.connect() as conn:
        rows = pd.read_sql(
            text(
                "SELECT gender, approved, repaid, credit_score FROM decisions "
                "WHERE decided_at >= :a AND decided_at < :b"
            ),
            conn,
            params={
                "a": start if "postgresql" in url else start.strftime("%Y-%m-%d %H:%M:%S"),
                "b": END if "postgresql" in url else END.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
    counted = normalise(
        rows, settings.group_spec(), "approved", label="repaid", stratum="credit_score"
    )
    pulled = time.perf_counter() - t
    engine.dispose()
    print(
        f"  {label}: {len(df):,} rows loaded in {loaded:.0f} s; last 7 days = "
        f"{batch.decisions:,} decisions"
    )
    print(
        f"    GROUP BY in the database: {pushed:6.2f} s, {batch.lineage['rows_returned']:,} "
        f"rows sent"
    )
    print(
        f"    rows pulled + pandas:     {pulled:6.2f} s, {len(rows):,} rows sent "
        f"(same counts: {int(counted['_n'].sum()) == batch.decisions})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--sql-rows", type=int, default=2_000_000)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench-sources")
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=None,
        help="source.chunk_rows for the file source (default: its default)",
    )
    parser.add_argument("--write-csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    os.environ["BENCH_DIR"] = str(args.dir)
    csv = args.dir / "decisions" / f"log-{args.rows}-{END:%Y%m%d}.csv"
    if args.write_csv:
        decisions(args.rows).to_csv(args.write_csv, index=False)
        return
    if not csv.exists():
        csv.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--rows",
                str(args.rows),
                "--write-csv",
                str(csv),
            ],
            check=True,
        )
        print(f"wrote {csv} ({csv.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")
    print(
        f"file source, {args.rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB CSV), "
        "one `once` each in a fresh process:"
    )
    for window in ("all", "24h"):
        (args.dir / "monitor.db").unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(f"{args.dir / 'monitor.db'}{suffix}").unlink(missing_ok=True)
        chunks = {} if args.chunk_rows is None else {"chunk_rows": args.chunk_rows}
        path = config(
            args.dir,
            {
                "kind": "file",
                "path": str(csv),
                "outcome": "approved",
                "timestamp": "decided_at",
                "stratum": "credit_score",
                "window": window,
                **chunks,
            },
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "fairlens_monitor",
                "--config",
                str(path),
                "db",
                "upgrade",
            ],
            check=True,
            capture_output=True,
        )
        took, peak, line = once(path)
        print(f"  window {window:>4}: {took:6.2f} s, peak RSS {peak:5.0f} MiB   {line[:110]}")
    df = decisions(args.sql_rows, seed=6)
    print(f"SQL source, {args.sql_rows:,} rows over 30 days in a table, window 7d:")
    sql_compare(f"sqlite:///{args.dir / 'lender.db'}", df, "SQLite")
    try:  # a database of its own on the server, so the shared test database stays clean
        admin = create_engine(PG, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = 'fairlens_bench'")
            ).first():
                conn.execute(text("CREATE DATABASE fairlens_bench"))
        admin.dispose()
    except Exception as exc:
        print(f"  PostgreSQL: skipped ({type(exc).__name__}: {exc})")
        return
    from sqlalchemy.engine import make_url

    sql_compare(
        make_url(PG).set(database="fairlens_bench").render_as_string(hide_password=False),
        df,
        "PostgreSQL",
    )


if __name__ == "__main__":
    main()
