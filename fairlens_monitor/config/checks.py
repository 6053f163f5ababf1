"""Config validators: each checks one value and names the key in its error.

The building blocks of ``config.parse_settings`` (the boundary where every key is checked
once): numbers with ranges, strings, booleans, mappings with their allowed keys, paths and
database URLs resolved against the config file's folder. Pure, apart from making paths
absolute.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from fairlens_monitor.config.simulation import DriftSchedule
from fairlens_monitor.errors import ConfigError

MAX_COUNT = 1_000_000_000  # cycles, readings, events: integers with room to spare
SHOWN_CHARS = 40  # a value quoted in an error is cut to this many characters
# The back ends the monitor's own database runs on (a source may use any installed driver).
STORE_BACKENDS = ("sqlite", "postgresql")
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = SHOWN_CHARS


def shown(value: Any) -> str:
    """A config value as an error message may quote it: short, one line, never expanded.

    A list or mapping is shown by its type and length (it may be the expansion of YAML
    aliases, or hold anything); a scalar by its repr cut to about ``SHOWN_CHARS``.
    """
    if isinstance(value, list | tuple | dict | set):
        return f"a {type(value).__name__} of {len(value)} items"
    text = _REPR.repr(value)
    return text if len(text) <= SHOWN_CHARS + 5 else text[:SHOWN_CHARS] + "..."


def open_unit(section: Mapping[str, Any], key: str, *, default: float) -> float:
    value = section.get(key.rsplit(".", 1)[-1], default)
    number = as_number(value, key, "a number strictly between 0 and 1")
    if not 0.0 < number < 1.0:
        raise ConfigError(key, f"expected a number strictly between 0 and 1, got {shown(value)}")
    return number


def unit(value: Any, key: str) -> float:
    number = as_number(value, key, "a number in [0, 1]")
    if not 0.0 <= number <= 1.0:
        raise ConfigError(key, f"expected a number in [0, 1], got {shown(value)}")
    return number


def required(spec: Mapping[str, Any], name: str, key: str) -> Any:
    if name not in spec:
        raise ConfigError(f"{key}.{name}", "missing")
    return spec[name]


def mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"expected a mapping of keys, got {type(value).__name__}")
    return dict(value)


def section(
    root: Mapping[str, Any], name: str, allowed: set[str], *, required: bool = True
) -> dict[str, Any]:
    if name not in root or root[name] is None:
        if required:
            raise ConfigError(name, f"missing section; expected keys {', '.join(sorted(allowed))}")
        return {}
    section = mapping(root[name], name)
    reject_unknown(section, name, allowed)
    return section


def reject_unknown(mapping: Mapping[str, Any], prefix: str, allowed: AbstractSet[str]) -> None:
    for name in mapping:
        if name not in allowed:
            text = str(name) if len(str(name)) <= SHOWN_CHARS else str(name)[:SHOWN_CHARS] + "..."
            key = f"{prefix}.{text}" if prefix else text
            raise ConfigError(key, f"unknown key; allowed here: {', '.join(sorted(allowed))}")


def as_number(value: Any, key: str, expected: str) -> float:
    if isinstance(value, str) and _looks_numeric(value):
        raise ConfigError(
            key,
            f"expected {expected}, got the text {shown(value)} (YAML reads "
            "an exponent without a '.' as text: write e.g. 1.0e+3)",
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"expected {expected}, got {shown(value)}")
    try:
        number = float(value)  # an int beyond ~1e308 overflows here
    except OverflowError:
        raise ConfigError(
            key, f"expected {expected}, got an integer of {len(str(abs(value)))} digits"
        ) from None
    if not math.isfinite(number):
        raise ConfigError(key, f"expected {expected}, got {shown(value)}")
    return number


def number(
    section: Mapping[str, Any],
    key: str,
    *,
    default: float | None = None,
    integer: bool = False,
    positive: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
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
        expected += f" >= {_bound(minimum)}"
    if maximum is not None:
        expected += f"{' and' if minimum is not None or positive else ''} <= {_bound(maximum)}"
    number = as_number(value, key, expected)
    if (
        (integer and not float(number).is_integer())
        or (positive and number <= 0)
        or (minimum is not None and number < minimum)
        or (maximum is not None and number > maximum)
    ):
        raise ConfigError(key, f"expected {expected}, got {shown(value)}")
    return number


def _bound(limit: float) -> str:
    """A bound as a reader takes it in: 31622400 rather than 3.16224e+07."""
    return f"{int(limit)}" if float(limit).is_integer() and abs(limit) < 1e12 else f"{limit:g}"


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def string(section: Mapping[str, Any], key: str, *, default: str | None = None) -> str:
    name = key.rsplit(".", 1)[-1]
    value = section.get(name, default)
    if value is None:
        raise ConfigError(key, "missing")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, f"expected a non-empty string, got {shown(value)}")
    return value


def boolean(section: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = section.get(key.rsplit(".", 1)[-1], default)
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {shown(value)}")
    return value


def resolve_path(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))


def writable_place(path: Path, key: str) -> Path:
    """Refuse a path where the monitor could never create a file, before anything is made.

    Only what holds for every command is checked (a reader may run in a read-only folder):
    the path is not under a kernel pseudo-file system (``/proc``, ``/sys``, ``/dev``), and its
    nearest existing ancestor is a folder.

    Raises:
        ConfigError: either does not hold.
    """
    real = path.resolve()
    if any(real == root or root in real.parents for root in PSEUDO_FILESYSTEMS):
        raise ConfigError(
            key,
            f"{path} is under a kernel pseudo-file system (/proc, /sys, "
            "/dev), which cannot hold the monitor's files; give another folder",
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(key, f"{parent} is a file, not a folder; give a path in a folder")
            break
    return path


def resolve_db_url(text: str, base: Path, key: str = "database.url") -> str:
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        # not quoted: the text may hold a password that could not be told apart
        raise ConfigError(
            key,
            "not a SQLAlchemy URL; expected e.g. sqlite:///var/fairlens.db "
            "or postgresql+psycopg://user@host:5432/db (percent-encode special "
            "characters in a password)",
        ) from None
    backend = url.get_backend_name()
    if backend not in STORE_BACKENDS and key == "database.url":
        raise ConfigError(
            key,
            f"back end {shown(backend)} is not supported; the monitor's "
            "database is SQLite (sqlite:///var/fairlens.db) or PostgreSQL "
            "(postgresql+psycopg://user@host/db)",
        )
    if backend != "sqlite":
        check_driver(url, key)
        return text
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise ConfigError(
            key,
            "an in-memory SQLite database keeps no history; "
            "give a file, e.g. sqlite:///var/fairlens.db",
        )
    path = resolve_path(database, base)
    if key == "database.url":
        writable_place(path, key)
    return url.set(database=str(path)).render_as_string(hide_password=False)


def check_driver(url: URL, key: str) -> None:
    """Make sure the URL's dialect and its Python driver are installed.

    Raises:
        ConfigError: the dialect is unknown or its driver module is not installed (the
            message names the supported back ends).
    """
    name = url.drivername
    try:
        url.get_dialect().import_dbapi()
    except (ArgumentError, ImportError):
        raise ConfigError(
            key,
            f"no installed driver for {shown(name)}; supported: sqlite, "
            "postgresql+psycopg (a source may also use another SQLAlchemy "
            "dialect whose driver is installed)",
        ) from None


def drift_schedule(value: Any, key: str) -> DriftSchedule:
    """Validate ``simulation.drift``: a level in [0, 1] or a constant/ramp mapping.

    Raises:
        ConfigError: malformed, or a number out of range (named with its key).
    """
    if value is None:
        raise ConfigError(
            key, "missing; expected a number in [0, 1] or {mode: ramp, start: A, end: B, cycles: N}"
        )
    if not isinstance(value, Mapping):
        return DriftSchedule("constant", unit(value, key))
    spec = dict(value)
    mode = spec.get("mode", "constant")
    if mode == "constant":
        reject_unknown(spec, key, {"mode", "level"})
        return DriftSchedule("constant", unit(required(spec, "level", key), f"{key}.level"))
    if mode == "ramp":
        reject_unknown(spec, key, {"mode", "start", "end", "cycles", "hold"})
        return DriftSchedule(
            "ramp",
            start=unit(required(spec, "start", key), f"{key}.start"),
            end=unit(required(spec, "end", key), f"{key}.end"),
            cycles=int(number(spec, f"{key}.cycles", integer=True, minimum=2, maximum=MAX_COUNT)),
            hold=int(
                number(spec, f"{key}.hold", default=0, integer=True, minimum=0, maximum=MAX_COUNT)
            ),
        )
    raise ConfigError(f"{key}.mode", f"expected 'constant' or 'ramp', got {shown(mode)}")
