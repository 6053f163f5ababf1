"""The ``notify`` section: channels, routes and secrets are validated at load, by key.

Secrets are only ever names (an environment variable, a 0600 file): a value in the file is an
unknown key, a secret file others may read is refused, and no error quotes a secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fairlens_monitor.config.monitors import load_portfolio
from fairlens_monitor.config.settings import Settings, load_settings
from fairlens_monitor.errors import ConfigError
from tests.conftest import BASE_CONFIG, merge

SECRET = "s3cr3t-never-shown"  # noqa: S105 (a test's own secret)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "hook.secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


def hook(secret_file: Path, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "webhook",
        "url": "https://hooks.example.org/fl",
        "secret_file": str(secret_file),
        **extra,
    }


def load(
    write_config: Callable[..., Path], notify: Any, env: dict[str, str] | None = None
) -> Settings:
    return load_settings(write_config({"notify": notify}), env=env or {})


def test_a_full_section_loads(write_config: Callable[..., Path], secret_file: Path) -> None:
    notify = {
        "channels": {
            "ops-hook": hook(secret_file, timeout_seconds=3),
            "mail": {
                "kind": "email",
                "host": "smtp.example.org",
                "port": 587,
                "username_env": "SMTP_USER",
                "password_file": str(secret_file),
                "from": "fairlens@example.org",
                "to": ["risk@example.org"],
            },
            "chat": {"kind": "chat", "url": "https://chat.example.org/hook/T1"},
        },
        "on": {"alert_raised": ["ops-hook", "mail", "chat"], "chain_failed": ["ops-hook"]},
        "page_url": "https://fairlens.example.org/",
        "max_attempts": 5,
    }
    n = load(write_config, notify, {"SMTP_USER": "fl"}).notify
    assert set(n.channels) == {"ops-hook", "mail", "chat"}
    assert n.channels["ops-hook"].timeout_seconds == 3
    assert n.channels["mail"].starttls is True
    assert n.channels["mail"].to == ("risk@example.org",)
    assert n.routes() == {
        "alert_raised": ("ops-hook", "mail", "chat"),
        "chain_failed": ("ops-hook",),
    }
    assert n.max_attempts == 5
    assert n.include_explanation is False


def test_no_section_sends_nothing(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().notify.routes() == {}


def test_workers_default_to_four_and_take_an_integer(write_config: Callable[..., Path]) -> None:
    assert load(write_config, {}).notify.workers == 4
    assert load(write_config, {"workers": 1}).notify.workers == 1
    assert load(write_config, {"workers": 32}).notify.workers == 32


def test_notify_does_not_change_the_config_hash(
    write_config: Callable[..., Path], secret_file: Path, make_settings: Callable[..., Settings]
) -> None:
    with_notify = load(
        write_config, {"channels": {"h": hook(secret_file)}, "on": {"alert_raised": ["h"]}}
    )
    assert with_notify.config_hash() == make_settings().config_hash()


@pytest.mark.parametrize(
    ("notify", "key"),
    [
        ({"channels": {"h": {"kind": "pager"}}}, "notify.channels.h.kind"),
        (
            {"channels": {"h": {"kind": "webhook", "url": "https://x.org", "secret": SECRET}}},
            "notify.channels.h.secret",
        ),
        (
            {"channels": {"h": {"kind": "webhook", "url": "https://x.org"}}},
            "notify.channels.h.secret_file",
        ),
        (
            {"channels": {"h": {"kind": "chat", "url": "http://chat.example.org/x"}}},
            "notify.channels.h.url",
        ),
        (
            {"channels": {"h": {"kind": "chat", "url": "https://u:pw@chat.example.org/x"}}},
            "notify.channels.h.url",
        ),
        ({"channels": {"h": {"kind": "chat", "url": ""}}}, "notify.channels.h.url"),
        ({"channels": {"h": {"kind": "chat", "url": None}}}, "notify.channels.h.url"),
        ({"channels": {"H!": {"kind": "chat", "url": "https://x.org"}}}, "notify.channels.H!"),
        (
            {"channels": {"c": {"kind": "chat", "url": "https://x.org", "timeout_seconds": 0}}},
            "notify.channels.c.timeout_seconds",
        ),
        (
            {
                "channels": {"c": {"kind": "chat", "url": "https://x.org"}},
                "on": {"alert_exploded": ["c"]},
            },
            "notify.on.alert_exploded",
        ),
        (
            {
                "channels": {"c": {"kind": "chat", "url": "https://x.org"}},
                "on": {"alert_raised": ["d"]},
            },
            "notify.on.alert_raised",
        ),
        (
            {
                "channels": {"c": {"kind": "chat", "url": "https://x.org"}},
                "on": {"alert_raised": "c"},
            },
            "notify.on.alert_raised",
        ),
        ({"max_attempts": 0}, "notify.max_attempts"),
        ({"source_failing_after": 1.5}, "notify.source_failing_after"),
        ({"workers": 0}, "notify.workers"),
        ({"workers": 33}, "notify.workers"),
        ({"workers": 2.5}, "notify.workers"),
        ({"workers": "four"}, "notify.workers"),
        ({"password": SECRET}, "notify.password"),
        (
            {"channels": {"m": {"kind": "email", "host": "h", "from": "a@b", "to": []}}},
            "notify.channels.m.to",
        ),
        (
            {"channels": {"m": {"kind": "email", "host": "h", "from": "nobody", "to": ["a@b"]}}},
            "notify.channels.m.from",
        ),
        (
            {
                "channels": {
                    "m": {
                        "kind": "email",
                        "host": "h",
                        "from": "a@b",
                        "to": ["a@b"],
                        "username_env": "U",
                    }
                }
            },
            "notify.channels.m.password_file",
        ),
    ],
)
def test_bad_keys_are_named(write_config: Callable[..., Path], notify: Any, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(write_config, notify, {"U": "user"})
    assert caught.value.key == key
    assert SECRET not in str(caught.value)


def test_a_secret_file_others_may_read_is_refused(
    write_config: Callable[..., Path], secret_file: Path
) -> None:
    secret_file.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        load(write_config, {"channels": {"h": hook(secret_file)}})
    assert caught.value.key == "notify.channels.h.secret_file"
    assert SECRET not in str(caught.value)


def test_a_missing_secret_file_or_unset_variable_is_named(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="does not exist") as caught:
        load(write_config, {"channels": {"h": hook(tmp_path / "nope")}})
    assert caught.value.key == "notify.channels.h.secret_file"
    spec = {"kind": "webhook", "url": "https://x.org/h", "secret_env": "FL_HOOK"}
    with pytest.raises(ConfigError, match="FL_HOOK is not set") as caught:
        load(write_config, {"channels": {"h": spec}}, {})
    assert caught.value.key == "notify.channels.h.secret_env"
    loaded = load(write_config, {"channels": {"h": spec}}, {"FL_HOOK": SECRET})
    assert loaded.notify.channels["h"].secret_env == spec["secret_env"]


def test_plain_http_only_to_loopback(write_config: Callable[..., Path], secret_file: Path) -> None:
    for url in ("http://127.0.0.1:8080/h", "http://localhost/h", "http://[::1]:9/h"):
        loaded = load(write_config, {"channels": {"h": hook(secret_file, url=url)}})
        assert loaded.notify.channels["h"].url == url
    with pytest.raises(ConfigError):
        load(write_config, {"channels": {"h": hook(secret_file, url="http://10.0.0.1/h")}})


def test_a_password_needs_starttls(write_config: Callable[..., Path], secret_file: Path) -> None:
    spec = {
        "kind": "email",
        "host": "smtp.example.org",
        "starttls": False,
        "username_env": "U",
        "password_file": str(secret_file),
        "from": "a@example.org",
        "to": ["b@example.org"],
    }
    with pytest.raises(ConfigError) as caught:
        load(write_config, {"channels": {"m": spec}}, {"U": "u"})
    assert caught.value.key == "notify.channels.m.starttls"


def portfolio(tmp_path: Path, doc: dict[str, Any]) -> dict[str, Settings]:
    path = tmp_path / "portfolio.yaml"
    path.write_text(yaml.safe_dump(merge(BASE_CONFIG, doc)))
    return load_portfolio(path, env={})


def test_a_monitor_overrides_routes_event_by_event(tmp_path: Path) -> None:
    doc = {
        "notify": {
            "channels": {
                "a": {"kind": "chat", "url": "https://a.example.org/x"},
                "b": {"kind": "chat", "url": "https://b.example.org/x"},
            },
            "on": {"alert_raised": ["a"], "alert_resolved": ["a"]},
        },
        "monitors": {"cards": None, "autos": {"notify": {"on": {"alert_raised": ["b"]}}}},
    }
    loaded = portfolio(tmp_path, doc)
    assert loaded["cards"].notify.routes() == {"alert_raised": ("a",), "alert_resolved": ("a",)}
    assert loaded["autos"].notify.routes() == {"alert_raised": ("b",), "alert_resolved": ("a",)}
    assert loaded["autos"].notify.channels == loaded["cards"].notify.channels


def test_a_monitor_cannot_set_channels(tmp_path: Path) -> None:
    doc = {
        "monitors": {
            "autos": {"notify": {"channels": {"x": {"kind": "chat", "url": "https://x.org"}}}}
        }
    }
    with pytest.raises(ConfigError) as caught:
        portfolio(tmp_path, doc)
    assert caught.value.key == "monitors.autos.notify.channels"


def test_a_monitor_route_to_an_unknown_channel_is_named_under_it(tmp_path: Path) -> None:
    doc = {
        "notify": {"channels": {"a": {"kind": "chat", "url": "https://a.example.org/x"}}},
        "monitors": {"autos": {"notify": {"on": {"alert_raised": ["zz"]}}}},
    }
    with pytest.raises(ConfigError) as caught:
        portfolio(tmp_path, doc)
    assert caught.value.key == "monitors.autos.notify.on.alert_raised"


def test_the_secret_is_not_in_the_settings(
    write_config: Callable[..., Path], secret_file: Path
) -> None:
    loaded = load(
        write_config,
        {"channels": {"h": hook(secret_file)}, "on": {"alert_raised": ["h"]}},
        {"X": SECRET},
    )
    assert SECRET not in repr(loaded)
    assert os.stat(secret_file).st_mode & 0o777 == 0o600


def test_the_readmes_three_lines_load_as_written(tmp_path: Path, secret_file: Path) -> None:
    """The README's webhook block, pasted as a user would (a plain ``on:`` key, which YAML
    1.1 reads as a boolean unless the loader keeps keys as written)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("Three lines send every new alert", 1)[1]
    snippet = block.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert snippet.count("\n") == 3
    assert "\n  on: " in snippet  # unquoted, as a user writes it
    snippet = snippet.replace("/etc/fairlens/hook.secret", str(secret_file))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(BASE_CONFIG) + snippet)
    notify = load_settings(path, env={}).notify
    assert notify.routes() == {"alert_raised": ("ops",)}
    assert notify.channels["ops"].url == "https://hooks.example.org/fl"
