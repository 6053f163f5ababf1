"""Per-monitor leadership on a shared PostgreSQL database: a lease per monitor, with fencing.

Sits between the daemon (whose heartbeat balances the monitors among the live daemons,
``ops.balancing``) and the store (whose write transactions it fences). Two tables
(migration 0016): ``monitor_leases`` — one row per monitor: ``holder``, ``epoch``,
``expires_at`` on the *server's* clock — and ``daemon_registry`` — one row per live daemon,
renewed with its leases, so the daemons know how many share the work. A daemon renews all
its leases and its registry row in one transaction every third of
``leadership.lease_seconds``; a lease that expired (its daemon died or froze), was released
(a clean stop, or a surplus given back for balance) or whose holder left the registry is
taken by another daemon with ``epoch + 1`` (a compare-and-set on the row, ``FOR UPDATE``).

Fencing: the daemon runs a monitor's writes inside :meth:`MonitorLeases.scope`; every
commit in such a scope first reads that monitor's row ``FOR SHARE`` inside its own
transaction and refuses to commit (:class:`~fairlens_monitor.store.lease.FencedError`)
unless this daemon still holds the epoch it took — so a daemon that wakes from SIGSTOP
after its monitors moved cannot write for them: a takeover's ``UPDATE`` waits for an
in-flight commit, or the commit sees the new epoch.

On SQLite one daemon runs every monitor (``db.instance_lock``): every lease is held, at
epoch 0, and nothing is fenced.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from fairlens_monitor.store.lease import FencedError, current_monitor, monitor_scope

FORGET_AFTER_SECONDS = 86400.0  # registry rows of daemons gone longer than this are deleted


@dataclass(frozen=True)
class Taken:
    """A monitor this daemon just took: its new epoch, and from whom and why."""

    monitor: str
    epoch: int
    previous_holder: str | None
    expired: bool  # the previous holder stopped renewing or left (not a release)
    reason: str


@dataclass(frozen=True)
class Survey:
    """One read of the lease table: the live daemons and each live lease's holder."""

    live: tuple[str, ...]
    holders: dict[str, str | None]


class MonitorLeases:
    """This daemon's leases; thread-safe (the heartbeat and the cycle workers share it)."""

    def __init__(
        self, engine: Engine, *, lease_seconds: float, holder: str, monitors: Sequence[str]
    ) -> None:
        """Prepare the leases of ``monitors`` under the name ``holder`` (nothing read yet).

        Args:
            engine: the daemon's engine.
            lease_seconds: how long a renewal lasts.
            holder: this daemon's unique name (host, pid and a random part).
            monitors: the portfolio's monitor names.
        """
        self.engine, self.lease_seconds, self.holder = engine, lease_seconds, holder
        self.monitors = tuple(monitors)
        self.server = engine.dialect.name == "postgresql"
        self._epochs: dict[str, int] = {} if self.server else dict.fromkeys(self.monitors, 0)
        self._mutex = threading.Lock()

    def leads(self, monitor: str) -> bool:
        """Whether this daemon holds ``monitor``'s lease as far as it knows."""
        return monitor in self._epochs

    def held(self) -> list[str]:
        """The monitors this daemon leads, by name."""
        return sorted(self._epochs)

    def epoch(self, monitor: str) -> int | None:
        """The epoch this daemon holds ``monitor`` under (None: not held)."""
        return self._epochs.get(monitor)

    def renew(self) -> list[str]:
        """Renew this daemon's registry row and every lease it holds, in one transaction.

        Returns:
            The monitors this daemon believed it led but no longer does (taken over).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the server could not be asked; nothing changed.
        """
        if not self.server:
            return []
        with self._mutex, self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO daemon_registry (holder, started_at, expires_at) VALUES "
                    "(:h, clock_timestamp(), clock_timestamp() + make_interval(secs => :s)) "
                    "ON CONFLICT (holder) DO UPDATE SET expires_at = EXCLUDED.expires_at"
                ),
                {"h": self.holder, "s": self.lease_seconds},
            )
            kept = {
                str(m)
                for (m,) in conn.execute(
                    text(
                        "UPDATE monitor_leases SET expires_at = clock_timestamp() + "
                        "make_interval(secs => :s) WHERE holder = :h RETURNING monitor"
                    ),
                    {"h": self.holder, "s": self.lease_seconds},
                ).all()
                # a row of ours at another epoch than we hold cannot exist: takes bump it
            }
            lost = [m for m in self._epochs if m not in kept]
            for monitor in lost:
                del self._epochs[monitor]
            return sorted(lost)

    def survey(self) -> Survey:
        """Read the live daemons and the holder of every lease that is live.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the server could not be asked.
        """
        if not self.server:
            return Survey((self.holder,), dict.fromkeys(self.monitors, self.holder))
        with self.engine.connect() as conn:
            live = tuple(
                str(h)
                for (h,) in conn.execute(
                    text(
                        "SELECT holder FROM daemon_registry "
                        "WHERE expires_at > clock_timestamp() ORDER BY holder"
                    )
                ).all()
            )
            rows = conn.execute(
                text(
                    "SELECT monitor, holder FROM monitor_leases "
                    "WHERE expires_at > clock_timestamp() AND holder IS NOT NULL"
                )
            ).all()
        return Survey(live, {str(m): str(h) for m, h in rows})

    def take(self, monitor: str) -> Taken | None:
        """Take ``monitor``'s lease if it is free (never held, released, expired, or its
        holder left the registry), with ``epoch + 1``.

        Returns:
            What was taken, or None when another daemon holds it (or took it first).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the server could not be asked; nothing changed.
        """
        if not self.server:
            return None
        with self._mutex, self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "SELECT l.epoch, l.holder, l.expires_at, l.expires_at <= clock_timestamp(), "
                    "l.expires_at <= clock_timestamp() OR l.holder IS NULL OR NOT EXISTS "
                    "(SELECT 1 FROM daemon_registry d WHERE d.holder = l.holder "
                    "AND d.expires_at > clock_timestamp()) "
                    "FROM monitor_leases l WHERE l.monitor = :m FOR UPDATE OF l"
                ),
                {"m": monitor},
            ).first()
            if row is None:
                inserted = conn.execute(
                    text(
                        "INSERT INTO monitor_leases (monitor, epoch, holder, acquired_at, "
                        "expires_at) VALUES (:m, 1, :h, clock_timestamp(), clock_timestamp() "
                        "+ make_interval(secs => :s)) ON CONFLICT (monitor) DO NOTHING"
                    ),
                    {"m": monitor, "h": self.holder, "s": self.lease_seconds},
                ).rowcount
                if not inserted:  # another daemon created it at the same moment
                    return None
                self._epochs[monitor] = 1
                return Taken(monitor, 1, None, False, "no daemon had led this monitor before")
            if not row[4] or row[1] == self.holder:
                return None  # live elsewhere (or ours: nothing to take)
            epoch = int(row[0]) + 1
            conn.execute(
                text(
                    "UPDATE monitor_leases SET epoch = :e, holder = :h, "
                    "acquired_at = clock_timestamp(), expires_at = clock_timestamp() + "
                    "make_interval(secs => :s) WHERE monitor = :m"
                ),
                {"e": epoch, "h": self.holder, "s": self.lease_seconds, "m": monitor},
            )
        self._epochs[monitor] = epoch
        return Taken(monitor, epoch, row[1], row[1] is not None, _why(row[1], row[2], row[3]))

    def release(self, monitor: str) -> None:
        """Give ``monitor``'s lease up at once (balance, or a clean stop); errors are ignored
        (the lease then simply expires)."""
        epoch = self._epochs.pop(monitor, None)
        if not self.server or epoch is None:
            return
        with contextlib.suppress(Exception), self._mutex, self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE monitor_leases SET holder = NULL, expires_at = acquired_at "
                    "WHERE monitor = :m AND epoch = :e AND holder = :h"
                ),
                {"m": monitor, "e": epoch, "h": self.holder},
            )

    def leave(self) -> None:
        """Release every lease and leave the registry (a clean stop); errors are ignored."""
        for monitor in list(self._epochs):
            self.release(monitor)
        if not self.server:
            return
        with contextlib.suppress(Exception), self._mutex, self.engine.begin() as conn:
            conn.execute(
                text(
                    "DELETE FROM daemon_registry WHERE holder = :h OR expires_at < "
                    "clock_timestamp() - make_interval(secs => :s)"
                ),
                {"h": self.holder, "s": FORGET_AFTER_SECONDS},
            )

    scope = staticmethod(monitor_scope)

    def install(self, sessions: sessionmaker[Session]) -> None:
        """Fence every commit of ``sessions`` made inside :meth:`scope` (module docstring).

        Args:
            sessions: a repository's session factory.
        """
        if self.server and not event.contains(sessions, "before_commit", self._check):
            event.listen(sessions, "before_commit", self._check)

    def _check(self, session: Session) -> None:
        monitor = current_monitor()
        if monitor is None:
            return  # not a monitor's write: the service lease (store.lease) fences it
        epoch = self._epochs.get(monitor)
        row = session.execute(
            text("SELECT epoch, holder FROM monitor_leases WHERE monitor = :m FOR SHARE"),
            {"m": monitor},
        ).first()
        if epoch is None or row is None or (int(row[0]), row[1]) != (epoch, self.holder):
            if epoch is not None and self._epochs.get(monitor) == epoch:
                del self._epochs[monitor]
            raise FencedError(
                f"this daemon no longer leads monitor {monitor} (it led under epoch {epoch}; "
                f"the database is at epoch {row[0] if row else 0}); its write was refused"
            )


def _why(holder: Any, expires_at: datetime, lapsed: bool) -> str:
    if holder is None:
        return "the monitor's lease was released (a clean stop, or for balance)"
    if lapsed:
        return (
            f"the previous holder's lease expired at {expires_at.isoformat(timespec='seconds')} "
            "(it stopped renewing: frozen, partitioned or dead)"
        )
    return "the previous holder left the daemon registry"


@contextlib.contextmanager
def no_scope() -> Iterator[None]:
    """Run the body outside any monitor's scope (a service write inside a monitor's job)."""
    with monitor_scope(None):
        yield
