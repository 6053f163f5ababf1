"""Concurrent writers and cold starts on both back ends: real processes, real databases.

Every wait here is on an observable event (a process exiting, a row committed, a line
printed) with a generous deadline, never a sleep sized to this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fairlens_monitor.app import open_cipher, open_repository
from fairlens_monitor.config import load_settings
from fairlens_monitor.cycle import run_cycle, utc_now
from fairlens_monitor.errors import AlreadyRunningError
from fairlens_monitor.store.db import instance_lock
from tests.conftest import BASE_CONFIG, merge, query_url

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
RAMP = {"simulation": {"drift": {"mode": "ramp", "start": 0.0, "end": 1.0, "cycles": 60},
                       "n_samples": 300},
        "drift_detection": {"baseline_readings": 5}}


def write(tmp_path: Path, url: str, overrides: dict[str, Any], name: str = "config.yaml"
          ) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(merge(BASE_CONFIG, {"database": {"url": url},
                                                       **overrides})))
    return path


def spawn(args: list[str], n: int) -> list[subprocess.Popen[str]]:
    return [subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(n)]


def finish(procs: list[subprocess.Popen[str]], timeout: float = 240
           ) -> list[tuple[int, str, str]]:
    outputs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


@pytest.mark.long
@pytest.mark.timeout(400)
def test_concurrent_once_processes_get_distinct_cycles_and_true_predecessors(
        backend_url: str, tmp_path: Path) -> None:
    """4 processes x 25 `once` on one database: 100 distinct indexes, and the same drift
    statistics as the same 100 cycles run one after another."""
    config = write(tmp_path, backend_url, RAMP)
    done = finish(spawn(["-m", "tests.helpers.once_loop", str(config), "25"], 4))
    assert [code for code, _, _ in done] == [0] * 4, [err[-500:] for _, _, err in done]
    rows = query_url(backend_url, "SELECT r.cycle_index, g.seed, g.drift_statistic FROM runs r "
                                  "JOIN readings g ON g.run_id = r.id WHERE r.status = 'ok' "
                                  "AND g.scenario = 'monitored' ORDER BY r.cycle_index")
    assert [r[0] for r in rows] == list(range(100))
    assert len({r[1] for r in rows}) == 100  # no seed measured twice
    # The same cycles run one by one in a fresh database: the statistic of each follows from
    # its true predecessor only if the concurrent run matches it exactly.
    alone = load_settings(write(tmp_path, f"sqlite:///{tmp_path / 'alone.db'}", RAMP,
                                "alone.yaml"), env={})
    repo = open_repository(alone)
    cipher = open_cipher(alone, repo)
    expected = [run_cycle(alone, repo, cipher, clock=utc_now, actor="cli").monitored
                for _ in range(100)]
    repo.engine.dispose()
    assert [r[2] for r in rows] == [m.drift_statistic if m else None for m in expected]


def test_simultaneous_cold_starts_all_succeed(backend_url: str, tmp_path: Path) -> None:
    """Three `once` at once on an empty database and an empty key folder: all exit 0."""
    config = write(tmp_path, backend_url, {})
    done = finish(spawn(["-m", "fairlens_monitor", "--config", str(config), "once"], 3))
    assert [code for code, _, _ in done] == [0, 0, 0], [err for _, _, err in done]
    assert all("Traceback" not in err for _, _, err in done)
    assert query_url(backend_url, "SELECT count(DISTINCT cycle_index), count(*) FROM runs") == [
        (3, 3)]
    keys = tmp_path / "var" / "keys"
    assert sorted(p.name for p in keys.iterdir()) == [
        "checkpoint_ed25519.key", "checkpoint_ed25519.pub", "fernet.key"]


def test_simultaneous_daemon_starts_on_an_empty_postgresql(pg_url: str,
                                                           tmp_path: Path) -> None:
    """Three `run --cycles 1` at once on an empty PostgreSQL database: all exit 0."""
    config = write(tmp_path, pg_url, {"leadership": {"lease_seconds": 2}})
    done = finish(spawn(["-m", "fairlens_monitor", "--config", str(config), "run",
                         "--cycles", "1"], 3), timeout=120)
    errors = [err for code, _, err in done if code != 0]
    assert not errors, errors
    assert all("IntegrityError" not in err and "Traceback" not in err for _, _, err in done)


def test_the_instance_lock_follows_symlinks_and_relative_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "data" / "fairlens.db"
    real.parent.mkdir()
    real.write_bytes(b"")
    (tmp_path / "alias").symlink_to(real.parent)
    (tmp_path / "link.db").symlink_to(real)
    os.link(real, tmp_path / "hard.db")
    monkeypatch.chdir(tmp_path / "data")
    with instance_lock(f"sqlite:///{real}"):
        for other in (tmp_path / "alias" / "fairlens.db", tmp_path / "link.db",
                      tmp_path / "hard.db", Path("fairlens.db"),
                      Path("..") / "alias" / "fairlens.db"):
            with pytest.raises(AlreadyRunningError), instance_lock(f"sqlite:///{other}"):
                pass
    with instance_lock(f"sqlite:///{tmp_path / 'link.db'}"):  # released: free again
        pass


def test_a_second_daemon_through_a_symlink_is_refused(tmp_path: Path,
                                                      write_config: Callable[..., Path]
                                                      ) -> None:
    config = write_config({"schedule": {"interval_seconds": 0.2}})
    first = subprocess.Popen([sys.executable, "-m", "fairlens_monitor", "--config",
                              str(config), "run"], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None
        line = first.stdout.readline()  # printed once it holds the lock and the schema
        assert "running every" in line, line
        (tmp_path / "alias").symlink_to(tmp_path / "var")
        second = write_config({"database": {"url": "sqlite:///alias/fairlens.db"}},
                              name="second.yaml")
        refused = subprocess.run([sys.executable, "-m", "fairlens_monitor", "--config",
                                  str(second), "run", "--cycles", "1"], cwd=REPO,
                                 capture_output=True, text=True, timeout=120, check=False)
        assert refused.returncode == 2, refused.stderr
        assert "already running" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    finally:
        first.terminate()
        first.communicate(timeout=60)
