"""The fast canonical JSON writes exactly the bytes ``rfc8785`` writes (issue 17).

``audit.canonical.jcs_bytes`` hands values to the standard library's C encoder only where it is
known to agree with RFC 8785, and everything else to ``rfc8785``: generated values of every
kind (floats across the whole range, big integers, control characters, non-ASCII and
astral-plane keys, lone surrogates, NaN) must give the same bytes, or the same error.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from fairlens_monitor.audit import canonical
from fairlens_monitor.audit.chain import build_record

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-1e-3, max_value=1e-3)
    | st.floats(min_value=1e15, max_value=1e22)
    | st.sampled_from([0.0, -0.0, 1.0, 1e16, 1e-4, 9.999e-5, 0.1, 1e21, 2.0**53, 1e-7])
    | st.text()
    | st.text(alphabet=st.characters(codec="utf-8", max_codepoint=0x1F))
    | st.text(alphabet=st.characters(min_codepoint=0xD000, max_codepoint=0x1F600))
)
KEYS = st.text(max_size=5) | st.sampled_from(["a", "é", "\ue000", "\U0001f600", "b"])
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(KEYS, inner, max_size=5)
    ),
    max_leaves=20,
)


def both(value: Any) -> tuple[Any, Any]:
    """(fast, reference): the bytes, or the error's type."""
    out: list[Any] = []
    for dumps in (canonical.jcs_bytes, rfc8785.dumps):
        try:
            out.append(dumps(value))
        except rfc8785.CanonicalizationError as exc:
            out.append(type(exc))
    return out[0], out[1]


@settings(max_examples=1000, deadline=None)
@given(VALUES)
def test_any_value_gives_the_bytes_rfc8785_gives(value: Any) -> None:
    fast, reference = both(value)
    assert fast == reference


@pytest.mark.parametrize(
    "value",
    [
        {"dir": 0.75, "n": 3, "ok": True, "none": None, "list": [1.0, 2.5, -0.0]},
        {"tiny": 1e-5, "huge": 1e17, "big": 2**53, "bigger": 2**53 + 1},
        {"nan": math.nan},
        {"inf": [math.inf]},
        {"\ue000": 1, "\U0001f600": 2},
        {"s": "\ud800"},
        {1: "int key"},
        {"set": {1, 2}},
        'tab\tquote"backslash\\nul\x00 é 😀',
    ],
)
def test_edge_values_agree(value: Any) -> None:
    fast, reference = both(value)
    assert fast == reference


def test_a_cycle_events_canonical_bytes_are_unchanged() -> None:
    """A cycle_completed payload of the real shape hashes as it did with rfc8785 alone."""
    payload: dict[str, Any] = {
        "run_id": 7,
        "cycle_index": 6,
        "drift_level": 0.3333333333333333,
        "config_hash": "ab" * 32,
        "readings": [
            {"scenario": "monitored", "dir": 0.7123, "p_value": 3.1e-9, "groups": [[1, "F", 0.5]]}
        ],
        "row_digests": {"form": 2, "runs": [[7, "cd" * 32]]},
    }
    rec = build_record(
        seq=3,
        ts="2026-01-01T00:00:00.000000Z",
        event_type="x",
        actor="daemon",
        payload=payload,
        prev_hash="00" * 32,
    )
    fields: Any = {"seq": 3, "ts": rec.ts, "event_type": "x", "actor": "daemon", "payload": payload}
    assert rec.canonical.encode() == rfc8785.dumps(fields)
