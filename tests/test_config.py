"""Config validation: every bad key stops with one message naming the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fairlens_monitor.config.monitors import load_portfolio
from fairlens_monitor.config.settings import load_settings
from fairlens_monitor.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_shipped_config_is_valid() -> None:
    portfolio = load_portfolio(REPO / "config.yaml", env={})
    assert list(portfolio) == ["gender", "age_bands"]  # the demo shows an inventory
    ages = portfolio["age_bands"].measurement
    assert ages.protected_attributes == ("age",)
    assert ages.reference == "highest"
    s = portfolio["gender"]
    assert s.database.url == f"sqlite:///{REPO / 'var' / 'fairlens.db'}"
    assert s.keys.dir == REPO / "var" / "keys"
    assert s.thresholds.dir == 0.8
    assert s.thresholds.gap == 0.2
    assert s.simulation is not None  # the shipped config runs the simulator
    assert s.simulation.drift.mode == "ramp"
    assert s.simulation.drift.level_at(0) == 0.0
    assert s.alerts.echo_plaintext is True


@pytest.mark.parametrize(
    ("overrides", "key", "expected"),
    [
        ({"extra": 1}, "extra", "unknown key"),
        ({"schedule": {"every": 3}}, "schedule.every", "unknown key"),
        ({"schedule": {"interval_seconds": 0}}, "schedule.interval_seconds", ">= 0.01"),
        ({"schedule": {"interval_seconds": "fast"}}, "schedule.interval_seconds", "a number"),
        ({"schedule": {"interval_seconds": True}}, "schedule.interval_seconds", "a number"),
        ({"simulation": {"n_samples": 0}}, "simulation.n_samples", ">= 1"),
        ({"simulation": {"n_samples": 10.5}}, "simulation.n_samples", "an integer"),
        ({"simulation": {"seed": -1}}, "simulation.seed", ">= 0"),
        ({"simulation": {"drift": 1.5}}, "simulation.drift", "[0, 1]"),
        ({"simulation": {"drift": -0.1}}, "simulation.drift", "[0, 1]"),
        (
            {"simulation": {"drift": {"mode": "ramp", "start": 0, "end": 2, "cycles": 5}}},
            "simulation.drift.end",
            "[0, 1]",
        ),
        (
            {"simulation": {"drift": {"mode": "ramp", "start": 0, "end": 1}}},
            "simulation.drift.cycles",
            "missing",
        ),
        ({"simulation": {"drift": {"mode": "zigzag"}}}, "simulation.drift.mode", "'ramp'"),
        (
            {"simulation": {"drift": {"mode": "constant", "level": 0.1, "x": 1}}},
            "simulation.drift.x",
            "unknown key",
        ),
        ({"thresholds": {"dir": 0}}, "thresholds.dir", "> 0"),
        ({"thresholds": {"dir": -0.8}}, "thresholds.dir", "> 0"),
        ({"thresholds": {"gap": 0}}, "thresholds.gap", "> 0"),
        ({"thresholds": {"gap": 1.5}}, "thresholds.gap", "<= 1"),
        ({"alerts": {"echo_plaintext": "yes"}}, "alerts.echo_plaintext", "true or false"),
        ({"logging": {"level": "LOUD"}}, "logging.level", "one of"),
        ({"database": {"url": "sqlite://"}}, "database.url", "in-memory"),
        ({"database": {"url": "not a url"}}, "database.url", "SQLAlchemy URL"),
        ({"keys": {"dir": ""}}, "keys.dir", "non-empty"),
        ({"keys": None}, "keys", "missing section"),
        ({"thresholds": {"alpha": 0}}, "thresholds.alpha", "strictly between 0 and 1"),
        ({"thresholds": {"alpha": 1}}, "thresholds.alpha", "strictly between 0 and 1"),
        ({"thresholds": {"min_group_size": 0}}, "thresholds.min_group_size", ">= 1"),
        ({"thresholds": {"min_group_share": 0.9}}, "thresholds.min_group_share", "<= 0.5"),
        ({"thresholds": {"shortfall": 0}}, "thresholds.shortfall", "> 0"),
        ({"thresholds": {"shortfall": "ten"}}, "thresholds.shortfall", "a number"),
        ({"thresholds": {"shortfall": 1e300}}, "thresholds.shortfall", "<= 1e+12"),
        ({"thresholds": {"shortfall": float("nan")}}, "thresholds.shortfall", "a number"),
        (
            {"measurement": {"protected_attributes": ["race"]}},
            "measurement.protected_attributes",
            "no column 'race'",
        ),
        (
            {"measurement": {"protected_attributes": ["gender", "age", "credit_score"]}},
            "measurement.protected_attributes",
            "a list of two",
        ),
        (
            {"measurement": {"protected_attributes": ["gender", "gender"]}},
            "measurement.protected_attributes",
            "two different",
        ),
        (
            {"measurement": {"protected_attributes": ["age"], "privileged_value": ">=25"}},
            "measurement.bands",
            "needs band edges",
        ),
        (
            {"measurement": {"protected_attributes": ["age"], "bands": {"age": [40, 25]}}},
            "measurement.bands.age",
            "increasing numbers",
        ),
        (
            {"measurement": {"bands": {"age": [25]}}},
            "measurement.bands.age",
            "not one of measurement.protected_attributes",
        ),
        (
            {"measurement": {"protected_attributes": ["age"], "bands": {"age": [25]}}},
            "measurement.privileged_value",
            "required when reference is 'privileged'",
        ),
        ({"measurement": {"reference": "lowest"}}, "measurement.reference", "'highest'"),
        ({"measurement": {"label": "defaulted"}}, "measurement.label", "no label column"),
        ({"measurement": {"confidence": 95}}, "measurement.confidence", "between 0 and 1"),
        (
            {"drift_detection": {"baseline_readings": 1}},
            "drift_detection.baseline_readings",
            ">= 2",
        ),
        ({"drift_detection": {"threshold": 0}}, "drift_detection.threshold", "> 0"),
        ({"drift_detection": {"window": 5}}, "drift_detection.window", "unknown key"),
        ({"alerts": {"close_after": 0}}, "alerts.close_after", ">= 1"),
        ({"leadership": {"lease_seconds": 0}}, "leadership.lease_seconds", ">= 1"),
        ({"leadership": {"lease_seconds": float("nan")}}, "leadership.lease_seconds", "a number"),
        ({"leadership": {"lease_seconds": 1e300}}, "leadership.lease_seconds", "<= 86400"),
        ({"leadership": {"lease_seconds": "5s"}}, "leadership.lease_seconds", "a number"),
        ({"leadership": {"renew_seconds": 1}}, "leadership.renew_seconds", "unknown key"),
        (
            {
                "simulation": {
                    "drift": {"mode": "ramp", "start": 0, "end": 1, "cycles": 5, "hold": -1}
                }
            },
            "simulation.drift.hold",
            ">= 0",
        ),
    ],
)
def test_bad_values_name_the_key(
    write_config: Callable[..., Path], overrides: dict[str, Any], key: str, expected: str
) -> None:
    path = write_config(overrides)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.key == key
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("database: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, env={})
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_settings(bad, env={})


def test_relative_paths_resolve_against_the_config_folder(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "sub").mkdir()
    path = write_config(name="sub/config.yaml")
    s = load_settings(path, env={})
    assert s.database.url == f"sqlite:///{tmp_path / 'sub' / 'var' / 'fairlens.db'}"
    assert s.keys.dir == tmp_path / "sub" / "var" / "keys"


def test_environment_overrides(write_config: Callable[..., Path], tmp_path: Path) -> None:
    env = {
        "FAIRLENS_DB_URL": f"sqlite:///{tmp_path}/other.db",
        "FAIRLENS_KEY_DIR": str(tmp_path / "k"),
    }
    s = load_settings(write_config(), env=env)
    assert s.database.url == f"sqlite:///{tmp_path}/other.db"
    assert s.keys.dir == tmp_path / "k"


def test_constant_drift_forms(write_config: Callable[..., Path]) -> None:
    short = load_settings(write_config({"simulation": {"drift": 0.25}}), env={})
    long = load_settings(
        write_config({"simulation": {"drift": {"mode": "constant", "level": 0.25}}}), env={}
    )
    assert short.simulation is not None
    assert long.simulation is not None
    assert short.simulation.drift == long.simulation.drift
    assert short.simulation.drift.level_at(10) == 0.25


def test_config_hash_tracks_rules_not_locations(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    base = load_settings(write_config(), env={})
    moved = load_settings(write_config(), env={"FAIRLENS_DB_URL": f"sqlite:///{tmp_path}/x.db"})
    stricter = load_settings(write_config({"thresholds": {"dir": 0.85}}), env={})
    assert base.config_hash() == moved.config_hash()
    assert base.config_hash() != stricter.config_hash()
    assert len(base.config_hash()) == 64


def test_measurement_defaults_and_intersections(write_config: Callable[..., Path]) -> None:
    default = load_settings(write_config(), env={})
    assert default.group_spec().attributes == ("gender",)
    assert (default.group_spec().privileged_value, default.group_spec().unprivileged_value) == (
        "Male",
        "Female",
    )
    both = load_settings(
        write_config(
            {
                "measurement": {
                    "protected_attributes": ["gender", "age"],
                    "bands": {"age": [25, 40]},
                    "reference": "highest",
                }
            }
        ),
        env={},
    )
    spec = both.group_spec()
    assert spec.attribute_name == "gender & age"
    assert spec.bands == {"age": (25.0, 40.0)}
    assert (spec.privileged_value, spec.unprivileged_value) == (None, None)
    assert both.config_hash() != default.config_hash()


def test_the_lease_defaults_to_three_intervals_and_at_least_five_seconds(
    write_config: Callable[..., Path],
) -> None:
    def lease(interval: float) -> float:
        path = write_config({"schedule": {"interval_seconds": interval}})
        return load_settings(path, env={}).leadership.lease_seconds

    assert lease(0.2) == 5.0
    assert lease(60) == 180.0
    assert lease(86400) == 86400.0
