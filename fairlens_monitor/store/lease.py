"""Leadership of several daemons on one PostgreSQL database: a lease with a fencing epoch.

Sits between the daemon (which asks "do I lead?" at each fire and from a heartbeat thread)
and the store (whose write transactions it fences). The ``leadership`` table holds one row:
the leader's ``holder`` name, an ``epoch`` and ``expires_at`` on the *server's* clock. The
leader renews the lease every third of ``leadership.lease_seconds``; a standby takes it over
once it has expired (a frozen or partitioned leader stops renewing) or was released by a
leader that stopped, incrementing the epoch. Every commit of a leading daemon first reads
the row ``FOR SHARE`` inside its own transaction and refuses to commit unless it still
holds that epoch (:class:`FencedError`), so an old leader that wakes between its check and
its commit cannot write: a takeover's ``UPDATE`` waits for an in-flight commit, or the
commit sees the new epoch. A daemon that has lost the lead stands down and says so.

With several monitors (issue 18) this lease covers the service's own duties (retention,
backups, the chain self-check, the stop checkpoint); each monitor's cycles are fenced by that
monitor's lease instead (``store.monitor_lease``), inside :func:`monitor_scope`.

On SQLite there is one daemon per file (``db.instance_lock``): :class:`Lease` then always
leads and fences nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker


class FencedError(Exception):
    """This daemon no longer holds the lease it led under; its write was refused."""


_SCOPE = threading.local()  # the monitor whose work this thread writes (None: the service's)


def current_monitor() -> str | None:
    """The monitor whose lease fences this thread's writes now (None: the service lease)."""
    value: str | None = getattr(_SCOPE, "monitor", None)
    return value


@contextlib.contextmanager
def monitor_scope(monitor: str | None) -> Iterator[None]:
    """Fence this thread's writes in the body by ``monitor``'s lease (``store.monitor_lease``)
    instead of the service lease; None returns to the service lease.

    Args:
        monitor: the monitor's name, or None.
    """
    before = current_monitor()
    _SCOPE.monitor = monitor
    try:
        yield
    finally:
        _SCOPE.monitor = before


@dataclass(frozen=True)
class Change:
    """What a :meth:`Lease.tick` changed: ``lead`` (took the lease) or ``lost``."""

    action: str  # "lead" | "lost"
    epoch: int
    reason: str
    previous_holder: str | None = None
    expired: bool = False  # taken from a leader that stopped renewing (not one that released)


class Lease:
    """This daemon's view of the lease; thread-safe (the heartbeat and the cycle share it)."""

    def __init__(self, engine: Engine, *, lease_seconds: float, holder: str) -> None:
        """Prepare the lease for ``engine`` under the name ``holder`` (nothing is read yet).

        Args:
            engine: the daemon's engine.
            lease_seconds: how long a renewal lasts.
            holder: this daemon's unique name (host, pid and a random part).
        """
        self.engine, self.lease_seconds, self.holder = engine, lease_seconds, holder
        self.server = engine.dialect.name == "postgresql"
        self.epoch: int | None = None if self.server else 0
        self._mutex = threading.Lock()
        self._bypass = threading.local()

    @property
    def leading(self) -> bool:
        """Whether this daemon holds the lease as far as it knows."""
        return self.epoch is not None

    def tick(self) -> Change | None:
        """Renew the lease when leading, or take it when it is free or expired.

        Returns:
            The change, or None when nothing changed (still leading, or still standing by).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the server could not be asked; nothing changed.
        """
        if not self.server:
            return None
        with self._mutex, self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "SELECT epoch, holder, expires_at, acquired_at, expires_at <= clock_timestamp()"
                    " FROM leadership WHERE id = 1 FOR UPDATE"
                )
            ).first()
            if row is not None and (int(row[0]), row[1]) == (self.epoch, self.holder):
                _set_expiry(conn, self.lease_seconds)
                return None
            if self.epoch is not None:  # we led, but the row names another epoch or holder
                lost, self.epoch = self.epoch, None
                return Change(
                    "lost", lost, f"another daemon holds epoch {row[0] if row else 0} now"
                )
            if row is not None and not row[4]:
                return None  # another daemon leads and its lease is live
            return self._take(conn, row)

    def _take(self, conn: Any, row: Any) -> Change | None:
        if row is None:
            inserted = conn.execute(
                text(
                    "INSERT INTO leadership (id, epoch, holder, acquired_at, expires_at) "
                    "VALUES (1, 1, :h, clock_timestamp(), clock_timestamp() + "
                    "make_interval(secs => :s)) ON CONFLICT (id) DO NOTHING"
                ),
                {"h": self.holder, "s": self.lease_seconds},
            ).rowcount
            if not inserted:  # another standby created it at the same moment
                return None
            self.epoch = 1
            return Change("lead", 1, "no daemon had led this database before")
        epoch, holder, expires_at, acquired_at = int(row[0]) + 1, row[1], row[2], row[3]
        conn.execute(
            text(
                "UPDATE leadership SET epoch = :e, holder = :h, acquired_at = clock_timestamp(), "
                "expires_at = clock_timestamp() + make_interval(secs => :s) WHERE id = 1"
            ),
            {"e": epoch, "h": self.holder, "s": self.lease_seconds},
        )
        self.epoch = epoch
        expired = expires_at > acquired_at
        reason = (
            f"the lease of the previous leader expired at {_iso(expires_at)} "
            "(it stopped renewing: frozen, partitioned or dead)"
            if expired
            else f"the previous leader released the lease when it stopped at {_iso(expires_at)}"
        )
        return Change("lead", epoch, reason, holder, expired)

    def release(self) -> None:
        """Give the lease up at once (a clean stop), so a standby need not wait it out."""
        if not self.server or self.epoch is None:
            return
        with contextlib.suppress(Exception), self._mutex, self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE leadership SET expires_at = acquired_at "
                    "WHERE id = 1 AND epoch = :e AND holder = :h"
                ),
                {"e": self.epoch, "h": self.holder},
            )
        self.epoch = None

    def install(self, sessions: sessionmaker[Session]) -> None:
        """Fence every commit of ``sessions`` (see the module docstring).

        Args:
            sessions: the repository's session factory.
        """
        if self.server and not event.contains(sessions, "before_commit", self._check):
            event.listen(sessions, "before_commit", self._check)

    @contextlib.contextmanager
    def unfenced(self) -> Iterator[None]:
        """Let this thread's writes through without the lease (a standby's own start and
        stop events, which are facts about it, not leader's work)."""
        self._bypass.on = True
        try:
            yield
        finally:
            self._bypass.on = False

    def _check(self, session: Session) -> None:
        if getattr(self._bypass, "on", False) or current_monitor() is not None:
            return  # unfenced, or a monitor's write (fenced by its own lease)
        epoch = self.epoch
        row = session.execute(
            text("SELECT epoch, holder FROM leadership WHERE id = 1 FOR SHARE")
        ).first()
        if epoch is None or row is None or (int(row[0]), row[1]) != (epoch, self.holder):
            if epoch is not None and self.epoch == epoch:
                self.epoch = None
            raise FencedError(
                f"this daemon no longer leads (it led under epoch {epoch}; "
                f"the database is at epoch {row[0] if row else 0}); "
                "its write was refused"
            )


def _set_expiry(conn: Any, seconds: float) -> None:
    conn.execute(
        text(
            "UPDATE leadership SET expires_at = clock_timestamp() + "
            "make_interval(secs => :s) WHERE id = 1"
        ),
        {"s": seconds},
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def last_daemon_run(engine: Engine) -> datetime | None:
    """Return when the newest daemon cycle started (to count cycles a takeover missed)."""
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT max(started_at) FROM runs WHERE actor = 'daemon'")
        ).scalar()
    return value if isinstance(value, datetime) else None


def missed_fires(
    last: datetime | None, now: datetime, interval_seconds: float, cap: int
) -> list[tuple[datetime, str]]:
    """List the fires nobody ran between the last daemon cycle and a takeover (pure).

    Args:
        last: when the newest daemon cycle started (None: no daemon ever ran one).
        now: the time of the takeover.
        interval_seconds: the schedule's interval.
        cap: list at most this many one by one; the rest are counted in one more entry.

    Returns:
        ``(scheduled_for, reason)`` per missed fire, oldest first.
    """
    if last is None:
        return []
    step = timedelta(seconds=interval_seconds)
    count = int((now - last) // step)
    out = [(last + step * k, "no leader: takeover") for k in range(1, min(count, cap) + 1)]
    if count > cap:
        out.append(
            (
                last + step * count,
                f"no leader: takeover ({count - cap} more fires not listed one by one)",
            )
        )
    return out
