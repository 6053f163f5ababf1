"""Group labels that do not depend on chunking, files or dtypes; only empty cells are missing.

Issue 13, items 1 and 2. The oracle for every count table here is the same data counted in
one piece from plain Python strings (``expected``): the readers must agree with it however
the data is cut into chunks or files, and whatever format (CSV, gzip, Parquet, SQL) carries
it.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.source import SourceSettings, parse_source
from fairlens_monitor.errors import ConfigError, DataError
from fairlens_monitor.fairness.cells import cell_text, missing_report, value_text
from fairlens_monitor.fairness.counts import GROUP, N, digest, group_table, normalise
from fairlens_monitor.fairness.groups import MISSING, GroupSpec
from fairlens_monitor.fairness.metrics import binary_outcome
from fairlens_monitor.ops.file_count import count_file
from fairlens_monitor.sources.base import FileSource, SqlSource
from fairlens_monitor.sources.files import Columns, read_file

SPEC = GroupSpec(
    attributes=("g",), reference="highest", privileged_value=None, unprivileged_value=None
)
ROWS = 6_000
BLANK = 5_500  # in the last 1,000-row chunk: the chunk pandas used to read as floats
NOW = pd.Timestamp("2026-12-01", tz="UTC").to_pydatetime()


def decisions(rows: int = ROWS, blank: int | None = BLANK) -> pd.DataFrame:
    """g in {0, 1} with one blank, y in {0, 1}: as text, the way a CSV holds them."""
    rng = np.random.default_rng(13)
    g = rng.integers(0, 2, rows).astype(str).astype(object)
    if blank is not None:
        g[blank] = ""
    return pd.DataFrame({"g": g, "y": rng.integers(0, 2, rows).astype(str)})


def expected(df: pd.DataFrame) -> Counter[tuple[str, bool]]:
    """The oracle: (label, approved) -> decisions, from the strings in plain Python."""
    return Counter((g.strip() or MISSING, y == "1") for g, y in zip(df.g, df.y, strict=True))


def as_counter(counts: pd.DataFrame) -> Counter[tuple[str, bool]]:
    return Counter(
        {
            (g, bool(a)): int(n)
            for g, a, n in zip(counts[GROUP], counts["_approved"], counts[N], strict=True)
        }
    )


def file_digest(folder: str, chunk_rows: int, missing: tuple[str, ...] = ()) -> pd.DataFrame:
    settings = SourceSettings(
        kind="file", path=folder, outcome="y", chunk_rows=chunk_rows, missing_values=missing
    )
    return FileSource(settings, SPEC, None).read(NOW, {}).counts


# --- item 1: one group stays one group ---------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_chunk_size_and_files_do_not_change_the_count_table(tmp_path: Path, suffix: str) -> None:
    df = decisions()
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir()
    parts.mkdir()

    def write(frame: pd.DataFrame, path: Path) -> None:
        if suffix == ".parquet":  # an integer column with a null, as a data pipeline writes it
            g = pd.to_numeric(frame.g.replace("", None)).astype("Int64")
            pq.write_table(
                pa.table(
                    {
                        "g": pa.array(g, pa.int64(), from_pandas=True),
                        "y": pa.array(frame.y.astype(int)),
                    }
                ),
                path,
            )
        else:
            frame.to_csv(path, index=False)

    write(df, whole / f"all{suffix}")
    write(df.iloc[:3_000], parts / f"day1{suffix}")  # clean
    write(df.iloc[3_000:], parts / f"day2{suffix}")  # holds the blank
    tables = {f"{chunk} rows": file_digest(str(whole), chunk) for chunk in (1_000, 500_000, ROWS)}
    tables["two files"] = file_digest(str(parts), 1_000)
    assert {name: as_counter(t) for name, t in tables.items()} == dict.fromkeys(
        tables, expected(df)
    )
    assert len({digest(t) for t in tables.values()}) == 1
    assert set(tables["two files"][GROUP]) == {"0", "1", MISSING}


def test_measure_reads_six_hundred_thousand_rows_as_two_groups(tmp_path: Path) -> None:
    """The issue's reproduction, with the CLI's own chunk size (500,000 rows)."""
    rows = 600_000
    df = decisions(rows, blank=550_000)
    path = tmp_path / "blank.csv"
    df.to_csv(path, index=False)
    result = CliRunner().invoke(
        cli,
        [
            "measure",
            str(path),
            "--protected-attribute",
            "g",
            "--reference",
            "highest",
            "--outcome",
            "y",
            "--json",
        ],
    )
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.output)
    groups = {g["group"]: g["applicants"] for g in report["groups"]}
    truth = Counter(label for label, _ in expected(df).elements())
    assert groups == dict(truth)
    assert set(groups) == {"0", "1", MISSING}


def test_measure_counts_the_same_whatever_the_chunk(tmp_path: Path) -> None:
    df = decisions()
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    tables = [group_table(count_file(path, SPEC, "y", chunk_rows=c)) for c in (1_000, 500_000)]
    for table in tables:
        assert dict(zip(table.labels, table.applicants.tolist(), strict=True)) == dict(
            Counter(label for label, _ in expected(df).elements())
        )


def test_sql_integer_column_gives_the_csv_labels(tmp_path: Path) -> None:
    df = decisions()
    csv = tmp_path / "csv"
    csv.mkdir()
    df.to_csv(csv / "d.csv", index=False)
    db = tmp_path / "lender.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE decisions (g INTEGER, y INTEGER)")
        conn.executemany(
            "INSERT INTO decisions VALUES (?, ?)",
            [(int(g) if g else None, int(y)) for g, y in zip(df.g, df.y, strict=True)],
        )
    settings = SourceSettings(kind="sql", url=f"sqlite:///{db}", table="decisions", outcome="y")
    source = SqlSource(settings, SPEC, None)
    try:
        sql = source.read(NOW, {}).counts
    finally:
        source.close()
    assert as_counter(sql) == expected(df)
    assert digest(sql) == digest(file_digest(str(csv), 1_000))


def test_sql_numeric_types_follow_the_same_rule(tmp_path: Path) -> None:
    """REAL 1.0, INTEGER 1 and TEXT '1' stored in one SQLite column are one group '1'."""
    db = tmp_path / "mixed.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE d (g, y INTEGER)")
        conn.executemany(
            "INSERT INTO d VALUES (?, ?)",
            [(1, 1), (1.0, 0), ("1", 1), (2.5, 1), (None, 0), ("NA", 1)],
        )
    source = SqlSource(
        SourceSettings(kind="sql", url=f"sqlite:///{db}", table="d", outcome="y"), SPEC, None
    )
    try:
        counts = source.read(NOW, {}).counts
    finally:
        source.close()
    assert counts.groupby(GROUP)[N].sum().to_dict() == {"1": 3, "2.5": 1, MISSING: 1, "NA": 1}


@pytest.mark.parametrize(
    ("cells", "truth"),
    [
        (
            ["1", "1.0", "true", " TRUE ", "yes", "0", "0.0", "false", "no", "1.00"],
            [1, 1, 1, 1, 1, 0, 0, 0, 0, 1],
        ),
    ],
)
def test_outcome_text_parses_like_the_numbers(cells: list[str], truth: list[int]) -> None:
    as_text = binary_outcome(pd.Series(cells, dtype=object), "y")
    assert as_text.tolist() == [bool(t) for t in truth]
    numbers = pd.Series([1.0, 1.0, 0.0])  # the same outcome in a chunk read as floats
    assert (
        binary_outcome(numbers, "y").tolist()
        == binary_outcome(pd.Series(["1", "1.0", "0"], dtype=object), "y").tolist()
    )


def test_outcome_that_is_not_binary_still_fails() -> None:
    with pytest.raises(DataError, match=r"outcome column 'y' has 2 values that are not binary"):
        binary_outcome(pd.Series(["1", "2", "0.5", "0"], dtype=object), "y")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-(10**6), 10**6)), min_size=1, max_size=40))
def test_one_rule_for_ints_floats_text_and_objects(values: list[int | None]) -> None:
    """The same integers give the same labels as ints, as floats with NaN, as text."""
    ints = pd.Series(values, dtype=object)
    floats = pd.Series([np.nan if v is None else float(v) for v in values], dtype=float)
    text = pd.Series(["" if v is None else str(v) for v in values], dtype=object)
    nullable = pd.Series(values, dtype="Int64")
    want = [None if v is None else str(v) for v in values]
    for series in (ints, floats, text, nullable):
        assert cell_text(series).tolist() == want


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, "1"),
        (1.0, "1"),
        (-0.0, "0"),
        (0.5, "0.5"),
        (np.float32(0.1), "0.1"),
        (float("inf"), "inf"),
        (float("nan"), None),
        (None, None),
        (True, "True"),
        (np.int64(7), "7"),
        ("01", "01"),
        ("1.0", "1.0"),
        ("  ", None),
        ("", None),
        (" Ψ ", "Ψ"),
        (b"x", "x"),
        (pd.NA, None),
    ],
)
def test_value_text(value: object, text: str | None) -> None:
    from decimal import Decimal

    assert value_text(value) == text
    assert value_text(Decimal("2.50")) == "2.5"
    assert value_text(Decimal("2.00")) == "2"


# --- item 2: only empty cells are missing --------------------------------------------------


def test_text_that_looks_missing_is_a_label(tmp_path: Path) -> None:
    labels = [
        "NA",
        "N/A",
        "null",
        "None",
        "nan",
        "",
        "  ",
        "US",
        "01",
        "1",
        "1.0",
        'a, "quoted"',
        "中文",
        "Ελλάδα",
    ]
    df = pd.DataFrame({"g": labels * 10, "y": ["1", "0"] * (len(labels) * 5)})
    folder = tmp_path / "in"
    folder.mkdir()
    df.to_csv(folder / "d.csv", index=False)
    counts = file_digest(str(folder), 1_000)
    got = counts.groupby(GROUP)[N].sum().to_dict()
    assert got == {**dict.fromkeys([v for v in labels if v.strip()], 10), MISSING: 20}
    listed = file_digest(str(folder), 1_000, ("NA", "N/A", " null "))
    assert listed.groupby(GROUP)[N].sum()[MISSING] == 50
    assert "NA" not in set(listed[GROUP])
    assert "None" in set(listed[GROUP])


def test_bom_crlf_and_gzip_read_the_same(tmp_path: Path) -> None:
    df = decisions(300, blank=250)
    text = df.to_csv(index=False)
    plain, odd = tmp_path / "plain", tmp_path / "odd"
    plain.mkdir()
    odd.mkdir()
    (plain / "d.csv").write_text(text, encoding="utf-8")
    (odd / "d.csv").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    df.to_csv(odd / "e.csv.gz", index=False, compression="gzip")
    single = file_digest(str(plain), 1_000)
    both = file_digest(str(odd), 1_000)
    assert as_counter(single) == expected(df)
    assert as_counter(both) == expected(df) + expected(df)


def test_parquet_nulls_and_text_are_missing_only_when_null_or_blank(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(
        pa.table({"g": pa.array(["NA", None, " ", "x"]), "y": pa.array([1, 0, 1, 0])}), path
    )
    counts, _ = read_file(path, Columns(SPEC, "y"), None, chunk_rows=1_000)
    assert counts.groupby(GROUP)[N].sum().to_dict() == {"NA": 1, MISSING: 2, "x": 1}


def test_stratum_text_must_be_a_number_unless_listed_as_missing() -> None:
    df = pd.DataFrame(
        {"g": ["a", "b", "a"], "y": ["1", "0", "1"], "s": ["5", "NA", ""]}, dtype=object
    )
    with pytest.raises(DataError, match=r"stratum column 's' .* 1 values that are not"):
        normalise(df, SPEC, "y", stratum="s")
    out = normalise(df, SPEC, "y", stratum="s", missing_values=["NA"])
    assert out["_stratum"].isna().sum() == 2


def test_a_listed_missing_outcome_is_reported_as_missing() -> None:
    df = pd.DataFrame({"g": ["a", "b"], "y": ["1", "NA"]}, dtype=object)
    with pytest.raises(DataError, match="not binary"):
        normalise(df, SPEC, "y")
    with pytest.raises(DataError, match=r"outcome column 'y' has 1 missing values"):
        normalise(df, SPEC, "y", missing_values=("NA",))


def test_missing_values_config_is_validated_and_shapes_the_config_hash(tmp_path: Path) -> None:
    base = {"kind": "file", "path": "d/*.csv", "outcome": "y"}
    plain = parse_source(base, base_dir=tmp_path, env={})
    listed = parse_source(
        {**base, "missing_values": ["NA", " N/A ", "NA"]}, base_dir=tmp_path, env={}
    )
    assert plain.missing_values == ()
    assert "missing_values" not in plain.shaping()
    assert listed.missing_values == ("NA", "N/A")
    assert listed.shaping()["missing_values"] == ["NA", "N/A"]
    for bad, key in (
        ("NA", r"source\.missing_values"),
        ([None], r"source\.missing_values\[0\]"),
        ([-1], r"source\.missing_values\[0\]"),
        (["  "], r"missing_values\[0\]"),
    ):
        with pytest.raises(ConfigError, match=key):
            parse_source({**base, "missing_values": bad}, base_dir=tmp_path, env={})


def test_measure_reports_what_was_missing(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame({"g": ["NA", "US", ""] * 40, "y": ["1", "0", "1"] * 40}).to_csv(path, index=False)
    args = [
        "measure",
        str(path),
        "--protected-attribute",
        "g",
        "--reference",
        "highest",
        "--outcome",
        "y",
    ]
    plain = json.loads(CliRunner().invoke(cli, [*args, "--json"]).output)
    assert plain["missing_values"] == [""]
    assert {g["group"] for g in plain["groups"]} == {"NA", "US", MISSING}
    listed = CliRunner().invoke(
        cli, [*args, "--missing-value", "NA", "--missing-value", "null", "--json"]
    )
    report = json.loads(listed.output)
    assert report["missing_values"] == ["", "NA", "null"]
    assert {g["group"]: g["applicants"] for g in report["groups"]} == {"US": 40, MISSING: 80}
    text = CliRunner().invoke(cli, [*args, "--missing-value", "NA"]).output
    assert "missing values: empty cells, 'NA'" in text
    assert CliRunner().invoke(cli, [*args, "--missing-value", " "]).exit_code == 2


def test_lineage_says_which_values_were_missing(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    decisions(100, blank=5).to_csv(folder / "d.csv", index=False)
    settings = SourceSettings(kind="file", path=str(folder), outcome="y", missing_values=("NA",))
    assert FileSource(settings, SPEC, None).read(NOW, {}).lineage["missing_values"] == ["", "NA"]
    assert missing_report(["NA", "NA", " "]) == ["", "NA"]
