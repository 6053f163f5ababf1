"""Cell text: the ONE rule that turns a cell of any source into a label, or into missing.

read → **counts** → measure → detect → alert → log. A group label (and an outcome word)
must not depend on how a value was stored or guessed: a CSV read in chunks, a Parquet
column with nulls (floats once pandas fills them) and a SQL column whose values come back
typed must give the same labels. So every attribute, outcome and label cell is turned into
text here, once, by one rule:

- text is text: surrounding whitespace is removed and nothing else (``01`` and ``1``,
  ``1.0`` and ``1`` in a CSV are different labels);
- integers, and floats or decimals with an integral value, are written as integers
  (``1``, ``1.0`` and ``Decimal('1.00')`` from a Parquet or SQL column all give ``1``);
  other floats are written in their shortest round-trip form (``0.5``), infinities as
  ``inf``/``-inf``; booleans as ``True``/``False``; anything else by ``str()``;
- a cell is **missing** when it is NULL/None/NaN (Parquet, SQL), empty, or only
  whitespace — and when its text is one of the ``missing_values`` the user listed
  (``source.missing_values`` or ``measure --missing-value``; matched exactly, case
  included, after the whitespace is removed). ``NA``, ``N/A``, ``null`` and ``None`` are
  ordinary labels unless listed.

Work is per distinct value (``pandas.factorize``), never a Python loop over rows, except
for an object column mixing Python types (where ``1`` and ``True`` would share a slot).
Pure.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from fairlens_monitor.fairness.words import missing_report as missing_report  # re-exported
from fairlens_monitor.fairness.words import missing_set

# Kinds of pandas.api.types.infer_dtype whose distinct values can be converted one by one:
# within each, values that compare equal also have the same text under the rule above.
_HOMOGENEOUS = frozenset(
    {
        "string",
        "empty",
        "integer",
        "floating",
        "mixed-integer-float",
        "decimal",
        "boolean",
        "bytes",
        "datetime",
        "datetime64",
        "date",
        "timedelta",
        "timedelta64",
        "time",
        "period",
        "categorical",
    }
)


def value_text(value: Any) -> str | None:
    """Return one value's text under the module's rule, or None when it is missing.

    Args:
        value: a cell as a source delivered it (str, int, float, Decimal, bool, None, …).

    Returns:
        The label text (surrounding whitespace removed), or None for NULL/NaN, an empty
        or whitespace-only string.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        x = float(value)
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return str(int(x)) if x.is_integer() else str(value)
    if isinstance(value, Decimal):
        if value.is_nan():
            return None
        if value.is_infinite():
            return "inf" if value > 0 else "-inf"
        if value == value.to_integral_value():
            return str(int(value))
        return str(value.normalize())
    return str(value).strip() or None


def text_codes(
    values: pd.Series, missing_values: Collection[str] = ()
) -> tuple[np.ndarray, list[str]]:
    """Code a column by its cells' text: ``(codes, texts)``, code -1 for a missing cell.

    Values that differ but read the same (``1`` and ``1.0``, ``" a"`` and ``"a"``) share a
    code; codes follow the texts' first appearance (for a categorical of strings, the
    order of its categories that occur, whose codes already factorize the column).

    Args:
        values: one column as read (CSV text, Parquet or SQL typed values).
        missing_values: texts that also mean "missing" (after whitespace is removed).

    Returns:
        An int64 array aligned with ``values`` and the distinct texts it indexes.
    """
    missing = missing_set(missing_values)
    if isinstance(values.dtype, pd.CategoricalDtype):
        if pd.api.types.infer_dtype(values.cat.categories, skipna=True) == "string":
            return _category_codes(values, missing)  # e.g. a CSV column read as a dictionary
        values = values.astype(object)  # 1 and True would share a category: row by row
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in _HOMOGENEOUS:  # e.g. 1 and True in one object column: row by row
        values = pd.Series([value_text(v) for v in values], index=values.index, dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    texts: dict[str, int] = {}
    remap = np.full(len(uniques) + 1, -1, dtype=np.int64)  # the last slot: factorize's NA
    for i, value in enumerate(uniques):
        text = value_text(value)
        if text is not None and text not in missing:
            remap[i] = texts.setdefault(text, len(texts))
    return remap[codes], list(texts)


def _category_codes(values: pd.Series, missing: frozenset[str]) -> tuple[np.ndarray, list[str]]:
    """:func:`text_codes` of a categorical of strings: its codes are the factorization, so
    only the categories that occur are turned into texts (in the categories' order)."""
    categories = values.cat.categories
    codes = values.cat.codes.to_numpy()  # int8/16/32, -1 for a missing cell
    present = np.zeros(len(categories) + 1, dtype=bool)
    present[codes] = True  # -1 marks the last slot, which is not a category
    texts: dict[str, int] = {}
    remap = np.full(len(categories) + 1, -1, dtype=np.int64)  # the last slot: -1 stays -1
    for i in np.flatnonzero(present[:-1]):
        text = value_text(categories[i])
        if text is not None and text not in missing:
            remap[i] = texts.setdefault(text, len(texts))
    return remap[codes], list(texts)


def cell_text(values: pd.Series, missing_values: Collection[str] = ()) -> pd.Series:
    """Turn a column of any dtype into label text, missing cells as None.

    Args:
        values: one column as read (CSV text, Parquet or SQL typed values).
        missing_values: texts that also mean "missing" (after whitespace is removed).

    Returns:
        An object Series aligned with ``values``: str labels, None where missing.
    """
    codes, texts = text_codes(values, missing_values)
    lookup = np.array([*texts, None], dtype=object)
    return pd.Series(lookup[codes], index=values.index, dtype=object)


def numeric_cells(values: pd.Series, missing_values: Collection[str] = ()) -> pd.Series:
    """The cells of a numeric column (a banded attribute, the stratum) ready to parse.

    A typed numeric column is returned as it is (its only missing value is NaN); text is
    coded as by :func:`cell_text` (as a categorical of the distinct texts), so an empty
    cell or a listed missing value becomes missing and anything else must then parse as a
    number.
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values
    codes, texts = text_codes(values, missing_values)  # categorical: parsed per distinct text
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=pd.Index(texts, dtype=object)),
        index=values.index,
    )
