"""Small builders for tests: model rows, the SQLite file of a config, a per-group table."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.fairness.counts import group_table, normalise
from fairlens_monitor.fairness.groups import GroupSpec, GroupTable
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
        monitor="default",
    )


def sqlite_file(settings: Settings) -> Path:
    """The SQLite file of these settings' database; a test that needs one fails plainly on
    another back end (a PostgreSQL URL once became a stray file named after it)."""
    path = sqlite_path(settings.database.url)
    assert path is not None, f"this test needs a SQLite database, not {settings.database.url}"
    return path


def table_from_frame(
    df: pd.DataFrame,
    spec: GroupSpec,
    outcome: str,
    label: str | None = None,
    *,
    where: str = "the data",
    missing_values: Collection[str] = (),
) -> GroupTable:
    """Validate the columns of a frame of decisions and sum its groups up (the tests' way
    to a per-group table: the package's own path, ``counts.normalise`` + ``group_table``).

    Args:
        df: one row per decision.
        spec: how rows become groups.
        outcome: the decision column.
        label: optional ground-truth column.
        where: names the data in error messages.
        missing_values: texts that also mean "missing" (see :mod:`fairlens_monitor.fairness.cells`).

    Returns:
        The per-group table (see :func:`group_table`).

    Raises:
        DataError: a column is missing, or the outcome/label is missing or not binary.
    """
    counts = normalise(df, spec, outcome, label=label, where=where, missing_values=missing_values)
    return group_table(counts)
