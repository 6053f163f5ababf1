"""Helpers for the Alembic revision scripts in ``migrations/versions/`` (schema edge).

Revision files are not an importable package; a revision that builds on an earlier one's view
bodies loads that file by path with :func:`load_sibling`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load_sibling(revision_file: str, name: str) -> ModuleType:
    """Load the revision script ``name``.py that sits beside ``revision_file``.

    Args:
        revision_file: ``__file__`` of the calling revision.
        name: the sibling's file name without ``.py`` (e.g. ``0007_risk_level``).

    Returns:
        The loaded module.

    Raises:
        ImportError: there is no such file.
    """
    path = Path(revision_file).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_fairlens_{name}", path)
    if spec is None or spec.loader is None or not path.exists():
        raise ImportError(f"cannot load {name}.py beside {revision_file}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
