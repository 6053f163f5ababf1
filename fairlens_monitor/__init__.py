"""FairLens Monitor: watches an automated decision system for fairness drift.

One cycle: simulate/read decisions → measure → detect → alert → log. The pure core
(``simulate``, ``metrics``, ``explain``, ``audit``) is re-exported here; the I/O edges are
``store``, ``crypto``, ``cycle``, ``daemon`` and ``cli``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "analyze_feature_impact": "fairlens_monitor.fairness.explain",
    "anonymize_data": "fairlens_monitor.security.pseudonyms",
    "generate_explanation": "fairlens_monitor.fairness.explain",
    "calculate_disparate_impact_ratio": "fairlens_monitor.fairness.metrics",
    "generate_loan_data": "fairlens_monitor.sources.simulator",
}


def __getattr__(name: str) -> Any:
    """Import the public functions on first use, so the CLI's read commands start fast."""
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fairlens_monitor' has no attribute {name!r}")


__all__ = [
    "__version__",
    "analyze_feature_impact",
    "anonymize_data",
    "calculate_disparate_impact_ratio",
    "generate_explanation",
    "generate_loan_data",
]
