"""`measure`'s pyarrow reader gives exactly the pandas reader's counts and errors.

``count_file`` reads a plain CSV with pyarrow (:mod:`fairlens_monitor.sources.arrowcsv`),
group and decision columns dictionary-encoded by the parser, and counts on integer codes
(``counts.normalise``). Every case here is counted both ways — the reference is the pandas
reader (``iter_decisions`` without ``fast``) reduced chunk by chunk — and must give the
same count table, or the same error message.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness import counts
from fairlens_monitor.fairness.cells import numeric_cells
from fairlens_monitor.fairness.groups import GroupSpec, group_labels
from fairlens_monitor.fairness.metrics import binary_outcome, numbers
from fairlens_monitor.ops.file_count import count_file, iter_decisions
from fairlens_monitor.sources.arrowcsv import FastReadRefused, arrow_chunks

GERMAN = Path(__file__).resolve().parent / "data" / "german_credit.csv"
SEX = GroupSpec(attributes=("sex",), privileged_value="male", unprivileged_value=None)


def by_pandas(
    path: Path,
    spec: GroupSpec,
    outcome: str,
    label: str | None = None,
    *,
    chunk_rows: int,
    missing_values: Collection[str] = (),
) -> pd.DataFrame:
    """The reference: the pandas reader's chunks, each normalised, then combined."""
    needed = list(dict.fromkeys([*spec.attributes, outcome, *filter(None, [label])]))
    tables = [
        counts.normalise(
            chunk,
            spec,
            outcome,
            label=label,
            where=f"file {path.name}",
            missing_values=missing_values,
        )
        for chunk in iter_decisions(path, needed, chunk_rows)
        if not chunk.empty
    ]
    if not tables:
        raise DataError(f"{path.name}: no decisions to measure")
    return counts.combine(tables)


def outcome_of(call: object) -> tuple[str, object]:
    """("table", the frame) or ("error", its message) of a zero-argument call."""
    assert callable(call)
    try:
        return "table", call()
    except DataError as exc:
        return "error", str(exc).split(" (in rows")[0]  # the pandas path names no rows


def same(a: tuple[str, object], b: tuple[str, object]) -> None:
    assert a[0] == b[0], (a, b)
    if a[0] == "table":
        assert isinstance(a[1], pd.DataFrame)
        assert isinstance(b[1], pd.DataFrame)
        pd.testing.assert_frame_equal(a[1], b[1])
    else:
        assert a[1] == b[1]


SPECS = [
    (SEX, "risk", None),
    (SEX, "risk", "risk"),
    (
        GroupSpec(attributes=("sex", "housing"), reference="highest", privileged_value=None),
        "risk",
        None,
    ),
    (
        GroupSpec(attributes=("age",), bands={"age": (25.0, 40.0)}, privileged_value=">=40"),
        "risk",
        None,
    ),
    (GroupSpec(attributes=("job",), reference="highest", privileged_value=None), "risk", "risk"),
]


@pytest.mark.parametrize(("spec", "outcome", "label"), SPECS)
@pytest.mark.parametrize("chunk_rows", [97, 500_000])
def test_german_credit_counts_the_same_both_ways(
    spec: GroupSpec, outcome: str, label: str | None, chunk_rows: int
) -> None:
    fast = count_file(GERMAN, spec, outcome, label, chunk_rows=chunk_rows)
    pd.testing.assert_frame_equal(
        fast, by_pandas(GERMAN, spec, outcome, label, chunk_rows=chunk_rows)
    )


def test_the_fast_reader_is_used_and_codes_the_group_columns() -> None:
    chunks = list(arrow_chunks(GERMAN, ["sex", "risk", "age"], 400, coded=["sex", "risk"]))
    assert [len(c) for c in chunks] == [400, 400, 200]  # chunk_rows exactly, as pandas
    assert isinstance(chunks[0]["sex"].dtype, pd.CategoricalDtype)
    assert isinstance(chunks[0]["age"].dtype, pd.StringDtype)
    pandas = pd.read_csv(GERMAN, usecols=["sex", "risk", "age"], dtype=object)
    for column in ("sex", "risk", "age"):
        read = pd.concat([c[column].astype(object) for c in chunks], ignore_index=True)
        assert read.tolist() == pandas[column].tolist()


HEADER = "g,y,z\n"
CASES: dict[str, str | bytes] = {
    "plain": HEADER + "a,1,x\nb,0,x\n" * 40,
    "bom and crlf": "\ufeff" + (HEADER + "a,1,x\nb,0,x\n" * 40).replace("\n", "\r\n"),
    "quoted newline and comma": HEADER + '"a\nb",1,x\n"c,d",0,x\n' * 40,
    "blank and whitespace labels": HEADER + "a,1,x\n,0,x\n  ,1,x\n b ,0,x\n" * 20,
    "a blank only in a later chunk": HEADER + "a,1,x\nb,0,x\n" * 30 + ",1,x\n" * 5,
    "listed missing value": HEADER + "a,1,x\nNA,0,x\nb,1,x\n" * 20,
    "outcome words": HEADER + "a,Yes,x\nb,no,x\na,TRUE,x\nb,0.0,x\n" * 20,
    "outcome not binary": HEADER + "a,1,x\nb,maybe,x\n" * 20,
    "outcome missing": HEADER + "a,1,x\nb,,x\n" * 20,
    "personal label": HEADER + "a,1,x\njane@example.com,0,x\n" * 20,
    "short row (pandas: missing cells)": HEADER + "a,1,x\nb,0\n" * 20,
    "too many fields": HEADER + "a,1,x\nb,0,x,extra\n" * 20,
    "not utf-8": (HEADER + "a,1,x\n").encode() + b"\xff\xfe,0,x\n" * 20,
    "duplicate header": "g,y,g\n" + "a,1,b\nb,0,a\n" * 20,
    "header only": HEADER,
    "blank lines": HEADER + "a,1,x\n\nb,0,x\n\n" * 20,
    "quotes": HEADER + '"a",1,x\n"b ""q""",0,x\nc"d,1,x\n' * 20,
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("chunk_rows", [7, 1_000])
def test_hard_csvs_count_or_fail_the_same_both_ways(
    tmp_path: Path, name: str, chunk_rows: int
) -> None:
    path = tmp_path / "d.csv"
    content = CASES[name]
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    spec = GroupSpec(attributes=("g",), reference="highest", privileged_value=None)
    missing = ["NA"] if "missing value" in name else []
    fast = outcome_of(
        lambda: count_file(path, spec, "y", chunk_rows=chunk_rows, missing_values=missing)
    )
    ref = outcome_of(
        lambda: by_pandas(path, spec, "y", chunk_rows=chunk_rows, missing_values=missing)
    )
    if name == "header only":
        assert fast[0] == ref[0] == "error"
        assert "no decisions" in str(fast[1])
        return
    same(fast, ref)


def test_a_file_pyarrow_refuses_is_signalled_not_reported(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text(HEADER + "a,1,x\nb,0\n")
    with pytest.raises(FastReadRefused):
        list(arrow_chunks(path, ["g", "y"], 10, coded=["g", "y"]))


def text_normalise(
    df: pd.DataFrame,
    spec: GroupSpec,
    outcome: str,
    *,
    label: str | None = None,
    stratum: str | None = None,
    weights: str | None = None,
    score: str | None = None,
    score_bins: int = counts.DEFAULT_SCORE_BINS,
) -> pd.DataFrame:
    """Counting as it was before codes: a label text per row, one groupby over the texts."""
    w = None if weights is None else df[weights].to_numpy(dtype=float)
    out = {
        counts.GROUP: group_labels(df, spec).to_numpy(dtype=object),
        counts.APPROVED: binary_outcome(df[outcome], outcome, weights=w),
    }
    if label:
        out[counts.LABEL] = binary_outcome(df[label], label, "label", weights=w)
    if stratum:
        out[counts.STRATUM] = numbers(numeric_cells(df[stratum]), "stratum", stratum, w)
    if score:
        out[counts.SCORE_BIN], out[counts.SCORE_SUM] = counts.bin_scores(
            df[score], score, score_bins
        )
    out[counts.N] = np.ones(len(df)) if w is None else w
    return counts.combine([pd.DataFrame(out)])


@pytest.mark.parametrize("extra", ["", "label", "stratum", "score", "weights"])
@pytest.mark.parametrize("rows", [0, 5_000])
def test_counting_on_codes_equals_counting_on_label_texts(extra: str, rows: int) -> None:
    rng = np.random.default_rng(17)
    df = pd.DataFrame(
        {
            "g": rng.choice(["a", "b", "c", "", " a"], rows).astype(object),
            "h": rng.choice(["x", "y"], rows).astype(object),
            "y": rng.choice(["0", "1", "yes"], rows).astype(object),
            "t": rng.choice(["0", "1"], rows).astype(object),
            "s": rng.choice(["600", "700", ""], rows).astype(object),
            "p": rng.random(rows),
            "w": rng.integers(0, 5, rows).astype(float),  # 0: a cell with no decisions
        }
    )
    spec = GroupSpec(attributes=("g", "h"), reference="highest", privileged_value=None)
    kw: dict[str, str] = {
        "label": {"label": "t"},
        "stratum": {"label": "t", "stratum": "s"},
        "score": {"label": "t", "score": "p"},
        "weights": {"label": "t", "weights": "w"},
        "": {},
    }[extra]
    coded = counts.normalise(df, spec, "y", **kw)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(coded, text_normalise(df, spec, "y", **kw))  # type: ignore[arg-type]
    if rows:
        assert len(coded) > 4
        assert counts.digest(coded) == counts.digest(text_normalise(df, spec, "y", **kw))  # type: ignore[arg-type]
