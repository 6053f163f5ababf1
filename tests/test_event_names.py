"""Audit event type names live in one module: no other module writes one as a literal.

An auditor's SQL filters on these names (docs/AUDITORS.md) and the row-digest rules key on
them, so a typo in one writer would silently split an event type in two.
"""

from __future__ import annotations

import re
from pathlib import Path

from fairlens_monitor.audit import events

PACKAGE = Path(events.__file__).resolve().parents[1]


# config.notify names the events a route may name (``notify.on``); three of them are audit
# event names, which the config layer (below audit) cannot import: checked equal below.
NOTIFY_CONFIG = PACKAGE / "config" / "notify.py"


def test_every_event_type_is_named_once_in_the_events_module() -> None:
    pattern = re.compile("|".join(rf'"{re.escape(name)}"' for name in sorted(events.EVENT_TYPES)))
    offenders = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in (Path(events.__file__).resolve(), NOTIFY_CONFIG)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_the_constants_are_the_documented_names() -> None:
    constants = {v for k, v in vars(events).items() if k.isupper() and isinstance(v, str)}
    assert constants == events.EVENT_TYPES
    auditors = (PACKAGE.parent / "docs" / "AUDITORS.md").read_text()
    undocumented = sorted(name for name in events.EVENT_TYPES if name not in auditors)
    assert undocumented == []


def test_the_notify_events_that_are_audit_events_are_spelled_alike() -> None:
    from fairlens_monitor.config.notify import EVENTS

    assert set(EVENTS) & events.EVENT_TYPES == {
        events.ALERT_RAISED,
        events.ALERT_ACKNOWLEDGED,
        events.ALERT_RESOLVED,
    }
