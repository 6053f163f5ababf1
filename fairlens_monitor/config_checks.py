"""Config validators: each checks one value and names the key in its error.

The building blocks of ``config.parse_settings`` (the boundary where every key is checked
once): numbers with ranges, strings, booleans, mappings with their allowed keys, paths and
database URLs resolved against the config file's folder. Pure, apart from making paths
absolute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from fairlens_monitor.errors import ConfigError


def open_unit(section: Mapping[str, Any], key: str, *, default: float) -> float:
    value = section.get(key.rsplit(".", 1)[-1], default)
    number = as_number(value, key, "a number strictly between 0 and 1")
    if not 0.0 < number < 1.0:
        raise ConfigError(key, f"expected a number strictly between 0 and 1, got {value!r}")
    return number


def unit(value: Any, key: str) -> float:
    number = as_number(value, key, "a number in [0, 1]")
    if not 0.0 <= number <= 1.0:
        raise ConfigError(key, f"expected a number in [0, 1], got {value!r}")
    return number


def required(spec: Mapping[str, Any], name: str, key: str) -> Any:
    if name not in spec:
        raise ConfigError(f"{key}.{name}", "missing")
    return spec[name]


def mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"expected a mapping of keys, got {type(value).__name__}")
    return dict(value)


def section(root: Mapping[str, Any], name: str, allowed: set[str],
             *, required: bool = True) -> dict[str, Any]:
    if name not in root or root[name] is None:
        if required:
            raise ConfigError(name, f"missing section; expected keys {', '.join(sorted(allowed))}")
        return {}
    section = mapping(root[name], name)
    reject_unknown(section, name, allowed)
    return section


def reject_unknown(mapping: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
    for name in mapping:
        if name not in allowed:
            key = f"{prefix}.{name}" if prefix else str(name)
            raise ConfigError(key, f"unknown key; allowed here: {', '.join(sorted(allowed))}")


def as_number(value: Any, key: str, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"expected {expected}, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(key, f"expected {expected}, got {value!r}")
    return float(value)


def number(section: Mapping[str, Any], key: str, *, default: float | None = None,
            integer: bool = False, positive: bool = False, minimum: float | None = None,
            maximum: float | None = None) -> float:
    name = key.rsplit(".", 1)[-1]
    if name not in section:
        if default is None:
            raise ConfigError(key, "missing")
        return default
    value = section[name]
    expected = "an integer" if integer else "a number"
    if positive:
        expected += " > 0"
    if minimum is not None:
        expected += f" >= {minimum:g}"
    if maximum is not None:
        expected += f" <= {maximum:g}"
    number = as_number(value, key, expected)
    if (integer and not float(number).is_integer()) or (positive and number <= 0) or (
        minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigError(key, f"expected {expected}, got {value!r}")
    return number


def string(section: Mapping[str, Any], key: str, *, default: str | None = None) -> str:
    name = key.rsplit(".", 1)[-1]
    value = section.get(name, default)
    if value is None:
        raise ConfigError(key, "missing")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, f"expected a non-empty string, got {value!r}")
    return value


def boolean(section: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = section.get(key.rsplit(".", 1)[-1], default)
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {value!r}")
    return value


def resolve_path(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def resolve_db_url(text: str, base: Path, key: str = "database.url") -> str:
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        # not quoted: the text may hold a password that could not be told apart
        raise ConfigError(key, "not a SQLAlchemy URL; expected e.g. sqlite:///var/fairlens.db "
                          "or postgresql+psycopg://user@host:5432/db (percent-encode special "
                          "characters in a password)") from None
    if url.get_backend_name() != "sqlite":
        return text
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise ConfigError(key, "an in-memory SQLite database keeps no history; "
                          "give a file, e.g. sqlite:///var/fairlens.db")
    return url.set(database=str(resolve_path(database, base))).render_as_string(
        hide_password=False)
