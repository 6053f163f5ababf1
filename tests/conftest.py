"""Shared fixtures: a config written to tmp_path, a fixed clock, and the two back ends.

``backend_url`` runs a test on a SQLite file and on a fresh PostgreSQL database of its own
(created on the server named by ``FAIRLENS_TEST_PG``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``, and dropped afterwards). Without a
reachable server the PostgreSQL cases skip with the reason — unless
``FAIRLENS_REQUIRE_PG=1`` (set by ``.ci/run``), where they fail instead.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from fairlens_monitor.config.settings import Settings, load_settings

if TYPE_CHECKING:  # only for annotations: importing the cycle here would slow every test start
    from fairlens_monitor.monitoring.measure import ScenarioResult
    from fairlens_monitor.ops.cycle import CycleOutcome

BASE_CONFIG: dict[str, Any] = {
    "database": {"url": "sqlite:///var/fairlens.db"},
    "schedule": {"interval_seconds": 0.2, "misfire_grace_seconds": 5},
    "simulation": {"n_samples": 400, "seed": 7, "drift": 0.0},
    "thresholds": {"dir": 0.8, "gap": 0.2},
    "keys": {"dir": "var/keys"},
    "alerts": {"echo_plaintext": False},
}


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base``."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(autouse=True)
def page_address() -> Iterator[Callable[[str | None], None]]:
    """The address the trend page believes it listens on: 127.0.0.1 (``view``'s default)
    unless a test sets another; restored afterwards. Streamlit's own default (unset) means
    every interface, which the page treats as exposed (sign-in before anything shows)."""
    from streamlit import config as st_config

    before = st_config.get_option("server.address")

    def serve_on(address: str | None) -> None:
        st_config.set_option("server.address", address)

    serve_on("127.0.0.1")
    yield serve_on
    serve_on(before)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a config file (BASE_CONFIG deep-merged with overrides) and return its path."""

    def write(overrides: dict[str, Any] | None = None, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(merge(BASE_CONFIG, overrides or {})))
        return path

    return write


@pytest.fixture
def make_settings(write_config: Callable[..., Path]) -> Callable[..., Settings]:
    """Build validated settings from BASE_CONFIG plus overrides, via a real file (SQLite)."""

    def build(overrides: dict[str, Any] | None = None) -> Settings:
        return load_settings(write_config(overrides), env={})

    return build


@pytest.fixture
def sqlite_settings(write_config: Callable[..., Path]) -> Callable[..., Settings]:
    """The SQLite builder, for tests about the SQLite file itself in modules whose
    ``make_settings`` runs on both back ends."""

    def build(overrides: dict[str, Any] | None = None) -> Settings:
        return load_settings(write_config(overrides), env={})

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def clock() -> Callable[[], datetime]:
    """A clock that starts at 2026-01-01T00:00Z and advances one second per call."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ticks = itertools.count()
    return lambda: start + timedelta(seconds=next(ticks))


PG_SERVER = os.environ.get("FAIRLENS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An autocommit connection to the test server's maintenance database."""
    engine = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    try:
        engine.connect().close()
    except OperationalError as exc:
        engine.dispose()
        reason = f"PostgreSQL not reachable at {PG_SERVER}: {str(exc.orig).strip()}"
        if os.environ.get("FAIRLENS_REQUIRE_PG") == "1":
            pytest.fail(f"{reason} (FAIRLENS_REQUIRE_PG=1: .ci/run starts the server)")
        pytest.skip(f"{reason}; start it or set FAIRLENS_TEST_PG")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin: Engine) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = f"fairlens_t_{uuid.uuid4().hex[:16]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    with pg_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of one back end: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}"
    return str(request.getfixturevalue("pg_url"))


def backend_builder(url: str, write_config: Callable[..., Path]) -> Callable[..., Settings]:
    """A settings builder whose database is ``url`` (use as a module's ``make_settings``)."""

    def build(overrides: dict[str, Any] | None = None) -> Settings:
        return load_settings(
            write_config(merge({"database": {"url": url}}, overrides or {})), env={}
        )

    return build


def query_url(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run one query on any back end and return plain tuples.

    The values are whatever the driver returns for the columns of a textual query, which
    SQLAlchemy types as Any, so tests compare and count them without narrowing first."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql)).all()]
    finally:
        engine.dispose()


def monitored(outcome: CycleOutcome) -> ScenarioResult:
    """The cycle's monitored reading, for a test whose source always has decisions to measure
    (the simulator does every cycle); fails the test if the window was empty instead."""
    assert outcome.monitored is not None, f"cycle {outcome.cycle_index} measured no decisions"
    return outcome.monitored


def tamper(url: str, sql: str) -> None:
    """Run ``sql`` as someone with DDL rights would: first lift the append-only triggers
    (disable them on PostgreSQL, drop them on SQLite), in the same transaction."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(
                    text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
                )
            else:
                conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
                conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
            conn.execute(text(sql))
    finally:
        engine.dispose()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the fuzz tests' case counts (``record_property("fuzz_cases", ...)``), which also
    travel from pytest-xdist workers."""
    lines = [
        f"{report.nodeid}: {value}"
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "fuzz_cases"
    ]
    if lines:
        terminalreporter.write_sep("-", "fuzz cases")
        for line in lines:
            terminalreporter.write_line(line)
