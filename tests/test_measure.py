"""`fairlens-monitor measure`: any decision file, real data, clear errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from fairlens_monitor.cli.main import cli
from tests.test_stats import mover_cp
from tests.test_stats import z_test as z_p

GERMAN = Path(__file__).parent / "data" / "german_credit.csv"


def measure(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["measure", *map(str, args)])


def group(doc: dict[str, Any], label: str) -> dict[str, Any]:
    """The entry for `label` in a `measure --json` document (parsed JSON, so Any-valued)."""
    groups = doc["groups"]
    assert isinstance(groups, list)
    found: dict[str, Any] = next(g for g in groups if g["group"] == label)
    return found


def test_german_credit_by_sex_as_json() -> None:
    result = measure(
        GERMAN,
        "--protected-attribute",
        "sex",
        "--protected-value",
        "female",
        "--privileged-value",
        "male",
        "--outcome",
        "risk",
        "--json",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    female = group(doc, "female")
    assert (female["approved"], female["applicants"]) == (201, 310)
    assert round(female["impact_ratio"], 4) == 0.8966
    low, high = mover_cp(201, 310, 499, 690)
    assert (round(female["ci_low"], 3), round(female["ci_high"], 3)) == (
        round(low, 3),
        round(high, 3),
    )
    assert round(female["p_value"], 3) == round(z_p(201, 310, 499, 690), 3)
    assert doc["verdict"] == "ok"


def test_german_credit_by_age_band_is_adverse_under_a_stricter_line() -> None:
    args: list[str | Path] = [
        GERMAN,
        "--protected-attribute",
        "age",
        "--band",
        "age=25",
        "--protected-value",
        "<25",
        "--privileged-value",
        ">=25",
        "--outcome",
        "risk",
        "--json",
    ]
    doc = json.loads(measure(*args).stdout)
    young = group(doc, "<25")
    assert (young["approved"], young["applicants"]) == (88, 149)
    assert round(young["impact_ratio"], 4) == 0.8212
    assert round(young["p_value"], 3) == round(z_p(88, 149, 612, 851), 3) == 0.002
    assert doc["verdict"] == "ok"
    strict = measure(*args[:-1], "--threshold", "0.9")
    assert strict.exit_code == 1
    assert "verdict: adverse — <25: ratio 0.821 < 0.9" in strict.stdout
    # the opt-in shortfall rule (29 CFR 1607.4D) finds it at the 0.8 line: 16.3 short
    short = measure(*args[:-1], "--shortfall", "10")
    assert short.exit_code == 1
    assert (
        "verdict: adverse — <25: ratio 0.821 >= 0.8 but significant (p 0.0016 < 0.05) "
        "with a shortfall of 16.3 approvals >= 10 (29 CFR 1607.4D)"
    ) in short.stdout
    assert measure(*args[:-1], "--shortfall", "0").exit_code == 2


def test_intersections_with_the_highest_rate_as_reference(tmp_path: Path) -> None:
    result = measure(
        GERMAN,
        "--protected-attribute",
        "sex",
        "--protected-attribute",
        "age",
        "--band",
        "age=25,40",
        "--reference",
        "highest",
        "--outcome",
        "risk",
        "--json",
    )
    doc = json.loads(result.stdout)
    assert doc["reference"] == "female & >=40"
    assert len(doc["groups"]) == 6
    assert sum(g["applicants"] for g in doc["groups"]) == 1000
    assert result.exit_code == (1 if doc["verdict"] == "adverse" else 0)


def test_tiny_groups_are_excluded_and_listed(tmp_path: Path) -> None:
    df = pd.read_csv(GERMAN)
    path = tmp_path / "jobs.csv"
    df.to_csv(path, index=False)
    doc = json.loads(
        measure(
            path,
            "--protected-attribute",
            "purpose",
            "--reference",
            "highest",
            "--outcome",
            "risk",
            "--json",
        ).stdout
    )
    excluded = {g["group"]: g["applicants"] for g in doc["groups"] if g["role"] == "excluded"}
    expected = df["purpose"].value_counts()
    assert excluded == {k: int(v) for k, v in expected.items() if v / len(df) < 0.02}
    assert excluded  # German Credit has purposes under 2 % (e.g. vacation/others)


def test_outcome_words_and_parquet(tmp_path: Path) -> None:
    df = pd.read_csv(GERMAN)
    df["decision"] = df["risk"].map({1: "Yes", 0: "no"})
    path = tmp_path / "decisions.parquet"
    df.to_parquet(path)
    doc = json.loads(
        measure(
            path,
            "--protected-attribute",
            "sex",
            "--privileged-value",
            "male",
            "--outcome",
            "decision",
            "--json",
        ).stdout
    )
    assert group(doc, "female")["approved"] == 201


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--protected-attribute", "gender", "--privileged-value", "male", "--outcome", "risk"],
            "file german_credit.csv has no column 'gender'",
        ),
        (
            ["--protected-attribute", "sex", "--privileged-value", "male", "--outcome", "purpose"],
            "outcome column 'purpose' has 1000 values that are not binary (forms: 'aaaaa/AA'",
        ),
        (
            ["--protected-attribute", "sex", "--privileged-value", "men", "--outcome", "risk"],
            "privileged value 'men' does not occur in 'sex' (2 values, forms: 'aaaaaa', 'aaaa' [",
        ),
        (["--protected-attribute", "sex", "--outcome", "risk"], "--privileged-value is required"),
        (
            [
                "--protected-attribute",
                "sex",
                "--band",
                "age",
                "--reference",
                "highest",
                "--outcome",
                "risk",
            ],
            "is not COLUMN=EDGE",
        ),
        (
            [
                "--protected-attribute",
                "purpose",
                "--band",
                "purpose=1",
                "--reference",
                "highest",
                "--outcome",
                "risk",
            ],
            "column 'purpose' of file german_credit.csv is banded but has",
        ),
    ],
)
def test_bad_input_is_named_and_exits_2(args: list[str], message: str) -> None:
    result = measure(GERMAN, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    result = measure(
        tmp_path / "nope.csv",
        "--protected-attribute",
        "sex",
        "--privileged-value",
        "male",
        "--outcome",
        "risk",
    )
    assert result.exit_code == 2
    assert "nope.csv: no such file" in result.output


def test_an_empty_file_and_a_single_group_say_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("sex,risk\n")
    result = measure(
        empty, "--protected-attribute", "sex", "--privileged-value", "male", "--outcome", "risk"
    )
    assert result.exit_code == 2
    assert "empty.csv: no decisions to measure" in result.output
    one = tmp_path / "one.csv"
    one.write_text("sex,risk\nmale,1\nmale,0\n")
    doc = json.loads(
        measure(
            one,
            "--protected-attribute",
            "sex",
            "--privileged-value",
            "male",
            "--outcome",
            "risk",
            "--json",
        ).stdout
    )
    assert doc["verdict"] == "inconclusive"
    assert "no group to compare" in doc["reason"]


def test_a_label_that_is_not_binary_is_named_as_the_label(tmp_path: Path) -> None:
    df = pd.read_csv(GERMAN)
    df["repaid"] = df["risk"].astype(object)
    df.loc[3, "repaid"] = "maybe"
    path = tmp_path / "labels.csv"
    df.to_csv(path, index=False)
    result = measure(
        path,
        "--protected-attribute",
        "sex",
        "--privileged-value",
        "male",
        "--outcome",
        "risk",
        "--label",
        "repaid",
    )
    assert result.exit_code == 2
    assert "label column 'repaid' has 1 values that are not binary (forms: 'aaaaa' [" in (
        result.output
    )
    assert "maybe" not in result.output  # the cell is described, never quoted


def test_reading_in_chunks_gives_the_same_counts_as_reading_at_once(tmp_path: Path) -> None:
    from fairlens_monitor.fairness.counts import group_table
    from fairlens_monitor.fairness.groups import GroupSpec
    from fairlens_monitor.ops.file_count import count_file

    df = pd.read_csv(GERMAN)
    df["repaid"] = (df["duration"] < 24).astype(int)  # any binary column will do as a label
    path = tmp_path / "labelled.csv"
    df.to_csv(path, index=False)
    spec = GroupSpec(
        attributes=("sex", "age"),
        bands={"age": (25.0, 40.0)},
        reference="highest",
        privileged_value=None,
        unprivileged_value=None,
    )
    whole = group_table(count_file(path, spec, "risk", "repaid", chunk_rows=10_000))
    seen: list[int] = []
    chunked = group_table(
        count_file(path, spec, "risk", "repaid", chunk_rows=97, progress=seen.append)
    )
    assert chunked.labels == whole.labels
    for field in ("applicants", "approved", "positives", "true_pos", "false_pos"):
        assert (getattr(chunked, field) == getattr(whole, field)).all(), field
    assert seen == [*range(97, 1000, 97), 1000]


def test_a_bad_value_late_in_a_big_file_names_its_rows(tmp_path: Path) -> None:
    from fairlens_monitor.errors import DataError
    from fairlens_monitor.fairness.groups import GroupSpec
    from fairlens_monitor.ops.file_count import count_file

    df = pd.read_csv(GERMAN)
    df["risk"] = df["risk"].astype(object)
    df.loc[950, "risk"] = "perhaps"
    path = tmp_path / "late.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"'aaaaaaa' \[.*in rows 901–1,000 of late\.csv"):
        count_file(
            path, GroupSpec(attributes=("sex",), privileged_value="male"), "risk", chunk_rows=100
        )


@pytest.mark.parametrize("option", ["--threshold", "--alpha", "--min-group-share", "--shortfall"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_number_options_refuse_values_that_are_not_finite(option: str, value: str) -> None:
    # click's FloatRange let NaN through: --alpha nan switched significance off silently
    result = measure(
        GERMAN,
        "--protected-attribute",
        "sex",
        "--protected-value",
        "female",
        "--privileged-value",
        "male",
        "--outcome",
        "risk",
        option,
        value,
    )
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output
