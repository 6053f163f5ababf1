"""The trend page's chain verdict: a background thread that runs ``verify`` once a minute.

Incremental walks (``verify --incremental --verified-to``) with a full walk first, at least
once a day and after any walk that found anomalies; the state lives in this process's memory
(``ops.incremental.WalkState``) because the page writes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from fairlens_monitor.ops.incremental import WalkState


class ChainWatcher:
    """Verifies the audit trail in a background thread, once a minute.

    Each walk is incremental — from the newest signed checkpoint at or below the seq the
    previous walk verified (``verify --incremental``), so it costs what was appended since —
    except the first, one at least every 24 hours, and any after a walk that found
    anomalies, which walk the whole chain (``ops.incremental.WalkState``, kept in this
    process's memory: the page writes nothing). A full walk of a year of events takes
    seconds, too long to block every 5-second refresh; the page shows the newest verdict,
    how old it is and when the last full walk ran.
    """

    def __init__(self, config_path: str, every: float = 60.0, *, start: bool = True) -> None:
        """Start watching the database of the config at ``config_path`` (``start=False``:
        no thread; the caller runs :meth:`walk`)."""
        self.config_path, self.every = config_path, every
        self.verdict: str | None = None
        self.alarm: str | None = None  # the first anomaly, when the trail is tampered with
        self.checked_at: datetime | None = None
        # rows the newest walk found failing: table -> id -> "kind: detail" (viewer.flags)
        self.failed: dict[str, dict[int, str]] = {}
        self.walks = WalkState()
        self._first = threading.Event()
        self._asked = False
        if start:
            threading.Thread(target=self._loop, name="fairlens-chain-watcher", daemon=True).start()

    def status(self, wait: float) -> str:
        """The newest verdict; the first call waits up to ``wait`` seconds for one."""
        if not self._asked:
            self._asked = True
            self._first.wait(wait)
        if self.verdict is None or self.checked_at is None:
            return "verification in progress…"
        age = (datetime.now(UTC) - self.checked_at).total_seconds()
        full = self.walks.last_full
        return (
            f"{self.verdict} (checked {age:.0f} s ago; "
            + ("no full walk yet" if full is None else f"last full walk {full:%H:%M} UTC")
            + ")"
        )

    def walk(self) -> None:
        """Run one walk (full or incremental, as the state says) and keep its verdict."""
        started = datetime.now(UTC)
        full = self.walks.full_due(started)
        line, alarm, report = run_verify(self.config_path, None if full else self.walks.verified_to)
        if report is not None:
            self.walks.record(
                str(report["walk"]),
                bool(report["intact"]),
                int(report["last_verified_seq"]),
                started,
            )
            self.failed = failed_rows(report)  # a walk that could not run keeps the last
        self.verdict, self.alarm, self.checked_at = line, alarm, datetime.now(UTC)

    def _loop(self) -> None:
        while True:
            self.walk()
            self._first.set()
            time.sleep(self.every)


def run_verify(
    config_path: str, verified_to: int | None = None
) -> tuple[str, str | None, dict[str, Any] | None]:
    """Run ``fairlens-monitor verify --json`` in its own process: on a year of events a full
    walk takes seconds of CPU, and in a thread it would slow every render through the GIL.

    Args:
        config_path: the config.
        verified_to: walk incrementally from the newest signed checkpoint at or below this
            seq (``--incremental --verified-to``); None walks the whole chain.

    Returns:
        The verdict line, (when tampered with) the first anomaly for the page's banner, and
        the JSON report (None when it could not verify).
    """
    extra = [] if verified_to is None else ["--incremental", "--verified-to", str(verified_to)]
    try:
        done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
            [
                sys.executable,
                "-m",
                "fairlens_monitor",
                "--config",
                config_path,
                "verify",
                "--json",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot verify here: {exc}", None, None
    try:
        report = json.loads(done.stdout) if done.returncode in (0, 1) else None
    except ValueError:  # a crash: no report, whatever the exit code says
        report = None
    if not isinstance(report, dict) or "intact" not in report:
        return f"cannot verify here: {last_line(done.stderr)}", None, None
    lost = [w["seq"] for w in report.get("warnings", []) if w["kind"] == "restored_loss"]
    loss = (
        f"; anchored history lost by a signed restore: seq {', '.join(map(str, lost))}"
        if lost
        else ""
    )
    walked = (
        f"{report['count']} events walked from the signed checkpoint at seq "
        f"{report['checkpoint_seq']}"
        if report.get("walk") == "incremental"
        else f"whole chain walked, {report['count']} events"
    )
    if report["intact"]:
        return (
            (
                f"intact — chain verified to seq {report['last_verified_seq']} ({walked}), "
                + anchored_text(report)
                + loss
            ),
            None,
            report,
        )
    first = report["anomalies"][0]
    where = (
        f"seq {first['seq']}"
        if first.get("table") is None
        else f"{first['table']} row {first['id']}"
        + ("" if first["seq"] is None else f" (seq {first['seq']})")
    )
    return (
        f"TAMPERED at {where} ({first['kind']}) — {len(report['anomalies'])} anomalies ({walked})",
        f"{where}: {first['kind']} — {first['detail']}",
        report,
    )


def anchored_text(report: dict[str, Any]) -> str:
    """How far signed checkpoints vouch for the chain ("no signed checkpoint yet" at 0,
    not "anchored up to seq 0")."""
    if not report.get("anchored_seq"):
        return f"no signed checkpoint yet ({report['unanchored_events']} events unanchored)"
    return (
        f"anchored up to seq {report['anchored_seq']} ({report['unanchored_events']} "
        "not yet anchored)"
    )


def failed_rows(report: dict[str, Any]) -> dict[str, dict[int, str]]:
    """The stored rows a ``verify --json`` report names in its anomalies, by table and id,
    each with ``kind: detail`` (the first anomaly of a row wins).

    Args:
        report: the report (its ``anomalies`` list is read; malformed entries are skipped).
    """
    out: dict[str, dict[int, str]] = {}
    for anomaly in report.get("anomalies", []):
        if not isinstance(anomaly, dict):
            continue
        table, row_id = anomaly.get("table"), anomaly.get("id")
        if isinstance(table, str) and isinstance(row_id, int):
            why = f"{anomaly.get('kind')}: {anomaly.get('detail')}"
            out.setdefault(table, {}).setdefault(row_id, why)
    return out


def last_line(stderr: str) -> str:
    """The one line that says why ``verify`` could not run (never a traceback on the page)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1].removeprefix("error: ") if lines else "no reason given"
