"""`measure`'s parallel coded count gives exactly the chunked count, however the file is cut.

``count_file`` counts a plain CSV by byte ranges, one pyarrow reader per range
(:mod:`fairlens_monitor.sources.csvparts`), on the parser's dictionary codes
(:mod:`fairlens_monitor.fairness.codecounts`). Each batch has its own dictionary, so a
value new in a later batch, a blank, a listed missing value, ``''`` against ``' '`` must
still fall into the one group the chunked count gives. The files here are small, so the
ranges are forced (``min_part_bytes=1``) and cut into many pieces; every result is compared
with the pandas reader's chunked count (``by_pandas`` of ``tests/test_arrow_reader.py``).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness import codecounts, counts, words
from fairlens_monitor.fairness.codecounts import (
    CodedCounts,
    NeedsRowDetail,
    count_table,
    group_table,
)
from fairlens_monitor.fairness.groups import GroupSpec, GroupTable
from fairlens_monitor.ops.file_count import count_file
from fairlens_monitor.sources import csvhead, csvparts
from fairlens_monitor.sources.arrowcsv import FastReadRefused
from tests.test_arrow_reader import GERMAN, SEX, by_pandas, outcome_of, same

ANY = GroupSpec(attributes=("g",), reference="highest", privileged_value=None)


def coded(
    path: Path,
    spec: GroupSpec,
    outcome: str,
    label: str | None = None,
    *,
    missing_values: Collection[str] = (),
) -> tuple[pd.DataFrame, int]:
    """The coded count of ``path`` cut into as many as 7 ranges, and how many it used.

    Every caller also checks ``measure``'s pandas-free group table: it must be the group
    table of the count table (or refuse the same way).
    """
    columns = list(dict.fromkeys([*spec.attributes, outcome, *filter(None, [label])]))
    parts = csvparts.reduce_parts(
        path,
        columns,
        lambda: CodedCounts([*spec.attributes, outcome, *filter(None, [label])]),
        add,
        coded=columns,
        parts=7,
        min_part_bytes=1,
    )
    try:
        table = count_table(parts, spec, outcome, label, missing_values=missing_values)
    except NeedsRowDetail:
        with pytest.raises(NeedsRowDetail):
            group_table(parts, spec, outcome, label, missing_values=missing_values)
        raise
    same_groups(
        group_table(parts, spec, outcome, label, missing_values=missing_values),
        counts.group_table(table),
    )
    return table, len(parts)


def add(state: CodedCounts, batch: pa.RecordBatch) -> None:
    """Count one batch of the reader, as ``measure``'s reading threads do."""
    coded = [csvhead.dictionary_codes(batch.column(c)) for c in state.columns]
    state.add([texts for texts, _ in coded], [indices for _, indices in coded])


def same_groups(ours: GroupTable, theirs: GroupTable) -> None:
    """Two group tables are equal: the same labels in the same order, the same counts."""
    assert ours.labels == theirs.labels
    for field in ("applicants", "approved", "positives", "true_pos", "false_pos"):
        a, b = getattr(ours, field), getattr(theirs, field)
        assert (a is None) == (b is None), field
        if a is not None:
            assert a.dtype == b.dtype, field
            np.testing.assert_array_equal(a, b, err_msg=field)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 64 bytes: every range is many batches with dictionaries of their own."""
    monkeypatch.setattr(csvparts, "BLOCK_BYTES", 64)


@pytest.fixture
def german_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 1 KB (a German Credit row is longer than 64 bytes): ~14 batches a range."""
    monkeypatch.setattr(csvparts, "BLOCK_BYTES", 1024)


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "d.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.mark.usefixtures("german_blocks")
@pytest.mark.parametrize("label", [None, "risk"])
def test_german_credit_cut_in_seven_ranges_counts_as_the_chunked_reader(label: str | None) -> None:
    table, parts = coded(GERMAN, SEX, "risk", label)
    assert parts == 7
    pd.testing.assert_frame_equal(table, by_pandas(GERMAN, SEX, "risk", label, chunk_rows=97))


@pytest.mark.usefixtures("german_blocks")
def test_an_intersection_of_two_columns_counts_as_the_chunked_reader() -> None:
    spec = GroupSpec(attributes=("sex", "housing"), reference="highest", privileged_value=None)
    table, parts = coded(GERMAN, spec, "risk")
    assert parts == 7
    pd.testing.assert_frame_equal(table, by_pandas(GERMAN, spec, "risk", chunk_rows=1000))


HEADER = "g,y,z\n"
LATE = {
    # a value, a blank, a listed missing value, a spaced twin: first seen in the last ranges
    "new value late": HEADER + "a,1,x\nb,0,x\n" * 60 + "c,1,x\n" * 3,
    "blank late": HEADER + "a,1,x\nb,0,x\n" * 60 + ",1,x\n" * 3,
    "space late": HEADER + "a,1,x\n,0,x\n" * 60 + " ,1,x\n  ,0,x\n" * 3,
    "spaced twin late": HEADER + "a,1,x\nb,0,x\n" * 60 + " a ,0,x\n",
    "listed missing late": HEADER + "a,1,x\nb,0,x\n" * 60 + "NA,1,x\n",
    "listed NULL late": HEADER + "a,1,x\nb,0,x\n" * 60 + "NULL,1,x\n NULL ,0,x\n",
    "unlisted NULL late (a label)": HEADER + "a,1,x\nb,0,x\n" * 60 + "NULL,1,x\n",
    "listed missing outcome word": HEADER + "a,1,x\nb,0,x\n" * 60 + "a,NA,x\n",
    "literal (missing) and a blank": HEADER + "(missing),1,x\n,0,x\na,1,x\n" * 30,
    "crlf and bom": "\ufeff" + (HEADER + "a,1,x\nb,0,x\n" * 60).replace("\n", "\r\n"),
    "blank lines at cuts": HEADER + "a,1,x\n\n\nb,0,x\n\n" * 40,
    "no final newline": HEADER + "a,1,x\nb,0,x\n" * 40 + "a,0,x",
    "one group only": HEADER + "a,1,x\na,0,x\n" * 200,
    "outcome words": HEADER + "a,Yes,x\nb,no,x\na,TRUE,x\nb,0.0,x\n" * 30,
}


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("name", sorted(LATE))
def test_a_value_first_seen_in_a_later_batch_joins_its_one_group(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, LATE[name])
    missing = ["NA", "NULL"] if name.startswith("listed") else []
    if (
        name == "listed missing outcome word"
    ):  # a decision listed as missing: the chunked count's error
        with pytest.raises(NeedsRowDetail):
            coded(path, ANY, "y", missing_values=missing)
        return
    table, parts = coded(path, ANY, "y", missing_values=missing)
    assert parts > 1
    pd.testing.assert_frame_equal(
        table, by_pandas(path, ANY, "y", chunk_rows=1000, missing_values=missing)
    )
    assert table["_group"].is_unique or "_approved" in table  # one row per group and decision
    assert not table.duplicated(["_group", "_approved"]).any()


def test_blank_and_space_are_one_missing_group_and_spaced_twins_one_group(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "a,1,x\n,0,x\n ,1,x\n a,0,x\n" * 50)
    table, _ = coded(path, ANY, "y")
    n = table.groupby("_group")["_n"].sum()
    assert n.to_dict() == {"(missing)": 100.0, "a": 100.0}


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize(
    "text",
    [
        HEADER + "a,1,x\nb,0,x\n" * 60 + "b,,x\n",  # a missing decision, late
        HEADER + "a,1,x\nb,0,x\n" * 60 + "b,maybe,x\n",  # not binary, late
        HEADER + "a,1,x\nb,0,x\n" * 60 + "jane@example.com,0,x\n",  # personal label
        HEADER,  # no rows
    ],
)
def test_a_value_the_chunked_count_rejects_asks_for_it(tmp_path: Path, text: str) -> None:
    with pytest.raises(NeedsRowDetail):
        coded(write(tmp_path, text), ANY, "y")


@pytest.mark.usefixtures("small_blocks")
def test_a_bad_value_late_in_a_cut_file_is_named_with_its_rows(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "a,1,x\nb,0,x\n" * 300 + "b,maybe,x\n")
    with pytest.raises(DataError, match=r"not binary .*in rows 601–601 of d\.csv"):
        count_file(path, ANY, "y", chunk_rows=100)


def test_a_quote_anywhere_reads_the_file_as_one_range(tmp_path: Path) -> None:
    # a quoted newline right where a cut would fall: cut there, the ranges would miscount
    body = "a,1,x\nb,0,x\n" * 100 + '"c\nd",1,x\n' + "a,0,x\n" * 100
    path = write(tmp_path, HEADER + body)
    table, parts = coded(path, ANY, "y")
    assert parts == 1
    pd.testing.assert_frame_equal(table, by_pandas(path, ANY, "y", chunk_rows=1000))
    assert "c\nd" in set(table["_group"])


def test_the_cuts_fall_after_line_ends_and_cover_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "".join(f"v{i},1,x\n" for i in range(500)))
    header, starts = csvparts.cuts(path, 5, min_part_bytes=1)
    data = path.read_bytes()
    assert header == HEADER.encode()
    assert len(starts) == 5
    assert starts[0] == 0
    assert all(data[s - 1 : s] == b"\n" for s in starts[1:])
    assert starts == sorted(set(starts))


def test_a_small_file_is_one_range_by_default(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "a,1,x\n" * 100)
    assert csvparts.cuts(path, 8)[1] == [0]


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize(
    "text",
    [
        HEADER + "a,1,x\n" * 100 + "b,0\n",  # a short row, late: pandas reads missing cells
        (HEADER + "a,1,x\n" * 100).encode() + b"\xff\xfe,0,x\n",  # not UTF-8, late
    ],
)
def test_a_range_pyarrow_refuses_is_signalled(tmp_path: Path, text: str | bytes) -> None:
    with pytest.raises(FastReadRefused):
        coded(write(tmp_path, text), ANY, "y")


@pytest.mark.usefixtures("small_blocks")
def test_a_refused_file_still_counts_or_fails_as_the_pandas_reader(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "a,1,x\n" * 100 + "b,0\n")
    same(
        outcome_of(lambda: count_file(path, ANY, "y")),
        outcome_of(lambda: by_pandas(path, ANY, "y", chunk_rows=500_000)),
    )


def test_many_distinct_values_in_one_batch_count_by_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    from fairlens_monitor.fairness import codecounts

    monkeypatch.setattr(codecounts, "BINCOUNT_CELLS", 4)  # force the np.unique branch
    rng = np.random.default_rng(3)
    g = rng.integers(0, 50, 2_000)
    y = rng.integers(0, 2, 2_000)
    counts = CodedCounts(["g", "y"])
    counts.add([[f"v{i}" for i in range(50)], ["0", "1"]], [g, y])
    table = count_table([counts], ANY, "y")
    frame = pd.DataFrame({"g": [f"v{i}" for i in g], "y": y.astype(str)})
    from fairlens_monitor.fairness.counts import normalise

    pd.testing.assert_frame_equal(table, normalise(frame, ANY, "y"))
    assert counts.rows == 2_000


def test_a_huge_file_of_one_group_counts_every_row(tmp_path: Path) -> None:
    rows = 400_000
    path = tmp_path / "one.csv"
    path.write_text(HEADER + "a,1,x\na,0,x\n" * (rows // 2))
    table, parts = coded(path, ANY, "y")
    assert parts == 7
    assert table["_n"].tolist() == [rows / 2, rows / 2]
    assert table["_group"].tolist() == ["a", "a"]


def test_count_file_uses_the_ranges_on_a_big_enough_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvparts, "MIN_PART_BYTES", 1)
    seen: list[int] = []
    real = csvparts.reduce_parts

    def spy(*args: object, **kwargs: object) -> list[object]:
        result: list[object] = real(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(len(result))
        return result

    monkeypatch.setattr("fairlens_monitor.ops.file_count.reduce_parts", spy)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(4)))
    path = write(tmp_path, HEADER + "a,1,x\nb,0,x\n" * 500)
    progress: list[int] = []
    table = count_file(path, ANY, "y", chunk_rows=100, progress=progress.append)
    assert seen == [4]
    pd.testing.assert_frame_equal(table, by_pandas(path, ANY, "y", chunk_rows=100))
    assert progress[-1] == 1000
    assert progress == sorted(progress)


def test_pyarrow_batches_carry_their_own_dictionaries(tmp_path: Path) -> None:
    # the premise of this module: a later batch's codes mean other texts
    import pyarrow.csv as pcsv

    path = write(tmp_path, HEADER + "a,1,x\n" * 20 + "b,1,x\n" * 20)
    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=64),
        convert_options=pcsv.ConvertOptions(
            include_columns=["g"], column_types={"g": pa.dictionary(pa.int32(), pa.string())}
        ),
    )
    dictionaries = {tuple(b.column(0).dictionary.to_pylist()) for b in reader}
    assert ("a",) in dictionaries
    assert ("b",) in dictionaries


@pytest.mark.usefixtures("small_blocks")
def test_a_reducer_error_in_one_range_stops_the_read_and_is_raised(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "a,1,x\n" * 3_000)
    calls: list[int] = []

    class Boom(Exception):
        pass

    def step(state: list[int], batch: pa.RecordBatch) -> None:
        calls.append(batch.num_rows)
        if state[0] == 3 and len(calls) > 5:
            raise Boom

    starts = iter(range(4))
    with pytest.raises(Boom):
        csvparts.reduce_parts(
            path,
            ["g", "y"],
            lambda: [next(starts)],
            step,
            coded=["g", "y"],
            parts=4,
            min_part_bytes=1,
        )
    assert sum(calls) < 3_000  # the failing range stopped at its error (the others may be done)


def test_zero_one_columns_are_parsed_as_booleans_and_handed_on_as_their_texts(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "g,y,z\n" + "1,1,x\n0,0,0\nb,1,1\n" * 4_000)
    assert csvparts.binary_columns(path, ["g", "y", "z"], ["g", "y", "z"]) == {"y"}
    seen: list[pa.RecordBatch] = []

    def step(state: CodedCounts, batch: pa.RecordBatch) -> None:
        seen.append(batch)
        add(state, batch)

    parts = csvparts.reduce_parts(
        path,
        ["g", "y"],
        lambda: CodedCounts(["g", "y"]),
        step,
        coded=["g", "y"],
        parts=3,
        min_part_bytes=1,
    )
    assert len(parts) == 3
    y = [b.column("y") for b in seen]
    assert all(a.dictionary.to_pylist() == ["0", "1"] for a in y)  # the texts as written
    assert {a.indices.type for a in y} == {pa.int8()}  # parsed as booleans, not hashed
    assert {frozenset(b.column("g").dictionary.to_pylist()) for b in seen} == {
        frozenset({"0", "1", "b"})
    }  # a group of 0/1 texts with others is dictionary-encoded as ever
    pd.testing.assert_frame_equal(
        count_table(parts, ANY, "y"), by_pandas(path, ANY, "y", chunk_rows=1000)
    )


@pytest.mark.parametrize(
    "head",
    [
        "a,1,x\na,0,x\n",  # 0/1 decisions
        "a, 1,x\n",  # a spaced 1 is not the text 1
        "a,,x\n",  # a blank
        "a,1.0,x\n",
        "a,yes,x\n",
    ],
)
def test_only_exact_zeros_and_ones_in_the_head_make_a_boolean_column(
    tmp_path: Path, head: str
) -> None:
    path = write(tmp_path, HEADER + head + "a,1,x\n" * 10)
    binary = csvparts.binary_columns(path, ["g", "y"], ["g", "y"])
    assert binary == ({"y"} if head.startswith("a,1,") else set())


LATER = {  # after a head of 0/1 decisions, a cell a boolean parse refuses
    "word": HEADER + "a,1,x\nb,0,x\n" * 300 + "a,yes,x\nb,No,x\n",
    "spaced": HEADER + "a,1,x\nb,0,x\n" * 300 + "a, 1,x\n",
    "number text": HEADER + "a,1,x\nb,0,x\n" * 300 + "b,0.0,x\n",
    "blank": HEADER + "a,1,x\nb,0,x\n" * 300 + "b,,x\n",
    "listed missing": HEADER + "a,1,x\nb,0,x\n" * 300 + "b,NA,x\n",
    "short row": HEADER + "a,1,x\nb,0,x\n" * 300 + "b,1\n",
}


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("name", sorted(LATER))
def test_a_later_cell_that_is_not_0_or_1_is_read_again_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(csvparts, "SNIFF_BYTES", 64)  # the head: a few rows of 0 and 1
    monkeypatch.setattr(csvparts, "MIN_PART_BYTES", 1)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(4)))
    path = write(tmp_path, LATER[name])
    assert csvparts.binary_columns(path, ["g", "y"], ["g", "y"]) == {"y"}
    missing = ["NA"] if name == "listed missing" else []
    same(
        outcome_of(lambda: count_file(path, ANY, "y", chunk_rows=100, missing_values=missing)),
        outcome_of(lambda: by_pandas(path, ANY, "y", chunk_rows=100, missing_values=missing)),
    )
    if name in ("word", "spaced", "number text"):  # counted on the codes, as text
        table, parts = coded(path, ANY, "y", missing_values=missing)
        assert parts == 7
        pd.testing.assert_frame_equal(table, by_pandas(path, ANY, "y", chunk_rows=100))


@pytest.mark.usefixtures("small_blocks")
def test_a_late_blank_decision_after_a_boolean_head_is_named_with_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvparts, "SNIFF_BYTES", 64)
    path = write(tmp_path, HEADER + "a,1,x\nb,0,x\n" * 300 + "b,,x\n")
    with pytest.raises(DataError, match=r"1 missing values.*in rows 601–601 of d\.csv"):
        count_file(path, ANY, "y", chunk_rows=100)


@pytest.mark.usefixtures("small_blocks")
def test_a_group_column_of_0_and_1_is_read_as_booleans_and_keeps_its_texts(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, HEADER + "1,1,x\n0,0,x\n0,1,x\n" * 200)
    assert csvparts.binary_columns(path, ["g", "y"], ["g", "y"]) == {"g", "y"}
    table, parts = coded(path, ANY, "y")
    assert parts == 7
    pd.testing.assert_frame_equal(table, by_pandas(path, ANY, "y", chunk_rows=1000))
    assert set(table["_group"]) == {"0", "1"}


def test_a_boolean_column_becomes_its_texts_at_every_offset_of_its_bitmap() -> None:
    """The bitmap is unpacked by hand (cheaper than a cast): bit order and offsets must hold."""
    rng = np.random.default_rng(17)
    truth = rng.integers(0, 2, size=203).astype(bool)
    batch = pa.RecordBatch.from_arrays(
        [pa.array(truth), pa.array(["a"] * 203).dictionary_encode()], names=["y", "g"]
    )
    for start in [0, 1, 7, 8, 9, 63, 100]:
        sliced = batch.slice(start, 203 - start - 3)
        coded = csvparts._as_coded(sliced, frozenset({"y"}))
        y = coded.column("y")
        assert y.dictionary.to_pylist() == ["0", "1"]
        assert y.indices.to_pylist() == truth[start:200].astype(int).tolist()
        assert coded.column("g").equals(sliced.column("g"))  # other columns untouched


TRICKY = [
    *[
        "a",
        " a",
        "a ",
        "A",
        "b",
        "",
        " ",
        "\t",
        "\u00a0",
        "NA",
        " NA ",
        "(missing)",
        "é",
        "e\u0301",
    ],
    *["x@example.com", "123-45-6789", "1", "0", " 1 ", "01", "1.0", "0.0", "1e0", "+1", "-0"],
    *["yes", "No", " TRUE ", "t", "F", "y", "2", "nan", "inf", "1_0", "\u0663", "true\u00a0"],
]
WORDS = ["1", "0", " 1", "0 ", "yes", "No", " TRUE ", "t", "F", "y", "N", "false", "\tYES"]
DECISIONS = [*WORDS, *WORDS, "", " ", "NA", "1.0", "0.00", "2", "maybe", "\u0663", "1_0"]


def is_word(text: str, missing: set[str]) -> bool:
    """What the pure rule must decide itself: a decision word that is not a listed missing text."""
    stripped = text.strip()
    return stripped.lower() in {*words.TRUE_WORDS, *words.FALSE_WORDS} and stripped not in {
        m.strip() for m in missing
    }


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(TRICKY),
            st.sampled_from(TRICKY),
            st.sampled_from(DECISIONS),
            st.sampled_from(DECISIONS),
            st.integers(1, 10**9),
        ),
        min_size=1,
        max_size=8,
    ),
    st.sets(st.sampled_from(["NA", " NA", "0", " 1", "x@example.com", "(missing)", "a"])),
    st.booleans(),
    st.booleans(),
)
def test_the_pandas_free_group_table_is_the_count_tables_whatever_the_texts(
    cells: list[tuple[str, str, str, str, int]],
    missing: set[str],
    with_label: bool,
    two_attributes: bool,
) -> None:
    """Group labels, decision words, missing cells and refusals as the pandas rules give them;
    the pandas way is taken only for a decision text that is not a word."""
    attributes = ("g", "h") if two_attributes else ("g",)
    spec = GroupSpec(attributes=attributes, reference="highest", privileged_value=None)
    part = CodedCounts([*attributes, "y", *(["z"] if with_label else [])])
    for g, h, y, z, n in cells:
        key = (g, *([h] if two_attributes else []), y, *([z] if with_label else []))
        part.cells[key] = part.cells.get(key, 0) + n
    label = "z" if with_label else None
    pure = all(is_word(t, missing) for key in part.cells for t in key[len(attributes) :])
    fallbacks: list[int] = []
    real = codecounts._counted_table

    def counted(*args: Any) -> GroupTable:
        fallbacks.append(1)
        return real(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(codecounts, "_counted_table", counted)
        try:
            table = count_table([part], spec, "y", label, missing_values=missing)
        except NeedsRowDetail:
            with pytest.raises(NeedsRowDetail):
                group_table([part], spec, "y", label, missing_values=missing)
        else:
            same_groups(
                group_table([part], spec, "y", label, missing_values=missing),
                counts.group_table(table),
            )
    assert not (pure and fallbacks)  # every text was a word: no pandas


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=["a", "b", ",", " ", "\t", '"', "\r", "é", "\ufeff", "#", "'", "."], max_size=12
    ),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
def test_a_plain_header_is_read_as_pandas_reads_it(
    tmp_path_factory: pytest.TempPathFactory, names: str, end: str, bom: bool
) -> None:
    """``measure`` checks a plain header's names without pandas: they must be pandas' names."""
    path = tmp_path_factory.mktemp("header") / "h.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + (names + end + "1\n").encode("utf-8"))
    ours = csvhead.plain_header(path)
    if ours is None:
        return  # not plain: the header is checked by pandas itself
    theirs = list(pd.read_csv(path, nrows=0).columns)
    assert ours == theirs


@pytest.mark.parametrize(
    ("header", "plain"),
    [
        (b"g,y\n", ["g", "y"]),
        (b"\xef\xbb\xbfg,y\r\n", ["g", "y"]),
        (b" g , y\n", [" g ", " y"]),
        (b'"g",y\n', None),
        (b"g,g\n", None),
        (b"g,\n", None),
        (b"g\ry\n", None),
        (b"g, \n", None),
        (b" \n", None),
        (b"g,\xff\n", None),
    ],
)
def test_which_headers_are_plain(tmp_path: Path, header: bytes, plain: list[str] | None) -> None:
    path = write(tmp_path, header + b"1,0\n")
    assert csvhead.plain_header(path) == plain
    assert csvhead.plain_header(write(tmp_path, header.rstrip(b"\r\n"))) is None  # no line end
