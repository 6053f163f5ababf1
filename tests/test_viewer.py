"""The trend page, through Streamlit's own AppTest, on seeded databases."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from alembic import command
from streamlit.testing.v1 import AppTest

from fairlens_monitor.config.settings import Settings, load_settings
from fairlens_monitor.ops.daemon import run_daemon
from fairlens_monitor.security.page_auth import create_page_token
from fairlens_monitor.store.db import make_engine
from fairlens_monitor.store.schema import alembic_config
from tests.factories import sqlite_file
from tests.helpers.wait import wait_for

VIEWER = Path(__file__).resolve().parents[1] / "fairlens_monitor" / "viewer" / "page.py"


def seeded(
    write_config: Callable[..., Path],
    drift: float,
    cycles: int = 3,
    n_samples: int = 4000,
    **overrides: object,
) -> Path:
    config = write_config(
        {
            "simulation": {"drift": drift, "n_samples": n_samples},
            "schedule": {"interval_seconds": 0.05},
            **overrides,
        }
    )
    run_daemon(
        load_settings(config, env={}), emit=lambda _: None, max_cycles=cycles, handle_signals=False
    )
    return config


def page(config: Path, monkeypatch: pytest.MonkeyPatch, monitor: str | None = "default") -> AppTest:
    """The page on ``config``, opened on ``monitor`` (None: the inventory)."""
    monkeypatch.setenv("FAIRLENS_CONFIG", str(config))
    at = AppTest.from_file(str(VIEWER), default_timeout=60)
    if monitor is not None:
        at.query_params["monitor"] = monitor
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def signed_in(at: AppTest, config: Path) -> AppTest:
    """Create the page token and sign the page's session in with it."""
    key_dir = load_settings(config, env={}).keys.dir
    token = create_page_token(key_dir, rotate=True).read_text().strip()
    at.run()  # the sign-in field shows once a token exists
    at.text_input(key="page_token").input(token).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chain_verdict(at: AppTest, timeout: float = 120.0) -> str:
    """Refresh the page (as its 5-second fragment does) until the chain verdict is shown."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        verdict = next(str(m.value) for m in at.markdown if "Audit chain" in str(m.value))
        if "in progress" not in verdict or time.monotonic() > deadline:
            return verdict
        time.sleep(0.3)
        at.run()


def newest_dir(config: Path) -> float:
    settings: Settings = load_settings(config, env={})
    path = sqlite_file(settings)
    with sqlite3.connect(path) as conn:
        value: float = conn.execute(
            "SELECT dir FROM readings WHERE scenario = 'monitored' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
    return value


def alert_rows(at: AppTest) -> pd.DataFrame:
    """The alert table shown (the one dataframe with an 'Alert' column)."""
    [table] = [d.value for d in at.dataframe if "Alert" in d.value.columns]
    return table


def text_of(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [i.value for i in at.info] + [w.value for w in at.warning]
    return "\n".join(str(p) for p in parts)


def test_healthy_database(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = seeded(write_config, drift=0.0)
    at = page(config, monkeypatch)
    assert at.metric[0].label == "Monitored DIR"
    assert at.metric[0].value == f"{newest_dir(config):.3f}"
    shown = text_of(at)
    assert ":green[**OK**]" in shown
    assert "95% interval" in shown
    assert "Audit chain:** intact" in chain_verdict(at)
    assert "No alert in this time range, and none open." in shown


def test_adverse_database_shows_red_and_decrypts_with_the_key(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = seeded(write_config, drift=1.0)
    at = signed_in(page(config, monkeypatch), config)
    assert at.metric[0].value == f"{newest_dir(config):.3f}"
    shown = text_of(at)
    assert ":red[**ADVERSE" in shown
    assert "Risk level: **HIGH**" in shown
    assert len(alert_rows(at)) == 1
    assert at.selectbox(key="alert").value is not None
    assert any("Potential bias" in str(m.value) for m in at.markdown)


def test_a_small_sample_below_the_line_is_amber_not_red(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = seeded(write_config, drift=0.8, n_samples=40)  # 20 per group: too few to tell
    at = page(config, monkeypatch)
    shown = text_of(at)
    assert ":orange[**INCONCLUSIVE" in shown
    assert "Verdict: inconclusive — Female: a group has 20 applicants (< 30)" in shown
    assert (
        "No alert in this time range, and none open." in shown
    )  # inconclusive is visible but quiet


def test_intersections_show_a_rate_per_group(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fairlens_monitor.viewer import data as viewer_data
    from fairlens_monitor.viewer import series as viewer_series

    config = seeded(
        write_config,
        drift=0.5,
        measurement={
            "protected_attributes": ["gender", "age"],
            "bands": {"age": [30]},
            "reference": "highest",
        },
    )
    page(config, monkeypatch)
    engine = viewer_data.open_readonly(load_settings(config, env={}))
    groups = viewer_series.group_history(engine, since=None)
    engine.dispose()
    assert set(groups["group"]) == {"Female & <30", "Female & >=30", "Male & <30", "Male & >=30"}
    assert len(groups) == 4 * 3  # four groups, three cycles
    assert groups["rate"].between(0, 1).all()


def test_explanation_stays_hidden_without_a_readable_key(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = seeded(write_config, drift=1.0)
    (tmp_path / "var" / "keys" / "fernet.key").chmod(0o644)  # refused, as on another host
    at = page(config, monkeypatch)  # not signed in: no sign-in could decrypt it either
    assert "encrypted — key not available here" in [str(i.value) for i in at.info]
    assert "sign in to read" not in text_of(at)
    at = signed_in(at, config)
    assert "encrypted — key not available here" in text_of(at)
    assert not any("Potential bias" in str(m.value) for m in at.markdown)


def test_tampered_database_says_where(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = seeded(write_config, drift=1.0)
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    at = page(config, monkeypatch)
    assert "Audit chain:** TAMPERED at seq 2 (modified)" in chain_verdict(at)


def test_missing_database_is_a_message_and_is_not_created(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = page(write_config(), monkeypatch)
    assert "no database file" in text_of(at)
    assert not (tmp_path / "var" / "fairlens.db").exists()


def test_empty_database_is_a_message_and_stays_empty(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "var").mkdir()
    sqlite3.connect(tmp_path / "var" / "fairlens.db").close()
    at = page(write_config(), monkeypatch)
    assert "is empty" in text_of(at)
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_older_schema_is_a_message(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'fairlens.db'}"
    engine = make_engine(url)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    engine.dispose()
    at = page(write_config(), monkeypatch)
    assert "schema revision 0001" in text_of(at)
    assert "db upgrade" in text_of(at)


def test_locked_database_is_a_message(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = seeded(write_config, drift=0.0, cycles=1)
    conn = sqlite3.connect(tmp_path / "var" / "fairlens.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = DELETE")  # a rollback-journal writer blocks readers
    conn.execute("BEGIN EXCLUSIVE")
    try:
        at = page(config, monkeypatch)
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    assert "cannot be read right now" in text_of(at)


def test_bad_config_is_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page(tmp_path / "nope.yaml", monkeypatch)
    assert any("Configuration problem" in e.value for e in at.error)


@pytest.mark.integration
def test_page_follows_a_running_daemon(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    config = write_config(
        {
            "schedule": {"interval_seconds": 0.2},
            "simulation": {"drift": {"mode": "ramp", "start": 0.0, "end": 1.0, "cycles": 10}},
        }
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
        cwd=VIEWER.parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        db_file = config.parent / "var" / "fairlens.db"
        wait_for(lambda: readings(db_file) >= 4, what="the daemon's first two cycles")
        for _ in range(2):
            before = max_reading_id(db_file)
            import streamlit as st

            st.cache_data.clear()  # as when the 5-second cache expires
            shown = page(config, monkeypatch).metric[0].value
            fresh = monitored_dirs_after(db_file, before - 2)
            assert shown in fresh, (shown, fresh)  # the newest data, read while it is written
            # more cycles land while the page is open (waited for, not slept for)
            wait_for(newer_than(db_file, before), what="a newer cycle")
    finally:
        daemon.terminate()
        daemon.wait(timeout=120)
    assert daemon.returncode == 0


def readings(db_file: Path) -> int:
    """How many readings the daemon committed (0 before its database and schema exist)."""
    if not db_file.exists():
        return 0
    with sqlite3.connect(db_file) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
        except sqlite3.OperationalError:
            return 0  # the schema is not there yet


def newer_than(db_file: Path, seen: int) -> Callable[[], bool]:
    """Whether a reading newer than id ``seen`` was committed."""
    return lambda: max_reading_id(db_file) > seen


def max_reading_id(db_file: Path) -> int:
    with sqlite3.connect(db_file) as conn:
        return int(conn.execute("SELECT max(id) FROM readings").fetchone()[0])


def monitored_dirs_after(db_file: Path, reading_id: int) -> set[str]:
    with sqlite3.connect(db_file) as conn:
        rows = conn.execute(
            "SELECT dir FROM readings WHERE scenario = 'monitored' AND id > ?", (reading_id,)
        ).fetchall()
    return {f"{d:.3f}" for (d,) in rows}


def test_a_file_source_with_empty_windows_shows_the_newest_data_and_says_so(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from fairlens_monitor.ops.app import open_cipher, open_repository
    from fairlens_monitor.ops.cycle import run_cycle
    from tests.test_sources import file_config, german, write_days

    folder = tmp_path / "in"
    write_days(folder, german(), range(3))
    config = write_config(file_config(folder, window="new_files"))
    settings = load_settings(config, env={})
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    for _ in range(3):  # one reading with 300 decisions, then two empty windows
        run_cycle(settings, repo, cipher, clock=lambda: datetime.now(UTC), actor="cli")
    repo.engine.dispose()
    at = page(config, monkeypatch)
    shown = text_of(at)
    assert "No decisions in the source's windows since" in shown
    with sqlite3.connect(sqlite_file(settings)) as conn:
        [(dir_value,)] = conn.execute("SELECT dir FROM readings WHERE verdict != 'no_data'")
    assert at.metric[0].value == f"{dir_value:.3f}"
    assert "source: file" in shown


def test_the_page_checks_the_rows_it_shows(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The headline reading and every alert row carry a verified mark from their digest on
    the chain; an edited row is marked NOT verified, and the tampered trail is a red banner
    at the top naming the first anomaly."""
    config = seeded(write_config, drift=1.0)
    at = page(config, monkeypatch)
    assert "Audit chain:** intact" in chain_verdict(at)
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        reading = conn.execute("SELECT max(id) FROM readings").fetchone()[0]
    shown = text_of(at)
    assert f":green[✓ reading {reading} verified] — matches the digest recorded at seq" in shown
    assert list(alert_rows(at)["Verified"]) == ["✓"]
    assert not at.error

    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        conn.execute(f"UPDATE readings SET dir = 0.95 WHERE id = {reading}")
        conn.execute("UPDATE alerts SET state = 'resolved'")
    at = page(config, monkeypatch)  # a new session: the page is reloaded
    shown = text_of(at)  # the rows are checked on every refresh, before the next verify
    assert f":red[**✗ reading {reading} NOT verified** — differs from the digest" in shown
    assert str(alert_rows(at)["Verified"][0]).startswith("✗ differs from the digest")
    import streamlit as st

    st.cache_resource.clear()  # as a restarted page: the background verify runs at once
    at = page(config, monkeypatch)
    assert "TAMPERED at readings row" in chain_verdict(at, timeout=60)
    at.run()
    banner = str(at.error[0].value)
    assert banner.startswith("**Audit trail TAMPERED** — first anomaly: ")
    assert "row_modified" in banner
