"""Monitors in config: shared defaults deep-merged per monitor, errors naming the monitor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fairlens_monitor.config.monitors import (
    DEFAULT_MONITOR,
    deep_merge,
    load_portfolio,
    monitor_documents,
)
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

_keys = st.sampled_from(["a", "b", "c", "kind", "mode"])
_leaves = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.sampled_from(["x", "y"]),
    st.lists(st.integers(0, 2), max_size=2),
)
_values = st.recursive(
    _leaves, lambda inner: st.dictionaries(_keys, inner, max_size=4), max_leaves=12
)


def _write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _base(tmp_path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "config.yaml").read_text())
    del document["monitors"]  # the demo's two monitors: the shared defaults are the base
    document["database"] = {"url": f"sqlite:///{tmp_path / 'm.db'}"}
    document["keys"] = {"dir": str(tmp_path / "keys")}
    document["audit"] = {"anchor_file": str(tmp_path / "anchor.jsonl")}
    return document


@given(_values, _values)
def test_merge_keeps_every_override_and_changes_neither_input(base: Any, over: Any) -> None:
    before = (repr(base), repr(over))
    merged = deep_merge(base, over)
    assert (repr(base), repr(over)) == before
    if not (isinstance(base, dict) and isinstance(over, dict)):
        assert merged == over
        return
    for key, value in over.items():  # what the monitor set is never lost
        if isinstance(value, dict) and isinstance(merged[key], dict):
            assert set(value) <= set(merged[key])
        else:
            assert merged[key] == value
    switched = any(k in over and k in base and over[k] != base[k] for k in ("kind", "mode"))
    assert set(merged) == (set(over) if switched else set(base) | set(over))


@given(_values)
def test_merge_with_itself_or_nothing_is_identity(value: Any) -> None:
    assert deep_merge(value, value) == value
    assert deep_merge({}, value) == value
    assert deep_merge(value, {}) == (value if isinstance(value, dict) else {})


def test_lists_replace_and_nested_mappings_merge() -> None:
    base = {"protected_attributes": ["gender"], "bands": {"age": [25, 40], "income": [1]}}
    over = {"protected_attributes": ["age"], "bands": {"age": [30]}}
    assert deep_merge(base, over) == {
        "protected_attributes": ["age"],
        "bands": {"age": [30], "income": [1]},
    }


def test_another_kind_replaces_the_default_whole() -> None:
    base = {"kind": "file", "path": "x/*.csv", "outcome": "approved"}
    assert deep_merge(base, {"kind": "sql", "url": "u"}) == {"kind": "sql", "url": "u"}
    assert deep_merge(base, {"outcome": "ok"})["path"] == "x/*.csv"


def test_a_file_without_monitors_is_one_monitor_named_default(tmp_path: Path) -> None:
    path = _write(tmp_path, _base(tmp_path))
    portfolio = load_portfolio(path, env={})
    assert list(portfolio) == [DEFAULT_MONITOR]
    assert portfolio[DEFAULT_MONITOR] == load_settings(path, env={})
    assert portfolio[DEFAULT_MONITOR].config_hash() == load_settings(path, env={}).config_hash()


def test_each_monitor_gets_the_defaults_with_its_own_overrides(tmp_path: Path) -> None:
    document = _base(tmp_path)
    document["monitors"] = {
        "gender": None,
        "age_bands": {
            "measurement": {
                "protected_attributes": ["age"],
                "bands": {"age": [25, 40]},
                "reference": "highest",
                "privileged_value": None,
                "unprivileged_value": None,
            },
            "thresholds": {"dir": 0.85},
            "schedule": {"interval_seconds": 5},
        },
    }
    portfolio = load_portfolio(_write(tmp_path, document), env={})
    assert list(portfolio) == ["gender", "age_bands"]
    gender, age = portfolio["gender"], portfolio["age_bands"]
    assert gender.thresholds.dir == 0.8
    assert age.thresholds.dir == 0.85
    assert age.thresholds.gap == gender.thresholds.gap == 0.2  # key by key
    assert age.measurement.protected_attributes == ("age",)
    assert gender.measurement.protected_attributes == ("gender",)
    assert age.schedule.interval_seconds == 5.0
    assert age.schedule.misfire_grace_seconds == gender.schedule.misfire_grace_seconds
    assert age.database == gender.database  # the service's sections are shared
    assert age.keys == gender.keys
    assert age.config_hash() != gender.config_hash()


@pytest.mark.parametrize(
    ("monitors", "key", "problem"),
    [
        ({"auto_loans": {"thresholds": {"dir": -1}}}, "monitors.auto_loans.thresholds.dir", "> 0"),
        (
            {"auto_loans": {"simulation": {"drift": {"mode": "constant", "level": 2}}}},
            "monitors.auto_loans.simulation.drift.level",
            "[0, 1]",
        ),
        ({"auto_loans": {"database": {"url": "x"}}}, "monitors.auto_loans.database", "unknown key"),
        ({"auto_loans": {"nonsense": 1}}, "monitors.auto_loans.nonsense", "unknown key"),
        ({"Auto-Loans": None}, "monitors.Auto-Loans", "a-z, 0-9 and _"),
        ({"": None}, "monitors.", "a-z, 0-9 and _"),
        ({"x" * 65: None}, "monitors." + "x" * 40, "1 to 64"),
        ({"auto_loans": [1]}, "monitors.auto_loans", "mapping"),
        ({}, "monitors", "empty"),
    ],
)
def test_errors_name_the_monitor_and_the_key(
    tmp_path: Path, monitors: dict[str, Any], key: str, problem: str
) -> None:
    document = _base(tmp_path)
    document["monitors"] = monitors
    with pytest.raises(ConfigError) as caught:
        load_portfolio(_write(tmp_path, document), env={})
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert "\n" not in str(caught.value)


def test_a_bad_shared_default_keeps_its_key_and_names_the_monitor(tmp_path: Path) -> None:
    document = _base(tmp_path)
    document["thresholds"]["gap"] = 7
    document["monitors"] = {"auto_loans": {"thresholds": {"dir": 0.9}}}
    with pytest.raises(ConfigError) as caught:
        load_portfolio(_write(tmp_path, document), env={})
    assert caught.value.key == "thresholds.gap"
    assert "shared defaults (monitor auto_loans)" in str(caught.value)


def test_monitors_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="'monitors'"):
        monitor_documents({"monitors": ["a", "b"]})


def test_a_key_missing_from_a_section_the_monitor_set_alone_is_the_monitors(
    tmp_path: Path,
) -> None:
    """The defaults have no ``source`` (or one of another kind, which the monitor's replaces
    whole): a key missing from the monitor's own source is the monitor's to add, not the
    shared defaults'."""
    (tmp_path / "exports").mkdir()
    own_source = {"kind": "file", "path": str(tmp_path / "exports")}  # no outcome
    document = _base(tmp_path)
    document["monitors"] = {"cards": None, "auto_loans": {"source": own_source}}
    with pytest.raises(ConfigError) as caught:
        load_portfolio(_write(tmp_path, document), env={})
    assert caught.value.key == "monitors.auto_loans.source.outcome"
    assert "shared defaults" not in str(caught.value)

    document["source"] = {"kind": "sql", "url": "sqlite:///x.db", "table": "t", "outcome": "y"}
    with pytest.raises(ConfigError) as replaced:
        load_portfolio(_write(tmp_path, document), env={})
    assert replaced.value.key == "monitors.auto_loans.source.outcome"


def test_a_key_missing_from_a_merged_section_stays_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    document = _base(tmp_path)
    document["source"] = {"kind": "file", "path": str(tmp_path / "exports")}  # no outcome
    document["monitors"] = {"auto_loans": {"source": {"window": "all"}}}
    with pytest.raises(ConfigError) as caught:
        load_portfolio(_write(tmp_path, document), env={})
    assert caught.value.key == "source.outcome"
    assert "shared defaults (monitor auto_loans)" in str(caught.value)


def test_a_name_yaml_reads_as_a_number_says_to_quote_it(tmp_path: Path) -> None:
    """`monitors: {123: ...}`: YAML reads the key as a number, and the error said the name
    must be a-z, 0-9 and _ — which '123' is."""
    text = yaml.safe_dump(_base(tmp_path)) + "monitors:\n  123: {}\n"
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_portfolio(path, env={})
    assert caught.value.key == "monitors.123"
    assert "quote it" in caught.value.problem


def test_monitors_named_on_and_no_are_names_not_booleans(tmp_path: Path) -> None:
    """YAML 1.1 reads a plain `on:`/`no:` key as a boolean; a config key never is one."""
    text = yaml.safe_dump(_base(tmp_path)) + "monitors:\n  on: {}\n  no: {}\n"
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert sorted(load_portfolio(path, env={})) == ["no", "on"]
