"""Queries that tie every catalog row, and so rank nothing: they score as the empty query.

A query whose scores are equal on every catalog row carries no ranking at all; the tie
rule (equal scores go to the lower catalog row) would hand it the lowest rows, so its
reward would be an accident of catalog order. That is a reward-hacking route for RL: a
junk answer that BM25 matches to no catalog word ties every row and scores up to the
NDCG of whatever pool items sit in the low rows. Such a query scores 0, as the empty
query does (spec §2).

Lexical scores are tested directly: a score row with max == min. A dense query ties
every row when its embedding has no component along the directions in which the
catalog rows differ (``q · (x_n - x_0) = 0`` for every n): an all-zero embedding always,
any embedding when every catalog row is the same vector, and in a rank-deficient
catalog the embeddings orthogonal to it. "No component" allows float32 noise: a
component below ``NOISE`` of the embedding's norm, whose scores differ only in rounding.
A catalog of one row cannot tie: every query ranks it first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ospo_fast.ops.device import is_tensor

# Relative size of a component (of the corpus spread, or of a query) that counts as none.
NOISE = 1e-6
# Rows per float64 block of the spread's Gram matrix ([rows, d] at a time).
_BLOCK_ROWS = 8192


def can_tie(n_items: int) -> bool:
    """Ties need two catalog rows: with one, every query ranks it first, as it should."""
    return n_items >= 2


def lexical_ties(scores: np.ndarray) -> np.ndarray:
    """bool ``[Q]``: rows of ``scores [Q, N]`` (N >= 2) equal on every catalog row."""
    return scores.max(axis=1) == scores.min(axis=1)


def _directions(rows: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Orthonormal float64 ``[d, r]`` basis of the span of ``rows [M, d] - origin [d]``, from
    the eigenvectors of their Gram matrix whose singular value is at least ``NOISE`` of
    the largest (the Gram matrix squares them, hence ``NOISE**2``)."""
    dim = rows.shape[1]
    gram = np.zeros((dim, dim))
    for start in range(0, rows.shape[0], _BLOCK_ROWS):
        block = rows[start : start + _BLOCK_ROWS].astype(np.float64) - origin  # [rows, d]
        gram += block.T @ block
    eigenvalues, vectors = np.linalg.eigh(gram)
    return vectors[:, eigenvalues > NOISE**2 * eigenvalues.max(initial=0.0)]


def spread_directions(corpus: np.ndarray) -> np.ndarray | None:
    """The directions in which the rows of ``corpus [N, d]`` differ, as an orthonormal float64
    ``[d, r]`` basis; None when they differ in every direction (r = d: only a zero query ties).

    A catalog of a few thousand varied items spans every direction, and its first 4 d + 1
    rows already show it (more rows only add directions), so the full pass runs only for
    small or degenerate catalogs.
    """
    dim = corpus.shape[1]
    origin = corpus[0].astype(np.float64)
    directions = _directions(corpus[1 : 4 * dim + 1], origin)
    if directions.shape[1] < dim and corpus.shape[0] > 4 * dim + 1:
        directions = _directions(corpus[1:], origin)
    return None if directions.shape[1] == dim else directions


def dense_ties(queries: Any, directions: np.ndarray | None) -> Any:
    """bool ``[Q]``: queries ``[Q, d]`` (numpy, or a tensor: the mask is then a tensor on its
    device) with no component along ``directions`` (:func:`spread_directions`)."""
    if is_tensor(queries):
        import torch

        q = queries.to(torch.float64)
        norms = q.norm(dim=1)
        if directions is None:
            return norms == 0
        along = (q @ torch.as_tensor(directions, device=q.device)).norm(dim=1)
        return along <= NOISE * norms
    q = np.asarray(queries, dtype=np.float64)
    norms = np.linalg.norm(q, axis=1)
    if directions is None:
        return norms == 0
    return np.linalg.norm(q @ directions, axis=1) <= NOISE * norms
