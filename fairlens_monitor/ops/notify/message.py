"""What a notification says and how it is signed (pure: time and randomness passed in).

The outbox worker (:mod:`~fairlens_monitor.ops.notify.worker`) reads the facts of one
notification from the store (:class:`Facts`) at send time and turns them into the JSON
message every channel starts from (:func:`message`): monitor, event, verdict, DIR with its
interval, the two groups with their counts, the page link, the alert id and the audit
record's hash (for ``chain_failed``, the first anomaly's location: seq, kind, table and row
id, :func:`location`) — and the alert's explanation only when ``notify.include_explanation`` is on
(decrypted by the worker, never stored in the outbox). A webhook POSTs those JSON bytes
signed by :func:`signature`; a chat channel gets :func:`slack_blocks`, an e-mail
:func:`email_text`. :func:`backoff` spaces the retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fairlens_monitor.audit.events import ALERT_ACKNOWLEDGED, ALERT_RAISED, ALERT_RESOLVED

SCHEMA = "fairlens.notification.v1"
TITLES = {
    ALERT_RAISED: "Fairness alert raised",
    ALERT_ACKNOWLEDGED: "Fairness alert acknowledged",
    ALERT_RESOLVED: "Fairness alert resolved",
    "drift_signalled": "Fairness drift signalled",
    "source_failing": "Monitor source failing",
    "chain_failed": "Audit chain verification FAILED",
    "test": "Test notification",
}


@dataclass(frozen=True)
class Group:
    """One side of the DIR: the group's label, applicants and approvals."""

    label: str
    applicants: int
    approved: int


@dataclass(frozen=True)
class Facts:
    """What one notification reports, read from the store at send time."""

    event: str
    monitor: str
    channel: str
    idempotency_key: str
    alert_id: int | None = None
    audit_seq: int | None = None
    audit_hash: str | None = None
    kind: str | None = None  # the alert's kind: dir or drift
    state: str | None = None  # the alert's state now
    verdict: str | None = None
    dir: float | None = None
    dir_ci_low: float | None = None
    dir_ci_high: float | None = None
    confidence: float | None = None
    measured_at: str | None = None
    groups: tuple[Group, ...] = ()  # (the group, the reference group)
    failed_runs: int | None = None  # source_failing: failed runs in a row
    explanation: str | None = None  # only with notify.include_explanation
    extra: dict[str, Any] = field(default_factory=dict)


def message(facts: Facts, *, page_url: str | None, sent_at: str) -> dict[str, Any]:
    """The JSON message of a notification (the webhook's body, the other channels' source).

    Args:
        facts: what the notification reports.
        page_url: the trend page's address (``notify.page_url``), or None.
        sent_at: RFC 3339 time of this attempt.

    Returns:
        A JSON-ready dict; keys with no value are left out.
    """
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "event": facts.event,
        "title": TITLES.get(facts.event, facts.event),
        "monitor": facts.monitor,
        "sent_at": sent_at,
        "idempotency_key": facts.idempotency_key,
        "alert_id": facts.alert_id,
        "alert_kind": facts.kind,
        "alert_state": facts.state,
        "verdict": facts.verdict,
        "measured_at": facts.measured_at,
        "audit": (
            None if facts.audit_hash is None else {"seq": facts.audit_seq, "hash": facts.audit_hash}
        ),
        "failed_runs": facts.failed_runs,
        "page_url": page_url,
        **facts.extra,
    }
    if facts.dir is not None:
        out["dir"] = {
            "value": facts.dir,
            "ci_low": facts.dir_ci_low,
            "ci_high": facts.dir_ci_high,
            "confidence": facts.confidence,
        }
    if facts.groups:
        out["groups"] = [
            {"label": g.label, "applicants": g.applicants, "approved": g.approved}
            for g in facts.groups
        ]
    if facts.explanation is not None:
        out["explanation"] = facts.explanation
    return {k: v for k, v in out.items() if v is not None}


def body(msg: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact JSON, keys sorted, UTF-8."""
    return json.dumps(msg, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: bytes, timestamp: int, payload: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, timestamp "." body)>`` (``X-FairLens-Signature``).

    The timestamp is signed with the body, so a replay under another timestamp fails.
    """
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + payload, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: bytes, timestamp: str, payload: bytes, header: str, *, now: int, skew: int = 300
) -> bool:
    """A receiver's check (docs/OPERATIONS.md): the signature matches and the timestamp is
    within ``skew`` seconds of ``now``. Constant-time comparison."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > skew:
        return False
    return hmac.compare_digest(signature(secret, ts, payload), header)


def location(anomaly: Mapping[str, Any]) -> str:
    """Where a ``chain_failed`` finding's first anomaly is, in words (pure).

    Args:
        anomaly: ``seq``, ``kind``, and for a stored row ``table`` and ``row_id`` (names and
            numbers from the verifier, never a stored value).

    Returns:
        e.g. ``seq 12 (modified)`` or ``readings row 7 (seq 12) (row_modified)``.
    """
    seq, table = anomaly.get("seq"), anomaly.get("table")
    if table is None:
        where = f"seq {seq}"
    else:
        where = f"{table} row {anomaly.get('row_id', '?')}" + (
            "" if seq is None else f" (seq {seq})"
        )
    return f"{where} ({anomaly.get('kind', '?')})"


def headline(msg: dict[str, Any]) -> str:
    """One line: title, monitor, verdict and DIR with its interval."""
    parts = [f"{msg.get('title', msg.get('event'))}: monitor {msg.get('monitor')}"]
    if "verdict" in msg:
        parts.append(f"verdict {msg['verdict']}")
    d = msg.get("dir")
    if d:
        low, high = d.get("ci_low"), d.get("ci_high")
        interval = "" if low is None or high is None else f" [{low:.3f}, {high:.3f}]"
        parts.append(f"DIR {d['value']:.3f}{interval}")
    return ", ".join(parts)


def lines(msg: dict[str, Any]) -> list[str]:
    """The message as text lines (e-mail body, chat fields)."""
    out = [headline(msg)]
    if "anomaly" in msg:
        out.append(f"first anomaly at {location(msg['anomaly'])}; run `fairlens-monitor verify`")
    for g in msg.get("groups", []):
        out.append(f"group {g['label']}: {g['approved']} approved of {g['applicants']}")
    if "failed_runs" in msg:
        out.append(f"{msg['failed_runs']} failed runs in a row")
    if "alert_id" in msg:
        out.append(f"alert #{msg['alert_id']} ({msg.get('alert_state', '-')})")
    if "audit" in msg:
        out.append(f"audit record seq {msg['audit']['seq']}, hash {msg['audit']['hash']}")
    if "page_url" in msg:
        out.append(f"page: {msg['page_url']}")
    if "explanation" in msg:
        out.append(f"explanation: {msg['explanation']}")
    out.append(f"idempotency key {msg['idempotency_key']}")
    return out


def email_text(msg: dict[str, Any]) -> tuple[str, str]:
    """``(subject, plain-text body)`` of an e-mail."""
    return f"[FairLens] {headline(msg)}"[:200], "\n".join(lines(msg)) + "\n"


def slack_blocks(msg: dict[str, Any]) -> dict[str, Any]:
    """A Slack-compatible chat message: a header, the facts as fields, a link button."""
    text = headline(msg)
    fields = [{"type": "mrkdwn", "text": line[:2000]} for line in lines(msg)[1:10]]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": text[:150]}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    if "page_url" in msg:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the trend page"},
                        "url": msg["page_url"],
                    }
                ],
            }
        )
    return {"text": text[:3000], "blocks": blocks}


def backoff(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds before retry ``attempt + 1``: exponential, capped, with equal jitter.

    Args:
        attempt: attempts made so far (>= 1).
        base: the first delay (``notify.backoff_seconds``).
        cap: the longest delay (``notify.max_backoff_seconds``).
        jitter: a number in [0, 1) (``random.random()``; passed in so tests fix it).

    Returns:
        A delay in ``[d/2, d]`` where ``d = min(cap, base * 2 ** (attempt - 1))``.
    """
    step = min(cap, base * 2.0 ** min(max(attempt, 1) - 1, 60))
    return step / 2 + step / 2 * min(max(jitter, 0.0), 1.0)
