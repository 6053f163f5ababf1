"""How results are shown: console lines and JSON documents for the CLI (presentation only).

Keeps the commands thin. Nothing here computes a metric or touches the database. A cycle's
console lines (:func:`~fairlens_monitor.ops.console.cycle_lines`) and an audit record's
JSON (:func:`~fairlens_monitor.audit.events.audit_json`) are re-exported from the layers
that own them, since the daemon and the export print them too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "alert_json",
    "alert_line",
    "audit_json",
    "audit_line",
    "cycle_json",
    "cycle_lines",
    "fmt_dir",
    "reading_json",
    "reading_line",
    "scenario_json",
    "tampered_lines",
    "where",
]

from fairlens_monitor.audit.chain import AuditRecord, rfc3339
from fairlens_monitor.audit.events import audit_json, where
from fairlens_monitor.audit.verify import ChainReport
from fairlens_monitor.fairness.stats import format_p
from fairlens_monitor.ops.console import cycle_lines, fmt_dir
from fairlens_monitor.store.models import DEFAULT_MONITOR, Alert, Reading

if TYPE_CHECKING:  # the cycle pulls in pandas; read commands should not pay for it
    from fairlens_monitor.monitoring.measure import ScenarioResult
    from fairlens_monitor.ops.cycle import CycleOutcome


def scenario_json(
    result: ScenarioResult,
    *,
    token: str | None = None,
    echo_plaintext: bool = False,
    with_alert: bool = False,
) -> dict[str, Any]:
    """Return one scenario in the original API's shape plus its ``statistics``."""
    doc = dict(result.metrics)
    doc.update(
        drift_level=result.drift_level,
        n_samples=result.n_samples,
        seed=result.seed,
        statistics=result.statistics_json(),
    )
    if with_alert:
        doc["explanation"] = result.explanation if echo_plaintext else None
        doc["encrypted_alert"] = token
    return doc


def cycle_json(
    outcome: CycleOutcome, audit_tail: list[AuditRecord], *, echo_plaintext: bool
) -> dict[str, Any]:
    """Return a cycle as ``{fair_scenario, drifted_scenario, alerts, audit_tail, ...}``.

    ``drifted_scenario.explanation`` is the plaintext only when ``echo_plaintext`` is on;
    otherwise it is null and only ``encrypted_alert`` carries it. ``alerts`` lists the
    episode transitions of this cycle (``open``, ``continue``, ``count``, ``resolve``).
    """
    return {
        "run_id": outcome.run_id,
        "cycle_index": outcome.cycle_index,
        "finished_at": rfc3339(outcome.finished_at),
        "verdict": outcome.verdict,
        "source": None if outcome.batch is None else outcome.batch.summary(),
        "fair_scenario": outcome.reference and scenario_json(outcome.reference),
        "drifted_scenario": outcome.monitored
        and scenario_json(
            outcome.monitored, token=outcome.token, echo_plaintext=echo_plaintext, with_alert=True
        ),
        "alert_id": outcome.alert_id,
        "alerts": [
            {
                "action": c.action,
                "kind": c.alert.kind,
                "alert_id": c.alert.id,
                "state": c.alert.state,
                "clean_streak": c.alert.clean_streak,
            }
            for c in outcome.alerts
        ],
        "audit_tail": [audit_json(r) for r in audit_tail],
    }


def reading_json(row: Reading) -> dict[str, Any]:
    """Return a stored reading as a plain dict with RFC 3339 times."""
    doc = {c.name: getattr(row, c.name) for c in Reading.__table__.columns}
    doc["measured_at"] = rfc3339(row.measured_at)
    for name in ("window_start", "window_end"):
        doc[name] = None if doc[name] is None else rfc3339(doc[name])
    return doc


def reading_line(row: Reading) -> str:
    """Return one stored reading as a fixed-width console line."""
    flags = ",".join(
        f
        for f, on in (("DIR", row.dir_alert), ("GAP", row.gap_alert), ("DRIFT", row.drift_alert))
        if on
    )
    p = "" if row.p_value is None else f" p={format_p(row.p_value, row.test or 'none')}"
    gap = "-" if row.gap is None else f"{row.gap:.3f}"
    return (
        f"{rfc3339(row.measured_at)[:19]}Z run {row.run_id:>5} {_monitor(row.monitor)}"
        f"{row.scenario:<9} "
        f"{_origin(row)} DIR={fmt_dir(row.dir):>5}{p} gap={gap} "
        f"{row.group_label}={row.group_approved}/{row.group_applicants} "
        f"{row.reference_label}={row.reference_approved}/{row.reference_applicants} "
        f"verdict={row.verdict or 'n/a'}{' flags=' + flags if flags else ''}"
    )


def _monitor(name: str) -> str:
    """A monitor's name as a line's column; nothing for ``default`` (a single-monitor config's
    lines stay as they were)."""
    return "" if name == DEFAULT_MONITOR else f"{name} "


def _origin(row: Reading) -> str:
    if row.source == "simulator" or row.source is None:
        return f"drift={_num(row.drift_level)}"
    return f"{row.source}:n={row.n_samples or 0}"


def alert_json(row: Alert) -> dict[str, Any]:
    """Return a stored alert without its token, times in RFC 3339."""
    doc = {c.name: getattr(row, c.name) for c in Alert.__table__.columns if c.name != "token"}
    for name in ("created_at", "closed_at"):
        doc[name] = None if doc[name] is None else rfc3339(doc[name])
    return doc


def alert_line(row: Alert) -> str:
    """Return one alert as a console line."""
    closed = "" if row.closed_at is None else f" closed {rfc3339(row.closed_at)[:19]}Z"
    return (
        f"#{row.id:<5} {rfc3339(row.created_at)[:19]}Z {_monitor(row.monitor)}"
        f"{row.kind:<5} {row.state:<12} "
        f"verdict={row.verdict or 'n/a'} DIR={fmt_dir(row.dir)} run {row.run_id}"
        f" reading {row.reading_id}{closed}"
    )


def audit_line(rec: AuditRecord) -> str:
    """Return one audit record as a console line (short hash), ending with the monitor the
    event names, if any."""
    monitor = rec.payload.get("monitor")
    named = f" {monitor}" if isinstance(monitor, str) else ""
    return f"{rec.seq:>6} {rec.ts} {rec.event_type:<16} {rec.actor:<7} {rec.hash[:16]}{named}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


ROW_KINDS = frozenset({"row_modified", "row_missing", "row_unrecorded"})


def tampered_lines(report: ChainReport) -> list[str]:
    """``verify``'s human lines for a report with anomalies, ending in a verdict line.

    When only stored rows differ, the events' hashes did hold: say so, but never in words
    that read as "all is well" beside the rows that do not match.
    """
    first, found = report.anomalies[0], report.anomalies
    rows = [a for a in found if a.kind in ROW_KINDS]
    if len(rows) == len(found):
        head = (
            f"audit chain TAMPERED: the events' hashes hold up to seq "
            f"{report.last_verified_seq}, but stored rows do not match the digests the "
            f"chain recorded ({len(rows)} found; first: {where(first)}: {first.kind})"
        )
    else:
        head = (
            f"audit chain TAMPERED: first broken {where(first)} ({first.kind}: "
            f"{first.detail}); {len(found)} anomalies in {report.count} events ("
            f"{len(rows)} of them stored rows); the chain: {report.verified_text}"
        )
    return [
        head,
        *(f"  {where(a)}: {a.kind}: {a.detail}" for a in found),
        f"verdict: TAMPERED ({len(found)} anomalies; exit 1)",
    ]
