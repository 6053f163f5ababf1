"""Small builders of model rows for store tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.store.db import sqlite_path
from fairlens_monitor.store.models import Run


def make_run(status: str = "ok") -> Run:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    return Run(
        cycle_index=0,
        actor="test",
        scheduled_for=None,
        started_at=moment,
        finished_at=moment,
        status=status,
        error=None,
        config_hash="0" * 64,
        code_version="test",
    )


def sqlite_file(settings: Settings) -> Path:
    """The SQLite file of these settings' database; a test that needs one fails plainly on
    another back end (a PostgreSQL URL once became a stray file named after it)."""
    path = sqlite_path(settings.database.url)
    assert path is not None, f"this test needs a SQLite database, not {settings.database.url}"
    return path
