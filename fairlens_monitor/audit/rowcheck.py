"""The row ledger: which digest each stored row must have, by the audit chain (pure).

simulate → measure → detect → alert → **log** → verify. Events record row digests
(``rowforms``) in their payload:

- ``row_digests``: ``{"form": F, "<table>": [[id, digest], ...], ...}`` — the rows the
  event's transaction wrote or changed, as they were at commit. The latest event naming a
  row decides its expected digest, so an alert's state, ``clean_streak``,
  ``last_reading_id`` and ``closed_at`` must match the event that last changed them.
- ``rows_deleted``: ``{"<table>": [id, ...]}`` — rows retention deleted.
- ``rows_baseline`` events record rows written before row digests existed; a baseline never
  overrides a digest an earlier event recorded (a disagreement is ``row_modified``), so a
  second baseline cannot launder an edit. Likewise only the events in :data:`MUTABLE_BY`
  may record a new digest for a row already recorded (alerts, detached file records); a
  forged event appended later cannot re-record a run, reading or group result.
- ``chain_pruned`` events carry ``rows_carried`` (``{"<table>": [[id, digest, form, seq],
  ...]}``): what the pruned events had recorded, so pruning never orphans a row.

:class:`RowLedger` replays those in seq order; :meth:`RowLedger.check` then compares the
stored rows of one table with it and returns ``row_modified``, ``row_missing`` (a recorded
row is gone) and ``row_unrecorded`` (a row no event accounts for) anomalies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fairlens_monitor.audit.events import (
    ALERT_ACKNOWLEDGED,
    ALERT_RAISED,
    ALERT_RESOLVED,
    CHAIN_PRUNED,
    CYCLE_COMPLETED,
    CYCLE_FAILED,
    KEYS_ROTATED,
    MONITOR_EVENTS,
    RETENTION_APPLIED,
    ROWS_BASELINE,
)
from fairlens_monitor.audit.rowforms import CURRENT_FORM, FORMS, TABLES, in_form
from fairlens_monitor.audit.verify import Anomaly

# Events that may carry row digests, deletions or a carried ledger.
ROW_EVENTS: tuple[str, ...] = (
    CYCLE_COMPLETED,
    CYCLE_FAILED,
    ALERT_RAISED,
    ALERT_ACKNOWLEDGED,
    ALERT_RESOLVED,
    KEYS_ROTATED,
    RETENTION_APPLIED,
    CHAIN_PRUNED,
    ROWS_BASELINE,
    *MONITOR_EVENTS,
)

# Which events may record a new digest for a row already recorded: alerts change state
# (episodes, people, key rotation), a file record is detached by retention, a rollup row
# takes in each new reading of its hour. Runs, readings and group results never change, so
# an event appended later cannot re-record them.
MUTABLE_BY: dict[str, frozenset[str]] = {
    "alerts": frozenset(
        {CYCLE_COMPLETED, ALERT_RAISED, ALERT_ACKNOWLEDGED, ALERT_RESOLVED, KEYS_ROTATED}
    ),
    "source_files": frozenset({RETENTION_APPLIED}),
    # a rollup row is updated by every cycle of its hour (``store.rollup``)
    "reading_rollups": frozenset({CYCLE_COMPLETED}),
    # a monitor is paused, resumed, changed or retired in place (``store.monitors``)
    "monitors": frozenset(MONITOR_EVENTS),
}

# What the chain says one row must be: (digest, form, seq of the event that recorded it). A
# plain tuple: a ledger holds one per stored row, and building a NamedTuple costs twice as much.
Expected = tuple[str, int, int]


class CheckedEntries(list[tuple[int, str]]):
    """Row entries read by a strict grammar (ids are ints, digests lower-case hex text): the
    replay skips the per-entry type checks a JSON-decoded list needs."""


class RowLedger:
    """The expected digest of every row, built from the chain's events in seq order."""

    def __init__(self) -> None:
        """Start empty (a chain with no row events expects no rows)."""
        self.rows: dict[str, dict[int, Expected]] = {t: {} for t in TABLES}
        self.anomalies: list[Anomaly] = []
        self.last_seq = 0  # the newest event replayed

    def carry(self, payload: Mapping[str, Any]) -> None:
        """Start from the ledger a ``chain_pruned`` event carried (before replaying events).

        Args:
            payload: the event's payload (its ``rows_carried`` entry is read).
        """
        carried = payload.get("rows_carried")
        if not isinstance(carried, Mapping):
            return
        for table in TABLES:
            for entry in carried.get(table, ()):
                row_id, digest, form, seq = entry
                self.rows[table][int(row_id)] = (str(digest), int(form), int(seq))

    def apply(self, seq: int, event_type: str, payload: Mapping[str, Any]) -> None:
        """Replay one event's row entries; a malformed entry is a ``row_modified`` anomaly.

        Args:
            seq: the event's seq (events must come in ascending seq).
            event_type: its type (``rows_baseline`` never overrides earlier digests).
            payload: its payload as hashed.
        """
        self.last_seq = max(self.last_seq, seq)
        try:
            self._apply(seq, event_type, payload)
        except (TypeError, ValueError, KeyError):
            self.anomalies.append(
                Anomaly(seq, "row_modified", "the event's row digests are malformed")
            )

    def _apply(self, seq: int, event_type: str, payload: Mapping[str, Any]) -> None:
        digests = payload.get("row_digests")
        baseline = event_type == ROWS_BASELINE
        if isinstance(digests, Mapping):
            form = int(digests["form"])
            for table in TABLES:
                entries = digests.get(table)
                if not entries:
                    continue
                known = self.rows[table]
                if not baseline and (
                    type(entries) is CheckedEntries
                    or all(type(i) is int and type(d) is str for i, d in entries)
                ):
                    new = {i: (d, form, seq) for i, d in entries}
                    if known.keys().isdisjoint(new):  # new rows: the common case
                        known.update(new)
                        continue
                may_change = not baseline and event_type in MUTABLE_BY.get(table, ())
                for row_id, digest in entries:
                    row_id, digest = int(row_id), str(digest)
                    earlier = known.get(row_id)
                    if earlier is not None and earlier[0] != digest and not may_change:
                        self.anomalies.append(
                            Anomaly(
                                seq,
                                "row_modified",
                                f"{event_type} records another digest than "
                                f"the one recorded at seq {earlier[2]}",
                                table,
                                row_id,
                            )
                        )
                        continue
                    if earlier is None or may_change:
                        known[row_id] = (digest, form, seq)
        deleted = payload.get("rows_deleted")
        if isinstance(deleted, Mapping):
            for table in TABLES:
                for row_id in deleted.get(table, ()):
                    self.rows[table].pop(int(row_id), None)

    def check(self, table: str, stored: Iterable[Sequence[Any]]) -> list[Anomaly]:
        """Compare the stored rows of ``table`` (current form's columns, id first) with the
        ledger; consumes the table's expectations.

        Returns:
            ``row_modified``, ``row_unrecorded`` and ``row_missing`` anomalies, by id.
        """
        expected, out = self.rows[table], []
        current = FORMS[CURRENT_FORM][table]
        pop, digest = expected.pop, current.digest
        for values in stored:
            row_id = values[0]
            exp = pop(row_id, None) if type(row_id) is int else None
            if exp is None:
                out.append(
                    Anomaly(
                        None,
                        "row_unrecorded",
                        "no audit event records this row",
                        table,
                        row_id if type(row_id) is int else None,
                    )
                )
                continue
            recorded, form, seq = exp
            actual = digest(values) if form == CURRENT_FORM else _older(form, table, values)
            if actual != recorded:
                out.append(
                    Anomaly(
                        seq,
                        "row_modified",
                        f"the stored row differs from the digest recorded at seq {seq}",
                        table,
                        row_id,
                    )
                )
        out += [
            Anomaly(exp[2], "row_missing", f"a row recorded at seq {exp[2]} is gone", table, row_id)
            for row_id, exp in sorted(expected.items())
        ]
        expected.clear()
        return out


def mark(expected: Expected | None, table: str, values: Sequence[Any] | None) -> tuple[bool, str]:
    """Whether one stored row (current form's columns, or None if gone) is what the chain
    recorded; with a short reason for the page.

    Returns:
        ``(verified, reason)``.
    """
    if expected is None:
        return False, "no audit event records this row"
    recorded, form, seq = expected
    if values is None:
        return False, f"recorded at seq {seq}, now missing"
    current = FORMS[CURRENT_FORM][table]
    actual = current.digest(values) if form == CURRENT_FORM else _older(form, table, values)
    if actual != recorded:
        return False, f"differs from the digest recorded at seq {seq}"
    return True, f"matches the digest recorded at seq {seq}"


def _older(form: int, table: str, values: Sequence[Any]) -> str:
    """Digest of a row under an older form (columns taken by name); '' if unknown."""
    found = in_form(form, table, values)
    return "" if found is None else found[0].digest(found[1])
