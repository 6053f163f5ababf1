"""The operator's console lines for one cycle: what ``once`` and the daemon print.

simulate → measure → detect → alert → **log**, seen from the terminal: a header with the
verdict, then the alert (with its encrypted token) or the stable line, in the original
spec's wording. Here, in the operations layer, because the daemon prints them itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.fairness.stats import format_interval

if TYPE_CHECKING:  # the cycle pulls in pandas; read commands should not pay for it
    from fairlens_monitor.ops.cycle import CycleOutcome
    from fairlens_monitor.sources.base import Batch


def fmt_dir(value: float | None) -> str:
    """Format a DIR for people: two decimals, or ``n/a`` when not computable."""
    return "n/a" if value is None else f"{value:.2f}"


def cycle_lines(outcome: CycleOutcome, *, echo_plaintext: bool) -> list[str]:
    """Return the console lines of one cycle, in the original spec's wording.

    Args:
        outcome: the committed cycle.
        echo_plaintext: also print the decrypted explanation (demo switch).

    Returns:
        A header line with the verdict, then ``⚠ ALERT: ...`` with the token (and plaintext
        when asked) when an alert episode opens, a note while one stays open or when one
        resolves, or ``✅ Model Fairness Stable. DIR = ...``.
    """
    head = f"[cycle {outcome.cycle_index} · run {outcome.run_id} · {rfc3339(outcome.finished_at)}]"
    m, batch = outcome.monitored, outcome.batch
    where = "" if batch is None else f"{_batch_text(batch)} "
    if m is None:
        return [f"{head} {where}→ no_data reading; alerts unchanged"]
    mon = m.metrics
    h = m.headline.comparison
    ci = (
        ""
        if h is None or h.ci_low is None
        else f" [{format_interval(h.ci_low, h.ci_high, digits=2, sep=', ')}]"
    )
    drift = "" if m.drift_statistic is None else f" cusum={m.drift_statistic:.1f}"
    if outcome.reference is not None:
        where = (
            f"drift={m.drift_level or 0:.2f} "
            f"reference DIR={fmt_dir(outcome.reference.metrics['dir'])} monitored "
        )
    lines = [
        f"{head} {where}DIR={fmt_dir(mon['dir'])}{ci} "
        f"verdict={m.verdict}{drift} "
        f"gap={mon['gap']:.2f}{' (gap alert)' if mon['gap_alert'] else ''}"
    ]
    opened = [c for c in outcome.alerts if c.action == "open"]
    for change in opened:
        what = (
            "Fairness Drift Detected!"
            if change.alert.kind == "dir"
            else "DIR drifting down (CUSUM above its threshold)!"
        )
        lines.append(
            f"⚠ ALERT: {what} DIR = {fmt_dir(mon['dir'])}"
            + ("" if change.alert.kind == "dir" else f" (alert #{change.alert.id})")
        )
    if opened:
        lines.append(f"Encrypted alert token: {outcome.token}")
        if echo_plaintext:
            lines.append(f"Decrypted alert: {m.explanation}")
        return lines
    for change in outcome.alerts:
        if change.action == "continue":
            lines.append(
                f"⚠ {change.alert.kind} alert #{change.alert.id} still "
                f"{change.alert.state}. DIR = {fmt_dir(mon['dir'])}"
            )
        elif change.action == "resolve":
            lines.append(
                f"✅ {change.alert.kind} alert #{change.alert.id} resolved after "
                f"{change.alert.clean_streak} clean readings."
            )
    if m.verdict == "inconclusive":
        lines.append(f"… Inconclusive: {m.assessment.reason}. DIR = {fmt_dir(mon['dir'])}")
    elif m.verdict == "ok" and not any(c.action == "continue" for c in outcome.alerts):
        lines.append(f"✅ Model Fairness Stable. DIR = {fmt_dir(mon['dir'])}")
    return lines


def _batch_text(batch: Batch) -> str:
    lineage = batch.lineage
    files = (
        ""
        if lineage["kind"] != "file"
        else f" from {lineage['files_read']} file(s)"
        + (f" ({lineage['files_skipped']} already measured)" if lineage["files_skipped"] else "")
    )
    window = (
        ""
        if batch.window is None
        else f" in [{rfc3339(batch.window[0])[:19]}Z, {rfc3339(batch.window[1])[:19]}Z)"
    )
    return f"{lineage['kind']}: {batch.decisions:,} decisions{files}{window}"
