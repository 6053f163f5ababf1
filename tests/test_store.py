"""The store on a real SQLite file: migrations, durability settings, atomic cycles, the lock."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from fairlens_monitor.audit.chain import GENESIS_HASH, build_record
from fairlens_monitor.audit.verify import verify_chain
from fairlens_monitor.errors import AlreadyRunningError
from fairlens_monitor.store.db import instance_lock, make_engine
from fairlens_monitor.store.errors import StoreError
from fairlens_monitor.store.repository import Repository
from fairlens_monitor.store.schema import (
    alembic_config,
    check_readable,
    current_revision,
    ensure_schema,
    head_revision,
    upgrade,
)
from tests.factories import make_run

TABLES = {
    "alembic_version",
    "runs",
    "readings",
    "alerts",
    "audit_events",
    "audit_payload_edits",
    "checkpoints",
    "group_results",
    "source_files",
    "leadership",
    "reading_rollups",
    "monitors",
    "monitor_leases",  # 0016
    "daemon_registry",
    "notifications",  # 0017: the outbox
}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}"


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_upgrade_creates_the_schema_and_alembic_check_agrees(url: str, tmp_path: Path) -> None:
    engine = make_engine(url)
    assert upgrade(engine, url) == (None, head_revision(url))
    assert tables(tmp_path / "var" / "fairlens.db") == TABLES
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.check(cfg)  # raises if models and migrations disagree
    engine.dispose()


def test_downgrade_and_upgrade_round_trip(url: str, tmp_path: Path) -> None:
    engine = make_engine(url)
    upgrade(engine, url)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert tables(tmp_path / "var" / "fairlens.db") == {"alembic_version"}
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        assert conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type IN ('view', 'trigger')"
        ).fetchone() == (0,)
    upgrade(engine, url)
    assert current_revision(engine) == head_revision(url)
    engine.dispose()


def test_writer_connections_are_durable(url: str) -> None:
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    engine.dispose()


def test_readonly_engine_never_creates_or_writes(url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no database file"):
        make_engine(url, readonly=True)
    assert not (tmp_path / "var" / "fairlens.db").exists()
    writer = make_engine(url)
    upgrade(writer, url)
    reader = make_engine(url, readonly=True)
    with pytest.raises(OperationalError, match="readonly"), reader.begin() as conn:
        conn.execute(text("DELETE FROM runs"))
    reader.dispose()
    writer.dispose()


def test_schema_at_another_revision_is_refused(url: str, tmp_path: Path) -> None:
    engine = make_engine(url)
    upgrade(engine, url)
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    with pytest.raises(StoreError, match="run 'fairlens-monitor db upgrade'"):
        ensure_schema(engine, url)
    engine.dispose()


def test_schema_written_by_a_newer_version_says_upgrade_the_program(
    url: str, tmp_path: Path
) -> None:
    engine = make_engine(url)
    upgrade(engine, url)
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    newer = (
        "this database was written by a newer version (revision 9999_future); "
        "upgrade fairlens-monitor"
    )
    with pytest.raises(StoreError, match=re.escape(newer)):
        ensure_schema(engine, url)
    with pytest.raises(StoreError, match=re.escape(newer)):  # not Alembic's traceback
        upgrade(engine, url)
    reader = make_engine(url, readonly=True)
    with pytest.raises(StoreError, match=re.escape(newer)):
        check_readable(reader, url)
    reader.dispose()
    engine.dispose()


def test_a_cycle_commits_all_or_nothing(url: str, tmp_path: Path) -> None:
    engine = make_engine(url)
    upgrade(engine, url)
    repo = Repository(engine)

    def failing_events(*_args: object) -> list[tuple[str, dict[str, object]]]:
        raise RuntimeError("injected failure after the rows were flushed")

    with pytest.raises(RuntimeError, match="injected"):
        repo.save_cycle(
            make_run(), [], [], {}, {}, failing_events, close_after=3, actor="test", ts="t"
        )
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        for table in ("runs", "readings", "alerts"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        # the monitor's first run listed it in a transaction of its own, before the cycle's
        assert conn.execute("SELECT seq, event_type FROM audit_events").fetchall() == [
            (1, "monitor_added")
        ]
        assert conn.execute("SELECT name FROM monitors").fetchall() == [("default",)]
    saved = repo.save_cycle(
        make_run(), [], [], {}, {}, lambda *_: [("x", {"a": 1})], close_after=3, actor="t", ts="t"
    )
    assert saved.run_id == 1
    assert saved.added is None  # listed already
    assert [e.seq for e in saved.events] == [2]
    engine.dispose()


def test_instance_lock_is_exclusive_and_released(url: str) -> None:
    with instance_lock(url) as lock_path:
        assert lock_path is not None  # a SQLite file is locked through a file beside it
        assert lock_path.name == "fairlens.db.lock"
        with pytest.raises(AlreadyRunningError, match="already running"), instance_lock(url):
            pass
    with instance_lock(url):
        pass  # released on exit: taking it again works


def test_upgrading_a_database_with_history_keeps_it_verifiable(url: str, tmp_path: Path) -> None:
    engine = make_engine(url)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    repo = Repository(engine)
    # an event as the code of 0001 stored it: the payload twice (json.dumps and canonical)
    rec = build_record(
        seq=1,
        ts="2026-01-01T00:00:00.000000Z",
        event_type="cycle_completed",
        actor="t",
        payload={"dir": 0.7},
        prev_hash=GENESIS_HASH,
    )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (seq, ts, event_type, actor, payload, canonical, "
                "prev_hash, hash) VALUES (:seq, :ts, :event_type, :actor, :payload, "
                ":canonical, :prev_hash, :hash)"
            ),
            {**vars(rec), "payload": json.dumps(dict(rec.payload), indent=1)},
        )
    upgrade(engine, url)
    assert current_revision(engine) == head_revision(url)
    report = verify_chain(repo.iter_records(), repo.iter_links())
    assert report.intact
    assert report.count == 1
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        assert conn.execute("SELECT event_type FROM v_audit_trail").fetchall() == [
            ("cycle_completed",)
        ]
    engine.dispose()


def test_the_readers_schema_head_is_the_migrations_head(tmp_path: Path) -> None:
    """Readers check the revision against SCHEMA_HEAD without loading Alembic: a new
    migration must move it too."""
    from fairlens_monitor.store.schema import SCHEMA_HEAD, stored_revision

    url = f"sqlite:///{tmp_path / 'head.db'}"
    assert head_revision(url) == SCHEMA_HEAD
    engine = make_engine(url)
    assert stored_revision(engine) is None  # no version table yet
    upgrade(engine, url)
    assert stored_revision(engine) == SCHEMA_HEAD
    engine.dispose()
