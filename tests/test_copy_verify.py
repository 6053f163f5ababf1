"""`db copy` keeps nothing that does not verify (issue 14, item 8), on real PostgreSQL.

A tampered SQLite source used to be copied in full and committed before the check, so the
next `once` extended the tampered chain on PostgreSQL and a retry was refused as non-empty.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from fairlens_monitor.cli.main import cli
from fairlens_monitor.ops.verification import verify_store
from fairlens_monitor.store.copy import copy_database
from fairlens_monitor.store.repository import Repository
from tests.conftest import BASE_CONFIG, merge, query_url

TABLES = ("runs", "readings", "group_results", "alerts", "audit_events", "checkpoints")


def setup(tmp_path: Path) -> tuple[Path, str]:
    sqlite_url = f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}"
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            merge(
                BASE_CONFIG,
                {
                    "database": {"url": sqlite_url},
                    "simulation": {"drift": 1.0},
                    "audit": {"checkpoint_every": 3},
                },
            )
        )
    )
    for _ in range(4):
        assert fl(config, "once").exit_code == 0
    return config, sqlite_url


def fl(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def rows_in(url: str) -> int:
    return sum(int(query_url(url, f"SELECT count(*) FROM {t}")[0][0]) for t in TABLES)


def test_a_tampered_source_is_not_copied_and_a_retry_works(pg_url: str, tmp_path: Path) -> None:
    config, sqlite_url = setup(tmp_path)
    db = tmp_path / "var" / "fairlens.db"
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")
        (original,) = conn.execute("SELECT actor FROM audit_events WHERE seq = 2").fetchone()
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    refused = fl(config, "db", "copy", sqlite_url, pg_url)
    assert refused.exit_code == 1, refused.output
    assert "source does NOT verify: first broken seq 2 (modified); nothing was copied" in (
        refused.output
    )
    assert query_url(pg_url, "SELECT count(*) FROM pg_tables WHERE tablename = 'runs'") in (
        [(0,)],
        [(1,)],
    )
    if query_url(pg_url, "SELECT count(*) FROM pg_tables WHERE tablename = 'runs'") == [(1,)]:
        assert rows_in(pg_url) == 0
    with sqlite3.connect(db) as conn:  # the operator repairs the source and retries
        conn.execute("UPDATE audit_events SET actor = ? WHERE seq = 2", (original,))
    again = fl(config, "db", "copy", sqlite_url, pg_url)
    assert again.exit_code == 0, again.output
    assert rows_in(pg_url) == rows_in(sqlite_url)


def test_the_destination_is_verified_inside_the_copy_transaction(
    pg_url: str, tmp_path: Path
) -> None:
    """The check reads the copied rows through the copy's own uncommitted transaction; when
    it fails, every row is rolled back and the empty destination accepts a retry."""
    config, sqlite_url = setup(tmp_path)
    settings_dir = tmp_path / "var"
    seen: list[tuple[bool, int, int]] = []

    def check(copy: Repository) -> None:
        report = verify_store(
            copy,
            anchor_file=settings_dir / "anchor.jsonl",
            public_key=settings_dir / "keys" / "checkpoint_ed25519.pub",
        ).chain
        seen.append((report.intact, report.count, report.anchored_seq))
        assert rows_in(pg_url) == 0  # nothing is visible outside the transaction yet
        raise RuntimeError("the copy does not verify")

    with pytest.raises(RuntimeError):
        copy_database(sqlite_url, pg_url, check)
    [(intact, count, anchored)] = seen
    assert intact
    assert count == int(query_url(sqlite_url, "SELECT count(*) FROM audit_events")[0][0])
    assert anchored > 0
    assert rows_in(pg_url) == 0
    done = fl(config, "db", "copy", sqlite_url, pg_url)
    assert done.exit_code == 0, done.output
    assert "copy verified:" in done.stdout
