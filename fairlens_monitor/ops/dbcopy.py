"""Copy the whole history into another database, verified on both sides (``db copy``).

**log**, moved: for outgrowing SQLite (SQLite → PostgreSQL). The source's chain and
checkpoints are verified first; the copy's are verified through the copy's own connection
before it commits, so a copy that does not verify leaves nothing in the destination.
"""

from __future__ import annotations

from fairlens_monitor.audit.events import where
from fairlens_monitor.audit.verify import ChainReport
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.errors import CopyNotVerifiedError, SourceNotVerifiedError
from fairlens_monitor.ops.verification import verify_store
from fairlens_monitor.store.copy import CopyResult, copy_database
from fairlens_monitor.store.db import make_engine
from fairlens_monitor.store.repository import Repository


def copy_verified(settings: Settings, src_url: str, dst_url: str) -> tuple[CopyResult, ChainReport]:
    """Verify the source, copy it into the empty destination, verify the copy, commit.

    Args:
        settings: validated settings (the anchor file, public key and checkpoint interval
            both chains are verified with).
        src_url: the source database (opened read-only).
        dst_url: the destination (created/migrated; must hold no rows).

    Returns:
        ``(rows copied and the copy's head, the source's chain report)``.

    Raises:
        SourceNotVerifiedError: the source's chain does not verify (nothing copied).
        CopyNotVerifiedError: the copy does not verify (rolled back).
        StoreError: a database cannot be opened, or the destination is not empty.
        CannotVerifyError: the anchor file or public key is missing where needed.
    """
    anchor_file, public_key = settings.audit.anchor_file, settings.keys.public_key
    every = settings.audit.checkpoint_every
    source = Repository(make_engine(src_url, readonly=True))
    try:
        report = verify_store(
            source, anchor_file=anchor_file, public_key=public_key, checkpoint_every=every
        ).chain
    finally:
        source.engine.dispose()
    if not report.intact:
        first = report.anomalies[0]
        raise SourceNotVerifiedError(where(first), first.kind)

    def check(copy: Repository) -> None:
        found = verify_store(
            copy, anchor_file=anchor_file, public_key=public_key, checkpoint_every=every
        ).chain
        if not found.intact:
            raise CopyNotVerifiedError(where(found.anomalies[0]), found.anomalies[0].kind)

    return copy_database(src_url, dst_url, check), report
