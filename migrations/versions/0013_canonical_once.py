"""The audit chain stores each event's hashed text once: ``payload`` is derived from ``canonical``.

Until now ``audit_events`` held the payload twice — as the JSON column ``payload`` and inside
``canonical``, the exact bytes the chain hashes — so a 1.26 KB event took a whole 4 KB page
and ``verify`` had to prove that the two copies agree. Now ``canonical`` is the only stored
copy; the payload an auditor reads is cut out of it:

- **SQLite:** ``payload`` becomes a ``VIRTUAL`` generated column,
  ``json_extract(canonical, '$.payload')`` (NULL when ``canonical`` is not JSON): computed
  when read, no bytes on disk, and it cannot be updated, so it can never disagree with the
  hashed bytes. ``SELECT payload FROM audit_events`` and ``json_extract(payload, ...)`` keep
  working.
- **PostgreSQL:** the column is dropped (PostgreSQL 15 has only ``STORED`` generated
  columns, which would store the payload twice again). ``v_audit_trail`` — the auditors'
  view, the only audit table their role may read — derives ``payload`` (``json``) from
  ``canonical`` with ``fairlens_event_payload(text)`` (NULL when it is not JSON) and is
  replaced in place, so its grants stay.

Rows written before 0.3 stored a non-canonical ``payload`` (``json.dumps``): nothing of them
is lost, ``canonical`` always held the hashed form. A row whose ``payload`` differed from its
hashed payload *by value* had been edited; dropping the column would erase that evidence,
so its ``seq`` and the edited text are kept in ``audit_payload_edits`` (append-only like the
chain) and ``verify`` reports each such seq as ``modified``.

The append-only triggers stay (SQLite's ``DROP COLUMN`` rewrites rows without firing them);
``db copy`` (which also copies ``audit_payload_edits``), backup/restore, export and
``verify-entry`` read ``canonical`` as before. SQLite's ``DROP COLUMN`` leaves every row
alone in the page it had (one 1.26 KB event per 4 KB page), so ``store.schema.upgrade`` runs
``VACUUM`` after an upgrade across this revision (it cannot run inside the migration's
transaction); a database held open elsewhere is left unpacked, correct but larger.

Downgrade: ``payload`` comes back as a stored column filled with each row's payload cut out
of ``canonical`` (byte for byte the RFC 8785 text the 0012 code wrote), the edited texts are
put back, and ``audit_payload_edits`` is dropped. On PostgreSQL re-run
``docs/sql/postgres_roles.sql`` after a downgrade.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRAIL_BEFORE = """
    SELECT e.seq, e.ts, e.event_type, e.actor, e.payload, e.prev_hash, e.hash
    FROM audit_events e"""
TRAIL_PG = """
    SELECT e.seq, e.ts, e.event_type, e.actor, fairlens_event_payload(e.canonical) AS payload,
           e.prev_hash, e.hash
    FROM audit_events e"""
SQLITE_PAYLOAD = "CASE WHEN json_valid(canonical) THEN json_extract(canonical, '$.payload') END"
PG_FUNCTION = """
    CREATE FUNCTION fairlens_event_payload(canonical text) RETURNS json
    LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN
        RETURN canonical::json -> 'payload';
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END $$"""


def _head_tail(seq: int, ts: str, event_type: str, actor: str) -> tuple[str, str]:
    """The canonical text around the payload for these fields (RFC 8785 key order)."""
    head = f'{{"actor":{_quoted(actor)},"event_type":{_quoted(event_type)},"payload":'
    return head, f',"seq":{seq},"ts":{_quoted(ts)}}}'


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _slice(row: Any) -> str | None:
    """The payload's text inside ``canonical`` when the row's fields frame it, else None."""
    seq, ts, event_type, actor, canonical = row
    if not all(isinstance(v, str) for v in (ts, event_type, actor, canonical)):
        return None
    if not isinstance(seq, int):
        return None
    head, tail = _head_tail(seq, ts, event_type, actor)
    if canonical.startswith(head) and canonical.endswith(tail):
        return canonical[len(head) : len(canonical) - len(tail)]
    return None


def _edited(payload_text: Any, canonical: Any) -> bool:
    """True when the stored payload says something else than the hashed bytes."""
    try:
        hashed = json.loads(canonical)["payload"]
        stored = json.loads(payload_text) if isinstance(payload_text, str) else None
    except (ValueError, TypeError, KeyError):
        return True
    return _comparable(stored) != _comparable(hashed)


def _comparable(value: Any) -> str:
    # numbers as floats (RFC 8785 writes 1.0 as 1), but true, 1 and "1" stay distinct
    return json.dumps(json.loads(json.dumps(value), parse_int=float), sort_keys=True)


def _payload_sql(dialect: str) -> str:
    return "payload::text" if dialect == "postgresql" else "CAST(payload AS TEXT)"


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.create_table(
        "audit_payload_edits",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("payload", sa.Text(), nullable=True),
    )
    # Every row whose payload column is not, as text, its slice of canonical is compared by
    # value (legacy rows; edits). Rows written since 0.3 match as text and are not parsed.
    rows = bind.execute(
        sa.text(
            f"SELECT seq, ts, event_type, actor, canonical, {_payload_sql(dialect)} "  # noqa: S608
            "FROM audit_events ORDER BY id"
        )
    )
    edits = []
    for seq, ts, event_type, actor, canonical, payload_text in rows:
        if _slice((seq, ts, event_type, actor, canonical)) == payload_text:
            continue
        if _edited(payload_text, canonical):
            edits.append({"seq": seq, "payload": payload_text})
    if edits:
        op.bulk_insert(
            sa.table("audit_payload_edits", sa.column("seq"), sa.column("payload")), edits
        )
    if dialect == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(f"CREATE OR REPLACE VIEW v_audit_trail AS {TRAIL_PG}")
        op.execute("ALTER TABLE audit_events DROP COLUMN payload")
        op.execute(
            "CREATE TRIGGER audit_payload_edits_append_only BEFORE UPDATE OR DELETE OR "
            "TRUNCATE ON audit_payload_edits FOR EACH STATEMENT "
            "EXECUTE FUNCTION fairlens_append_only()"
        )
        return
    op.execute("DROP VIEW v_audit_trail")
    op.execute("ALTER TABLE audit_events DROP COLUMN payload")
    op.execute(
        f"ALTER TABLE audit_events ADD COLUMN payload JSON "
        f"GENERATED ALWAYS AS ({SQLITE_PAYLOAD}) VIRTUAL"
    )
    op.execute(f"CREATE VIEW v_audit_trail AS {TRAIL_BEFORE}")
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_payload_edits_no_{action.lower()} BEFORE {action} "
            "ON audit_payload_edits BEGIN SELECT RAISE(ABORT, "
            "'audit_payload_edits is append-only'); END"
        )


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    rows = bind.execute(
        sa.text("SELECT id, seq, ts, event_type, actor, canonical FROM audit_events ORDER BY id")
    ).all()
    edited = dict(bind.execute(sa.text("SELECT seq, payload FROM audit_payload_edits")).all())
    values = []
    for id_, *fields in rows:
        text_ = edited.get(fields[0], _slice(fields))
        if text_ is None:  # a damaged row: its payload as JSON parses it, else an empty object
            try:
                text_ = json.dumps(json.loads(fields[-1])["payload"])
            except (ValueError, TypeError, KeyError):
                text_ = "{}"
        values.append({"i": id_, "p": text_})
    if dialect == "postgresql":
        op.execute("DROP TRIGGER audit_payload_edits_append_only ON audit_payload_edits")
        op.execute("ALTER TABLE audit_events ADD COLUMN payload JSON")
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
        if values:
            bind.execute(
                sa.text("UPDATE audit_events SET payload = CAST(:p AS json) WHERE id = :i"), values
            )
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
        op.execute("ALTER TABLE audit_events ALTER COLUMN payload SET NOT NULL")
        op.execute("DROP VIEW v_audit_trail")
        op.execute(f"CREATE VIEW v_audit_trail AS {TRAIL_BEFORE}")
        op.execute("DROP FUNCTION fairlens_event_payload(text)")
        op.drop_table("audit_payload_edits")
        return
    op.execute("DROP VIEW v_audit_trail")
    op.execute("ALTER TABLE audit_events DROP COLUMN payload")
    op.execute("ALTER TABLE audit_events ADD COLUMN payload JSON NOT NULL DEFAULT '{}'")
    triggers = bind.execute(
        sa.text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
            "AND tbl_name = 'audit_events' AND sql LIKE '%UPDATE%'"
        )
    ).all()
    for name, _ in triggers:
        op.execute(f'DROP TRIGGER "{name}"')
    if values:
        bind.execute(sa.text("UPDATE audit_events SET payload = :p WHERE id = :i"), values)
    for _, sql in triggers:
        op.execute(sql)
    op.execute(f"CREATE VIEW v_audit_trail AS {TRAIL_BEFORE}")
    for action in ("update", "delete"):
        op.execute(f"DROP TRIGGER audit_payload_edits_no_{action}")
    op.drop_table("audit_payload_edits")
