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

from sqlalchemy import event

from fairlens_monitor.config.settings import Settings
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
