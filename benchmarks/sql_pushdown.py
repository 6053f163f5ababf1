"""SQL source push-down with the window's index, against pulling the window's rows.

Builds once (then reuses) a decision table of N rows over 30 days — gender, credit score,
decision, repayment, decision time — in a SQLite file (times as ISO text in three mixed
forms: ``…T…Z``, ``… …`` and ``…+01:00``) and in PostgreSQL (``timestamptz``, loaded with
``COPY`` into a database ``fairlens_bench_pushdown`` of its own), each with the indexes
:func:`fairlens_monitor.sources.sql_window.index_statement` gives: on PostgreSQL a plain one
on ``decided_at``; on SQLite the recommended one, the grouped columns then
``datetime(decided_at)``, with ``ANALYZE`` (added to a table cached before it), and also the
time-only expression index on ``datetime(decided_at)`` (the one recommended before, which the
planner picks for the pull). Then, for a 7-day window, in interleaved runs on each back end:

- **push-down**: the SQL source's read (``GROUP BY`` in the database, rows normalised);
- **pull**: the same window predicate (same code, same index) selecting the rows, fetched into
  pandas and counted by the same :func:`normalise` — what a source without push-down does —
  once through SQLAlchemy's rows (as ``pd.read_sql``) and once through the driver's cursor
  (the leanest pull; the goal is judged against the cheaper of the two);

printing wall time, the client process's CPU time and, on PostgreSQL, the server backend's
CPU time (from ``/proc``, the server being local; parallel workers are turned off for the
benchmark database so all of the query's CPU is in that backend), the best of the runs, and
the ratio pull / push-down. Goal (issue 17, goal 5): push-down ≥ 2× faster on both.
On SQLite two push-downs are printed for reference, one run each: through the time-only
index (``INDEXED BY``: it sorts every row of the window for its ``GROUP BY``) and without
any index (``NOT INDEXED``, the plan before both). Each back end's lines give the planner's
choice for the push-down and for the pull, and the load average before and after: the
machine may be shared, so compare the ratios (interleaved runs see the same load).

    python benchmarks/sql_pushdown.py [--rows 10000000] [--repeat 3] [--no-pg]
"""

from __future__ import annotations

import argparse
import io
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairlens_monitor.config.source import SourceSettings  # noqa: E402
from fairlens_monitor.fairness.counts import normalise  # noqa: E402
from fairlens_monitor.fairness.groups import GroupSpec  # noqa: E402
from fairlens_monitor.sources.base import SqlSource  # noqa: E402
from fairlens_monitor.sources.sql import count_statement, relation, source_engine  # noqa: E402
from fairlens_monitor.sources.sql_window import (  # noqa: E402
    index_name,
    index_statement,
    query_plan,
    statistics_statement,
    window_predicate,
)

END = datetime(2026, 12, 1, tzinfo=UTC)  # fixed, so the built tables can be reused
DAYS, WINDOW = 30, timedelta(days=7)
CHUNK = 1_000_000
PG = os.environ.get("FAIRLENS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_DB = "fairlens_bench_pushdown"
SPEC = GroupSpec(("gender",))
COLUMNS = ["gender", "approved", "repaid", "credit_score"]
TICK = os.sysconf("SC_CLK_TCK")
GROUP_BY = ["gender", "approved", "repaid", "credit_score"]  # as SqlSource groups (below)


def chunks(rows: int, seed: int = 7) -> Iterator[pd.DataFrame]:
    """The decisions in time order, ``CHUNK`` rows at a time (times as aware datetimes)."""
    rng = np.random.default_rng(seed)
    start = END.timestamp() - DAYS * 86400
    per_second = rows / (DAYS * 86400)
    for first in range(0, rows, CHUNK):
        n = min(CHUNK, rows - first)
        female = rng.random(n) < 0.45
        score = np.clip(rng.normal(650, 70, n), 300, 850).round().astype(np.int64)
        p = 1 / (1 + np.exp(-(score - 640) / 40)) - 0.06 * female
        seconds = np.floor(start + (first + np.arange(n)) / per_second).astype(np.int64)
        yield pd.DataFrame(
            {
                "gender": np.where(female, "Female", "Male"),
                "approved": (rng.random(n) < p).astype(np.int8),
                "repaid": (rng.random(n) < 0.9).astype(np.int8),
                "credit_score": score,
                "decided_at": pd.to_datetime(seconds, unit="s", utc=True),
            }
        )


def sqlite_times(times: pd.Series, first: int) -> list[str]:
    """ISO text in three forms, rotating by row: ``…T…Z``, ``… …`` (UTC), ``…+01:00``."""
    z = times.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    plain = times.dt.strftime("%Y-%m-%d %H:%M:%S")
    offset = (times + pd.Timedelta(hours=1)).dt.strftime("%Y-%m-%dT%H:%M:%S+01:00")
    form = (np.arange(len(times)) + first) % 3
    return list(np.where(form == 0, z, np.where(form == 1, plain, offset)))


def build_sqlite(path: Path, rows: int) -> None:
    if path.exists():
        index_sqlite(path)
        return
    t = time.perf_counter()
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    db.executescript(
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
        "CREATE TABLE decisions (gender TEXT, approved INTEGER, repaid INTEGER,"
        " credit_score INTEGER, decided_at TEXT);"
    )
    for i, chunk in enumerate(chunks(rows)):
        text = sqlite_times(chunk.decided_at, i * CHUNK)
        db.executemany(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?)",
            zip(
                chunk.gender.tolist(),
                chunk.approved.tolist(),
                chunk.repaid.tolist(),
                chunk.credit_score.tolist(),
                text,
                strict=True,
            ),
        )
        db.commit()
    db.close()
    tmp.rename(path)
    print(f"built {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t:.0f} s")
    index_sqlite(path)


def index_sqlite(path: Path) -> None:
    """Create the time-only and the recommended grouped index and ``ANALYZE``, if missing."""
    db = sqlite3.connect(path)
    present = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    grouped = index_name("decisions", "decided_at", GROUP_BY)
    if grouped not in present or "decisions_decided_at_window" not in present:
        t = time.perf_counter()
        db.execute(index_statement("decisions", "decided_at", "sqlite"))
        db.execute(index_statement("decisions", "decided_at", "sqlite", GROUP_BY))
        db.execute(statistics_statement("decisions", "sqlite"))
        db.commit()
        print(f"indexed and analysed {path} in {time.perf_counter() - t:.0f} s")
    db.close()


def build_postgres(url: str, rows: int) -> None:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        done = conn.execute(
            sa.text("SELECT obj_description('decisions'::regclass, 'pg_class')")
            if conn.execute(sa.text("SELECT to_regclass('decisions')")).scalar()
            else sa.text("SELECT NULL")
        ).scalar()
    if done == f"rows={rows}":
        engine.dispose()
        return
    t = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur: Any = raw.cursor()
        cur.execute(
            "DROP TABLE IF EXISTS decisions; CREATE TABLE decisions (gender text, approved "
            "smallint, repaid smallint, credit_score integer, decided_at timestamptz)"
        )
        for chunk in chunks(rows):
            buffer = io.StringIO()
            chunk.to_csv(buffer, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S+00")
            with cur.copy("COPY decisions FROM STDIN (FORMAT csv)") as copy:
                copy.write(buffer.getvalue())
        cur.execute(index_statement("decisions", "decided_at", "postgresql"))
        cur.execute(f"COMMENT ON TABLE decisions IS 'rows={rows}'")
        raw.commit()
        raw.driver_connection.autocommit = True  # type: ignore[union-attr]
        cur.execute("VACUUM ANALYZE decisions")
    finally:
        raw.close()
    engine.dispose()
    print(f"loaded {rows:,} rows into PostgreSQL in {time.perf_counter() - t:.0f} s")


@dataclass
class Cost:
    wall: float
    cpu: float
    server: float | None = None

    def best(self, other: Cost) -> Cost:
        return Cost(
            min(self.wall, other.wall),
            min(self.cpu, other.cpu),
            None if self.server is None or other.server is None else min(self.server, other.server),
        )


def backend_cpu(admin: sa.Engine | None) -> float | None:
    """CPU seconds used so far by the benchmark database's server backends (local server)."""
    if admin is None:
        return None
    with admin.connect() as conn:
        pids = conn.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": PG_DB}
        ).scalars()
        total = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def timed(run: Callable[[], int], admin: sa.Engine | None) -> tuple[Cost, int]:
    server = backend_cpu(admin)
    wall, cpu = time.perf_counter(), time.process_time()
    decisions = run()
    cost = Cost(time.perf_counter() - wall, time.process_time() - cpu)
    after = backend_cpu(admin)
    if server is not None and after is not None:
        cost.server = after - server
    return cost, decisions


def settings(url: str) -> SourceSettings:
    return SourceSettings(
        kind="sql",
        url=url,
        table="decisions",
        outcome="approved",
        timestamp="decided_at",
        stratum="credit_score",
        window="7d",
        window_seconds=WINDOW.total_seconds(),
    )


def compare(url: str, label: str, repeat: int, admin: sa.Engine | None) -> tuple[Cost, Cost]:
    """Time push-down and the two pulls, interleaved; print them; return push-down and the
    cheaper pull (the floor the goal is judged against)."""
    source = SqlSource(settings(url), SPEC, "repaid")
    assert source.group_by == GROUP_BY, source.group_by  # the columns the index was built on
    source.read(END, {})  # warm: the connection, the plan check, the page cache
    engine = source_engine(url)
    src = relation("decisions", None, [*COLUMNS, "decided_at"])
    select = sa.select(*(src.c[c] for c in COLUMNS)).where(
        window_predicate(src.c.decided_at, (END - WINDOW, END), engine.dialect.name)
    )
    compiled = select.compile(engine)
    params: Any = (
        tuple(compiled.params[k] for k in compiled.positiontup or ())
        if compiled.positional
        else dict(compiled.params)
    )

    def counted(rows: pd.DataFrame) -> int:
        counts = normalise(rows, SPEC, "approved", label="repaid", stratum="credit_score")
        return int(counts["_n"].sum())

    def push() -> int:
        return source.read(END, {}).decisions

    def pull_rows() -> int:  # through SQLAlchemy's rows, as pd.read_sql does
        with engine.connect() as conn:
            result = conn.execute(select)
            return counted(pd.DataFrame(result.fetchall(), columns=list(result.keys())))

    def pull_cursor() -> int:  # the driver's cursor straight into pandas: the leanest pull
        raw = engine.raw_connection()
        try:
            cursor: Any = raw.cursor()
            cursor.execute(compiled.string, params)
            rows = pd.DataFrame.from_records(cursor.fetchall(), columns=COLUMNS)
        finally:
            raw.close()
        return counted(rows)

    runs: dict[str, tuple[Callable[[], int], Cost | None]] = {
        "push-down (GROUP BY in the database)": (push, None),
        "pull via SQLAlchemy rows + pandas": (pull_rows, None),
        "pull via the DBAPI cursor + pandas": (pull_cursor, None),
    }
    counts: set[int] = set()
    for _ in range(repeat):  # interleaved, so all see the same load
        for what, (run, best) in runs.items():
            cost, n = timed(run, admin)
            counts.add(n)
            runs[what] = (run, cost if best is None else best.best(cost))
    assert len(counts) == 1, counts  # the same decisions every way
    n_window = counts.pop()
    count = count_statement(
        "decisions", None, GROUP_BY, "decided_at", (END - WINDOW, END), engine.dialect.name
    )
    print(f"  {label}: {n_window:,} decisions in the window")
    print(f"    push-down plan: {plan_of(engine, count)}")
    print(f"    pull plan:      {plan_of(engine, select)}")
    sent = source.read(END, {}).lineage["rows_returned"]
    costs = {what: best for what, (_, best) in runs.items() if best is not None}
    pushed, *pulls = costs.values()
    for what, cost in costs.items():
        ratio = ""
        if cost is not pushed:
            cpu = (cost.cpu + (cost.server or 0)) / (pushed.cpu + (pushed.server or 0))
            ratio = f"  pull/push {cost.wall / pushed.wall:.2f}x wall, {cpu:.2f}x CPU"
        row(what, cost, f"{sent if cost is pushed else n_window:,} rows sent{ratio}")
    pulled = min(pulls, key=lambda c: c.wall)
    ratio = f"    ratio cheaper pull / push-down: wall {pulled.wall / pushed.wall:.2f}x, "
    ratio += "client CPU "
    ratio += f"{pulled.cpu / pushed.cpu:.2f}x"
    if pushed.server is not None and pulled.server is not None:
        total_push, total_pull = pushed.cpu + pushed.server, pulled.cpu + pulled.server
        ratio += f", client+server CPU {total_pull / total_push:.2f}x"
    print(ratio)
    source.close()
    engine.dispose()
    return pushed, pulled


def plan_of(engine: sa.Engine, select: sa.Select[Any]) -> str:
    """The planner's own choice (PostgreSQL: not priced out), its lines joined by `` | ``."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            compiled = select.compile(conn)
            lines = [
                str(r[0]).split("  (cost")[0].strip(" ->")
                for r in conn.exec_driver_sql(f"EXPLAIN {compiled.string}", compiled.params)
            ]
            lines = [line for line in lines if "Scan" in line or "Aggregate" in line]
        else:
            lines = query_plan(conn, select)
    return " | ".join(lines)[:220]


def row(what: str, cost: Cost, sent: str) -> None:
    server = "" if cost.server is None else f"  server CPU {cost.server:6.2f} s"
    print(f"    {what:<37} wall {cost.wall:6.2f} s  client CPU {cost.cpu:6.2f} s{server}  {sent}")


def sqlite_references(path: Path) -> None:
    """The push-down through the time-only index (sorting the window) and through none."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    lo, hi = (t.strftime("%Y-%m-%d %H:%M:%S") for t in (END - WINDOW, END))
    counts = (
        "SELECT gender, approved, repaid, credit_score, count(*) FROM decisions {} "
        "WHERE datetime(decided_at) >= ? AND datetime(decided_at) < ? "
        "GROUP BY credit_score, repaid, approved, gender"
    )
    for what, access in (
        ("push-down, time-only index (sorts)", "INDEXED BY decisions_decided_at_window"),
        ("push-down without an index (before)", "NOT INDEXED"),
    ):
        sql = counts.replace("{}", access)  # fixed text; the bounds are parameters
        wall, cpu = time.perf_counter(), time.process_time()
        db.execute(sql, (lo, hi)).fetchall()
        row(what, Cost(time.perf_counter() - wall, time.process_time() - cpu), "(one run)")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench-pushdown")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"SQL source push-down vs pull, {args.rows:,} rows over {DAYS} days, window 7d, "
        f"best of {args.repeat} interleaved runs; load average {' '.join(load)}"
    )
    lite = args.dir / f"lender-{args.rows}.db"
    build_sqlite(lite, args.rows)
    results = {"SQLite": compare(f"sqlite:///{lite}", "SQLite", args.repeat, None)}
    sqlite_references(lite)
    if not args.no_pg:
        try:
            admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                if not conn.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": PG_DB}
                ).first():
                    conn.execute(sa.text(f"CREATE DATABASE {PG_DB}"))
                conn.execute(
                    sa.text(f"ALTER DATABASE {PG_DB} SET max_parallel_workers_per_gather = 0")
                )
        except sa.exc.SQLAlchemyError as exc:
            print(f"  PostgreSQL: skipped ({type(exc).__name__})")
            admin = None
        if admin is not None:
            url = make_url(PG).set(database=PG_DB).render_as_string(hide_password=False)
            build_postgres(url, args.rows)
            results["PostgreSQL"] = compare(url, "PostgreSQL", args.repeat, admin)
            admin.dispose()
    print(f"load average at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    for label, (pushed, pulled) in results.items():
        wall = pulled.wall / pushed.wall
        cpu = (pulled.cpu + (pulled.server or 0)) / (pushed.cpu + (pushed.server or 0))
        met = "met" if wall >= 2 else "NOT met"
        print(
            f"goal push-down >= 2x the cheaper pull on {label}: wall {wall:.2f}x, "
            f"CPU (client + server) {cpu:.2f}x -> {met}"
        )


if __name__ == "__main__":
    main()
