"""The daemon checks its own trail (ops.chainwatch): a job on a worker of its own, full
first, then incremental; a tampered trail is an error line naming seq and kind only, and a
walk that cannot run never raises (issue 17)."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.ops import chainwatch
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.ops.chainwatch import ChainCheck
from fairlens_monitor.ops.daemon import Daemon
from tests.conftest import backend_builder, tamper


def test_the_daemon_verifies_its_trail_incrementally_and_reports_tampering(
    write_config: Callable[..., Path],
    backend_url: str,
    clock: Callable[[], datetime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = backend_builder(backend_url, write_config)(
        {"schedule": {"interval_seconds": 0.5}, "simulation": {"drift": 1.0}}
    )
    repo = open_repository(settings)
    lines: list[str] = []
    executors: dict[str, str] = {}

    def emit(line: str) -> None:
        lines.append(line)
        executors.update((job.id, job.executor) for job in daemon.scheduler.get_jobs())

    daemon = Daemon(
        settings,
        repo,
        open_cipher(settings, repo),
        open_signing_key(settings, repo),
        clock=clock,
        emit=emit,
        max_cycles=2,
    )
    stats = daemon.run()  # signs its head when it stops
    repo.engine.dispose()
    assert stats.cycles_ok == 2
    assert executors["verify"] == "verifier"  # never the cycles' worker
    assert executors["fairness-cycle:default"] == "default"

    check = daemon.chain_check
    first = check.run()
    assert first is not None
    assert (first.walk, first.chain.intact) == ("full", True)
    head = first.chain.head_seq
    again = check.run()
    assert again is not None
    assert (again.walk, again.chain.intact, again.checkpoint_seq) == ("incremental", True, head)

    tamper(backend_url, f"UPDATE audit_events SET actor = 'mallory' WHERE seq = {head}")
    with caplog.at_level(logging.ERROR, logger="fairlens_monitor.ops.chainwatch"):
        found = check.run()
    assert found is not None
    assert (found.walk, found.chain.intact) == ("incremental", False)
    said = [line for line in lines if "audit chain TAMPERED" in line]
    assert said == [
        f"✗ audit chain TAMPERED at seq {head} (modified): 1 anomalies (incremental walk "
        f"from seq {head}); run `fairlens-monitor verify`"
    ]
    assert f"TAMPERED at seq {head} (modified)" in caplog.text
    assert "mallory" not in caplog.text + "".join(lines)  # a stored value is never shown

    settings.keys.public_key.unlink()  # cannot verify: said, never raised
    assert check.run() is None
    assert any(line.startswith("✗ audit chain not verified: CannotVerifyError") for line in lines)


def _pid_walk(settings: object, full: bool, verified_to: int | None) -> str:
    """Stands in for ``chainwatch.walk`` in a child: reports the process it ran in."""
    return f"walked in pid {os.getpid()}"


def _interrupted_walk(settings: object, full: bool, verified_to: int | None) -> str:
    """Stands in for ``chainwatch.walk``: Ctrl-C and a group SIGTERM reach the child mid-walk."""
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)
    return f"walked in pid {os.getpid()} through SIGINT and SIGTERM"


def _chatty_walk(settings: object, full: bool, verified_to: int | None) -> str:
    """Stands in for ``chainwatch.walk``: a library logs a warning carrying a data value."""
    logging.getLogger("sqlalchemy.pool").warning("reset for canary.applicant@example.com")
    return "walked and logged"


def _dying_walk(settings: object, full: bool, verified_to: int | None) -> str:
    """Stands in for ``chainwatch.walk``: the child dies as an out-of-memory kill would."""
    os._exit(137)


def test_each_walk_runs_in_a_child_whose_death_is_reported_not_raised(
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The walk's memory is the child's (returned when it exits), not the daemon's."""
    config = write_config({})
    assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    settings = load_settings(config, env={})
    lines: list[str] = []
    check = ChainCheck(settings, lines.append)

    monkeypatch.setattr(chainwatch, "walk", _pid_walk)
    assert check.run() is None
    pid = int(lines[-1].rsplit(" ", 1)[1])
    assert pid != os.getpid()

    monkeypatch.setattr(chainwatch, "walk", _interrupted_walk)
    assert check.run() is None
    assert lines[-1].endswith("through SIGINT and SIGTERM")  # the walk finished all the same

    monkeypatch.setattr(chainwatch, "walk", _chatty_walk)
    capfd.readouterr()
    assert check.run() is None
    err = capfd.readouterr().err
    assert "WARNING sqlalchemy.pool (chain walk): reset for" in err  # the child's own line
    assert "canary.applicant@example.com" not in err  # masked as the daemon's lines are

    monkeypatch.setattr(chainwatch, "walk", _dying_walk)
    assert check.run() is None  # never raised into the scheduler
    assert lines[-1].startswith("✗ audit chain not verified: BrokenProcessPool")

    monkeypatch.undo()
    walked = check.run()  # the next walk runs as if nothing happened
    assert walked is not None
    assert (walked.walk, walked.chain.intact) == ("full", True)


def test_where_no_child_can_start_the_walk_runs_in_the_daemon(
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A container without /dev/shm cannot make the child's queue: the trail is still
    verified (in the daemon, its memory kept), and that is said once, not every walk."""
    config = write_config({})
    assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    check = ChainCheck(load_settings(config, env={}), lambda _line: None)

    def no_semaphores(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")  # what sem_open says without /dev/shm

    monkeypatch.setattr(chainwatch, "ProcessPoolExecutor", no_semaphores)
    with caplog.at_level(logging.WARNING, logger="fairlens_monitor.ops.chainwatch"):
        first, second = check.run(), check.run()
    assert first is not None
    assert (first.walk, first.chain.intact) == ("full", True)
    assert second is not None
    assert (second.walk, second.chain.intact) == ("incremental", True)
    said = [
        r.getMessage() for r in caplog.records if "walked in the daemon itself" in r.getMessage()
    ]
    assert len(said) == 1
    assert "PermissionError" in said[0]
