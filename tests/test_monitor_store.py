"""Many monitors in one store (issue 18, revision 0015): each monitor's cycle index, drift
baseline and alert episodes are its own, every row and event names its monitor, and the one
audit chain covers them all — a row moved to another monitor is an edit ``verify`` finds."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from fairlens_monitor.audit.events import MONITOR_ADDED, MONITOR_PAUSED
from fairlens_monitor.audit.verify import verify_chain
from fairlens_monitor.config.monitors import load_portfolio
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops.app import open_cipher, open_repository
from fairlens_monitor.ops.cycle import FailedCycle, record_failure, run_cycle
from fairlens_monitor.ops.governance import record_config_change
from fairlens_monitor.security.crypto import AlertCipher
from fairlens_monitor.store.monitors import MonitorRow
from fairlens_monitor.store.repository import Repository
from fairlens_monitor.store.rowstore import check_rows
from tests.conftest import query_url

Clock = Callable[[], datetime]
CLOSE_AFTER = 2


@pytest.fixture
def portfolio(write_config: Callable[..., Path]) -> dict[str, Settings]:
    """Two simulator monitors in one SQLite file: ``cards`` drifts (adverse), ``autos`` not."""
    config = write_config(
        {
            "alerts": {"close_after": CLOSE_AFTER},
            "drift_detection": {"baseline_readings": 2},
            "monitors": {
                "cards": {"simulation": {"drift": 1.0, "seed": 11}},
                "autos": {"simulation": {"drift": 0.0, "seed": 5}},
            },
        }
    )
    return load_portfolio(config, env={})


def open_all(portfolio: dict[str, Settings]) -> tuple[dict[str, Repository], AlertCipher]:
    first = next(iter(portfolio.values()))
    repo = open_repository(first)
    return {name: repo.for_monitor(name) for name in portfolio}, open_cipher(first, repo)


def sql(settings: Settings, statement: str) -> list[tuple[Any, ...]]:
    return query_url(settings.database.url, statement)


def payloads(settings: Settings, event_type: str) -> list[dict[str, Any]]:
    rows = sql(
        settings,
        f"SELECT canonical FROM audit_events WHERE event_type = '{event_type}' ORDER BY seq",
    )
    return [json.loads(c)["payload"] for (c,) in rows]


def test_interleaved_monitors_keep_their_own_index_baseline_and_episodes(
    portfolio: dict[str, Settings], clock: Clock
) -> None:
    repos, cipher = open_all(portfolio)
    cards, autos = portfolio["cards"], portfolio["autos"]
    for _ in range(3):
        run_cycle(cards, repos["cards"], cipher, clock=clock, actor="cli")
        run_cycle(autos, repos["autos"], cipher, clock=clock, actor="cli")
    # each monitor counts its own cycles (a shared index would give autos 1, 3, 5)
    assert sql(cards, "SELECT monitor, cycle_index FROM runs ORDER BY id") == [
        (m, i) for i in range(3) for m in ("cards", "autos")
    ]
    assert repos["cards"].completed_cycles() == repos["autos"].completed_cycles() == 3
    # only the drifting monitor opened an episode
    assert sql(cards, "SELECT monitor, kind, state FROM alerts WHERE kind = 'dir'") == [
        ("cards", "dir", "open")
    ]
    # the drift baseline is each monitor's own first readings
    for name in ("cards", "autos"):
        own = sql(
            cards,
            "SELECT group_approved, group_applicants, reference_approved, "
            f"reference_applicants FROM readings WHERE monitor = '{name}' "
            "AND scenario = 'monitored' ORDER BY id LIMIT 2",
        )
        assert repos[name].drift_history("gender", 2)[0] == own
    assert repos["cards"].drift_history("gender", 2) != repos["autos"].drift_history("gender", 2)
    # the clean monitor's readings neither advance nor close the other's episode
    for _ in range(CLOSE_AFTER + 1):
        run_cycle(autos, repos["autos"], cipher, clock=clock, actor="cli")
    assert sql(cards, "SELECT state, clean_streak FROM alerts WHERE kind = 'dir'") == [("open", 0)]
    # every row of a cycle names its monitor
    for table in ("readings", "group_results", "alerts"):
        kinds = sql(cards, f"SELECT DISTINCT monitor FROM {table} ORDER BY monitor")
        assert kinds == ([("cards",)] if table == "alerts" else [("autos",), ("cards",)])
    readings = dict(sql(cards, "SELECT run_id, monitor FROM readings"))
    assert readings == dict(sql(cards, "SELECT id, monitor FROM runs"))
    # latest readings are the monitor's own
    assert {r.monitor for r in repos["autos"].latest_readings(50)} == {"autos"}
    assert len(repos["cards"].latest_readings(50)) == 6
    repos["cards"].engine.dispose()


def test_one_chain_names_each_monitor_and_verifies_across_them(
    portfolio: dict[str, Settings], clock: Clock
) -> None:
    repos, cipher = open_all(portfolio)
    cards, autos = portfolio["cards"], portfolio["autos"]
    for _ in range(2):
        run_cycle(autos, repos["autos"], cipher, clock=clock, actor="cli")
        run_cycle(cards, repos["cards"], cipher, clock=clock, actor="cli")
    failed = FailedCycle(clock(), clock(), "RuntimeError: source down", "cli", None)
    assert record_failure(autos, repos["autos"], failed) is not None
    # one monitor_added per monitor, at its first run, with its row's digest
    added = payloads(cards, MONITOR_ADDED)
    assert [p["monitor"] for p in added] == ["autos", "cards"]
    assert all(set(p["row_digests"]) == {"form", "monitors"} for p in added)
    rows = {r.name: r for r in repos["cards"].monitor_rows()}
    assert sorted(rows) == ["autos", "cards"]
    assert rows["cards"].interval_seconds == cards.schedule.interval_seconds
    assert rows["cards"].schedule == "every 0.2s"
    assert rows["cards"].config_hash == cards.config_hash()
    # every event a monitor's work wrote names it
    runs = dict(sql(cards, "SELECT id, monitor FROM runs"))
    for event_type in ("cycle_completed", "cycle_failed", "alert_raised"):
        found = payloads(cards, event_type)
        assert found
        assert all(p["monitor"] == runs[p["run_id"]] for p in found)
    # one chain, intact, and every row of both monitors as recorded
    repo = repos["cards"]
    report = verify_chain(repo.iter_records(), repo.iter_links())
    assert report.intact
    assert report.count == 2 + 4 + 1 + 1  # monitor_added ×2, cycles, failure, alert
    assert check_rows(repo.engine) == []
    # moving one of cards' readings to autos is an edit
    moved = sql(cards, "SELECT max(id) FROM readings WHERE monitor = 'cards'")[0][0]
    with repo.engine.begin() as conn:
        conn.execute(text(f"UPDATE readings SET monitor = 'autos' WHERE id = {moved}"))
        conn.execute(text("UPDATE group_results SET monitor = 'x' WHERE id = 1"))
        conn.execute(text("UPDATE monitors SET paused = 1 WHERE name = 'autos'"))
    anomalies = sorted((a.kind, a.table, a.id) for a in check_rows(repo.engine))
    autos_id = sql(cards, "SELECT id FROM monitors WHERE name = 'autos'")[0][0]
    assert anomalies == [
        ("row_modified", "group_results", 1),
        ("row_modified", "monitors", autos_id),
        ("row_modified", "readings", moved),
    ]
    repo.engine.dispose()


def test_put_monitors_writes_rows_and_one_event_with_their_digests(
    portfolio: dict[str, Settings], clock: Clock
) -> None:
    repos, cipher = open_all(portfolio)
    cards = portfolio["cards"]
    repo = repos["cards"]
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        MonitorRow("cards", at, schedule="every 60s", interval_seconds=60.0),
        MonitorRow("autos", at, schedule="cron 0 6 * * *", interval_seconds=86400.0),
    ]
    record = repo.put_monitors(
        rows, event_type=MONITOR_ADDED, payload={"reason": "config"}, actor="cli", ts="t"
    )
    assert set(record.payload["row_digests"]) == {"form", "monitors"}
    assert "monitor" not in record.payload  # two rows: the caller names them if it wants
    assert repo.monitor_rows() == sorted(rows, key=lambda r: r.name)
    # the first run finds its row: no second monitor_added
    run_cycle(cards, repo, cipher, clock=clock, actor="cli")
    assert len(payloads(cards, MONITOR_ADDED)) == 1
    paused = MonitorRow(
        "autos", at, paused=True, paused_at=at + timedelta(hours=1), paused_by="alice"
    )
    again = repo.put_monitors(
        [paused],
        event_type=MONITOR_PAUSED,
        payload={"note": "model retrained"},
        actor="cli",
        ts="t",
    )
    assert again.payload["monitor"] == "autos"
    assert {r.name: r for r in repo.monitor_rows()}["autos"] == paused
    assert check_rows(repo.engine) == []  # the row re-recorded by a monitor event is fine
    with pytest.raises(ValueError, match="event_type"):
        repo.put_monitors([paused], event_type="cycle_completed", payload={}, actor="c", ts="t")
    with pytest.raises(ValueError, match="monitor name"):
        repo.put_monitors(
            [MonitorRow("Bad Name", at)], event_type=MONITOR_ADDED, payload={}, actor="c", ts="t"
        )
    with pytest.raises(ValueError, match="twice"):
        repo.put_monitors(
            [paused, paused], event_type=MONITOR_PAUSED, payload={}, actor="c", ts="t"
        )
    with pytest.raises(ValueError, match="Repository"):
        repo.for_monitor("")
    assert len(payloads(cards, MONITOR_PAUSED)) == 1  # the refused writes wrote nothing
    repo.engine.dispose()


def test_settings_snapshots_are_per_monitor(portfolio: dict[str, Settings]) -> None:
    repos, _ = open_all(portfolio)
    cards, autos = portfolio["cards"], portfolio["autos"]
    assert record_config_change(cards, repos["cards"], actor="cli", ts="t") is not None
    # autos has no snapshot yet: the cards one is not its
    assert repos["autos"].last_settings_snapshot(["config_changed"]) == (None, None)
    assert record_config_change(autos, repos["autos"], actor="cli", ts="t") is not None
    assert record_config_change(cards, repos["cards"], actor="cli", ts="t") is None
    assert record_config_change(autos, repos["autos"], actor="cli", ts="t") is None
    assert [p["monitor"] for p in payloads(cards, "config_changed")] == ["cards", "autos"]
    repos["cards"].engine.dispose()


def test_the_offline_verifier_checks_every_monitors_rows(
    portfolio: dict[str, Settings], clock: Clock, tmp_path: Path
) -> None:
    """An examiner's export of a two-monitor store verifies with the stdlib-only script,
    a monitor row re-recorded by a monitor event included; a moved reading does not."""
    import subprocess
    import sys

    from fairlens_monitor.ops.export import export_jsonl

    repos, cipher = open_all(portfolio)
    for name, settings in portfolio.items():
        run_cycle(settings, repos[name], cipher, clock=clock, actor="cli")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    repos["autos"].put_monitors(
        [MonitorRow("autos", at, paused=True, paused_at=at, paused_by="alice")],
        event_type=MONITOR_PAUSED,
        payload={"note": "retraining"},
        actor="cli",
        ts="t",
    )
    script = Path(__file__).resolve().parents[1] / "scripts" / "offline_verify.py"

    def offline() -> subprocess.CompletedProcess[str]:
        export_jsonl(repos["cards"], tmp_path / "audit.jsonl")
        return subprocess.run(
            [sys.executable, "-I", str(script), str(tmp_path / "audit.jsonl")],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    intact = offline()
    assert intact.returncode == 0, intact.stderr
    moved = sql(portfolio["cards"], "SELECT max(id) FROM readings WHERE monitor = 'cards'")[0][0]
    with repos["cards"].engine.begin() as conn:
        conn.execute(text(f"UPDATE readings SET monitor = 'autos' WHERE id = {moved}"))
    tampered = offline()
    assert tampered.returncode != 0
    assert f"row readings id {moved}" in tampered.stderr
    assert "row_modified" in tampered.stderr
    repos["cards"].engine.dispose()


def test_retention_keeps_each_monitors_newest_ok_run(
    portfolio: dict[str, Settings], clock: Clock
) -> None:
    """A monitor's newest ok run is its next cycle's index: retention deleting every expired
    run would hand a paused monitor its old indexes again."""
    from fairlens_monitor.store.maintenance import apply_retention

    repos, cipher = open_all(portfolio)
    for _ in range(3):
        run_cycle(portfolio["autos"], repos["autos"], cipher, clock=clock, actor="cli")
    later = datetime(2030, 1, 1, tzinfo=UTC)
    done = apply_retention(
        repos["autos"],
        readings_before=later,
        runs_before=later,
        prune=None,
        audit_before="2000",
        dry_run=False,
        ts="t",
    )
    assert (done["readings"], done["runs"]) == (6, 2)
    assert sql(portfolio["autos"], "SELECT monitor, cycle_index FROM runs") == [("autos", 2)]
    assert repos["autos"].completed_cycles() == 3
    assert check_rows(repos["autos"].engine) == []
    repos["autos"].engine.dispose()
