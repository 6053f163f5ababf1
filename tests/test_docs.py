"""The documents are executable: every query, script and command in them runs here.

README.md holds the newcomer's example (``measure`` on German Credit); docs/AUDITORS.md the
views, ready queries, table queries, the offline verifier and the OpenSSL check;
docs/CONFIGURATION.md and docs/CLI.md the references (checked against the code by
tests/test_doc_references.py as well)."""

from __future__ import annotations

import itertools
import json
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops.daemon import run_daemon
from tests.helpers.commands import subcommands

REPO = Path(__file__).resolve().parents[1]
AUDITORS = (REPO / "docs" / "AUDITORS.md").read_text()
README = (REPO / "README.md").read_text()
CONFIGURATION = (REPO / "docs" / "CONFIGURATION.md").read_text()
CLI_DOC = (REPO / "docs" / "CLI.md").read_text()


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def statements(*texts: str) -> list[str]:
    return [
        part.strip()
        for text in texts
        for block in blocks(text, "sql")
        for part in block.split(";")
        if "SELECT" in part
    ]


def marked(text: str, name: str) -> str:
    section = text.split(f"<!-- {name}:start -->")[1].split(f"<!-- {name}:end -->")[0]
    block: str = re.findall(r"```\w+\n(.*?)```", section, flags=re.DOTALL)[0]
    return block


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    """A database written by the real daemon: a ramp into alerts, checkpoints every 5."""
    root = tmp_path_factory.mktemp("docs")
    config = root / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": "sqlite:///var/fairlens.db"},
                "schedule": {"interval_seconds": 0.05},
                "simulation": {
                    "n_samples": 600,
                    "seed": 3,
                    "drift": {"mode": "ramp", "start": 0.0, "end": 1.0, "cycles": 5},
                },
                "thresholds": {"dir": 0.8, "gap": 0.2},
                "keys": {"dir": "var/keys"},
                "audit": {"checkpoint_every": 5},
            }
        )
    )
    from fairlens_monitor.config.settings import load_settings

    settings = load_settings(config, env={})
    run_daemon(settings, emit=lambda _line: None, max_cycles=8, handle_signals=False)
    return root, settings


def db(written: tuple[Path, Settings]) -> Path:
    return written[0] / "var" / "fairlens.db"


@pytest.mark.parametrize("query", statements(AUDITORS, README))
def test_every_documented_query_runs(written: tuple[Path, Settings], query: str) -> None:
    with sqlite3.connect(f"file:{db(written)}?mode=ro", uri=True) as conn:
        conn.execute(query).fetchall()


def test_auditor_queries_find_what_the_daemon_did(written: tuple[Path, Settings]) -> None:
    with sqlite3.connect(db(written)) as conn:
        days = conn.execute(blocks(AUDITORS, "sql")[1]).fetchall()
        verdicts = conn.execute(blocks(AUDITORS, "sql")[2]).fetchall()
        groups = conn.execute(blocks(AUDITORS, "sql")[3]).fetchall()
        drifted = conn.execute(blocks(AUDITORS, "sql")[6]).fetchall()
        anchored = conn.execute(blocks(AUDITORS, "sql")[9]).fetchone()
    assert {row[1] for row in verdicts} == {"adverse"}  # the ramp ends far below 0.8
    assert [(g[0], g[1], g[5]) for g in groups] == [
        ("Female", "compared", "adverse"),
        ("Male", "reference", None),
    ]
    assert days
    assert days[0][3] >= 3  # the ramp put at least three readings below 0.8
    assert drifted  # ... while the reference stayed fair
    head, anchored_seq, unanchored = anchored
    assert anchored_seq == head  # the shutdown checkpoint anchors the last event
    assert unanchored == 0


def test_the_inventory_queries_run_on_what_the_daemon_wrote(written: tuple[Path, Settings]) -> None:
    """The monitors' ready queries (issue 18), found by what they read: the daemon's one
    monitor is ``default``, with the adverse ramp's open alert on the inventory."""
    sql = blocks(AUDITORS, "sql")
    inventory = next(b for b in sql if "FROM v_monitor_status" in b)
    one = next(b for b in sql if "WHERE monitor = 'default'" in b)
    with sqlite3.connect(db(written)) as conn:
        flagged = conn.execute(inventory).fetchall()
        readings = conn.execute(one).fetchall()
        total = conn.execute(
            "SELECT count(*) FROM v_fairness_history WHERE scenario = 'monitored'"
        ).fetchone()[0]
    assert [(m, state, verdict, alerts) for m, state, _, verdict, _, alerts in flagged] == [
        ("default", "active", "adverse", 1)
    ]
    assert len(readings) == min(5, total) > 0
    assert {r[2] for r in readings} == {"adverse"}


def test_the_rollup_queries_sum_the_readings_and_find_a_wrong_hour(
    written: tuple[Path, Settings], tmp_path: Path
) -> None:
    daily, disagreeing = statements(blocks(AUDITORS, "sql")[-1].join(["```sql\n", "```"]))
    copy = tmp_path / "copy.db"
    # read-only, and every connection closed here: another test copies the folder later
    with (
        closing(sqlite3.connect(f"file:{db(written)}?mode=ro", uri=True)) as src,
        closing(sqlite3.connect(copy)) as conn,
    ):
        src.backup(conn)
        monitored = conn.execute(
            "SELECT count(*) FROM readings WHERE scenario = 'monitored'"
        ).fetchone()[0]
        assert sum(row[1] for row in conn.execute(daily).fetchall()) == monitored > 0
        assert conn.execute(disagreeing).fetchall() == []
        conn.execute("UPDATE reading_rollups SET dir_sum = dir_sum + 0.5 WHERE id = 1")
        assert [row[0] for row in conn.execute(disagreeing).fetchall()] == [1]


@pytest.mark.parametrize(
    "view",
    [
        "v_runs",
        "v_fairness_history",
        "v_group_results",
        "v_source_files",
        "v_reading_rollups",
        "v_monitor_status",
    ],
)
def test_documented_columns_are_the_view_columns(written: tuple[Path, Settings], view: str) -> None:
    section = AUDITORS.split(f"### `{view}`")[1].split("###")[0]
    documented = set()
    for first_cell in re.findall(r"^\| (.*?) \|", section, flags=re.MULTILINE):
        documented |= set(re.findall(r"`(\w+)`", first_cell))
    with sqlite3.connect(db(written)) as conn:
        actual = {row[1] for row in conn.execute(f"PRAGMA table_info({view})")}
    assert documented == actual


def test_the_views_with_a_monitor_column_are_the_ones_the_doc_says(
    written: tuple[Path, Settings],
) -> None:
    """AUDITORS.md said "every view below has a `monitor` column, as its last column", but
    `v_checkpoints` has none (a checkpoint covers every monitor), and `v_monitor_status` and
    `v_reading_rollups` have it near the front: the claim names the exceptions."""
    with sqlite3.connect(db(written)) as conn:
        views = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='view'")]
        cols = {v: [row[1] for row in conn.execute(f"PRAGMA table_info({v})")] for v in views}
    without = {v for v, c in cols.items() if "monitor" not in c}
    not_last = {v for v, c in cols.items() if "monitor" in c and c[-1] != "monitor"}
    assert without == {"v_checkpoints"}
    assert not_last == {"v_monitor_status", "v_reading_rollups"}
    intro = AUDITORS.split("## Views", 1)[1].split("###", 1)[0]
    claim = " ".join(intro.split())
    assert "Every view below but `v_checkpoints`" in claim
    assert "`v_monitor_status` and `v_reading_rollups`, where it leads" in claim


def test_alert_view_leaves_the_token_out(written: tuple[Path, Settings]) -> None:
    with sqlite3.connect(db(written)) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(v_alerts)")}
        # The ramp stays adverse once it crosses the line: one episode, still open.
        assert conn.execute("SELECT kind, state FROM v_alerts").fetchall() == [("dir", "open")]
        adverse = conn.execute(
            "SELECT count(*) FROM v_fairness_history WHERE verdict = 'adverse'"
        ).fetchone()[0]
    assert adverse >= 3
    assert "token" not in columns


def exported(root: Path, tmp_path: Path) -> Path:
    """Export the audit chain of the monitor in ``root`` with the CLI, as an auditor would."""
    export = tmp_path / "audit.jsonl"
    result = CliRunner().invoke(
        cli, ["--config", str(root / "config.yaml"), "audit", "export", "--jsonl", str(export)]
    )
    assert result.exit_code == 0, result.output
    return export


def test_auditors_point_at_the_one_offline_verifier() -> None:
    """One source of truth: AUDITORS.md describes scripts/offline_verify.py and holds no
    second copy of it (the script itself is tested in test_offline_verify.py)."""
    section = AUDITORS.split("### Verifying an export offline")[1].split("## ")[0]
    assert "python3 scripts/offline_verify.py audit.jsonl var/anchor.jsonl" in section
    assert "```python" not in section
    assert (REPO / "scripts" / "offline_verify.py").is_file()


def test_auditors_confirm_a_reading_from_the_export(
    written: tuple[Path, Settings], tmp_path: Path
) -> None:
    """AUDITORS.md's commands, run as written: the export verifies offline and prints the
    reading's row, whose values are the database's."""
    root, _settings = written
    work = tmp_path / "auditor"
    # everything in the database file itself, so its -wal/-shm (which vanish when a pooled
    # connection of an earlier test closes) need not be copied
    with closing(sqlite3.connect(root / "var" / "fairlens.db")) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copytree(root, work, ignore=shutil.ignore_patterns("*.db-wal", "*.db-shm"))
    (work / "scripts").symlink_to(REPO / "scripts")
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", marked(AUDITORS, "export-row")],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    *_, intact, row_text = result.stdout.splitlines()
    assert intact.startswith("intact: ")
    row = json.loads(row_text)
    with sqlite3.connect(work / "var" / "fairlens.db") as conn:
        conn.row_factory = sqlite3.Row
        stored = dict(conn.execute("SELECT * FROM readings WHERE id = 2").fetchone())
    assert row["id"] == 2
    assert set(row) == set(stored)
    for column in ("dir", "verdict", "group_approved", "reference_applicants", "seed"):
        assert row[column] == stored[column]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_auditors_openssl_commands_verify_a_checkpoint(written: tuple[Path, Settings]) -> None:
    root, _settings = written
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", marked(AUDITORS, "openssl-verify")],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Signature Verified Successfully" in result.stdout


def test_configuration_doc_documents_every_shipped_config_key() -> None:
    shipped = yaml.safe_load((REPO / "config.yaml").read_text())
    table = CONFIGURATION.split("| key | type, range | default | meaning |")[1]
    documented = set(re.findall(r"^\| `([\w.]+)` \|", table, flags=re.MULTILINE))
    assert "monitors" in documented
    del shipped["monitors"]  # its monitors' sections are the sections below
    keys = {f"{section}.{key}" for section, values in shipped.items() for key in values}
    assert keys <= documented
    assert "database.busy_timeout_ms" in documented


def test_command_table_matches_the_cli() -> None:
    commands = set(subcommands(cli))
    table = CLI_DOC.split("## Commands")[1].split("\n## ")[0]
    for name in commands:
        assert f"`{name}" in table, f"docs/CLI.md does not document '{name}'"


def test_each_command_has_one_row_in_the_command_table() -> None:
    """Merges left `run` three times and `once` twice in the table, each row telling another
    story (one daemon per database, or several splitting the monitors)."""
    table = CLI_DOC.split("## Commands")[1].split("\n## ")[0]
    named = []
    for line in table.splitlines():
        if line.startswith("| `"):
            words = line[3:].split("`", 1)[0].split()
            named.append(" ".join(itertools.takewhile(re.compile(r"[a-z-]+").fullmatch, words)))
    assert len(named) == len(set(named)), sorted(n for n in named if named.count(n) > 1)


def test_readme_measure_example_prints_what_the_readme_shows() -> None:
    section = README.split("## A worked example on real data")[1].split("\n## ")[0]
    command, shown, stricter = re.findall(r"```\w*\n(.*?)```", section, flags=re.DOTALL)[:3]
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[:2] == ["fairlens-monitor", "measure"]
    result = CliRunner().invoke(cli, argv[1:])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == shown.strip()
    # The stricter line: "$ fairlens-monitor measure … --threshold 0.9" and its verdict line.
    prompt, verdict = stricter.strip().splitlines()
    extra = shlex.split(prompt.split("…", 1)[1])
    assert prompt.startswith("$ fairlens-monitor measure …")
    assert extra
    result = CliRunner().invoke(cli, [*argv[1:], *extra])
    assert result.exit_code == 1, result.output
    assert result.stdout.strip().splitlines()[-1] == verdict


def test_auditors_offline_row_script_confirms_a_reading(
    written: tuple[Path, Settings], tmp_path: Path
) -> None:
    root, _settings = written
    export = exported(root, tmp_path)
    script = tmp_path / "offline_rows.py"
    script.write_text(marked(AUDITORS, "offline-rows"))
    copy = tmp_path / "copy.db"
    with sqlite3.connect(db(written)) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)

    def check(table: str, row_id: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-I", str(script), str(export), str(copy), table, str(row_id)],
            capture_output=True,
            text=True,
            check=False,
        )

    for table in ("runs", "readings", "group_results", "alerts"):
        ok = check(table, 1)
        assert ok.returncode == 0, (table, ok.stderr)
        assert f"{table} 1 matches the digest recorded at seq" in ok.stdout
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE readings SET dir = 0.95 WHERE id = 2")
    bad = check("readings", 2)
    assert bad.returncode == 1
    assert "readings 2 differs from the digest recorded at seq" in bad.stderr
