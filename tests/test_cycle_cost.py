"""What a cycle's transaction costs does not grow with history (issues 14 and 17).

The cycle writes its rows with Core statements (no ORM unit of work, identity map or
autoflush on the hot path), and every query it makes either looks rows up through an index
or reads a bounded number of rows (``LIMIT``) in index order — checked with SQLite's
``EXPLAIN QUERY PLAN`` on a database that holds a history.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event

from fairlens_monitor.config.settings import Settings, load_settings
from fairlens_monitor.ops import measuring
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.ops.cycle import run_cycle
from fairlens_monitor.ops.sealing import Sealer
from tests.factories import sqlite_file

GROWING = (
    "runs",
    "readings",
    "group_results",
    "alerts",
    "source_files",
    "audit_events",
    "checkpoints",
    "reading_rollups",
)


def _cycles(settings: Settings, clock: Callable[[], datetime], n: int) -> Any:
    repo = open_repository(settings)
    cipher, signer = open_cipher(settings, repo), open_signing_key(settings, repo)
    sealer = Sealer.of(settings, signer)
    for _ in range(n):
        run_cycle(settings, repo, cipher, clock=clock, actor="daemon", sealer=sealer)
    return repo, cipher, sealer


def test_a_cycle_adds_nothing_to_the_orm_session(
    sqlite_settings: Callable[..., Settings], clock: Callable[[], datetime]
) -> None:
    """Rows go in as Core INSERTs: the session never flushes objects of a cycle."""
    settings = sqlite_settings({"simulation": {"drift": 1.0}})
    repo, cipher, sealer = _cycles(settings, clock, 2)
    flushed: list[int] = []
    event.listen(
        repo.sessions, "before_flush", lambda s, *_: flushed.append(len(s.new) + len(s.dirty))
    )
    outcome = run_cycle(settings, repo, cipher, clock=clock, actor="daemon", sealer=sealer)
    repo.engine.dispose()
    assert outcome.monitored is not None
    assert outcome.run_id > 0
    assert sum(flushed) == 0


def test_every_query_of_a_cycle_is_an_index_lookup_or_bounded(
    sqlite_settings: Callable[..., Settings], clock: Callable[[], datetime]
) -> None:
    settings = sqlite_settings(
        {"simulation": {"drift": 1.0}, "audit": {"checkpoint_seconds": 1e-9}}
    )
    repo, cipher, sealer = _cycles(settings, clock, 30)
    seen: list[tuple[str, Any]] = []
    event.listen(
        repo.engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, params, _ctx, _many: seen.append((sql, params)),
    )
    cycle_sql_start = len(seen)
    run_cycle(settings, repo, cipher, clock=clock, actor="daemon", sealer=sealer)
    path = sqlite_file(settings)
    repo.engine.dispose()
    selects = [
        (sql, p) for sql, p in seen[cycle_sql_start:] if sql.lstrip().upper().startswith("SELECT")
    ]
    assert len(selects) >= 6  # position, drift history (2), open alerts, head, digests...
    conn = sqlite3.connect(path)
    try:
        for sql, params in selects:
            plan = [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            scans = [
                step for step in plan if step.startswith("SCAN ") and step.split()[1] in GROWING
            ]
            assert not scans or " LIMIT " in sql.upper(), (sql, plan)
            assert "count(" not in sql.lower(), sql
    finally:
        conn.close()


def _traced_cycle(settings: Settings, clock: Callable[[], datetime]) -> tuple[list[str], Any]:
    """Thirty cycles, then one more whose every SQL statement SQLite itself reports (the
    prepared INSERTs and row reads on the DB-API cursor included, with values inlined)."""
    repo, cipher, sealer = _cycles(settings, clock, 30)
    statements: list[str] = []
    event.listen(
        repo.engine, "connect", lambda dbapi, _rec: dbapi.set_trace_callback(statements.append)
    )
    repo.engine.dispose()  # the connections opened from now on are traced
    outcome = run_cycle(settings, repo, cipher, clock=clock, actor="daemon", sealer=sealer)
    repo.engine.dispose()
    return statements, outcome


def test_every_statement_sqlite_runs_in_a_cycle_searches_an_index(
    sqlite_settings: Callable[..., Settings], clock: Callable[[], datetime]
) -> None:
    """SQLite's own trace: every read or update of a table that grows is an index search
    (or reads a bounded number of rows in index order); the new rows' digests are taken
    from their values (no read-back); an open episode's alert row is read back by id."""
    settings = sqlite_settings(
        {"simulation": {"drift": 1.0}, "audit": {"checkpoint_seconds": 1e-9}}
    )
    statements, outcome = _traced_cycle(settings, clock)
    assert [c.action for c in outcome.alerts] == ["continue"]  # an episode is open
    inserts = {s.split('"')[1] for s in statements if s.startswith('INSERT INTO "')}
    assert {"runs", "readings", "group_results", "audit_events"} <= inserts
    searched = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "UPDATE"))]
    assert not [s for s in searched if 'FROM "runs" WHERE "id" IN' in s]
    assert not [s for s in searched if 'FROM "readings" WHERE "id" IN' in s]
    assert [s for s in searched if 'FROM "alerts" WHERE "id" IN' in s]
    conn = sqlite3.connect(sqlite_file(settings))
    try:
        control = conn.execute("EXPLAIN QUERY PLAN SELECT id FROM readings WHERE source = 'x'")
        assert [row[-1] for row in control] == ["SCAN readings"]  # what a scan looks like
        for sql in searched:
            plan = [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
            scans = [
                step for step in plan if step.startswith("SCAN ") and step.split()[1] in GROWING
            ]
            assert not scans or " LIMIT " in sql.upper(), (sql, plan)
            assert "count(" not in sql.lower(), sql
    finally:
        conn.close()


def test_the_explanation_is_written_only_when_an_alert_opens(
    sqlite_settings: Callable[..., Settings],
    clock: Callable[[], datetime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stratum decomposition runs for the cycle that opens an episode, not for the
    cycles that continue it; the stored token still decrypts to the explanation."""
    calls: list[int] = []
    real = vars(measuring)["analyze_feature_impact"]

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(measuring, "analyze_feature_impact", counted)
    settings = sqlite_settings({"simulation": {"drift": 1.0}})
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    outcomes = [run_cycle(settings, repo, cipher, clock=clock, actor="daemon") for _ in range(40)]
    repo.engine.dispose()
    opened = [o for o in outcomes if o.token is not None]
    assert opened
    assert len(calls) == len(opened)  # once per cycle that opened an episode
    first = opened[0]
    assert first.monitored is not None
    assert cipher.decrypt(first.token or "") == first.monitored.explanation


def test_every_select_of_a_cycle_uses_an_index_on_postgresql(
    pg_url: str, write_config: Callable[..., Any], clock: Callable[[], datetime]
) -> None:
    """The same on PostgreSQL, with sequential scans disabled: a ``Seq Scan`` of a table
    that grows is then a query no index can serve."""
    settings = load_settings(
        write_config(
            {
                "database": {"url": pg_url},
                "simulation": {"drift": 1.0},
                "audit": {"checkpoint_seconds": 1e-9},
            }
        ),
        env={},
    )
    repo, cipher, sealer = _cycles(settings, clock, 30)
    seen: list[tuple[str, Any]] = []
    event.listen(
        repo.engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, params, _ctx, _many: seen.append((sql, params)),
    )
    run_cycle(settings, repo, cipher, clock=clock, actor="daemon", sealer=sealer)
    selects = [(sql, p) for sql, p in seen if sql.lstrip().upper().startswith("SELECT")]
    assert len(selects) >= 5
    with repo.engine.connect() as conn:
        cursor: Any = conn.connection.dbapi_connection.cursor()
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("EXPLAIN SELECT id FROM audit_events WHERE actor = 'nobody'")
        assert "Seq Scan on audit_events" in str(cursor.fetchall())  # what a scan looks like
        for sql, params in selects:
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = [row[0] for row in cursor.fetchall()]
            scanned = [s.split("Seq Scan on ")[1].split()[0] for s in plan if "Seq Scan on" in s]
            scans = [table for table in scanned if table in GROWING]
            assert not scans, (sql, plan)
        cursor.close()
    repo.engine.dispose()
