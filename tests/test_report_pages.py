"""The examiner's pack's pages and files without a database (issue 19 item 10): hostile
labels, notes and numbers render safely in the HTML, the PDF and the chart; CSV cells are
written as spreadsheets cannot run; a long period is drawn in slices with outages still gaps;
a link planted in the pack's folder is never followed. The end-to-end pack is
tests/test_report.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def hostile_data(points: Sequence[tuple[object, ...]]) -> object:
    """A gathered report with hostile labels, notes and numbers (no database needed)."""
    from fairlens_monitor.ops.report import AlertEntry, Change, GroupLine, Integrity, ReportData

    evil = "<script>alert(1)</script>"
    return ReportData(
        monitor="cards",
        start=T0,
        end=T0 + timedelta(days=1),
        generated_at="2026-03-02T00:00:00.000000Z",
        integrity=Integrity(
            "2026-03-02T00:00:00.000000Z", 3, 1, 3, "ab" * 32, None, None, "anchor.jsonl", 3
        ),
        runs={},
        points=list(points),
        groups=[
            GroupLine("monitored", evil, "compared", 1, 0, 0, None, float("inf"), 0),
            GroupLine("monitored", "女性 " + "x" * 300, "compared", 1, 5, 5, float("nan"), 1.0, 1),
            GroupLine("monitored", "", "reference", 1, 5, 5, None, None, 0),
        ],
        alerts=[
            AlertEntry(
                1,
                "dir",
                "open",
                T0,
                None,
                None,
                float("-inf"),
                "k" * 16,
                "0" * 64,
                "encrypted",
                False,
                [],
            ),
        ],
        changes=[Change("not a time", "config_changed", evil, 2, [evil, "=1+1"])],
        methodology={},
        explanations="encrypted",
    )


@pytest.mark.parametrize(
    "points",
    [
        [],  # an empty period
        [("monitored", T0, None, None, None, None, "no_data")],
        [
            ("monitored", T0 + timedelta(hours=h), 0.5, 0.0, float("inf"), 1e-300, "adverse")
            for h in (0, 1, 2, 20)
        ],  # NULL/∞ bounds, an outage between hour 2 and 20
    ],
)
def test_pages_render_hostile_text_and_numbers_safely(
    points: list[tuple[object, ...]], tmp_path: Path
) -> None:
    from fairlens_monitor.ops.report_pdf import render_pdf
    from fairlens_monitor.ops.report_render import chart_png, render_html

    data = hostile_data(points)
    chart = chart_png(data)  # type: ignore[arg-type]
    assert chart.startswith(b"\x89PNG")
    html = render_html(data, chart, "f" * 16)  # type: ignore[arg-type]
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    pdf = render_pdf(data, chart, "f" * 16)  # type: ignore[arg-type]
    assert pdf.startswith(b"%PDF")
    pdfium = pytest.importorskip("pypdfium2")
    document = pdfium.PdfDocument(pdf)
    try:
        assert len(document) >= 1
        text = document[0].get_textpage().get_text_range()
        assert "Fairness monitoring report: cards" in text
    finally:
        document.close()


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (None, ""),
        ("", ""),
        (True, "true"),
        (-0.5, "-0.5"),
        (1e-300, "1e-300"),
        (float("inf"), "inf"),
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+1", "'+1"),
        ("@SUM", "'@SUM"),
        ("-x", "'-x"),
        (datetime(2026, 3, 1, 1, tzinfo=UTC), "2026-03-01T01:00:00.000000Z"),
        (datetime(2026, 3, 1, 1), "2026-03-01T01:00:00.000000Z"),  # naive = stored UTC
    ],
)
def test_csv_cells(value: object, written: str) -> None:
    from fairlens_monitor.ops.report_pack import cell

    assert cell(value) == written


def test_a_link_planted_in_the_folder_is_never_followed(tmp_path: Path) -> None:
    from fairlens_monitor.ops.report_pack import OutFolderError, _Folder

    outside = tmp_path / "victim.txt"
    outside.write_text("keep")
    folder = _Folder(tmp_path / "pack")
    folder.put("a.csv", b"x\n")
    (tmp_path / "pack" / "b.csv").symlink_to(outside)  # planted after the folder was opened
    with pytest.raises(OutFolderError, match=r"cannot create b\.csv"):
        folder.put("b.csv", b"overwrite?")
    assert outside.read_text() == "keep"
    folder.discard()  # removes what it wrote; the folder stays, someone else's link is in it
    assert [p.name for p in (tmp_path / "pack").iterdir()] == ["b.csv"]
    assert outside.read_text() == "keep"


def test_a_long_period_is_drawn_in_slices_and_an_outage_stays_a_gap() -> None:

    from fairlens_monitor.ops.report_render import BUCKETS, _broken, _bucketed, chart_note

    minutes = [m for m in range(1440) if not 600 <= m < 900]  # five hours without readings
    points = [("monitored", T0 + timedelta(minutes=m), 0.9, 0.8, 1.0, 0.1, "ok") for m in minutes]
    data = hostile_data(points)
    drawn = _bucketed(points, data)  # type: ignore[arg-type]
    assert len(drawn) <= BUCKETS
    assert {round(float(p[2]), 6) for p in drawn} == {0.9}  # the mean of equal readings
    times, dirs, *_ = _broken(drawn)
    breaks = [t for t, d in zip(times, dirs, strict=True) if math.isnan(d)]
    assert len(breaks) == 1
    assert T0 + timedelta(hours=10) <= breaks[0] <= T0 + timedelta(hours=15)
    assert "mean of the readings" in chart_note(data)  # type: ignore[arg-type]
    few = hostile_data(points[:100])
    assert _bucketed(points[:100], few) == points[:100]  # type: ignore[arg-type]
    assert "mean of the readings" not in chart_note(few)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "hours",
    [
        [12.0],  # the period's only reading
        [0.0, 1.0, 2.0, 12.0, 21.0, 22.0, 23.0],  # one reading between two outages
    ],
)
def test_a_reading_with_no_neighbour_is_drawn(hours: list[float]) -> None:
    """A line needs two points: a lone reading (the only one, or one between outages) was
    invisible on the chart though it is in the tables. It is drawn as a marker with its
    interval; looked for in the middle of the plot, away from the legend's sample line."""
    import io

    from PIL import Image

    from fairlens_monitor.ops.report_render import chart_png

    points = [
        ("monitored", T0 + timedelta(hours=h), 0.6 if h == 12 else 0.9, 0.55, 0.65, 0.3, "ok")
        for h in hours
    ]
    image = Image.open(io.BytesIO(chart_png(hostile_data(points)))).convert("RGB")  # type: ignore[arg-type]
    width, height = image.size
    middle = image.crop((int(width * 0.45), 0, int(width * 0.55), height))
    blue = (0x1F, 0x5F, 0xA8)  # the monitored scenario's colour
    pixels = [middle.getpixel((x, y)) for x in range(middle.width) for y in range(middle.height)]
    assert sum(p == blue for p in pixels) >= 2 * 10  # a marker on each of the two charts


def test_the_pdf_groups_header_keeps_its_words_whole() -> None:
    """The groups table's header was cut inside words ("pooled rat" / "e", "reading" / "s")
    by too narrow columns; every header word is printed whole."""
    from fairlens_monitor.ops.report_pdf import render_pdf
    from fairlens_monitor.ops.report_render import chart_png

    data = hostile_data([("monitored", T0, 0.9, 0.8, 1.0, 0.1, "ok")])
    pdf_bytes = render_pdf(data, chart_png(data), "f" * 16)  # type: ignore[arg-type]
    pdfium = pytest.importorskip("pypdfium2")
    doc = pdfium.PdfDocument(pdf_bytes)
    text = " ".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    header = text.split("3. Groups", 1)[1].split("monitored", 1)[0]  # up to the first row
    words = set(header.split())
    for word in (
        "scenario",
        "readings",
        "applicants",
        "approved",
        "pooled",
        "rate",
        "impact",
        "ratio",
        "min",
        "max",
        "adverse",
    ):
        assert word in words, word
