"""Section parsers: each validates one section of ``config.yaml`` into its frozen dataclass.

Configuration, the boundary before any cycle runs (``config.settings.parse_settings`` calls
them in turn). Every parser takes the section's mapping, already checked for unknown keys,
and raises :class:`~fairlens_monitor.errors.ConfigError` naming the key and what it expects.
The bounds below are documented in docs/CONFIGURATION.md: beyond them a value is a typo, and
it would overflow a timer or the canonical JSON of the config hash (integers up to 2**53).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fairlens_monitor.config.checks import (
    MAX_COUNT,
    boolean,
    drift_schedule,
    number,
    open_unit,
    resolve_db_url,
    resolve_path,
    shown,
    string,
    writable_place,
)
from fairlens_monitor.config.cron import parse_cron
from fairlens_monitor.config.detection import CusumSettings
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
from fairlens_monitor.errors import ConfigError

ENV_DB_URL = "FAIRLENS_DB_URL"
ENV_KEY_DIR = "FAIRLENS_KEY_DIR"
MAX_SEED = 2**32 - 1
MAX_SHORTFALL = 1e12  # approvals; anything larger is a typo, not a rule
MIN_SECONDS, MAX_SECONDS = 0.01, 366 * 86400.0  # schedule timers: 10 ms to a year
MAX_SAMPLES = 10_000_000  # simulated decisions per cycle (held in memory)
MAX_DAYS = 36_600.0  # retention: a century
MAX_WORKERS = 64  # cycles at once in one daemon; more threads than this only contend
CRON_LEASE_BASIS = 10.0  # a cron monitor's lease default: as for a 10 s interval (30 s)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def parse_database(
    db: Mapping[str, Any], *, base_dir: Path, env: Mapping[str, str]
) -> DatabaseSettings:
    """``database``: the URL (``FAIRLENS_DB_URL`` wins, relative to the working directory)."""
    url = env.get(ENV_DB_URL) or string(db, "database.url")
    base = Path.cwd() if env.get(ENV_DB_URL) else base_dir
    return DatabaseSettings(
        url=resolve_db_url(url, base),
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
    )


def parse_schedule(schedule: Mapping[str, Any]) -> ScheduleSettings:
    """``schedule``: every ``interval_seconds`` or at the fires of ``cron`` (exactly one),
    and how late a fire may still run."""
    has_interval = schedule.get("interval_seconds") is not None
    has_cron = schedule.get("cron") is not None
    if has_interval == has_cron:
        raise ConfigError(
            "schedule.cron" if has_cron else "schedule.interval_seconds",
            "set exactly one of schedule.interval_seconds (seconds between cycles) and "
            "schedule.cron (a 5-field cron expression in UTC); a monitor that sets cron over "
            "a shared interval_seconds sets interval_seconds: null",
        )
    return ScheduleSettings(
        interval_seconds=number(
            schedule, "schedule.interval_seconds", minimum=MIN_SECONDS, maximum=MAX_SECONDS
        )
        if has_interval
        else None,
        misfire_grace_seconds=number(
            schedule,
            "schedule.misfire_grace_seconds",
            default=30.0,
            minimum=MIN_SECONDS,
            maximum=MAX_SECONDS,
        ),
        cron=parse_cron(schedule["cron"], "schedule.cron") if has_cron else None,
    )


def parse_daemon(daemon: Mapping[str, Any]) -> DaemonSettings:
    """``daemon`` (service-wide): the worker threads that run monitors' cycles at once."""
    return DaemonSettings(
        workers=int(
            number(
                daemon,
                "daemon.workers",
                default=4,
                integer=True,
                minimum=1,
                maximum=MAX_WORKERS,
            )
        )
    )


def parse_metrics(metrics: Mapping[str, Any]) -> MetricsSettings:
    """``metrics`` (service-wide): the port of ``/metrics`` and ``/healthz`` (none: off) and
    the address it binds (an IP address; 127.0.0.1 unless set)."""
    port = metrics.get("port")
    address = string(metrics, "metrics.address", default="127.0.0.1").strip()
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ConfigError(
            "metrics.address",
            f"expected an IP address to bind (e.g. 127.0.0.1, or 0.0.0.0 for every "
            f"interface), got {shown(address)}",
        ) from None
    return MetricsSettings(
        port=None
        if port is None
        else int(number(metrics, "metrics.port", integer=True, minimum=1, maximum=65535)),
        address=address,
    )


def parse_simulation(sim: Mapping[str, Any]) -> SimulationSettings:
    """``simulation``: applicants per scenario, base seed and the drift schedule."""
    return SimulationSettings(
        n_samples=int(
            number(sim, "simulation.n_samples", integer=True, minimum=1, maximum=MAX_SAMPLES)
        ),
        seed=int(number(sim, "simulation.seed", integer=True, minimum=0, maximum=MAX_SEED)),
        drift=drift_schedule(sim.get("drift"), "simulation.drift"),
    )


def parse_thresholds(thresholds: Mapping[str, Any]) -> ThresholdSettings:
    """``thresholds``: the DIR and gap lines, significance and the minimum group sizes."""
    return ThresholdSettings(
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
            else number(thresholds, "thresholds.shortfall", positive=True, maximum=MAX_SHORTFALL)
        ),
    )


def parse_keys(keys: Mapping[str, Any], *, base_dir: Path, env: Mapping[str, str]) -> KeySettings:
    """``keys``: the key folder (``FAIRLENS_KEY_DIR`` wins, relative to the working directory)."""
    text = env.get(ENV_KEY_DIR) or string(keys, "keys.dir")
    base = Path.cwd() if env.get(ENV_KEY_DIR) else base_dir
    return KeySettings(dir=writable_place(resolve_path(text, base), "keys.dir"))


def parse_alerts(alerts: Mapping[str, Any]) -> AlertSettings:
    """``alerts``: echoing the explanation, closing episodes, inconclusive readings."""
    return AlertSettings(
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
    )


def parse_backup(backup: Mapping[str, Any], *, base_dir: Path) -> BackupSettings | None:
    """``backup``: None when the section is absent or empty (no scheduled backups)."""
    if not backup:
        return None
    return BackupSettings(
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
    )


def parse_retention(keep: Mapping[str, Any]) -> RetentionSettings:
    """``retention``: how many days of readings, runs and audit events are kept."""
    return RetentionSettings(
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
    )


def parse_drift_detection(cusum: Mapping[str, Any]) -> CusumSettings:
    """``drift_detection``: the CUSUM chart's baseline length, slack and threshold."""
    return CusumSettings(
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
    )


def parse_logging(logging_: Mapping[str, Any]) -> LoggingSettings:
    """``logging``: the level, one of :data:`LOG_LEVELS` (any case)."""
    level = string(logging_, "logging.level", default="INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(
            "logging.level", f"expected one of {', '.join(LOG_LEVELS)}, got {shown(level)}"
        )
    return LoggingSettings(level=level)


def parse_leadership(lead: Mapping[str, Any], *, interval: float | None) -> LeadershipSettings:
    """``leadership``: the lease, by default 3 × the interval, at least 5 s, at most a day
    (a cron schedule: 30 s, since its fires may be a day apart)."""
    basis = CRON_LEASE_BASIS if interval is None else interval
    return LeadershipSettings(
        lease_seconds=number(
            lead,
            "leadership.lease_seconds",
            default=min(86400.0, max(5.0, 3 * basis)),
            minimum=1,
            maximum=86400,
        )
    )


def parse_audit(audit: Mapping[str, Any], *, base_dir: Path) -> AuditSettings:
    """``audit``: when checkpoints are signed and where the anchor file lives."""
    return AuditSettings(
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
            resolve_path(string(audit, "audit.anchor_file", default="var/anchor.jsonl"), base_dir),
            "audit.anchor_file",
        ),
        checkpoint_seconds=number(
            audit, "audit.checkpoint_seconds", default=60.0, positive=True, maximum=MAX_SECONDS
        ),
    )
