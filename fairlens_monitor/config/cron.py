"""A monitor's cron schedule: validated once at load, and the longest gap between its fires.

Configuration, before any cycle runs. ``schedule.cron`` is a standard 5-field cron
expression (minute hour day-of-month month day-of-week, UTC), read into APScheduler's
``CronTrigger`` — the same trigger the daemon schedules with, so what loads is what runs —
with day-of-week numbers as cron reads them (0 and 7 Sunday, 1 Monday). An expression
that cron and APScheduler would run differently (both day fields restricted) is refused.
The longest gap between two fires is what "expected interval" means for a cron monitor
(staleness); it is computed from a fixed reference time, so it is the same on every machine
(pure: no clock).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fairlens_monitor.errors import ConfigError

# fires sampled to find the longest gap: a year of a daily job, a week of a 10-minute one
SAMPLED_FIRES = 1000
_REFERENCE = datetime(2026, 1, 1, tzinfo=UTC)  # fixed, so the gap is the same everywhere
MAX_CRON_CHARS = 128


def cron_trigger(expression: str) -> Any:
    """Return the APScheduler ``CronTrigger`` of a 5-field expression, in UTC.

    The day-of-week field is read as cron reads it (``0`` and ``7`` Sunday, ``1`` Monday …
    ``6`` Saturday): APScheduler 3 numbers weekdays from Monday and its ``from_crontab`` does
    not translate them (agronholm/apscheduler#286), so numbers are turned into day names
    first (:func:`cron_weekdays`).

    Args:
        expression: e.g. ``"0 6 * * *"`` (06:00 UTC daily).

    Returns:
        The trigger (typed Any: APScheduler 3 ships no type hints).

    Raises:
        ValueError: the expression is not 5 fields APScheduler accepts.
    """
    from apscheduler.triggers.cron import CronTrigger  # deferred: config loads light

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields, got {len(fields)}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=cron_weekdays(weekday),
        timezone=UTC,
    )


_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# one part of a day-of-week field: *, a day or a range of days (numbers 0-7 or names), a step
_PART = re.compile(
    r"(?:\*|(?P<low>[0-9]{1,2}|[a-z]{3})(?:-(?P<high>[0-9]{1,2}|[a-z]{3}))?)(?:/(?P<step>[0-9]{1,2}))?",
    re.ASCII,
)
_WEEKDAY_FORM = (
    "day_of_week: each part is *, a day (0-7, 0 and 7 Sunday, or sun … sat) or a range of "
    "days low-high, optionally with /step"
)


def _day(text: str, *, high: bool) -> int:
    """A day of the week in cron's numbering (0 Sunday … 7 Sunday)."""
    if text.isdigit():
        return int(text)
    if text not in _NAMES:
        raise ValueError(_WEEKDAY_FORM)
    number = _NAMES.index(text)
    return 7 if high and number == 0 else number  # "fri-sun" ends on Sunday, cron's 7


def cron_weekdays(field: str) -> str:
    """Translate a cron day-of-week field to APScheduler's day names (pure).

    ``*`` stays; every other part — a day as a number (cron's numbering) or a name, a range,
    either with a step (``1-5``, ``0,6``, ``*/2``, ``mon-fri/2``, ``1-7/3``) — becomes the
    list of the days it names (``mon,tue,wed,thu,fri``). Names are turned into days here
    rather than passed on, because APScheduler 3 numbers its names from Monday (so
    ``sun-sat`` would be refused) and ignores a step after a name range (so ``mon-fri/2``
    would fire every weekday).

    Raises:
        ValueError: a number outside 0-7, a step below 1, a range high to low, or a part
            that is none of these forms (``1-``, ``5#3``, a digit of another script).
    """
    if field == "*":
        return field
    out: list[str] = []
    for part in field.lower().split(","):
        match = _PART.fullmatch(part)
        if match is None:
            raise ValueError(_WEEKDAY_FORM)
        low, high, step_text = match.group("low", "high", "step")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError("day_of_week: a step must be at least 1")
        if low is None:  # "*" or "*/N"
            first, last = 0, 6
        else:
            first = _day(low, high=False)
            last = _day(high, high=True) if high else (first if not step_text else 7)
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last):
            raise ValueError("day_of_week: numbers are 0-7 (0 and 7: Sunday), low to high")
        for day in range(first, last + 1, step):
            name = _NAMES[day % 7]
            if name not in out:
                out.append(name)
    return ",".join(out)


def parse_cron(value: Any, key: str) -> str:
    """Validate ``schedule.cron`` and return it with its fields single-spaced.

    Args:
        value: the configured value.
        key: the key to name in an error (``schedule.cron``; the monitor loader puts it
            under ``monitors.NAME.``).

    Returns:
        The expression, normalised (``"0  6 * * *"`` → ``"0 6 * * *"``).

    Raises:
        ConfigError: not a string of 5 fields, longer than 128 characters, not ASCII, both
            day-of-month and day-of-week restricted (cron and APScheduler read that
            differently), a field APScheduler refuses, or an expression that never fires.
    """
    expected = "a 5-field cron expression in UTC, e.g. '0 6 * * *' (daily at 06:00)"
    if not isinstance(value, str) or len(value) > MAX_CRON_CHARS:
        raise ConfigError(key, f"expected {expected}")
    if not value.isascii():  # APScheduler would read a digit of any script as a number
        raise ConfigError(key, f"expected {expected}, in ASCII characters only")
    fields = value.split()
    if len(fields) != 5:
        raise ConfigError(key, f"expected {expected}; it has {len(fields)} fields")
    if fields[2] != "*" and fields[4] != "*":
        # cron fires when either matches; APScheduler's CronTrigger only when both do
        raise ConfigError(
            key,
            f"expected {expected}; restrict day-of-month or day-of-week, not both (cron "
            "would fire on either, the scheduler only on days matching both)",
        )
    normal = " ".join(fields)
    try:
        trigger = cron_trigger(normal)
    except (ValueError, KeyError, TypeError) as exc:
        # APScheduler's message names the field, not the data around it
        raise ConfigError(key, f"expected {expected} ({_field_problem(exc)})") from None
    if trigger.get_next_fire_time(None, _REFERENCE) is None:
        raise ConfigError(key, f"expected {expected}; this one never fires")
    return normal


def _field_problem(exc: Exception) -> str:
    text = str(exc).split("\n", 1)[0]
    return text[:120] if text else type(exc).__name__


@functools.lru_cache(maxsize=1024)
def longest_gap(expression: str) -> float:
    """Return the longest gap in seconds between two fires of ``expression`` (sampled).

    Args:
        expression: an expression :func:`parse_cron` accepted.

    Returns:
        The longest gap among the first :data:`SAMPLED_FIRES` fires after a fixed reference
        time (e.g. 86400 for ``0 6 * * *``, 259200 for ``0 6 * * 1-5``).
    """
    trigger = cron_trigger(expression)
    previous = trigger.get_next_fire_time(None, _REFERENCE)
    longest = 0.0
    for _ in range(SAMPLED_FIRES):
        following = trigger.get_next_fire_time(previous, previous)
        if following is None or following <= previous:
            # APScheduler 3 may return the same time when asked from a fire time: step past it
            following = trigger.get_next_fire_time(previous, previous + timedelta(seconds=1))
        if following is None:
            break
        longest = max(longest, (following - previous).total_seconds())
        previous = following
    return longest
