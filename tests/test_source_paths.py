"""The file source reads regular files inside its folder only (issue 15, item 2).

A symbolic link in the watched folder, or ``path: /etc/*``, used to put the first line of
any readable file into the record (as a "missing column" message listing its "header").
Links out of the folder are refused unless ``source.follow_symlinks: true``; a FIFO, a
device, a folder or a looping link matched by the pattern is refused with one line naming
it — and a FIFO is never opened, so the cycle cannot hang on it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.config.source import SourceSettings
from fairlens_monitor.errors import ConfigError, DataError
from fairlens_monitor.fairness.groups import GroupSpec
from fairlens_monitor.sources.base import FileSource
from fairlens_monitor.sources.files import match_files, read_file

OUTSIDE_LINE = "root-secret-canary:x:0:0"
DECISIONS = "sex,risk\nfemale,1\nmale,0\nmale,1\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A watched folder with one good file, and a secret file outside it."""
    inside = tmp_path / "in"
    inside.mkdir()
    (inside / "a.csv").write_text(DECISIONS)
    (tmp_path / "secret.csv").write_text(f"{OUTSIDE_LINE}\n")
    return inside


def test_a_link_to_a_file_outside_the_folder_is_refused(folder: Path) -> None:
    (folder / "b.csv").symlink_to(folder.parent / "secret.csv")
    with pytest.raises(
        DataError,
        match=r"b\.csv is a symbolic link to a file outside .*in; "
        r"remove the link, or set source.follow_symlinks",
    ):
        match_files(str(folder / "*.csv"))
    with pytest.raises(DataError, match="outside"):
        match_files(str(folder))  # the folder form too
    assert match_files(str(folder), follow_symlinks=True) == [folder / "a.csv", folder / "b.csv"]


def test_a_link_inside_the_folder_is_read(folder: Path) -> None:
    (folder / "b.csv").symlink_to(folder / "a.csv")
    assert match_files(str(folder / "*.csv")) == [folder / "a.csv", folder / "b.csv"]


def test_a_linked_subfolder_leading_out_is_refused_under_a_recursive_glob(folder: Path) -> None:
    outside = folder.parent / "elsewhere"
    outside.mkdir()
    (outside / "c.csv").write_text(DECISIONS)
    (folder / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DataError, match=r"c\.csv is a symbolic link to a file outside"):
        match_files(str(folder / "**" / "*.csv"))


def test_a_link_loop_and_a_dangling_link_are_refused(folder: Path) -> None:
    (folder / "x.csv").symlink_to(folder / "y.csv")
    (folder / "y.csv").symlink_to(folder / "x.csv")
    with pytest.raises(
        DataError,
        match=r"x\.csv is a symbolic link that cannot be followed "
        r"\(a loop or a missing target\)",
    ):
        match_files(str(folder / "*.csv"))
    for name in ("x.csv", "y.csv"):
        (folder / name).unlink()
    (folder / "gone.csv").symlink_to(folder / "nowhere.csv")
    with pytest.raises(DataError, match="cannot be followed"):
        match_files(str(folder))


def test_a_fifo_is_refused_without_being_opened(folder: Path) -> None:
    fifo = folder / "pipe.csv"
    os.mkfifo(fifo)
    # A subprocess with a deadline: opening a FIFO with no writer would block forever.
    script = (
        "import sys\nfrom fairlens_monitor.sources.files import match_files\n"
        "from fairlens_monitor.errors import DataError\n"
        "try:\n    match_files(sys.argv[1])\nexcept DataError as e:\n    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder / "*.csv")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "pipe.csv is a FIFO (named pipe), not a regular file" in done.stdout, (
        done.stdout + done.stderr
    )


def test_read_file_refuses_a_file_swapped_for_a_fifo_after_matching(folder: Path) -> None:
    from fairlens_monitor.sources.files import Columns

    os.mkfifo(folder / "late.csv")
    cols = Columns(GroupSpec(attributes=("sex",), privileged_value="male"), "risk")
    with pytest.raises(
        DataError,
        match=r"late\.csv: a FIFO \(named pipe\), not a regular "
        r"file; refused",
    ):
        read_file(folder / "late.csv", cols, None, chunk_rows=1000)


def test_a_folder_or_device_matching_the_glob_is_refused(folder: Path) -> None:
    (folder / "archive.csv").mkdir()
    with pytest.raises(DataError, match=r"archive\.csv is a folder, not a regular file"):
        match_files(str(folder / "*.csv"))
    with pytest.raises(DataError, match=r"/dev/null is a character device"):
        match_files("/dev/nul[l]")


def test_a_glob_looks_in_its_fixed_prefix_folder(folder: Path) -> None:
    """``/etc/*``-style patterns: the folder is the part before the first wildcard, and
    every entry there must be a regular file (a folder among them is refused)."""
    (folder / "notes").mkdir()
    with pytest.raises(DataError, match=r"notes is a folder"):
        match_files(str(folder / "*"))
    (folder / "notes").rmdir()
    assert match_files(str(folder / "*")) == [folder / "a.csv"]


def test_follow_symlinks_is_validated_and_reaches_the_source(
    make_settings: Callable[..., Settings], folder: Path
) -> None:
    base = {"kind": "file", "path": str(folder), "outcome": "risk"}
    measurement = {"protected_attributes": ["sex"], "privileged_value": "male"}
    with pytest.raises(
        ConfigError,
        match=r"'source.follow_symlinks': expected true or "
        r"false, got 'yes'",
    ):
        make_settings({"source": {**base, "follow_symlinks": "yes"}, "measurement": measurement})
    (folder / "b.csv").symlink_to(folder.parent / "secret.csv")
    refused = make_settings({"source": base, "measurement": measurement})
    assert refused.source.follow_symlinks is False
    source = FileSource(refused.source, refused.group_spec(), None)
    with pytest.raises(DataError, match="outside"):
        source.read(datetime.now(UTC), {})
    allowed = make_settings(
        {"source": {**base, "follow_symlinks": True}, "measurement": measurement}
    )
    source = FileSource(allowed.source, allowed.group_spec(), None)
    with pytest.raises(DataError) as caught:  # read now, and refused for its content
        source.read(datetime.now(UTC), {})
    assert "b.csv has no column 'sex' (1 columns found, names not shown" in str(caught.value)
    assert OUTSIDE_LINE not in str(caught.value)


def test_a_file_name_that_looks_personal_is_warned_about_once(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (folder / "john.doe@example.com.csv").write_text(DECISIONS)
    settings = SourceSettings(kind="file", path=str(folder), outcome="risk")
    source = FileSource(settings, GroupSpec(attributes=("sex",), privileged_value="male"), None)
    with caplog.at_level(logging.WARNING, logger="fairlens_monitor.sources"):
        source.read(datetime.now(UTC), {})
        source.read(datetime.now(UTC), {})
    warned = [r for r in caplog.records if "looks like it holds personal data" in r.message]
    assert len(warned) == 1, caplog.text
    assert str(folder) in warned[0].getMessage()  # the name itself is masked where logged
