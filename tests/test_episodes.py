"""The alert state machine: one alert per episode, closed after K clean readings."""

from __future__ import annotations

import pytest

from fairlens_monitor.monitoring.episodes import step


def run(qualifying: list[bool], close_after: int) -> list[str]:
    streak: int | None = None
    actions: list[str] = []
    for q in qualifying:
        t = step("dir", streak, q, close_after)
        actions.append("-" if t is None else t.action)
        if t is not None:
            streak = None if t.action == "resolve" else t.clean_streak
    return actions


def test_one_alert_per_episode_not_one_per_cycle() -> None:
    assert run([True] * 5, 3) == ["open"] + ["continue"] * 4


def test_closed_after_k_consecutive_clean_readings() -> None:
    assert run([True, False, False, False, False], 3) == ["open", "count", "count", "resolve", "-"]


def test_a_relapse_resets_the_clean_streak() -> None:
    assert run([True, False, False, True, False, False, False, True], 3) == [
        "open",
        "count",
        "count",
        "continue",
        "count",
        "count",
        "resolve",
        "open",
    ]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="close_after"):
        step("dir", None, True, 0)
    with pytest.raises(ValueError, match="unknown alert kind"):
        step("gap", None, True, 3)
