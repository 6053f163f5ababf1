"""Key management at the edge: rotate the alert key, and report on every key file.

``rotate_alert_key`` makes a new Fernet key, re-encrypts every stored alert token with
``MultiFernet.rotate`` in one database transaction that also records a ``keys_rotated`` audit
event (key ids only, never key material), and only then lets the new key take over. The old
key is kept as ``fernet-<id>.retired`` — tokens in older backups still need it — and every
retired or staged key keeps decrypting. Order of steps, and what a crash leaves:

1. the new key is written as ``fernet-<new id>.staged`` (0600);
2. the transaction commits (a crash before it changes nothing in the database);
3. ``fernet.key`` becomes ``fernet-<old id>.retired`` and the staged key ``fernet.key``
   (a crash between 2 and 3 leaves both keys on disk, and both decrypt; a crash between the
   two renames leaves no ``fernet.key``: the next start puts the staged key the
   ``keys_rotated`` event names in its place and records ``key_rotation_finished``, see
   ``finish_interrupted_rotation``).

``check_key_matches_store`` is the start-up check that the key decrypts a stored token, so a
wrong ``fernet.key`` is refused before it encrypts new alerts no one could read with the
right one.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from fairlens_monitor.audit.events import KEY_ROTATION_FINISHED, KEYS_ROTATED
from fairlens_monitor.errors import DecryptionError, KeyFileError
from fairlens_monitor.security.crypto import (
    FERNET_KEY_FILE,
    PUBLIC_KEY_FILE,
    RETIRED_SUFFIX,
    SIGNING_KEY_FILE,
    STAGED_SUFFIX,
    AlertCipher,
    create_key_file,
    fernet_key_path,
    fsync_dir,
    install_staged_key,
    key_fingerprint,
    load_cipher,
)
from fairlens_monitor.security.report_key import REPORT_KEY_FILE, REPORT_PUBLIC_FILE
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
        KeyFileError: the current key is missing, corrupt or exposed, or no key in the
            folder decrypts a stored token (nothing is then changed).
        Exception: a database error; the tokens and key files are then unchanged (apart
            from the staged key, which is removed).
    """
    finish_interrupted_rotation(key_dir, repo, actor="cli", ts=ts)
    old = load_cipher(key_dir, create=False)
    check_key_matches_store(old, repo)
    new_key = Fernet.generate_key()
    new_id = key_fingerprint(new_key)
    staged = key_dir / f"fernet-{new_id}{STAGED_SUFFIX}"
    create_key_file(staged, new_key)
    keys = MultiFernet([Fernet(new_key), old.fernet, *old.older])
    try:
        record = maintenance.reencrypt_alerts(
            repo,
            lambda token: keys.rotate(token.encode("ascii")).decode("ascii"),
            new_id,
            {"old_key_id": old.key_id, "new_key_id": new_id},
            ts=ts,
        )
    except InvalidToken:
        staged.unlink(missing_ok=True)
        raise _wrong_key(old, "a stored alert token") from None
    except Exception:
        staged.unlink(missing_ok=True)
        raise
    os.replace(old.path, key_dir / f"fernet-{old.key_id}{RETIRED_SUFFIX}")
    if os.environ.get("FAIRLENS_TEST_STOP_BETWEEN_RENAMES") == "1":  # tests only: a kill here
        os.kill(os.getpid(), signal.SIGSTOP)
    os.replace(staged, old.path)
    fsync_dir(key_dir)
    return Rotation(old.key_id, new_id, int(record.payload["alerts"]), record.seq)


def finish_interrupted_rotation(
    key_dir: Path, repo: Repository, *, actor: str, ts: str
) -> str | None:
    """Finish a rotation killed between its two renames (no ``fernet.key``, the new key
    still ``fernet-<id>.staged``): put the key the newest ``keys_rotated`` event names in
    place and record ``key_rotation_finished``.

    Args:
        key_dir: the key folder.
        repo: the repository (its ``keys_rotated`` events say which staged key is current).
        actor: who is starting (``cli``, ``daemon``).
        ts: RFC 3339 time of the audit event.

    Returns:
        The id of the key put in place, or None when there was nothing to finish.

    Raises:
        KeyFileError: the staged key is exposed or in an exposed folder.
    """
    if fernet_key_path(key_dir).exists():
        return None
    rotations = repo.events_of_type(KEYS_ROTATED)
    if not rotations:
        return None
    key_id = str(rotations[-1][1].get("new_key_id"))
    if install_staged_key(key_dir, key_id) is None:
        return None
    repo.append_event(KEY_ROTATION_FINISHED, actor, {"key_id": key_id}, ts=ts)
    return key_id


def check_key_matches_store(cipher: AlertCipher, repo: Repository) -> None:
    """Make sure the alert key decrypts the newest stored tokens (when there are any).

    One of the newest ``CHECKED_TOKENS`` that decrypts is enough: a damaged token (which
    ``verify`` reports) must not pass for a wrong key.

    Args:
        cipher: the loaded key (with its retired and staged keys).
        repo: the repository holding the tokens.

    Raises:
        KeyFileError: no key in the folder decrypts any of them.
    """
    newest = maintenance.newest_alert_tokens(repo, CHECKED_TOKENS)
    for _, token in newest:
        try:
            cipher.decrypt(token)
        except DecryptionError:
            continue
        return
    if newest:
        raise _wrong_key(cipher, f"the stored alert #{newest[0][0]}")


def _wrong_key(cipher: AlertCipher, what: str) -> KeyFileError:
    return KeyFileError(
        str(cipher.path),
        f"does not decrypt {what} (nor does any retired or staged key in "
        "its folder): it is not the key the stored alerts were encrypted with; nothing was "
        "changed",
        fix="put the right fernet.key back from a backup of the key folder, or "
        "point keys.dir / FAIRLENS_KEY_DIR at the folder that holds it",
    )


@dataclass(frozen=True)
class KeyFile:
    """One file of the key folder, as ``keys status`` shows it."""

    name: str
    role: str
    key_id: str | None
    age_days: float
    mode: str
    private_ok: bool


CHECKED_TOKENS = 20  # how many of the newest tokens the start-up key check may try
FOLDER_ROLE = "key folder"
ROLES = {
    FERNET_KEY_FILE: "alert key (current)",
    SIGNING_KEY_FILE: "checkpoint signing key",
    PUBLIC_KEY_FILE: "checkpoint public key",
    "pepper.key": "pseudonym pepper",
    REPORT_KEY_FILE: "report signing key",
    REPORT_PUBLIC_FILE: "report public key",
}
PUBLIC_FILES = (PUBLIC_KEY_FILE, REPORT_PUBLIC_FILE)  # may be world-readable


def key_status(key_dir: Path, *, now: float | None = None) -> list[KeyFile]:
    """Describe every key file in ``key_dir`` without reading more than fingerprints.

    Args:
        key_dir: the key folder.
        now: the current time (epoch seconds); defaults to the clock.

    Returns:
        One entry for the folder itself (role ``key folder``, name ending in ``/``; it must
        be closed to group and others, 0700), then one per file: role, public fingerprint
        (for Fernet keys and the public key), age in days, permissions, and whether a
        private file is closed to group and others.
    """
    moment = time.time() if now is None else now
    out = []
    if key_dir.is_dir():
        info = key_dir.stat()
        out.append(
            KeyFile(
                f"{key_dir.name}/",
                FOLDER_ROLE,
                None,
                (moment - info.st_mtime) / 86400,
                stat.filemode(info.st_mode),
                not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO),
            )
        )
    for path in sorted(p for p in key_dir.iterdir() if p.is_file()) if key_dir.is_dir() else []:
        info = path.stat()
        role = ROLES.get(path.name)
        if role is None and path.name.startswith("fernet-"):
            role = (
                "alert key (retired, still decrypts)"
                if path.name.endswith(RETIRED_SUFFIX)
                else "alert key (staged by an unfinished rotation)"
                if path.name.endswith(STAGED_SUFFIX)
                else None
            )
        if role is None:
            continue  # not ours (the instance lock lives elsewhere)
        private = path.name not in PUBLIC_FILES
        key_id = None
        if path.name.startswith("fernet"):
            try:
                key_id = key_fingerprint(path.read_bytes())
            except OSError:
                key_id = None
        # a public key's id is shown by `verify` / `report` (the raw-file digest would confuse)
        out.append(
            KeyFile(
                path.name,
                role,
                key_id,
                (moment - info.st_mtime) / 86400,
                stat.filemode(info.st_mode),
                not private or not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO),
            )
        )
    return out
