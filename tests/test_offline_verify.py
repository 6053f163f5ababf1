"""The stdlib-only offline verifier (scripts/offline_verify.py) on real exports (issue 14, 15).

`audit export --jsonl` writes the chain and every stored row; the script, run as a separate
process with `python -I` (no FairLens code importable), must call an untouched export intact,
find an event whose shown fields differ from its hashed bytes (``false`` → ``0`` included,
which Python's ``==`` calls equal), and report edited, deleted and inserted rows exactly as
``verify`` does for the same edit of the database — on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.audit.rowforms import CURRENT_FORM, form_of
from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.ops.app import open_repository, open_signing_key
from fairlens_monitor.ops.audit_trail import write_checkpoint
from tests.test_row_digests import TARGETS, Stored, edit, pruned_store
from tests.test_row_digests import stored as stored  # the fixture, shared

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "offline_verify.py"
Finding = tuple[str, int | None, str, int]  # (kind, seq, table, id)


def export(s: Stored, path: Path) -> list[str]:
    result = CliRunner().invoke(
        cli, ["--config", str(s.config), "audit", "export", "--jsonl", str(path)]
    )
    assert result.exit_code == 0, result.output
    return path.read_text().splitlines()


def offline(path: Path, *anchor: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT), str(path), *map(str, anchor)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def script_rows(stderr: str) -> list[Finding]:
    found = re.findall(
        r"^row (\w+) id (-?\d+)(?: \(seq (\d+)\))?: (row_\w+): ", stderr, flags=re.MULTILINE
    )
    return sorted((kind, int(seq) if seq else None, table, int(i)) for table, i, seq, kind in found)


def verify_rows(s: Stored) -> list[Finding]:
    result = CliRunner().invoke(cli, ["--config", str(s.config), "verify", "--json"])
    return sorted(
        (a["kind"], a["seq"], a["table"], a["id"]) for a in json.loads(result.stdout)["anomalies"]
    )


def anchor_of(s: Stored) -> Path:
    """The anchor file, with a checkpoint of the current head signed into it."""
    config = load_settings(s.config, env={})
    repo = open_repository(config)
    try:
        write_checkpoint(
            repo,
            open_signing_key(config, repo),
            anchor_file=config.audit.anchor_file,
            ts=rfc3339(datetime.now(UTC)),
        )
    finally:
        repo.engine.dispose()
    return config.audit.anchor_file


def test_an_intact_export_verifies_offline(stored: Stored, tmp_path: Path) -> None:
    lines = export(stored, tmp_path / "audit.jsonl")
    rows = [doc for doc in map(json.loads, lines) if "table" in doc]
    bound = (*TARGETS, "monitors")  # the monitors table (0015) has one row here
    in_db = sum(stored.one(f"SELECT count(*) FROM {t}") for t in bound)
    assert len(rows) == in_db  # every row of every table bound to the chain
    assert {r["table"] for r in rows} == set(bound)
    ok = offline(tmp_path / "audit.jsonl", anchor_of(stored))
    assert ok.returncode == 0, ok.stderr
    events = len(lines) - len(rows)
    assert ok.stdout.startswith(f"intact: {events} events, head ")
    assert f", {in_db} rows match their digests; " in ok.stdout
    anchored = len(anchor_of(stored).read_text().splitlines())
    assert ok.stdout.rstrip().endswith(f"; {anchored} anchored checkpoints match")
    without = offline(tmp_path / "audit.jsonl")
    assert without.stdout.rstrip().endswith(
        "no anchor file given: a lost or rebuilt tail cannot be seen"
    )


@pytest.mark.parametrize("table", list(TARGETS))
def test_the_script_reports_rows_as_verify_does(stored: Stored, tmp_path: Path, table: str) -> None:
    """The same edit, insert and delete of the database: ``verify`` and the script on an
    export of it name the same kind, seq, table and id."""
    t = TARGETS[table]
    x = stored.one(t["x"])
    column, value = t["edits"][0]
    original = stored.one(f"SELECT {column} FROM {table} WHERE id = {x}")
    other = f"(SELECT {column} FROM {table} WHERE id = {stored.one(t['y'])})"
    new_id = stored.one(f"SELECT max(id) FROM {table}") + 100
    columns = form_of(CURRENT_FORM, table).columns
    picked = [str(new_id) if c == "id" else t["copy"].get(c, f'"{c}"') for c in columns]
    quoted = ", ".join(f'"{c}"' for c in columns)
    attacks = [
        (
            [f"UPDATE {table} SET {column} = {value.format(y=other)} WHERE id = {x}"],
            [f"UPDATE {table} SET {column} = :v WHERE id = {x}"],
            "row_modified",
        ),
        (
            [
                f"INSERT INTO {table} ({quoted}) SELECT {', '.join(picked)} FROM {table} "
                f"WHERE id = {x}"
            ],
            [f"DELETE FROM {table} WHERE id = {new_id}"],
            "row_unrecorded",
        ),
        ([f"DELETE FROM {table} WHERE id = {x}"], [], "row_missing"),
    ]
    for n, (attack, undo, kind) in enumerate(attacks):
        edit(stored.url, *attack)
        expected = verify_rows(stored)
        assert [f[0] for f in expected] == [kind], (table, kind, expected)
        path = tmp_path / f"audit{n}.jsonl"
        export(stored, path)
        bad = offline(path, anchor_of(stored))
        assert bad.returncode == 1, (table, kind, bad.stdout)
        assert bad.stderr.startswith("TAMPERED:\n")
        assert script_rows(bad.stderr) == expected, (table, kind)
        if undo:
            edit(stored.url, *undo, params={"v": original})
            assert verify_rows(stored) == []


def test_an_edited_reading_in_the_export_is_found(stored: Stored, tmp_path: Path) -> None:
    """An export is evidence: a reading's DIR changed in the file itself is found."""
    path = tmp_path / "audit.jsonl"
    lines = export(stored, path)
    reading = stored.one("SELECT min(id) FROM readings WHERE scenario = 'monitored'")
    recorded_by = next(
        doc["seq"]
        for doc in map(json.loads, lines)
        if reading
        in [
            i
            for i, _ in json.loads(doc.get("canonical", "{}"))
            .get("payload", {})
            .get("row_digests", {})
            .get("readings", [])
        ]
    )
    for n, line in enumerate(lines):
        doc = json.loads(line)
        if doc.get("table") == "readings" and doc["id"] == reading:
            row = json.loads(doc["row"])
            assert row["dir"] < 0.8
            doc["row"] = doc["row"].replace(f'"dir":{row["dir"]!r}', '"dir":0.95')
            assert json.loads(doc["row"])["dir"] == 0.95
            lines[n] = json.dumps(doc, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")
    bad = offline(path, anchor_of(stored))
    assert bad.returncode == 1
    assert script_rows(bad.stderr) == [("row_modified", recorded_by, "readings", reading)]


def test_false_to_zero_in_the_shown_details_is_found(stored: Stored, tmp_path: Path) -> None:
    """``{"x": false} == {"x": 0}`` in Python; the script compares canonical bytes."""
    path = tmp_path / "audit.jsonl"
    lines = export(stored, path)
    n, event = next(
        (n, doc)
        for n, doc in enumerate(map(json.loads, lines))
        if _flip_false(doc.get("details", {}))
    )
    assert json.loads(lines[n])["details"] == event["details"]  # Python's == sees no change
    lines[n] = json.dumps(event, ensure_ascii=False, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")
    bad = offline(path, anchor_of(stored))
    assert bad.returncode == 1
    assert bad.stderr.strip() == f"TAMPERED at seq {event['seq']}"
    # A number written in another form only (1.0 for 1) changes no byte: still intact.
    event = json.loads(export(stored, path)[n])
    event["seq"] = float(event["seq"])
    lines[n] = json.dumps(event, ensure_ascii=False, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")
    assert offline(path, anchor_of(stored)).returncode == 0


def _flip_false(value: Any) -> bool:
    """Turn the first ``false`` inside ``value`` into ``0``; True when there was one."""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, inner in items:
        if inner is False:
            value[key] = 0
            return True
        if _flip_false(inner):
            return True
    return False


def test_a_truncated_export_and_bad_input(stored: Stored, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = export(stored, path)
    events = [line for line in lines if '"event_type"' in line]
    path.write_text("\n".join(events[:-1]) + "\n")  # the anchor has the head: a lost tail
    bad = offline(path, anchor_of(stored))
    assert bad.returncode == 1
    assert "bad_checkpoint" in bad.stderr
    path.write_text("not json\n")
    malformed = offline(path)
    assert (malformed.returncode, malformed.stderr.strip()) == (
        1,
        "TAMPERED: the export is malformed (JSONDecodeError)",
    )
    missing = offline(tmp_path / "nope.jsonl")
    assert missing.returncode == 2
    assert missing.stderr.startswith("cannot read ")
    assert "Traceback" not in malformed.stderr + missing.stderr


def _load_script() -> Any:
    namespace: dict[str, Any] = {"__name__": "offline_verify"}
    exec(compile(SCRIPT.read_text(), str(SCRIPT), "exec"), namespace)  # noqa: S102
    return namespace["jcs"]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_the_scripts_canonical_text_is_rfc8785(value: Any) -> None:
    """The script's own RFC 8785 encoder agrees with the library the chain is hashed with."""
    jcs = _load_script()
    try:
        expected = rfc8785.dumps(value).decode("utf-8")
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        return  # lone surrogates: not a value the chain can hold
    assert jcs(value) == expected
    assert jcs(json.loads(json.dumps(value))) == expected  # as read back from an export


@pytest.mark.parametrize(
    "number",
    [
        0.0,
        -0.0,
        1.0,
        5e-324,
        1e-7,
        1.5e-7,
        1e-6,
        1.234e-5,
        0.1,
        1e16,
        1.2345678901234567e20,
        1e21,
        1.5e300,
        -2.5,
    ],
)
def test_the_scripts_numbers_at_the_format_boundaries(number: float) -> None:
    assert _load_script()(number) == rfc8785.dumps(number).decode()


def test_an_export_of_a_pruned_chain_verifies_offline(
    write_config: Callable[..., Path], backend_url: str, tmp_path: Path
) -> None:
    """After retention pruned the chain's head, the export starts after the cut that the
    `chain_pruned` event names, and rows recorded by pruned events are checked against the
    ledger it carried."""
    config, settings, done = pruned_store(write_config, backend_url)
    s = Stored(config, backend_url)
    path = tmp_path / "audit.jsonl"
    lines = export(s, path)
    assert json.loads(lines[0])["seq"] == done["pruned_to"] + 1
    ok = offline(path, settings.audit.anchor_file)
    assert ok.returncode == 0, ok.stderr
    # Reading 2 was recorded by a pruned event: the carried ledger still checks it.
    edit(backend_url, "UPDATE readings SET verdict = 'fair' WHERE id = 2")
    export(s, path)
    bad = offline(path, settings.audit.anchor_file)
    assert bad.returncode == 1
    found = script_rows(bad.stderr)
    assert [(kind, table, i) for kind, _seq, table, i in found] == [("row_modified", "readings", 2)]
    assert found == verify_rows(s)  # the seq of the pruned event that recorded it, too
    # An export whose head was cut elsewhere than a chain_pruned event says is refused.
    events = [line for line in export(s, path) if '"event_type"' in line]
    path.write_text("\n".join(events[1:]) + "\n")
    cut = offline(path)
    assert cut.returncode == 1
    assert cut.stderr.strip() == (
        f"TAMPERED: the export starts at seq {done['pruned_to'] + 2}; no event names that cut"
    )
