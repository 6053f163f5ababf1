"""What ``measure`` prints: an excluded group's share with enough digits to see why, and group
labels shown whole and aligned (CJK, combining marks, control characters) — issue 13's small
things. The oracle for alignment is unicodedata's East Asian width, applied independently.
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairlens_monitor.cli.measure_report import report_lines
from fairlens_monitor.cli.textwidth import display_width, printable, wrap
from fairlens_monitor.fairness.groups import (
    GroupSpec,
    assess,
    excluded_reason,
)
from fairlens_monitor.fairness.report import to_json
from tests.factories import table_from_frame
from tests.test_groups import decisions


def columns(text: str) -> int:
    """Terminal columns, counted independently: wide/fullwidth 2, combining 0, else 1."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def test_an_excluded_group_of_one_in_51_shows_why() -> None:
    df = decisions({"A": (30, 50), "B": (0, 1)})
    spec = GroupSpec(
        attributes=("g",),
        reference="highest",
        privileged_value=None,
        unprivileged_value=None,
        min_group_share=0.02,
    )
    reason = assess(table_from_frame(df, spec, "approved"), spec).excluded[0].reason
    assert reason == "1 of 51 rows = 1.96% (< 2.00%)"


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 10**7), st.integers(1, 10**7), st.sampled_from([0.01, 0.02, 0.05, 0.1, 0.005])
)
def test_the_shown_share_is_visibly_below_the_minimum(n: int, extra: int, minimum: float) -> None:
    total = n + extra
    if n / total >= minimum:  # included, as assess decides
        return
    reason = excluded_reason(n, total, minimum)
    match = re.fullmatch(r"[\d,]+ of [\d,]+ rows = ([\d.]+)% \(< ([\d.]+)%\)", reason)
    assert match is not None
    shown, limit = float(match[1]), float(match[2])
    assert reason.startswith(f"{n:,} of {total:,} rows")
    if Fraction(n, total) * 100 <= Fraction(minimum) * 100 - Fraction(1, 10**6):
        assert shown < limit  # visibly different (to 6 decimals at most)
    assert shown > 0


def report(labels: list[str]) -> dict[str, object]:
    sizes = {label: (40 + 5 * i, 100) for i, label in enumerate(labels)}
    df = decisions(sizes)
    spec = GroupSpec(
        attributes=("g",), reference="highest", privileged_value=None, unprivileged_value=None
    )
    result = assess(table_from_frame(df, spec, "approved"), spec)
    return {
        "file": "d.csv",
        "rows": len(df),
        "outcome": "approved",
        "protected_attribute": "g",
        "settings": {"reference": "highest"},
        "missing_values": [""],
        "label": None,
        **to_json(result),
    }


def test_cjk_and_long_labels_keep_the_columns_aligned() -> None:
    labels = ["中文標籤", "Ｆｕｌｌ", "e\u0301te", "a" * 33, "plain"]
    lines = report_lines(report(labels))
    table = [line for line in lines[3:] if " compared " in line or " reference " in line]
    assert len(table) == len(labels)
    starts = {columns(line.split(" compared ")[0].split(" reference ")[0]) for line in table}
    assert starts == {33}  # every role column starts in the same terminal column
    assert any(("a" * 33) in line for line in lines)  # shown whole, not cut at 20


def test_a_label_longer_than_forty_columns_wraps_and_keeps_every_character() -> None:
    label = "長" * 30 + "-tail"  # 65 columns
    lines = report_lines(report([label, "x"]))
    row = next(i for i, line in enumerate(lines) if line.startswith("長"))
    first, rest = lines[row], lines[row + 1]
    assert columns(first.split(" compared ")[0].split(" reference ")[0]) == 40
    assert (first[:20] + rest) == label
    assert wrap(label, 40) == ["長" * 20, "長" * 10 + "-tail"]


@pytest.mark.parametrize(
    ("text", "shown"),
    [("a\nb", "a\\nb"), ("x\ty", "x\\ty"), ("z\u200bw", "z\\u200bw"), ("中", "中")],
)
def test_control_characters_are_escaped(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert "\n" not in "".join(report_lines(report([text, "other"])))


@given(st.text(max_size=30))
def test_display_width_agrees_with_unicodedata(text: str) -> None:
    text = printable(text)
    assert display_width(text) == columns(text) or any(
        unicodedata.category(c) in ("Mn", "Me", "Cf") for c in text
    )
