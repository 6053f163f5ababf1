"""The sections of the settings: one small frozen dataclass per config section.

The config boundary (:func:`fairlens_monitor.config.settings.parse_settings`) fills them from
the validated file; everything below reads them. Defaults and limits live with the parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fairlens_monitor.config.simulation import DriftSchedule
from fairlens_monitor.security.crypto import PUBLIC_KEY_FILE


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
    """When a monitor runs: every ``interval_seconds``, or at the fires of ``cron`` (UTC)."""

    interval_seconds: float | None
    misfire_grace_seconds: float
    cron: str | None = None  # exactly one of interval_seconds and cron is set

    def describe(self) -> str:
        """The schedule in words: ``every 60s`` or ``cron 0 6 * * *``."""
        if self.cron is not None:
            return f"cron {self.cron}"
        return f"every {self.interval_seconds:g}s"

    @property
    def expected_gap_seconds(self) -> float:
        """The longest expected gap between two runs (the interval, or the cron's longest):
        what the inventory's staleness allows (``store.monitors``)."""
        if self.interval_seconds is not None:
            return self.interval_seconds
        from fairlens_monitor.config.cron import longest_gap  # deferred: the scheduler

        return longest_gap(self.cron or "")


@dataclass(frozen=True)
class DaemonSettings:
    """The daemon process (service-wide): how many monitors' cycles may run at once."""

    workers: int = 4


@dataclass(frozen=True)
class MetricsSettings:
    """The daemon's Prometheus endpoint (service-wide): off unless ``port`` is set."""

    port: int | None = None
    address: str = "127.0.0.1"


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

    @property
    def public_key(self) -> Path:
        """The checkpoint public key file in the key folder: the one place its path is made."""
        return self.dir / PUBLIC_KEY_FILE


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
