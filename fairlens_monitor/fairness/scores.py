"""Score metrics per group from a binned count table: AUC and the calibration gap.

read → counts → **measure** → detect → alert → log. Lenders monitor the model's score as
well as its decision. A score in [0, 1] enters the count table binned (``_score_bin``, with
the exact sum of the scores in ``_score_sum``; :func:`fairlens_monitor.fairness.counts.bin_scores`),
so the table stays small whatever the data's size; everything here is a vectorised function
of that table (``numpy.bincount`` over group × bin × label). Pure.

- **AUC** per group, the Mann–Whitney form on the bins: the share of (positive, negative)
  pairs whose positive has the higher bin, ties within a bin counting one half. With scores
  that fall on the bin grid this is scikit-learn's ``roc_auc_score`` exactly; otherwise it
  differs by at most half the share of pairs that share a bin.
- **Calibration gap** per group: mean score − observed label rate (exact: the sums are kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fairlens_monitor.fairness.counts import GROUP, LABEL, SCORE_BIN, SCORE_SUM, N


def score_metrics(counts: pd.DataFrame, bins: int) -> Mapping[str, dict[str, Any]]:
    """AUC, mean score, observed rate and calibration gap of every group.

    Args:
        counts: a count table with ``_group``, ``_label``, ``_score_bin``, ``_score_sum``
            and ``_n`` (see :func:`fairlens_monitor.fairness.counts.normalise`).
        bins: the number of score bins the table was counted with.

    Returns:
        Per group label: ``{"auc", "mean_score", "observed_rate", "calibration_gap"}``;
        ``auc`` is None for a group without both positive and negative labels.

    Raises:
        ValueError: the table has no label or no score columns.
    """
    missing = [c for c in (LABEL, SCORE_BIN, SCORE_SUM) if c not in counts.columns]
    if missing:
        raise ValueError(
            f"score metrics need the count table columns {', '.join(missing)} "
            "(a score and a label column)"
        )
    codes, uniques = pd.factorize(counts[GROUP], sort=True)
    k = len(uniques)
    n = counts[N].to_numpy(dtype=float)
    label = counts[LABEL].to_numpy(dtype=bool).astype(np.int64)
    cell = (codes * bins + counts[SCORE_BIN].to_numpy(dtype=np.int64)) * 2 + label
    cube = np.bincount(cell, weights=n, minlength=k * bins * 2).reshape(k, bins, 2)
    neg, pos = cube[:, :, 0], cube[:, :, 1]
    below = np.cumsum(neg, axis=1) - neg  # negatives in lower bins
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    wins = (pos * (below + neg / 2)).sum(axis=1)
    auc = np.divide(wins, pairs, out=np.full(k, np.nan), where=pairs > 0)
    total = np.bincount(codes, weights=n, minlength=k)
    mean = np.bincount(codes, weights=counts[SCORE_SUM].to_numpy(dtype=float), minlength=k) / total
    observed = pos.sum(axis=1) / total
    return {
        str(g): {
            "auc": None if np.isnan(auc[i]) else float(auc[i]),
            "mean_score": float(mean[i]),
            "observed_rate": float(observed[i]),
            "calibration_gap": float(mean[i] - observed[i]),
        }
        for i, g in enumerate(uniques)
    }
