"""Signed checkpoints of the audit chain (pure): what makes a deleted tail or a rebuilt
chain detectable.

simulate → measure → detect → alert → **log**. Every N events and at shutdown the daemon
signs ``{seq, head_hash, ts, key_id}`` (RFC 8785 canonical JSON, domain-tagged) with an
Ed25519 key kept apart from the database, and appends the result to an anchor file outside
the database. Someone who can write the database but not the key cannot forge a checkpoint;
someone who truncates or rebuilds the chain cannot make it match the anchored heads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fairlens_monitor.audit.verify import AnchorClaim
from fairlens_monitor.security.crypto import public_key_id

DOMAIN_TAG = b"fairlens-checkpoint-v1\x00"
# Since 0.9 each checkpoint also signs ``prev``, the digest of the checkpoint before it (the
# database's newest when it was signed; 64 zeros for the first), so checkpoints form a hash
# chain and one signature check vouches for every checkpoint it reaches (see :func:`claims`).
DOMAIN_TAG_V2 = b"fairlens-checkpoint-v2\x00"
NO_PREVIOUS = "00" * 32
_PLAIN = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*")  # printable ASCII but " and \


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: the audit chain's head at ``seq`` was ``head_hash``.

    ``prev`` is the digest of the previous checkpoint (None on checkpoints signed before
    0.9, which sign the v1 message without it).
    """

    seq: int
    head_hash: str
    ts: str
    key_id: str
    signature: str  # base64 of the 64-byte Ed25519 signature
    prev: str | None = None

    def to_json(self) -> str:
        """Return the anchor-file line (without the newline)."""
        doc: dict[str, object] = {
            "seq": self.seq,
            "head_hash": self.head_hash,
            "ts": self.ts,
            "key_id": self.key_id,
            "signature": self.signature,
        }
        if self.prev is not None:
            doc["prev"] = self.prev
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def message(seq: int, head_hash: str, ts: str, key_id: str, prev: str | None = None) -> bytes:
    """Return the exact bytes a checkpoint signs (v2, with ``prev``, when it is given)."""
    fields: dict[str, Any] = {"seq": seq, "head_hash": head_hash, "ts": ts, "key_id": key_id}
    if prev is None:
        return DOMAIN_TAG + rfc8785.dumps(fields)
    if type(seq) is int and all(
        type(v) is str and _PLAIN.fullmatch(v) for v in (head_hash, ts, key_id, prev)
    ):
        # the common case, exactly as RFC 8785 writes it (keys in code-unit order), without
        # the encoder's cost: verify computes this for every checkpoint it reaches by hash
        return DOMAIN_TAG_V2 + (
            f'{{"head_hash":"{head_hash}","key_id":"{key_id}",'
            f'"prev":"{prev}","seq":{seq},"ts":"{ts}"}}'
        ).encode("ascii")
    return DOMAIN_TAG_V2 + rfc8785.dumps({**fields, "prev": prev})


def digest(cp: Checkpoint) -> str:
    """Return the SHA-256 (hex) of what ``cp`` signs: the ``prev`` of the next checkpoint."""
    return hashlib.sha256(message(cp.seq, cp.head_hash, cp.ts, cp.key_id, cp.prev)).hexdigest()


def sign_checkpoint(
    key: Ed25519PrivateKey, *, seq: int, head_hash: str, ts: str, prev: str | None = None
) -> Checkpoint:
    """Sign the chain head.

    Args:
        key: the Ed25519 private key.
        seq: the head's seq.
        head_hash: the head's hash.
        ts: RFC 3339 time of signing.
        prev: the digest of the previous checkpoint (:func:`digest`; ``NO_PREVIOUS`` for
            the first); None signs the pre-0.9 message.

    Returns:
        The checkpoint.
    """
    key_id = public_key_id(key.public_key())
    signature = key.sign(message(seq, head_hash, ts, key_id, prev))
    return Checkpoint(seq, head_hash, ts, key_id, base64.b64encode(signature).decode("ascii"), prev)


def verify_checkpoint(key: Ed25519PublicKey, cp: Checkpoint) -> bool:
    """Return True when ``cp`` was signed by ``key`` and has not been altered."""
    try:
        key.verify(
            base64.b64decode(cp.signature, validate=True),
            message(cp.seq, cp.head_hash, cp.ts, cp.key_id, cp.prev),
        )
    except (InvalidSignature, ValueError, binascii.Error, TypeError):
        return False
    return True


RESTORE_FIELDS = ("from_seq", "head_hash", "superseded_to", "ts")
# Since 0.9 a restore that loses anchored history names every lost anchored seq, signed.
RESTORE_FIELDS_V2 = (*RESTORE_FIELDS, "lost_checkpoints")
PRUNE_FIELDS = ("pruned_to", "head_hash", "ts")


def statement_message(kind: str, fields: dict[str, object], names: tuple[str, ...]) -> bytes:
    """Return the exact bytes a signed chain statement (``restore``/``prune``) covers."""
    tag = f"fairlens-{kind}-v1\x00".encode("ascii")
    return tag + rfc8785.dumps({k: fields[k] for k in names})  # type: ignore[misc]


def sign_statement(
    key: Ed25519PrivateKey, kind: str, fields: dict[str, object], names: tuple[str, ...]
) -> dict[str, object]:
    """Sign a statement about the chain with the checkpoint key.

    Returns:
        ``fields`` plus ``key_id`` and ``signature``: the audit event's payload.
    """
    signature = key.sign(statement_message(kind, fields, names))
    return {
        **fields,
        "key_id": public_key_id(key.public_key()),
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def verify_statement(
    key: Ed25519PublicKey, kind: str, payload: dict[str, object], names: tuple[str, ...]
) -> bool:
    """Return True when a statement payload was signed by ``key`` and is unaltered."""
    try:
        key.verify(
            base64.b64decode(str(payload["signature"]), validate=True),
            statement_message(kind, payload, names),
        )
    except (InvalidSignature, ValueError, binascii.Error, KeyError):
        return False
    return True


def sign_restore(
    key: Ed25519PrivateKey,
    *,
    from_seq: int,
    head_hash: str,
    superseded_to: int,
    ts: str,
    lost_checkpoints: list[int] | None = None,
) -> dict[str, object]:
    """Sign "restored from a backup at ``from_seq``; anchors up to ``superseded_to`` signed
    before ``ts`` describe history that was lost" (a ``chain_restored`` payload).

    Args:
        key: the checkpoint signing key.
        from_seq: the backup's head seq.
        head_hash: the backup's head hash.
        superseded_to: the highest anchored seq the restore loses (``from_seq`` if none).
        ts: RFC 3339 time of the restore.
        lost_checkpoints: the seq of every anchored checkpoint the restore loses; when
            given (always, since 0.9), it is signed too.

    Returns:
        The payload with ``key_id`` and ``signature``.
    """
    fields: dict[str, object] = {
        "from_seq": from_seq,
        "head_hash": head_hash,
        "superseded_to": superseded_to,
        "ts": ts,
    }
    if lost_checkpoints is None:
        return sign_statement(key, "restore", fields, RESTORE_FIELDS)
    fields["lost_checkpoints"] = sorted(lost_checkpoints)
    return sign_statement(key, "restore", fields, RESTORE_FIELDS_V2)


def verify_restore(key: Ed25519PublicKey, payload: dict[str, object]) -> bool:
    """Return True when a ``chain_restored`` payload was signed by ``key``, unaltered."""
    names = RESTORE_FIELDS_V2 if "lost_checkpoints" in payload else RESTORE_FIELDS
    return verify_statement(key, "restore", payload, names)


def sign_prune(
    key: Ed25519PrivateKey, *, pruned_to: int, head_hash: str, ts: str
) -> dict[str, object]:
    """Sign "events up to ``pruned_to`` (whose hash was ``head_hash``) were deleted under the
    retention policy" (a ``chain_pruned`` payload)."""
    return sign_statement(
        key, "prune", {"pruned_to": pruned_to, "head_hash": head_hash, "ts": ts}, PRUNE_FIELDS
    )


def verify_prune(key: Ed25519PublicKey, payload: dict[str, object]) -> bool:
    """Return True when a ``chain_pruned`` payload was signed by ``key``, unaltered."""
    return verify_statement(key, "prune", payload, PRUNE_FIELDS)


def parse_line(line: str) -> Checkpoint | None:
    """Parse one anchor-file line; None when it is not a well-formed checkpoint."""
    try:
        doc: Any = json.loads(line)
        prev = doc.get("prev")
        return Checkpoint(
            seq=int(doc["seq"]),
            head_hash=str(doc["head_hash"]),
            ts=str(doc["ts"]),
            key_id=str(doc["key_id"]),
            signature=str(doc["signature"]),
            prev=None if prev is None else str(prev),
        )
    except (ValueError, KeyError, TypeError):
        return None


def claims(key: Ed25519PublicKey, checkpoints: list[Checkpoint], source: str) -> list[AnchorClaim]:
    """Turn checkpoints into anchor claims for ``audit.verify_chain``, checking signatures.

    One Ed25519 check (~150 µs) per chain of checkpoints, not per checkpoint: walking from
    the newest, a checkpoint whose digest a checkpoint already verified signed as its
    ``prev`` is verified by that hash alone (~3 µs); any other (the newest, a pre-0.9
    checkpoint, a fork) has its own signature checked.

    Args:
        key: the public key that must have signed them.
        checkpoints: the checkpoints, oldest first.
        source: where they came from, for messages (e.g. ``anchor.jsonl line 3``).

    Returns:
        One claim per checkpoint, in the same order.
    """
    vouched: set[str] = set()
    valid = [False] * len(checkpoints)
    for i in range(len(checkpoints) - 1, -1, -1):
        cp = checkpoints[i]
        if digest(cp) in vouched or verify_checkpoint(key, cp):
            valid[i] = True
            if cp.prev is not None:
                vouched.add(cp.prev)
    return [
        AnchorClaim(cp.seq, cp.head_hash, ok, f"{source} #{i + 1}")
        for i, (cp, ok) in enumerate(zip(checkpoints, valid, strict=True))
    ]
