"""Ranking metrics at a cutoff: NDCG, Recall, MRR and AP, batched over queries.

Every function takes a ranked list per query, already cut or padded to a common length
``L``: ``hits [Q, L]`` (is the item at rank i relevant) or ``gains [Q, L]`` (its gain),
padding False / 0. Definitions follow trec_eval, so results match ``pytrec_eval``:

* ``recall@k`` = relevant items in the top k / all relevant items;
* ``mrr@k`` = 1 / rank of the first relevant item in the top k, else 0;
* ``ap@k`` = Σ over relevant items in the top k of precision at their rank, divided by
  all relevant items (trec_eval's ``map_cut``);
* ``ndcg@k`` = DCG of the top k (``gain / log2(rank + 1)``) over the ideal DCG of the
  judged gains sorted descending and cut at k (trec_eval's ``ndcg_cut``).

A query with nothing relevant scores 0 on every metric.
"""

from __future__ import annotations

import numpy as np


def discounts(length: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for ranks 1..length: float64 ``[length]``."""
    return 1.0 / np.log2(np.arange(length, dtype=np.float64) + 2.0)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """``hits [Q, L]`` bool, ``n_relevant [Q]`` -> float64 ``[Q]``."""
    return _safe_divide(hits[:, :k].sum(axis=1), n_relevant)


def mrr_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """Reciprocal rank of the first hit in the top k: float64 ``[Q]``."""
    top = hits[:, :k]  # [Q, k']
    # A sentinel hit past the end: argmax is then defined for an empty ranking too.
    with_sentinel = np.concatenate([top, np.ones((top.shape[0], 1), dtype=bool)], axis=1)  # [Q, k' + 1]
    first = with_sentinel.argmax(axis=1)  # [Q]
    return np.where(first < top.shape[1], 1.0 / (first + 1.0), 0.0)


def average_precision_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """trec_eval ``map_cut_k`` per query: float64 ``[Q]``."""
    top = hits[:, :k].astype(np.float64)  # [Q, k]
    precision = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)  # [Q, k]
    return _safe_divide((precision * top).sum(axis=1), n_relevant)


def ideal_dcg(judged_gains: np.ndarray, k: int) -> np.ndarray:
    """``judged_gains [Q, R]`` (any order, 0 padding) -> ideal DCG@k, float64 ``[Q]``."""
    best = -np.sort(-np.asarray(judged_gains, dtype=np.float64), axis=1)[:, :k]  # [Q, min(R, k)]
    return best @ discounts(best.shape[1])


def ndcg_at_k(gains: np.ndarray, judged_gains: np.ndarray, k: int) -> np.ndarray:
    """``gains [Q, L]`` in ranked order, ``judged_gains [Q, R]`` -> float64 ``[Q]``."""
    top = np.asarray(gains, dtype=np.float64)[:, :k]  # [Q, k]
    return _safe_divide(top @ discounts(top.shape[1]), ideal_dcg(judged_gains, k))


def ranking_metrics(
    hits: np.ndarray,
    gains: np.ndarray,
    n_relevant: np.ndarray,
    judged_gains: np.ndarray,
    cutoffs: dict[str, int],
) -> dict[str, np.ndarray]:
    """``ndcg@c``, ``recall@c``, ``mrr@c`` and ``ap@c`` for each ``label: k`` in ``cutoffs``."""
    out: dict[str, np.ndarray] = {}
    for label, k in cutoffs.items():
        out[f"ndcg@{label}"] = ndcg_at_k(gains, judged_gains, k)
        out[f"recall@{label}"] = recall_at_k(hits, n_relevant, k)
        out[f"mrr@{label}"] = mrr_at_k(hits, k)
        out[f"ap@{label}"] = average_precision_at_k(hits, n_relevant, k)
    return out
