"""One cycle against a real database — a SQLite file and a fresh PostgreSQL database — stored
rows, encryption, reproducibility, episodes, failures."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from fairlens_monitor.audit.verify import verify_chain
from fairlens_monitor.cli.render import cycle_json, cycle_lines
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.errors import KeyFileError
from fairlens_monitor.fairness.metrics import calculate_disparate_impact_ratio
from fairlens_monitor.ops.app import open_cipher, open_repository
from fairlens_monitor.ops.cycle import execute_cycle, run_cycle
from fairlens_monitor.security.crypto import AlertCipher, load_cipher
from fairlens_monitor.sources.simulator import generate_loan_data
from tests.conftest import backend_builder, monitored, query_url
from tests.factories import sqlite_file

Clock = Callable[[], datetime]


@pytest.fixture
def make_settings(backend_url: str, write_config: Callable[..., Path]) -> Callable[..., Settings]:
    """This module's tests run on both back ends (see conftest.backend_url)."""
    return backend_builder(backend_url, write_config)


def db_path(settings: Settings) -> Path:
    return sqlite_file(settings)


def rows(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    return query_url(settings.database.url, sql)


def test_drifted_cycle_stores_readings_alert_and_chain(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    settings = make_settings({"simulation": {"drift": 0.9}})
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    outcome = run_cycle(settings, repo, cipher, clock=clock, actor="cli")
    assert outcome.monitored is not None  # the simulator measures every cycle

    assert outcome.monitored.metrics["dir_alert"] is True
    assert rows(settings, "SELECT status, cycle_index, actor FROM runs") == [("ok", 0, "cli")]
    stored = rows(
        settings, "SELECT scenario, drift_level, dir, dir_alert FROM readings ORDER BY id"
    )
    assert [(s, d) for s, d, *_ in stored] == [("reference", 0.0), ("monitored", 0.9)]
    assert stored[1][2] == pytest.approx(outcome.monitored.metrics["dir"])
    [(token, state, key_id)] = rows(settings, "SELECT token, state, key_id FROM alerts")
    assert (state, key_id) == ("open", cipher.key_id)
    assert token == outcome.token
    assert cipher.decrypt(token) == outcome.monitored.explanation
    events = [r[0] for r in rows(settings, "SELECT event_type FROM audit_events ORDER BY seq")]
    assert events == ["monitor_added", "cycle_completed", "alert_raised"]  # first run lists it
    assert verify_chain(repo.iter_records(), repo.iter_links()).intact
    repo.engine.dispose()


def test_plaintext_explanation_never_reaches_the_database_file(
    sqlite_settings: Callable[..., Settings], clock: Clock
) -> None:
    settings = sqlite_settings({"simulation": {"drift": 1.0}})
    repo = open_repository(settings)
    outcome = run_cycle(settings, repo, open_cipher(settings, repo), clock=clock, actor="cli")
    assert outcome.monitored is not None  # the simulator measures every cycle
    repo.engine.dispose()
    explanation = outcome.monitored.explanation
    assert explanation
    assert "Potential bias" in explanation
    folder = db_path(settings).parent
    raw = b"".join(p.read_bytes() for p in folder.glob("fairlens.db*"))
    assert b"Potential bias" not in raw
    assert explanation.encode() not in raw
    assert outcome.token is not None
    assert outcome.token.encode() in raw


def test_a_stored_reading_is_reproduced_from_its_lineage(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    settings = make_settings({"simulation": {"drift": 0.45}})
    repo = open_repository(settings)
    run_cycle(settings, repo, open_cipher(settings, repo), clock=clock, actor="cli")
    repo.engine.dispose()
    [(n, drift, seed, u_n, u_k, p_n, p_k, dir_value, config_hash)] = rows(
        settings,
        "SELECT n_samples, drift_level, seed, group_applicants, "
        "group_approved, reference_applicants, reference_approved, dir, "
        "config_hash FROM readings WHERE scenario = 'monitored'",
    )
    again = calculate_disparate_impact_ratio(generate_loan_data(n, drift, seed=seed))
    d = again["details"]
    assert (d["female_count"], d["female_approved"], d["male_count"], d["male_approved"]) == (
        u_n,
        u_k,
        p_n,
        p_k,
    )
    assert again["dir"] == dir_value
    assert config_hash == settings.config_hash()


def test_fair_cycle_raises_no_alert(make_settings: Callable[..., Settings], clock: Clock) -> None:
    settings = make_settings({"simulation": {"drift": 0.0, "n_samples": 4000}})
    repo = open_repository(settings)
    outcome = run_cycle(settings, repo, open_cipher(settings, repo), clock=clock, actor="cli")
    assert outcome.token is None
    assert cycle_lines(outcome, echo_plaintext=True)[-1].startswith(
        "✅ Model Fairness Stable. DIR = "
    )
    assert rows(settings, "SELECT count(*) FROM alerts") == [(0,)]
    repo.engine.dispose()


def test_ramp_crosses_the_four_fifths_line(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    settings = make_settings(
        {
            "simulation": {
                "n_samples": 2000,
                "drift": {"mode": "ramp", "start": 0.0, "end": 1.0, "cycles": 6},
            }
        }
    )
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    outcomes = [run_cycle(settings, repo, cipher, clock=clock, actor="cli") for _ in range(6)]
    assert [o.cycle_index for o in outcomes] == list(range(6))
    assert [monitored(o).drift_level for o in outcomes] == pytest.approx(
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    )
    verdicts = [monitored(o).verdict for o in outcomes]
    assert verdicts[:2] == ["ok", "ok"]
    assert verdicts[-3:] == ["adverse"] * 3
    # One episode: the first adverse reading raises the alert, later ones keep it open.
    raised = [o.cycle_index for o in outcomes if o.token is not None]
    assert raised == [verdicts.index("adverse")]
    assert rows(settings, "SELECT kind, state, clean_streak FROM alerts") == [("dir", "open", 0)]
    repo.engine.dispose()


def test_alert_lines_and_json_follow_the_original_shape(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    settings = make_settings({"simulation": {"drift": 1.0}})
    repo = open_repository(settings)
    outcome = run_cycle(settings, repo, open_cipher(settings, repo), clock=clock, actor="cli")
    assert outcome.monitored is not None  # the simulator measures every cycle
    lines = cycle_lines(outcome, echo_plaintext=True)
    dir_text = f"{outcome.monitored.metrics['dir']:.2f}"
    assert lines[1] == f"⚠ ALERT: Fairness Drift Detected! DIR = {dir_text}"
    assert lines[2] == f"Encrypted alert token: {outcome.token}"
    assert lines[3] == f"Decrypted alert: {outcome.monitored.explanation}"
    assert len(cycle_lines(outcome, echo_plaintext=False)) == 3
    doc = cycle_json(outcome, repo.audit_tail(5), echo_plaintext=False)
    assert set(doc) >= {"fair_scenario", "drifted_scenario", "audit_tail"}
    assert doc["drifted_scenario"]["encrypted_alert"] == outcome.token
    assert doc["drifted_scenario"]["explanation"] is None
    assert [e["event_type"] for e in doc["audit_tail"]] == [
        "monitor_added",
        "cycle_completed",
        "alert_raised",
    ]
    repo.engine.dispose()


class BrokenCipher(AlertCipher):
    """Fault injection: encryption fails, as with a key the library rejects."""

    def encrypt(self, plaintext: str) -> str:
        raise RuntimeError("injected encryption failure")


def test_failed_cycle_is_recorded_and_the_next_one_runs(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    settings = make_settings({"simulation": {"drift": 1.0}})
    repo = open_repository(settings)
    good = open_cipher(settings, repo)
    broken = BrokenCipher(good.fernet, good.key_id, good.path)
    with pytest.raises(RuntimeError, match="injected"):
        execute_cycle(settings, repo, broken, clock=clock, actor="daemon")
    assert rows(settings, "SELECT status, error FROM runs") == [
        ("failed", "RuntimeError: injected encryption failure")
    ]
    assert rows(settings, "SELECT count(*) FROM readings") == [(0,)]
    outcome = execute_cycle(settings, repo, good, clock=clock, actor="daemon")
    assert outcome.cycle_index == 0  # a failed cycle does not advance the drift schedule
    assert rows(settings, "SELECT status FROM runs ORDER BY id") == [("failed",), ("ok",)]
    kinds = [r.event_type for r in repo.iter_records()]
    assert kinds == ["monitor_added", "cycle_failed", "cycle_completed", "alert_raised"]
    assert verify_chain(repo.iter_records(), repo.iter_links()).intact
    repo.engine.dispose()


def test_missing_key_with_stored_alerts_refuses(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    settings = make_settings({"simulation": {"drift": 1.0}})
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    run_cycle(settings, repo, cipher, clock=clock, actor="cli")
    cipher.path.unlink()
    with pytest.raises(KeyFileError, match="would make them unreadable"):
        open_cipher(settings, repo)
    assert not cipher.path.exists()
    repo.engine.dispose()


def test_an_episode_resolves_after_clean_readings(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    settings = make_settings(
        {
            "simulation": {
                "n_samples": 2000,
                "drift": {"mode": "ramp", "start": 1.0, "end": 0.0, "cycles": 2, "hold": 3},
            },
            "alerts": {"close_after": 2},
        }
    )
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    outcomes = [run_cycle(settings, repo, cipher, clock=clock, actor="cli") for _ in range(7)]
    assert [monitored(o).verdict for o in outcomes] == ["adverse"] * 4 + ["ok"] * 3
    actions = [[c.action for c in o.alerts] for o in outcomes]
    assert actions == [
        ["open"],
        ["continue"],
        ["continue"],
        ["continue"],
        ["count"],
        ["resolve"],
        [],
    ]
    assert rows(
        settings,
        "SELECT kind, state, clean_streak, last_reading_id, closed_at IS NOT NULL FROM alerts",
    ) == [("dir", "resolved", 2, 8, 1)]
    events = [r[0] for r in rows(settings, "SELECT event_type FROM audit_events")]
    assert events.count("alert_raised") == 1
    assert events.count("alert_resolved") == 1
    repo.engine.dispose()


def test_drift_is_flagged_before_the_verdict_turns(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    # Five quiet readings form the baseline; then DIR steps from 1.0 to about 0.83.
    settings = make_settings(
        {
            "simulation": {
                "n_samples": 2000,
                "drift": {"mode": "ramp", "start": 0.0, "end": 0.3, "cycles": 2, "hold": 6},
            },
            "drift_detection": {"baseline_readings": 5},
        }
    )
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    outcomes = [run_cycle(settings, repo, cipher, clock=clock, actor="cli") for _ in range(10)]
    statistics = [monitored(o).drift_statistic for o in outcomes]
    assert statistics[:5] == [None] * 5
    assert all(s is not None and s <= 8 for s in statistics[5:7])  # quiet before the step
    assert [monitored(o).verdict for o in outcomes] == ["ok"] * 10  # DIR stays above 0.8 ...
    opened = [o.cycle_index for o in outcomes if any(c.action == "open" for c in o.alerts)]
    assert len(opened) == 1
    assert 7 <= opened[0] <= 9
    assert rows(settings, "SELECT kind, state FROM alerts") == [("drift", "open")]
    stored = rows(
        settings,
        "SELECT drift_statistic, drift_alert FROM readings "
        "WHERE scenario = 'monitored' ORDER BY id",
    )
    assert [s for s, _ in stored] == pytest.approx(statistics)
    repo.engine.dispose()


def test_alerts_from_before_episodes_are_folded_into_one_and_resolved(
    sqlite_settings: Callable[..., Settings], clock: Clock
) -> None:
    from alembic import command

    from fairlens_monitor.store.db import make_engine
    from fairlens_monitor.store.schema import alembic_config, upgrade

    settings = sqlite_settings({"alerts": {"close_after": 1}})
    url = settings.database.url
    db_path(settings).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")  # the schema of version 0.1: one alert per reading
    # the key those tokens were made with (the monitor checks it against a stored token)
    token = load_cipher(settings.keys.dir, create=True).encrypt("DIR = 0.43 (<0.8).")
    with sqlite3.connect(db_path(settings)) as conn:
        for i in (1, 2):
            conn.execute(
                "INSERT INTO runs VALUES (?, ?, 'daemon', NULL, '2026-01-01 00:00:00',"
                " '2026-01-01 00:00:01', 'ok', NULL, 'h', '0.1.0')",
                (i, i - 1),
            )
            conn.execute(
                "INSERT INTO readings (id, run_id, scenario, measured_at, source, drift_level, "
                "n_samples, seed, protected_attribute, unprivileged_group, privileged_group, "
                "unprivileged_count, unprivileged_approved, privileged_count, "
                "privileged_approved, unprivileged_rate, privileged_rate, dir, dir_reason, gap, "
                "dir_threshold, gap_threshold, dir_alert, gap_alert, config_hash, code_version)"
                " VALUES (?, ?, 'monitored', '2026-01-01 00:00:01', 'simulator', 1, 400, 1, "
                "'gender', 'Female', 'Male', 200, 60, 200, 140, 0.3, 0.7, 0.43, NULL, 0.4, 0.8,"
                " 0.2, 1, 1, 'h', '0.1.0')",
                (i, i),
            )
            conn.execute(
                "INSERT INTO alerts VALUES (?, ?, ?, '2026-01-01 00:00:01', 'dir', "
                "0.43, ?, 'k', 'open')",
                (i, i, i, token),
            )
    upgrade(engine, url)
    engine.dispose()
    repo = open_repository(settings)
    assert repo.drift_history("gender", 30) == ([], 0.0)  # unassessed readings: no baseline
    outcome = run_cycle(settings, repo, open_cipher(settings, repo), clock=clock, actor="cli")
    assert outcome.monitored is not None  # the simulator measures every cycle
    assert outcome.monitored.verdict == "ok"
    assert [(c.action, c.resolved_ids) for c in outcome.alerts] == [("resolve", [1, 2])]
    assert rows(settings, "SELECT id, state FROM alerts ORDER BY id") == [
        (1, "resolved"),
        (2, "resolved"),
    ]
    repo.engine.dispose()


def test_an_intersection_is_measured_in_the_cycle(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    settings = make_settings(
        {
            "simulation": {"n_samples": 4000, "drift": 0.6},
            "measurement": {
                "protected_attributes": ["gender", "age"],
                "bands": {"age": [30]},
                "reference": "highest",
            },
        }
    )
    repo = open_repository(settings)
    outcome = run_cycle(settings, repo, open_cipher(settings, repo), clock=clock, actor="cli")
    assert outcome.monitored is not None  # the simulator measures every cycle
    groups = rows(
        settings,
        "SELECT label, role, g.verdict FROM group_results g JOIN readings r "
        "ON r.id = g.reading_id WHERE r.scenario = 'monitored' ORDER BY label",
    )
    assert [g[0] for g in groups] == ["Female & <30", "Female & >=30", "Male & <30", "Male & >=30"]
    assert {g[1] for g in groups if g[0].startswith("Male")} <= {"reference", "compared"}
    assert {g[2] for g in groups if g[0].startswith("Female")} == {"adverse"}
    assert outcome.monitored.verdict == "adverse"
    assert outcome.monitored.headline.label.startswith("Female")
    stored = rows(
        settings,
        "SELECT protected_attribute, groups_compared, reference_mode "
        "FROM readings WHERE scenario = 'monitored'",
    )
    assert stored == [("gender & age", 3, "highest")]
    repo.engine.dispose()


@pytest.mark.parametrize(("notify", "alerts"), [(False, 0), (True, 1)])
def test_inconclusive_is_quiet_unless_asked(
    make_settings: Callable[..., Settings], clock: Clock, notify: bool, alerts: int
) -> None:
    settings = make_settings(
        {"simulation": {"n_samples": 40, "drift": 0.8}, "alerts": {"notify_inconclusive": notify}}
    )
    repo = open_repository(settings)
    outcome = run_cycle(settings, repo, open_cipher(settings, repo), clock=clock, actor="cli")
    assert outcome.monitored is not None  # the simulator measures every cycle
    assert outcome.monitored.verdict == "inconclusive"  # 20 per group < min_group_size 30
    assert rows(settings, "SELECT count(*) FROM alerts") == [(alerts,)]
    repo.engine.dispose()
