"""Opening the monitor's resources from settings: shared by the CLI and the daemon.

Sits between the config boundary and the pipeline: turns validated settings into a
repository on a migrated database and a loaded alert key, refusing unsafe states (an old
schema, a missing key while encrypted alerts exist).
"""

from __future__ import annotations

from fairlens_monitor.config import Settings
from fairlens_monitor.crypto import AlertCipher, fernet_key_path, load_cipher
from fairlens_monitor.store.db import ensure_schema, make_engine
from fairlens_monitor.store.repository import Repository


def open_repository(settings: Settings, *, readonly: bool = False) -> Repository:
    """Open the configured database.

    Args:
        settings: validated settings.
        readonly: open read-only (never creates or migrates); otherwise an empty database
            is migrated to head and one at another revision is refused.

    Returns:
        A repository on the database.

    Raises:
        StoreError: missing file (read-only), or a schema at another revision.
    """
    url = settings.database.url
    engine = make_engine(url, readonly=readonly)
    if not readonly:
        ensure_schema(engine, url)
    return Repository(engine)


def open_cipher(settings: Settings, repo: Repository) -> AlertCipher:
    """Load the Fernet key; create it only while the database holds no encrypted alert.

    Args:
        settings: validated settings (``keys.dir``).
        repo: the repository, asked whether tokens already exist.

    Returns:
        The cipher.

    Raises:
        KeyFileError: the key is missing while alerts exist, corrupt, or readable by others.
    """
    key_dir = settings.keys.dir
    create = not fernet_key_path(key_dir).exists() and repo.alert_count() == 0
    return load_cipher(key_dir, create=create)
