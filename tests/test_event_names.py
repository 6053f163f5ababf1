"""Audit event type names live in one module: no other module writes one as a literal.

An auditor's SQL filters on these names (docs/AUDITORS.md) and the row-digest rules key on
them, so a typo in one writer would silently split an event type in two.
"""

from __future__ import annotations

import re
from pathlib import Path

from fairlens_monitor.audit import events

PACKAGE = Path(events.__file__).resolve().parents[1]


def test_every_event_type_is_named_once_in_the_events_module() -> None:
    pattern = re.compile("|".join(rf'"{re.escape(name)}"' for name in sorted(events.EVENT_TYPES)))
    offenders = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != Path(events.__file__).resolve()
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
