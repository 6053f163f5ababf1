"""Load and validate ``config.yaml`` into frozen settings: the boundary before any cycle runs.

Every key is checked once, here (each section by its parser in ``config.parsers``), and an
error names the key and the expected value, so the rest of the pipeline can trust its
settings. Environment overrides (``FAIRLENS_DB_URL``,
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

from fairlens_monitor.config.checks import (
    mapping,
    reject_unknown,
    section,
)
from fairlens_monitor.config.detection import CusumSettings
from fairlens_monitor.config.measurement import MeasurementSettings, parse_measurement
from fairlens_monitor.config.notify import NotifySettings, parse_notify
from fairlens_monitor.config.parsers import (
    parse_alerts,
    parse_audit,
    parse_backup,
    parse_daemon,
    parse_database,
    parse_drift_detection,
    parse_keys,
    parse_leadership,
    parse_logging,
    parse_metrics,
    parse_retention,
    parse_schedule,
    parse_simulation,
    parse_thresholds,
)
from fairlens_monitor.config.reader import read_document
from fairlens_monitor.config.sections import (
    AlertSettings,
    AuditSettings,
    BackupSettings,
    DaemonSettings,
    DatabaseSettings,
    KeySettings,
    LeadershipSettings,
    LoggingSettings,
    MetricsSettings,
    RetentionSettings,
    ScheduleSettings,
    SimulationSettings,
    ThresholdSettings,
)
from fairlens_monitor.config.source import KIND_KEYS, SourceSettings, parse_source
from fairlens_monitor.errors import ConfigError

if TYPE_CHECKING:
    from fairlens_monitor.fairness.groups import GroupSpec

# The top-level sections a config file may have (anything else is refused by name).
SECTIONS = frozenset(
    {
        "database",
        "schedule",
        "simulation",
        "thresholds",
        "keys",
        "alerts",
        "logging",
        "audit",
        "measurement",
        "drift_detection",
        "backup",
        "retention",
        "source",
        "leadership",
        "daemon",
        "notify",
        "metrics",
    }
)


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
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    # where alerts go; deployment, not a rule: left out of the config hash (see shaping)
    notify: NotifySettings = field(default_factory=NotifySettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

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
        # deferred: pandas costs start-up time
        from fairlens_monitor.fairness.groups import GroupSpec

        m, t = self.measurement, self.thresholds
        return GroupSpec(
            attributes=m.protected_attributes,
            bands=dict(m.bands),
            reference="highest" if m.reference == "highest" else "privileged",
            privileged_value=m.privileged_value,
            unprivileged_value=m.unprivileged_value,
            threshold=t.dir,
            alpha=t.alpha,
            confidence=m.confidence,
            min_group_size=t.min_group_size,
            min_group_share=t.min_group_share,
            shortfall=t.shortfall,
        )

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
        where: dict[str, Any] = (
            {"simulation": asdict(self.simulation)}
            if self.simulation is not None
            else {"source": self.source.shaping()}
        )
        shaping: dict[str, Any] = {
            # a cron is hashed only when set, so interval configs keep the hash they had
            "schedule": {k: v for k, v in asdict(self.schedule).items() if k != "cron" or v},
            **where,
            # the opt-in shortfall rule is hashed only when on, so configs without it keep
            # the hash they had before the rule existed
            "thresholds": {
                k: v
                for k, v in asdict(self.thresholds).items()
                if k != "shortfall" or v is not None
            },
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
        ConfigError: the file is missing, unreadable or not bounded YAML
            (:func:`fairlens_monitor.config.reader.read_document`), or a key is unknown,
            missing, of the wrong type or out of range. The message names the key and what it
            expects, in one line.
    """
    env = os.environ if env is None else env
    config_path = Path(path)
    raw = read_document(config_path)
    settings = parse_settings(raw, base_dir=config_path.resolve().parent, env=env)
    return recordable(settings)


def recordable(settings: Settings) -> Settings:
    """Return ``settings`` once its config hash can be computed (and is cached).

    Hashed before anything is created, so an unhashable value stops at the boundary.

    Raises:
        ConfigError: a value cannot be written as canonical JSON (out of its bounds).
    """
    try:
        settings.config_hash()
    except (rfc8785.CanonicalizationError, ValueError, OverflowError) as exc:
        raise ConfigError(
            "--config",
            f"a value cannot be recorded ({type(exc).__name__}); "
            "numbers must stay within the documented bounds",
        ) from None
    return settings


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
    reject_unknown(
        root,
        "",
        SECTIONS,
    )
    source = parse_source(
        section(root, "source", set().union(*KIND_KEYS.values()), required=False),
        base_dir=base_dir,
        env=env,
    )
    db = section(root, "database", {"url", "busy_timeout_ms"})
    schedule = section(root, "schedule", {"interval_seconds", "cron", "misfire_grace_seconds"})
    sim = section(
        root, "simulation", {"n_samples", "seed", "drift"}, required=source.kind == "simulator"
    )
    thresholds = section(
        root,
        "thresholds",
        {"dir", "gap", "alpha", "min_group_size", "min_group_share", "shortfall"},
    )
    keys = section(root, "keys", {"dir"})
    alerts = section(
        root, "alerts", {"echo_plaintext", "close_after", "notify_inconclusive"}, required=False
    )
    measurement = section(
        root,
        "measurement",
        {
            "protected_attributes",
            "bands",
            "reference",
            "privileged_value",
            "unprivileged_value",
            "label",
            "confidence",
            "score",
            "score_bins",
        },
        required=False,
    )
    cusum = section(
        root, "drift_detection", {"baseline_readings", "slack", "threshold"}, required=False
    )
    backup = section(root, "backup", {"dir", "interval_hours", "keep"}, required=False)
    keep = section(
        root, "retention", {"readings_days", "runs_days", "audit_days", "daily"}, required=False
    )
    logging_ = section(root, "logging", {"level"}, required=False)
    audit = section(
        root, "audit", {"checkpoint_every", "checkpoint_seconds", "anchor_file"}, required=False
    )
    lead = section(root, "leadership", {"lease_seconds"}, required=False)
    daemon = section(root, "daemon", {"workers"}, required=False)
    metrics = section(root, "metrics", {"port", "address"}, required=False)
    schedule_settings = parse_schedule(schedule)
    database = parse_database(db, base_dir=base_dir, env=env)
    logging_settings = parse_logging(logging_)
    return Settings(
        database=database,
        schedule=schedule_settings,
        simulation=None if source.kind != "simulator" else parse_simulation(sim),
        source=source,
        thresholds=parse_thresholds(thresholds),
        keys=parse_keys(keys, base_dir=base_dir, env=env),
        alerts=parse_alerts(alerts),
        measurement=parse_measurement(measurement, source),
        backup=parse_backup(backup, base_dir=base_dir),
        retention=parse_retention(keep),
        drift_detection=parse_drift_detection(cusum),
        logging=logging_settings,
        leadership=parse_leadership(lead, interval=schedule_settings.interval_seconds),
        audit=parse_audit(audit, base_dir=base_dir),
        daemon=parse_daemon(daemon),
        notify=parse_notify(root.get("notify"), base_dir=base_dir, env=env),
        metrics=parse_metrics(metrics),
    )
