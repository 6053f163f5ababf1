"""Rows that fail their digest check are marked where the page shows them (issue 19, item 4).

A real database written by real cycles; one reading's column is edited behind the chain's
back (as an attacker with write access would). The page must mark that reading on the charts
(a black cross at the value as stored, with a legend entry), list it with that value, and
flag the drill-down period that pools it — on the very next render, before the background
``verify`` runs again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from fairlens_monitor.viewer.charts import CROSS, FLAG
from fairlens_monitor.viewer.flags import failed_ids
from fairlens_monitor.viewer.watch import failed_rows
from tests.test_viewer import page, seeded, text_of

Chart = tuple[dict[str, Any], list[pd.DataFrame]]


def charts(at: AppTest) -> list[Chart]:
    """The Vega-Lite charts the page drew: each spec with its datasets (Streamlit moves
    them out of the spec into Arrow IPC bytes on the element)."""
    out = []
    stack: list[Any] = [at._tree]
    while stack:
        node = stack.pop()
        proto = getattr(node, "proto", None)
        if proto is not None and "VegaLite" in type(proto).__name__:
            frames = [pa.ipc.open_stream(d.data.data).read_pandas() for d in proto.datasets]
            out.append((json.loads(proto.spec), frames))
        stack.extend(getattr(node, "children", {}).values())
    return out


def crosses(chart: Chart) -> list[dict[str, Any]]:
    """The data points of a chart's digest-check layer (its dataset with a ``flag``)."""
    return [
        row for frame in chart[1] if "flag" in frame.columns for row in frame.to_dict("records")
    ]


def layers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every leaf layer of a (nested) layered spec."""
    inner = spec.get("layer")
    if not inner:
        return [spec]
    return [leaf for child in inner for leaf in layers(child)]


def test_an_edited_reading_is_marked_on_the_charts_and_in_the_tables(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = seeded(write_config, drift=1.0, cycles=4)
    at = page(config, monkeypatch)
    assert "✓ The newest" in text_of(at)  # every reading in range matches its digest
    assert not [m for m in at.markdown if "as stored —" in str(m.value)]
    assert charts(at)
    assert all(not crosses(chart) for chart in charts(at))

    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        ids = [
            i
            for (i,) in conn.execute(
                "SELECT id FROM readings WHERE scenario = 'monitored' ORDER BY id"
            )
        ]
        edited = ids[1]  # not the headline: an older reading, as a quiet edit would be
        conn.execute("UPDATE readings SET dir = 0.987, gap = 0.0123 WHERE id = ?", (edited,))
    at = page(config, monkeypatch)
    assert not at.exception
    shown = text_of(at)
    banners = [str(e.value) for e in at.error]
    assert any("**✗ In this range, 1 reading fails its digest check**" in b for b in banners)
    listed = [str(m.value) for m in at.markdown if f"**#{edited}**" in str(m.value)]
    assert len(listed) == 1
    assert "(monitored, " in listed[0]
    assert "DIR 0.987, gap 0.012 as stored — differs from the digest recorded at seq" in listed[0]
    # the charts: a cross at the edited reading's stored value, with its legend entry
    drawn = [(chart[0], crosses(chart)) for chart in charts(at)]
    marked = [points for _, points in drawn if points]
    assert len(marked) >= 2  # DIR and gap (and drift, when drawn)
    values = {(key, p[key]) for pts in marked for p in pts for key in ("dir", "gap") if key in p}
    assert values == {("dir", 0.987), ("gap", 0.0123)}
    assert all(p["reading_id"] == edited and p["flag"] == FLAG for pts in marked for p in pts)
    for spec, points in drawn:  # a legend entry ("row check") for the crosses, in black
        if points:
            [layer] = [x for x in layers(spec) if x.get("encoding", {}).get("shape")]
            shape = layer["encoding"]["shape"]
            assert (shape["field"], shape["title"], shape["scale"]["range"]) == (
                "flag",
                "row check",
                [CROSS],
            )
            assert "legend" not in shape or shape["legend"] is not None
            assert layer["mark"]["color"] == "black"
    # the drill-down period that pools it says so
    assert any(f"Pooled here: 1 reading fails its digest check (#{edited})" in b for b in banners)
    # the headline reading is untouched and still verified
    assert ":green[✓ reading" in shown


def test_the_background_verify_marks_rows_the_page_did_not_check() -> None:
    report = {
        "anomalies": [
            {"seq": 9, "kind": "row_modified", "detail": "differs", "table": "readings", "id": 4},
            {
                "seq": None,
                "kind": "row_unrecorded",
                "detail": "x",
                "table": "group_results",
                "id": 7,
            },
            {"seq": 3, "kind": "modified", "detail": "record", "table": None, "id": None},
            "not a dict",
        ]
    }
    known = failed_rows(report)
    assert known == {
        "readings": {4: "row_modified: differs"},
        "group_results": {7: "row_unrecorded: x"},
    }
    checked = {
        4: (True, "matches"),
        5: (False, "differs from the digest recorded at seq 2"),
        6: (False, "cannot check: StoreError"),
    }
    # the page's own check wins for the ids it checked; an unreadable moment is no failure
    assert failed_ids(checked, {4: "row_modified: old", 8: "row_missing: gone"}) == {
        5: "differs from the digest recorded at seq 2",
        8: "row_missing: gone",
    }


def test_an_edited_headline_is_marked_before_its_numbers_and_in_the_inventory(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Seen in Chromium (1280x800): the edited DIR showed big, with a green delta, and its
    NOT-verified line sat below the fold; the inventory showed the edited DIR unmarked."""
    config = seeded(write_config, drift=1.0, cycles=3)
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        [(newest,)] = conn.execute(
            "SELECT max(id) FROM readings WHERE scenario = 'monitored'"
        ).fetchall()
        conn.execute("UPDATE readings SET dir = 0.95 WHERE id = ?", (newest,))
    at = page(config, monkeypatch)
    assert at.metric[0].label == "Monitored DIR (✗ NOT verified)"
    assert at.metric[0].value == "0.950"
    assert not at.metric[0].delta  # no change computed from an edited value
    assert at.metric[1].label == "Approval gap (✗ NOT verified)"
    order = [str(m.value) for m in at.main.markdown]
    mark = next(i for i, m in enumerate(order) if f"✗ reading {newest} NOT verified" in m)
    verdict = next(i for i, m in enumerate(order) if "ADVERSE" in m)
    assert mark < verdict  # the mark comes before the numbers and the verdict it concerns

    at = page(config, monkeypatch, monitor=None)  # the inventory
    [table] = [d.value for d in at.dataframe if "Monitor" in d.value.columns]
    assert list(table["DIR"]) == ["✗ 0.950"]
    banner = " ".join(str(e.value) for e in at.error)
    assert (
        f"**✗ DIR NOT verified** (marked ✗ below): the newest reading of default (#{newest})"
        in (banner)
    )


def test_a_deleted_reading_is_listed_as_missing(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Listed while the page's cached ids of the range still name it: under 'all' (no
    moving start) until the next cycle; after that, the background verify's banner names
    it (row_missing), but no longer this list (see docs/ARCHITECTURE.md)."""
    config = seeded(write_config, drift=0.0, cycles=3)
    at = page(config, monkeypatch)
    at.radio(key="range").set_value("all").run()  # the range's reading ids, read and cached
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        [(gone,)] = conn.execute(
            "SELECT min(id) FROM readings WHERE scenario = 'monitored'"
        ).fetchall()
        conn.execute("DELETE FROM group_results WHERE reading_id = ?", (gone,))
        conn.execute("DELETE FROM readings WHERE id = ?", (gone,))
    at.run()  # the next refresh: the same database state by seq and newest id
    banners = [str(e.value) for e in at.error]
    assert any("**✗ In this range, 1 reading fails its digest check**" in b for b in banners)
    listed = [str(m.value) for m in at.markdown if f"**#{gone}**" in str(m.value)]
    assert listed == [
        f"- **#{gone}**: recorded at seq {listed[0].split('seq ')[1].split(',')[0]}"
        ", now missing (deleted: nothing left to draw)"
    ]


def test_an_edited_group_row_is_marked_from_the_background_verify(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The page checks readings itself; a per-group row (behind the drill-down and the rate
    chart) is marked once the background verify names it: its reading is listed and the
    drill-down period that pools it says so."""
    import streamlit as st

    from tests.test_viewer import chain_verdict

    config = seeded(write_config, drift=0.0, cycles=3)
    with sqlite3.connect(tmp_path / "var" / "fairlens.db") as conn:
        [(row_id, reading_id)] = conn.execute(
            "SELECT x.id, x.reading_id FROM group_results x JOIN readings g "
            "ON g.id = x.reading_id WHERE g.scenario = 'monitored' ORDER BY x.id LIMIT 1"
        ).fetchall()
        conn.execute("UPDATE group_results SET approved = approved + 7 WHERE id = ?", (row_id,))
    st.cache_resource.clear()  # a new watcher: its first walk is a full one, at once
    at = page(config, monkeypatch)
    assert "TAMPERED at group_results row" in chain_verdict(at, timeout=60)
    at.run()
    listed = [str(m.value) for m in at.markdown if f"**#{reading_id}**" in str(m.value)]
    assert len(listed) == 1
    assert f"group row {row_id}: row_modified: " in listed[0]
    banners = " ".join(str(e.value) for e in at.error)
    assert f"Pooled here: 1 reading fails its digest check (#{reading_id})" in banners
