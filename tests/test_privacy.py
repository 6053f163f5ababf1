"""Pseudonyms that resist enumeration, and log lines without personal data."""

from __future__ import annotations

import hashlib
import logging
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fairlens_monitor.errors import DataError, KeyFileError
from fairlens_monitor.security.pseudonyms import (
    MaskingFilter,
    anonymize_data,
    load_pepper,
    mask,
    pseudonym,
)

ROOT = Path(__file__).resolve().parents[1]


def test_a_bare_hash_of_sequential_ids_is_reversed_by_enumeration_a_keyed_one_is_not(
    tmp_path: Path,
) -> None:
    ids = pd.DataFrame({"application_id": range(100_001, 101_001), "approved": True})
    bare = ids["application_id"].map(lambda v: hashlib.sha256(str(v).encode()).hexdigest())
    # The attacker knows ids are 6-digit application numbers and hashes all of them.
    table = {hashlib.sha256(str(i).encode()).hexdigest(): i for i in range(1_000_000)}
    assert (bare.map(table) == ids["application_id"]).all()  # every id recovered

    keyed = anonymize_data(ids, pepper=load_pepper(tmp_path / "keys"))
    assert keyed["application_id"].map(table).isna().all()  # nothing recovered
    assert keyed["application_id"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert ids["application_id"].iloc[0] == 100_001  # the input is left alone


def test_pseudonyms_are_stable_per_pepper_and_differ_across_peppers(tmp_path: Path) -> None:
    first = load_pepper(tmp_path / "a")
    assert load_pepper(tmp_path / "a") == first  # created once, then reused
    other = load_pepper(tmp_path / "b")
    df = pd.DataFrame({"application_id": [7, 7, 8, None], "x": [1, 2, 3, 4]})
    out = anonymize_data(df, ["application_id"], pepper=first)
    assert out["application_id"].iloc[0] == out["application_id"].iloc[1] == pseudonym(7, first)
    assert out["application_id"].iloc[2] != out["application_id"].iloc[0]
    assert pd.isna(out["application_id"].iloc[3])  # missing stays missing
    assert pseudonym(7, first) != pseudonym(7, other)
    with pytest.raises(DataError, match="no id column 'customer'"):
        anonymize_data(df, ["customer"], pepper=first)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        pseudonym(7, b"short")


def test_the_pepper_file_is_private(tmp_path: Path) -> None:
    load_pepper(tmp_path / "keys")
    path = tmp_path / "keys" / "pepper.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_pepper(tmp_path / "keys")
    with pytest.raises(KeyFileError, match="missing"):
        load_pepper(tmp_path / "nowhere", create=False)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("mail jane.doe+loans@example.co.uk now", "mail [email] now"),
        ("SSN 123-45-6789 on file", "SSN [ssn] on file"),
        ("call +1 (555) 123-4567 or 030 1234 5678", "call [phone] or [phone]"),
        ("application_id=884213 declined", "application_id=[id] declined"),
        ("Applicant ID: A-99812 flagged", "Applicant ID: [id] flagged"),
        (
            "DIR 0.77 at 2026-11-23T12:00:00Z, seq 1234, 500 applicants",
            "DIR 0.77 at 2026-11-23T12:00:00Z, seq 1234, 500 applicants",
        ),
    ],
)
def test_mask(line: str, expected: str) -> None:
    assert mask(line) == expected


def test_the_filter_masks_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("fairlens_monitor.test_privacy")
    caplog.handler.addFilter(MaskingFilter())
    try:
        raise ValueError("bad row for bob@example.com")
    except ValueError:
        logger.exception("cycle failed for application_id %s (%s)", 4711, "555-123-4567")
    record = caplog.records[-1]
    assert record.getMessage() == "cycle failed for application_id [id] ([phone])"
    assert "bob@example.com" not in caplog.text
    assert "[email]" in caplog.text


def test_the_cli_masks_log_lines_by_default(tmp_path: Path) -> None:
    script = (
        "import logging, sys\n"
        "from fairlens_monitor.cli.main import cli\n"
        "cli.main(['--config', sys.argv[1], '--log-level', 'INFO', 'db', 'current'],"
        " standalone_mode=False)\n"
        "logging.getLogger('fairlens_monitor.x').warning("
        "'applicant_id=%s mail %s', 991, 'a@b.org')\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        "database: {url: 'sqlite:///var/x.db'}\nschedule: {interval_seconds: 1}\n"
        "simulation: {n_samples: 10, seed: 1, drift: 0}\n"
        "thresholds: {dir: 0.8, gap: 0.2}\nkeys: {dir: var/keys}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert "applicant_id=[id] mail [email]" in done.stderr, done.stderr
    assert "a@b.org" not in done.stderr
