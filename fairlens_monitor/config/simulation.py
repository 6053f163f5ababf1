"""The simulator's drift schedule: which drift level each cycle simulates.

Config, not detection (drift *detection* is :mod:`fairlens_monitor.monitoring.drift`). Pure
and light (no numpy, no pandas), so the config loader validates a schedule without loading
the simulator; the per-cycle seeds are :func:`fairlens_monitor.sources.simulator.scenario_seed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DriftSchedule:
    """How the monitored scenario's drift level moves from cycle to cycle.

    ``constant``: every cycle uses ``start``. ``ramp``: the first ``hold`` cycles use
    ``start`` (a quiet baseline), then cycle ``hold`` uses ``start``, cycle
    ``hold + cycles - 1`` uses ``end``, linearly in between, and later cycles stay at ``end``.
    """

    mode: Literal["constant", "ramp"]
    start: float
    end: float = 0.0
    cycles: int = 1
    hold: int = 0

    def __post_init__(self) -> None:
        check_drift(self.start)
        check_drift(self.end)
        if self.cycles < 1:
            raise ValueError(f"cycles must be at least 1, got {self.cycles}")
        if self.hold < 0:
            raise ValueError(f"hold must be at least 0, got {self.hold}")
        if self.mode not in ("constant", "ramp"):
            raise ValueError(f"mode must be 'constant' or 'ramp', got {self.mode!r}")

    def level_at(self, cycle_index: int) -> float:
        """Return the drift level of the cycle with this zero-based index.

        Args:
            cycle_index: 0 for the first cycle ever run on a database, then 1, 2, ...

        Returns:
            A drift level in [0, 1].

        Raises:
            ValueError: if ``cycle_index`` is negative.
        """
        if cycle_index < 0:
            raise ValueError(f"cycle_index must be >= 0, got {cycle_index}")
        if self.mode == "constant" or self.cycles == 1:
            return self.start if self.mode == "constant" else self.end
        step = min(max(cycle_index - self.hold, 0), self.cycles - 1)
        fraction = step / (self.cycles - 1)
        return self.start + (self.end - self.start) * fraction


def check_drift(drift_level: float) -> None:
    """Raise ValueError unless ``drift_level`` is a finite number in [0, 1]."""
    if not isinstance(drift_level, int | float) or isinstance(drift_level, bool):
        raise ValueError(f"drift_level must be a number in [0, 1], got {drift_level!r}")
    if not 0.0 <= float(drift_level) <= 1.0:  # also rejects NaN
        raise ValueError(f"drift_level must be in [0, 1], got {drift_level!r}")
