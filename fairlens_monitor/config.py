"""Load and validate ``config.yaml`` into frozen settings: the boundary before any cycle runs.

Every key is checked once, here, and an error names the key and the expected value, so the
rest of the pipeline can trust its settings. Environment overrides (``FAIRLENS_DB_URL``,
``FAIRLENS_KEY_DIR``) are applied after the file. Relative paths in the file (the SQLite
database, the key folder) resolve against the config file's folder; relative paths in the
environment resolve against the working directory.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import rfc8785
import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from fairlens_monitor.drift import DriftSchedule
from fairlens_monitor.errors import ConfigError

ENV_DB_URL = "FAIRLENS_DB_URL"
ENV_KEY_DIR = "FAIRLENS_KEY_DIR"
MAX_SEED = 2**32 - 1
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class DatabaseSettings:
    url: str
    busy_timeout_ms: int = 5000


@dataclass(frozen=True)
class AuditSettings:
    checkpoint_every: int
    anchor_file: Path


@dataclass(frozen=True)
class ScheduleSettings:
    interval_seconds: float
    misfire_grace_seconds: float


@dataclass(frozen=True)
class SimulationSettings:
    n_samples: int
    seed: int
    drift: DriftSchedule


@dataclass(frozen=True)
class ThresholdSettings:
    dir: float
    gap: float


@dataclass(frozen=True)
class KeySettings:
    dir: Path


@dataclass(frozen=True)
class AlertSettings:
    echo_plaintext: bool


@dataclass(frozen=True)
class LoggingSettings:
    level: str


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one monitor."""

    database: DatabaseSettings
    schedule: ScheduleSettings
    simulation: SimulationSettings
    thresholds: ThresholdSettings
    keys: KeySettings
    alerts: AlertSettings
    logging: LoggingSettings
    audit: AuditSettings

    def config_hash(self) -> str:
        """Return the SHA-256 (hex) of the settings that shape a reading.

        Covers schedule, simulation and thresholds, in RFC 8785 canonical JSON; deployment
        locations (database URL, key folder) and logging are left out so the same monitoring
        rules hash the same on every machine.
        """
        shaping = {
            "schedule": asdict(self.schedule),
            "simulation": asdict(self.simulation),
            "thresholds": asdict(self.thresholds),
        }
        return hashlib.sha256(rfc8785.dumps(shaping)).hexdigest()


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and return the settings in ``path``.

    Args:
        path: the YAML config file.
        env: environment to take overrides from; ``os.environ`` when None.

    Returns:
        The frozen, validated settings.

    Raises:
        ConfigError: the file is missing or not YAML, or a key is unknown, missing, of the
            wrong type or out of range. The message names the key and what it expects.
    """
    env = os.environ if env is None else env
    config_path = Path(path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("--config", f"file {config_path} not found") from None
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {config_path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("--config", f"{config_path} is not valid YAML: {exc}") from None
    return parse_settings(raw, base_dir=config_path.resolve().parent, env=env)


def parse_settings(raw: Any, *, base_dir: Path, env: Mapping[str, str]) -> Settings:
    """Validate an already parsed config mapping (see :func:`load_settings`).

    Args:
        raw: the parsed YAML document.
        base_dir: folder that relative paths in the document resolve against.
        env: environment to take overrides from.

    Returns:
        The frozen, validated settings.

    Raises:
        ConfigError: as for :func:`load_settings`.
    """
    root = _mapping(raw, "(top level)")
    _reject_unknown(root, "", {"database", "schedule", "simulation", "thresholds", "keys",
                               "alerts", "logging", "audit"})
    db = _section(root, "database", {"url", "busy_timeout_ms"})
    schedule = _section(root, "schedule", {"interval_seconds", "misfire_grace_seconds"})
    sim = _section(root, "simulation", {"n_samples", "seed", "drift"})
    thresholds = _section(root, "thresholds", {"dir", "gap"})
    keys = _section(root, "keys", {"dir"})
    alerts = _section(root, "alerts", {"echo_plaintext"}, required=False)
    logging_ = _section(root, "logging", {"level"}, required=False)
    audit = _section(root, "audit", {"checkpoint_every", "anchor_file"}, required=False)

    db_url = env.get(ENV_DB_URL) or _string(db, "database.url")
    db_base = Path.cwd() if env.get(ENV_DB_URL) else base_dir
    key_dir_text = env.get(ENV_KEY_DIR) or _string(keys, "keys.dir")
    key_base = Path.cwd() if env.get(ENV_KEY_DIR) else base_dir

    level = _string(logging_, "logging.level", default="INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError("logging.level", f"expected one of {', '.join(LOG_LEVELS)}, "
                          f"got {level!r}")
    return Settings(
        database=DatabaseSettings(
            url=_resolve_db_url(db_url, db_base),
            busy_timeout_ms=int(_number(db, "database.busy_timeout_ms", default=5000,
                                        integer=True, minimum=0)),
        ),
        schedule=ScheduleSettings(
            interval_seconds=_number(schedule, "schedule.interval_seconds", positive=True),
            misfire_grace_seconds=_number(schedule, "schedule.misfire_grace_seconds",
                                          default=30.0, positive=True),
        ),
        simulation=SimulationSettings(
            n_samples=int(_number(sim, "simulation.n_samples", integer=True, minimum=1)),
            seed=int(_number(sim, "simulation.seed", integer=True, minimum=0,
                             maximum=MAX_SEED)),
            drift=_drift(sim.get("drift"), "simulation.drift"),
        ),
        thresholds=ThresholdSettings(
            dir=_number(thresholds, "thresholds.dir", positive=True),
            gap=_number(thresholds, "thresholds.gap", positive=True, maximum=1.0),
        ),
        keys=KeySettings(dir=_resolve_path(key_dir_text, key_base)),
        alerts=AlertSettings(
            echo_plaintext=_boolean(alerts, "alerts.echo_plaintext", default=False),
        ),
        logging=LoggingSettings(level=level),
        audit=AuditSettings(
            checkpoint_every=int(_number(audit, "audit.checkpoint_every", default=50,
                                         integer=True, minimum=1)),
            anchor_file=_resolve_path(
                _string(audit, "audit.anchor_file", default="var/anchor.jsonl"), base_dir),
        ),
    )


def _drift(value: Any, key: str) -> DriftSchedule:
    if value is None:
        raise ConfigError(key, "missing; expected a number in [0, 1] or "
                               "{mode: ramp, start: A, end: B, cycles: N}")
    if not isinstance(value, Mapping):
        return DriftSchedule("constant", _unit(value, key))
    spec = dict(value)
    mode = spec.get("mode", "constant")
    if mode == "constant":
        _reject_unknown(spec, key, {"mode", "level"})
        return DriftSchedule("constant", _unit(_required(spec, "level", key), f"{key}.level"))
    if mode == "ramp":
        _reject_unknown(spec, key, {"mode", "start", "end", "cycles"})
        return DriftSchedule(
            "ramp",
            start=_unit(_required(spec, "start", key), f"{key}.start"),
            end=_unit(_required(spec, "end", key), f"{key}.end"),
            cycles=int(_number(spec, f"{key}.cycles", integer=True, minimum=2)),
        )
    raise ConfigError(f"{key}.mode", f"expected 'constant' or 'ramp', got {mode!r}")


def _unit(value: Any, key: str) -> float:
    number = _as_number(value, key, "a number in [0, 1]")
    if not 0.0 <= number <= 1.0:
        raise ConfigError(key, f"expected a number in [0, 1], got {value!r}")
    return number


def _required(spec: Mapping[str, Any], name: str, key: str) -> Any:
    if name not in spec:
        raise ConfigError(f"{key}.{name}", "missing")
    return spec[name]


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"expected a mapping of keys, got {type(value).__name__}")
    return dict(value)


def _section(root: Mapping[str, Any], name: str, allowed: set[str],
             *, required: bool = True) -> dict[str, Any]:
    if name not in root or root[name] is None:
        if required:
            raise ConfigError(name, f"missing section; expected keys {', '.join(sorted(allowed))}")
        return {}
    section = _mapping(root[name], name)
    _reject_unknown(section, name, allowed)
    return section


def _reject_unknown(mapping: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
    for name in mapping:
        if name not in allowed:
            key = f"{prefix}.{name}" if prefix else str(name)
            raise ConfigError(key, f"unknown key; allowed here: {', '.join(sorted(allowed))}")


def _as_number(value: Any, key: str, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"expected {expected}, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(key, f"expected {expected}, got {value!r}")
    return float(value)


def _number(section: Mapping[str, Any], key: str, *, default: float | None = None,
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
    number = _as_number(value, key, expected)
    if (integer and not float(number).is_integer()) or (positive and number <= 0) or (
        minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigError(key, f"expected {expected}, got {value!r}")
    return number


def _string(section: Mapping[str, Any], key: str, *, default: str | None = None) -> str:
    name = key.rsplit(".", 1)[-1]
    value = section.get(name, default)
    if value is None:
        raise ConfigError(key, "missing")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, f"expected a non-empty string, got {value!r}")
    return value


def _boolean(section: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = section.get(key.rsplit(".", 1)[-1], default)
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {value!r}")
    return value


def _resolve_path(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _resolve_db_url(text: str, base: Path) -> str:
    try:
        url = make_url(text)
    except ArgumentError:
        raise ConfigError("database.url", f"not a SQLAlchemy URL: {text!r}; expected e.g. "
                          "sqlite:///var/fairlens.db") from None
    if url.get_backend_name() != "sqlite":
        return text
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise ConfigError("database.url", "an in-memory SQLite database keeps no history; "
                          "give a file, e.g. sqlite:///var/fairlens.db")
    return url.set(database=str(_resolve_path(database, base))).render_as_string(
        hide_password=False)
