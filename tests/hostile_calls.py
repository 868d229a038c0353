"""Native calls that need more than one binding call, as functions the child process of
:mod:`hostile_isolation` can run by name (its results must pickle; a PoolRanking does not)."""

from __future__ import annotations

import numpy as np

from ospo_fast.ops.native import core


def pool_ranking_ndcg(
    pool_scores: np.ndarray, pool_items: np.ndarray, pool_relevance: np.ndarray, gain: str, n_items: int, k: int,
    tile_scores: np.ndarray, tile_start: int,
) -> np.ndarray:
    """``core.PoolRanking`` fed one tile: NDCG@pool float64 ``[C]``."""
    ranking = core.PoolRanking(pool_scores, pool_items, pool_relevance, gain, n_items, k)
    ranking.add_tile(tile_scores, tile_start)
    return ranking.ndcg()


def screened_ndcg(
    corpus: np.ndarray, queries: np.ndarray, pool_items: np.ndarray, pool_relevance: np.ndarray, k: int, gain: str
) -> np.ndarray | None:
    """``core.ScreenedCorpus(corpus).pool_ndcg(...)``: float64 ``[C]``, None where the CPU lacks AVX512-BF16."""
    return core.ScreenedCorpus(corpus).pool_ndcg(queries, pool_items, pool_relevance, k, gain)


def pack(token_ids: np.ndarray, token_offsets: np.ndarray, segment_offsets: np.ndarray, coalition_offsets: np.ndarray,
         coalitions: np.ndarray, subsets: bool) -> tuple[np.ndarray, np.ndarray]:
    """The packing op on CSR arrays (it takes the segment tokens as one SegmentTokens)."""
    from ospo_fast.ops import packing

    tokens = packing.SegmentTokens(token_ids, token_offsets, segment_offsets)
    op = packing.pack_query_subsets if subsets else packing.pack_query_windows
    return op(tokens, coalition_offsets, coalitions, packing.SpecialIds(101, 102, 0), max_length=5, backend="cpu")
