"""File and SQL decision sources, end to end: windows, lineage, digests, bad data, no_data.

The data is the real German Credit set (tests/data/german_credit.csv, CC BY 4.0) given a
decision time: applicant i was decided at 2026-11-01 00:00 UTC + i × 864 s, so the 1,000
decisions span ten days of 100 each. Every figure asserted here is recomputed from the CSV
with pandas, not copied from the program's output.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from fairlens_monitor.audit.verify import verify_chain
from fairlens_monitor.cli.render import cycle_lines
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.errors import ConfigError, DataError
from fairlens_monitor.ops.app import open_cipher, open_repository
from fairlens_monitor.ops.cycle import CycleOutcome, execute_cycle, run_cycle
from fairlens_monitor.sources import files as source_files
from tests.conftest import query_url
from tests.helpers.wait import wait_for

GERMAN = Path(__file__).parent / "data" / "german_credit.csv"
START = datetime(2026, 11, 1, tzinfo=UTC)
STEP = timedelta(seconds=864)
Clock = Callable[[], datetime]


def german() -> pd.DataFrame:
    df = pd.read_csv(GERMAN)
    df["decided_at"] = [(START + i * STEP).isoformat() for i in range(len(df))]
    return df


def write_days(folder: Path, df: pd.DataFrame, days: range) -> list[Path]:
    """Write one CSV per day of decisions (100 per day) and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in days:
        path = folder / f"decisions-2026-11-{day + 1:02d}.csv"
        df.iloc[day * 100 : (day + 1) * 100].to_csv(path, index=False)
        paths.append(path)
    return paths


def file_config(folder: Path, **source: Any) -> dict[str, Any]:
    return {
        "source": {
            "kind": "file",
            "path": str(folder / "*.csv"),
            "outcome": "risk",
            "timestamp": "decided_at",
            "stratum": "credit_amount",
            **source,
        },
        "measurement": {
            "protected_attributes": ["sex"],
            "privileged_value": "male",
            "unprivileged_value": "female",
        },
    }


def counts(df: pd.DataFrame) -> tuple[int, int, int, int]:
    f, m = df[df.sex == "female"], df[df.sex == "male"]
    return int(f.risk.sum()), len(f), int(m.risk.sum()), len(m)


def fixed(at: datetime) -> Clock:
    return lambda: at


def assert_window_counted(
    outcome: CycleOutcome, now: datetime, hours: float, expected: int
) -> None:
    """The reading counted exactly German Credit's decisions in ``[now - hours, now)``."""
    df = german()
    times = pd.to_datetime(df.decided_at, utc=True)
    inside = df[(times >= now - timedelta(hours=hours)) & (times < now)]
    assert outcome.monitored is not None
    assert outcome.monitored.n_samples == len(inside) == expected
    d = outcome.monitored.metrics["details"]
    assert (d["female_approved"], d["female_count"], d["male_approved"], d["male_count"]) == counts(
        inside
    )


def assert_german_by_sex(outcome: CycleOutcome) -> None:
    """The whole German Credit set by sex: 201 of 310 women and 499 of 690 men approved."""
    assert outcome.monitored is not None
    h = outcome.monitored.headline.comparison
    assert h is not None
    assert (h.approved, h.applicants, h.reference_approved, h.reference_applicants) == (
        201,
        310,
        499,
        690,
    )


def rows(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    return query_url(settings.database.url, sql)


# ---------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("source", "key", "fragment"),
    [
        ({"kind": "kafka"}, "source.kind", "expected one of simulator, file, sql"),
        ({"kind": "file", "path": "x/*.csv"}, "source.outcome", "name the decision column"),
        ({"kind": "file", "outcome": "y"}, "source.path", "missing"),
        (
            {"kind": "file", "path": "x", "outcome": "y", "window": "24h"},
            "source.timestamp",
            "needs the timestamp column",
        ),
        (
            {"kind": "file", "path": "x", "outcome": "y", "window": "yesterday"},
            "source.window",
            "a duration such as",
        ),
        (
            {
                "kind": "sql",
                "url": "sqlite:///d.db",
                "outcome": "y",
                "table": "t",
                "window": "new_files",
            },
            "source.window",
            "applies to file sources",
        ),
        (
            {"kind": "sql", "url": "sqlite:///d.db", "outcome": "y"},
            "source.table",
            "exactly one of",
        ),
        (
            {"kind": "sql", "url": "sqlite:///d.db", "outcome": "y", "table": "t; drop table x"},
            "source.table",
            "expected a table name",
        ),
        (
            {"kind": "sql", "url": "sqlite:///d.db", "outcome": "y", "query": "delete from t"},
            "source.query",
            "expected one SELECT",
        ),
        (
            {
                "kind": "sql",
                "url": "sqlite:///d.db",
                "outcome": "y",
                "query": "select * from t; select 1",
            },
            "source.query",
            "single statement",
        ),
        ({"kind": "sql", "outcome": "y", "table": "t"}, "source.url", "FAIRLENS_SOURCE_URL"),
        (
            {"kind": "file", "path": "x", "outcome": "y", "table": "t"},
            "source.table",
            "unknown key",
        ),
        (
            {"kind": "file", "path": "x", "outcome": "y", "timestamp": "y"},
            "source",
            "must be different columns",
        ),
        (
            {"kind": "file", "path": "x", "outcome": "y", "chunk_rows": 10},
            "source.chunk_rows",
            ">= 1000",
        ),
    ],
)
def test_bad_source_settings_name_the_key(
    make_settings: Callable[..., Settings], source: dict[str, Any], key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as err:
        make_settings(
            {
                "source": source,
                "measurement": {"protected_attributes": ["sex"], "privileged_value": "male"},
            }
        )
    assert err.value.key == key
    assert fragment in str(err.value)


def test_a_file_source_measures_any_column_and_needs_no_simulation(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    from fairlens_monitor.config.settings import load_settings

    path = write_config(file_config(tmp_path / "in"))
    document = yaml.safe_load(path.read_text())
    del document["simulation"]
    path.write_text(yaml.safe_dump(document))
    settings = load_settings(path, env={})
    assert settings.simulation is None
    assert settings.source.path == str(tmp_path / "in" / "*.csv")
    assert settings.measurement.label is None  # no simulator label by default
    with pytest.raises(ConfigError, match="outcome or timestamp"):
        load_settings(
            write_config(
                {
                    **file_config(tmp_path),
                    "measurement": {"protected_attributes": ["risk"], "privileged_value": "1"},
                }
            ),
            env={},
        )


def test_source_url_from_the_environment_keeps_the_password_out_of_the_file(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    from fairlens_monitor.config.settings import load_settings

    path = write_config(
        {
            "source": {"kind": "sql", "table": "decisions", "outcome": "risk"},
            "measurement": {"protected_attributes": ["sex"], "privileged_value": "male"},
        }
    )
    settings = load_settings(
        path, env={"FAIRLENS_SOURCE_URL": "postgresql+psycopg://reader:s3cret@db/lending"}
    )
    assert settings.source.url == "postgresql+psycopg://reader:s3cret@db/lending"
    assert "s3cret" not in json.dumps(settings.shaping())


# ----------------------------------------------------------------------------- file source


def test_new_files_window_reads_each_file_once_and_records_digests(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    df, folder = german(), tmp_path / "in"
    first = write_days(folder, df, range(0, 3))
    settings = make_settings(file_config(folder, window="new_files"))
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    now = START + timedelta(days=3)

    one = run_cycle(settings, repo, cipher, clock=fixed(now), actor="cli")
    a, n, ra, rn = counts(df.iloc[:300])
    assert one.monitored is not None
    assert one.batch is not None
    headline = one.monitored.metrics["details"]
    assert (
        headline["female_approved"],
        headline["female_count"],
        headline["male_approved"],
        headline["male_count"],
    ) == (a, n, ra, rn)
    assert one.monitored.metrics["dir"] == pytest.approx((a / n) / (ra / rn))
    stored = rows(settings, "SELECT path, sha256, rows, decisions FROM source_files ORDER BY path")
    assert stored == [(str(p), hashlib.sha256(p.read_bytes()).hexdigest(), 100, 100) for p in first]
    [(source, n_samples, lineage)] = rows(
        settings, "SELECT source, n_samples, lineage FROM readings"
    )
    assert (source, n_samples) == ("file", 300)
    assert (json.loads(lineage) if isinstance(lineage, str) else lineage)["files_read"] == 3

    # Nothing new: an empty window is a no_data reading, not an error and not an alert.
    two = run_cycle(settings, repo, cipher, clock=fixed(now), actor="cli")
    assert two.monitored is None
    assert two.verdict == "no_data"
    assert rows(settings, "SELECT verdict, dir, group_rate, n_samples FROM readings ORDER BY id")[
        -1
    ] == ("no_data", None, None, 0)
    assert "no_data reading" in cycle_lines(two, echo_plaintext=False)[0]

    # A new day's file is read alone.
    [fourth] = write_days(folder, df, range(3, 4))
    three = run_cycle(settings, repo, cipher, clock=fixed(now), actor="cli")
    assert three.monitored is not None
    assert three.batch is not None
    assert [f.path for f in three.batch.files] == [str(fourth)]
    assert three.monitored.n_samples == 100
    assert three.batch.lineage["files_skipped"] == 3

    report = verify_chain(repo.iter_records(), repo.iter_links())
    assert report.intact
    completed = [p for _, p in repo.events_of_type("cycle_completed")]
    assert [f["sha256"] for f in completed[0]["source"]["files"]] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in first
    ]


def test_a_duration_window_counts_only_decisions_inside_it(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    df, folder = german(), tmp_path / "in"
    write_days(folder, df, range(10))
    settings = make_settings(file_config(folder, window="48h"))
    repo = open_repository(settings)
    now = START + timedelta(days=7, hours=6)  # window = days 5 and 6 plus a quarter of day 7
    outcome = run_cycle(settings, repo, open_cipher(settings, repo), clock=fixed(now), actor="cli")
    assert_window_counted(outcome, now, 48, 200)
    [(start, end)] = rows(settings, "SELECT window_start, window_end FROM readings")
    assert str(start).startswith("2026-11-06 06:00:00")
    assert str(end).startswith("2026-11-08 06:00:00")


def test_the_whole_german_credit_file_matches_the_measure_command(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    german().to_csv(folder / "all.csv", index=False)
    settings = make_settings(file_config(folder))
    repo = open_repository(settings)
    outcome = run_cycle(
        settings, repo, open_cipher(settings, repo), clock=fixed(START), actor="cli"
    )
    assert_german_by_sex(outcome)
    assert outcome.monitored is not None
    assert outcome.monitored.metrics["dir"] == pytest.approx((201 / 310) / (499 / 690))
    assert outcome.monitored.verdict == "ok"  # DIR 0.897 with CI 0.816-0.985: above 0.8
    assert "credit amount" in (outcome.monitored.explanation or "")


def test_a_parquet_file_gives_the_same_counts_as_its_csv(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    digests = []
    for kind in ("csv", "parquet"):
        folder = tmp_path / kind
        folder.mkdir()
        df = german()
        (
            df.to_csv(folder / "d.csv", index=False)
            if kind == "csv"
            else df.to_parquet(folder / "d.parquet")
        )
        settings = make_settings(
            {
                **file_config(folder),
                "source": {**file_config(folder)["source"], "path": str(folder)},
                "database": {"url": f"sqlite:///{tmp_path}/{kind}.db"},
            }
        )
        repo = open_repository(settings)
        outcome = run_cycle(
            settings, repo, open_cipher(settings, repo), clock=fixed(START), actor="cli"
        )
        assert outcome.batch is not None
        digests.append(outcome.batch.lineage["counts_sha256"])
    assert digests[0] == digests[1]


def test_a_changed_file_is_recorded_with_old_and_new_digest(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    df, folder = german(), tmp_path / "in"
    [path] = write_days(folder, df, range(1))
    settings = make_settings(file_config(folder, window="new_files"))
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    run_cycle(settings, repo, cipher, clock=fixed(START), actor="cli")
    old = hashlib.sha256(path.read_bytes()).hexdigest()
    edited = df.iloc[:100].copy()
    edited.loc[edited.sex == "female", "risk"] = 1  # someone rewrites history
    edited.to_csv(path, index=False)
    outcome = run_cycle(settings, repo, cipher, clock=fixed(START), actor="cli")
    assert outcome.batch is not None
    assert outcome.batch.changed == (
        {
            "path": str(path),
            "old_sha256": old,
            "new_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        },
    )
    [(_, event)] = repo.events_of_type("source_file_changed")
    assert event["old_sha256"] == old


def test_a_file_changing_while_it_is_read_fails_the_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from fairlens_monitor.fairness import counts
    from fairlens_monitor.fairness.groups import GroupSpec

    path = tmp_path / "d.csv"
    german().to_csv(path, index=False)
    real = counts.normalise  # the function files.py imported and calls per chunk
    calls: list[int] = []

    def appending(*args: Any, **kwargs: Any) -> pd.DataFrame:
        if not calls:  # after the first chunk, another process appends a row
            with path.open("a") as f:
                f.write(path.read_text().splitlines()[1] + "\n")
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(source_files, "normalise", appending)
    spec = GroupSpec(attributes=("sex",), privileged_value="male", unprivileged_value="female")
    with pytest.raises(DataError, match=r"d\.csv: the file changed while it was read"):
        source_files.read_file(path, source_files.Columns(spec, "risk"), None, chunk_rows=300)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda df: df.drop(columns=["risk"]),
            r"file decisions-2026-11-01\.csv has no column "
            r"'risk'",
        ),
        (
            lambda df: df.assign(risk=df.risk.replace({0: 2})),
            r"outcome column 'risk' has \d+ values that are not binary "
            r"\(forms: '9' \[.*rows 1–100 of "
            r"decisions-2026-11-01\.csv",
        ),
        (
            lambda df: df.assign(decided_at="last tuesday"),
            r"timestamp column 'decided_at' .* 100 values that are not ISO 8601",
        ),
        (
            lambda df: df.assign(credit_amount="lots"),
            r"stratum column 'credit_amount' .* 50 "
            r"values that are not numbers",
        ),
    ],
)
def test_bad_data_fails_the_cycle_naming_file_and_column(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    mutate: Callable[[pd.DataFrame], pd.DataFrame],
    message: str,
) -> None:
    df, folder = german(), tmp_path / "in"
    [path] = write_days(folder, df, range(1))
    mutate(df.iloc[:100]).to_csv(path, index=False)
    settings = make_settings(file_config(folder, window="24h"))
    repo = open_repository(settings)
    with pytest.raises(DataError, match=message):
        execute_cycle(
            settings,
            repo,
            open_cipher(settings, repo),
            clock=fixed(START + timedelta(hours=12)),
            actor="cli",
        )
    [(status, error)] = rows(settings, "SELECT status, error FROM runs")
    assert status == "failed"
    assert "decisions-2026-11-01.csv" in str(error)
    assert rows(settings, "SELECT count(*) FROM readings") == [(0,)]


@pytest.mark.parametrize(
    "corrupt",
    [
        b"\x00\x01binary garbage\xff\xfe" * 50,
        b"PAR1" + b"\x00" * 64,  # a Parquet file cut short
    ],
)
def test_a_corrupt_file_fails_the_cycle_with_its_name(
    make_settings: Callable[..., Settings], tmp_path: Path, corrupt: bytes
) -> None:
    folder = tmp_path / "in"
    write_days(folder, german(), range(2))
    suffix = ".parquet" if corrupt.startswith(b"PAR1") else ".csv"
    (folder / f"broken{suffix}").write_bytes(corrupt)
    source = file_config(folder)["source"] | {"path": str(folder)}
    settings = make_settings({**file_config(folder), "source": source})
    repo = open_repository(settings)
    with pytest.raises(DataError, match=rf"broken\{suffix}"):
        execute_cycle(settings, repo, open_cipher(settings, repo), clock=fixed(START), actor="cli")
    [(error,)] = rows(settings, "SELECT error FROM runs WHERE status = 'failed'")
    assert f"broken{suffix}" in str(error)


def test_no_data_neither_raises_nor_closes_an_open_alert(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    df = german()
    biased = df.copy()
    biased.loc[(biased.sex == "female") & (biased.index % 2 == 0), "risk"] = 0
    biased.to_csv(folder / "biased.csv", index=False)
    settings = make_settings(
        {**file_config(folder, window="new_files"), "alerts": {"close_after": 1}}
    )
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    opened = run_cycle(settings, repo, cipher, clock=fixed(START), actor="cli")
    assert opened.verdict == "adverse"
    assert opened.alert_id is not None
    for _ in range(3):
        quiet = run_cycle(settings, repo, cipher, clock=fixed(START), actor="cli")
        assert quiet.verdict == "no_data"
        assert quiet.alerts == []
    assert rows(settings, "SELECT state, clean_streak FROM alerts") == [("open", 0)]
    assert opened.monitored is not None
    h, ref = opened.monitored.headline, opened.monitored.assessment.reference
    # The drift chart's history holds the one real reading, not the empty windows.
    assert repo.drift_history("sex", 30)[0] == [
        (h.approved, h.applicants, ref.approved, ref.applicants)
    ]


# ------------------------------------------------------------------ the daemon on a folder


def test_the_daemon_watches_a_folder_and_survives_a_corrupt_file(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A new user's run: `fairlens-monitor run` on a folder that files arrive in."""
    df, folder = german(), tmp_path / "in"
    write_days(folder, df, range(2))
    config = write_config(
        {**file_config(folder, window="new_files"), "schedule": {"interval_seconds": 0.3}}
    )
    from fairlens_monitor.config.settings import load_settings

    settings = load_settings(config, env={})
    proc = subprocess.Popen(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def count(sql: str) -> int:
        try:
            return int(rows(settings, sql)[0][0])
        except Exception:  # the schema may not exist yet
            return 0

    try:
        wait_for(
            lambda: count("SELECT count(*) FROM source_files") == 2, what="the first two files"
        )
        wait_for(
            lambda: count("SELECT count(*) FROM readings WHERE verdict = 'no_data'") >= 2,
            what="quiet cycles with nothing new",
        )
        (folder / "broken.csv").write_bytes(b'sex,risk,decided_at,credit_amount\n"male,1')
        wait_for(
            lambda: count("SELECT count(*) FROM runs WHERE status = 'failed'") >= 2,
            what="failed cycles naming the corrupt file",
        )
        (folder / "broken.csv").unlink()
        write_days(folder, df, range(2, 3))
        wait_for(lambda: count("SELECT count(*) FROM source_files") == 3, what="the third file")
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    errors = [e for (e,) in rows(settings, "SELECT error FROM runs WHERE status = 'failed'")]
    assert all("broken.csv" in str(e) for e in errors), errors
    assert "source file" in out  # the start line names each monitor's source
    verify = subprocess.run(
        [sys.executable, "-m", "fairlens_monitor", "--config", str(config), "verify"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    decided = rows(settings, "SELECT sum(n_samples) FROM readings WHERE verdict != 'no_data'")
    assert decided == [(300,)]  # every decision measured exactly once


def test_retention_keeps_the_newest_record_of_each_file(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from fairlens_monitor.ops.retention import apply_retention

    df, folder = german(), tmp_path / "in"
    [path] = write_days(folder, df, range(1))
    settings = make_settings(
        {
            **file_config(folder, window="new_files"),
            "retention": {"readings_days": 30, "runs_days": 30},
        }
    )
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    run_cycle(settings, repo, cipher, clock=fixed(START), actor="cli")
    df.iloc[100:200].to_csv(path, index=False)  # the file is replaced: read again
    run_cycle(settings, repo, cipher, clock=fixed(START), actor="cli")
    assert len(rows(settings, "SELECT id FROM source_files")) == 2
    done = apply_retention(settings.retention, repo, None, now=START + timedelta(days=60))
    assert (done["readings"], done["source_files"]) == (2, 1)
    assert rows(settings, "SELECT path, reading_id FROM source_files") == [(str(path), None)]
    later = run_cycle(settings, repo, cipher, clock=fixed(START + timedelta(days=60)), actor="cli")
    assert later.verdict == "no_data"  # the file is still known: not measured twice


def test_the_readme_worked_example_runs(tmp_path: Path) -> None:
    """The example configs and the log script, as docs/OPERATIONS.md runs them (in a copy)."""
    import shutil

    from click.testing import CliRunner

    from fairlens_monitor.cli.main import cli

    repo_root = Path(__file__).resolve().parent.parent
    example = tmp_path / "german_credit"
    shutil.copytree(
        repo_root / "examples" / "german_credit",
        example,
        ignore=shutil.ignore_patterns("var", "decisions", "lender.db"),
    )
    script = repo_root / "scripts" / "german_credit_log.py"
    for args in (
        ["--folder", str(example / "decisions")],
        ["--sqlite", str(example / "lender.db")],
    ):
        subprocess.run([sys.executable, str(script), *args], check=True, capture_output=True)
    runner = CliRunner()
    for name, expected in (
        ("files.yaml", "file: 1,000 decisions from 10 file(s)"),
        ("sql.yaml", "sql: "),
    ):
        config = str(example / name)
        for command in (["db", "upgrade"], ["once"], ["verify"]):
            result = runner.invoke(cli, ["--config", config, *command])
            assert result.exit_code == 0, result.output
            if command == ["once"]:
                assert expected in result.output
                assert "verdict=ok" in result.output


def test_a_path_into_a_missing_folder_is_an_error_not_a_quiet_source(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    quiet = make_settings(file_config(tmp_path / "empty"))  # exists, nothing arrived yet
    repo = open_repository(quiet)
    assert (
        run_cycle(quiet, repo, open_cipher(quiet, repo), clock=fixed(START), actor="cli").verdict
        == "no_data"
    )
    for pattern in ("exprots/*.csv", "exprots/**/*.csv", "exprots/day1.csv"):
        settings = make_settings(
            {
                **file_config(tmp_path),
                "source": {**file_config(tmp_path)["source"], "path": str(tmp_path / pattern)},
            }
        )
        with pytest.raises(DataError, match=r"the folder .*exprots does not exist"):
            source_files.match_files(settings.source.path or "")


def test_a_gzipped_csv_reads_like_the_plain_one(tmp_path: Path) -> None:
    import gzip

    from fairlens_monitor.fairness.counts import digest
    from fairlens_monitor.fairness.groups import GroupSpec

    plain, packed = tmp_path / "d.csv", tmp_path / "d.csv.gz"
    german().to_csv(plain, index=False)
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    spec = GroupSpec(attributes=("sex",), privileged_value="male", unprivileged_value="female")
    cols = source_files.Columns(spec, "risk", stratum="credit_amount")
    a, read_a = source_files.read_file(plain, cols, None, chunk_rows=1000)
    b, read_b = source_files.read_file(packed, cols, None, chunk_rows=1000)
    assert digest(a) == digest(b)
    assert read_b.sha256 == hashlib.sha256(packed.read_bytes()).hexdigest()  # of the file
    assert (read_a.rows, read_b.rows) == (1000, 1000)
    assert [p.name for p in source_files.match_files(str(tmp_path))] == ["d.csv", "d.csv.gz"]
