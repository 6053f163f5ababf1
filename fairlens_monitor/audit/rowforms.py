"""Canonical row forms: the bytes a stored row's digest is taken over (pure).

simulate → measure → detect → alert → **log**. Every row an auditor or the page can read
(``runs``, ``readings``, ``group_results``, ``alerts``, ``source_files``,
``reading_rollups``) is bound to the audit chain: the event of the transaction that wrote or
changed it records ``SHA-256(b"fairlens-row-v<form>\\x00<table>\\x00" ‖ canonical text)``.
This module defines that text; ``rowcheck`` compares digests and ``store.rowstore`` reads
the rows.

The canonical text of form 1 is JSON of ``{column: value}`` for the form's columns, keys
sorted, no whitespace, non-ASCII written as itself (RFC 8785 except for numbers), with one
rule per value kind so it is byte-identical on SQLite and PostgreSQL and after ``db copy``:

- NULL is ``null``; a float NaN is ``null`` too (SQLite stores NaN as NULL).
- Integers are written exactly (``7``); a float column's value is a float even when the back
  end hands back an integer, written as Python's shortest round-trip ``repr`` (``1.0``,
  ``0.95``, ``1e-05``, ``Infinity``, ``-Infinity``) — so ``1`` and ``1.0`` never differ
  between back ends, and an integer is never confused with a float.
- Booleans are ``true``/``false`` (SQLite's 0/1 in a boolean column included).
- Times are RFC 3339 UTC strings with microseconds and ``Z``
  (``"2026-01-01T00:00:05.000000Z"``); a SQLite time text that is not in the form SQLAlchemy
  writes is kept as ``"raw:<text>"`` so it can never pass for a real time.
- JSON columns are the parsed JSON value, written by the same rules.
- Any other type a hand edit can leave (bytes, decimals) is written as a tagged string.

A migration that adds, drops or renames a column of these tables adds a new form here
and makes it ``CURRENT_FORM``; each digest records its form, so old rows are checked under
theirs. A renamed column is listed in :data:`RENAMED`, so a row stored under the new name is
still read under its old name by the forms that predate the rename.

Form 2 (revision 0012) is form 1 with the headline columns of ``readings`` under neutral
names (``unprivileged_group`` → ``group_label``, ``privileged_count`` →
``reference_applicants``, ...): a reading recorded under form 1 is still checked under form
1, with the same bytes as when it was written.

Form 3 (revision 0015) is form 2 with the ``monitor`` column on ``runs``, ``readings``,
``group_results``, ``alerts`` and ``source_files`` (``reading_rollups`` had it already), and
the new ``monitors`` table. A row recorded under an older form was written when the store held
one monitor, ``default``: :func:`in_form` reports such a row whose ``monitor`` cell says
anything else as unreadable under its form, so moving an old reading to another monitor is a
``row_modified`` like any other edit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

CURRENT_FORM = 3

# column name:kind — i integer, s text, f float, b boolean, t time, j JSON.
_FORM_1: dict[str, str] = {
    "runs": "id:i cycle_index:i actor:s scheduled_for:t started_at:t finished_at:t status:s "
    "error:s config_hash:s code_version:s",
    "readings": "id:i run_id:i scenario:s measured_at:t source:s drift_level:f n_samples:i "
    "seed:i protected_attribute:s unprivileged_group:s privileged_group:s "
    "unprivileged_count:i unprivileged_approved:i privileged_count:i "
    "privileged_approved:i unprivileged_rate:f privileged_rate:f dir:f "
    "dir_reason:s gap:f dir_threshold:f gap_threshold:f dir_alert:b gap_alert:b "
    "config_hash:s code_version:s verdict:s verdict_reason:s p_value:f "
    "p_adjusted:f test:s dir_ci_low:f dir_ci_high:f shortfall:f alpha:f "
    "confidence:f min_group_size:i min_group_share:f reference_mode:s "
    "groups_compared:i groups_excluded:i label_column:s dp_difference:f "
    "dp_ratio:f eop_difference:f eodds_difference:f eodds_ratio:f "
    "drift_statistic:f drift_alert:b risk_level:s window_start:t window_end:t "
    "lineage:j",
    "group_results": "id:i reading_id:i label:s role:s applicants:i approved:i rate:f "
    "share:f impact_ratio:f ci_low:f ci_high:f p_value:f p_adjusted:f "
    "test:s shortfall:f verdict:s",
    "alerts": "id:i run_id:i reading_id:i created_at:t kind:s dir:f token:s key_id:s "
    "state:s verdict:s last_reading_id:i clean_streak:i closed_at:t",
    "source_files": "id:i reading_id:i measured_at:t path:s sha256:s size_bytes:i "
    "mtime_ns:i rows:i decisions:i",
}

# Columns renamed since a form, per table: {form: {name in that form: name now}} (revision
# 0012 renamed the readings' two-group columns to the measurement vocabulary).
RENAMED: dict[int, dict[str, dict[str, str]]] = {
    1: {
        "readings": {
            "unprivileged_group": "group_label",
            "privileged_group": "reference_label",
            "unprivileged_count": "group_applicants",
            "unprivileged_approved": "group_approved",
            "privileged_count": "reference_applicants",
            "privileged_approved": "reference_approved",
            "unprivileged_rate": "group_rate",
            "privileged_rate": "reference_rate",
        }
    }
}


def _renamed(spec: str, names: Mapping[str, str]) -> str:
    """``spec`` with its columns renamed by ``names`` (kinds and order kept)."""
    words = [word.split(":") for word in spec.split()]
    return " ".join(f"{names.get(name, name)}:{kind}" for name, kind in words)


# Tables added after form 2 without changing any other table's columns: each joins the
# form current when it was added (its rows are never recorded under an older form), so the
# digests of every existing row stay as they were. ``reading_rollups``: revision 0014.
_ADDED_2: dict[str, str] = {
    "reading_rollups": "id:i monitor:s scenario:s bucket:i first_at:t last_at:t "
    "first_reading_id:i last_reading_id:i readings:i dir_n:i dir_sum:f dir_min:f dir_max:f "
    "gap_n:i gap_sum:f gap_min:f gap_max:f drift_max:f group_approved:i "
    "group_applicants:i reference_approved:i reference_applicants:i verdict_ok:i "
    "verdict_adverse:i verdict_inconclusive:i verdict_no_data:i alerts:i dir_alerts:i "
    "gap_alerts:i drift_alerts:i",
}

# Form 2 (revision 0012): form 1 with the renamed columns under their new names.
_FORM_2: dict[str, str] = {
    **{table: _renamed(spec, RENAMED[1].get(table, {})) for table, spec in _FORM_1.items()},
    **_ADDED_2,
}

# Form 3 (revision 0015): every per-monitor table names its monitor; the monitors table.
MONITOR_COLUMN = "monitor"
PER_MONITOR: tuple[str, ...] = ("runs", "readings", "group_results", "alerts", "source_files")
_FORM_3: dict[str, str] = {
    **{
        table: f"{spec} {MONITOR_COLUMN}:s" if table in PER_MONITOR else spec
        for table, spec in _FORM_2.items()
    },
    "monitors": "id:i name:s created_at:t retired_at:t paused:b paused_at:t paused_by:s "
    "schedule:s interval_seconds:f config_hash:s",
}
# the form since which rows carry their monitor; older rows all belong to this one
MONITOR_FORM = 3
DEFAULT_MONITOR = "default"

TABLES: tuple[str, ...] = (
    "runs",
    "readings",
    "group_results",
    "alerts",
    "source_files",
    "reading_rollups",
    "monitors",
)


class RowForm:
    """One table's columns under one form, with the indexes that need normalising."""

    __slots__ = (
        "bools",
        "canonical",
        "columns",
        "digest",
        "floats",
        "form",
        "jsons",
        "kinds",
        "order",
        "sorted_names",
        "table",
        "tag",
        "times",
    )

    def __init__(self, form: int, table: str, spec: str) -> None:
        """Parse ``spec`` (``name:kind`` words); raises ValueError on an unknown kind."""
        pairs = [word.split(":") for word in spec.split()]
        if any(kind not in "isfbtj" or len(kind) != 1 for _, kind in pairs):
            raise ValueError(f"bad row form spec for {table}")
        self.form, self.table = form, table
        self.columns: tuple[str, ...] = tuple(name for name, _ in pairs)
        self.floats = tuple(i for i, (_, k) in enumerate(pairs) if k == "f")
        self.bools = tuple(i for i, (_, k) in enumerate(pairs) if k == "b")
        self.times = tuple(i for i, (_, k) in enumerate(pairs) if k == "t")
        self.jsons = tuple(i for i, (_, k) in enumerate(pairs) if k == "j")
        self.tag = f"fairlens-row-v{form}\x00{table}\x00".encode()
        self.order = tuple(sorted(range(len(self.columns)), key=self.columns.__getitem__))
        self.sorted_names = tuple(self.columns[i] for i in self.order)
        self.kinds = "".join(kind for _, kind in pairs)
        self.canonical, self.digest = _compile(self)

    def reference(self, values: Sequence[Any]) -> str:
        """The canonical text of one row given its values in ``columns`` order, by the rules
        of the module docstring applied one by one: the definition. ``canonical`` (compiled
        per table by :func:`_compile`) returns the same text several times faster; the tests
        hold the two equal on every kind of value a back end or a hand edit can leave."""
        vals = list(values)
        for i in self.floats:
            v = vals[i]
            if type(v) is not float:
                if type(v) is int:
                    vals[i] = float(v)
            elif v != v:  # NaN: SQLite keeps it as NULL
                vals[i] = None
        for i in self.bools:
            v = vals[i]
            if type(v) is int and (v == 0 or v == 1):
                vals[i] = v == 1
        for i in self.times:
            vals[i] = _time(vals[i])
        for i in self.jsons:
            v = vals[i]
            if isinstance(v, str):
                try:
                    vals[i] = json.loads(v)
                except ValueError:
                    vals[i] = "raw:" + v
        row = dict(zip(self.sorted_names, map(vals.__getitem__, self.order), strict=True))
        return _ENCODE(row)  # keys sorted at every level


def form_of(form: int, table: str) -> RowForm:
    """Return the row form ``form`` of ``table``.

    Raises:
        KeyError: this version knows no such form or table.
    """
    return FORMS[form][table]


def in_form(form: int, table: str, values: Sequence[Any]) -> tuple[RowForm, list[Any]] | None:
    """A stored row (the current form's columns, in order) as form ``form`` sees it.

    Returns:
        That form and the row's values in its column order (columns taken by name; one
        the current form lacks is NULL), or None when this version knows no such form — or
        the row names a monitor other than ``default`` while ``form`` predates monitors
        (no digest under that form can match it).
    """
    old = FORMS.get(form, {}).get(table)
    if old is None:
        return None
    if len(values) != len(FORMS[CURRENT_FORM][table].columns):
        raise ValueError(f"a {table} row of {len(values)} values is not in the current form")
    at = _monitor_at(table)
    if form < MONITOR_FORM and at is not None and values[at] != DEFAULT_MONITOR:
        return None  # recorded when every row was the default monitor's: moved since
    return old, [None if i is None else values[i] for i in _picks(form, table)]


@functools.cache
def _monitor_at(table: str) -> int | None:
    """The index of ``monitor`` among the current form's columns of a per-monitor table."""
    if table not in PER_MONITOR:
        return None
    return FORMS[CURRENT_FORM][table].columns.index(MONITOR_COLUMN)


@functools.cache
def _picks(form: int, table: str) -> tuple[int | None, ...]:
    """For each column of form ``form``, its index in the current form (by name, renames
    followed), or None when the current form has no such column."""
    index = {name: i for i, name in enumerate(FORMS[CURRENT_FORM][table].columns)}
    now = current_names(form, table)
    return tuple(index.get(now.get(c, c)) for c in FORMS[form][table].columns)


def current_names(form: int, table: str) -> dict[str, str]:
    """The columns of ``table`` renamed since form ``form``: ``{name then: name now}``.

    Renames compose: a column renamed by two later revisions maps to its newest name.
    """
    out: dict[str, str] = {}
    for later in sorted(f for f in RENAMED if f >= form):
        for then, now in RENAMED[later].get(table, {}).items():
            first = next((k for k, v in out.items() if v == then), then)
            out[first] = now
    return out


def _other(v: Any) -> str:
    if isinstance(v, bytes | bytearray | memoryview):
        return "blob:" + bytes(v).hex()
    return f"{type(v).__name__}:{v}"


# One encoder for every row (json.dumps with options builds a new one per call); nested
# JSON values (the lineage column) have their keys sorted too.
_ENCODE = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_other
).encode
_ESCAPE = json.encoder.encode_basestring  # what the encoder itself writes strings with


# What the compiled builders call for each value: a fast path for the type the back ends
# hand back, else the value normalised as ``RowForm.reference`` does and encoded alone
# (encoding a JSON object is encoding its values one by one between its keys).
def _slow_f(v: Any) -> str:
    if type(v) is not float:
        if type(v) is int:
            v = float(v)
    elif v != v:
        v = None
    return _ENCODE(v)


def _slow_b(v: Any) -> str:
    if type(v) is int and (v == 0 or v == 1):
        v = v == 1
    return _ENCODE(v)


def _fast_t(v: Any) -> str:
    if v.__class__ is str and _SQLITE_TIME(v):
        return f'"{v[:10]}T{v[11:]}Z"'
    return _ENCODE(_time(v))


def _fast_j(v: Any) -> str:
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            v = "raw:" + v
    return _ENCODE(v)


_SQLITE_TIME = re.compile(
    "[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"\.[0-9]{6}"
).fullmatch
# Per kind, the expression that encodes one value ``{v}`` (an int is never a bool here:
# ``__class__ is int``; a float is finite when ``v - v == 0.0``).
_EXPRESSIONS = {
    "i": "(_int({v}) if {v}.__class__ is int else _null if {v} is None else _encode({v}))",
    "s": "(_str({v}) if {v}.__class__ is str else _null if {v} is None else _encode({v}))",
    "f": "(_float({v}) if {v}.__class__ is float and {v} - {v} == 0.0 else _null if {v} is None "
    "else _slow_f({v}))",
    "b": "(_bools[{v}] if {v}.__class__ is bool or ({v}.__class__ is int and ({v} == 0 or "
    "{v} == 1)) else _null if {v} is None else _slow_b({v}))",
    "t": "(_null if {v} is None else _fast_t({v}))",
    "j": "(_null if {v} is None else _fast_j({v}))",
}


def _compile(rf: RowForm) -> tuple[Callable[[Sequence[Any]], str], Callable[[Sequence[Any]], str]]:
    """Build ``rf``'s canonical-text and digest functions: one f-string over the unpacked
    row, keys written in sorted order as constants, one inline expression per value."""
    names = [f"v{i}" for i in range(len(rf.columns))]
    body = "".join(
        ("{{" if n == 0 else ",")
        + json.dumps(rf.columns[i])
        + ":{"
        + _EXPRESSIONS[rf.kinds[i]].format(v=names[i])
        + "}"
        for n, i in enumerate(rf.order)
    )
    source = (
        f"def canonical(values):\n    {', '.join(names)}, = values\n"
        f"    return f'{body}}}}}'\n"
        "def digest(values):\n"
        "    return _sha256(_tag + canonical(values).encode('utf-8', 'surrogatepass'))"
        ".hexdigest()\n"
    )
    scope: dict[str, Any] = {
        "_int": int.__repr__,
        "_str": _ESCAPE,
        "_float": float.__repr__,
        "_encode": _ENCODE,
        "_bools": {True: "true", False: "false"},
        "_null": "null",
        "_slow_f": _slow_f,
        "_slow_b": _slow_b,
        "_fast_t": _fast_t,
        "_fast_j": _fast_j,
        "_sha256": hashlib.sha256,
        "_tag": rf.tag,
    }
    exec(compile(source, f"<row form {rf.form} {rf.table}>", "exec"), scope)  # noqa: S102
    return scope["canonical"], scope["digest"]


def _time(v: Any) -> Any:
    if isinstance(v, datetime):
        if v.tzinfo is None:
            return "raw:" + v.isoformat()
        return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(v, str):
        # SQLAlchemy's SQLite form: 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC, as models.UTCDateTime)
        if (
            len(v) == 26
            and v[4] == "-"
            and v[7] == "-"
            and v[10] == " "
            and v[13] == ":"
            and v[16] == ":"
            and v[19] == "."
            and (v[:4] + v[5:7] + v[8:10] + v[11:13] + v[14:16] + v[17:19] + v[20:]).isdigit()
            and v.isascii()
        ):
            return f"{v[:10]}T{v[11:]}Z"
        return "raw:" + v
    return v


FORMS: dict[int, dict[str, RowForm]] = {
    1: {table: RowForm(1, table, spec) for table, spec in _FORM_1.items()},
    2: {table: RowForm(2, table, spec) for table, spec in _FORM_2.items()},
    3: {table: RowForm(3, table, spec) for table, spec in _FORM_3.items()},
}
