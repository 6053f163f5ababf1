"""Who may read explanations on the trend page: the page token, checked in constant time.

Through Streamlit's AppTest on a database with an alert, and the ``view`` / ``page-token``
commands through click.
"""

from __future__ import annotations

import hmac
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.security.page_auth import create_page_token, is_loopback
from tests.test_viewer import page, seeded, signed_in, text_of

EVERYWHERE = "0.0.0.0"  # noqa: S104 - the address under test, nothing binds to it here

PLAINTEXT = "Potential bias"  # how every explanation of an adverse reading begins


def shows_plaintext(at: object) -> bool:
    return any(PLAINTEXT in str(m.value) for m in at.markdown)  # type: ignore[attr-defined]


@pytest.fixture
def adverse(write_config: Callable[..., Path]) -> Path:
    return seeded(write_config, drift=1.0)


def key_dir(config: Path) -> Path:
    return load_settings(config, env={}).keys.dir


def test_without_a_token_file_the_explanation_stays_encrypted(
    adverse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = page(adverse, monkeypatch)  # the key is readable here: the page could decrypt
    assert "encrypted — sign in to read" in text_of(at)
    assert "No page token" in text_of(at)
    assert not shows_plaintext(at)
    assert at.metric[0].label == "Monitored DIR"  # the figures are still shown on loopback


def test_a_wrong_token_decrypts_nothing_and_is_compared_in_constant_time(
    adverse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    token = create_page_token(key_dir(adverse), rotate=False).read_text().strip()
    at = page(adverse, monkeypatch)
    assert "encrypted — sign in to read" in text_of(at)  # a token exists, none given yet
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    at.text_input(key="page_token").input(wrong).run()
    assert "Wrong page token." in [str(e.value) for e in at.error]
    assert "encrypted — sign in to read" in text_of(at)
    assert not shows_plaintext(at)
    assert (wrong.encode(), token.encode()) in compared


def test_the_right_token_decrypts_and_a_rotation_signs_the_session_out(
    adverse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = signed_in(page(adverse, monkeypatch), adverse)
    assert shows_plaintext(at)
    create_page_token(key_dir(adverse), rotate=True)
    at.run()
    assert "Wrong page token." in [str(e.value) for e in at.error]
    assert not shows_plaintext(at)


@pytest.mark.parametrize("address", [EVERYWHERE, None])
def test_a_page_served_beyond_loopback_shows_nothing_before_sign_in(
    adverse: Path,
    monkeypatch: pytest.MonkeyPatch,
    page_address: Callable[[str | None], None],
    address: str | None,
) -> None:
    page_address(address)  # None: Streamlit's default, every interface
    at = page(adverse, monkeypatch)
    assert "served beyond this machine" in text_of(at)
    assert not at.metric
    assert not at.dataframe
    assert not shows_plaintext(at)
    at = signed_in(at, adverse)
    assert at.metric[0].label == "Monitored DIR"
    assert shows_plaintext(at)


def test_an_exposed_token_file_is_refused(adverse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = create_page_token(key_dir(adverse), rotate=False)
    path.chmod(0o644)
    at = page(adverse, monkeypatch)
    assert "Sign-in unavailable" in text_of(at)
    assert "chmod 600" in text_of(at)
    assert not shows_plaintext(at)


def test_page_token_command_creates_a_private_file_and_rotates_it(
    write_config: Callable[..., Path],
) -> None:
    config = write_config()
    runner = CliRunner()
    made = runner.invoke(cli, ["--config", str(config), "page-token"])
    assert made.exit_code == 0, made.output
    path = key_dir(config) / "page.token"
    token = path.read_text().strip()
    assert len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert token not in made.output  # given to readers from the file, never printed
    again = runner.invoke(cli, ["--config", str(config), "page-token"])
    assert again.exit_code == 2
    assert again.stderr.strip().count("\n") == 0
    assert "--rotate" in again.stderr
    assert path.read_text().strip() == token
    rotated = runner.invoke(cli, ["--config", str(config), "page-token", "--rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert path.read_text().strip() != token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_view_refuses_a_public_address_without_a_token_and_warns_with_one(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[list[str]] = []

    def execve(_path: str, argv: list[str], _env: dict[str, str]) -> None:
        started.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr("fairlens_monitor.cli.page.os.execve", execve)
    config = write_config()
    runner = CliRunner()
    refused = runner.invoke(cli, ["--config", str(config), "view", "--address", EVERYWHERE])
    assert refused.exit_code == 2
    assert "page-token" in refused.stderr
    assert not started
    assert runner.invoke(cli, ["--config", str(config), "view"]).exit_code == 0
    assert started[-1][started[-1].index("--server.address") + 1] == "127.0.0.1"
    assert runner.invoke(cli, ["--config", str(config), "page-token"]).exit_code == 0
    served = runner.invoke(cli, ["--config", str(config), "view", "--address", EVERYWHERE])
    assert served.exit_code == 0
    assert "plain HTTP" in served.stderr
    assert "TLS proxy" in served.stderr
    assert started[-1][started[-1].index("--server.address") + 1] == EVERYWHERE


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        (EVERYWHERE, False),
        ("", False),
        (None, False),
        ("::", False),
        ("192.168.1.20", False),
        ("monitor.example.com", False),
    ],
)
def test_which_addresses_are_loopback(address: str | None, loopback: bool) -> None:
    assert is_loopback(address) is loopback
