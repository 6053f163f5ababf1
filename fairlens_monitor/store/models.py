"""SQLAlchemy 2 models of the monitor's database: the shape of what the **log** step keeps.

The schema itself is owned by Alembic (``migrations/``); these models must match it, and
``alembic check`` in the test suite proves they do. Nothing per applicant is stored: only
counts, rates and metrics, an encrypted token per alert, and the hash-chained audit trail.
Times are UTC; SQLite keeps them as ``YYYY-MM-DD HH:MM:SS.ffffff`` text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DEFAULT_MONITOR = "default"  # the monitor of every row stored before revision 0015

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that only accepts aware datetimes and always comes back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Run(Base):
    """One scheduled or manual cycle: when it ran and how it ended."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint("status IN ('ok', 'failed')", name="status"),
        # a cycle's position: its monitor's newest ok run, one step down this index
        Index("ix_runs_monitor_status_id", "monitor", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cycle_index: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(32))
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    config_hash: Mapped[str] = mapped_column(String(64))
    code_version: Mapped[str] = mapped_column(String(32))
    # the monitor the row belongs to (revision 0015; rows stored before it are 'default')
    monitor: Mapped[str] = mapped_column(String(64), server_default=DEFAULT_MONITOR)


class Reading(Base):
    """One measured scenario of one run, with everything needed to reproduce it."""

    __tablename__ = "readings"
    __table_args__ = (
        UniqueConstraint("run_id", "scenario"),
        CheckConstraint("scenario IN ('reference', 'monitored')", name="scenario"),
        # a monitor's readings in id order: drift history, latest readings, the inventory
        Index("ix_readings_monitor_id", "monitor", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    scenario: Mapped[str] = mapped_column(String(16))
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    source: Mapped[str] = mapped_column(String(32))
    drift_level: Mapped[float | None] = mapped_column(Float)
    n_samples: Mapped[int | None] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    protected_attribute: Mapped[str] = mapped_column(String(64))
    # The headline group against the reference group (named ``unprivileged_*`` and
    # ``privileged_*`` before revision 0012; the auditor views show both names).
    group_label: Mapped[str] = mapped_column(String(64))
    reference_label: Mapped[str] = mapped_column(String(64))
    group_applicants: Mapped[int] = mapped_column(Integer)
    group_approved: Mapped[int] = mapped_column(Integer)
    reference_applicants: Mapped[int] = mapped_column(Integer)
    reference_approved: Mapped[int] = mapped_column(Integer)
    # NULL only on a ``no_data`` reading (an empty window; revision 0008).
    group_rate: Mapped[float | None] = mapped_column(Float)
    reference_rate: Mapped[float | None] = mapped_column(Float)
    dir: Mapped[float | None] = mapped_column(Float)
    dir_reason: Mapped[str | None] = mapped_column(String(32))
    gap: Mapped[float | None] = mapped_column(Float)
    dir_threshold: Mapped[float] = mapped_column(Float)
    gap_threshold: Mapped[float] = mapped_column(Float)
    dir_alert: Mapped[bool] = mapped_column(Boolean)
    gap_alert: Mapped[bool] = mapped_column(Boolean)
    config_hash: Mapped[str] = mapped_column(String(64))
    code_version: Mapped[str] = mapped_column(String(32))
    # Statistics and verdict (revision 0005; NULL on readings recorded before it).
    verdict: Mapped[str | None] = mapped_column(String(16), index=True)
    verdict_reason: Mapped[str | None] = mapped_column(Text)
    p_value: Mapped[float | None] = mapped_column(Float)
    p_adjusted: Mapped[float | None] = mapped_column(Float)
    test: Mapped[str | None] = mapped_column(String(8))
    dir_ci_low: Mapped[float | None] = mapped_column(Float)
    dir_ci_high: Mapped[float | None] = mapped_column(Float)
    shortfall: Mapped[float | None] = mapped_column(Float)
    alpha: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    min_group_size: Mapped[int | None] = mapped_column(Integer)
    min_group_share: Mapped[float | None] = mapped_column(Float)
    reference_mode: Mapped[str | None] = mapped_column(String(16))
    groups_compared: Mapped[int | None] = mapped_column(Integer)
    groups_excluded: Mapped[int | None] = mapped_column(Integer)
    label_column: Mapped[str | None] = mapped_column(String(64))
    dp_difference: Mapped[float | None] = mapped_column(Float)
    dp_ratio: Mapped[float | None] = mapped_column(Float)
    eop_difference: Mapped[float | None] = mapped_column(Float)
    eodds_difference: Mapped[float | None] = mapped_column(Float)
    eodds_ratio: Mapped[float | None] = mapped_column(Float)
    drift_statistic: Mapped[float | None] = mapped_column(Float)
    drift_alert: Mapped[bool | None] = mapped_column(Boolean)
    risk_level: Mapped[str | None] = mapped_column(String(8))  # revision 0007
    # Where the decisions came from (revision 0008): the window measured and the lineage
    # (source kind, query or file pattern, counts digest); NULL for simulated readings.
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lineage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # the monitor the row belongs to (revision 0015; rows stored before it are 'default')
    monitor: Mapped[str] = mapped_column(String(64), server_default=DEFAULT_MONITOR)


class SourceFile(Base):
    """One decision file read for a reading: its path, size, modification time and SHA-256.

    The newest row per path is what a ``new_files`` window compares against; retention
    keeps it (with ``reading_id`` set to NULL) after the reading itself expires.
    """

    __tablename__ = "source_files"
    # a monitor's newest record of each file (what a ``new_files`` window compares with)
    __table_args__ = (Index("ix_source_files_monitor_path_id", "monitor", "path", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reading_id: Mapped[int | None] = mapped_column(ForeignKey("readings.id"), index=True)
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    path: Mapped[str] = mapped_column(String(1024), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    decisions: Mapped[int] = mapped_column(BigInteger)
    # the monitor the row belongs to (revision 0015; rows stored before it are 'default')
    monitor: Mapped[str] = mapped_column(String(64), server_default=DEFAULT_MONITOR)


class GroupResult(Base):
    """One group of one reading: its counts and its comparison with the reference group."""

    __tablename__ = "group_results"
    __table_args__ = (
        UniqueConstraint("reading_id", "label"),
        CheckConstraint("role IN ('reference', 'compared', 'excluded')", name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reading_id: Mapped[int] = mapped_column(ForeignKey("readings.id"), index=True)
    label: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    applicants: Mapped[int] = mapped_column(Integer)
    approved: Mapped[int] = mapped_column(Integer)
    rate: Mapped[float] = mapped_column(Float)
    share: Mapped[float] = mapped_column(Float)
    impact_ratio: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    p_adjusted: Mapped[float | None] = mapped_column(Float)
    test: Mapped[str | None] = mapped_column(String(8))
    shortfall: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[str | None] = mapped_column(String(16))
    # the monitor the row belongs to (revision 0015; rows stored before it are 'default')
    monitor: Mapped[str] = mapped_column(String(64), server_default=DEFAULT_MONITOR)


class Alert(Base):
    """One alert episode. The explanation exists here only as a Fernet token.

    An episode opens on the reading that raised it (``reading_id``), stays open or
    acknowledged while later readings still qualify (``last_reading_id``), and is resolved
    after ``close_after`` consecutive readings that do not (``clean_streak`` counts them).
    """

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("reading_id", "kind"),
        CheckConstraint("state IN ('open', 'acknowledged', 'resolved')", name="state"),
        CheckConstraint("kind IN ('dir', 'drift')", name="kind"),
        # a monitor's open episodes
        Index("ix_alerts_monitor_state", "monitor", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    reading_id: Mapped[int] = mapped_column(ForeignKey("readings.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    dir: Mapped[float | None] = mapped_column(Float)
    token: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    verdict: Mapped[str | None] = mapped_column(String(16))
    last_reading_id: Mapped[int | None] = mapped_column(Integer)
    clean_streak: Mapped[int] = mapped_column(Integer, server_default="0")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the monitor the row belongs to (revision 0015; rows stored before it are 'default')
    monitor: Mapped[str] = mapped_column(String(64), server_default=DEFAULT_MONITOR)


class ReadingRollup(Base):
    """One monitor's readings of one scenario within one UTC hour, summed (revision 0014).

    Upserted by every cycle in its own transaction (``store.rollup``), so the trend page reads
    a year as ~9,000 rows per scenario instead of its readings. Sums and counts, not means,
    so buckets combine exactly: the mean DIR of any span is ``sum(dir_sum) / sum(dir_n)``.
    ``bucket`` is the hour since 1970-01-01 UTC (``floor(epoch seconds / 3600)``) of the
    readings' ``measured_at``. Covered by the audit chain like the alerts: the newest event
    naming a row records its digest after the update.
    """

    __tablename__ = "reading_rollups"
    # bucket before scenario: a cycle's lookup and the page's range read are both
    # ``monitor = ? AND bucket …``, answered by this index alone
    __table_args__ = (UniqueConstraint("monitor", "bucket", "scenario"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    monitor: Mapped[str] = mapped_column(String(64), server_default=DEFAULT_MONITOR)
    scenario: Mapped[str] = mapped_column(String(16))
    bucket: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_reading_id: Mapped[int] = mapped_column(Integer)
    last_reading_id: Mapped[int] = mapped_column(Integer)
    readings: Mapped[int] = mapped_column(Integer)
    dir_n: Mapped[int] = mapped_column(Integer)  # readings with a DIR (not NULL)
    dir_sum: Mapped[float] = mapped_column(Float)
    dir_min: Mapped[float | None] = mapped_column(Float)
    dir_max: Mapped[float | None] = mapped_column(Float)
    gap_n: Mapped[int] = mapped_column(Integer)
    gap_sum: Mapped[float] = mapped_column(Float)
    gap_min: Mapped[float | None] = mapped_column(Float)
    gap_max: Mapped[float | None] = mapped_column(Float)
    drift_max: Mapped[float | None] = mapped_column(Float)
    group_approved: Mapped[int] = mapped_column(BigInteger)
    group_applicants: Mapped[int] = mapped_column(BigInteger)
    reference_approved: Mapped[int] = mapped_column(BigInteger)
    reference_applicants: Mapped[int] = mapped_column(BigInteger)
    verdict_ok: Mapped[int] = mapped_column(Integer)
    verdict_adverse: Mapped[int] = mapped_column(Integer)
    verdict_inconclusive: Mapped[int] = mapped_column(Integer)
    verdict_no_data: Mapped[int] = mapped_column(Integer)
    # adverse readings, and before verdicts existed (verdict NULL) readings below the
    # DIR threshold: the page's red marks
    alerts: Mapped[int] = mapped_column(Integer)
    dir_alerts: Mapped[int] = mapped_column(Integer)
    gap_alerts: Mapped[int] = mapped_column(Integer)
    drift_alerts: Mapped[int] = mapped_column(Integer)


class Monitor(Base):
    """One monitor of the portfolio (revision 0015): a named decision stream, its state and
    the expected gap between its runs (see ``store.monitors``).

    ``name`` is what every other table's ``monitor`` column holds; ``id`` is the integer key
    its row digest is recorded under (``rowforms``), like every other digested table's.
    """

    __tablename__ = "monitors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused: Mapped[bool] = mapped_column(Boolean, server_default=false())
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_by: Mapped[str | None] = mapped_column(String(64))
    # as configured ("every 60s", "cron 0 6 * * *"); the expected gap between runs in seconds
    schedule: Mapped[str | None] = mapped_column(String(128))
    interval_seconds: Mapped[float | None] = mapped_column(Float)
    config_hash: Mapped[str | None] = mapped_column(String(64))


class AuditEvent(Base):
    """One link of the hash chain (see ``fairlens_monitor.audit.chain``)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    ts: Mapped[str] = mapped_column(String(32))
    event_type: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    # The hashed bytes, the only stored copy of the payload (migration 0013): on SQLite a
    # VIRTUAL generated column ``payload`` cuts it out for SQL readers (not mapped here).
    canonical: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditPayloadEdit(Base):
    """A payload column that differed from its hashed bytes when 0013 dropped it (evidence)."""

    __tablename__ = "audit_payload_edits"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    payload: Mapped[str | None] = mapped_column(Text, nullable=True)


class CheckpointRow(Base):
    """A signed chain head (see ``fairlens_monitor.audit.checkpoints``); also in the anchor file."""

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, index=True)
    head_hash: Mapped[str] = mapped_column(String(64))
    ts: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))
    # digest of the checkpoint signed before (revision 0010); NULL on older rows
    prev: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Leadership(Base):
    """The daemons' leadership lease on a shared database (one row; see ``store.lease``)."""

    __tablename__ = "leadership"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MonitorLease(Base):
    """A monitor's lease on a shared database (one row per monitor; ``store.monitor_lease``)."""

    __tablename__ = "monitor_leases"

    monitor: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DaemonRegistration(Base):
    """A live daemon of a shared database (renewed with its leases; balancing)."""

    __tablename__ = "daemon_registry"

    holder: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
