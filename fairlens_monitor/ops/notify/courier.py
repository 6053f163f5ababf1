"""The daemon's outbox worker thread: woken by a commit, polling as a backstop.

After the **log** step. A cycle that raises an alert commits its notification rows in its
own transaction (``store.outbox``); that commit rings ``store.outbox.DOORBELL``, which wakes
:class:`Courier` at once, so an alert reaches its receiver a POST after its commit rather
than at the next poll. Without a ring the courier still looks every
``ops.notify.worker.POLL_SECONDS``: rows written by another process (``ack``, ``resolve``,
``notify test``), retries coming due, and whatever was pending at a restart.

Each look hands every due *lane* (one monitor's messages to one channel,
``ops.notify.worker.due_lanes``) that is not already being sent to a pool of
``notify.workers`` threads, and does not wait for them: a message committed while others
are on their way is picked up at once, not after the slowest of them. A lane runs on one
thread at a time, in order (an acknowledgement never overtakes its alert); when it ends the
courier looks again. Each row is still claimed, sent and settled on its own
(``ops.notify.worker``), so its at-least-once guarantees are unchanged. Only the holder of
the service lease delivers (``leading``); the others keep looking in case they become it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from sqlalchemy import Engine

from fairlens_monitor.config.notify import NotifySettings
from fairlens_monitor.ops.cycle import error_text
from fairlens_monitor.ops.notify.worker import BATCH, POLL_SECONDS, Lane, attempt_lane, due_lanes
from fairlens_monitor.security.crypto import AlertCipher
from fairlens_monitor.store.outbox import DOORBELL, Doorbell, Notification
from fairlens_monitor.store.repository import Repository

log = logging.getLogger(__name__)


class Courier:
    """One thread that hands due lanes to a pool when woken or every ``poll`` seconds."""

    def __init__(
        self,
        engine: Engine,
        notify: NotifySettings,
        *,
        clock: Callable[[], datetime],
        cipher: AlertCipher,
        leading: Callable[[], bool],
        poll: float = POLL_SECONDS,
        bell: Doorbell = DOORBELL,
    ) -> None:
        """Prepare (nothing runs until :meth:`start`).

        Args:
            engine: the daemon's engine (a repository of its own: no lease hooks; the claim
                is what keeps two workers from sending one attempt, and its events are
                sealed by the next checkpoint).
            notify: the service's ``notify`` settings (``workers``: the pool's size).
            clock: the daemon's clock (aware UTC).
            cipher: the alert key (the explanation, with ``notify.include_explanation``).
            leading: whether this daemon may deliver now (it holds the service lease).
            poll: seconds between looks when nothing rings.
            bell: what a commit that wrote notifications rings.
        """
        self.repo, self.notify, self.clock, self.cipher = Repository(engine), notify, clock, cipher
        self.leading, self.poll, self.bell = leading, poll, bell
        self._wake = bell.subscribe()
        self._stop = threading.Event()
        self._busy: set[Lane] = set()  # lanes handed to the pool and not yet done
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=notify.workers, thread_name_prefix="fairlens-notify"
        )
        self._thread = threading.Thread(target=self._loop, name="fairlens-outbox", daemon=True)
        self.passes = 0  # looks made (tests and benchmarks watch it)
        self.looked_at = time.monotonic()  # when the last look ended (ops.health)

    def start(self) -> Courier:
        """Start the thread; return self."""
        self._thread.start()
        return self

    def quiet_seconds(self) -> float | None:
        """Seconds since the thread's last look ended, for the daemon's health check.

        Returns:
            The seconds (a look is due every ``poll`` seconds at most, so a large figure is a
            thread stuck in a look); None when the thread is not running.
        """
        if not self._thread.is_alive():
            return None
        return time.monotonic() - self.looked_at

    def stop(self, timeout: float | None = None) -> None:
        """Let the messages on their way settle, drop the lanes not started (their rows stay
        pending, unclaimed), then end the thread and the pool.

        Args:
            timeout: the longest wait for the thread (None: until it ends).
        """
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.bell.unsubscribe(self._wake)

    def _loop(self) -> None:
        """A look at once (what was pending at the start), then one per ring or poll."""
        while True:
            self._wake.clear()  # before the look: a commit after this rings again
            if self._stop.is_set():
                return
            try:
                if self.leading():
                    self._dispatch()
            except Exception as exc:  # the thread must not end: say so, look again
                log.error("outbox not delivered: %s", error_text(exc))
            self.passes += 1
            self.looked_at = time.monotonic()
            self._wake.wait(self.poll)

    def _dispatch(self) -> None:
        """Hand each due lane that is not on its way already to the pool."""
        for lane, rows in due_lanes(self.repo, now=self.clock(), limit=BATCH).items():
            with self._lock:
                if lane in self._busy:
                    continue  # its thread looks again when it is done
                self._busy.add(lane)
            try:
                self._pool.submit(self._send_lane, lane, rows)
            except RuntimeError:  # the pool is shutting down: the rows stay pending
                with self._lock:
                    self._busy.discard(lane)
                return

    def _send_lane(self, lane: Lane, rows: list[Notification]) -> None:
        try:
            attempt_lane(self.repo, self.notify, rows, now=self.clock, cipher=self.cipher)
        except Exception as exc:  # a database error: the rows are retried at their time
            log.error("outbox lane not delivered: %s", error_text(exc))
        finally:
            with self._lock:
                self._busy.discard(lane)
            self._wake.set()  # rows of this lane may have come meanwhile
