"""Which monitors one daemon should lead: the balancing decision, pure.

Operations, between the lease table (``store.monitor_lease``) and the daemon's heartbeat
(``ops.leadership``). Every daemon on a PostgreSQL database runs :func:`plan` on what it
read (the monitors, the live daemons of the registry, who holds each lease) and applies
the result: it releases a surplus over its share (never a monitor whose cycle is running
now) and takes free monitors — no holder, an expired lease, or a holder missing from the
registry — up to its share, ``ceil(M / N)`` for M monitors and N live daemons. So when all
are healthy no daemon leads more than ``ceil(M / N)`` once each has planned once; a view
that lags one heartbeat (a daemon just joined or died) can leave one more, hence the
``ceil(M / N) + 1`` bound the issue states. Two daemons that want the same free monitor
race in the database (the take is a compare-and-set on the epoch); the order in which a
daemon tries free monitors is its own (rendezvous hashing), so they seldom collide.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """What one daemon should do now: ``take`` these free monitors, ``release`` these."""

    take: tuple[str, ...]
    release: tuple[str, ...]
    share: int  # ceil(M / N): the most this daemon should lead


def share_of(monitors: int, daemons: int) -> int:
    """Return ``ceil(monitors / daemons)`` (0 monitors: 0; no daemon counted: all of them).

    Args:
        monitors: how many monitors there are (>= 0).
        daemons: how many live daemons there are (this one included; 0 is read as 1).

    Returns:
        The most one daemon should lead.
    """
    return -(-monitors // max(1, daemons))


def plan(
    me: str,
    monitors: Collection[str],
    live: Collection[str],
    holders: Mapping[str, str | None],
    busy: Collection[str] = (),
) -> Plan:
    """Decide what the daemon ``me`` takes and releases.

    Args:
        me: this daemon's holder name.
        monitors: every monitor of the portfolio.
        live: the holder names of the live daemons (this one is counted even if missing).
        holders: monitor -> holder of a lease that has not expired (None or absent: free).
            A holder not in ``live`` counts as free too (its daemon left the registry).
        busy: monitors whose cycle runs on this daemon now (not released mid-cycle).

    Returns:
        The plan: free monitors to take (in this daemon's rendezvous order), surplus to
        release (those this daemon would try last), and its share.
    """
    alive = set(live) | {me}
    share = share_of(len(monitors), len(alive))
    mine = sorted((m for m in monitors if holders.get(m) == me), key=lambda m: _rank(me, m))
    free = sorted(
        (m for m in monitors if holders.get(m) is None or holders.get(m) not in alive),
        key=lambda m: _rank(me, m),
    )
    if len(mine) > share:
        idle = [m for m in reversed(mine) if m not in busy]
        return Plan((), tuple(idle[: len(mine) - share]), share)
    return Plan(tuple(free[: share - len(mine)]), (), share)


def _rank(me: str, monitor: str) -> bytes:
    """Rendezvous order: each daemon prefers other monitors, the same ones every time."""
    return hashlib.sha256(f"{me}\x00{monitor}".encode()).digest()
