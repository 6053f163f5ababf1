"""Change tracking: every change of the monitoring rules goes on the audit record.

Sits before the first cycle of a start (``run``) or a manual cycle (``once``): it compares
the settings that shape a reading (:meth:`Settings.shaping`) with the last snapshot recorded
in the audit chain and, when they differ, appends a ``config_changed`` event listing each
changed key with its old and new value — so a threshold change is always on the record,
with when and by which process. ``diff`` is pure; ``record_config_change`` is the edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fairlens_monitor.audit.chain import AuditRecord
from fairlens_monitor.audit.events import CONFIG_CHANGED, DAEMON_STARTED
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.store.repository import Repository

SNAPSHOT_EVENTS = (DAEMON_STARTED, CONFIG_CHANGED)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested settings to ``{"thresholds.dir": 0.8, ...}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """List the keys whose values differ, sorted, as ``{"key", "old", "new"}``.

    A key present on one side only has None on the other.
    """
    a, b = flatten(old), flatten(new)
    return [
        {"key": k, "old": a.get(k), "new": b.get(k)}
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def record_config_change(
    settings: Settings, repo: Repository, *, actor: str, ts: str, initial: bool = True
) -> AuditRecord | None:
    """Append ``config_changed`` when the rules differ from the last recorded snapshot.

    Args:
        settings: the settings about to be used.
        repo: the repository.
        actor: ``daemon`` or ``cli``.
        ts: RFC 3339 time of the event.
        initial: also record the first snapshot of a database that has none yet (every key
            listed as new). The daemon passes False: its ``daemon_started`` event, which
            follows, carries the snapshot.

    Returns:
        The appended record, or None when nothing changed.
    """
    current = settings.shaping()
    previous, previous_hash = repo.last_settings_snapshot(SNAPSHOT_EVENTS)
    if previous == current or (previous is None and previous_hash is None and not initial):
        return None
    if previous is None and previous_hash == settings.config_hash():
        return None
    return repo.append_event(
        CONFIG_CHANGED,
        actor,
        {
            "old_config_hash": previous_hash,
            "new_config_hash": settings.config_hash(),
            "changes": diff(previous or {}, current),
            "settings": current,
        },
        ts=ts,
        scoped=True,  # names the monitor: its snapshot is the one its next start compares
    )
