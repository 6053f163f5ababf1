"""The daemon's service-wide jobs: the trail's self-check, retention, backups, checkpoints,
and the outbox's delivery (issue 20).

simulate → measure → detect → **log**, kept. These jobs belong to the service, not to a
monitor: each is one scheduler job however many monitors run, on executors of their own
(``service``, and ``verifier`` for the trail's walk) so they never hold a cycle's worker,
and each runs only on the daemon holding the service lease (``store.lease``; on SQLite the
one daemon). The outbox is delivered by a thread of its own instead
(``ops.notify.courier``), woken by the commit that wrote a notification. :class:`ServiceJobs`
is a base of :class:`~fairlens_monitor.ops.daemon.Daemon`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.audit.events import BACKUP_FAILED, BACKUP_MADE
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops.audit_trail import write_checkpoint
from fairlens_monitor.ops.backup import (
    backup_payload,
    backup_sqlite,
    prune_backups,
    scheduled_name,
)
from fairlens_monitor.ops.chainwatch import VERIFY_MINUTES, ChainCheck
from fairlens_monitor.ops.cycle import Clock, error_text
from fairlens_monitor.ops.notify.courier import Courier
from fairlens_monitor.ops.retention import apply_retention
from fairlens_monitor.ops.runner import checkpoint_failed
from fairlens_monitor.security.crypto import AlertCipher
from fairlens_monitor.store.db import sqlite_path
from fairlens_monitor.store.lease import Lease
from fairlens_monitor.store.repository import Repository

log = logging.getLogger("fairlens_monitor.ops.daemon")


class ServiceJobs:
    """The service's jobs of a daemon (a base of ``Daemon``)."""

    settings: Settings
    repo: Repository
    signer: Ed25519PrivateKey
    lease: Lease
    clock: Clock
    emit: Callable[[str], None]
    scheduler: BlockingScheduler
    chain_check: ChainCheck
    cipher: AlertCipher
    courier: Courier | None = None

    def _add_service_jobs(self) -> None:
        self.scheduler.add_job(
            self._chain_check,
            IntervalTrigger(minutes=VERIFY_MINUTES, timezone=UTC),
            id="verify",
            executor="verifier",
        )
        if self.settings.retention.daily:
            self.scheduler.add_job(
                self._retention,
                IntervalTrigger(days=1, timezone=UTC),
                id="retention",
                executor="service",
            )
        if self.settings.backup is not None and sqlite_path(self.settings.database.url):
            every = IntervalTrigger(hours=self.settings.backup.interval_hours, timezone=UTC)
            self.scheduler.add_job(self._backup, every, id="backup", executor="service")
        elif self.settings.backup is not None:
            self.emit(
                "scheduled backups copy SQLite files; back PostgreSQL up with pg_dump "
                "(the backup section is ignored here)"
            )

    def _start_courier(self) -> None:
        """Start the outbox's thread (``ops.notify.courier``; issue 20) when there are
        channels: as the scheduler starts, after ``daemon_started`` is on the chain."""
        if self.settings.notify.channels and self.courier is None:
            self.courier = Courier(
                self.repo.engine,
                self.settings.notify,
                clock=self.clock,
                cipher=self.cipher,
                leading=lambda: self.lease.leading,
            ).start()

    def _stop_courier(self) -> None:
        """End the outbox's thread once the messages on their way settle (idempotent)."""
        courier, self.courier = self.courier, None
        if courier is not None:
            courier.stop()

    def _chain_check(self) -> None:
        """The trail's self-check, by the service lease's holder only."""
        if self.lease.leading:
            self.chain_check.run()

    def _backup(self) -> None:
        """Scheduled backup (leader only): verified copy, audit event, keep the newest N."""
        plan = self.settings.backup
        if plan is None or not self.lease.leading:
            return
        try:
            made = backup_sqlite(
                self.settings.database.url,
                scheduled_name(plan.dir, self.clock()),
                anchor_file=self.settings.audit.anchor_file,
                public_key=self.settings.keys.public_key,
                busy_timeout_ms=self.settings.database.busy_timeout_ms,
            )
        except Exception as exc:
            self.emit(f"✗ scheduled backup failed: {error_text(exc)}")
            self._event(BACKUP_FAILED, {"error": error_text(exc)})
            return
        pruned = prune_backups(plan.dir, plan.keep)
        self._event(BACKUP_MADE, backup_payload(made, pruned))
        self.emit(f"backup {made.path.name}: chain head seq {made.head_seq}, verified")

    def _retention(self) -> None:
        """Daily retention (leader only); a failure is logged and tried again tomorrow."""
        if not self.lease.leading:
            return
        try:
            done = apply_retention(
                self.settings.retention, self.repo, self.signer, now=self.clock()
            )
        except Exception as exc:
            self.emit(f"✗ retention failed: {error_text(exc)}")
            return
        self.emit(
            f"retention: deleted {done['readings']} readings, {done['runs']} runs, "
            f"{done['audit_events']} audit events"
        )

    def _event(self, kind: str, payload: dict[str, Any]) -> None:
        try:
            self.repo.append_event(kind, "daemon", payload, ts=rfc3339(self.clock()))
        except Exception as exc:
            log.error("could not record %s: %s: %s", kind, type(exc).__name__, exc)

    def _checkpoint(self) -> None:
        """Sign and anchor the chain head (at stop; any daemon may: it adds no history)."""
        try:
            write_checkpoint(
                self.repo,
                self.signer,
                anchor_file=self.settings.audit.anchor_file,
                ts=rfc3339(self.clock()),
            )
        except Exception as exc:  # the next due checkpoint covers these events too
            checkpoint_failed(exc)
