"""Per-monitor leases on PostgreSQL (store.monitor_lease) and their migration (0016)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops.app import open_repository
from fairlens_monitor.store.db import make_engine
from fairlens_monitor.store.lease import FencedError, monitor_scope
from fairlens_monitor.store.monitor_lease import MonitorLeases
from fairlens_monitor.store.repository import Repository
from fairlens_monitor.store.schema import alembic_config, upgrade
from tests.conftest import backend_builder, query_url

TS = "2026-01-01T00:00:00Z"


@pytest.fixture
def pair(
    pg_url: str, write_config: Callable[..., Path]
) -> Iterator[tuple[Repository, Repository, MonitorLeases, MonitorLeases]]:
    """Two daemons' repositories on one PostgreSQL database, each with its leases."""
    settings: Settings = backend_builder(pg_url, write_config)({})
    old, new = open_repository(settings), open_repository(settings)
    a = MonitorLeases(old.engine, lease_seconds=30, holder="host:1:a", monitors=["m1", "m2"])
    b = MonitorLeases(new.engine, lease_seconds=30, holder="host:2:b", monitors=["m1", "m2"])
    a.install(old.sessions)
    b.install(new.sessions)
    try:
        yield old, new, a, b
    finally:
        old.engine.dispose()
        new.engine.dispose()


def expire(repo: Repository, holder: str) -> None:
    """What a frozen daemon leaves: its leases and registry row past their expiry."""
    with repo.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE monitor_leases SET expires_at = clock_timestamp() - interval '1 s' "
                "WHERE holder = :h"
            ),
            {"h": holder},
        )
        conn.execute(
            text(
                "UPDATE daemon_registry SET expires_at = clock_timestamp() - interval '1 s' "
                "WHERE holder = :h"
            ),
            {"h": holder},
        )


def test_a_frozen_daemons_monitor_moves_and_its_late_write_is_refused(
    pair: tuple[Repository, Repository, MonitorLeases, MonitorLeases], pg_url: str
) -> None:
    old, new, a, b = pair
    a.renew()  # registers A
    taken = a.take("m1")
    assert taken is not None
    assert (taken.epoch, taken.previous_holder) == (1, None)
    b.renew()
    assert b.take("m1") is None  # live, and A is in the registry
    assert b.survey().holders == {"m1": "host:1:a"}
    assert sorted(b.survey().live) == ["host:1:a", "host:2:b"]
    with monitor_scope("m1"):
        old.for_monitor("m1").append_event("by_a", "daemon", {}, ts=TS)
        with pytest.raises(FencedError, match="monitor m1"):
            new.for_monitor("m1").append_event("probe", "daemon", {}, ts=TS)
    expire(old, "host:1:a")
    moved = b.take("m1")
    assert moved is not None
    assert (moved.epoch, moved.previous_holder, moved.expired) == (2, "host:1:a", True)
    assert "expired" in moved.reason
    assert a.leads("m1")  # A, frozen, still believes it leads: its commit is refused
    with monitor_scope("m1"), pytest.raises(FencedError, match="no longer leads monitor m1"):
        old.for_monitor("m1").append_event("late", "daemon", {}, ts=TS)
    assert not a.leads("m1")
    with monitor_scope("m1"):
        new.for_monitor("m1").append_event("by_b", "daemon", {}, ts=TS)
    kinds = [r[0] for r in query_url(pg_url, "SELECT event_type FROM audit_events ORDER BY seq")]
    assert "late" not in kinds
    assert "probe" not in kinds
    assert kinds[-2:] == ["by_a", "by_b"]
    # outside a monitor's scope the monitor leases fence nothing (the service lease does)
    old.append_event("service", "daemon", {}, ts=TS)


def test_renew_reports_lost_monitors_and_release_hands_over_at_once(
    pair: tuple[Repository, Repository, MonitorLeases, MonitorLeases],
) -> None:
    old, _new, a, b = pair
    a.renew()
    assert a.take("m1") is not None
    assert a.take("m2") is not None
    assert a.renew() == []
    expire(old, "host:1:a")
    b.renew()
    assert b.take("m2") is not None
    assert a.renew() == ["m2"]  # woken: m2 moved, m1 was still free and stays A's
    assert a.held() == ["m1"]
    a.release("m1")
    assert not a.leads("m1")
    handed = b.take("m1")
    assert handed is not None
    assert not handed.expired
    assert "released" in handed.reason


def test_a_holder_missing_from_the_registry_counts_as_gone(
    pair: tuple[Repository, Repository, MonitorLeases, MonitorLeases],
) -> None:
    old, _new, a, b = pair
    a.renew()
    assert a.take("m1") is not None
    with old.engine.begin() as conn:
        conn.execute(text("DELETE FROM daemon_registry WHERE holder = 'host:1:a'"))
    b.renew()
    assert b.survey().live == ("host:2:b",)
    taken = b.take("m1")
    assert taken is not None
    assert "left the daemon registry" in taken.reason
    a.leave()
    b.leave()
    assert query_url_rows(old, "SELECT count(*) FROM daemon_registry") == 0


def query_url_rows(repo: Repository, sql: str) -> int:
    with repo.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_sqlite_leads_every_monitor_and_fences_nothing(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'f.db'}")
    leases = MonitorLeases(engine, lease_seconds=5, holder="h", monitors=["a", "b"])
    assert leases.held() == ["a", "b"]
    assert leases.renew() == []
    assert leases.take("a") is None
    assert leases.survey().holders == {"a": "h", "b": "h"}
    engine.dispose()


def test_0016_upgrades_and_downgrades(backend_url: str) -> None:
    from alembic import command

    engine = make_engine(backend_url)
    try:
        upgrade(engine, backend_url)
        assert {"monitor_leases", "daemon_registry"} <= set(inspect(engine).get_table_names())
        if engine.dialect.name == "postgresql":
            leases = MonitorLeases(engine, lease_seconds=5, holder="h", monitors=["a"])
            leases.renew()
            assert leases.take("a") is not None
        command.downgrade(alembic_config(backend_url), "0015")
        engine.dispose()
        tables = set(inspect(engine).get_table_names())
        assert not {"monitor_leases", "daemon_registry"} & tables
        assert "monitors" in tables  # 0015 stays
        upgrade(engine, backend_url)
        assert {"monitor_leases", "daemon_registry"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
