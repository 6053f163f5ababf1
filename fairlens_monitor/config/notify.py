"""The ``notify`` section: where alerts go (channels) and which events go where (routes).

Configuration, before any cycle runs. ``notify.channels`` (service-wide) maps a channel name
to its settings — ``{kind: webhook, url, secret_file | secret_env, timeout_seconds}``,
``{kind: email, host, port, starttls, username_env, password_file, from, to}`` or
``{kind: chat, url}`` — and ``notify.on`` maps an event (:data:`EVENTS`) to a list of channel
names; a monitor may set its own ``notify.on`` (``monitors.NAME.notify.on``, merged event by
event over the top-level one), the channels stay the service's.

Secrets are never values in the file: only the name of an environment variable
(``secret_env``, ``username_env``) or a file (``secret_file``, ``password_file``) that only
its owner may read (mode 0600, checked here as the key files are). Their contents are read at
send time (``ops.notify.channels``), so a rotated secret needs no restart and the settings,
which are hashed and printed, never hold one. Pure apart from that ``stat``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from fairlens_monitor.config.checks import (
    boolean,
    mapping,
    number,
    reject_unknown,
    resolve_path,
    shown,
    string,
)
from fairlens_monitor.errors import ConfigError

# The events a route may name (the ``event_type`` of an outbox row, besides ``test``).
EVENTS = (
    "alert_raised",
    "alert_acknowledged",
    "alert_resolved",
    "drift_signalled",
    "source_failing",
    "chain_failed",
)
KINDS = ("webhook", "email", "chat")
CHANNEL_NAME = re.compile(r"[a-z0-9_-]{1,64}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
KEYS = {
    "webhook": {"kind", "url", "secret_file", "secret_env", "timeout_seconds", "ca_file"},
    "email": {
        "kind",
        "host",
        "port",
        "starttls",
        "username_env",
        "password_file",
        "from",
        "to",
        "timeout_seconds",
        "ca_file",
    },
    "chat": {"kind", "url", "timeout_seconds", "ca_file"},
}
SECTION_KEYS = {
    "channels",
    "on",
    "include_explanation",
    "page_url",
    "max_attempts",
    "backoff_seconds",
    "max_backoff_seconds",
    "source_failing_after",
    "workers",
}
MAX_RECIPIENTS = 100
MAX_WORKERS = 32  # senders at once; each holds a database connection while it settles

Routes = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class Channel:
    """One delivery channel; which fields are set depends on ``kind``."""

    name: str
    kind: Literal["webhook", "email", "chat"]
    url: str | None = None  # webhook, chat
    secret_file: Path | None = None  # webhook: the HMAC key, one of file or env
    secret_env: str | None = None
    timeout_seconds: float = 10.0
    ca_file: Path | None = None  # verify TLS against this CA bundle instead of the system's
    host: str | None = None  # email
    port: int = 587
    starttls: bool = True
    username_env: str | None = None
    password_file: Path | None = None
    sender: str | None = None  # the ``from`` key
    to: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotifySettings:
    """The validated ``notify`` section of one monitor (channels are the service's)."""

    channels: Mapping[str, Channel] = field(default_factory=dict)
    on: Routes = field(default_factory=dict)
    include_explanation: bool = False
    page_url: str | None = None
    # 16 attempts with the default backoff span at least ~3 hours of a receiver being down
    max_attempts: int = 16
    backoff_seconds: float = 5.0
    max_backoff_seconds: float = 3600.0
    source_failing_after: int = 3
    workers: int = 4  # messages the daemon sends at once (a burst on a small thread pool)

    def routes(self) -> dict[str, tuple[str, ...]]:
        """Return ``{event: channel names}`` for the events that have channels."""
        return {event: names for event, names in self.on.items() if names}


def parse_notify(raw: Any, *, base_dir: Path, env: Mapping[str, str]) -> NotifySettings:
    """Validate the ``notify`` section (absent: nothing is sent).

    Args:
        raw: the section as parsed (None or a mapping).
        base_dir: the config file's folder (relative secret files resolve against it).
        env: the environment the ``*_env`` keys must name a set variable of.

    Returns:
        The frozen settings.

    Raises:
        ConfigError: an unknown key, a channel without its required keys, a secret given
            as a value, a secret file that others may read, a route naming an unknown
            event or channel; the key is named, never a secret.
    """
    if raw is None:
        return NotifySettings()
    section = mapping(raw, "notify")
    reject_unknown(section, "notify", SECTION_KEYS)
    channels_raw = mapping(section.get("channels") or {}, "notify.channels")
    channels: dict[str, Channel] = {}
    for name, spec in channels_raw.items():
        if not isinstance(name, str) or not CHANNEL_NAME.fullmatch(name):
            raise ConfigError(
                f"notify.channels.{str(name)[:40]}",
                "a channel's name is 1 to 64 of a-z, 0-9, _ and -",
            )
        channels[name] = _channel(name, spec, base_dir=base_dir, env=env)
    page_url = section.get("page_url")
    if page_url is not None:
        page_url = _url(section, "notify.page_url", loopback_http=True)
    backoff = number(section, "notify.backoff_seconds", default=5.0, minimum=0.01, maximum=86400.0)
    return NotifySettings(
        channels=channels,
        on=parse_routes(section.get("on"), "notify.on", channels),
        include_explanation=boolean(section, "notify.include_explanation", default=False),
        page_url=page_url,
        max_attempts=int(
            number(section, "notify.max_attempts", default=16, integer=True, minimum=1, maximum=100)
        ),
        backoff_seconds=backoff,
        max_backoff_seconds=number(
            section,
            "notify.max_backoff_seconds",
            default=max(3600.0, backoff),
            minimum=backoff,
            maximum=7 * 86400.0,
        ),
        source_failing_after=int(
            number(
                section,
                "notify.source_failing_after",
                default=3,
                integer=True,
                minimum=1,
                maximum=100_000,
            )
        ),
        workers=int(
            number(
                section, "notify.workers", default=4, integer=True, minimum=1, maximum=MAX_WORKERS
            )
        ),
    )


def parse_routes(raw: Any, key: str, channels: Mapping[str, Channel]) -> dict[str, tuple[str, ...]]:
    """Validate ``notify.on``: ``{event: [channel, ...]}``.

    Raises:
        ConfigError: an unknown event, a value that is not a list of names, or a name
            that is not a channel of ``notify.channels``.
    """
    if raw is None:
        return {}
    routes = mapping(raw, key)
    reject_unknown(routes, key, set(EVENTS))
    out: dict[str, tuple[str, ...]] = {}
    for event, names in routes.items():
        where = f"{key}.{event}"
        if names is None:
            out[event] = ()
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(where, f"expected a list of channel names, got {shown(names)}")
        for n in names:
            if n not in channels:
                known = ", ".join(sorted(channels)) or "none are configured"
                raise ConfigError(
                    where, f"no channel {shown(n)} in notify.channels (channels: {known})"
                )
        out[event] = tuple(dict.fromkeys(names))
    return out


def _channel(name: str, raw: Any, *, base_dir: Path, env: Mapping[str, str]) -> Channel:
    key = f"notify.channels.{name}"
    spec = mapping(raw, key)
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{key}.kind", f"expected one of {', '.join(KINDS)}, got {shown(kind)}")
    reject_unknown(spec, key, KEYS[kind])
    timeout = number(spec, f"{key}.timeout_seconds", default=10.0, minimum=0.1, maximum=300.0)
    ca = spec.get("ca_file")
    ca_file = None if ca is None else _readable(spec, f"{key}.ca_file", base_dir, private=False)
    if kind in ("webhook", "chat"):
        url = _url(spec, f"{key}.url", loopback_http=True)
        if kind == "chat":
            return Channel(name, "chat", url=url, timeout_seconds=timeout, ca_file=ca_file)
        has_file, has_env = spec.get("secret_file") is not None, spec.get("secret_env") is not None
        if has_file == has_env:
            raise ConfigError(
                f"{key}.secret_file",
                "set exactly one of secret_file (a file only its owner may read) and "
                "secret_env (the name of an environment variable): the webhook signs with it",
            )
        return Channel(
            name,
            "webhook",
            url=url,
            secret_file=_readable(spec, f"{key}.secret_file", base_dir) if has_file else None,
            secret_env=_env(spec, f"{key}.secret_env", env) if has_env else None,
            timeout_seconds=timeout,
            ca_file=ca_file,
        )
    to = spec.get("to")
    if (
        not isinstance(to, list)
        or not to
        or len(to) > MAX_RECIPIENTS
        or not all(isinstance(a, str) and _address(a) for a in to)
    ):
        raise ConfigError(
            f"{key}.to", f"expected a list of 1 to {MAX_RECIPIENTS} e-mail addresses (name@host)"
        )
    sender = string(spec, f"{key}.from")
    if not _address(sender):
        raise ConfigError(f"{key}.from", "expected an e-mail address (name@host)")
    has_user, has_pass = spec.get("username_env") is not None, spec.get("password_file") is not None
    if has_user != has_pass:
        raise ConfigError(
            f"{key}.username_env" if has_pass else f"{key}.password_file",
            "set both username_env and password_file to log in, or neither",
        )
    starttls = boolean(spec, f"{key}.starttls", default=True)
    if has_user and not starttls:
        raise ConfigError(
            f"{key}.starttls", "a password is only sent over STARTTLS; set starttls: true"
        )
    host = string(spec, f"{key}.host")
    if not re.fullmatch(r"[A-Za-z0-9.:\-\[\]]{1,253}", host):
        raise ConfigError(f"{key}.host", "expected a host name or address")
    return Channel(
        name,
        "email",
        host=host,
        port=int(number(spec, f"{key}.port", default=587, integer=True, minimum=1, maximum=65535)),
        starttls=starttls,
        username_env=_env(spec, f"{key}.username_env", env) if has_user else None,
        password_file=_readable(spec, f"{key}.password_file", base_dir) if has_pass else None,
        sender=sender,
        to=tuple(to),
        timeout_seconds=timeout,
        ca_file=ca_file,
    )


def _address(text: str) -> bool:
    return bool(re.fullmatch(r"[^@\s<>,;]{1,64}@[A-Za-z0-9.\-\[\]:]{1,253}", text))


def _url(spec: Mapping[str, Any], key: str, *, loopback_http: bool) -> str:
    """An https URL (http only to a loopback address: a local relay or a test receiver)."""
    text = string(spec, key)
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
    except ValueError:
        raise ConfigError(key, "not a URL; expected https://host/path") from None
    if parts.scheme == "http" and loopback_http and _loopback(host):
        return text
    if parts.scheme != "https" or not host:
        raise ConfigError(
            key,
            "expected an https:// URL (TLS is verified); plain http only to 127.0.0.1, ::1 "
            "or localhost",
        )
    if parts.username or parts.password:
        raise ConfigError(key, "a URL must not hold credentials; use secret_file or secret_env")
    return text


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _env(spec: Mapping[str, Any], key: str, env: Mapping[str, str]) -> str:
    """The name of an environment variable that is set (its value is never read here)."""
    name = string(spec, key)
    if not ENV_NAME.fullmatch(name):
        raise ConfigError(key, "expected the name of an environment variable, e.g. FAIRLENS_HOOK")
    if not env.get(name):
        raise ConfigError(key, f"the environment variable {name} is not set (or empty)")
    return name


def _readable(spec: Mapping[str, Any], key: str, base: Path, *, private: bool = True) -> Path:
    """A regular file; with ``private``, one no other user may read or write (0600)."""
    path = resolve_path(string(spec, key), base)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise ConfigError(key, f"{path} does not exist or cannot be read") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(key, f"{path} is not a regular file")
    if private and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            key,
            f"{path} has permissions {stat.filemode(mode)}: other users may read the secret "
            f"(fix: chmod 600 {path})",
        )
    return path
