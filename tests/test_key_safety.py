"""Keys under stress: a rotation killed between its renames, a wrong key, an open folder.

Each case drives the real CLI (or a real ``keys rotate`` process stopped between its two
renames) on SQLite and PostgreSQL, and checks that the monitor finishes what it safely can
and otherwise refuses in one line with exit 2 before writing anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from fairlens_monitor.cli.main import cli
from fairlens_monitor.ops.keys import rotate_alert_key
from fairlens_monitor.security.crypto import key_fingerprint, load_cipher
from fairlens_monitor.store.db import make_engine
from fairlens_monitor.store.repository import Repository
from tests import test_keys
from tests.conftest import query_url

setup = test_keys.setup  # the fixture: a database holding two encrypted alerts
Setup = tuple[Callable[..., Result], str, Path]


def one_line_exit_2(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def counts(url: str) -> tuple[object, ...]:
    return query_url(
        url,
        "SELECT (SELECT COUNT(*) FROM runs), (SELECT COUNT(*) FROM alerts), "
        "(SELECT COUNT(*) FROM audit_events)",
    )[0]


def assert_recovered(run: Callable[..., Result], url: str, key_dir: Path, new_id: str) -> None:
    """After the crash state: the next start puts the staged key in place and records it."""
    assert not (key_dir / "fernet.key").exists()
    assert (key_dir / f"fernet-{new_id}.staged").exists()
    result = run("once")
    assert result.exit_code == 0, result.output
    assert key_fingerprint((key_dir / "fernet.key").read_bytes()) == new_id
    assert not list(key_dir.glob("*.staged"))
    cipher = load_cipher(key_dir, create=False)
    tokens = query_url(url, "SELECT token, key_id FROM alerts ORDER BY id")
    assert len(tokens) == 2
    assert all(cipher.decrypt(str(t)).startswith("DIR = ") for t, _ in tokens)
    assert {k for _, k in tokens} == {new_id}
    events = json.loads(run("audit", "--last", "20", "--json").stdout)
    assert [e["details"] for e in events if e["event_type"] == "key_rotation_finished"] == [
        {"key_id": new_id}
    ]
    assert run("verify").exit_code == 0


def test_a_crash_between_the_renames_is_finished_at_the_next_start(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, url, key_dir = setup
    real_replace = os.replace
    calls: list[object] = []

    def killed_after_first(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if calls:
            raise KeyboardInterrupt("killed between the renames")
        calls.append(src)
        real_replace(src, dst)

    monkeypatch.setattr("fairlens_monitor.ops.keys.os.replace", killed_after_first)
    repo = Repository(make_engine(url))
    with pytest.raises(KeyboardInterrupt):
        rotate_alert_key(key_dir, repo, ts="2026-01-01T00:00:00.000000Z")
    repo.engine.dispose()
    monkeypatch.undo()
    [staged] = key_dir.glob("fernet-*.staged")
    assert_recovered(run, url, key_dir, staged.name.removeprefix("fernet-").split(".")[0])


def test_a_real_rotation_killed_between_the_renames_is_finished(
    setup: Setup, tmp_path: Path
) -> None:
    run, url, key_dir = setup
    config = tmp_path / "config.yaml"  # where write_config put it
    env = {**os.environ, "FAIRLENS_TEST_STOP_BETWEEN_RENAMES": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "keys", "rotate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)  # returns when it stops itself
        assert os.WIFSTOPPED(status), status
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    [staged] = key_dir.glob("fernet-*.staged")
    assert_recovered(run, url, key_dir, staged.name.removeprefix("fernet-").split(".")[0])


def wrong_key(key_dir: Path) -> bytes:
    """Replace fernet.key by another valid key (0600), as a mixed-up deployment would."""
    path = key_dir / "fernet.key"
    path.unlink()
    path.write_bytes(Fernet.generate_key() + b"\n")
    path.chmod(0o600)
    return path.read_bytes()


def test_rotating_with_a_wrong_key_is_one_line_and_changes_nothing(setup: Setup) -> None:
    run, url, key_dir = setup
    key = wrong_key(key_dir)
    tokens = query_url(url, "SELECT token FROM alerts ORDER BY id")
    line = one_line_exit_2(run("keys", "rotate"))
    assert "does not decrypt" in line
    assert "fernet.key" in line
    assert (key_dir / "fernet.key").read_bytes() == key
    assert not list(key_dir.glob("fernet-*"))
    assert query_url(url, "SELECT token FROM alerts ORDER BY id") == tokens
    assert not query_url(url, "SELECT seq FROM audit_events WHERE event_type = 'keys_rotated'")


@pytest.mark.parametrize("command", [["once"], ["run", "--cycles", "1"]])
def test_a_wrong_key_is_refused_at_start_while_tokens_exist(
    setup: Setup, command: list[str]
) -> None:
    run, url, key_dir = setup
    wrong_key(key_dir)
    before = counts(url)
    line = one_line_exit_2(run(*command))
    assert "does not decrypt the stored alert #" in line
    assert "put the right fernet.key back" in line
    assert counts(url) == before


def test_an_open_key_folder_is_refused_and_reported(setup: Setup) -> None:
    run, url, key_dir = setup
    key_dir.chmod(0o777)
    try:
        status = run("keys", "status")
        assert status.exit_code == 1
        assert f"EXPOSED (fix: chmod 700 {key_dir})" in status.stdout
        before = counts(url)
        for command in (["once"], ["keys", "rotate"], ["decrypt", "x"]):
            line = one_line_exit_2(run(*command))
            assert f"chmod 700 {key_dir}" in line, command
        assert counts(url) == before
    finally:
        key_dir.chmod(0o700)
    assert run("keys", "status").exit_code == 0
    assert run("once").exit_code == 0


def test_a_new_key_folder_is_made_0700_and_an_open_one_gets_no_key(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config({"keys": {"dir": "made/keys"}})
    assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    assert (tmp_path / "made" / "keys").stat().st_mode & 0o777 == 0o700
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    config = write_config({"keys": {"dir": "open"}, "database": {"url": "sqlite:///b.db"}})
    line = one_line_exit_2(CliRunner().invoke(cli, ["--config", str(config), "once"]))
    assert f"chmod 700 {open_dir}" in line
    assert not list(open_dir.iterdir())
    assert not (tmp_path / "b.db").exists()  # refused before the database was created


def test_a_damaged_newest_token_is_not_taken_for_a_wrong_key(setup: Setup) -> None:
    run, url, _ = setup
    engine = create_engine(url)
    with engine.begin() as conn:  # alerts are not append-only; verify reports the edit
        conn.execute(text("UPDATE alerts SET token = 'gAAAAAdamaged' WHERE id = 2"))
    engine.dispose()
    assert run("verify").exit_code == 1  # the edit is reported there
    assert run("once").exit_code == 0  # alert 1 still decrypts: the key is the right one
