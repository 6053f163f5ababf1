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

from fairlens_monitor.config.checks import (
    MAX_COUNT,
    boolean,
    drift_schedule,
    mapping,
    number,
    open_unit,
    reject_unknown,
    resolve_db_url,
    resolve_path,
    section,
    shown,
    string,
    writable_place,
)
from fairlens_monitor.config.detection import CusumSettings
from fairlens_monitor.config.measurement import MeasurementSettings, parse_measurement
from fairlens_monitor.config.reader import read_document
from fairlens_monitor.config.sections import (
    AlertSettings,
    AuditSettings,
    BackupSettings,
    DatabaseSettings,
    KeySettings,
    LeadershipSettings,
    LoggingSettings,
    RetentionSettings,
    ScheduleSettings,
    SimulationSettings,
    ThresholdSettings,
)
from fairlens_monitor.config.source import KIND_KEYS, SourceSettings, parse_source
from fairlens_monitor.errors import ConfigError

if TYPE_CHECKING:
    from fairlens_monitor.fairness.groups import GroupSpec

ENV_DB_URL = "FAIRLENS_DB_URL"
ENV_KEY_DIR = "FAIRLENS_KEY_DIR"
MAX_SEED = 2**32 - 1
MAX_SHORTFALL = 1e12  # approvals; anything larger is a typo, not a rule
# Bounds of the other numbers (docs/CONFIG.md): beyond them a value is a typo, and it would
# overflow a timer or the canonical JSON of the config hash (integers up to 2**53).
MIN_SECONDS, MAX_SECONDS = 0.01, 366 * 86400.0  # schedule timers: 10 ms to a year
MAX_SAMPLES = 10_000_000  # simulated decisions per cycle (held in memory)
MAX_DAYS = 36_600.0  # retention: a century
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
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
            "schedule": asdict(self.schedule),
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
    try:  # hashed before anything is created, so an unhashable value stops here
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
    schedule = section(root, "schedule", {"interval_seconds", "misfire_grace_seconds"})
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
    interval = number(
        schedule, "schedule.interval_seconds", minimum=MIN_SECONDS, maximum=MAX_SECONDS
    )

    db_url = env.get(ENV_DB_URL) or string(db, "database.url")
    db_base = Path.cwd() if env.get(ENV_DB_URL) else base_dir
    key_dir_text = env.get(ENV_KEY_DIR) or string(keys, "keys.dir")
    key_base = Path.cwd() if env.get(ENV_KEY_DIR) else base_dir

    level = string(logging_, "logging.level", default="INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(
            "logging.level", f"expected one of {', '.join(LOG_LEVELS)}, got {shown(level)}"
        )
    return Settings(
        database=DatabaseSettings(
            url=resolve_db_url(db_url, db_base),
            busy_timeout_ms=int(
                number(
                    db,
                    "database.busy_timeout_ms",
                    default=5000,
                    integer=True,
                    minimum=0,
                    maximum=3_600_000,
                )
            ),
        ),
        schedule=ScheduleSettings(
            interval_seconds=interval,
            misfire_grace_seconds=number(
                schedule,
                "schedule.misfire_grace_seconds",
                default=30.0,
                minimum=MIN_SECONDS,
                maximum=MAX_SECONDS,
            ),
        ),
        simulation=None
        if source.kind != "simulator"
        else SimulationSettings(
            n_samples=int(
                number(sim, "simulation.n_samples", integer=True, minimum=1, maximum=MAX_SAMPLES)
            ),
            seed=int(number(sim, "simulation.seed", integer=True, minimum=0, maximum=MAX_SEED)),
            drift=drift_schedule(sim.get("drift"), "simulation.drift"),
        ),
        source=source,
        thresholds=ThresholdSettings(
            dir=number(thresholds, "thresholds.dir", positive=True, maximum=1e6),
            gap=number(thresholds, "thresholds.gap", positive=True, maximum=1.0),
            alpha=open_unit(thresholds, "thresholds.alpha", default=0.05),
            min_group_size=int(
                number(
                    thresholds,
                    "thresholds.min_group_size",
                    default=30,
                    integer=True,
                    minimum=1,
                    maximum=MAX_COUNT,
                )
            ),
            min_group_share=number(
                thresholds, "thresholds.min_group_share", default=0.02, minimum=0, maximum=0.5
            ),
            shortfall=(
                None
                if thresholds.get("shortfall") is None
                else number(
                    thresholds, "thresholds.shortfall", positive=True, maximum=MAX_SHORTFALL
                )
            ),
        ),
        keys=KeySettings(dir=writable_place(resolve_path(key_dir_text, key_base), "keys.dir")),
        alerts=AlertSettings(
            echo_plaintext=boolean(alerts, "alerts.echo_plaintext", default=False),
            close_after=int(
                number(
                    alerts,
                    "alerts.close_after",
                    default=3,
                    integer=True,
                    minimum=1,
                    maximum=MAX_COUNT,
                )
            ),
            notify_inconclusive=boolean(alerts, "alerts.notify_inconclusive", default=False),
        ),
        measurement=parse_measurement(measurement, source),
        backup=None
        if not backup
        else BackupSettings(
            dir=writable_place(resolve_path(string(backup, "backup.dir"), base_dir), "backup.dir"),
            interval_hours=number(
                backup,
                "backup.interval_hours",
                default=24.0,
                positive=True,
                maximum=MAX_SECONDS / 3600,
            ),
            keep=int(
                number(backup, "backup.keep", default=7, integer=True, minimum=1, maximum=100_000)
            ),
        ),
        retention=RetentionSettings(
            readings_days=number(
                keep, "retention.readings_days", default=760.0, positive=True, maximum=MAX_DAYS
            ),
            runs_days=number(
                keep, "retention.runs_days", default=760.0, positive=True, maximum=MAX_DAYS
            ),
            audit_days=number(
                keep, "retention.audit_days", default=760.0, minimum=183, maximum=MAX_DAYS
            ),
            daily=boolean(keep, "retention.daily", default=True),
        ),
        drift_detection=CusumSettings(
            baseline_readings=int(
                number(
                    cusum,
                    "drift_detection.baseline_readings",
                    default=30,
                    integer=True,
                    minimum=2,
                    maximum=100_000,
                )
            ),
            slack=number(cusum, "drift_detection.slack", default=0.75, minimum=0, maximum=1e6),
            threshold=number(
                cusum, "drift_detection.threshold", default=8.0, positive=True, maximum=1e6
            ),
        ),
        logging=LoggingSettings(level=level),
        leadership=LeadershipSettings(
            lease_seconds=number(
                lead,
                "leadership.lease_seconds",
                default=min(86400.0, max(5.0, 3 * interval)),
                minimum=1,
                maximum=86400,
            )
        ),
        audit=AuditSettings(
            checkpoint_every=int(
                number(
                    audit,
                    "audit.checkpoint_every",
                    default=50,
                    integer=True,
                    minimum=1,
                    maximum=MAX_COUNT,
                )
            ),
            anchor_file=writable_place(
                resolve_path(
                    string(audit, "audit.anchor_file", default="var/anchor.jsonl"), base_dir
                ),
                "audit.anchor_file",
            ),
            checkpoint_seconds=number(
                audit, "audit.checkpoint_seconds", default=60.0, positive=True, maximum=MAX_SECONDS
            ),
        ),
    )
