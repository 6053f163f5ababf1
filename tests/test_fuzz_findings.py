"""Regression tests for defects the hostile-input fuzz test found outside issue 15's items.

Each ran into a traceback (exit 1) where one error line and exit 2 belong.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz_support import Case, run_inprocess
from tests.test_fuzz_hostile import _sandbox, templates

__all__ = ["templates"]  # the fixture, shared with the fuzz test


@pytest.mark.parametrize("command", ["ack", "resolve"])
def test_alert_id_beyond_sqlite_integers_is_a_usage_error(command: str,
                                                          templates: dict[str, Path],
                                                          tmp_path: Path) -> None:
    """Found by the fuzzer: ``alerts ack 10**30`` was an OverflowError traceback (exit 1)."""
    box = _sandbox(tmp_path, templates["sim"])
    run = run_inprocess(Case(box, ["alerts", command, str(10**30), "--by", "x", "--note", "n"]))
    assert run.code == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert "ALERT_ID" in run.stderr.splitlines()[-1]


def test_backup_into_a_folder_that_cannot_be_made_is_one_line(templates: dict[str, Path],
                                                              tmp_path: Path) -> None:
    """Found by the fuzzer: ``backup /sys/fuzz/x.db`` was a PermissionError traceback."""
    box = _sandbox(tmp_path, templates["sim"])
    run = run_inprocess(Case(box, ["backup", "/sys/fuzz/x.db"]))
    assert (run.code, run.stderr.count("\n")) == (2, 1), run.stderr
    assert run.stderr.startswith("error: database /sys/fuzz/x.db: cannot create its folder")
