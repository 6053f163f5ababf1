"""Contract tests: the same behaviour on SQLite and on PostgreSQL (one parametrized fixture).

Each PostgreSQL case works in a database of its own on the local server (see conftest.py).
The PostgreSQL-only cases — leader election, the auditor role — use ``pg_url`` directly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic import command
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from fairlens_monitor.audit.verify import verify_chain
from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import Settings, load_settings
from fairlens_monitor.ops.app import open_cipher, open_repository
from fairlens_monitor.ops.cycle import run_cycle
from fairlens_monitor.store.db import make_engine
from fairlens_monitor.store.repository import Repository
from fairlens_monitor.store.schema import alembic_config, head_revision, upgrade
from tests.conftest import BASE_CONFIG, merge, monitored, tamper
from tests.helpers.wait import wait_for

ROOT = Path(__file__).resolve().parents[1]
VIEWS = {
    "v_runs",
    "v_fairness_history",
    "v_alerts",
    "v_audit_trail",
    "v_checkpoints",
    "v_group_results",
    "v_source_files",
    "v_reading_rollups",
    "v_monitor_status",
}
Clock = Callable[[], datetime]


def config_for(tmp_path: Path, url: str, overrides: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "config.yaml"
    doc = merge(BASE_CONFIG, {"database": {"url": url}, **(overrides or {})})
    path.write_text(yaml.safe_dump(doc))
    return path


def scalar(url: str, sql: str) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def test_migrations_make_the_same_schema_and_alembic_check_is_clean(backend_url: str) -> None:
    engine = make_engine(backend_url)
    assert upgrade(engine, backend_url)[1] == head_revision(backend_url)
    found = inspect(engine)
    assert {"runs", "readings", "group_results", "alerts", "audit_events", "checkpoints"} <= set(
        found.get_table_names()
    )
    assert set(found.get_view_names()) >= VIEWS
    cfg = alembic_config(backend_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.check(cfg)
        command.downgrade(cfg, "base")
        command.upgrade(cfg, "head")
        command.check(cfg)
    engine.dispose()


def test_cycles_alerts_and_the_chain(backend_url: str, tmp_path: Path, clock: Clock) -> None:
    settings = load_settings(
        config_for(
            tmp_path,
            backend_url,
            {
                "simulation": {
                    "n_samples": 2000,
                    "drift": {"mode": "ramp", "start": 0.0, "end": 1.0, "cycles": 4},
                }
            },
        ),
        env={},
    )
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    outcomes = [run_cycle(settings, repo, cipher, clock=clock, actor="cli") for _ in range(6)]
    assert [monitored(o).verdict for o in outcomes][-3:] == ["adverse"] * 3
    assert scalar(backend_url, "SELECT count(*) FROM readings") == 12
    assert scalar(backend_url, "SELECT count(*) FROM group_results") == 24
    assert scalar(backend_url, "SELECT count(*) FROM alerts") == 1  # one episode
    stored = scalar(backend_url, "SELECT measured_at FROM readings ORDER BY id DESC LIMIT 1")
    assert stored is not None
    report = verify_chain(repo.iter_records(), repo.iter_links())
    assert report.intact
    assert report.count == 1 + 6 + 1  # monitor_added (the first run), 6 cycles, one alert
    # The payload is stored once, inside the hashed text (0013): every row's other columns
    # frame that text exactly, and the fast path verifies the same chain.
    assert {r[-1] for r in repo.iter_stored()} == {0}
    assert verify_chain(repo.iter_stored(), repo.iter_links()) == report
    repo.engine.dispose()


def test_cli_once_history_verify(backend_url: str, tmp_path: Path) -> None:
    config = config_for(tmp_path, backend_url, {"simulation": {"drift": 1.0}})
    run = CliRunner()
    for _ in range(3):
        assert run.invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    history = run.invoke(cli, ["--config", str(config), "history", "--json"])
    assert history.exit_code == 0, history.output
    assert {r["verdict"] for r in json.loads(history.stdout)} >= {"adverse"}
    verified = run.invoke(cli, ["--config", str(config), "verify"])
    assert verified.exit_code == 0, verified.output
    # monitor_added (once lists the monitor with its rules first) + 3 cycles + alert
    assert "audit chain intact: 5 events" in verified.stdout


def test_the_audit_table_refuses_update_and_delete(backend_url: str, tmp_path: Path) -> None:
    config = config_for(tmp_path, backend_url)
    assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    assert CliRunner().invoke(cli, ["--config", str(config), "checkpoint"]).exit_code == 0
    engine = create_engine(backend_url)
    for sql in (
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
        "UPDATE checkpoints SET seq = 0",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    engine.dispose()


def test_tampering_past_the_trigger_is_detected(backend_url: str, tmp_path: Path) -> None:
    config = config_for(tmp_path, backend_url)
    for _ in range(3):
        assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    tamper(backend_url, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    result = CliRunner().invoke(cli, ["--config", str(config), "verify"])
    assert result.exit_code == 1
    assert "first broken seq 2 (modified" in result.stdout


def test_four_writers_form_one_linear_chain(backend_url: str, tmp_path: Path) -> None:
    engine = make_engine(backend_url)
    upgrade(engine, backend_url)
    engine.dispose()
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.append_loop", backend_url, "500", f"w{i}"],
            cwd=ROOT,
        )
        for i in range(4)
    ]
    assert [w.wait(timeout=300) for w in writers] == [0, 0, 0, 0]
    repo = open_repository(settings_at(backend_url, tmp_path))
    report = verify_chain(repo.iter_records(), repo.iter_links())
    assert report.intact
    assert report.count == report.head_seq == 2000
    per_writer = scalar(backend_url, "SELECT count(DISTINCT actor) FROM audit_events")
    assert per_writer == 4
    repo.engine.dispose()


def settings_at(url: str, tmp_path: Path) -> Settings:
    return load_settings(config_for(tmp_path, url), env={})


def daemon(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def leaders(url: str) -> list[tuple[int, float]]:
    """(pid, epoch seconds) of each daemon_leading event, in chain order."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT canonical, ts FROM audit_events "
                "WHERE event_type = 'daemon_leading' ORDER BY seq"
            )
        ).all()
    engine.dispose()
    return [
        (
            json.loads(p)["payload"]["pid"],
            datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp(),
        )
        for p, ts in rows
    ]


def cycles_by(url: str, after: float) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM runs WHERE started_at > to_timestamp(:t)"), {"t": after}
        ).scalar()
    engine.dispose()
    return int(n or 0)


def daemon_cycles(url: str) -> tuple[int, int]:
    """(runs, distinct cycle indexes) the daemons committed."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            total, distinct = conn.execute(
                text(
                    "SELECT count(*), count(DISTINCT cycle_index) FROM runs WHERE actor = 'daemon'"
                )
            ).one()
    finally:
        engine.dispose()
    return int(total), int(distinct)


def test_one_leader_runs_each_cycle_and_a_standby_takes_over(pg_url: str, tmp_path: Path) -> None:
    interval = 1.0
    config = config_for(
        tmp_path,
        pg_url,
        {"schedule": {"interval_seconds": interval}, "leadership": {"lease_seconds": 3}},
    )
    assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0  # keys
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first, second = daemon(config, env), daemon(config, env)
    try:
        leader_pid = wait_for(lambda: leaders(pg_url), what="the first leader")[0][0]
        # Wait for the leader's second cycle (the event), not for a time that on a busy
        # machine may hold fewer; the standby ran through those fires too.
        wait_for(lambda: daemon_cycles(pg_url)[0] >= 2, what="two of the leader's cycles")
        runs = daemon_cycles(pg_url)
        # Exactly one daemon ran cycles, one per interval, never two at once.
        assert runs[0] == runs[1] >= 2
        assert len(leaders(pg_url)) == 1
        victim = first if first.pid == leader_pid else second
        standby = second if victim is first else first
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
        killed_at = time.time()
        # The dead leader's lease (3 s here) expires and the standby takes over.
        takeover = wait_for(
            lambda: [p for p in leaders(pg_url) if p[0] == standby.pid], what="the takeover"
        )
        assert takeover[0][1] >= killed_at
        wait_for(lambda: cycles_by(pg_url, killed_at) >= 2, what="the new leader's cycles")
    finally:
        outputs = {}
        for proc in (first, second):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            outputs[proc.pid] = proc.communicate(timeout=120)[0]  # also closes the pipe
    out = outputs[standby.pid]
    assert "standby: another daemon runs the cycles" in out
    assert "leading: this daemon" in out
    repo = Repository(make_engine(pg_url, readonly=True))
    assert verify_chain(repo.iter_records(), repo.iter_links()).intact
    repo.engine.dispose()


ROLES_SQL = ROOT / "docs" / "sql" / "postgres_roles.sql"


def login_in_role(pg_url: str, role: str) -> tuple[str, str]:
    """Apply the roles script, create a login in ``role``, apply the script again (as its
    header says); return (login, its URL)."""
    from sqlalchemy.engine import make_url

    login = f"{role}_{os.urandom(4).hex()}"
    raw = make_url(pg_url).set(drivername="postgresql")
    import psycopg

    with psycopg.connect(raw.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(ROLES_SQL.read_text())
        conn.execute(f'CREATE ROLE "{login}" LOGIN IN ROLE {role}')
        conn.execute(ROLES_SQL.read_text())  # as documented: again once the login exists
    return login, make_url(pg_url).set(username=login).render_as_string(hide_password=False)


def drop_login(pg_url: str, login: str) -> None:
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP ROLE IF EXISTS "{login}"'))
    engine.dispose()


def test_the_auditor_role_reads_the_views_and_nothing_else(pg_url: str, tmp_path: Path) -> None:
    config = config_for(tmp_path, pg_url, {"simulation": {"drift": 1.0}})
    for _ in range(2):
        assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    login, url = login_in_role(pg_url, "fairlens_auditor")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            for view in VIEWS:
                conn.execute(text(f"SELECT * FROM {view}")).all()
            assert conn.execute(text("SELECT count(*) FROM v_fairness_history")).scalar() == 4
        refused = [
            "SELECT token FROM alerts",
            "SELECT * FROM audit_events",
            "SELECT path FROM source_files",
            "INSERT INTO runs (cycle_index) VALUES (1)",
            "UPDATE readings SET dir = 1",
            "DELETE FROM audit_events",
            "UPDATE v_runs SET actor = 'x'",
            "CREATE TABLE mine (x int)",
        ]
        for sql in refused:
            with (
                pytest.raises(DBAPIError, match=r"permission denied|read-only"),
                engine.begin() as conn,
            ):
                conn.execute(text(sql))
    finally:
        engine.dispose()
        drop_login(pg_url, login)


def test_the_trend_page_reads_postgresql_read_only(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    config = config_for(tmp_path, pg_url, {"simulation": {"drift": 1.0, "n_samples": 2000}})
    for _ in range(3):
        assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    newest = scalar(
        pg_url, "SELECT dir FROM readings WHERE scenario = 'monitored' ORDER BY id DESC LIMIT 1"
    )
    login, url = login_in_role(pg_url, "fairlens_reader")
    try:
        monkeypatch.setenv("FAIRLENS_CONFIG", str(config))
        monkeypatch.setenv("FAIRLENS_DB_URL", url)
        at = AppTest.from_file(
            str(ROOT / "fairlens_monitor" / "viewer" / "page.py"), default_timeout=60
        )
        at.query_params["monitor"] = "default"  # the monitor's view, not the inventory
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.metric[0].value == f"{newest:.3f}"
        assert any(":red[**ADVERSE" in str(m.value) for m in at.markdown)
        # The page's own engine refuses writes even where the role could write.
        from fairlens_monitor.viewer import data as viewer_data

        engine = viewer_data.open_readonly(load_settings(config, env={"FAIRLENS_DB_URL": pg_url}))
        with pytest.raises(DBAPIError, match="read-only transaction"), engine.begin() as conn:
            conn.execute(text("DELETE FROM group_results"))
        engine.dispose()
    finally:
        drop_login(pg_url, login)


def test_db_copy_moves_history_to_postgresql_and_verifies(pg_url: str, tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}"
    config = config_for(
        tmp_path, sqlite_url, {"simulation": {"drift": 1.0}, "audit": {"checkpoint_every": 3}}
    )
    run = CliRunner()
    for _ in range(4):
        assert run.invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    copied = run.invoke(cli, ["--config", str(config), "db", "copy", sqlite_url, pg_url])
    assert copied.exit_code == 0, copied.output
    # monitor_added (with its rules, before the first cycle), 4 cycles, one alert
    assert "copy verified: 6 events intact, anchored up to seq" in copied.stdout
    for table in (
        "monitors",
        "runs",
        "readings",
        "group_results",
        "alerts",
        "audit_events",
        "checkpoints",
    ):
        assert scalar(pg_url, f"SELECT count(*) FROM {table}") == scalar(
            sqlite_url, f"SELECT count(*) FROM {table}"
        )
    # The copy carries on: the next cycle continues the chain on PostgreSQL.
    env = {"FAIRLENS_DB_URL": pg_url}
    assert run.invoke(cli, ["--config", str(config), "once"], env=env).exit_code == 0
    verified = run.invoke(cli, ["--config", str(config), "verify"], env=env)
    assert verified.exit_code == 0, verified.output
    assert "7 events" in verified.stdout
    again = run.invoke(cli, ["--config", str(config), "db", "copy", sqlite_url, pg_url])
    assert again.exit_code == 2
    assert "copy only into an empty database" in again.output


def test_a_missing_postgresql_database_is_a_clear_error(pg_url: str, tmp_path: Path) -> None:
    missing = pg_url.rsplit("/", 1)[0] + "/fairlens_no_such_db"
    config = config_for(tmp_path, missing)
    for args in (["history"], ["verify"], ["db", "current"]):
        result = CliRunner().invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == 2, (args, result.output)
        assert 'database "fairlens_no_such_db" does not exist' in result.output


def test_the_page_queries_answer_every_time_range(backend_url: str, tmp_path: Path) -> None:
    from fairlens_monitor.viewer import data as viewer_data

    config = config_for(
        tmp_path,
        backend_url,
        {
            "simulation": {"drift": 1.0},
            "measurement": {
                "protected_attributes": ["gender", "age"],
                "bands": {"age": [40]},
                "reference": "highest",
            },
        },
    )
    for _ in range(3):
        assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    engine = viewer_data.open_readonly(load_settings(config, env={}))
    try:
        for name, span in viewer_data.RANGES.items():
            since = None if span is None else datetime.now(UTC) - span
            history = viewer_data.history(engine, since=since)
            assert list(history["readings"]) == [1] * 6, name  # 3 cycles x 2 scenarios
            groups = viewer_data.group_history(engine, since=since)
            assert len(groups) == 3 * 4, name
            assert len(viewer_data.alerts(engine, since=since)) == 1, name
        # A range that ends before the readings holds none of them.
        future = datetime.now(UTC) + timedelta(hours=1)
        assert viewer_data.history(engine, since=future).empty
        # ...but the open alert is listed whatever the range (issue 19)
        assert list(viewer_data.alerts(engine, since=future)["state"]) == ["open"]
    finally:
        engine.dispose()


@pytest.mark.parametrize("role", ["fairlens_auditor", "fairlens_reader"])
def test_a_member_login_of_either_role_cannot_write_anything(
    pg_url: str, tmp_path: Path, role: str
) -> None:
    """Privileges, not a session default, keep a member login read-only: even after it
    turns the default off it can create no temporary or permanent table, take no sequence
    value, and write no row; and its sessions start read-only in this database."""
    config = config_for(tmp_path, pg_url)
    assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    login, url = login_in_role(pg_url, role)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
        attempts = [
            "CREATE TEMP TABLE scratch (x int)",
            "CREATE TEMP TABLE scratch AS SELECT 1 AS x",
            "SELECT nextval('runs_id_seq')",
            "CREATE TABLE mine (x int)",
            "CREATE SCHEMA mine",
            "INSERT INTO runs (cycle_index) VALUES (1)",
            "CREATE VIEW mine AS SELECT 1 AS x",
            "SELECT lo_create(0)",
            "SELECT setval('runs_id_seq', 1000)",
        ]
        for sql in attempts:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("SET SESSION default_transaction_read_only = off"))
                with pytest.raises(DBAPIError, match=r"permission denied"):
                    conn.execute(text(sql))
    finally:
        engine.dispose()
        drop_login(pg_url, login)
