"""Shared fixtures: a config written to tmp_path, a fixed clock, a migrated SQLite file."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fairlens_monitor.config import Settings, load_settings

BASE_CONFIG: dict[str, Any] = {
    "database": {"url": "sqlite:///var/fairlens.db"},
    "schedule": {"interval_seconds": 0.2, "misfire_grace_seconds": 5},
    "simulation": {"n_samples": 400, "seed": 7, "drift": 0.0},
    "thresholds": {"dir": 0.8, "gap": 0.2},
    "keys": {"dir": "var/keys"},
    "alerts": {"echo_plaintext": False},
}


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base``."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a config file (BASE_CONFIG deep-merged with overrides) and return its path."""

    def write(overrides: dict[str, Any] | None = None, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(merge(BASE_CONFIG, overrides or {})))
        return path

    return write


@pytest.fixture
def make_settings(write_config: Callable[..., Path]) -> Callable[..., Settings]:
    """Build validated settings from BASE_CONFIG plus overrides, via a real file."""

    def build(overrides: dict[str, Any] | None = None) -> Settings:
        return load_settings(write_config(overrides), env={})

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def clock() -> Iterator[Callable[[], datetime]]:
    """A clock that starts at 2026-01-01T00:00Z and advances one second per call."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ticks = itertools.count()
    return lambda: start + timedelta(seconds=next(ticks))
