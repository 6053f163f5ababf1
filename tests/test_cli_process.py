"""How the command-line process starts and ends (issue 17, goal 4: ``measure``'s wall time).

Two things make the real process cheaper, and each is checked here in a fresh interpreter,
as the console script runs:

- importing the CLI sets ``OPENBLAS_NUM_THREADS=1`` unless the operator set it, so numpy and
  scipy start no BLAS threads (which spun on a core the CSV parse needed);
- ``measure`` ends the process as soon as its output is flushed, skipping the interpreter's
  teardown; every other command, and a failing ``measure``, ends the normal way.

The time each saves is measured by benchmarks/measure_csv.py, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GERMAN = REPO / "tests" / "data" / "german_credit.csv"
MEASURE = ["measure", str(GERMAN), "--protected-attribute", "sex", "--privileged-value", "male"]
# The console script's main() with an atexit hook: the hook runs only on a normal teardown.
ENTRY = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("TEARDOWN\\n"))
from fairlens_monitor.cli.main import main
sys.argv = ["fairlens-monitor", *sys.argv[1:]]
main()
"""


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The console entry point in a fresh process, output captured through pipes."""
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_measure_ends_at_once_with_its_whole_report_and_its_exit_code(tmp_path: Path) -> None:
    result = run(*MEASURE, "--outcome", "risk", "--json")
    report = json.loads(result.stdout)  # all of it reached the pipe before the process ended
    assert (report["rows"], report["verdict"], result.returncode) == (1000, "ok", 0)
    assert "TEARDOWN" not in result.stderr  # the interpreter was not torn down
    adverse = tmp_path / "adverse.csv"  # 90 % of one group approved, 30 % of the other
    adverse.write_text("g,y\n" + "a,1\n" * 180 + "a,0\n" * 20 + "b,1\n" * 60 + "b,0\n" * 140)
    result = run(
        "measure",
        str(adverse),
        "--protected-attribute",
        "g",
        "--privileged-value",
        "a",
        "--outcome",
        "y",
        "--json",
    )
    assert (json.loads(result.stdout)["verdict"], result.returncode) == ("adverse", 1)
    assert "TEARDOWN" not in result.stderr


def test_measure_text_report_is_flushed_whole_too() -> None:
    result = run(*MEASURE, "--outcome", "risk")
    assert result.returncode in (0, 1)
    assert result.stdout.startswith(f"{GERMAN}: 1,000 decisions")
    assert result.stdout.endswith("\n")
    assert "TEARDOWN" not in result.stderr


def test_a_failing_measure_and_other_commands_end_the_normal_way() -> None:
    failed = run(*MEASURE, "--outcome", "no_such_column")
    assert failed.returncode == 2
    assert "no column 'no_such_column'" in failed.stderr
    assert failed.stderr.rstrip().endswith("TEARDOWN")  # the error line, then the teardown
    version = run("--version")
    assert version.returncode == 0
    assert "TEARDOWN" in version.stderr


BLAS_PROBE = """
import os, sys
import fairlens_monitor.cli.main  # what the console script imports first
import numpy, scipy.special  # each loads its own OpenBLAS
print(os.environ.get("OPENBLAS_NUM_THREADS"), len(os.listdir("/proc/self/task")))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_the_cli_starts_no_blas_threads_unless_the_operator_asks_for_them() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}

    def probe(extra: dict[str, str]) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", BLAS_PROBE],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
            env={**env, **extra},
        )
        return out.stdout.split()

    assert probe({}) == ["1", "1"]  # one thread: no BLAS workers were started
    setting, threads = probe({"OPENBLAS_NUM_THREADS": "2"})
    assert setting == "2"  # the operator's own setting is kept…
    assert int(threads) > 1  # …and obeyed (the probe can see BLAS threads)
