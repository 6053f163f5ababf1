"""Group labels: the protected attribute columns of decision rows, as integer codes.

simulate → **measure** → detect → alert → log. Each row's group is a code into a short list
of label texts (a value, a band such as ``[25, 40)``, ``a & b`` for an intersection, or
``(missing)``), so rows are counted on integers — one ``bincount`` — and the label texts are
built once per distinct value, never per row. Cells become texts by the one rule of
:mod:`fairlens_monitor.fairness.cells`. Pure.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness.cells import numeric_cells, text_codes
from fairlens_monitor.fairness.metrics import numbers, require_columns
from fairlens_monitor.fairness.words import JOIN as JOIN  # re-exported
from fairlens_monitor.fairness.words import MISSING as MISSING  # re-exported
from fairlens_monitor.security.masking import looks_personal


def band_label(edges: Sequence[float], index: int) -> str:
    """Name band ``index`` of the bands cut at ``edges``: ``<25``, ``[25, 40)``, ``>=40``."""

    def fmt(x: float) -> str:
        return f"{x:g}"

    if index == 0:
        return f"<{fmt(edges[0])}"
    if index == len(edges):
        return f">={fmt(edges[-1])}"
    return f"[{fmt(edges[index - 1])}, {fmt(edges[index])})"


def attribute_codes(
    df: pd.DataFrame,
    attributes: Sequence[str],
    bands: Mapping[str, tuple[float, ...]],
    *,
    where: str = "the data",
    missing_values: Collection[str] = (),
) -> tuple[np.ndarray, list[str]]:
    """Give every row the code of its group: ``(codes, label of each code)``.

    Args:
        df: one row per decision.
        attributes: the attribute column(s); two form an intersection ``a & b``.
        bands: numeric cut points per banded column.
        where: how to name the data in errors.
        missing_values: texts that also mean "missing" (empty cells and NULLs always do).

    Returns:
        An int64 array aligned with ``df`` and the label of each code (some may not occur).

    Raises:
        DataError: a column is missing, a banded column is not numeric, or a value looks
            like personal data (an e-mail, SSN, card or phone number: never a group label).
    """
    require_columns(df, list(attributes), where=where)
    codes, names = np.zeros(len(df), dtype=np.int64), [""]
    for position, column in enumerate(attributes):
        part_codes, part_names = _column_codes(
            df[column], column, bands.get(column), where, missing_values
        )
        names = [f"{a}{JOIN}{b}" if position else b for a in names for b in part_names]
        codes = codes * len(part_names) + part_codes if position else part_codes
    return codes, names


def _column_codes(
    values: pd.Series,
    column: str,
    edges: tuple[float, ...] | None,
    where: str,
    missing_values: Collection[str] = (),
) -> tuple[np.ndarray, list[str]]:
    """Code each row of one attribute column: ``(codes, label of each code)``.

    Work is per distinct value (factorize), never per row in Python; missing values get the
    last code, labelled ``(missing)``.
    """
    if edges:
        numeric = numbers(
            numeric_cells(values, missing_values),
            f"column '{column}' of {where} is banded but",
            column,
        )
        index = np.searchsorted(np.asarray(edges, dtype=float), numeric, side="right")
        labels = [band_label(edges, i) for i in range(len(edges) + 1)]
        index[np.isnan(numeric)] = len(labels)
        return index.astype(np.int64), [*labels, MISSING]
    codes, labels = text_codes(values, missing_values)
    personal = sum(map(looks_personal, labels))
    if personal:  # group labels are stored and chained: an identifier must never be one
        raise DataError(
            f"attribute column '{column}' of {where} has {personal} distinct "
            "values that look like personal data (e-mail, SSN, card or phone "
            "numbers); a protected attribute must hold categories — check "
            "measurement.protected_attributes and the file's header row",
            column=column,
        )
    codes = np.where(codes < 0, len(labels), codes).astype(np.int64)
    return codes, [*labels, MISSING]
