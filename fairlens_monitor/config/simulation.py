"""The drift schedule and per-cycle seeds: which drift level and seed each cycle simulates.

Pure and light (no pandas), so the config loader can validate a schedule without loading
the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


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


def scenario_seed(base_seed: int, cycle_index: int, scenario: str) -> int:
    """Derive the seed of one scenario of one cycle from the configured base seed.

    Independent streams per cycle and scenario, yet fully determined by the three inputs, so
    the stored seed (or these inputs) reproduce the reading.

    Args:
        base_seed: ``simulation.seed`` from the config.
        cycle_index: zero-based cycle index.
        scenario: ``"reference"`` or ``"monitored"``.

    Returns:
        A non-negative integer below 2**53 (exact in JSON and in the audit payload).
    """
    code = {"reference": 0, "monitored": 1}[scenario]
    state = np.random.SeedSequence([base_seed, cycle_index, code]).generate_state(2, np.uint32)
    return (int(state[0]) << 21) | (int(state[1]) & 0x1FFFFF)


def check_drift(drift_level: float) -> None:
    """Raise ValueError unless ``drift_level`` is a finite number in [0, 1]."""
    if not isinstance(drift_level, int | float) or isinstance(drift_level, bool):
        raise ValueError(f"drift_level must be a number in [0, 1], got {drift_level!r}")
    if not 0.0 <= float(drift_level) <= 1.0:  # also rejects NaN
        raise ValueError(f"drift_level must be in [0, 1], got {drift_level!r}")
