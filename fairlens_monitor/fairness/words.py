"""The meaning of one cell's text, without pandas: a group label, or a decision word.

read → **counts** → measure → detect → alert → log. A column's cells are given their
meaning per distinct text by :mod:`fairlens_monitor.fairness.cells` (the ONE cell rule),
:mod:`.labels` (group labels) and :func:`fairlens_monitor.fairness.metrics.binary_outcome`
(decisions), all on pandas columns. ``measure`` counting a plain CSV on its parser's codes
(:mod:`.codecounts`) has only a few distinct texts, and gives each its meaning here, for a
text, by the same rule — so it need not import pandas (a fifth of its run time on a
10-million-row file). What this module cannot decide alone (a decision written as a number
such as ``1.0``) it leaves to ``binary_outcome``.

- a cell's text is the text with its surrounding whitespace removed; it is **missing**
  when that is empty or one of the user's ``missing_values`` (matched after their own
  whitespace is removed) — the rule of :func:`fairlens_monitor.fairness.cells.value_text`
  and ``text_codes`` for text;
- a group's label is that text, or :data:`MISSING`; two attributes' labels are joined by
  :data:`JOIN`;
- a decision word is one of :data:`TRUE_WORDS` / :data:`FALSE_WORDS` in any case.

Pure; imports nothing of this package.
"""

from __future__ import annotations

from collections.abc import Collection

MISSING = "(missing)"  # the label of a group whose attribute cell is missing
JOIN = " & "  # joins the labels of an intersection: "female & 25-40"
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "t"})  # decision words, lower case
FALSE_WORDS = frozenset({"0", "false", "no", "n", "f"})


def missing_set(missing_values: Collection[str]) -> frozenset[str]:
    """The listed missing texts as cells are compared with them (whitespace removed)."""
    return frozenset(v.strip() for v in missing_values)


def cell(text: str, missing: frozenset[str]) -> str | None:
    """A text cell's text under the cell rule, or None when it is missing.

    Args:
        text: the cell as written.
        missing: :func:`missing_set` of the user's missing values.
    """
    stripped = text.strip()
    return None if not stripped or stripped in missing else stripped


def group_label(text: str, missing: frozenset[str]) -> str:
    """The group label of one attribute cell: its text, or :data:`MISSING`."""
    return cell(text, missing) or MISSING


def decision_word(text: str, missing: frozenset[str]) -> bool | None:
    """The decision a word says: True or False, or None when this rule cannot tell.

    None for a missing cell (which ``binary_outcome`` refuses) and for any text that is not
    a decision word, such as ``1.0`` (which ``binary_outcome`` reads as a number).
    """
    value = cell(text, missing)
    word = None if value is None else value.lower()
    return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None


def missing_report(missing_values: Collection[str]) -> list[str]:
    """The texts treated as missing, as a report shows them: ``""`` (empty or whitespace
    only; NULL in Parquet and SQL) first, then the listed values in the given order."""
    return ["", *dict.fromkeys(v for v in missing_values if v.strip())]
