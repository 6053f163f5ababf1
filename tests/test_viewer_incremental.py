"""The trend page's verifier walks incrementally, whole at least daily, and says when it last
walked the whole chain (issue 17): the real page (AppTest) and its real watcher, which runs
the real ``verify`` command in a process of its own."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fairlens_monitor.viewer.watch import ChainWatcher
from tests.test_viewer import chain_verdict, page, seeded


def test_the_page_says_when_the_last_full_walk_ran(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import streamlit as st

    st.cache_resource.clear()  # a fresh watcher: its first walk is a full one
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    config = seeded(write_config, drift=0.0)
    at = page(config, monkeypatch)
    verdict = chain_verdict(at)
    assert "Audit chain:** intact — chain verified to seq " in verdict
    assert "whole chain walked" in verdict
    shown = re.search(r"last full walk (\d\d):(\d\d) UTC", verdict)
    assert shown is not None, verdict
    after = datetime.now(UTC)
    walked = before.replace(hour=int(shown[1]), minute=int(shown[2]))
    assert before <= walked <= after or before <= walked + timedelta(days=1) <= after


def test_the_watcher_walks_incrementally_and_whole_once_a_day(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = seeded(write_config, drift=1.0)  # the daemon signs its head when it stops
    watcher = ChainWatcher(str(config), start=False)
    assert watcher.status(wait=0) == "verification in progress…"
    watcher.walk()
    assert "intact" in str(watcher.verdict)
    assert "whole chain walked" in str(watcher.verdict)
    first_full = watcher.walks.last_full
    assert first_full is not None
    assert f"last full walk {first_full:%H:%M} UTC" in watcher.status(wait=0)
    verified = watcher.walks.verified_to
    assert verified is not None

    seeded(write_config, drift=1.0, cycles=2)  # more cycles, a newer checkpoint
    watcher.walk()
    assert "intact" in str(watcher.verdict), watcher.verdict
    assert f"from the signed checkpoint at seq {verified}" in str(watcher.verdict)
    assert watcher.walks.last_full == first_full  # an incremental walk is not a full one

    # Tampering before the checkpoint the incremental walk starts from, leaving the hashes
    # alone: not read by the next incremental walk, found by the daily full walk.
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    watcher.walk()
    assert "intact" in str(watcher.verdict)
    watcher.walks.last_full = first_full - timedelta(hours=24)  # a day has gone by
    watcher.walk()
    assert str(watcher.verdict).startswith("TAMPERED at seq 2 (modified)"), watcher.verdict
    assert "whole chain walked" in str(watcher.verdict)
    assert watcher.alarm is not None
    watcher.walk()  # after a tampered walk, every walk is whole until one is intact
    assert str(watcher.verdict).startswith("TAMPERED at seq 2 (modified)")
    assert "whole chain walked" in str(watcher.verdict)
