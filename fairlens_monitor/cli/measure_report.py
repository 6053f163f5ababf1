"""The ``measure`` command's report for people: a table per group, then the verdict.

Presentation only: :func:`fairlens_monitor.ops.measure_file.measure_file` computes the
report (a plain dict, also the ``--json`` output); this renders it with labels that wrap
instead of being cut, in terminal columns (wide characters count double).
"""

from __future__ import annotations

from typing import Any

from fairlens_monitor.cli.textwidth import display_width, pad, printable, wrap
from fairlens_monitor.fairness.stats import format_interval, format_p

LABEL_COLUMNS = 40  # the group column (20 wide) widens to the longest label up to this, then wraps


def report_lines(report: dict[str, Any]) -> list[str]:
    """Render a :func:`measure_file` report for people (a table per group, then the verdict)."""
    names = [printable(g["group"]) for g in report["groups"]]
    width = min(max([20, *map(display_width, names)]), LABEL_COLUMNS)
    listed = [repr(v) for v in report.get("missing_values", [""]) if v]
    lines = [
        f"{report['file']}: {report['rows']:,} decisions, outcome '{report['outcome']}', "
        f"attribute '{report['protected_attribute']}', reference {report['reference']!r} "
        f"({report['settings']['reference']})",
        "missing values: " + ", ".join(["empty cells", *listed]),
        f"{pad('group', width)} {'role':<9} {'approved':>11} {'rate':>6} {'ratio':>6} "
        f"{'95% CI':>13} {'p (Holm)':>9} {'test':>6} {'shortfall':>9}  verdict",
    ]
    for g, name in zip(report["groups"], names, strict=True):
        first, *more = wrap(name, width)  # a long label wraps below itself, never cut
        approved = f"{g['approved']}/{g['applicants']}"
        row = f"{pad(first, width)} {g['role']:<9} {approved:>11} {g['rate']:>6.3f}"
        if "impact_ratio" in g:
            ratio = "n/a" if g["impact_ratio"] is None else f"{g['impact_ratio']:.3f}"
            ci = format_interval(g["ci_low"], g["ci_high"])
            row += (
                f" {ratio:>6} {ci:>13} {format_p(g['p_adjusted'], g['test']):>9} "
                f"{g['test']:>6} "
                f"{g['shortfall']:>9.1f}  {g['verdict']}"
            )
        elif g["role"] == "excluded":
            row += f"  (excluded: {g['reason']})"
        lines.append(row)
        lines.extend(more)
    lines.append(f"verdict: {report['verdict']} — {printable(report['reason'])}")
    metrics = report.get("outcome_metrics")
    if metrics:
        lines.append(
            "ground truth ('"
            + str(report["label"])
            + "'): "
            + ", ".join(
                f"{name.replace('_', ' ')} {'n/a' if v is None else f'{v:.3f}'}"
                for name, v in metrics.items()
            )
        )
        lines.extend(ground_truth_lines(report["groups"]))
    if "explanation" in report:
        e = report["explanation"]
        lines.append(f"explanation by {e['feature']}: " + "; ".join(e["causes"]))
    return lines


def _num(value: float | None, width: int = 6) -> str:
    return f"{'n/a' if value is None else f'{value:.3f}':>{width}}"


def _with_ci(entry: dict[str, Any], key: str) -> str:
    value, ci = entry[key], entry[f"{key}_ci"]
    if value is None:
        return f"{'n/a':>21}"
    bounds = "" if ci is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return f"{value:>6.3f}{bounds:<15}"


def ground_truth_lines(groups: list[dict[str, Any]]) -> list[str]:
    """Render the per-group error rates compactly: one row per group, n/a where undefined.

    The rates, then (compared groups) the equal opportunity ratio, the FPR difference and
    the average odds difference with their 95 % intervals, and AUC and calibration gap when
    a score was measured. Every other difference and ratio is in ``--json``.
    """
    rows = [g for g in groups if "ground_truth" in g]
    if not rows:
        return []
    scored = any("auc" in g["ground_truth"] for g in rows)
    lines = [
        (
            f"{'group':<20} {'TPR':>6} {'FPR':>6} {'FNR':>6} {'PPV':>6} {'FDR':>6} "
            f"{'FOR':>6}  {'TPR ratio (95% CI)':<21} {'FPR diff (95% CI)':<21} "
            f"{'avg odds diff':<21}" + (f" {'AUC':>6} {'calib':>6}" if scored else "")
        ).rstrip()
    ]
    for g in rows:
        t = g["ground_truth"]
        row = f"{g['group'][:20]:<20} " + " ".join(
            _num(t[k]) for k in ("tpr", "fpr", "fnr", "precision", "fdr", "for")
        )
        vs = t.get("vs_reference")
        if vs:
            row += (
                f"  {_with_ci(vs['tpr'], 'ratio')} {_with_ci(vs['fpr'], 'difference')} "
                f"{_with_ci(vs['average_odds'], 'difference')}"
            )
        else:
            row += f"  {'(reference)' if g['role'] == 'reference' else '':<21} {'':<21} {'':<21}"
        if scored:
            row += f" {_num(t.get('auc'))} {_num(t.get('calibration_gap'))}"
        lines.append(row.rstrip())
    return lines
