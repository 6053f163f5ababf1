"""The daemon's outbox worker thread: woken by a commit, polling as a backstop.

After the **log** step. A cycle that raises an alert commits its notification rows in its
own transaction (``store.outbox``); that commit rings ``store.outbox.DOORBELL``, which wakes
:class:`Courier` at once, so an alert reaches its receiver a POST after its commit rather
than at the next poll. Without a ring the courier still looks every
``ops.notify.worker.POLL_SECONDS``: rows written by another process (``ack``, ``resolve``,
``notify test``), retries coming due, and whatever was pending at a restart.

Each pass is :func:`~fairlens_monitor.ops.notify.worker.run_job` on a pool of
``notify.workers`` threads, so a burst of alerts is sent several at a time, each row still
claimed, sent and settled on its own (the worker's at-least-once guarantees are unchanged).
Only the holder of the service lease delivers (``leading``); the others keep looking in case
they become it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from sqlalchemy import Engine

from fairlens_monitor.config.notify import NotifySettings
from fairlens_monitor.ops.notify.worker import POLL_SECONDS, run_job
from fairlens_monitor.security.crypto import AlertCipher
from fairlens_monitor.store.outbox import DOORBELL, Doorbell

log = logging.getLogger(__name__)


class Courier:
    """One thread that delivers the outbox when woken or every ``poll`` seconds."""

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
            engine: the daemon's engine.
            notify: the service's ``notify`` settings (``workers``: the pool's size).
            clock: the daemon's clock (aware UTC).
            cipher: the alert key (the explanation, with ``notify.include_explanation``).
            leading: whether this daemon may deliver now (it holds the service lease).
            poll: seconds between looks when nothing rings.
            bell: what a commit that wrote notifications rings.
        """
        self.engine, self.notify, self.clock, self.cipher = engine, notify, clock, cipher
        self.leading, self.poll, self.bell = leading, poll, bell
        self._wake = bell.subscribe()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=notify.workers, thread_name_prefix="fairlens-notify"
        )
        self._thread = threading.Thread(target=self._loop, name="fairlens-outbox", daemon=True)
        self.passes = 0  # passes made (tests and benchmarks watch it)

    def start(self) -> Courier:
        """Start the thread; return self."""
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Finish the pass in progress (its sends settle), then end the thread and the pool.

        Args:
            timeout: the longest wait for the thread (None: until it ends).
        """
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=True)
        self.bell.unsubscribe(self._wake)

    def _loop(self) -> None:
        """A pass at once (what was pending at the start), then one per ring or poll."""
        while True:
            self._wake.clear()  # before the look: a commit after this rings again
            if self._stop.is_set():
                return
            try:
                if self.leading():
                    run_job(self.engine, self.notify, self.clock, self.cipher, pool=self._pool)
            except Exception as exc:  # the thread must not end: say so, look again
                log.error("outbox pass failed: %s", type(exc).__name__)
            self.passes += 1
            self._wake.wait(self.poll)
