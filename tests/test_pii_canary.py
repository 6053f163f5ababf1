"""No applicant data in the permanent record or on the console (issue 15, item 1).

Canary personal data — an e-mail, an SSN, a phone number, a Luhn-valid card number and a
made-up name that no pattern could mask — is put in a decision file's header and in its
cells, and in a SQL source's column names and cells. Each case fails its cycle; the test
then greps every byte the monitor wrote (the database with its ``-wal``, the anchor file,
the key folder) and everything ``once``, ``run`` and ``measure`` printed for each canary.
The name canary proves the error texts never quote a value at all (masking alone could not
hide it).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fairlens_monitor.cli.main import cli

CANARIES = (
    "john.doe@example.com",
    "123-45-6789",
    "555-123-4567",
    "4111111111111111",
    "Zebulon Quixotic",
)
PATTERNED = CANARIES[:4]  # what a protected attribute holding identifiers would look like
MEASUREMENT = {
    "protected_attributes": ["sex"],
    "privileged_value": "male",
    "unprivileged_value": "female",
}


def good_rows(n: int = 40) -> list[list[str]]:
    """Rows of sex, risk, decided_at, amount, repaid that a cycle would measure."""
    return [
        [
            "female" if i % 2 else "male",
            str(i % 3 % 2),
            f"2026-11-01T{i % 24:02d}:00:00+00:00",
            str(1000 + i),
            str(i % 2),
        ]
        for i in range(n)
    ]


def with_canaries(column: int) -> list[list[str]]:
    """Good rows whose ``column`` holds the canaries, one per row, in turn."""
    rows = good_rows()
    for i, row in enumerate(rows):
        row[column] = (PATTERNED if column == 0 else CANARIES)[i % (4 if column == 0 else 5)]
    return rows


HEADER = ["sex", "risk", "decided_at", "amount", "repaid"]
FILE_CASES: dict[str, tuple[list[list[str]], dict[str, Any]]] = {
    # no header row: the first line of data is where the column names would be
    "header": ([list(CANARIES), *good_rows()], {}),
    "outcome": ([HEADER, *with_canaries(1)], {}),
    "timestamp": ([HEADER, *with_canaries(2)], {"timestamp": "decided_at", "window": "24h"}),
    "stratum": ([HEADER, *with_canaries(3)], {"stratum": "amount"}),
    "label": ([HEADER, *with_canaries(4)], {"label": "repaid"}),
    "attribute": ([HEADER, *with_canaries(0)], {}),
}


def file_case(
    tmp_path: Path, write_config: Callable[..., Path], case: str, **overrides: Any
) -> Path:
    """Write the case's decision file and a config reading it; return the config."""
    lines, shared = FILE_CASES[case]
    extra = dict(shared)  # the table is shared by every test: never change it
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "decisions-2026-11-01.csv").write_text("\n".join(",".join(r) for r in lines))
    label = extra.pop("label", None)
    source = {"kind": "file", "path": str(folder / "*.csv"), "outcome": "risk", **extra}
    measurement = {**MEASUREMENT, **({"label": label} if label else {})}
    return write_config(
        {
            "source": source,
            "measurement": measurement,
            "audit": {"checkpoint_every": 1},
            **overrides,
        }
    )


def written_bytes(tmp_path: Path) -> dict[str, bytes]:
    """Every file the monitor wrote under ``var/`` (database, -wal, anchor file, keys)."""
    files = {str(p): p.read_bytes() for p in (tmp_path / "var").rglob("*") if p.is_file()}
    assert any(name.endswith("fairlens.db") for name in files), sorted(files)
    return files


def assert_no_canary(texts: dict[str, bytes | str]) -> None:
    for where, content in texts.items():
        data = content if isinstance(content, bytes) else content.encode()
        for canary in CANARIES:
            for form in {canary, canary.replace("-", ""), canary.upper()}:
                assert form.encode() not in data, f"{form!r} found in {where}"
            assert canary.encode("utf-16-le") not in data, f"{canary!r} (UTF-16) in {where}"


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def failed_errors(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as db:
        return [e for (e,) in db.execute("SELECT error FROM runs WHERE status = 'failed'")]


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_once_on_a_file_with_personal_data_records_and_prints_none_of_it(
    tmp_path: Path, write_config: Callable[..., Path], case: str
) -> None:
    config = file_case(tmp_path, write_config, case)
    done = monitor(config, "once")
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # one line, no traceback
    [error] = failed_errors(tmp_path)  # the failure is recorded, naming the file
    assert "decisions-2026-11-01.csv" in error or "sex" in error, error
    # the file is fixed; the next cycle succeeds and signs a checkpoint over the failure
    (tmp_path / "in" / "decisions-2026-11-01.csv").write_text(
        "\n".join(",".join(r) for r in [HEADER, *good_rows()])
    )
    again = monitor(config, "once")
    assert again.returncode == 0, again.stdout + again.stderr
    verify = monitor(config, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    files = written_bytes(tmp_path)
    assert any(name.endswith("anchor.jsonl") for name in files), sorted(files)
    assert_no_canary(
        {"stdout": done.stdout, "stderr": done.stderr, "verify": verify.stdout, **files}
    )


def test_a_headerless_file_is_named_with_its_column_count(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    done = monitor(file_case(tmp_path, write_config, "header"), "once")
    assert (
        "file decisions-2026-11-01.csv has no column 'sex' (5 columns found, names not shown"
    ) in done.stderr, done.stderr


def test_the_daemon_records_and_prints_no_personal_data(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = file_case(
        tmp_path,
        write_config,
        "header",
        schedule={"interval_seconds": 0.5, "misfire_grace_seconds": 5},
    )
    log = tmp_path / "daemon.out"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while "cycle failed" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    output = log.read_text()
    assert "✗ cycle failed: DataError: file decisions-2026-11-01.csv has no column 'sex'" in (
        output
    ), output
    assert failed_errors(tmp_path)
    assert_no_canary({"daemon output": output, **written_bytes(tmp_path)})


def sql_source(tmp_path: Path, columns: list[str], rows: list[list[str]]) -> str:
    path = tmp_path / "lender.db"
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE decisions ({', '.join(repr(c) for c in columns)})")
        db.executemany(f"INSERT INTO decisions VALUES ({', '.join('?' * len(columns))})", rows)
    return f"sqlite:///{path}"


@pytest.mark.parametrize("case", ["header", "outcome", "label", "attribute"])
def test_a_sql_source_with_personal_data_records_and_prints_none_of_it(
    tmp_path: Path, write_config: Callable[..., Path], case: str
) -> None:
    if case == "header":  # columns named like data: a table loaded from a headerless file
        url = sql_source(tmp_path, list(CANARIES), good_rows())
    else:
        url = sql_source(tmp_path, HEADER, FILE_CASES[case][0][1:])
    label = {"label": "repaid"} if case == "label" else {}
    config = write_config(
        {
            "source": {"kind": "sql", "url": url, "table": "decisions", "outcome": "risk"},
            "measurement": {**MEASUREMENT, **label},
            "audit": {"checkpoint_every": 1},
        }
    )
    done = monitor(config, "once")
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert failed_errors(tmp_path)
    assert_no_canary({"stdout": done.stdout, "stderr": done.stderr, **written_bytes(tmp_path)})


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_measure_prints_no_personal_data(tmp_path: Path, case: str) -> None:
    lines, extra = FILE_CASES[case]
    path = tmp_path / "decisions.csv"
    path.write_text("\n".join(",".join(r) for r in lines))
    args = [
        "measure",
        str(path),
        "--protected-attribute",
        "sex",
        "--privileged-value",
        "male",
        "--outcome",
        "risk",
    ]
    if "label" in extra:
        args += ["--label", "repaid"]
    if "stratum" in extra:
        args += ["--explain-by", "amount"]
    result = CliRunner().invoke(cli, args)
    if case == "timestamp":  # measure reads no time column: the canaries are never read
        assert result.exit_code in (0, 1), result.output
    else:
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: "), result.output
    assert_no_canary({"measure output": result.output})
