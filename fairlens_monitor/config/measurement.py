"""Validate the ``measurement`` section: which groups a reading compares, against which reference.

Part of the config boundary (:mod:`fairlens_monitor.config.settings`). With the simulator the
columns are the simulator's own; with a file or SQL source they are the source's columns, checked
against its outcome and timestamp columns here and against the data itself when it is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fairlens_monitor.config.checks import mapping, number, open_unit, shown
from fairlens_monitor.config.source import SourceSettings
from fairlens_monitor.errors import ConfigError

# Columns of the built-in simulator that can be measured (see simulate.py).
SIMULATOR_ATTRIBUTES = ("gender", "age", "credit_score")
SIMULATOR_LABELS = ("repaid",)


@dataclass(frozen=True)
class MeasurementSettings:
    """Which groups are compared, against which reference, and the optional true label."""

    protected_attributes: tuple[str, ...] = ("gender",)
    bands: tuple[tuple[str, tuple[float, ...]], ...] = ()
    reference: str = "privileged"
    privileged_value: str | None = "Male"
    unprivileged_value: str | None = "Female"
    label: str | None = "repaid"
    confidence: float = 0.95
    score: str | None = None
    score_bins: int = 100


def parse_measurement(section: Mapping[str, Any], source: SourceSettings) -> MeasurementSettings:
    """Validate the ``measurement`` section against the source's columns.

    Args:
        section: the section's keys (empty when absent: the gender demo defaults).
        source: the validated source (the simulator restricts the columns and label).

    Returns:
        The validated measurement settings.

    Raises:
        ConfigError: a key is malformed or names a column the source cannot provide.
    """
    key = "measurement.protected_attributes"
    simulated = source.kind == "simulator"
    attributes = section.get("protected_attributes", ["gender"])
    if isinstance(attributes, str):
        attributes = [attributes]
    if (
        not isinstance(attributes, list)
        or not 1 <= len(attributes) <= 2
        or any(not isinstance(a, str) or not a.strip() for a in attributes)
        or len(set(attributes)) != len(attributes)
    ):
        raise ConfigError(
            key,
            f"expected one column or a list of two different columns "
            f"(an intersection), got {shown(attributes)}",
        )
    for name in attributes:
        if simulated and name not in SIMULATOR_ATTRIBUTES:
            raise ConfigError(
                key,
                f"the simulator has no column {shown(name)}; choose from "
                f"{', '.join(SIMULATOR_ATTRIBUTES)}",
            )
        if name in (source.outcome, source.timestamp) and not simulated:
            raise ConfigError(key, f"{shown(name)} is the source's outcome or timestamp column")
    bands = _bands(section.get("bands") or {}, attributes)
    for name in attributes:
        if simulated and name in ("age", "credit_score") and name not in dict(bands):
            raise ConfigError(
                "measurement.bands",
                f"numeric column {shown(name)} needs band edges, e.g. bands: {{{name}: [25]}}",
            )
    reference = section.get("reference", "privileged")
    if reference not in ("privileged", "highest"):
        raise ConfigError(
            "measurement.reference", f"expected 'privileged' or 'highest', got {shown(reference)}"
        )
    gender = list(attributes) == ["gender"]  # the demo defaults name gender's values
    privileged = _group_value(section, "privileged_value", "Male" if gender else None)
    if reference == "privileged" and privileged is None:
        raise ConfigError("measurement.privileged_value", "required when reference is 'privileged'")
    label = section.get("label", "repaid" if simulated else None)
    if label is not None and simulated and label not in SIMULATOR_LABELS:
        raise ConfigError(
            "measurement.label",
            f"the simulator has no label column {shown(label)}; "
            f"use {', '.join(SIMULATOR_LABELS)} or null",
        )
    if label is not None and (
        not isinstance(label, str) or label in attributes or label in source.columns.values()
    ):
        raise ConfigError(
            "measurement.label",
            f"expected the ground-truth column (e.g. "
            f"repaid), different from the other columns, got {shown(label)}",
        )
    score = section.get("score")
    if score is not None:
        if simulated:
            raise ConfigError(
                "measurement.score",
                "the simulator has no score column; use a "
                "file or sql source, or drop measurement.score",
            )
        if (
            not isinstance(score, str)
            or not score.strip()
            or score in attributes
            or score == label
            or score in source.columns.values()
        ):
            raise ConfigError(
                "measurement.score",
                f"expected the model score column (numbers "
                f"in [0, 1]), different from the other columns, got {shown(score)}",
            )
        if label is None:
            raise ConfigError(
                "measurement.score",
                "AUC and calibration compare the score "
                "with the true outcome: set measurement.label too",
            )
    return MeasurementSettings(
        protected_attributes=tuple(attributes),
        bands=bands,
        reference=reference,
        privileged_value=privileged if reference == "privileged" else None,
        unprivileged_value=_group_value(
            section, "unprivileged_value", "Female" if gender else None
        ),
        label=label,
        confidence=open_unit(section, "measurement.confidence", default=0.95),
        score=score,
        score_bins=int(
            number(
                section,
                "measurement.score_bins",
                default=100,
                integer=True,
                minimum=2,
                maximum=10_000,
            )
        ),
    )


def _bands(value: Any, attributes: list[str]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    key = "measurement.bands"
    spec = mapping(value, key)
    out = []
    for column, edges in spec.items():
        if column not in attributes:
            raise ConfigError(f"{key}.{column}", "not one of measurement.protected_attributes")
        if (
            not isinstance(edges, list)
            or not edges
            or any(isinstance(e, bool) or not isinstance(e, int | float) for e in edges)
            or sorted(set(edges)) != edges
        ):
            raise ConfigError(
                f"{key}.{column}", f"expected increasing numbers, e.g. [25, 40], got {shown(edges)}"
            )
        out.append((str(column), tuple(float(e) for e in edges)))
    return tuple(out)


def _group_value(section: Mapping[str, Any], name: str, default: str | None) -> str | None:
    value = section.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"measurement.{name}", f"expected a group label, got {shown(value)}")
    return str(value)
