"""Every stored row an auditor or the page reads is bound to the chain (issue 14, item 1).

A database with simulated cycles (runs, readings, group results, alerts acknowledged and
resolved by a person, a failed run) and a file-source cycle (source files), on SQLite and on
PostgreSQL. Each test edits one table the way an insider with SQL access would — a column
set to '', NULL or another row's value, a row deleted, a row inserted, two rows swapped —
and `verify --json` must report exactly that table and id, exit 1; undone, it is intact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from fairlens_monitor.audit.chain import GENESIS_HASH, build_record, rfc3339
from fairlens_monitor.audit.checkpoints import sign_prune
from fairlens_monitor.audit.rowforms import CURRENT_FORM, FORMS, form_of
from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import Settings, load_settings
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.ops.audit_trail import write_checkpoint
from fairlens_monitor.ops.cycle import FailedCycle, record_failure, run_cycle
from fairlens_monitor.security.crypto import AlertCipher
from fairlens_monitor.store.maintenance import apply_retention, transition_alert
from fairlens_monitor.store.repository import Repository
from tests.conftest import merge, query_url
from tests.test_sources import file_config, german, write_days

Row = tuple[str, str, int]  # (kind, table, id)


@dataclass
class Stored:
    config: Path
    url: str

    def verify(self) -> tuple[int, list[Row]]:
        result = CliRunner().invoke(cli, ["--config", str(self.config), "verify", "--json"])
        doc = json.loads(result.stdout)
        return result.exit_code, sorted((a["kind"], a["table"], a["id"]) for a in doc["anomalies"])

    def one(self, sql: str) -> Any:
        return query_url(self.url, sql)[0][0]


def edit(url: str, *statements: str, params: dict[str, Any] | None = None) -> None:
    """Run statements as someone with full SQL rights: foreign keys not enforced, the
    audit table's append-only triggers lifted."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            else:
                conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
            for statement in statements:
                conn.execute(text(statement), params or {})
    finally:
        engine.dispose()


def adverse_cycles(
    write_config: Callable[..., Path], backend_url: str, clock: Callable[[], datetime], cycles: int
) -> tuple[Path, Settings, Repository, AlertCipher]:
    """Run ``cycles`` simulated cycles at drift 1.0 (every reading adverse) on a new store.

    Returns:
        The config file, its settings, the repository and the alert cipher.
    """
    config = write_config(merge({"database": {"url": backend_url}}, {"simulation": {"drift": 1.0}}))
    settings = load_settings(config, env={})
    repo = open_repository(settings)
    cipher = open_cipher(settings, repo)
    for _ in range(cycles):
        run_cycle(settings, repo, cipher, clock=clock, actor="cli")
    return config, settings, repo, cipher


@pytest.fixture
def stored(
    write_config: Callable[..., Path],
    backend_url: str,
    tmp_path: Path,
    clock: Callable[[], datetime],
) -> Stored:
    sim, settings, repo, cipher = adverse_cycles(write_config, backend_url, clock, 2)
    first = repo.alert_count()
    assert first == 1
    at = clock()
    transition_alert(repo, 1, "resolved", by="ana", note="checked", at=at, ts=rfc3339(at))
    run_cycle(settings, repo, cipher, clock=clock, actor="cli")
    at = clock()
    transition_alert(repo, 2, "acknowledged", by="ana", note=None, at=at, ts=rfc3339(at))
    record_failure(settings, repo, FailedCycle(clock(), clock(), "ValueError: x", "cli", None))
    folder = tmp_path / "decisions"
    write_days(folder, german(), range(2))
    files = load_settings(
        write_config(
            merge({"database": {"url": backend_url}}, file_config(folder)), name="files.yaml"
        ),
        env={},
    )
    run_cycle(files, repo, cipher, clock=lambda: datetime(2026, 11, 3, tzinfo=UTC), actor="cli")
    repo.engine.dispose()
    s = Stored(sim, backend_url)
    assert s.verify() == (0, [])
    return s


# Per table: the row to attack and another (SQL), edits as (column, new value SQL), and how a
# copied row avoids the table's unique constraints.
TARGETS: dict[str, dict[str, Any]] = {
    "runs": {
        "x": "SELECT id FROM runs WHERE status = 'failed'",
        "y": "SELECT min(id) FROM runs",
        "edits": [
            ("actor", "''"),
            ("error", "NULL"),
            ("error", "' '"),
            ("cycle_index", "{y}"),
            ("started_at", "{y}"),
            ("monitor", "'other'"),  # moved to another monitor (revision 0015)
        ],
        "copy": {},
    },
    "readings": {
        "x": "SELECT min(id) FROM readings WHERE scenario = 'monitored'",
        "y": "SELECT max(id) FROM readings WHERE scenario = 'monitored'",
        "edits": [
            ("dir", "0.95"),
            ("verdict", "NULL"),
            ("verdict_reason", "''"),
            ("dir", "{y}"),
            ("dir_alert", "NOT dir_alert"),
            ("measured_at", "{y}"),
            ("monitor", "'other'"),
        ],
        "copy": {"run_id": "(SELECT id FROM runs WHERE status = 'failed')"},
    },
    "group_results": {
        "x": "SELECT min(id) FROM group_results WHERE role = 'compared'",
        "y": "SELECT max(id) FROM group_results WHERE role = 'compared'",
        "edits": [
            ("label", "''"),
            ("p_value", "NULL"),
            ("rate", "{y}"),
            ("approved", "{y}"),
            ("monitor", "'other'"),
        ],
        "copy": {"label": "label || ' copy'"},
    },
    "alerts": {
        "x": "SELECT min(id) FROM alerts",
        "y": "SELECT max(id) FROM alerts",
        "edits": [
            ("token", "{y}"),
            ("state", "'open'"),
            ("verdict", "''"),
            ("closed_at", "NULL"),
            ("clean_streak", "7"),
            ("key_id", "' '"),
            ("monitor", "'other'"),
        ],
        "copy": {"reading_id": "(SELECT min(id) FROM readings WHERE scenario = 'reference')"},
    },
    "source_files": {
        "x": "SELECT min(id) FROM source_files",
        "y": "SELECT max(id) FROM source_files",
        "edits": [
            ("sha256", "{y}"),
            ("path", "''"),
            ("reading_id", "NULL"),
            ("mtime_ns", "mtime_ns + 1"),
            ("monitor", "'other'"),
        ],
        "copy": {},
    },
    # mutable like the alerts: the newest cycle of its hour recorded it (revision 0014)
    "reading_rollups": {
        "x": "SELECT min(id) FROM reading_rollups",
        "y": "SELECT max(id) FROM reading_rollups",
        "edits": [
            ("dir_sum", "{y}"),
            ("readings", "readings + 1"),
            ("dir_min", "NULL"),
            ("monitor", "'other'"),
            ("first_at", "{y}"),
            ("alerts", "alerts + 1"),
            ("group_applicants", "group_applicants - 1"),
        ],
        "copy": {"monitor": "'copy'"},
    },
}


@pytest.mark.parametrize("table", list(TARGETS))
def test_every_edit_of_a_row_is_reported_at_its_table_and_id(stored: Stored, table: str) -> None:
    t = TARGETS[table]
    x, y = stored.one(t["x"]), stored.one(t["y"])
    assert x != y
    for column, value in t["edits"]:
        original = stored.one(f"SELECT {column} FROM {table} WHERE id = {x}")
        other = f"(SELECT {column} FROM {table} WHERE id = {y})"
        new = value.format(y=other)
        same = "IS NOT DISTINCT FROM" if stored.url.startswith("postgresql") else "IS"
        assert query_url(stored.url, f"SELECT {new} {same} {column} FROM {table} WHERE id = {x}")[
            0
        ][0] in (0, False), f"{table}.{column}: the edit would change nothing"
        edit(stored.url, f"UPDATE {table} SET {column} = {new} WHERE id = {x}")
        assert stored.verify() == (1, [("row_modified", table, x)]), (table, column, value)
        edit(stored.url, f"UPDATE {table} SET {column} = :v WHERE id = {x}", params={"v": original})
    assert stored.verify() == (0, [])


@pytest.mark.parametrize("table", list(TARGETS))
def test_a_deleted_an_inserted_and_two_swapped_rows_are_reported(
    stored: Stored, table: str
) -> None:
    t = TARGETS[table]
    x, y = stored.one(t["x"]), stored.one(t["y"])
    columns = form_of(CURRENT_FORM, table).columns
    new_id = stored.one(f"SELECT max(id) FROM {table}") + 100
    picked = [str(new_id) if c == "id" else t["copy"].get(c, f'"{c}"') for c in columns]
    quoted = ", ".join(f'"{c}"' for c in columns)
    edit(
        stored.url,
        f"INSERT INTO {table} ({quoted}) SELECT {', '.join(picked)} FROM {table} WHERE id = {x}",
    )
    assert stored.verify() == (1, [("row_unrecorded", table, new_id)])
    edit(stored.url, f"DELETE FROM {table} WHERE id = {new_id}")

    edit(
        stored.url,
        f"UPDATE {table} SET id = -1 WHERE id = {x}",
        f"UPDATE {table} SET id = {x} WHERE id = {y}",
        f"UPDATE {table} SET id = {y} WHERE id = -1",
    )
    assert stored.verify() == (1, sorted([("row_modified", table, x), ("row_modified", table, y)]))
    edit(
        stored.url,
        f"UPDATE {table} SET id = -1 WHERE id = {x}",
        f"UPDATE {table} SET id = {x} WHERE id = {y}",
        f"UPDATE {table} SET id = {y} WHERE id = -1",
    )
    assert stored.verify() == (0, [])

    edit(stored.url, f"DELETE FROM {table} WHERE id = {x}")
    code, anomalies = stored.verify()
    assert (code, anomalies) == (1, [("row_missing", table, x)])


def test_json_anomalies_name_kind_seq_table_id_and_detail(stored: Stored) -> None:
    reading = stored.one("SELECT min(id) FROM readings")
    edit(stored.url, f"UPDATE readings SET dir = 0.95 WHERE id = {reading}")
    result = CliRunner().invoke(cli, ["--config", str(stored.config), "verify", "--json"])
    assert result.exit_code == 1
    (anomaly,) = json.loads(result.stdout)["anomalies"]
    assert set(anomaly) == {"kind", "seq", "table", "id", "detail"}
    recorded_by = stored.one(
        "SELECT min(seq) FROM audit_events WHERE event_type = 'cycle_completed'"
    )
    assert anomaly == {
        "kind": "row_modified",
        "seq": recorded_by,
        "table": "readings",
        "id": reading,
        "detail": f"the stored row differs from the digest recorded at seq {recorded_by}",
    }
    text_out = CliRunner().invoke(cli, ["--config", str(stored.config), "verify"]).stdout
    head, *_, verdict = text_out.splitlines()
    head_seq = stored.one("SELECT max(seq) FROM audit_events")
    assert head == (
        f"audit chain TAMPERED: the events' hashes hold up to seq {head_seq}, but "
        "stored rows do not match the digests the chain recorded (1 found; first: "
        f"row readings id {reading} (seq {recorded_by}): row_modified)"
    )
    assert "verified up to" not in text_out  # nothing that reads as "all is well"
    assert verdict == "verdict: TAMPERED (1 anomalies; exit 1)"


def test_an_alert_changed_without_its_event_is_found(stored: Stored) -> None:
    """The latest event for an alert must match its mutable columns: marking the
    acknowledged alert resolved by hand (no event) is found."""
    edit(stored.url, "UPDATE alerts SET state = 'resolved', closed_at = created_at WHERE id = 2")
    assert stored.verify() == (1, [("row_modified", "alerts", 2)])


def test_the_canonical_form_is_the_same_for_both_back_ends() -> None:
    """SQLite hands back times as text and booleans as 0/1, PostgreSQL as datetime and bool;
    a float column may come back as an int: the canonical text is the same."""
    form = FORMS[1]["alerts"]
    sqlite_row = (
        3,
        1,
        2,
        "2026-01-01 00:00:05.000000",
        "dir",
        1,
        "tok",
        "k",
        "open",
        None,
        2,
        0,
        None,
    )
    pg_row = (
        3,
        1,
        2,
        datetime(2026, 1, 1, 1, 0, 5, tzinfo=timezone_plus_one()),
        "dir",
        1.0,
        "tok",
        "k",
        "open",
        None,
        2,
        0,
        None,
    )
    assert form.canonical(sqlite_row) == form.canonical(pg_row)
    assert '"created_at":"2026-01-01T00:00:05.000000Z"' in form.canonical(sqlite_row)
    assert '"dir":1.0' in form.canonical(sqlite_row)
    readings = FORMS[1]["readings"]
    values: list[Any] = [None] * len(readings.columns)
    flag = readings.columns.index("dir_alert")
    values[flag] = 1
    as_int = readings.canonical(values)
    values[flag] = True
    assert readings.canonical(values) == as_int
    values[flag] = "1"
    assert readings.canonical(values) != as_int
    values[flag] = None
    values[readings.columns.index("measured_at")] = "2026-01-01T00:00:05.000000Z"
    assert '"measured_at":"raw:2026-01-01T00:00:05.000000Z"' in readings.canonical(values)


def timezone_plus_one() -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=1))


def test_rows_from_before_row_digests_get_one_signed_baseline(
    write_config: Callable[..., Path], backend_url: str, clock: Callable[[], datetime]
) -> None:
    """A database written by a version without row digests: the first writable start (or
    `db upgrade`) records one ``rows_baseline`` event; from then on its rows are checked."""
    config, _settings, repo, _cipher = adverse_cycles(write_config, backend_url, clock, 3)
    repo.engine.dispose()
    # Rewrite the chain as the previous version wrote it: the same events, no row digests.
    prev = GENESIS_HASH
    rows = query_url(
        backend_url, "SELECT seq, ts, event_type, actor, canonical FROM audit_events ORDER BY seq"
    )
    statements = ["DELETE FROM audit_events"]
    params: dict[str, Any] = {}
    for n, (seq, ts, event_type, actor, canonical) in enumerate(rows):
        payload = json.loads(canonical)["payload"]
        payload.pop("row_digests", None)
        rec = build_record(
            seq=seq, ts=ts, event_type=event_type, actor=actor, payload=payload, prev_hash=prev
        )
        prev = rec.hash
        statements.append(
            "INSERT INTO audit_events (seq, ts, event_type, actor, canonical, "
            f"prev_hash, hash) VALUES (:s{n}, :t{n}, :e{n}, :a{n}, :c{n}, :h{n}, :x{n})"
        )
        params.update(
            {
                f"s{n}": seq,
                f"t{n}": ts,
                f"e{n}": event_type,
                f"a{n}": actor,
                f"c{n}": rec.canonical,
                f"h{n}": rec.prev_hash,
                f"x{n}": rec.hash,
            }
        )
    edit(backend_url, *statements, params=params)
    s = Stored(config, backend_url)
    code, anomalies = s.verify()
    assert code == 1
    assert {kind for kind, _, _ in anomalies} == {"row_unrecorded"}  # nothing records them

    upgraded = CliRunner().invoke(cli, ["--config", str(config), "db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    baseline = s.one("SELECT max(seq) FROM audit_events")
    assert f"rows stored before row digests recorded at seq {baseline}" in upgraded.stdout
    assert s.verify() == (0, [])
    assert CliRunner().invoke(cli, ["--config", str(config), "once"]).exit_code == 0
    assert s.one("SELECT count(*) FROM audit_events WHERE event_type = 'rows_baseline'") == 1
    assert s.verify() == (0, [])
    edit(backend_url, "UPDATE readings SET dir = 0.95 WHERE id = 1")
    assert s.verify() == (1, [("row_modified", "readings", 1)])
    # Another start does not record a second baseline that would launder the edit.
    CliRunner().invoke(cli, ["--config", str(config), "db", "upgrade"])
    assert s.one("SELECT count(*) FROM audit_events WHERE event_type = 'rows_baseline'") == 1


def pruned_store(
    write_config: Callable[..., Path], backend_url: str
) -> tuple[Path, Settings, dict[str, Any]]:
    """Three cycles 400 days old, a checkpoint, a recent cycle, then retention: the old
    cycles' events are pruned (``chain_pruned``), their rows kept.

    Returns:
        The config file, its settings and what retention did.
    """
    now = datetime.now(UTC)
    old = iter(now - timedelta(days=400) + timedelta(seconds=i) for i in range(1000))
    config, settings, repo, cipher = adverse_cycles(write_config, backend_url, lambda: next(old), 3)
    signer = open_signing_key(settings, repo)
    write_checkpoint(repo, signer, anchor_file=settings.audit.anchor_file, ts=rfc3339(now))
    recent = iter(now - timedelta(minutes=5) + timedelta(seconds=i) for i in range(1000))
    run_cycle(settings, repo, cipher, clock=lambda: next(recent), actor="cli")
    ts = rfc3339(now)
    done = apply_retention(
        repo,
        readings_before=now - timedelta(days=800),
        runs_before=now - timedelta(days=800),
        prune=lambda seq, head: sign_prune(signer, pruned_to=seq, head_hash=head, ts=ts),
        audit_before=rfc3339(now - timedelta(days=183)),
        dry_run=False,
        ts=ts,
    )
    repo.engine.dispose()
    assert done["pruned_to"] is not None
    return config, settings, done


def test_rows_outlive_the_events_that_recorded_them(
    write_config: Callable[..., Path], backend_url: str
) -> None:
    """Retention prunes old events but keeps readings longer: ``chain_pruned`` carries what
    the pruned events recorded, so an edit of such a reading is still found."""
    config, _settings, done = pruned_store(write_config, backend_url)
    assert done["readings"] == 0
    s = Stored(config, backend_url)
    assert s.one("SELECT min(seq) FROM audit_events") > 3  # the cycles' own events are gone
    assert s.verify() == (0, [])
    edit(backend_url, "UPDATE readings SET verdict = 'fair' WHERE id = 2")
    assert s.verify() == (1, [("row_modified", "readings", 2)])
    edit(
        backend_url,
        "UPDATE readings SET verdict = 'adverse' WHERE id = 2",
        "DELETE FROM group_results WHERE id = 1",
    )
    code, anomalies = s.verify()
    assert ("row_missing", "group_results", 1) in anomalies
    assert code == 1


def test_the_views_read_only_columns_a_digest_covers(tmp_path: Path) -> None:
    """Each view reads the five row tables (every column in the current row form, so a
    migration that adds one fails here until it adds a form) or the chain itself."""
    from fairlens_monitor.audit.rowforms import TABLES
    from fairlens_monitor.store.db import make_engine
    from fairlens_monitor.store.models import Base
    from fairlens_monitor.store.schema import upgrade

    for table in TABLES:
        assert set(Base.metadata.tables[table].columns.keys()) == set(
            FORMS[CURRENT_FORM][table].columns
        ), table
    url = f"sqlite:///{tmp_path / 'v.db'}"
    engine = make_engine(url)
    upgrade(engine, url)
    with engine.connect() as conn:
        views = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))
        read = {
            name: set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)", sql, re.IGNORECASE))
            for name, sql in views
        }
    engine.dispose()
    assert read
    for name, tables in read.items():
        assert tables <= {*TABLES, "audit_events", "checkpoints"} | set(read), (name, tables)


def test_text_that_is_not_utf8_is_a_modified_row_not_a_crash(stored: Stored) -> None:
    if not stored.url.startswith("sqlite"):  # PostgreSQL refuses such text outright
        with pytest.raises(Exception, match="invalid byte sequence"):
            edit(
                stored.url,
                "UPDATE runs SET actor = convert_from('\\xc3'::bytea, 'UTF8') WHERE id = 1",
            )
        assert stored.verify() == (0, [])
        return
    reading = stored.one("SELECT max(id) FROM readings")
    edit(
        stored.url,
        f"UPDATE readings SET verdict = CAST(X'FF' AS TEXT) WHERE id = {reading}",
        "UPDATE runs SET actor = CAST(X'C3' AS TEXT) WHERE id = 1",
    )
    assert stored.verify() == (
        1,
        [("row_modified", "readings", reading), ("row_modified", "runs", 1)],
    )


def test_an_event_appended_later_cannot_re_record_an_edited_reading(stored: Stored) -> None:
    """Anyone with write access can append events to the unsigned tail; a reading, run or
    group result is recorded once, so a later event with the edited row's digest is itself
    reported (only alert and file-record transitions may re-record a row)."""
    from fairlens_monitor.store.repository import Repository
    from fairlens_monitor.store.rowstore import stored_rows

    reading = stored.one("SELECT max(id) FROM readings WHERE scenario = 'monitored'")
    edit(stored.url, f"UPDATE readings SET dir = 0.95 WHERE id = {reading}")
    engine = create_engine(stored.url)
    try:
        row = stored_rows(engine, "readings", [reading])[reading]
        forged = FORMS[CURRENT_FORM]["readings"].digest(row)
        Repository(engine).append_event(
            "cycle_completed",
            "cli",
            {"row_digests": {"form": CURRENT_FORM, "readings": [[reading, forged]]}},
            ts="2026-12-01T00:00:00.000000Z",
        )
    finally:
        engine.dispose()
    assert stored.verify() == (1, [("row_modified", "readings", reading)] * 2)


# Every kind of value a back end or a hand edit can leave in a column of any kind.
ODD_VALUES: list[Any] = [
    None,
    0,
    1,
    2,
    -7,
    2**70,
    True,
    False,
    0.0,
    -0.0,
    1.0,
    3.0,
    0.95,
    1e-5,
    1e300,
    float("inf"),
    float("-inf"),
    float("nan"),
    "",
    " ",
    "x",
    "1",
    "nul",
    'é\u2028"\\\n',
    "\ud800",
    "2026-01-01 00:00:05.000000",
    "2026-01-01 00:00:05.00000x",
    "\uff12026-01-01 00:00:05.000000",
    "2026-01-01T00:00:05.000000Z",
    '{"b":1,"a":[2,{"d":1,"c":2}]}',
    "[1,2]",
    b"\x00\xff",
    bytearray(b"a"),
    memoryview(b"z"),
    datetime(2026, 1, 1, tzinfo=timezone_plus_one()),
    datetime(2026, 1, 1),
    datetime(5, 1, 1, tzinfo=UTC),
    {"z": 1, "a": 2},
    [3, {"b": 1, "a": 0}],
]


def test_the_compiled_canonical_text_is_the_reference_text_for_any_value() -> None:
    """``canonical`` (compiled per table for speed) writes exactly what the rule-by-rule
    ``reference`` writes, whatever each column holds."""
    import random

    rnd = random.Random(14)
    for form in (f for forms in FORMS.values() for f in forms.values()):
        for _ in range(2000):
            values = [rnd.choice(ODD_VALUES) for _ in form.columns]
            assert form.canonical(values) == form.reference(values), form.table


def test_row_digests_are_those_recorded_before_the_compiled_forms() -> None:
    """Digests already on the chain stay valid: pinned from the code before this change."""
    from datetime import timezone

    pool = [
        None,
        7,
        1,
        0.95,
        float("nan"),
        float("inf"),
        3,
        'é\u2028"x',
        "2026-01-01 00:00:05.000000",
        '{"b":1,"a":[2,{"d":1,"c":2}]}',
        b"\x00\xff",
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=3))),
    ]
    pinned = {
        "runs": "42cc82f2ed034931dc8607ab23823884a38a8a784dbb229023879c5d67f18a86",
        "readings": "41076fc7c6357c01e765b69f18144f24dcc2ace5e72060d408dc9d4b81cb4cf0",
        "group_results": "8bb8eb112b324f60185ebdb206bb2e461d2d948dd9ca9855dc7d240c5aca5679",
        "alerts": "b6f1e2243094683a6af138d81b9321e708d727c35def6fc8c81e2ffd1a8edb82",
        "source_files": "fbd157ced8d32a7f2b4cae0422dc78ded92504a435c70fe577b06f4b9125e68e",
    }
    for table, form in FORMS[1].items():
        values = [pool[(i * 5 + len(table)) % len(pool)] for i in range(len(form.columns))]
        assert form.digest(values) == pinned[table], table


def test_row_entries_read_without_the_json_decoder_are_the_decoded_ones() -> None:
    """The ledger reads the usual row_digests text with regular expressions: any text,
    usual or odd, gives what the JSON decoder gives (None when that fails)."""
    import random

    from fairlens_monitor.store.db import canonical_json
    from fairlens_monitor.store.rowstore import _row_entries

    rnd = random.Random(14)
    texts = []
    for _ in range(500):
        digests: dict[str, Any] = {"form": rnd.choice([0, 1, 2])}
        for table in ("alerts", "group_results", "readings", "runs", "source_files"):
            if rnd.random() < 0.5:
                digests[table] = [
                    [rnd.choice([0, 7, 123456789012]), f"{rnd.getrandbits(256):064x}"]
                    for _ in range(rnd.randint(0, 3))
                ]
        texts.append(
            '{"actor":"a","event_type":"cycle_completed","payload":'
            + canonical_json({"row_digests": digests, "run_id": 1})
            + ',"seq":1}'
        )
    usual = texts[0]
    texts += [
        usual.replace('"form":', '"form":0'),
        usual.replace("[[", "[[0"),
        usual.replace('"form":', '"alertz":[],"form":'),
        usual.replace("]]", "]] "),
        usual.replace('"form":1', '"form":1,"form":2'),
        usual.upper(),
        usual.replace('"row_digests":{', '"row_digests":{"zz":1,'),
    ]
    decode = json.JSONDecoder().raw_decode
    for text_ in texts:
        at = text_.find('"row_digests":{')
        try:
            expected: Any = (
                {} if at < 0 else {"row_digests": decode(text_, at + len('"row_digests":'))[0]}
            )
        except ValueError:
            expected = None
        got = _row_entries(text_)
        if got:  # the strict reader gives (id, digest) tuples where JSON gives lists
            got = json.loads(json.dumps(got))
        assert got == expected, text_


def test_older_forms_read_a_renamed_column_under_its_old_name() -> None:
    """Migration 0012 renamed eight readings columns: a reading recorded under form 1 is
    checked over the same bytes as when it was written (old names, same values), and no
    column silently becomes NULL."""
    from fairlens_monitor.audit.rowforms import in_form

    current = FORMS[CURRENT_FORM]["readings"]
    values: list[Any] = [f"v{i}" for i in range(len(current.columns))]
    values[current.columns.index("monitor")] = "default"  # every row before 0015 is default's
    found = in_form(1, "readings", values)
    assert found is not None
    old, mapped = found
    assert None not in mapped
    # every column but the monitor (form 3, revision 0015) is read under its old name
    assert sorted(mapped) == sorted(v for v in values if v != "default")
    text = old.canonical(mapped)
    assert '"unprivileged_count":' in text
    assert '"group_applicants":' not in text
    assert '"group_applicants":' in current.canonical(values)
    by_name = dict(zip(current.columns, values, strict=True))
    assert mapped[old.columns.index("privileged_rate")] == by_name["reference_rate"]
    assert old.digest(mapped) != current.digest(values)  # the form is in the tag


def test_the_chain_walk_reads_the_same_ledger_as_the_replay(
    write_config: Callable[..., Path], backend_url: str, clock: Callable[[], datetime]
) -> None:
    """`verify` takes the row check's ledger from its one walk over the chain (RowTap): it is
    exactly the ledger a separate replay of the row events reads, and an edited row is still
    found through it."""
    from fairlens_monitor.audit.verify import verify_chain
    from fairlens_monitor.store.rowstore import check_rows, ledger
    from fairlens_monitor.store.rowtap import RowTap

    _config, _settings, repo, _cipher = adverse_cycles(write_config, backend_url, clock, 4)
    tap = RowTap()
    assert verify_chain(tap.watch(repo.iter_stored()), repo.iter_links()).intact
    walked, replayed = tap.ledger(), ledger(repo.engine)
    assert walked.rows == replayed.rows
    assert walked.rows["readings"]
    assert walked.rows["alerts"]
    assert (walked.anomalies, walked.last_seq) == (replayed.anomalies, replayed.last_seq)
    assert check_rows(repo.engine, book=walked) == []
    engine = create_engine(backend_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE readings SET dir = 0.99 WHERE id = 2"))
    engine.dispose()
    found = check_rows(repo.engine, book=tap.ledger())  # a ledger is used up by one check
    assert [(a.kind, a.table, a.id) for a in found] == [("row_modified", "readings", 2)]
    repo.engine.dispose()
