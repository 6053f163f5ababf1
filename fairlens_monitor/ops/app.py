"""Opening the monitor's resources from settings: shared by the CLI and the daemon.

Sits between the config boundary and the pipeline: turns validated settings into a
repository on a migrated database and a loaded alert key, refusing unsafe states (an old
schema, a missing key while encrypted alerts exist).
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops.keys import check_key_matches_store, finish_interrupted_rotation
from fairlens_monitor.security.crypto import (
    SIGNING_KEY_FILE,
    AlertCipher,
    fernet_key_path,
    load_cipher,
    load_signing_key,
)
from fairlens_monitor.store.db import IDLE_IN_TRANSACTION_S, make_engine
from fairlens_monitor.store.maintenance import record_row_baseline
from fairlens_monitor.store.repository import Repository
from fairlens_monitor.store.schema import check_readable, ensure_schema


def open_repository(settings: Settings, *, readonly: bool = False) -> Repository:
    """Open the configured database.

    Args:
        settings: validated settings.
        readonly: open read-only: never creates or migrates, and refuses a database that is
            missing, empty, locked or at another revision. Otherwise an empty database is
            migrated to head, one at another revision is refused, and rows stored before
            row digests existed get their ``rows_baseline`` event (once).

    Returns:
        A repository on the database.

    Raises:
        StoreError: as above, with what to do.
    """
    url = settings.database.url
    engine = make_engine(
        url,
        readonly=readonly,
        busy_timeout_ms=settings.database.busy_timeout_ms,
        # a frozen writer holds the chain lock no longer than a lead lasts
        idle_in_transaction_s=(
            IDLE_IN_TRANSACTION_S if readonly else settings.leadership.lease_seconds
        ),
    )
    try:
        check_readable(engine, url) if readonly else ensure_schema(engine, url)
        repo = Repository(engine)
        if not readonly:
            record_row_baseline(repo, ts=rfc3339(datetime.now(UTC)))
    except Exception:
        engine.dispose()
        raise
    return repo


def open_cipher(settings: Settings, repo: Repository, *, actor: str = "cli") -> AlertCipher:
    """Load the Fernet key; create it only while the database holds no encrypted alert.

    A rotation killed between its two renames is finished first (``keys``), and the key is
    checked against the newest stored token.

    Args:
        settings: validated settings (``keys.dir``).
        repo: the repository, asked whether tokens already exist.
        actor: who is starting, for the audit event of a finished rotation.

    Returns:
        The cipher.

    Raises:
        KeyFileError: the key is missing while alerts exist, corrupt, readable by others,
            in a folder others may enter, or does not decrypt the stored alerts.
    """
    key_dir = settings.keys.dir
    finish_interrupted_rotation(key_dir, repo, actor=actor, ts=rfc3339(datetime.now(UTC)))
    create = not fernet_key_path(key_dir).exists() and repo.alert_count() == 0
    cipher = load_cipher(key_dir, create=create)
    check_key_matches_store(cipher, repo)
    return cipher


def open_signing_key(settings: Settings, repo: Repository) -> Ed25519PrivateKey:
    """Load the checkpoint signing key; create it only while no checkpoint exists.

    Args:
        settings: validated settings (``keys.dir``).
        repo: the repository, asked whether checkpoints already exist.

    Returns:
        The Ed25519 private key.

    Raises:
        KeyFileError: missing while checkpoints exist, corrupt, or readable by others.
    """
    key_dir = settings.keys.dir
    create = not (key_dir / SIGNING_KEY_FILE).exists() and repo.checkpoint_count() == 0
    return load_signing_key(key_dir, create=create)
