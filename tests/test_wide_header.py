"""A decision file with a huge header (issue 15 item 8): refused at once, in one line.

A 9.9 MB CSV whose header named a million columns took 3 minutes and 3.3 GB for one cycle;
the header is now bounded (``MAX_HEADER_BYTES``, ``MAX_COLUMNS``) before pandas parses it,
both in the file source and in ``measure``. The tests assert the error, not a time.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from click.testing import CliRunner

from fairlens_monitor.cli.main import cli
from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness.groups import GroupSpec
from fairlens_monitor.sources.files import MAX_COLUMNS, MAX_HEADER_BYTES, Columns, read_file

SPEC = GroupSpec(
    attributes=("gender",),
    reference="privileged",
    privileged_value="Male",
    unprivileged_value="Female",
)
ROWS = "Male,1\nFemale,0\n" * 20
HEADER_NAME = "c999998"  # a name from the header: never quoted back


def header(columns: int) -> str:
    return "gender,approved," + ",".join(f"c{i}" for i in range(columns - 2)) + "\n"


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def measure(path: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(
        cli,
        [
            "measure",
            "--protected-attribute",
            "gender",
            "--privileged-value",
            "Male",
            "--outcome",
            "approved",
            str(path),
        ],
    )
    return result.exit_code, result.stderr.splitlines()


@pytest.mark.parametrize("name", ["wide.csv", "wide.csv.gz"])
def test_a_million_column_header_is_refused_by_its_size(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, header(1_000_000) + ROWS)
    assert len(header(1_000_000)) > MAX_HEADER_BYTES
    code, lines = measure(path)
    assert code == 2
    assert lines == [
        f"error: file {name}: its first line (the header) is longer than "
        "1,048,576 bytes, the limit for a decision file's header; is it the "
        "right file, with a header row?"
    ]
    with pytest.raises(DataError, match="longer than 1,048,576 bytes") as info:
        read_file(path, Columns(SPEC, "approved"), None, chunk_rows=1000)
    assert HEADER_NAME not in str(info.value)


def test_a_header_of_too_many_columns_is_refused_by_their_count(tmp_path: Path) -> None:
    path = write(tmp_path / "cols.csv", header(MAX_COLUMNS + 1) + ROWS)
    assert len(header(MAX_COLUMNS + 1)) < MAX_HEADER_BYTES
    code, lines = measure(path)
    assert code == 2
    assert lines == [
        f"error: file cols.csv: its header has {MAX_COLUMNS + 1:,} columns, "
        f"more than the {MAX_COLUMNS:,} a decision file may have; export only "
        "the columns the monitor reads"
    ]
    with pytest.raises(DataError, match="more than the 10,000"):
        read_file(path, Columns(SPEC, "approved"), None, chunk_rows=1000)


def test_a_header_at_the_column_limit_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "ok.csv", header(MAX_COLUMNS) + "Male,1\n" * 3)
    _, read = read_file(path, Columns(SPEC, "approved"), None, chunk_rows=1000)
    assert read.rows == 3
    code, _ = measure(path)
    assert code == 0
