"""Settings of the drift detector: the ``drift_detection`` section of the config.

The config boundary builds these from the file; :mod:`fairlens_monitor.monitoring.drift`
runs the CUSUM chart with them. Here, not in the detector, so the config layer never
imports the monitoring layer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CusumSettings:
    """Baseline length, slack (k) and decision threshold (h) of the chart."""

    baseline_readings: int = 30
    slack: float = 0.75
    threshold: float = 8.0

    @property
    def cap(self) -> float:
        """Upper bound of the statistic: twice the threshold."""
        return 2 * self.threshold
