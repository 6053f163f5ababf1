"""Key management at the edge: rotate the alert key, and report on every key file.

``rotate_alert_key`` makes a new Fernet key, re-encrypts every stored alert token with
``MultiFernet.rotate`` in one database transaction that also records a ``keys_rotated`` audit
event (key ids only, never key material), and only then lets the new key take over. The old
key is kept as ``fernet-<id>.retired`` — tokens in older backups still need it — and every
retired or staged key keeps decrypting. Order of steps, and what a crash leaves:

1. the new key is written as ``fernet-<new id>.staged`` (0600);
2. the transaction commits (a crash before it changes nothing in the database);
3. ``fernet.key`` becomes ``fernet-<old id>.retired`` and the staged key ``fernet.key``
   (a crash between 2 and 3 leaves both keys on disk, and both decrypt).
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from fairlens_monitor.crypto import (
    FERNET_KEY_FILE,
    PUBLIC_KEY_FILE,
    RETIRED_SUFFIX,
    SIGNING_KEY_FILE,
    STAGED_SUFFIX,
    create_key_file,
    fsync_dir,
    key_fingerprint,
    load_cipher,
)
from fairlens_monitor.store import maintenance
from fairlens_monitor.store.repository import Repository


@dataclass(frozen=True)
class Rotation:
    """What a rotation did."""

    old_key_id: str
    new_key_id: str
    alerts: int
    audit_seq: int


def rotate_alert_key(key_dir: Path, repo: Repository, *, ts: str) -> Rotation:
    """Rotate the Fernet key of the alerts (see the module docstring for the steps).

    Args:
        key_dir: the key folder.
        repo: the repository holding the tokens.
        ts: RFC 3339 time of the audit event.

    Returns:
        The key ids, how many tokens were re-encrypted and the audit event's seq.

    Raises:
        KeyFileError: the current key is missing, corrupt or exposed.
        Exception: a database error; the tokens and key files are then unchanged (apart
            from the staged key, which is removed).
    """
    old = load_cipher(key_dir, create=False)
    new_key = Fernet.generate_key()
    new_id = key_fingerprint(new_key)
    staged = key_dir / f"fernet-{new_id}{STAGED_SUFFIX}"
    create_key_file(staged, new_key)
    keys = MultiFernet([Fernet(new_key), old.fernet, *old.older])
    try:
        record = maintenance.reencrypt_alerts(
            repo, lambda token: keys.rotate(token.encode("ascii")).decode("ascii"), new_id,
            {"old_key_id": old.key_id, "new_key_id": new_id}, ts=ts)
    except Exception:
        staged.unlink(missing_ok=True)
        raise
    os.replace(old.path, key_dir / f"fernet-{old.key_id}{RETIRED_SUFFIX}")
    os.replace(staged, old.path)
    fsync_dir(key_dir)
    return Rotation(old.key_id, new_id, int(record.payload["alerts"]), record.seq)


@dataclass(frozen=True)
class KeyFile:
    """One file of the key folder, as ``keys status`` shows it."""

    name: str
    role: str
    key_id: str | None
    age_days: float
    mode: str
    private_ok: bool


ROLES = {FERNET_KEY_FILE: "alert key (current)", SIGNING_KEY_FILE: "checkpoint signing key",
         PUBLIC_KEY_FILE: "checkpoint public key", "pepper.key": "pseudonym pepper"}


def key_status(key_dir: Path, *, now: float | None = None) -> list[KeyFile]:
    """Describe every key file in ``key_dir`` without reading more than fingerprints.

    Args:
        key_dir: the key folder.
        now: the current time (epoch seconds); defaults to the clock.

    Returns:
        One entry per file: role, public fingerprint (for Fernet keys and the public key),
        age in days, permissions, and whether a private file is closed to group and others.
    """
    moment = time.time() if now is None else now
    out = []
    for path in sorted(p for p in key_dir.iterdir() if p.is_file()) if key_dir.is_dir() else []:
        info = path.stat()
        role = ROLES.get(path.name)
        if role is None and path.name.startswith("fernet-"):
            role = ("alert key (retired, still decrypts)" if path.name.endswith(RETIRED_SUFFIX)
                    else "alert key (staged by an unfinished rotation)"
                    if path.name.endswith(STAGED_SUFFIX) else None)
        if role is None:
            continue  # not ours (the instance lock lives elsewhere)
        private = path.name != PUBLIC_KEY_FILE
        key_id = None
        if path.name.startswith("fernet") or path.name == PUBLIC_KEY_FILE:
            try:
                key_id = key_fingerprint(path.read_bytes())
            except OSError:
                key_id = None
        if path.name == PUBLIC_KEY_FILE:
            key_id = None  # its id is shown by `verify`; the raw-file digest would confuse
        out.append(KeyFile(path.name, role, key_id, (moment - info.st_mtime) / 86400,
                           stat.filemode(info.st_mode),
                           not private or not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)))
    return out
