"""``schedule.cron`` and ``daemon.workers``: validated at load, errors naming the key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fairlens_monitor.config.cron import longest_gap, parse_cron
from fairlens_monitor.config.monitors import load_portfolio
from fairlens_monitor.config.settings import Settings, load_settings
from fairlens_monitor.errors import ConfigError
from fairlens_monitor.ops.runner import previous_fire


def test_a_cron_schedule_loads_and_keeps_interval_hashes(
    make_settings: Callable[..., Settings],
) -> None:
    daily = make_settings({"schedule": {"interval_seconds": None, "cron": "0  6 * * *"}})
    assert daily.schedule.cron == "0 6 * * *"
    assert daily.schedule.interval_seconds is None
    assert daily.schedule.describe() == "cron 0 6 * * *"
    assert daily.schedule.expected_gap_seconds == 86400
    assert daily.leadership.lease_seconds == 30  # not 3 days
    plain = make_settings()
    assert "cron" not in plain.shaping()["schedule"]  # interval configs keep their hash
    assert plain.schedule.describe() == "every 0.2s"
    assert "cron" in daily.shaping()["schedule"]


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ({"cron": "0 6 * *"}, "4 fields"),
        ({"cron": "61 6 * * *"}, "5-field cron"),
        ({"cron": "0 6 31 2 *"}, "never fires"),
        ({"cron": 5}, "5-field cron"),
        ({"cron": "x" * 500}, "5-field cron"),
        ({"cron": ""}, "fields"),
        ({"cron": "0 6 * * 8"}, "5-field cron"),
        ({"cron": "0 6 * * 5-1"}, "5-field cron"),
    ],
)
def test_a_bad_cron_is_refused_naming_the_key(
    make_settings: Callable[..., Settings], schedule: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        make_settings({"schedule": {"interval_seconds": None, **schedule}})
    assert caught.value.key == "schedule.cron"
    assert "xxxx" not in str(caught.value)  # the value is not quoted back


def test_exactly_one_of_interval_and_cron(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="exactly one") as both:
        make_settings({"schedule": {"cron": "* * * * *"}})  # the base sets an interval
    assert both.value.key == "schedule.cron"
    with pytest.raises(ConfigError, match="exactly one") as neither:
        make_settings({"schedule": {"interval_seconds": None}})
    assert neither.value.key == "schedule.interval_seconds"


def test_a_monitors_bad_cron_names_the_monitor(write_config: Callable[..., Path]) -> None:
    path = write_config(
        {
            "monitors": {
                "cards": None,
                "mortgages": {"schedule": {"interval_seconds": None, "cron": "0 25 * * *"}},
            }
        }
    )
    with pytest.raises(ConfigError) as caught:
        load_portfolio(path, env={})
    assert caught.value.key == "monitors.mortgages.schedule.cron"


def test_a_portfolio_mixes_interval_and_cron(write_config: Callable[..., Path]) -> None:
    path = write_config(
        {
            "monitors": {
                "cards": None,
                "weekly": {"schedule": {"interval_seconds": None, "cron": "0 6 * * 1"}},
            }
        }
    )
    portfolio = load_portfolio(path, env={})
    assert portfolio["cards"].schedule.interval_seconds == 0.2
    assert portfolio["weekly"].schedule.cron == "0 6 * * 1"
    assert portfolio["weekly"].schedule.expected_gap_seconds == 7 * 86400


@pytest.mark.parametrize(
    ("value", "ok"), [(1, True), (64, True), (0, False), (65, False), (2.5, False), ("4", False)]
)
def test_daemon_workers_is_validated(
    make_settings: Callable[..., Settings], value: Any, ok: bool
) -> None:
    if ok:
        assert make_settings({"daemon": {"workers": value}}).daemon.workers == value
        return
    with pytest.raises(ConfigError) as caught:
        make_settings({"daemon": {"workers": value}})
    assert caught.value.key == "daemon.workers"


def test_daemon_is_a_service_section(write_config: Callable[..., Path]) -> None:
    path = write_config({"daemon": {"workers": 2}, "monitors": {"a": None, "b": None}})
    assert {s.daemon.workers for s in load_portfolio(path, env={}).values()} == {2}
    bad = write_config({"monitors": {"a": {"daemon": {"workers": 2}}}}, name="bad.yaml")
    with pytest.raises(ConfigError) as caught:
        load_portfolio(bad, env={})
    assert caught.value.key.startswith("monitors.a")
    assert load_settings(write_config(), env={}).daemon.workers == 4  # the default


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("*", "*"),
        ("1", "mon"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0,6", "sun,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("5-7", "fri,sat,sun"),
        ("mon-fri", "mon,tue,wed,thu,fri"),
        ("MON", "mon"),
        ("sun-sat", "sun,mon,tue,wed,thu,fri,sat"),  # cron's order: Sunday first
        ("fri-sun", "fri,sat,sun"),
        ("mon-fri/2", "mon,wed,fri"),  # the step is kept, not dropped
        ("1-5/2", "mon,wed,fri"),
    ],
)
def test_weekday_numbers_are_read_as_cron_reads_them(field: str, names: str) -> None:
    from fairlens_monitor.config.cron import cron_weekdays

    assert cron_weekdays(field) == names


@pytest.mark.parametrize("field", ["1-", "5-", "-1", "\u0661", "1#3", "mon-", "funday", "1/x"])
def test_a_malformed_weekday_field_is_refused(field: str) -> None:
    from fairlens_monitor.config.cron import cron_weekdays

    with pytest.raises(ValueError, match="day_of_week"):
        cron_weekdays(field)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 6 * * \u0661", "ASCII"),  # an Arabic-Indic one is not Monday
        ("\u0660 6 * * *", "ASCII"),
        ("0 6 1 * 1", "day-of-month or day-of-week"),  # cron: either; APScheduler: both
        ("0 6 1-7 * mon", "day-of-month or day-of-week"),
    ],
)
def test_a_cron_that_would_not_run_as_written_is_refused(
    make_settings: Callable[..., Settings], expression: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        make_settings({"schedule": {"interval_seconds": None, "cron": expression}})
    assert caught.value.key == "schedule.cron"


def test_a_stepped_weekday_name_range_fires_on_its_days() -> None:
    from fairlens_monitor.config.cron import cron_trigger

    fire = datetime(2026, 3, 7, tzinfo=UTC)  # a Saturday
    days = []
    for _ in range(6):
        fire = cron_trigger("0 6 * * mon-fri/2").get_next_fire_time(None, fire)
        days.append(fire.weekday())
        fire = fire.replace(minute=1)
    assert days == [0, 2, 4, 0, 2, 4]  # Monday, Wednesday, Friday: never Tuesday


def test_a_monday_cron_fires_on_mondays() -> None:
    from fairlens_monitor.config.cron import cron_trigger

    saturday = datetime(2026, 3, 7, tzinfo=UTC)  # a Saturday
    for expression, weekday in [("0 6 * * 1", 0), ("0 6 * * 0", 6), ("0 6 * * 7", 6)]:
        fire = cron_trigger(expression).get_next_fire_time(None, saturday)
        assert fire.weekday() == weekday, expression  # Python: Monday is 0


def test_cron_helpers_are_pure() -> None:
    assert longest_gap(parse_cron("0 6 * * 1-5", "schedule.cron")) == 3 * 86400
    assert longest_gap("*/10 * * * *") == 600
    from fairlens_monitor.config.cron import cron_trigger

    trigger = cron_trigger("*/10 * * * *")
    now = datetime(2026, 3, 1, 12, 7, 30, tzinfo=UTC)
    assert previous_fire(trigger, now, 30) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    exact = datetime(2026, 3, 1, 12, 10, tzinfo=UTC)
    assert previous_fire(trigger, exact, 30) == exact
