"""The chain walked in stretches on several cores equals the serial walk, tampered or not.

``store.chainwalk`` splits a SQLite chain by row id, walks each stretch in its own process
and joins the boundaries (``audit.segments``). These tests hold it to ``verify_chain``:

- a property test over random tampering (edits, deletions, swaps, duplicates, rewritten
  links, damaged columns, a rehashed tail against signed claims) and random split points,
  in memory: the join is either None (the caller then walks serially) or exactly the
  serial report, and an untouched chain always joins;
- real SQLite files and real worker processes, with the tampering exactly at the split
  point (the last record of one stretch, the first of the next): the report equals the
  serial one; an intact chain is really walked split (a worker ran), a small chain or one
  core is walked serially, PostgreSQL serially, and a worker that dies makes it serial;
- the whole `verify` command on a chain long enough to be split, tampered at the split.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairlens_monitor.audit.chain import GENESIS_HASH, Link, build_record
from fairlens_monitor.audit.segments import join_segments, walk_segment
from fairlens_monitor.audit.verify import AnchorClaim, claims_to_check, verify_chain
from fairlens_monitor.cli.main import cli
from fairlens_monitor.store import chainwalk
from fairlens_monitor.store.db import make_engine
from fairlens_monitor.store.repository import Repository
from fairlens_monitor.store.schema import upgrade

Row = tuple[Any, ...]
TS = "2026-01-01T00:00:{:02d}.{:06d}Z"


def chain_rows(count: int, first: int = 1, prev: str = GENESIS_HASH, tag: str = "") -> list[Row]:
    """``count`` chained rows from seq ``first`` (iter_stored's 8 columns, edited = 0)."""
    rows = []
    for seq in range(first, first + count):
        rec = build_record(
            seq=seq,
            ts=TS.format(seq % 60, seq),
            event_type="cycle_completed" if seq % 3 else "alert_raised",
            actor="daemon" if seq % 2 else "cli",
            payload={"n": seq, "note": f"event {seq}{tag}"},
            prev_hash=prev,
        )
        prev = rec.hash
        rows.append((seq, rec.ts, rec.event_type, rec.actor, rec.prev_hash, rec.hash,
                     rec.canonical, 0))  # fmt: skip
    return rows


def by_seq(rows: Sequence[Row]) -> list[Link]:
    return sorted(
        (Link(r[0], r[4], r[5]) for r in rows if type(r[0]) is int), key=lambda link: link.seq
    )


def split_report(rows: Sequence[Row], cuts: Sequence[int], anchors: Sequence[AnchorClaim]) -> Any:
    """What the split walk reports for ``rows`` cut at ``cuts`` (None: walk serially)."""
    wanted = {a.seq for a in claims_to_check(anchors, (1, GENESIS_HASH))}
    edges = [0, *sorted(set(cuts)), len(rows)]
    parts = [rows[a:b] for a, b in itertools.pairwise(edges) if b > a]
    return join_segments([walk_segment(p, wanted) for p in parts], anchors, (1, GENESIS_HASH))


# --- the property, in memory ----------------------------------------------------------------

TAMPERS = (
    "canonical",
    "prev_hash",
    "hash",
    "delete",
    "swap",
    "duplicate",
    "seq",
    "ts",
    "actor",
    "event_type",
    "edited",
    "null",
    "rehash",
)


def tampered(rows: list[Row], kind: str, at: int, other: int) -> list[Row]:
    """``rows`` with one tampering of ``kind`` at index ``at`` (``other``: a second index)."""
    rows = list(rows)
    seq, _ts, _event_type, _actor, prev, _hash, canonical, edited = rows[at]
    if kind == "canonical":
        rows[at] = (*rows[at][:6], canonical.replace('"n":', '"n":1'), edited)
    elif kind == "prev_hash":
        rows[at] = (*rows[at][:4], "ab" * 32, *rows[at][5:])
    elif kind == "hash":
        rows[at] = (*rows[at][:5], "cd" * 32, *rows[at][6:])
    elif kind == "delete":
        del rows[at]
    elif kind == "swap":
        rows[at], rows[other] = rows[other], rows[at]
    elif kind == "duplicate":
        rows.insert(other, rows[at])
    elif kind == "seq":
        rows[at] = (rows[other][0], *rows[at][1:])
    elif kind == "ts":
        rows[at] = (seq, TS.format(59, 999999), *rows[at][2:])
    elif kind == "actor":
        rows[at] = (*rows[at][:3], "someone", *rows[at][4:])
    elif kind == "event_type":
        rows[at] = (*rows[at][:2], "chain_pruned", *rows[at][3:])
    elif kind == "edited":
        rows[at] = (*rows[at][:7], 1)
    elif kind == "null":
        rows[at] = (*rows[at][: other % 8], None, *rows[at][other % 8 + 1 :])
    elif kind == "rehash":  # a different record at ``at``, every later one rehashed to fit
        rows[at:] = chain_rows(len(rows) - at, first=seq, prev=prev, tag="!")
    return rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(min_value=2, max_value=40),
    tampers=st.lists(
        st.tuples(st.sampled_from(TAMPERS), st.integers(0, 10_000), st.integers(0, 10_000)),
        max_size=3,
    ),
    cuts=st.lists(st.integers(0, 10_000), min_size=1, max_size=4),
    claimed=st.lists(st.integers(0, 10_000), max_size=3),
)
def test_the_split_walk_is_the_serial_walk_or_steps_aside(
    size: int,
    tampers: list[tuple[str, int, int]],
    cuts: list[int],
    claimed: list[int],
) -> None:
    original = chain_rows(size)
    anchors = [  # signed claims of the original chain's hashes (a rehash contradicts them)
        AnchorClaim(original[c % size][0], original[c % size][5], True, "test") for c in claimed
    ]
    rows = original
    for kind, at, other in tampers:
        if rows:
            rows = tampered(rows, kind, at % len(rows), other % len(rows))
    serial = verify_chain(rows, by_seq(rows), anchors)
    split = split_report(rows, [c % (len(rows) + 1) for c in cuts], anchors)
    assert split is None or split == serial
    if not tampers:
        assert split == serial
        assert serial.intact


@pytest.mark.parametrize("kind", ["canonical", "prev_hash", "delete", "swap", "seq", "rehash"])
@pytest.mark.parametrize("side", [-1, 0])
def test_a_tampered_boundary_never_joins(kind: str, side: int) -> None:
    rows = chain_rows(20)
    head = [AnchorClaim(20, rows[19][5], True, "signed head")]
    cut = 10  # rows[9] ends the first stretch, rows[10] starts the second
    bad = tampered(rows, kind, cut + side, cut + side + (1 if side == -1 else -1))
    assert split_report(rows, [cut], head) == verify_chain(rows, by_seq(rows), head)
    serial = verify_chain(bad, by_seq(bad), head)
    assert not serial.intact
    if kind == "rehash":  # a chain intact in itself: only the signed head contradicts it
        assert split_report(bad, [cut], head) == serial
        assert [(a.seq, a.kind) for a in serial.anomalies] == [(20, "bad_checkpoint")]
    else:
        assert split_report(bad, [cut], head) is None


def test_a_stretch_rehashed_from_its_first_record_is_a_broken_boundary() -> None:
    """The second stretch alone is a perfect chain; only its first prev_hash betrays it."""
    rows = chain_rows(20)
    forged = rows[:10] + chain_rows(10, first=11, prev="ef" * 32)
    assert walk_segment(forged[10:], set()) is not None  # intact on its own
    assert split_report(forged, [10], []) is None
    assert [(a.seq, a.kind) for a in verify_chain(forged, by_seq(forged)).anomalies] == [
        (11, "broken_link")
    ]


# --- real files, real worker processes ------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Callable[[list[Row]], Repository]]:
    """A migrated SQLite file holding the given rows; a read-only repository on it."""
    made: list[Repository] = []

    def build(rows: list[Row]) -> Repository:
        path = tmp_path / f"chain{len(made)}.db"
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        upgrade(engine, url)
        engine.dispose()
        with sqlite3.connect(path) as conn:
            conn.executemany(
                "INSERT INTO audit_events (seq, ts, event_type, actor, prev_hash, hash, "
                "canonical) VALUES (?,?,?,?,?,?,?)",
                [r[:7] for r in rows],
            )
        made.append(Repository(make_engine(url, readonly=True)))
        return made[-1]

    yield build
    for repo in made:
        repo.engine.dispose()


def tamper_file(repo: Repository, *statements: str) -> None:
    path = repo.engine.url.database or ""
    path = path.removeprefix("file:").split("?")[0]
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
        for statement in statements:
            conn.execute(statement)


def serial(repo: Repository, anchors: Sequence[AnchorClaim] = ()) -> Any:
    return verify_chain(repo.iter_stored(), repo.iter_links(), anchors)


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of workers each split walk started (a list of counts)."""
    counts: list[int] = []
    spawn = chainwalk._spawn

    def counting(*args: Any) -> Any:
        counts.append(1)
        return spawn(*args)

    monkeypatch.setattr(chainwalk, "_spawn", counting)
    return counts


def test_an_intact_chain_is_walked_split_and_equals_the_serial_walk(
    database: Callable[[list[Row]], Repository], spawned: list[int]
) -> None:
    rows = chain_rows(300)
    repo = database(rows)
    anchors = [AnchorClaim(100, rows[99][5], True, "a"), AnchorClaim(250, rows[249][5], True, "b")]
    report, _tap = chainwalk.walk_chain(repo, anchors, (1, GENESIS_HASH), workers=3, min_events=1)
    assert len(spawned) == 2  # three stretches: this process and two workers
    assert report == serial(repo, anchors)
    assert report.intact
    assert report.count == 300
    assert report.anchored_seq == 250
    assert chainwalk._split_walk(repo, anchors, (1, GENESIS_HASH), 2, 1) is not None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET canonical = replace(canonical, '\"n\":', '\"n\":7') "
        "WHERE id = {id}",
        "UPDATE audit_events SET ts = '2026-02-02T00:00:00.000000Z' WHERE id = {id}",
        "UPDATE audit_events SET prev_hash = '" + "ab" * 32 + "' WHERE id = {id}",
        "DELETE FROM audit_events WHERE id = {id}",
        "UPDATE audit_events SET seq = -seq WHERE id IN ({id}, {other});"
        "UPDATE audit_events SET seq = CASE id WHEN {id} THEN -(SELECT seq FROM audit_events "
        "WHERE id = {other}) ELSE -(SELECT seq FROM audit_events WHERE id = {id}) END "
        "WHERE id IN ({id}, {other})",
    ],
    ids=["edit", "edit-ts", "relink", "delete", "swap"],
)
@pytest.mark.parametrize("side", ["last-of-first", "first-of-second"])
def test_tampering_exactly_at_the_split_point_is_reported_as_serially(
    database: Callable[[list[Row]], Repository], statement: str, side: str
) -> None:
    repo = database(chain_rows(200))
    (_, end), (begin, _) = chainwalk._bounds(1, 200, 2)
    at, other = (end, begin) if side == "last-of-first" else (begin, end)
    tamper_file(repo, *statement.format(id=at, other=other).split(";"))
    expected = serial(repo)
    assert not expected.intact
    assert chainwalk._split_walk(repo, [], (1, GENESIS_HASH), 2, 1) is None
    report, _ = chainwalk.walk_chain(repo, [], (1, GENESIS_HASH), workers=2, min_events=1)
    assert report == expected


def test_a_path_with_uri_characters_names_the_same_file(tmp_path: Path) -> None:
    """The workers open the file by a URI: a ``#`` (the rest would be a fragment), a ``?``
    or a ``%20`` (it would be decoded to a space) in a folder's name are escaped."""
    for name in ("a #b", "a?b=c", "a%20b"):
        path = tmp_path / name / "x.db"
        path.parent.mkdir()
        with sqlite3.connect(path) as conn:
            conn.execute(f"CREATE TABLE t AS SELECT '{name}' AS v")
        conn.close()
        uri = chainwalk._file_uri(path)
        assert uri is not None
        reader = sqlite3.connect(uri, uri=True)
        try:
            assert reader.execute("SELECT v FROM t").fetchall() == [(name,)]
        finally:
            reader.close()


def test_a_second_stretch_forged_whole_is_a_broken_link(
    database: Callable[[list[Row]], Repository],
) -> None:
    rows = chain_rows(200)
    (_, end), _ = chainwalk._bounds(1, 200, 2)
    forged = rows[:end] + chain_rows(200 - end, first=end + 1, prev="ef" * 32)
    repo = database(forged)
    report, _ = chainwalk.walk_chain(repo, [], (1, GENESIS_HASH), workers=2, min_events=1)
    assert [(a.seq, a.kind) for a in report.anomalies] == [(end + 1, "broken_link")]
    assert report == serial(repo)


def test_small_chains_and_one_core_walk_serially(
    database: Callable[[list[Row]], Repository],
    spawned: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = database(chain_rows(50))
    start = (1, GENESIS_HASH)
    assert chainwalk.walk_chain(repo, [], start, workers=2, min_events=51)[0] == serial(repo)
    monkeypatch.setattr(chainwalk, "usable_cores", lambda: 1)
    assert chainwalk.walk_chain(repo, [], start, min_events=1)[0] == serial(repo)
    assert chainwalk.walk_chain(repo, [], start, workers=1, min_events=1)[0] == serial(repo)
    assert spawned == []
    monkeypatch.setattr(chainwalk, "usable_cores", lambda: 2)
    chainwalk.walk_chain(repo, [], start, min_events=1)
    assert spawned == [1]


def test_a_worker_that_dies_leaves_the_serial_walk(
    database: Callable[[list[Row]], Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = database(chain_rows(100))
    monkeypatch.setattr(chainwalk, "WORKER", "fairlens_monitor.no_such_module")
    assert chainwalk._split_walk(repo, [], (1, GENESIS_HASH), 2, 1) is None
    report, _ = chainwalk.walk_chain(repo, [], (1, GENESIS_HASH), workers=2, min_events=1)
    assert report == serial(repo)
    assert report.intact


def test_a_worker_never_imports_from_the_current_folder(
    database: Callable[[list[Row]], Repository],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``verify`` run where a stray ``sqlite3.py`` lies: the workers are isolated from it."""
    repo = database(chain_rows(100))
    here = tmp_path / "here"
    here.mkdir()
    (here / "sqlite3.py").write_text("raise SystemExit(3)\n")
    (here / "pickle.py").write_text("raise SystemExit(3)\n")
    monkeypatch.chdir(here)
    assert chainwalk._split_walk(repo, [], (1, GENESIS_HASH), 2, 1) is not None


def test_no_interpreter_to_start_leaves_the_serial_walk(
    database: Callable[[list[Row]], Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = database(chain_rows(100))
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert chainwalk._split_walk(repo, [], (1, GENESIS_HASH), 2, 1) is None
    report, _ = chainwalk.walk_chain(repo, [], (1, GENESIS_HASH), workers=2, min_events=1)
    assert report == serial(repo)
    assert report.intact


def test_text_that_is_not_utf8_at_the_split_is_reported_as_serially(
    database: Callable[[list[Row]], Repository],
) -> None:
    repo = database(chain_rows(100))
    (_, end), _ = chainwalk._bounds(1, 100, 2)
    tamper_file(
        repo, f"UPDATE audit_events SET canonical = CAST(X'7B22FF' AS TEXT) WHERE id = {end}"
    )
    assert chainwalk._split_walk(repo, [], (1, GENESIS_HASH), 2, 1) is None
    try:
        expected: Any = serial(repo)
    except Exception as exc:  # the serial walk's own behaviour on undecodable text
        expected = type(exc)
    try:
        found: Any = chainwalk.walk_chain(repo, [], (1, GENESIS_HASH), workers=2, min_events=1)[0]
    except Exception as exc:
        found = type(exc)
    assert found == expected


def test_postgresql_walks_serially(pg_url: str, spawned: list[int]) -> None:
    engine = make_engine(pg_url)
    upgrade(engine, pg_url)
    rows = chain_rows(30)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO audit_events (seq, ts, event_type, actor, prev_hash, hash, canonical) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [r[:7] for r in rows],
        )
    repo = Repository(engine)
    try:
        report, _ = chainwalk.walk_chain(repo, [], (1, GENESIS_HASH), workers=2, min_events=1)
        assert report == serial(repo)
        assert report.intact
        assert report.count == 30
        assert spawned == []
    finally:
        engine.dispose()


# --- the whole command ----------------------------------------------------------------------


def test_verify_splits_a_long_chain_and_finds_tampering_at_the_split(
    write_config: Callable[..., Path],
    tmp_path: Path,
    spawned: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chainwalk, "usable_cores", lambda: 2)  # as on the 2-core machine
    config = write_config()
    db = tmp_path / "var" / "fairlens.db"
    db.parent.mkdir(parents=True)
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    upgrade(engine, url)
    engine.dispose()
    count = chainwalk.MIN_EVENTS
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO audit_events (seq, ts, event_type, actor, prev_hash, hash, canonical) "
            "VALUES (?,?,?,?,?,?,?)",
            [r[:7] for r in chain_rows(count)],
        )

    def verify() -> tuple[int, list[tuple[int, str]]]:
        result = CliRunner().invoke(cli, ["--config", str(config), "verify", "--json"])
        doc = json.loads(result.stdout)
        return result.exit_code, [(a["seq"], a["kind"]) for a in doc["anomalies"]]

    assert verify() == (0, [])
    assert spawned == [1]  # split in two
    (_, end), (begin, _) = chainwalk._bounds(1, count, 2)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        conn.execute(f"UPDATE audit_events SET prev_hash = '{'ab' * 32}' WHERE id = {begin}")
        conn.execute(f"UPDATE audit_events SET ts = 'x' WHERE id = {end}")
    assert verify() == (1, [(end, "modified"), (begin, "broken_link"), (begin, "modified")])
