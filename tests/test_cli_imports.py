"""The command line loads only what a command needs (issue 17, goal 4).

``measure`` writes nothing, so it must not import the database layer (SQLAlchemy, Alembic)
nor scipy.stats, nor, for a plain CSV, pandas; ``--help`` must not import pandas either.
Each case runs the real console entry point in a fresh interpreter and reads
``sys.modules`` afterwards (a test in this process would see whatever other tests imported).
No timing is asserted here: the times are in benchmarks/measure_csv.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GERMAN = REPO / "tests" / "data" / "german_credit.csv"
# Run the command as the console script's main() does, then list the top-level packages it
# imported. main() itself would end the process at once after `measure` (cli/ending.py), before
# the probe could look, so the probe calls what main() calls.
PROBE = """
import json, sys
from fairlens_monitor.cli.common import run_console
from fairlens_monitor.cli.main import cli
out, sys.argv = sys.argv[1], ["fairlens-monitor", *sys.argv[2:]]
try:
    code = run_console(cli)
except SystemExit as exc:
    code = exc.code
names = sorted(m for m in sys.modules if m.split(".")[0] in {"sqlalchemy", "alembic", "scipy",
    "pandas", "apscheduler", "streamlit", "psycopg"})
with open(out, "w") as f:
    json.dump({"code": code, "modules": names}, f)
"""


def loaded(tmp_path: Path, *argv: str) -> tuple[int, set[str]]:
    """Run the CLI with ``argv`` in a fresh process: (exit code, heavy modules imported)."""
    out = tmp_path / "modules.json"
    subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *argv],
        cwd=tmp_path,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
    )
    doc = json.loads(out.read_text())
    return doc["code"], set(doc["modules"])


def measure_args(path: Path) -> list[str]:
    return [
        "measure",
        str(path),
        "--protected-attribute",
        "sex",
        "--privileged-value",
        "male",
        "--outcome",
        "risk",
        "--label",
        "risk",
    ]


def test_measure_of_a_plain_csv_loads_no_pandas_no_database_layer_and_no_scipy_stats(
    tmp_path: Path,
) -> None:
    code, modules = loaded(tmp_path, *measure_args(GERMAN))
    assert code == 0
    assert "scipy.special" in modules  # it did measure: the probe sees what it imported
    assert "pandas" not in modules  # counted on the parser's codes, judged without a frame
    assert not {m for m in modules if m.split(".")[0] in {"sqlalchemy", "alembic"}}
    assert "scipy.stats" not in modules
    assert not {m for m in modules if m.split(".")[0] in {"apscheduler", "streamlit", "psycopg"}}


@pytest.mark.parametrize(
    ("name", "body", "exit_code"),
    [
        ("numbers.csv", "sex,risk\n" + "male,1.0\nfemale,0.0\n" * 40, 1),  # not words: numbers
        ("quoted.csv", '"sex",risk\n' + "male,1\nfemale,0\n" * 40, 1),  # a quoted header
        ("short.csv", "sex,risk\n" + "male,1\nfemale\n" * 40, 2),  # a row pyarrow refuses
    ],
)
def test_measure_loads_pandas_where_only_pandas_can_say(
    tmp_path: Path, name: str, body: str, exit_code: int
) -> None:
    """What the coded count cannot decide alone goes the pandas way, and still measures (an
    adverse verdict, exit 1) or names the bad rows (exit 2)."""
    path = tmp_path / name
    path.write_text(body)
    code, modules = loaded(tmp_path, *measure_args(path))
    assert code == exit_code
    assert "pandas" in modules


def test_a_measure_error_loads_no_database_layer_either(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("sex,risk\nmale,maybe\nfemale,1\n")
    code, modules = loaded(tmp_path, *measure_args(bad))
    assert code == 2  # the error path (ErrorGroup) ran without importing SQLAlchemy
    assert not {m for m in modules if m.split(".")[0] in {"sqlalchemy", "alembic"}}


@pytest.mark.parametrize(
    "argv", [["--help"], ["measure", "--help"], ["report", "--help"], ["--version"]]
)
def test_help_loads_neither_pandas_nor_the_database_layer(tmp_path: Path, argv: list[str]) -> None:
    code, modules = loaded(tmp_path, *argv)
    assert code in (0, None)
    assert modules == set()


def test_a_database_command_still_loads_it(tmp_path: Path) -> None:
    """The probe can see SQLAlchemy: a command that opens the database imports it."""
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: sqlite:///{tmp_path / 'monitor.db'}\n")
    _, modules = loaded(tmp_path, "--config", str(config), "db", "current")
    assert "sqlalchemy" in modules


def test_report_help_loads_no_chart_pdf_or_template_library(tmp_path: Path) -> None:
    """``report``'s matplotlib, fpdf2 and Jinja2 load when it writes a pack, not for --help."""
    out = tmp_path / "modules.json"
    probe = PROBE.replace('"psycopg"}', '"psycopg", "matplotlib", "fpdf", "jinja2"}')
    assert probe != PROBE  # the probe does look for them
    subprocess.run(
        [sys.executable, "-c", probe, str(out), "report", "--help"],
        cwd=tmp_path,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
    )
    doc = json.loads(out.read_text())
    assert doc["code"] in (0, None)
    assert doc["modules"] == []
