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
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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
    __table_args__ = (CheckConstraint("status IN ('ok', 'failed')", name="status"),)

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


class Reading(Base):
    """One measured scenario of one run, with everything needed to reproduce it."""

    __tablename__ = "readings"
    __table_args__ = (
        UniqueConstraint("run_id", "scenario"),
        CheckConstraint("scenario IN ('reference', 'monitored')", name="scenario"),
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
    unprivileged_group: Mapped[str] = mapped_column(String(64))
    privileged_group: Mapped[str] = mapped_column(String(64))
    unprivileged_count: Mapped[int] = mapped_column(Integer)
    unprivileged_approved: Mapped[int] = mapped_column(Integer)
    privileged_count: Mapped[int] = mapped_column(Integer)
    privileged_approved: Mapped[int] = mapped_column(Integer)
    unprivileged_rate: Mapped[float] = mapped_column(Float)
    privileged_rate: Mapped[float] = mapped_column(Float)
    dir: Mapped[float | None] = mapped_column(Float)
    dir_reason: Mapped[str | None] = mapped_column(String(32))
    gap: Mapped[float] = mapped_column(Float)
    dir_threshold: Mapped[float] = mapped_column(Float)
    gap_threshold: Mapped[float] = mapped_column(Float)
    dir_alert: Mapped[bool] = mapped_column(Boolean)
    gap_alert: Mapped[bool] = mapped_column(Boolean)
    config_hash: Mapped[str] = mapped_column(String(64))
    code_version: Mapped[str] = mapped_column(String(32))


class Alert(Base):
    """A raised alert. The explanation exists here only as a Fernet token."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint("state IN ('open', 'acknowledged', 'resolved')", name="state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    reading_id: Mapped[int] = mapped_column(ForeignKey("readings.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    dir: Mapped[float | None] = mapped_column(Float)
    token: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))


class AuditEvent(Base):
    """One link of the hash chain (see ``fairlens_monitor.audit``)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    ts: Mapped[str] = mapped_column(String(32))
    event_type: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    canonical: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class CheckpointRow(Base):
    """A signed chain head (see ``fairlens_monitor.checkpoints``); also in the anchor file."""

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, index=True)
    head_hash: Mapped[str] = mapped_column(String(64))
    ts: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))
