"""Sending one message over one channel: webhook, e-mail (SMTP + STARTTLS), chat.

The edge of the outbox (``ops.notify.worker`` calls :func:`send` once per attempt). Each
send returns an :class:`Outcome` — delivered or not, whether a retry can help, and a short
status such as ``http 200``, ``http 503``, ``smtp 250``, ``timeout`` — and never raises for a
delivery failure. Secrets are read here, at send time, from the file (0600) or environment
variable the config names, and go nowhere but the HMAC or the SMTP login: no status, log
line or audit event carries one, nor the message body.

A webhook is ``POST`` of the message's JSON bytes with ``X-FairLens-Timestamp`` (Unix
seconds), ``X-FairLens-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>``
and ``Idempotency-Key``; TLS certificates are verified (against ``ca_file`` when set),
redirects are not followed, and the whole exchange has ``timeout_seconds``.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from fairlens_monitor.config.notify import Channel
from fairlens_monitor.ops.notify import message as m
from fairlens_monitor.security.safefiles import read_regular

USER_AGENT = "fairlens-monitor-notify/1"
MAX_SECRET = 4096  # bytes of a secret file


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt: ``status`` is short and never holds a secret or a body."""

    delivered: bool
    status: str
    permanent: bool = False  # a retry cannot help (e.g. HTTP 400, a missing secret)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is an answer, not a place to send the message (and its signature)


def tls_context(channel: Channel) -> ssl.SSLContext:
    """Certificate and host name verification on; the system's CAs or ``ca_file``."""
    return ssl.create_default_context(
        cafile=None if channel.ca_file is None else str(channel.ca_file)
    )


def secret_of(channel: Channel, env: Mapping[str, str]) -> bytes:
    """The webhook's HMAC key, read now from its file or environment variable.

    Raises:
        LookupError: the variable is unset or the file is missing, unreadable or empty (the
            message names the key and the file, never a value).
    """
    if channel.secret_env is not None:
        value = env.get(channel.secret_env, "")
        if not value:
            raise LookupError(f"secret_env {channel.secret_env} is not set")
        return value.encode()
    if channel.secret_file is None:
        raise LookupError("no secret_file or secret_env")
    try:
        value_bytes = read_regular(channel.secret_file, MAX_SECRET).strip()
    except OSError:
        raise LookupError(f"secret_file {channel.secret_file} cannot be read") from None
    if not value_bytes:
        raise LookupError(f"secret_file {channel.secret_file} is empty")
    return value_bytes


def send(
    channel: Channel,
    msg: dict[str, Any],
    *,
    now_unix: int,
    env: Mapping[str, str] | None = None,
) -> Outcome:
    """Deliver ``msg`` once over ``channel``.

    Args:
        channel: the validated channel.
        msg: the message (:func:`~fairlens_monitor.ops.notify.message.message`).
        now_unix: this attempt's time in Unix seconds (the webhook's timestamp).
        env: where ``*_env`` secrets are read; ``os.environ`` when None.

    Returns:
        The outcome; a network error, a timeout or a refusal is an undelivered outcome.
    """
    env = os.environ if env is None else env
    try:
        if channel.kind == "email":
            return _email(channel, msg, env)
        if channel.kind == "chat":
            payload = m.body(m.slack_blocks(msg))
            return _post(channel, payload, {"Content-Type": "application/json"})
        secret = secret_of(channel, env)
        payload = m.body(msg)
        headers = {
            "Content-Type": "application/json",
            "X-FairLens-Timestamp": str(now_unix),
            "X-FairLens-Signature": m.signature(secret, now_unix, payload),
            "Idempotency-Key": str(msg["idempotency_key"]),
        }
        return _post(channel, payload, headers)
    except LookupError as exc:
        return Outcome(False, f"config: {exc}"[:64], permanent=True)


def _post(channel: Channel, payload: bytes, headers: dict[str, str]) -> Outcome:
    request = urllib.request.Request(  # noqa: S310  (https, or http to loopback: config.notify)
        channel.url or "",
        data=payload,
        method="POST",
        headers={**headers, "User-Agent": USER_AGENT},
    )
    opener = urllib.request.build_opener(
        _NoRedirect(), urllib.request.HTTPSHandler(context=tls_context(channel))
    )
    try:
        with opener.open(request, timeout=channel.timeout_seconds) as response:
            response.read(65536)  # drain a little; the answer's body is not kept
            code = int(response.status)
    except urllib.error.HTTPError as exc:
        code = int(exc.code)
        exc.close()
    except TimeoutError:
        return Outcome(False, "timeout")
    except ssl.SSLError as exc:
        return Outcome(False, f"tls: {type(exc).__name__}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError | socket.timeout):
            return Outcome(False, "timeout")
        if isinstance(reason, ssl.SSLError):
            return Outcome(False, f"tls: {type(reason).__name__}")
        return Outcome(False, f"network: {type(reason).__name__}")
    if 200 <= code < 300:
        return Outcome(True, f"http {code}")
    # a client error other than a timeout or a rate limit will fail the same way again
    permanent = 400 <= code < 500 and code not in (401, 403, 408, 409, 425, 429)
    return Outcome(False, f"http {code}", permanent=permanent)


def _email(channel: Channel, msg: dict[str, Any], env: Mapping[str, str]) -> Outcome:
    subject, text = m.email_text(msg)
    mail = EmailMessage()
    mail["Subject"], mail["From"], mail["To"] = subject, channel.sender, ", ".join(channel.to)
    mail["Message-ID"] = f"<{msg['idempotency_key']}@fairlens-monitor>"  # the same on a retry
    mail.set_content(text)
    try:
        with smtplib.SMTP(
            channel.host or "", channel.port, timeout=channel.timeout_seconds
        ) as smtp:
            smtp.ehlo()
            if channel.starttls:
                smtp.starttls(context=tls_context(channel))
                smtp.ehlo()
            if channel.username_env is not None and channel.password_file is not None:
                user = env.get(channel.username_env, "")
                if not user:
                    return Outcome(False, "config: username_env is not set", permanent=True)
                try:
                    password = read_regular(channel.password_file, MAX_SECRET).strip()
                except OSError:
                    return Outcome(False, "config: password_file unreadable", permanent=True)
                smtp.login(user, password.decode())
            refused = smtp.send_message(mail)
    except smtplib.SMTPResponseException as exc:
        return Outcome(False, f"smtp {exc.smtp_code}", permanent=500 <= exc.smtp_code < 600)
    except smtplib.SMTPRecipientsRefused:
        return Outcome(False, "smtp recipients refused", permanent=True)
    except smtplib.SMTPNotSupportedError:
        return Outcome(False, "smtp: no STARTTLS offered", permanent=True)
    except TimeoutError:
        return Outcome(False, "timeout")
    except ssl.SSLError as exc:
        return Outcome(False, f"tls: {type(exc).__name__}")
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome(False, f"network: {type(exc).__name__}")
    if refused:
        return Outcome(True, f"smtp 250 ({len(refused)} refused)")
    return Outcome(True, "smtp 250")
