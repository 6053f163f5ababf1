"""The examiner's pack, its content: one monitor's period, verified, gathered in one snapshot.

``report`` (the CLI) hands an examiner a signed folder (``ops.report_pack`` writes it). This
module decides what it says. :func:`gather` runs, inside ONE read transaction of a read-only
database (so the verdict and the rows are one state): the project's own whole-chain
verification (``verification.verify_store``, exactly what ``verify`` runs) — a chain that is
not intact is refused here, before anything is written or signed (:class:`ReportRefusedError`,
exit 1, naming the first anomaly) — then the monitor's readings, group results, alert
episodes with their timelines, and the config changes of the period ``[start, end)``.

Explanations stay Fernet tokens (the pack shows the key id and the token's SHA-256, which
the ``alert_raised`` event records) unless the caller passes a cipher, which the CLI does
only when asked (``--decrypt-explanations``) and the alert key is readable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from fairlens_monitor.audit.checkpoints import Checkpoint
from fairlens_monitor.audit.events import (
    ALERT_ACKNOWLEDGED,
    ALERT_RAISED,
    ALERT_RESOLVED,
    CONFIG_CHANGED,
    MONITOR_EVENTS,
    where,
)
from fairlens_monitor.errors import DecryptionError, FairlensError
from fairlens_monitor.ops.verification import read_anchor, verify_store
from fairlens_monitor.security.crypto import AlertCipher, load_public_key, public_key_id
from fairlens_monitor.store import reportreads
from fairlens_monitor.store.repository import Repository

TIMELINE_EVENTS = (ALERT_RAISED, ALERT_ACKNOWLEDGED, ALERT_RESOLVED)
CHANGE_EVENTS = (CONFIG_CHANGED, *MONITOR_EVENTS)
SHOWN_CHANGES = 12  # keys listed per config change in the report (the CSV-free part)


class ReportRefusedError(FairlensError):
    """The audit chain is not intact: no pack is written or signed (exit 1)."""

    exit_code = 1

    def __init__(self, why: str) -> None:
        super().__init__(
            f"the audit chain is not intact ({why}); no report was written or signed. "
            "Run `fairlens-monitor verify` for every anomaly"
        )


class UnknownMonitorError(FairlensError):
    """The database holds no monitor of that name (exit 2)."""

    def __init__(self, monitor: str, known: list[str]) -> None:
        listed = ", ".join(known) if known else "none yet"
        super().__init__(
            f"--monitor {monitor}: the database has no monitor of that name (known: {listed})"
        )


@dataclass(frozen=True)
class Integrity:
    """What the pack's integrity statement says: the walk, its head, the covering checkpoint."""

    verified_at: str  # RFC 3339 UTC, when the walk started
    events: int
    from_seq: int  # 1, or the first seq after a signed prune
    head_seq: int
    head_hash: str
    checkpoint: Checkpoint | None  # the newest signed checkpoint the walk verified
    checkpoint_key_id: str | None  # fingerprint of the checkpoint public key
    anchor_file: str  # its name (the folder is the operator's business)
    unanchored: int  # events after the covering checkpoint
    in_anchor: bool = True  # the covering checkpoint is a line of the anchor file
    in_database: bool = True  # ... and a row of the database

    def where(self) -> str:
        """Where the covering checkpoint was found: both copies, or which one alone."""
        if self.in_anchor and self.in_database:
            return f"in the anchor file {self.anchor_file} and the database"
        if self.in_database:
            return f"in the database only: the anchor file {self.anchor_file} does not hold it"
        return f"in the anchor file {self.anchor_file} only"

    def statement(self) -> str:
        """The integrity statement in one paragraph (HTML and PDF print it as is)."""
        origin = "genesis" if self.from_seq == 1 else f"seq {self.from_seq} (a signed prune)"
        text = (
            f"The audit chain was verified from {origin} to seq {self.head_seq} "
            f"(head hash {self.head_hash}) at {self.verified_at} by the project's own "
            f"verification (the whole walk of `fairlens-monitor verify`: every event's hash "
            f"and link, every signed checkpoint, every stored row against its recorded "
            f"digest), before this report was written; no anomaly was found."
        )
        cp = self.checkpoint
        if cp is None:
            return text + " No signed checkpoint covers the chain yet."
        return text + (
            f" The covering signed checkpoint is seq {cp.seq} (head hash {cp.head_hash}, "
            f"signed {cp.ts}, Ed25519 public key {self.checkpoint_key_id}, {self.where()}); "
            f"{self.unanchored} later events are not yet covered by a signature."
        )


@dataclass(frozen=True)
class Step:
    """One step of an alert episode's timeline, with the audit record behind it."""

    ts: str
    action: str  # raised, acknowledged, resolved
    by: str
    note: str
    seq: int
    hash: str


@dataclass(frozen=True)
class AlertEntry:
    """One alert episode of the period, its explanation as the pack may show it."""

    id: int
    kind: str
    state: str
    created_at: datetime
    closed_at: datetime | None
    verdict: str | None
    dir: float | None
    key_id: str
    token_sha256: str
    explanation: str  # the plaintext, or what stands in for it
    decrypted: bool
    timeline: list[Step] = field(default_factory=list)


@dataclass(frozen=True)
class Change:
    """A config or monitor change recorded in the period."""

    ts: str
    event: str
    actor: str  # who: the --by of a pause or resume, else the process that wrote it
    seq: int
    keys: list[str]  # "key: old → new", at most SHOWN_CHANGES (and how many more); a note


@dataclass(frozen=True)
class GroupLine:
    """One group over the period (pooled counts; impact-ratio range; adverse readings)."""

    scenario: str
    label: str
    role: str
    readings: int
    applicants: int
    approved: int
    ir_min: float | None
    ir_max: float | None
    adverse: int

    @property
    def rate(self) -> float | None:
        """The pooled approval rate over the period."""
        return self.approved / self.applicants if self.applicants else None


@dataclass(frozen=True)
class ReportData:
    """Everything the pack's pages say (the CSV files stream from the same snapshot)."""

    monitor: str
    start: datetime
    end: datetime
    generated_at: str
    integrity: Integrity
    runs: dict[str, int]
    points: list[tuple[Any, ...]]  # reportreads.period_series
    groups: list[GroupLine]
    alerts: list[AlertEntry]
    changes: list[Change]
    methodology: dict[str, Any]
    explanations: str  # "encrypted" or "decrypted"

    def summary(self) -> dict[str, Any]:
        """The period summary: readings and verdicts per scenario, DIR range, runs, alerts."""
        out: dict[str, Any] = {"runs_ok": self.runs.get("ok", 0)}
        out["runs_failed"] = self.runs.get("failed", 0)
        for scenario in sorted({p[0] for p in self.points}):
            mine = [p for p in self.points if p[0] == scenario]
            dirs = [float(p[2]) for p in mine if p[2] is not None]
            verdicts: dict[str, int] = {}
            for p in mine:
                verdicts[str(p[6])] = verdicts.get(str(p[6]), 0) + 1
            out[scenario] = {
                "readings": len(mine),
                "first": mine[0][1],
                "last": mine[-1][1],
                "dir_min": min(dirs) if dirs else None,
                "dir_mean": sum(dirs) / len(dirs) if dirs else None,
                "dir_max": max(dirs) if dirs else None,
                "verdicts": dict(sorted(verdicts.items())),
            }
        out["alerts"] = len(self.alerts)
        out["alerts_raised_in_period"] = sum(self.start <= a.created_at for a in self.alerts)
        out["alerts_open_now"] = sum(a.state != "resolved" for a in self.alerts)
        return out


def snapshot(repo: Repository) -> Connection:
    """Open the one read transaction the pack is gathered in (the caller closes it).

    PostgreSQL gets ``REPEATABLE READ`` (one snapshot for every statement); SQLite's
    deferred ``BEGIN`` already reads one snapshot until the transaction ends.
    """
    conn = repo.engine.connect()
    if repo.engine.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    conn.begin()
    return conn


def verified(
    repo: Repository, *, anchor_file: Path, public_key: Path, checkpoint_every: int, at: str
) -> Integrity:
    """Run the whole verification on ``repo`` (bound to the snapshot) and describe it.

    Args:
        repo: the repository, bound to the pack's snapshot connection.
        anchor_file: the anchor file.
        public_key: the checkpoint public key.
        checkpoint_every: ``audit.checkpoint_every`` (a stripped chain is an anomaly).
        at: RFC 3339 time the walk starts.

    Returns:
        The integrity statement's facts.

    Raises:
        ReportRefusedError: the chain, a checkpoint or a stored row is not intact.
        CannotVerifyError, KeyFileError: the trail cannot be verified (exit 2).
    """
    trail = verify_store(
        repo, anchor_file=anchor_file, public_key=public_key, checkpoint_every=checkpoint_every
    )
    report = trail.chain
    if report.anomalies:
        first = report.anomalies[0]
        raise ReportRefusedError(
            f"{len(report.anomalies)} anomalies; first: {where(first)}: {first.kind}: "
            f"{first.detail}; {report.verified_text}"
        )
    stored = [cp for cp in repo.checkpoints() if cp.seq == report.anchored_seq]
    anchored = [cp for cp in read_anchor(anchor_file).checkpoints if cp.seq == report.anchored_seq]
    covering = [*stored, *anchored]
    cp = covering[-1] if covering and report.anchored_seq > 0 else None
    return Integrity(
        verified_at=at,
        events=report.count,
        from_seq=trail.from_seq,
        head_seq=report.head_seq,
        head_hash=report.head_hash,
        checkpoint=cp,
        checkpoint_key_id=public_key_id(load_public_key(public_key)) if cp else None,
        anchor_file=anchor_file.name,
        unanchored=report.unanchored,
        in_anchor=bool(anchored),
        in_database=bool(stored),
    )


def gather(
    conn: Connection,
    monitor: str,
    start: datetime,
    end: datetime,
    *,
    integrity: Integrity,
    generated_at: str,
    cipher: AlertCipher | None = None,
) -> ReportData:
    """Read the monitor's period from the snapshot ``conn`` (after :func:`verified`).

    Args:
        conn: the snapshot connection.
        monitor: the monitor's name.
        start: the period's start (aware UTC, inclusive).
        end: the period's end (aware UTC, exclusive).
        integrity: the verification's facts (events up to its head are read).
        generated_at: RFC 3339 time of the report.
        cipher: the alert key, to print explanations in clear; None keeps them encrypted.

    Returns:
        The report's content.

    Raises:
        UnknownMonitorError: the database has no monitor of that name.
    """
    if not reportreads.monitor_exists(conn, monitor):
        raise UnknownMonitorError(monitor, reportreads.monitor_names(conn))
    events = reportreads.monitor_events(
        conn, monitor, (*TIMELINE_EVENTS, *CHANGE_EVENTS), integrity.head_seq
    )
    points = reportreads.period_series(conn, monitor, start, end)
    return ReportData(
        monitor=monitor,
        start=start,
        end=end,
        generated_at=generated_at,
        integrity=integrity,
        runs=reportreads.runs_summary(conn, monitor, start, end),
        points=points,
        groups=[GroupLine(*row) for row in reportreads.group_summary(conn, monitor, start, end)],
        alerts=_alerts(reportreads.period_alerts(conn, monitor, start, end), events, cipher),
        changes=_changes(events, start, end),
        methodology=reportreads.judged_by(conn, monitor, start, end),
        explanations="decrypted" if cipher is not None else "encrypted",
    )


def _alerts(
    rows: list[Any], events: list[tuple[int, str, str, str, str, dict[str, Any]]], cipher: Any
) -> list[AlertEntry]:
    steps: dict[int, list[Step]] = {}
    for seq, ts, kind, _actor, digest, payload in events:
        if kind not in TIMELINE_EVENTS:
            continue
        ids = payload.get("alert_ids") if kind != ALERT_RAISED else [payload.get("alert_id")]
        action = {ALERT_RAISED: "raised", ALERT_ACKNOWLEDGED: "acknowledged"}.get(kind, "resolved")
        by = str(payload.get("by") or ("monitor" if kind == ALERT_RAISED else ""))
        for alert_id in ids if isinstance(ids, list) else []:
            if isinstance(alert_id, int):
                step = Step(ts, action, by, str(payload.get("note") or ""), seq, digest)
                steps.setdefault(alert_id, []).append(step)
    out = []
    for row in rows:
        text, clear = f"encrypted with alert key {row.key_id} (not readable by this report)", False
        if cipher is not None:
            try:
                text, clear = cipher.decrypt(row.token), True
            except DecryptionError:
                text = f"encrypted with alert key {row.key_id}; the key given does not decrypt it"
        out.append(
            AlertEntry(
                id=row.id,
                kind=row.kind,
                state=row.state,
                created_at=row.created_at,
                closed_at=row.closed_at,
                verdict=row.verdict,
                dir=row.dir,
                key_id=row.key_id,
                token_sha256=sha256(str(row.token).encode("ascii")).hexdigest(),
                explanation=text,
                decrypted=clear,
                timeline=steps.get(int(row.id), []),
            )
        )
    return out


def _changes(
    events: list[tuple[int, str, str, str, str, dict[str, Any]]], start: datetime, end: datetime
) -> list[Change]:
    out = []
    for seq, ts, kind, actor, _digest, payload in events:
        if kind not in CHANGE_EVENTS or not (start <= _moment(ts) < end):
            continue
        raw = payload.get("changes")
        listed = raw if isinstance(raw, list) else []
        keys = [
            f"{c.get('key')}: {_short(c.get('old'))} → {_short(c.get('new'))}"
            for c in listed[:SHOWN_CHANGES]
            if isinstance(c, dict)
        ]
        if len(listed) > SHOWN_CHANGES:
            keys.append(f"… and {len(listed) - SHOWN_CHANGES} more keys (see the audit event)")
        if not listed and isinstance(payload.get("reason"), str):
            keys = [str(payload["reason"])]
        note = payload.get("note")  # a pause or resume: who did it and why (--by, --note)
        if isinstance(note, str) and note:
            keys.append(f"note: {note}")
        by = payload.get("by")
        out.append(Change(ts, kind, by if isinstance(by, str) and by else actor, seq, keys))
    return out


def _short(value: Any) -> str:
    text = "—" if value is None else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "…"


def _moment(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))
