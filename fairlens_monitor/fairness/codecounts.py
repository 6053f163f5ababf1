"""Counting dictionary-coded batches: a count table without a frame, a row text or a row loop.

read → **counts** → measure → detect → alert → log. A CSV parser that dictionary-encodes the
group, decision and label columns hands over, per batch, each column's few distinct texts
(its dictionary) and one small integer per row (its index into them). A batch's rows are
counted by one ``bincount`` over a mixed-radix key of those indices; the few cells that occur
are added to the running counts under their texts as written, never under a batch's own
indices (needing numpy only). At the end every distinct text is given its meaning — the
group label, the decision, the ground truth — and the cells are added up under it. So two
batches whose dictionaries differ (another order, a value new in the later one, a blank or a
listed missing value) still add up into one cell per group: the same group is the same label
text however its cells were spelled (``" a"`` and ``"a"``; ``""`` and ``" "`` both missing).

Two ends, one count. :func:`count_table` gives each distinct text its meaning by the very
functions that count a frame (:func:`fairlens_monitor.fairness.labels.attribute_codes`,
:func:`fairlens_monitor.fairness.metrics.binary_outcome`), once per text, so the table is
exactly the one :func:`fairlens_monitor.fairness.counts.normalise` and ``combine`` give.
:func:`group_table` gives ``measure`` the per-group table those make, without pandas: each
text's meaning by the same cell rule (:mod:`fairlens_monitor.fairness.words`), and the
pandas way only for a decision text that is not a word (``1.0``). A value either rejects
(a missing or non-binary decision, a label that looks like personal data) raises
:class:`NeedsRowDetail`: the caller counts the file the chunked way, whose error names the
rows. Banded attributes and scores are not coded here. Pure; pandas is imported only by
:func:`count_table` and that fall-back.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import numpy as np

from fairlens_monitor.errors import DataError
from fairlens_monitor.fairness import words
from fairlens_monitor.fairness.groups import GroupSpec, GroupTable, tally
from fairlens_monitor.security.masking import looks_personal

if TYPE_CHECKING:  # the count table is a frame; the group table and the counting need numpy
    import pandas as pd

BINCOUNT_CELLS = 1 << 20  # a key space larger than this is counted with np.unique instead


class NeedsRowDetail(Exception):
    """A value these counts cannot take (missing or non-binary decision, personal-looking
    group): count the file chunk by chunk, whose error names the rows."""


class CodedCounts:
    """Running counts of one stream of coded batches (one per reading thread), by raw text.

    The columns are the spec's attributes, then the decision, then the label if any; each
    batch gives, per column, its dictionary and the rows' indices into it. Rows are kept
    under the tuple of their cells' texts as written; :func:`count_table` gives each text its
    meaning once, at the end (so adding a batch needs numpy only, no pandas).
    """

    def __init__(self, columns: Sequence[str]) -> None:
        """Start empty, counting ``columns`` (attributes, decision, label: in that order)."""
        self.columns = list(columns)
        self.rows = 0
        self.cells: dict[tuple[str, ...], int] = {}

    def add(self, dictionaries: Sequence[Sequence[str]], indices: Sequence[np.ndarray]) -> None:
        """Count one batch.

        Args:
            dictionaries: per column (in :attr:`columns` order), its distinct texts.
            indices: per column, each row's index into its dictionary (non-negative ints,
                all of one length).

        Raises:
            NeedsRowDetail: the columns' distinct values are too many to key in 64 bits.
        """
        sizes = [max(len(d), 1) for d in dictionaries]
        if math.prod(sizes) >= 1 << 62:  # the mixed-radix key would overflow int64
            raise NeedsRowDetail
        key = np.asarray(indices[0], dtype=np.int64)
        for index, size in zip(indices[1:], sizes[1:], strict=True):
            key = key * size + index
        if math.prod(sizes) <= BINCOUNT_CELLS:
            n = np.bincount(key, minlength=math.prod(sizes))
            occurring = np.flatnonzero(n)
            cells: list[int] = occurring.tolist()
            counts: list[int] = n[occurring].tolist()
        else:
            unique, tally = np.unique(key, return_counts=True)
            cells, counts = unique.tolist(), tally.tolist()
        for cell, count in zip(cells, counts, strict=True):
            texts: list[str] = []
            rest = int(cell)
            for size, dictionary in zip(reversed(sizes), reversed(dictionaries), strict=True):
                texts.append(dictionary[rest % size])
                rest //= size
            raw = tuple(reversed(texts))
            self.cells[raw] = self.cells.get(raw, 0) + count
        self.rows += len(key)


def count_table(
    parts: Sequence[CodedCounts],
    spec: GroupSpec,
    outcome: str,
    label: str | None = None,
    *,
    missing_values: Collection[str] = (),
) -> pd.DataFrame:
    """The count table of all the rows the parts counted, as ``normalise`` + ``combine``.

    Args:
        parts: counts of disjoint rows of one file (e.g. one per byte range), each over
            the columns ``[*spec.attributes, outcome, label]`` (label only if given).
        spec: the attribute column(s) forming groups (no bands: those are not coded).
        outcome: the decision column.
        label: the optional ground-truth column.
        missing_values: texts that also mean "missing".

    Returns:
        Columns ``_group``, ``_approved``, ``_label`` (with a label) and ``_n``, one row per
        occurring combination, sorted.

    Raises:
        NeedsRowDetail: a value the chunked count rejects (a missing or non-binary decision
            or label, a group that looks like personal data), or no rows at all.
        ValueError: an attribute is banded.
    """
    import pandas as pd

    from fairlens_monitor.fairness.counts import APPROVED, GROUP, LABEL, N, combine

    raw = _raw_cells(parts, spec)
    width = len(spec.attributes)
    columns = [*spec.attributes, outcome, *([label] if label else [])]
    meanings = [
        _meanings(column, sorted({key[i] for key in raw}), i, width, missing_values)
        for i, column in enumerate(columns)
    ]
    cells: dict[tuple[str, bool, bool], int] = {}
    for key, count in raw.items():
        meaning = [m[text] for m, text in zip(meanings, key, strict=True)]
        approved, truth = meaning[width], meaning[width + 1] if label else False
        if not isinstance(approved, bool) or not isinstance(truth, bool):
            raise NeedsRowDetail  # a missing or non-binary decision or label
        cell = (words.JOIN.join(str(m) for m in meaning[:width]), approved, truth)
        cells[cell] = cells.get(cell, 0) + count
    keys = list(cells)
    table = {
        GROUP: np.array([k[0] for k in keys], dtype=object),
        APPROVED: np.array([k[1] for k in keys], dtype=bool),
        **({LABEL: np.array([k[2] for k in keys], dtype=bool)} if label else {}),
        N: np.array([cells[k] for k in keys], dtype=float),
    }
    return combine([pd.DataFrame(table)])


def group_table(
    parts: Sequence[CodedCounts],
    spec: GroupSpec,
    outcome: str,
    label: str | None = None,
    *,
    missing_values: Collection[str] = (),
) -> GroupTable:
    """The per-group table of all the rows the parts counted, as ``count_table`` then
    :func:`fairlens_monitor.fairness.counts.group_table` give it, without pandas.

    Each distinct text gets its meaning by :mod:`fairlens_monitor.fairness.words` (the
    cell rule for text). A decision or label text that is not a decision word (``1.0``, a
    missing cell) is left to ``binary_outcome``: the table is then made the pandas way, by
    :func:`count_table`, which accepts it or raises.

    Args:
        parts: as for :func:`count_table`.
        spec: the attribute column(s) forming groups (no bands).
        outcome: the decision column.
        label: the optional ground-truth column.
        missing_values: texts that also mean "missing".

    Returns:
        Applicants and approvals (with a label: positives, true and false positives) per
        group, groups in sorted label order.

    Raises:
        NeedsRowDetail: as :func:`count_table` (a refused value, or no rows at all).
        ValueError: an attribute is banded.
    """
    raw = _raw_cells(parts, spec)
    width = len(spec.attributes)
    missing = words.missing_set(missing_values)
    groups: dict[tuple[str, ...], str] = {}
    cells: dict[tuple[str, bool, bool], int] = {}
    for key, count in raw.items():
        meaning = [words.decision_word(text, missing) for text in key[width:]]
        if None in meaning:  # a number such as 1.0, or missing: binary_outcome decides
            return _counted_table(parts, spec, outcome, label, missing_values)
        if key[:width] not in groups:
            labels = [words.group_label(text, missing) for text in key[:width]]
            if any(t != words.MISSING and looks_personal(t) for t in labels):
                raise NeedsRowDetail  # attribute_codes refuses it, naming the column
            groups[key[:width]] = words.JOIN.join(labels)
        cell = (groups[key[:width]], bool(meaning[0]), bool(label) and bool(meaning[-1]))
        cells[cell] = cells.get(cell, 0) + count
    names = tuple(sorted({group for group, _, _ in cells}))
    index = {name: i for i, name in enumerate(names)}
    keys = list(cells)
    return tally(
        np.array([index[k[0]] for k in keys], dtype=np.intp),
        names,
        np.array([k[1] for k in keys], dtype=bool),
        np.array([k[2] for k in keys], dtype=bool) if label else None,
        weights=np.array([cells[k] for k in keys], dtype=float),
    )


def _counted_table(
    parts: Sequence[CodedCounts],
    spec: GroupSpec,
    outcome: str,
    label: str | None,
    missing_values: Collection[str],
) -> GroupTable:
    """:func:`group_table` the pandas way: the count table, then its groups."""
    from fairlens_monitor.fairness.counts import group_table as table_of_counts

    return table_of_counts(count_table(parts, spec, outcome, label, missing_values=missing_values))


def _raw_cells(parts: Sequence[CodedCounts], spec: GroupSpec) -> dict[tuple[str, ...], int]:
    """The parts' counts added up by raw texts.

    Raises:
        NeedsRowDetail: no rows at all.
        ValueError: an attribute is banded.
    """
    if any(a in spec.bands for a in spec.attributes):
        raise ValueError("a banded attribute is not counted on its texts' codes")
    raw: dict[tuple[str, ...], int] = {}
    for part in parts:
        for key, count in part.cells.items():
            raw[key] = raw.get(key, 0) + count
    if not raw:
        raise NeedsRowDetail
    return raw


def _meanings(
    column: str, texts: list[str], position: int, width: int, missing_values: Collection[str]
) -> dict[str, str | bool | None]:
    """Each distinct text's meaning in one column: a group label (attributes, the first
    ``width`` columns), or a decision / ground truth (None: binary_outcome refuses it)."""
    import pandas as pd

    from fairlens_monitor.fairness.labels import attribute_codes

    if position < width:
        try:
            codes, names = attribute_codes(
                pd.DataFrame({column: pd.Series(texts, dtype=object)}),
                [column],
                {},
                missing_values=missing_values,
            )
        except DataError:
            raise NeedsRowDetail from None  # e.g. a group that looks like an e-mail
        return dict(zip(texts, (names[c] for c in codes.tolist()), strict=True))
    role = "outcome" if position == width else "label"
    return {text: _decision(text, column, role, missing_values) for text in texts}


def _decision(text: str, column: str, role: str, missing_values: Collection[str]) -> bool | None:
    """One text of a decision or label column as binary_outcome reads it (None: refused)."""
    import pandas as pd

    from fairlens_monitor.fairness.metrics import binary_outcome

    try:
        values = binary_outcome(
            pd.Series([text], dtype=object), column, role, missing_values=missing_values
        )
    except DataError:
        return None
    return bool(values[0])
