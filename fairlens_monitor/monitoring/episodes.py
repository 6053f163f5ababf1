"""Alert episodes: one alert per episode, not one per cycle (the state machine, pure).

simulate → measure → detect → **alert** → log. While a condition holds (an ``adverse``
verdict for ``dir`` alerts, a CUSUM signal for ``drift`` alerts) there is one episode:
it opens on the first qualifying reading, stays ``open`` (or ``acknowledged``, set by a
person) while readings keep qualifying, and is ``resolved`` automatically after
``close_after`` consecutive readings that do not. The repository applies the transitions
inside the cycle's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["open", "continue", "count", "resolve"]
KINDS = ("dir", "drift")


@dataclass(frozen=True)
class Transition:
    """What one reading does to the episode of one alert kind."""

    kind: str
    action: Action
    clean_streak: int


def step(
    kind: str, open_streak: int | None, qualifies: bool, close_after: int
) -> Transition | None:
    """Decide the next state of one kind's episode.

    Args:
        kind: ``dir`` or ``drift``.
        open_streak: the open episode's count of consecutive non-qualifying readings, or None
            when no episode is open.
        qualifies: whether this reading meets the alert condition.
        close_after: non-qualifying readings in a row that resolve the episode (>= 1).

    Returns:
        ``open`` (raise a new alert), ``continue`` (still qualifying: streak back to 0),
        ``count`` (one more clean reading), ``resolve`` (close it), or None when there is
        no episode and nothing qualifies.

    Raises:
        ValueError: ``close_after`` < 1 or an unknown kind.
    """
    if close_after < 1:
        raise ValueError(f"close_after must be at least 1, got {close_after}")
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}; expected one of {KINDS}")
    if open_streak is None:
        return Transition(kind, "open", 0) if qualifies else None
    if qualifies:
        return Transition(kind, "continue", 0)
    streak = open_streak + 1
    return Transition(kind, "resolve" if streak >= close_after else "count", streak)


MANUAL = {("open", "acknowledged"), ("open", "resolved"), ("acknowledged", "resolved")}


def manual_transition(state: str, to: str, note: str | None) -> None:
    """Check a person's transition of an alert (``alerts ack`` / ``alerts resolve``).

    Args:
        state: the alert's current state.
        to: ``acknowledged`` or ``resolved``.
        note: the person's note; required (non-blank) to resolve.

    Raises:
        ValueError: the transition is not allowed (e.g. the alert is already resolved), or a
            resolve has no note. The message says why.
    """
    if (state, to) not in MANUAL:
        raise ValueError(f"an alert that is {state} cannot be {to}")
    if to == "resolved" and not (note and note.strip()):
        raise ValueError("resolving an alert needs a note saying why (--note TEXT)")
