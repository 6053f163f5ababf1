"""E-mail notifications through a real SMTP server (aiosmtpd) on 127.0.0.1.

One server speaks plain SMTP; the other offers STARTTLS with a certificate made here for
127.0.0.1 and requires a login over it, which the channel verifies against ``ca_file``.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fairlens_monitor.cli.main import cli

PASSWORD = "smtp-pass-never-stored"  # noqa: S105 (a test's own secret)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp.pem", folder / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> AuthResult:
    ok = isinstance(auth, LoginPassword) and (auth.login, auth.password) == (
        b"fairlens",
        PASSWORD.encode(),
    )
    return AuthResult(success=ok)


@pytest.fixture
def plain_smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def tls_smtp(tmp_path: Path) -> Iterator[tuple[Inbox, int, Path]]:
    cert_file, key_file = certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    inbox, port = Inbox(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    yield inbox, port, cert_file
    controller.stop()


def channel(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "email",
        "host": "127.0.0.1",
        "port": port,
        "from": "fairlens@example.org",
        "to": ["risk@example.org", "oncall@example.org"],
        "timeout_seconds": 10,
        **extra,
    }


def test_an_alert_by_plain_smtp(
    write_config: Callable[..., Path], plain_smtp: tuple[Inbox, int]
) -> None:
    inbox, port = plain_smtp
    config = write_config(
        {
            "simulation": {"drift": 1.0},
            "notify": {
                "channels": {"mail": channel(port, starttls=False)},
                "on": {"alert_raised": ["mail"]},
            },
        }
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    sent = runner.invoke(cli, ["--config", str(config), "notify", "send"])
    assert sent.exit_code == 0, sent.output
    [mail] = inbox.messages
    assert mail["Subject"].startswith("[FairLens] Fairness alert raised: monitor default")
    assert mail["To"] == "risk@example.org, oncall@example.org"
    body = mail.get_payload(decode=True).decode()
    assert "verdict adverse" in body
    assert "DIR " in body
    assert "audit record seq" in body
    assert mail["Message-ID"].startswith("<")
    assert "@fairlens-monitor>" in mail["Message-ID"]


def test_starttls_with_a_login_verified_against_ca_file(
    write_config: Callable[..., Path], tls_smtp: tuple[Inbox, int, Path], tmp_path: Path
) -> None:
    inbox, port, cert_file = tls_smtp
    password = tmp_path / "smtp.password"
    password.write_text(PASSWORD)
    password.chmod(0o600)
    spec = channel(
        port, username_env="FL_SMTP_USER", password_file=str(password), ca_file=str(cert_file)
    )
    config = write_config({"notify": {"channels": {"mail": spec}}})
    runner = CliRunner(env={"FL_SMTP_USER": "fairlens"})
    result = runner.invoke(cli, ["--config", str(config), "notify", "test", "mail"])
    assert result.exit_code == 0, result.output
    assert "smtp 250" in result.output
    [mail] = inbox.messages
    assert "Test notification" in mail["Subject"]


def test_starttls_refuses_an_unverified_certificate(
    write_config: Callable[..., Path], tls_smtp: tuple[Inbox, int, Path]
) -> None:
    inbox, port, _cert = tls_smtp  # no ca_file: the system's CAs do not know this one
    config = write_config({"notify": {"channels": {"mail": channel(port)}}})
    result = CliRunner().invoke(cli, ["--config", str(config), "notify", "test", "mail"])
    assert result.exit_code == 1
    assert "tls: SSLCertVerificationError" in result.output
    assert inbox.messages == []


def test_a_wrong_password_fails_and_is_not_shown(
    write_config: Callable[..., Path], tls_smtp: tuple[Inbox, int, Path], tmp_path: Path
) -> None:
    inbox, port, cert_file = tls_smtp
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password-xyz")
    wrong.chmod(0o600)
    spec = channel(
        port, username_env="FL_SMTP_USER", password_file=str(wrong), ca_file=str(cert_file)
    )
    config = write_config({"notify": {"channels": {"mail": spec}}})
    runner = CliRunner(env={"FL_SMTP_USER": "fairlens"})
    result = runner.invoke(cli, ["--config", str(config), "notify", "test", "mail"])
    # aiosmtpd answers 535 to the first mechanism and drops the line during smtplib's second
    assert result.exit_code == 1
    assert "dead after 1 attempt" in result.output
    assert "not-the-password-xyz" not in result.output
    assert inbox.messages == []
