"""Regression tests for defects the hostile-input fuzz test found outside issue 15's items.

Each ran into a traceback (exit 1) where one error line and exit 2 belong.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz_support import Case, run_inprocess
from tests.test_fuzz_hostile import _sandbox, templates

__all__ = ["templates"]  # the fixture, shared with the fuzz test


@pytest.mark.parametrize("command", ["ack", "resolve"])
def test_alert_id_beyond_sqlite_integers_is_a_usage_error(
    command: str, templates: dict[str, Path], tmp_path: Path
) -> None:
    """Found by the fuzzer: ``alerts ack 10**30`` was an OverflowError traceback (exit 1)."""
    box = _sandbox(tmp_path, templates["sim"])
    run = run_inprocess(Case(box, ["alerts", command, str(10**30), "--by", "x", "--note", "n"]))
    assert run.code == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert "ALERT_ID" in run.stderr.splitlines()[-1]


def test_backup_into_a_folder_that_cannot_be_made_is_one_line(
    templates: dict[str, Path], tmp_path: Path
) -> None:
    """Found by the fuzzer: ``backup /sys/fuzz/x.db`` was a PermissionError traceback."""
    box = _sandbox(tmp_path, templates["sim"])
    run = run_inprocess(Case(box, ["backup", "/sys/fuzz/x.db"]))
    assert (run.code, run.stderr.count("\n")) == (2, 1), run.stderr
    assert run.stderr.startswith("error: database /sys/fuzz/x.db: cannot create its folder")


def test_export_to_a_missing_folder_is_one_line(templates: dict[str, Path], tmp_path: Path) -> None:
    """Found by the fuzzer: ``audit export --jsonl missing/x`` was a FileNotFoundError."""
    box = _sandbox(tmp_path, templates["sim"])
    run = run_inprocess(Case(box, ["audit", "export", "--jsonl", "missing/deep/x.jsonl"]))
    assert (run.code, run.stderr.count("\n")) == (2, 1), run.stderr
    assert run.stderr.startswith("error: cannot write missing/deep/x.jsonl")


@pytest.mark.parametrize(
    "args", [["--bogus", "verify"], ["view", "--port", "99999999"], ["db"], ["alerts"]]
)
def test_click_usage_errors_are_one_line(
    args: list[str], templates: dict[str, Path], tmp_path: Path
) -> None:
    """Found by the fuzzer: click's usage errors were 4 lines, a bare group 10+ lines."""
    box = _sandbox(tmp_path, templates["sim"])
    run = run_inprocess(Case(box, args))
    assert (run.code, run.stderr.count("\n")) == (2, 1), run.stderr
    assert run.stderr.startswith("error: ")


@pytest.mark.parametrize("kind", ["fifo", "link to a fifo", "device"])
def test_a_config_that_is_not_a_regular_file_is_refused_not_waited_on(
    kind: str, tmp_path: Path
) -> None:
    """Found by the fuzzer: ``--config <FIFO>`` blocked for ever, ``/dev/zero`` was read."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = {"fifo": fifo, "device": Path("/dev/zero")}.get(kind, tmp_path / "link")
    if kind == "link to a fifo":
        target.symlink_to(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(target), "verify"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
    assert "not a regular file" in done.stderr


@pytest.mark.parametrize("option", ["--public-key", "--anchor"])
def test_verify_refuses_a_fifo_for_its_key_or_anchor(
    option: str, templates: dict[str, Path], tmp_path: Path
) -> None:
    """Found by the 10-minute fuzz run: ``verify --public-key <FIFO>`` blocked for ever."""
    work = _sandbox(tmp_path, templates["sim"]) / "work"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fairlens_monitor",
            "--config",
            "config.yaml",
            "verify",
            option,
            str(fifo),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=work,
        check=False,
    )
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
    assert "not a regular file" in done.stderr


def test_a_driver_message_over_two_lines_is_printed_as_one(tmp_path: Path) -> None:
    """Found by the 10-minute fuzz run: psycopg's "connection refused" error is two lines
    ("… Is the server running on that host …")."""
    env = {**os.environ, "FAIRLENS_DB_URL": "postgresql+psycopg://u:pw@127.0.0.1:1/x"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fairlens_monitor",
            "--config",
            str(Path(__file__).parents[1] / "config.yaml"),
            "history",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
    assert "Is the server running" in done.stderr


def test_verify_entry_refuses_what_is_not_a_hash_without_echoing_it(
    templates: dict[str, Path], tmp_path: Path
) -> None:
    """Found by the 10-minute fuzz run: ``verify-entry <a database URL>`` printed the URL,
    password included ("no audit record has hash …")."""
    box = _sandbox(tmp_path, templates["sim"])
    run = run_inprocess(Case(box, ["verify-entry", "postgresql://u:Pw-canary-77@h/x"]))
    assert (run.code, run.stderr.count("\n")) == (2, 1), run.stderr
    assert "Pw-canary-77" not in run.stdout + run.stderr


def test_measure_refuses_a_fifo(tmp_path: Path) -> None:
    """A FIFO given to ``measure`` blocked for ever (noticed while fixing issue 15's items)."""
    fifo = tmp_path / "decisions.csv"
    os.mkfifo(fifo)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fairlens_monitor",
            "measure",
            str(fifo),
            "--protected-attribute",
            "gender",
            "--privileged-value",
            "Male",
            "--outcome",
            "approved",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
    assert "not a regular file" in done.stderr


def test_a_bad_band_is_named_by_position_not_echoed(
    templates: dict[str, Path], tmp_path: Path
) -> None:
    """Found by the 10-minute fuzz run: ``measure --band <URL with password>`` echoed it."""
    box = _sandbox(tmp_path, templates["sim"])
    run = run_inprocess(
        Case(
            box,
            [
                "measure",
                "config.yaml",
                "--protected-attribute",
                "g",
                "--privileged-value",
                "M",
                "--outcome",
                "y",
                "--band",
                "age=25",
                "--band",
                "pw://u:Pw-canary-78@h/x",
            ],
        )
    )
    assert (run.code, run.stderr.count("\n")) == (2, 1), run.stderr
    assert "value 2 is not COLUMN=EDGE" in run.stderr
    assert "Pw-canary-78" not in run.stdout + run.stderr
