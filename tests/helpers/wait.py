"""Waiting on observable events, for tests that must hold on a busy machine.

A test that needs something to have happened (a line printed, a row committed, a file
written) polls for it with :func:`wait_for` under a generous deadline, instead of sleeping a
time sized to this machine's speed. :class:`LineReader` collects a child process's output
lines as they come, so a test can wait for one without blocking on the pipe.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, TypeVar

T = TypeVar("T")

GENEROUS = 120.0  # seconds: minutes of margin over an idle machine, never a calibration


def wait_for(check: Callable[[], T], timeout: float = GENEROUS, what: str = "the event") -> T:
    """Poll ``check`` until it returns something truthy, and return that.

    Args:
        check: the observation (a query, a file test, a look at collected lines).
        timeout: the deadline in seconds; generous, it only bounds a test that would hang.
        what: what is awaited, for the failure message.

    Returns:
        The first truthy value ``check`` returned.

    Raises:
        AssertionError: the deadline passed first (naming ``what``).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)  # the polling period only; the deadline bounds the wait


class LineReader:
    """Collects the lines of a text stream (a child's stdout) in a background thread."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        with stream:  # closed at the end of the output: no pipe left for the collector
            for line in stream:
                self.lines.append(line.rstrip("\n"))

    def count(self, text: str) -> int:
        """How many lines so far contain ``text``."""
        return sum(text in line for line in list(self.lines))

    def said(self, text: str) -> bool:
        """Whether a line so far contains ``text``."""
        return self.count(text) > 0

    def join(self, timeout: float = 30) -> None:
        """Wait for the stream to end (the process exited and closed it)."""
        self._thread.join(timeout)


def stop(proc: subprocess.Popen[str], timeout: float = GENEROUS) -> None:
    """Kill ``proc`` if it still runs and reap it, so no test leaves a daemon behind."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=timeout)
