"""The examiner's pack, its PDF: ``report.pdf``, the same sections as ``report.html``.

Drawn with fpdf2 (pure Python, installed from pip alone: no system library such as pango).
The text font is DejaVu Sans, read from the copy matplotlib ships (``mpl-data/fonts/ttf``),
so every character the report prints (—, →, ≥, group labels in any script DejaVu covers)
is embedded and the PDF looks the same on every reader. The chart is the PNG that
``report_render.chart_png`` drew; the wording comes from ``report_render`` too, so the two
formats never say different things.
"""

from __future__ import annotations

from pathlib import Path

from fairlens_monitor.ops.report import ReportData
from fairlens_monitor.ops.report_render import (
    chart_note,
    methodology,
    num,
    period_line,
    span,
    stamp,
    summary_rows,
    when,
)


def _font_folder() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def render_pdf(data: ReportData, chart: bytes, report_key: str) -> bytes:
    """``report.pdf``: the report on A4 pages.

    Args:
        data: the gathered report.
        chart: the chart's PNG.
        report_key: the report public key's fingerprint.

    Returns:
        The PDF's bytes.
    """
    import io

    from fpdf import FPDF  # deferred: only a report draws
    from fpdf.enums import WrapMode, XPos, YPos

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    fonts = _font_folder()
    pdf.add_font("DejaVu", "", str(fonts / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(fonts / "DejaVuSans-Bold.ttf"))
    pdf.set_title(f"Fairness monitoring report: {data.monitor}")
    pdf.set_author("FairLens Monitor")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_margins(15, 15, 15)

    def footer() -> None:
        pdf.set_y(-12)
        pdf.set_font("DejaVu", size=7)
        pdf.cell(0, 5, f"{data.monitor} · {period_line(data)} · page {pdf.page_no()}", align="C")

    pdf.footer = footer  # type: ignore[method-assign]
    pdf.add_page()

    def heading(text: str, size: float = 13) -> None:
        pdf.ln(3)
        pdf.set_font("DejaVu", "B", size)
        pdf.multi_cell(0, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("DejaVu", size=9)

    def para(text: str, size: float = 9) -> None:
        pdf.set_font("DejaVu", size=size)
        pdf.multi_cell(0, 4.6, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")
        pdf.ln(1.5)

    def table(rows: list[list[str]], widths: tuple[float, ...], *, head: bool = True) -> None:
        pdf.set_font("DejaVu", size=7.5)
        with pdf.table(
            col_widths=widths,
            text_align="LEFT",
            first_row_as_headings=head,
            line_height=3.8,
            wrapmode=WrapMode.CHAR,
            padding=1,
        ) as t:
            for values in rows:
                r = t.row()
                for value in values:
                    r.cell(value)
        pdf.ln(2)

    heading(f"Fairness monitoring report: {data.monitor}", 16)
    para(f"Period {period_line(data)}. Generated {data.generated_at}. All times are UTC.")

    heading("1. Period summary")
    table([[k, v] for k, v in summary_rows(data)], (36, 144), head=False)

    heading("2. DIR and intervals over time")
    pdf.image(io.BytesIO(chart), w=pdf.epw)
    para(chart_note(data), 8)

    heading("3. Groups")
    if data.groups:
        rows = [
            [
                "scenario",
                "group",
                "role",
                "readings",
                "applicants",
                "approved",
                "pooled\nrate",
                "impact ratio\nmin – max",
                "adverse",
            ]
        ]
        rows += [
            [
                g.scenario,
                g.label,
                g.role,
                str(g.readings),
                str(g.applicants),
                str(g.approved),
                num(g.rate),
                span(g.ir_min, g.ir_max),
                str(g.adverse),
            ]
            for g in data.groups
        ]
        table(rows, (17, 36, 16, 16, 18, 17, 16, 30, 14))
    else:
        para("No group results in this period.")

    heading("4. Alerts")
    if not data.alerts:
        para("No alert episode was open during this period.")
    for a in data.alerts:
        heading(f"Alert #{a.id} ({a.kind}) — {a.state}", 10.5)
        para(
            f"Raised {when(a.created_at)}; closed {when(a.closed_at)}; verdict "
            f"{a.verdict or '—'}; DIR when raised {num(a.dir)}."
        )
        para(f"Explanation: {a.explanation}. Token SHA-256 {a.token_sha256}.", 8)
        steps = [["time (UTC)", "step", "by", "note", "seq", "record hash"]]
        steps += [
            [stamp(s.ts), s.action, s.by, s.note or "—", str(s.seq), s.hash] for s in a.timeline
        ]
        if len(steps) == 1:
            para("No audit event of this alert up to the verified head.", 8)
        else:
            table(steps, (32, 24, 16, 40, 10, 58))

    heading("5. Configuration changes in the period")
    if data.changes:
        rows = [["time (UTC)", "event", "by", "seq", "what changed"]]
        rows += [
            [stamp(c.ts), c.event, c.actor, str(c.seq), "\n".join(c.keys) or "—"]
            for c in data.changes
        ]
        table(rows, (32, 26, 20, 10, 92))
    else:
        para("No configuration change was recorded in this period.")

    heading("6. Methodology")
    for text in methodology(data):
        para(text)

    heading("7. Integrity")
    para(data.integrity.statement())
    facts = [["chain head", f"seq {data.integrity.head_seq}, {data.integrity.head_hash}"]]
    cp = data.integrity.checkpoint
    if cp is not None:
        facts.append(
            ["covering checkpoint", f"seq {cp.seq}, {cp.head_hash}, signed {stamp(cp.ts)} UTC"]
        )
        facts.append(["checkpoint public key", str(data.integrity.checkpoint_key_id)])
    facts.append(["report public key", f"{report_key} (report_ed25519.pub)"])
    table(facts, (35, 145), head=False)
    para(
        "Check this pack: openssl pkeyutl -verify -pubin -inkey report_ed25519.pub -rawin "
        "-in MANIFEST.json -sigfile MANIFEST.json.sig, then compare each file's SHA-256 with "
        "MANIFEST.json (sha256sum).",
        8,
    )
    return bytes(pdf.output())
