"""FairLens Monitor: watches an automated decision system for fairness drift.

One cycle: read (or simulate) decisions → measure → detect → alert → log to a hash-chained,
encrypted audit trail. This package root exports the names below, each imported on first use
(importing the package itself loads no third-party module, so the command line stays quick):

- ``generate_loan_data`` (``sources.simulator``): a simulated batch of loan decisions;
- ``calculate_disparate_impact_ratio`` (``fairness.metrics``): the DIR of one batch;
- ``analyze_feature_impact`` and ``generate_explanation`` (``fairness.explain``): which
  features separate the groups, and the sentence an alert carries;
- ``anonymize_data`` (``security.pseudonyms``): keyed pseudonyms for identifying columns;
- ``Settings`` and ``load_settings`` (``config.settings``): a validated ``config.yaml``.

The folders: ``fairness`` and ``monitoring`` (pure statistics), ``config``, ``sources``,
``security``, ``audit``, ``store`` (database and migrations), ``ops`` (the cycle, the
daemon and the other operations), ``cli`` and ``viewer`` (the command line and the trend
page); each folder's docstring says what it may import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real names for type checkers; at run time __getattr__ imports them
    from fairlens_monitor.config.settings import Settings, load_settings
    from fairlens_monitor.fairness.explain import analyze_feature_impact, generate_explanation
    from fairlens_monitor.fairness.metrics import calculate_disparate_impact_ratio
    from fairlens_monitor.security.pseudonyms import anonymize_data
    from fairlens_monitor.sources.simulator import generate_loan_data

__version__ = "0.2.0"

_EXPORTS = {
    "Settings": "fairlens_monitor.config.settings",
    "load_settings": "fairlens_monitor.config.settings",
    "analyze_feature_impact": "fairlens_monitor.fairness.explain",
    "anonymize_data": "fairlens_monitor.security.pseudonyms",
    "generate_explanation": "fairlens_monitor.fairness.explain",
    "calculate_disparate_impact_ratio": "fairlens_monitor.fairness.metrics",
    "generate_loan_data": "fairlens_monitor.sources.simulator",
}


def __getattr__(name: str) -> Any:
    """Import an exported name on first use (the package import itself stays cheap).

    Raises:
        AttributeError: ``name`` is not exported here.
    """
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fairlens_monitor' has no attribute {name!r}")


__all__ = [
    "Settings",
    "__version__",
    "analyze_feature_impact",
    "anonymize_data",
    "calculate_disparate_impact_ratio",
    "generate_explanation",
    "generate_loan_data",
    "load_settings",
]
