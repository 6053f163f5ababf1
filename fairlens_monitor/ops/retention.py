"""Retention: delete what has been kept long enough, and say so in the audit chain.

Beside the **log** step. ``retention apply`` (and the daemon, once a day) deletes resolved
alerts and readings older than ``retention.readings_days`` (readings an unresolved alert
points at stay), runs older than ``retention.runs_days`` that have nothing left, and audit
events older than ``retention.audit_days`` — but the chain is never edited in place: events
are deleted only up to the newest signed checkpoint older than the cut-off, and a
``chain_pruned`` event signed with the checkpoint key records "pruned up to seq N, whose hash
was H". ``verify`` then checks the chain from N + 1 against H, so tampering in what remains
is still found, and a deletion without such a statement is a ``gap``. The audit cut-off may
not be under 183 days (the EU AI Act's six months for logs).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.audit.checkpoints import sign_prune
from fairlens_monitor.config.sections import RetentionSettings
from fairlens_monitor.store import maintenance
from fairlens_monitor.store.repository import Repository


def apply_retention(
    policy: RetentionSettings,
    repo: Repository,
    signer: Ed25519PrivateKey | None,
    *,
    now: datetime,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Apply the retention policy at ``now``.

    Args:
        policy: the retention settings.
        repo: the repository.
        signer: the checkpoint signing key; None skips the audit prune.
        now: the current aware UTC time.
        dry_run: count what would be deleted, delete nothing.

    Returns:
        Rows deleted (or that would be) per table, ``pruned_to``, the cut-offs and
        ``dry_run``.
    """
    ts = rfc3339(now)
    cutoffs = {
        name: now - timedelta(days=days)
        for name, days in (
            ("readings", policy.readings_days),
            ("runs", policy.runs_days),
            ("audit", policy.audit_days),
        )
    }

    prune = None
    if signer is not None:
        key = signer

        def prune(seq: int, head_hash: str) -> dict[str, object]:
            return sign_prune(key, pruned_to=seq, head_hash=head_hash, ts=ts)

    counts = maintenance.apply_retention(
        repo,
        readings_before=cutoffs["readings"],
        runs_before=cutoffs["runs"],
        prune=prune,
        audit_before=rfc3339(cutoffs["audit"]),
        dry_run=dry_run,
        ts=ts,
    )
    return {
        **counts,
        "dry_run": dry_run,
        "cutoffs": {name: rfc3339(moment) for name, moment in cutoffs.items()},
    }
