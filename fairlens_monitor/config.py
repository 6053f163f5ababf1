"""Load and validate ``config.yaml`` into frozen settings: the boundary before any cycle runs.

Every key is checked once, here, and an error names the key and the expected value, so the
rest of the pipeline can trust its settings. Environment overrides (``FAIRLENS_DB_URL``,
``FAIRLENS_KEY_DIR``) are applied after the file. Relative paths in the file (the SQLite
database, the key folder) resolve against the config file's folder; relative paths in the
environment resolve against the working directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rfc8785
import yaml

from fairlens_monitor.config_checks import (
    boolean,
    mapping,
    number,
    open_unit,
    reject_unknown,
    required,
    resolve_db_url,
    resolve_path,
    section,
    string,
    unit,
)
from fairlens_monitor.drift import DriftSchedule
from fairlens_monitor.errors import ConfigError
from fairlens_monitor.trend import CusumSettings

if TYPE_CHECKING:
    from fairlens_monitor.groups import GroupSpec

ENV_DB_URL = "FAIRLENS_DB_URL"
ENV_KEY_DIR = "FAIRLENS_KEY_DIR"
MAX_SEED = 2**32 - 1
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Columns of the built-in simulator that can be measured (see simulate.py).
SIMULATOR_ATTRIBUTES = ("gender", "age", "credit_score")
SIMULATOR_LABELS = ("repaid",)


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
    alpha: float = 0.05
    min_group_size: int = 30
    min_group_share: float = 0.02


@dataclass(frozen=True)
class MeasurementSettings:
    """Which groups are compared, against which reference, and the optional true label."""

    protected_attributes: tuple[str, ...] = ("gender",)
    bands: tuple[tuple[str, tuple[float, ...]], ...] = ()
    reference: str = "privileged"
    privileged_value: str | None = "Male"
    unprivileged_value: str | None = "Female"
    label: str | None = "repaid"
    confidence: float = 0.95


@dataclass(frozen=True)
class KeySettings:
    dir: Path


@dataclass(frozen=True)
class AlertSettings:
    echo_plaintext: bool
    close_after: int = 3
    notify_inconclusive: bool = False


@dataclass(frozen=True)
class BackupSettings:
    """Scheduled backups by the daemon (SQLite): where, how often, how many to keep."""

    dir: Path
    interval_hours: float
    keep: int


@dataclass(frozen=True)
class RetentionSettings:
    """How long rows are kept; the audit chain is pruned only up to a signed checkpoint.

    Defaults keep 25 months (Reg B's record retention for credit decisions), which is also
    more than the EU AI Act's minimum of six months for logs.
    """

    readings_days: float = 760.0
    runs_days: float = 760.0
    audit_days: float = 760.0
    daily: bool = True


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
    measurement: MeasurementSettings = field(default_factory=MeasurementSettings)
    backup: BackupSettings | None = None
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    drift_detection: CusumSettings = field(default_factory=CusumSettings)

    def group_spec(self) -> GroupSpec:
        """Return how readings form and judge groups under these settings."""
        from fairlens_monitor.groups import GroupSpec  # deferred: pandas costs start-up time

        m, t = self.measurement, self.thresholds
        return GroupSpec(
            attributes=m.protected_attributes, bands=dict(m.bands),
            reference="highest" if m.reference == "highest" else "privileged",
            privileged_value=m.privileged_value, unprivileged_value=m.unprivileged_value,
            threshold=t.dir, alpha=t.alpha, confidence=m.confidence,
            min_group_size=t.min_group_size, min_group_share=t.min_group_share)

    def config_hash(self) -> str:
        """Return the SHA-256 (hex) of the settings that shape a reading.

        Covers schedule, simulation, thresholds, measurement, drift detection and when
        alerts open and close, in RFC 8785 canonical JSON; deployment locations (database URL, key
        folder) and logging are left out so the same monitoring rules hash the same on
        every machine.
        """
        return hashlib.sha256(rfc8785.dumps(self.shaping())).hexdigest()

    def shaping(self) -> dict[str, Any]:
        """Return the settings that shape a reading as plain JSON data (what is hashed).

        Recorded in ``daemon_started`` and ``config_changed`` audit events, so a later start
        can say which keys changed.
        """
        shaping: dict[str, Any] = {
            "schedule": asdict(self.schedule),
            "simulation": asdict(self.simulation),
            "thresholds": asdict(self.thresholds),
            "measurement": asdict(self.measurement),
            "drift_detection": asdict(self.drift_detection),
            "alerts.close_after": self.alerts.close_after,
            "alerts.notify_inconclusive": self.alerts.notify_inconclusive,
        }
        plain: dict[str, Any] = json.loads(json.dumps(shaping))  # tuples become lists
        return plain


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
    root = mapping(raw, "(top level)")
    reject_unknown(root, "", {"database", "schedule", "simulation", "thresholds", "keys",
                               "alerts", "logging", "audit", "measurement",
                               "drift_detection", "backup", "retention"})
    db = section(root, "database", {"url", "busy_timeout_ms"})
    schedule = section(root, "schedule", {"interval_seconds", "misfire_grace_seconds"})
    sim = section(root, "simulation", {"n_samples", "seed", "drift"})
    thresholds = section(root, "thresholds", {"dir", "gap", "alpha", "min_group_size",
                                               "min_group_share"})
    keys = section(root, "keys", {"dir"})
    alerts = section(root, "alerts", {"echo_plaintext", "close_after", "notify_inconclusive"},
                      required=False)
    measurement = section(root, "measurement", {
        "protected_attributes", "bands", "reference", "privileged_value",
        "unprivileged_value", "label", "confidence"}, required=False)
    cusum = section(root, "drift_detection", {"baseline_readings", "slack", "threshold"},
                     required=False)
    backup = section(root, "backup", {"dir", "interval_hours", "keep"}, required=False)
    keep = section(root, "retention", {"readings_days", "runs_days", "audit_days", "daily"},
                    required=False)
    logging_ = section(root, "logging", {"level"}, required=False)
    audit = section(root, "audit", {"checkpoint_every", "anchor_file"}, required=False)

    db_url = env.get(ENV_DB_URL) or string(db, "database.url")
    db_base = Path.cwd() if env.get(ENV_DB_URL) else base_dir
    key_dir_text = env.get(ENV_KEY_DIR) or string(keys, "keys.dir")
    key_base = Path.cwd() if env.get(ENV_KEY_DIR) else base_dir

    level = string(logging_, "logging.level", default="INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError("logging.level", f"expected one of {', '.join(LOG_LEVELS)}, "
                          f"got {level!r}")
    return Settings(
        database=DatabaseSettings(
            url=resolve_db_url(db_url, db_base),
            busy_timeout_ms=int(number(db, "database.busy_timeout_ms", default=5000,
                                        integer=True, minimum=0)),
        ),
        schedule=ScheduleSettings(
            interval_seconds=number(schedule, "schedule.interval_seconds", positive=True),
            misfire_grace_seconds=number(schedule, "schedule.misfire_grace_seconds",
                                          default=30.0, positive=True),
        ),
        simulation=SimulationSettings(
            n_samples=int(number(sim, "simulation.n_samples", integer=True, minimum=1)),
            seed=int(number(sim, "simulation.seed", integer=True, minimum=0,
                             maximum=MAX_SEED)),
            drift=_drift(sim.get("drift"), "simulation.drift"),
        ),
        thresholds=ThresholdSettings(
            dir=number(thresholds, "thresholds.dir", positive=True),
            gap=number(thresholds, "thresholds.gap", positive=True, maximum=1.0),
            alpha=open_unit(thresholds, "thresholds.alpha", default=0.05),
            min_group_size=int(number(thresholds, "thresholds.min_group_size", default=30,
                                       integer=True, minimum=1)),
            min_group_share=number(thresholds, "thresholds.min_group_share", default=0.02,
                                    minimum=0, maximum=0.5),
        ),
        keys=KeySettings(dir=resolve_path(key_dir_text, key_base)),
        alerts=AlertSettings(
            echo_plaintext=boolean(alerts, "alerts.echo_plaintext", default=False),
            close_after=int(number(alerts, "alerts.close_after", default=3, integer=True,
                                    minimum=1)),
            notify_inconclusive=boolean(alerts, "alerts.notify_inconclusive", default=False),
        ),
        measurement=_measurement(measurement),
        backup=None if not backup else BackupSettings(
            dir=resolve_path(string(backup, "backup.dir"), base_dir),
            interval_hours=number(backup, "backup.interval_hours", default=24.0,
                                   positive=True),
            keep=int(number(backup, "backup.keep", default=7, integer=True, minimum=1)),
        ),
        retention=RetentionSettings(
            readings_days=number(keep, "retention.readings_days", default=760.0,
                                  positive=True),
            runs_days=number(keep, "retention.runs_days", default=760.0, positive=True),
            audit_days=number(keep, "retention.audit_days", default=760.0, minimum=183),
            daily=boolean(keep, "retention.daily", default=True),
        ),
        drift_detection=CusumSettings(
            baseline_readings=int(number(cusum, "drift_detection.baseline_readings",
                                          default=30, integer=True, minimum=2)),
            slack=number(cusum, "drift_detection.slack", default=0.75, minimum=0),
            threshold=number(cusum, "drift_detection.threshold", default=8.0, positive=True),
        ),
        logging=LoggingSettings(level=level),
        audit=AuditSettings(
            checkpoint_every=int(number(audit, "audit.checkpoint_every", default=50,
                                         integer=True, minimum=1)),
            anchor_file=resolve_path(
                string(audit, "audit.anchor_file", default="var/anchor.jsonl"), base_dir),
        ),
    )


def _measurement(section: Mapping[str, Any]) -> MeasurementSettings:
    key = "measurement.protected_attributes"
    attributes = section.get("protected_attributes", ["gender"])
    if isinstance(attributes, str):
        attributes = [attributes]
    if (not isinstance(attributes, list) or not 1 <= len(attributes) <= 2
            or len(set(map(str, attributes))) != len(attributes)):
        raise ConfigError(key, f"expected one column or a list of two different columns "
                          f"(an intersection), got {attributes!r}")
    for name in attributes:
        if name not in SIMULATOR_ATTRIBUTES:
            raise ConfigError(key, f"the simulator has no column {name!r}; choose from "
                              f"{', '.join(SIMULATOR_ATTRIBUTES)}")
    bands = _bands(section.get("bands") or {}, attributes)
    for name in attributes:
        if name in ("age", "credit_score") and name not in dict(bands):
            raise ConfigError("measurement.bands", f"numeric column {name!r} needs band "
                              f"edges, e.g. bands: {{{name}: [25]}}")
    reference = section.get("reference", "privileged")
    if reference not in ("privileged", "highest"):
        raise ConfigError("measurement.reference",
                          f"expected 'privileged' or 'highest', got {reference!r}")
    gender = list(attributes) == ["gender"]  # the demo defaults name gender's values
    privileged = _group_value(section, "privileged_value", "Male" if gender else None)
    if reference == "privileged" and privileged is None:
        raise ConfigError("measurement.privileged_value",
                          "required when reference is 'privileged'")
    label = section.get("label", "repaid")
    if label is not None and label not in SIMULATOR_LABELS:
        raise ConfigError("measurement.label", f"the simulator has no label column {label!r}; "
                          f"use {', '.join(SIMULATOR_LABELS)} or null")
    return MeasurementSettings(
        protected_attributes=tuple(attributes), bands=bands, reference=reference,
        privileged_value=privileged if reference == "privileged" else None,
        unprivileged_value=_group_value(section, "unprivileged_value",
                                        "Female" if gender else None),
        label=label,
        confidence=open_unit(section, "measurement.confidence", default=0.95),
    )


def _bands(value: Any, attributes: list[str]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    key = "measurement.bands"
    spec = mapping(value, key)
    out = []
    for column, edges in spec.items():
        if column not in attributes:
            raise ConfigError(f"{key}.{column}", "not one of measurement.protected_attributes")
        if (not isinstance(edges, list) or not edges
                or any(isinstance(e, bool) or not isinstance(e, int | float) for e in edges)
                or sorted(set(edges)) != edges):
            raise ConfigError(f"{key}.{column}", f"expected increasing numbers, e.g. [25, 40], "
                              f"got {edges!r}")
        out.append((str(column), tuple(float(e) for e in edges)))
    return tuple(out)


def _group_value(section: Mapping[str, Any], name: str, default: str | None) -> str | None:
    value = section.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"measurement.{name}", f"expected a group label, got {value!r}")
    return str(value)


def _drift(value: Any, key: str) -> DriftSchedule:
    if value is None:
        raise ConfigError(key, "missing; expected a number in [0, 1] or "
                               "{mode: ramp, start: A, end: B, cycles: N}")
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
            cycles=int(number(spec, f"{key}.cycles", integer=True, minimum=2)),
            hold=int(number(spec, f"{key}.hold", default=0, integer=True, minimum=0)),
        )
    raise ConfigError(f"{key}.mode", f"expected 'constant' or 'ramp', got {mode!r}")
