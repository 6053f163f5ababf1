"""How results are shown: console lines and JSON documents for the CLI (presentation only).

Keeps ``cli.py`` thin. Nothing here computes a metric or touches the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fairlens_monitor.audit import AuditRecord, rfc3339
from fairlens_monitor.store.models import Reading

if TYPE_CHECKING:  # the cycle pulls in pandas; read commands should not pay for it
    from fairlens_monitor.cycle import CycleOutcome
    from fairlens_monitor.measure import ScenarioResult


def fmt_dir(value: float | None) -> str:
    """Format a DIR for people: two decimals, or ``n/a`` when not computable."""
    return "n/a" if value is None else f"{value:.2f}"


def cycle_lines(outcome: CycleOutcome, *, echo_plaintext: bool) -> list[str]:
    """Return the console lines of one cycle, in the original spec's wording.

    Args:
        outcome: the committed cycle.
        echo_plaintext: also print the decrypted explanation (demo switch).

    Returns:
        A header line, then ``⚠ ALERT: ...`` with the token (and plaintext when asked), or
        ``✅ Model Fairness Stable. DIR = ...``.
    """
    ref, mon = outcome.reference.metrics, outcome.monitored.metrics
    lines = [
        f"[cycle {outcome.cycle_index} · run {outcome.run_id} · "
        f"{rfc3339(outcome.finished_at)}] drift={outcome.monitored.drift_level:.2f} "
        f"reference DIR={fmt_dir(ref['dir'])} monitored DIR={fmt_dir(mon['dir'])} "
        f"gap={mon['gap']:.2f}{' (gap alert)' if mon['gap_alert'] else ''}"
    ]
    if outcome.token is None:
        lines.append(f"✅ Model Fairness Stable. DIR = {fmt_dir(mon['dir'])}")
        return lines
    lines.append(f"⚠ ALERT: Fairness Drift Detected! DIR = {fmt_dir(mon['dir'])}")
    lines.append(f"Encrypted alert token: {outcome.token}")
    if echo_plaintext:
        lines.append(f"Decrypted alert: {outcome.monitored.explanation}")
    return lines


def scenario_json(result: ScenarioResult, *, token: str | None = None,
                  echo_plaintext: bool = False, with_alert: bool = False) -> dict[str, Any]:
    """Return one scenario in the original API's shape (metrics plus its inputs)."""
    doc = dict(result.metrics)
    doc.update(drift_level=result.drift_level, n_samples=result.n_samples, seed=result.seed)
    if with_alert:
        doc["explanation"] = result.explanation if echo_plaintext else None
        doc["encrypted_alert"] = token
    return doc


def cycle_json(outcome: CycleOutcome, audit_tail: list[AuditRecord], *,
               echo_plaintext: bool) -> dict[str, Any]:
    """Return a cycle as ``{fair_scenario, drifted_scenario, audit_tail, ...}``.

    ``drifted_scenario.explanation`` is the plaintext only when ``echo_plaintext`` is on;
    otherwise it is null and only ``encrypted_alert`` carries it.
    """
    return {
        "run_id": outcome.run_id,
        "cycle_index": outcome.cycle_index,
        "finished_at": rfc3339(outcome.finished_at),
        "fair_scenario": scenario_json(outcome.reference),
        "drifted_scenario": scenario_json(outcome.monitored, token=outcome.token,
                                          echo_plaintext=echo_plaintext, with_alert=True),
        "alert_id": outcome.alert_id,
        "audit_tail": [audit_json(r) for r in audit_tail],
    }


def audit_json(rec: AuditRecord) -> dict[str, Any]:
    """Return one audit record as a plain dict (the ``audit_history`` shape plus chain)."""
    return {"seq": rec.seq, "timestamp": rec.ts, "event_type": rec.event_type,
            "actor": rec.actor, "details": dict(rec.payload), "prev_hash": rec.prev_hash,
            "hash": rec.hash}


def reading_json(row: Reading) -> dict[str, Any]:
    """Return a stored reading as a plain dict with RFC 3339 times."""
    doc = {c.name: getattr(row, c.name) for c in Reading.__table__.columns}
    doc["measured_at"] = rfc3339(row.measured_at)
    return doc


def reading_line(row: Reading) -> str:
    """Return one stored reading as a fixed-width console line."""
    flags = ",".join(f for f, on in (("DIR", row.dir_alert), ("GAP", row.gap_alert)) if on)
    return (f"{rfc3339(row.measured_at)[:19]}Z run {row.run_id:>5} {row.scenario:<9} "
            f"drift={_num(row.drift_level)} DIR={fmt_dir(row.dir):>5} gap={row.gap:.3f} "
            f"{row.unprivileged_group}={row.unprivileged_approved}/{row.unprivileged_count} "
            f"{row.privileged_group}={row.privileged_approved}/{row.privileged_count} "
            f"{'ALERT ' + flags if flags else 'ok'}")


def audit_line(rec: AuditRecord) -> str:
    """Return one audit record as a console line (short hash)."""
    return f"{rec.seq:>6} {rec.ts} {rec.event_type:<16} {rec.actor:<7} {rec.hash[:16]}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
