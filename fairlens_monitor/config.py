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
from functools import cached_property
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
from fairlens_monitor.measurement_config import MeasurementSettings, parse_measurement
from fairlens_monitor.source_config import KIND_KEYS, SourceSettings, parse_source
from fairlens_monitor.trend import CusumSettings

if TYPE_CHECKING:
    from fairlens_monitor.groups import GroupSpec

ENV_DB_URL = "FAIRLENS_DB_URL"
ENV_KEY_DIR = "FAIRLENS_KEY_DIR"
MAX_SEED = 2**32 - 1
MAX_SHORTFALL = 1e12  # approvals; anything larger is a typo, not a rule
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class DatabaseSettings:
    url: str
    busy_timeout_ms: int = 5000


@dataclass(frozen=True)
class AuditSettings:
    checkpoint_every: int
    anchor_file: Path
    checkpoint_seconds: float = 60.0


@dataclass(frozen=True)
class ScheduleSettings:
    interval_seconds: float
    misfire_grace_seconds: float


@dataclass(frozen=True)
class LeadershipSettings:
    """How long a daemon's lead on a shared PostgreSQL database lasts unless renewed."""

    lease_seconds: float = 5.0


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
    shortfall: float | None = None  # opt-in: adverse at DIR >= dir when significant and short


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
    simulation: SimulationSettings | None
    thresholds: ThresholdSettings
    keys: KeySettings
    alerts: AlertSettings
    logging: LoggingSettings
    audit: AuditSettings
    measurement: MeasurementSettings = field(default_factory=MeasurementSettings)
    backup: BackupSettings | None = None
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    drift_detection: CusumSettings = field(default_factory=CusumSettings)
    source: SourceSettings = field(default_factory=SourceSettings)
    leadership: LeadershipSettings = field(default_factory=LeadershipSettings)

    def simulator(self) -> SimulationSettings:
        """Return the simulation settings.

        Raises:
            ConfigError: the source is not the simulator (there are no such settings).
        """
        if self.simulation is None:
            raise ConfigError("simulation", f"not used: source.kind is {self.source.kind}")
        return self.simulation

    def group_spec(self) -> GroupSpec:
        """Return how readings form and judge groups under these settings."""
        from fairlens_monitor.groups import GroupSpec  # deferred: pandas costs start-up time

        m, t = self.measurement, self.thresholds
        return GroupSpec(
            attributes=m.protected_attributes, bands=dict(m.bands),
            reference="highest" if m.reference == "highest" else "privileged",
            privileged_value=m.privileged_value, unprivileged_value=m.unprivileged_value,
            threshold=t.dir, alpha=t.alpha, confidence=m.confidence,
            min_group_size=t.min_group_size, min_group_share=t.min_group_share,
            shortfall=t.shortfall)

    def config_hash(self) -> str:
        """Return the SHA-256 (hex) of the settings that shape a reading.

        Covers schedule, simulation (or the source's kind, columns and window), thresholds,
        measurement, drift detection and when alerts open and close, in RFC 8785 canonical
        JSON; deployment locations (database and source URLs, file pattern, key folder) and
        logging are left out so the same monitoring rules hash the same on every machine.
        """
        return self._config_hash

    @cached_property
    def _config_hash(self) -> str:  # the settings are frozen: hash them once
        return hashlib.sha256(rfc8785.dumps(self.shaping())).hexdigest()

    def shaping(self) -> dict[str, Any]:
        """Return the settings that shape a reading as plain JSON data (what is hashed).

        Recorded in ``daemon_started`` and ``config_changed`` audit events, so a later start
        can say which keys changed.
        """
        where: dict[str, Any] = ({"simulation": asdict(self.simulation)}
                                 if self.simulation is not None
                                 else {"source": self.source.shaping()})
        shaping: dict[str, Any] = {
            "schedule": asdict(self.schedule),
            **where,
            # the opt-in shortfall rule is hashed only when on, so configs without it keep
            # the hash they had before the rule existed
            "thresholds": {k: v for k, v in asdict(self.thresholds).items()
                           if k != "shortfall" or v is not None},
            "measurement": self._measurement_shaping(),
            "drift_detection": asdict(self.drift_detection),
            "alerts.close_after": self.alerts.close_after,
            "alerts.notify_inconclusive": self.alerts.notify_inconclusive,
        }
        plain: dict[str, Any] = json.loads(json.dumps(shaping))  # tuples become lists
        return plain

    def _measurement_shaping(self) -> dict[str, Any]:
        # Without a score, score_bins shapes nothing: leave both out, so a config that names
        # no score hashes as it did before the keys existed (no spurious config_changed).
        out = asdict(self.measurement)
        if out["score"] is None:
            del out["score"], out["score_bins"]
        return out


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
                               "drift_detection", "backup", "retention", "source",
                               "leadership"})
    source = parse_source(section(root, "source", set().union(*KIND_KEYS.values()),
                                  required=False),
                          base_dir=base_dir, env=env)
    db = section(root, "database", {"url", "busy_timeout_ms"})
    schedule = section(root, "schedule", {"interval_seconds", "misfire_grace_seconds"})
    sim = section(root, "simulation", {"n_samples", "seed", "drift"},
                  required=source.kind == "simulator")
    thresholds = section(root, "thresholds", {"dir", "gap", "alpha", "min_group_size",
                                               "min_group_share", "shortfall"})
    keys = section(root, "keys", {"dir"})
    alerts = section(root, "alerts", {"echo_plaintext", "close_after", "notify_inconclusive"},
                      required=False)
    measurement = section(root, "measurement", {
        "protected_attributes", "bands", "reference", "privileged_value",
        "unprivileged_value", "label", "confidence", "score", "score_bins"}, required=False)
    cusum = section(root, "drift_detection", {"baseline_readings", "slack", "threshold"},
                     required=False)
    backup = section(root, "backup", {"dir", "interval_hours", "keep"}, required=False)
    keep = section(root, "retention", {"readings_days", "runs_days", "audit_days", "daily"},
                    required=False)
    logging_ = section(root, "logging", {"level"}, required=False)
    audit = section(root, "audit", {"checkpoint_every", "checkpoint_seconds", "anchor_file"},
                    required=False)
    lead = section(root, "leadership", {"lease_seconds"}, required=False)
    interval = number(schedule, "schedule.interval_seconds", positive=True)

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
            interval_seconds=interval,
            misfire_grace_seconds=number(schedule, "schedule.misfire_grace_seconds",
                                          default=30.0, positive=True),
        ),
        simulation=None if source.kind != "simulator" else SimulationSettings(
            n_samples=int(number(sim, "simulation.n_samples", integer=True, minimum=1)),
            seed=int(number(sim, "simulation.seed", integer=True, minimum=0,
                             maximum=MAX_SEED)),
            drift=_drift(sim.get("drift"), "simulation.drift"),
        ),
        source=source,
        thresholds=ThresholdSettings(
            dir=number(thresholds, "thresholds.dir", positive=True),
            gap=number(thresholds, "thresholds.gap", positive=True, maximum=1.0),
            alpha=open_unit(thresholds, "thresholds.alpha", default=0.05),
            min_group_size=int(number(thresholds, "thresholds.min_group_size", default=30,
                                       integer=True, minimum=1)),
            min_group_share=number(thresholds, "thresholds.min_group_share", default=0.02,
                                    minimum=0, maximum=0.5),
            shortfall=(None if thresholds.get("shortfall") is None else
                       number(thresholds, "thresholds.shortfall", positive=True,
                              maximum=MAX_SHORTFALL)),
        ),
        keys=KeySettings(dir=resolve_path(key_dir_text, key_base)),
        alerts=AlertSettings(
            echo_plaintext=boolean(alerts, "alerts.echo_plaintext", default=False),
            close_after=int(number(alerts, "alerts.close_after", default=3, integer=True,
                                    minimum=1)),
            notify_inconclusive=boolean(alerts, "alerts.notify_inconclusive", default=False),
        ),
        measurement=parse_measurement(measurement, source),
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
        leadership=LeadershipSettings(lease_seconds=number(
            lead, "leadership.lease_seconds", default=min(86400.0, max(5.0, 3 * interval)),
            minimum=1, maximum=86400)),
        audit=AuditSettings(
            checkpoint_every=int(number(audit, "audit.checkpoint_every", default=50,
                                         integer=True, minimum=1)),
            anchor_file=resolve_path(
                string(audit, "audit.anchor_file", default="var/anchor.jsonl"), base_dir),
            checkpoint_seconds=number(audit, "audit.checkpoint_seconds", default=60.0,
                                      positive=True),
        ),
    )


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
