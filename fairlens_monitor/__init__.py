"""FairLens Monitor: watches an automated decision system for fairness drift.

One cycle: simulate/read decisions → measure → detect → alert → log. The pure core
(``simulate``, ``metrics``, ``explain``, ``audit``) is re-exported here; the I/O edges are
``store``, ``crypto``, ``cycle``, ``daemon`` and ``cli``.
"""

from fairlens_monitor.explain import analyze_feature_impact, generate_explanation
from fairlens_monitor.metrics import calculate_disparate_impact_ratio
from fairlens_monitor.simulate import generate_loan_data

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "analyze_feature_impact",
    "calculate_disparate_impact_ratio",
    "generate_explanation",
    "generate_loan_data",
]
