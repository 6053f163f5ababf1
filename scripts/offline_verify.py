"""Check an `audit export` with the Python standard library alone (no FairLens code).

    python3 offline_verify.py audit.jsonl [anchor.jsonl]

1. The chain: every event's hash is SHA-256(tag, previous hash, its canonical text), and that
   text is byte for byte the RFC 8785 form of the fields the line shows.
2. The checkpoints in the anchor file name hashes the chain has.
3. The rows: each exported row's digest is the one the latest event naming it recorded.
Exit 0 intact; 1 tampered, with one line per finding on stderr; 2 a file cannot be read.
"""

from __future__ import annotations  # annotations stay unevaluated: older Pythons run it too

import hashlib
import json
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

TAG = b"fairlens-audit-v1\x00"
# Only these events may record a new digest for a row already recorded (as `verify`).
MUTABLE = {
    "alerts": {
        "cycle_completed",
        "alert_raised",
        "alert_acknowledged",
        "alert_resolved",
        "keys_rotated",
    },
    "source_files": {"retention_applied"},
    "reading_rollups": {"cycle_completed"},
    "monitors": {
        "monitor_added",
        "monitor_changed",
        "monitor_paused",
        "monitor_resumed",
        "monitor_retired",
    },
}


def jcs(v: Any) -> str:
    """RFC 8785 text of a parsed JSON value (numbers as ECMAScript writes them)."""
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(jcs(k) + ":" + jcs(v[k]) for k in keys) + "}"
    if isinstance(v, list):
        return "[" + ",".join(map(jcs, v)) + "]"
    if type(v) is not float:
        return json.dumps(v, ensure_ascii=False)
    if v == 0:
        return "0"
    digits, _, exp = repr(v).partition("e")
    if -7 < int(exp or 0) < 21:
        text = format(Decimal(repr(v)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{digits}e{int(exp):+d}"


def main(export: str, anchor: str | None = None) -> None:
    found: list[str] = []
    hashes: dict[int, str] = {}  # seq -> hash
    events: list[tuple[int, str, Any]] = []  # (seq, event_type, payload)
    rows: list[Any] = []
    prev: Any = None
    first: Any = None
    for line in lines(export):
        e = json.loads(line)
        if "table" in e:
            rows.append(e)
            continue
        if first is None:  # seq 1 follows genesis; a pruned export starts after its cut
            first, prev = e["seq"], "00" * 32 if e["seq"] == 1 else e["prev_hash"]
            origin = prev
        at = first + len(hashes)
        shown = {
            "seq": e["seq"],
            "ts": e["timestamp"],
            "event_type": e["event_type"],
            "actor": e["actor"],
            "payload": e["details"],
        }
        digest = hashlib.sha256(TAG + bytes.fromhex(prev) + e["canonical"].encode()).hexdigest()
        if (
            e["seq"] != at
            or e["prev_hash"] != prev
            or digest != e["hash"]
            or jcs(shown) != e["canonical"]
        ):  # compare bytes, not values (0 == False)
            sys.exit(f"TAMPERED at seq {at}")
        prev = hashes[at] = e["hash"]
        events.append((at, e["event_type"], json.loads(e["canonical"])["payload"]))
    book: dict[str, dict[int, tuple[str, int, int]]] = {}  # table -> id -> (digest, form, seq)
    if first not in (None, 1):  # retention pruned the head: a later event names the cut
        cut = [p for _, t, p in events if t == "chain_pruned" and p["pruned_to"] == first - 1]
        if not cut or cut[-1]["head_hash"] != origin:
            sys.exit(f"TAMPERED: the export starts at seq {first}; no event names that cut")
        for table, entries in cut[-1]["rows_carried"].items():  # what pruned events recorded
            book[table] = {i: (d, form, seq) for i, d, form, seq in entries}
    for seq, event_type, payload in events:
        book_event(book, found, seq, event_type, payload)
    anchored = [json.loads(line) for line in lines(anchor)] if anchor else []
    for cp in anchored:
        if cp["seq"] >= (first or 1) and hashes.get(cp["seq"]) != cp["head_hash"]:
            found.append(
                f"seq {cp['seq']}: bad_checkpoint: the anchored head hash is not the export's"
            )
    for r in rows:
        expected = book.get(r["table"], {}).pop(r["id"], None)
        if expected is None:
            found.append(
                f"row {r['table']} id {r['id']}: row_unrecorded: no audit event records this row"
            )
            continue
        tag = f"fairlens-row-v{expected[1]}\0{r['table']}\0".encode()
        if (
            hashlib.sha256(tag + r["row"].encode("utf-8", "surrogatepass")).hexdigest()
            != expected[0]
        ):
            found.append(
                f"row {r['table']} id {r['id']} (seq {expected[2]}): row_modified: "
                f"the exported row differs from the digest recorded at seq {expected[2]}"
            )
    found += [
        f"row {t} id {i} (seq {x[2]}): row_missing: a row recorded at seq {x[2]} is "
        "not in the export"
        for t in sorted(book)
        for i, x in sorted(book[t].items())
    ]
    if found:
        sys.exit("\n".join(["TAMPERED:", *found]))
    print(
        f"intact: {len(hashes)} events, head {prev}, {len(rows)} rows match their digests; "
        + (
            f"{len(anchored)} anchored checkpoints match"
            if anchor
            else "no anchor file given: a lost or rebuilt tail cannot be seen"
        )
    )


def book_event(
    book: dict[str, dict[int, tuple[str, int, int]]],
    found: list[str],
    seq: int,
    event_type: str,
    payload: Any,
) -> None:
    """Replay one event's row entries: the latest digest for a row wins, except that a
    baseline never overrides and only MUTABLE events may change a recorded row."""
    entries = payload.get("row_digests") or {}
    for table, pairs in entries.items():
        if table == "form":
            continue
        known = book.setdefault(table, {})
        for row_id, digest in pairs:
            earlier = known.get(row_id)
            if earlier is None:
                known[row_id] = (digest, entries["form"], seq)
            elif earlier[0] != digest and (
                event_type == "rows_baseline" or event_type not in MUTABLE.get(table, ())
            ):
                found.append(
                    f"row {table} id {row_id} (seq {seq}): row_modified: {event_type} "
                    f"records another digest than the one recorded at seq {earlier[2]}"
                )
            elif event_type != "rows_baseline" and event_type in MUTABLE.get(table, ()):
                known[row_id] = (digest, entries["form"], seq)
    for table, ids in (payload.get("rows_deleted") or {}).items():
        for row_id in ids:
            book.get(table, {}).pop(row_id, None)


def lines(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as handle:
        yield from handle


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print("usage: python3 offline_verify.py EXPORT.jsonl [ANCHOR.jsonl]", file=sys.stderr)
        sys.exit(2)
    try:
        main(*sys.argv[1:])
    except OSError as exc:
        print(f"cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        sys.exit(2)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        sys.exit(f"TAMPERED: the export is malformed ({type(exc).__name__})")
