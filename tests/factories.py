"""Small builders of model rows for store tests."""

from __future__ import annotations

from datetime import UTC, datetime

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
