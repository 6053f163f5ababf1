"""A row's digest taken from the values a cycle inserted is the digest of the row as stored.

``store.rowvalues`` digests a cycle's new rows from their values instead of reading them
back (issue 17). On SQLite and PostgreSQL, each kind of value a column may be handed must
give, inside the inserting transaction, exactly the digest ``rowstore.row_digests`` takes
from the stored row — from the values when the value is plain, by reading back otherwise
(``-0.0``, numpy and pandas subclasses, an integer in a float column, a time in another zone).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from fairlens_monitor.audit.rowforms import CURRENT_FORM, FORMS
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.ops.app import open_cipher, open_repository
from fairlens_monitor.ops.cycle import run_cycle
from fairlens_monitor.store.cyclewrite import GROUPS, RUNS, insert_rows
from fairlens_monitor.store.models import GroupResult, Reading
from fairlens_monitor.store.repository import Repository
from fairlens_monitor.store.rowstore import row_digests
from fairlens_monitor.store.rowvalues import digest_of, inserted_digests
from tests.conftest import merge
from tests.factories import make_run


@pytest.fixture
def repo(
    backend_url: str, write_config: Callable[..., Path], clock: Callable[[], datetime]
) -> Iterator[Repository]:
    """A store holding one real cycle (so a reading exists to hang group rows on)."""
    config = write_config(merge({"database": {"url": backend_url}}, {"simulation": {"drift": 1.0}}))
    settings = load_settings(config, env={})
    repository = open_repository(settings)
    run_cycle(settings, repository, open_cipher(settings, repository), clock=clock, actor="daemon")
    yield repository
    repository.engine.dispose()


FLOATS: list[tuple[Any, bool]] = [  # (value, digested from the value itself)
    (0.0, True),
    (0.25, True),
    (1.0, True),
    (1e-05, True),
    (5e-324, True),
    (1.7976931348623157e308, True),
    (math.inf, True),
    (-math.inf, True),
    (math.nan, True),
    (None, True),
    (-0.0, False),
    (np.float64(0.25), False),
    (np.float32(0.5), False),
    (2, False),
]


@pytest.mark.parametrize(("value", "direct"), FLOATS)
def test_a_float_column_digests_as_stored(repo: Repository, value: Any, direct: bool) -> None:
    with repo.sessions() as s:
        reading_id = s.scalar(select(func.max(Reading.id)))
        row = GroupResult(
            reading_id=reading_id,
            monitor="default",
            label="test-group",
            role="compared",
            applicants=3,
            approved=1,
            rate=1 / 3,
            share=0.5,
            impact_ratio=value,
            p_value=value,
            verdict=None,
        )
        insert_rows(s.connection(), GROUPS, [row])
        form = FORMS[CURRENT_FORM]["group_results"]
        assert (digest_of(form, GROUPS, row) is not None) is direct
        got = inserted_digests(s, {"group_results": (GROUPS, [row])}, {})
        assert got == row_digests(s, {"group_results": [row.id]})
        s.rollback()


ZONE = timezone(timedelta(hours=5, minutes=30))
MOMENT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
TEXTS: list[tuple[dict[str, Any], bool]] = [
    ({}, True),
    ({"started_at": MOMENT.astimezone(ZONE)}, True),
    ({"scheduled_for": MOMENT.replace(microsecond=0)}, True),
    ({"error": 'quote " backslash \\ tab \t é 😀 \u2028'}, True),
    ({"error": ""}, True),
    ({"cycle_index": 2**31 - 1}, True),
    ({"started_at": pd.Timestamp(MOMENT)}, False),
    ({"cycle_index": np.int64(4)}, False),
]


@pytest.mark.parametrize(("values", "direct"), TEXTS)
def test_int_text_and_time_columns_digest_as_stored(
    repo: Repository, values: dict[str, Any], direct: bool
) -> None:
    run = make_run("failed")
    for key, value in values.items():
        setattr(run, key, value)
    with repo.sessions() as s:
        if direct or repo.engine.dialect.name == "sqlite":
            insert_rows(s.connection(), RUNS, [run])
        else:  # psycopg adapts no numpy integer: nothing to digest
            return
        form = FORMS[CURRENT_FORM]["runs"]
        assert (digest_of(form, RUNS, run) is not None) is direct
        got = inserted_digests(s, {"runs": (RUNS, [run])}, {})
        assert got == row_digests(s, {"runs": [run.id]})
        s.rollback()


def test_changed_rows_are_always_read_back(repo: Repository) -> None:
    """An updated row's other columns are as stored: only the database knows them."""
    with repo.sessions() as s:
        run = make_run()
        insert_rows(s.connection(), RUNS, [run])
        got = inserted_digests(s, {}, {"runs": [run.id]})
        assert got == row_digests(s, {"runs": [run.id]})
        assert set(got) == {"form", "runs"}
        s.rollback()
