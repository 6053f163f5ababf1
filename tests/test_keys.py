"""Key rotation (tokens before and after still decrypt) and key status, on both back ends."""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.errors import DecryptionError
from fairlens_monitor.ops.keys import rotate_alert_key
from fairlens_monitor.security.crypto import AlertCipher, key_fingerprint, load_cipher
from fairlens_monitor.store import maintenance
from fairlens_monitor.store.db import make_engine
from fairlens_monitor.store.repository import Repository
from tests.conftest import merge, query_url


@pytest.fixture
def setup(
    write_config: Callable[..., Path], backend_url: str, tmp_path: Path
) -> tuple[Callable[..., Result], str, Path]:
    config = write_config(merge({"database": {"url": backend_url}}, {"simulation": {"drift": 1.0}}))

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(config), *args])

    assert run("once").exit_code == 0
    assert run("alerts", "resolve", "1", "--by", "t", "--note", "n").exit_code == 0
    assert run("once").exit_code == 0  # a second episode: two tokens
    return run, backend_url, tmp_path / "var" / "keys"


def test_rotation_reencrypts_every_token_and_old_tokens_still_decrypt(
    setup: tuple[Callable[..., Result], str, Path],
) -> None:
    run, url, key_dir = setup
    old_id = key_fingerprint((key_dir / "fernet.key").read_bytes())
    before = query_url(url, "SELECT id, token FROM alerts ORDER BY id")
    plain = [load_cipher(key_dir, create=False).decrypt(str(t)) for _, t in before]

    result = run("keys", "rotate")
    assert result.exit_code == 0, result.output
    new_id = key_fingerprint((key_dir / "fernet.key").read_bytes())
    assert new_id != old_id
    assert f"{old_id} -> {new_id}; 2 tokens re-encrypted" in result.stdout
    retired = key_dir / f"fernet-{old_id}.retired"
    assert stat.S_IMODE(retired.stat().st_mode) == 0o600
    assert not list(key_dir.glob("*.staged"))

    after = query_url(url, "SELECT id, token, key_id FROM alerts ORDER BY id")
    assert {k for _, _, k in after} == {new_id}
    assert [t for _, t, _ in after] != [t for _, t in before]
    cipher = load_cipher(key_dir, create=False)
    assert [cipher.decrypt(str(t)) for _, t, _ in after] == plain
    assert [cipher.decrypt(str(t)) for _, t in before] == plain  # e.g. in an old backup
    new_only = AlertCipher(cipher.fernet, cipher.key_id, cipher.path)
    with pytest.raises(DecryptionError, match="not a valid token"):  # the new key alone can't
        new_only.decrypt(str(before[0][1]))

    events = json.loads(run("audit", "--last", "5", "--json").stdout)
    [rotated] = [e["details"] for e in events if e["event_type"] == "keys_rotated"]
    assert (rotated["old_key_id"], rotated["new_key_id"], rotated["alerts"]) == (old_id, new_id, 2)
    assert rotated["tokens"] == [
        [i, hashlib.sha256(str(t).encode()).hexdigest()] for i, t, _ in after
    ]
    assert not any(len(str(v)) == 44 for v in rotated.values())  # no key material

    assert run("alerts", "resolve", "2", "--by", "t", "--note", "n").exit_code == 0
    assert run("once").exit_code == 0  # a token made after the rotation, with the new key
    newest = query_url(url, "SELECT token, key_id FROM alerts ORDER BY id DESC LIMIT 1")[0]
    assert newest[1] == new_id
    assert cipher.decrypt(str(newest[0])).startswith("DIR = ")
    assert run("verify").exit_code == 0


def test_a_failed_rotation_changes_nothing(
    setup: tuple[Callable[..., Result], str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url, key_dir = setup
    key_before = (key_dir / "fernet.key").read_bytes()
    tokens = query_url(url, "SELECT token FROM alerts ORDER BY id")

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("injected: database gone")

    monkeypatch.setattr(maintenance, "reencrypt_alerts", broken)
    repo = Repository(make_engine(url))
    with pytest.raises(RuntimeError, match="injected"):
        rotate_alert_key(key_dir, repo, ts="2026-01-01T00:00:00.000000Z")
    repo.engine.dispose()
    assert (key_dir / "fernet.key").read_bytes() == key_before
    assert sorted(p.name for p in key_dir.iterdir()) == [
        "checkpoint_ed25519.key",
        "checkpoint_ed25519.pub",
        "fernet.key",
    ]
    assert query_url(url, "SELECT token FROM alerts ORDER BY id") == tokens


def test_key_status_shows_roles_and_exposed_files(
    setup: tuple[Callable[..., Result], str, Path],
) -> None:
    run, _, key_dir = setup
    assert run("keys", "rotate").exit_code == 0
    status = run("keys", "status", "--json")
    assert status.exit_code == 0, status.output
    roles = {f["name"]: f["role"] for f in json.loads(status.stdout)}
    assert roles["fernet.key"] == "alert key (current)"
    assert roles["checkpoint_ed25519.key"] == "checkpoint signing key"
    assert [r for n, r in roles.items() if n.endswith(".retired")] == [
        "alert key (retired, still decrypts)"
    ]
    retired = next(key_dir.glob("*.retired"))
    retired.chmod(0o644)
    exposed = run("keys", "status")
    assert exposed.exit_code == 1
    assert f"EXPOSED (fix: chmod 600 {retired})" in exposed.stdout
    refused = run("once")  # an exposed old key is refused like the current one
    assert refused.exit_code == 2
    assert "chmod 600" in refused.output


def test_settings_key_dir_comes_from_the_environment(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    settings = load_settings(write_config(), env={"FAIRLENS_KEY_DIR": str(tmp_path / "elsewhere")})
    assert settings.keys.dir == tmp_path / "elsewhere"
