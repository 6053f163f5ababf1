"""An auditor's read-only copy (issue 15 item 10): the database 0444 in a read-only folder.

The monitor writes in WAL mode, and SQLite needs the ``-shm`` file even to read such a
database; a reader that cannot create it failed with "may be locked ... try again". These
tests make the folder and file really read-only for the process that reads them: as root
(the tests may run as root, for whom ``chmod`` stops nothing) the readers run as ``nobody``
through ``setpriv``; otherwise ``chmod`` is enough.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from fairlens_monitor.cli.main import cli
from fairlens_monitor.ops.backup import backup_sqlite
from fairlens_monitor.store.db import readonly_uri
from fairlens_monitor.store.errors import StoreError
from tests.conftest import BASE_CONFIG, merge

NOBODY = 65534
REPO = Path(__file__).resolve().parents[1]
VIEWER_READ = (
    "import sys; from fairlens_monitor.config.settings import load_settings; "
    "from fairlens_monitor.viewer.data import open_readonly, latest; "
    "e = open_readonly(load_settings(sys.argv[1])); "
    "print('latest', latest(e) is not None); e.dispose()"
)


def as_reader(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as a process for which ``cwd`` is really read-only."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip(
                "running as root without setpriv: a read-only folder cannot be made "
                "(the detection itself is tested by test_readonly_uri_*)"
            )
        prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [*prefix, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A folder under /tmp that another user can enter (pytest's tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="fairlens-auditor-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder)


def make_auditor_copy(write_config: Callable[..., Path], tmp_path: Path, folder: Path) -> Path:
    """Write two cycles with checkpoints, then copy the database in WAL mode as it is."""
    config = write_config({"audit": {"checkpoint_every": 1}})
    for _ in range(2):
        result = CliRunner().invoke(cli, ["--config", str(config), "once"])
        assert result.exit_code == 0, result.output
    var = tmp_path / "var"
    with sqlite3.connect(var / "fairlens.db") as conn:  # the file really is in WAL mode
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for name in ("fairlens.db", "anchor.jsonl", "keys/checkpoint_ed25519.pub"):
        shutil.copy(var / name, folder / Path(name).name)
    assert not (folder / "fairlens.db-wal").exists()
    (folder / "config.yaml").write_text(
        yaml.safe_dump(
            merge(
                BASE_CONFIG,
                {
                    "database": {"url": "sqlite:///fairlens.db"},
                    "keys": {"dir": "keys"},
                    "audit": {"checkpoint_every": 1, "anchor_file": "anchor.jsonl"},
                },
            )
        )
    )
    for path in folder.iterdir():
        path.chmod(0o444)
    folder.chmod(0o555)
    return folder / "config.yaml"


def test_auditor_commands_read_a_read_only_wal_database(
    write_config: Callable[..., Path], tmp_path: Path, world_dir: Path
) -> None:
    config = make_auditor_copy(write_config, tmp_path, world_dir)
    cli_argv = [sys.executable, "-m", "fairlens_monitor", "--config", str(config)]
    history = as_reader([*cli_argv, "history", "--json"], world_dir)
    assert history.returncode == 0, history.stderr
    assert len(json.loads(history.stdout)) == 4  # two runs, two scenarios each
    audit = as_reader([*cli_argv, "audit", "--json"], world_dir)
    assert audit.returncode == 0, audit.stderr
    verify = as_reader(
        [*cli_argv, "verify", "--json", "--public-key", str(world_dir / "checkpoint_ed25519.pub")],
        world_dir,
    )
    assert verify.returncode == 0, verify.stderr
    report = json.loads(verify.stdout)
    assert report["intact"] is True
    assert report["checkpoints_checked"] >= 1
    page = as_reader([sys.executable, "-c", VIEWER_READ, str(config)], world_dir)
    assert page.returncode == 0, page.stderr
    assert page.stdout.strip() == "latest True"
    assert sorted(p.name for p in world_dir.iterdir()) == [
        "anchor.jsonl",
        "checkpoint_ed25519.pub",
        "config.yaml",
        "fairlens.db",
    ]


def test_a_read_only_copy_with_a_non_empty_wal_is_refused_not_misread(
    write_config: Callable[..., Path], tmp_path: Path, world_dir: Path
) -> None:
    config = write_config()
    assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    shutil.copy(tmp_path / "var" / "fairlens.db", world_dir / "fairlens.db")
    (world_dir / "fairlens.db-wal").write_bytes(b"\0" * 4096)  # commits immutable would miss
    (world_dir / "config.yaml").write_text(
        yaml.safe_dump(merge(BASE_CONFIG, {"database": {"url": "sqlite:///fairlens.db"}}))
    )
    for path in world_dir.iterdir():
        path.chmod(0o444)
    world_dir.chmod(0o555)
    result = as_reader(
        [
            sys.executable,
            "-m",
            "fairlens_monitor",
            "--config",
            str(world_dir / "config.yaml"),
            "history",
        ],
        world_dir,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: database sqlite:///{world_dir}/fairlens.db: is read-only here and "
        "fairlens.db-wal beside it holds commits a read-only open cannot see; open it once "
        "where it is writable (or copy it with `fairlens-monitor backup`, which writes one "
        "self-contained file)"
    ]


def test_readonly_uri_is_immutable_only_when_the_file_or_folder_is_not_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "fairlens.db"
    db.write_bytes(b"")
    assert readonly_uri(db, "u") == f"file:{db}?mode=ro&uri=true"
    monkeypatch.setattr(os, "access", lambda path, _mode: Path(path) != tmp_path)
    assert readonly_uri(db, "u") == f"file:{db}?mode=ro&immutable=1&uri=true"
    (tmp_path / "fairlens.db-wal").write_bytes(b"")  # an empty -wal holds nothing
    assert "immutable=1" in readonly_uri(db, "u")
    (tmp_path / "fairlens.db-wal").write_bytes(b"x")
    with pytest.raises(StoreError, match="holds commits a read-only open cannot see"):
        readonly_uri(db, "u")


def test_a_backup_is_one_self_contained_file_that_opens_read_only_anywhere(
    write_config: Callable[..., Path], tmp_path: Path, world_dir: Path
) -> None:
    config = write_config({"audit": {"checkpoint_every": 1}})
    assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    var = tmp_path / "var"
    made = backup_sqlite(
        f"sqlite:///{var / 'fairlens.db'}",
        world_dir / "copy.db",
        anchor_file=var / "anchor.jsonl",
        public_key=var / "keys" / "checkpoint_ed25519.pub",
    )
    header = made.path.read_bytes()[18:20]
    assert header == b"\x01\x01"  # file format "legacy" (rollback journal), not 2 = WAL
    made.path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    world_dir.chmod(0o555)
    script = (
        "import sqlite3, sys; c = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', "
        "uri=True); print(c.execute('SELECT count(*) FROM audit_events').fetchone()[0])"
    )
    read = as_reader([sys.executable, "-c", script, str(made.path)], world_dir)
    assert read.returncode == 0, read.stderr
    assert int(read.stdout) >= 2
