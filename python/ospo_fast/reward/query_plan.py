"""Queries deduplicated as (text, pool) pairs, so each is embedded and scored once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ospo_fast.ops.device import is_tensor
from ospo_fast.reward.answer import is_blank


@dataclass(frozen=True)
class QueryPlan:
    """Queries deduplicated as (text, pool) pairs; blank queries are left out.

    texts      [U] unique non-blank texts, first-seen order
    pair_text  [C] int64 text of each unique pair
    pair_pool  [C] int64 pool row of each unique pair
    query_pair [Q] int64 pair of each query, -1 for a blank one
    text_query [U] int64 the first query of each text, ascending
    """

    texts: list[str]
    pair_text: np.ndarray
    pair_pool: np.ndarray
    query_pair: np.ndarray
    text_query: np.ndarray

    def scatter(self, pair_values: Any) -> Any:
        """Values of the pairs ``[C]`` -> values of the queries ``[Q]`` (blank = 0).

        numpy in, float64 numpy out; a tensor in, a tensor of its dtype on its device.
        """
        real = self.query_pair >= 0
        if is_tensor(pair_values):
            import torch

            out = torch.zeros(len(self.query_pair), dtype=pair_values.dtype, device=pair_values.device)  # [Q]
            if real.any():
                rows = torch.from_numpy(np.flatnonzero(real)).to(pair_values.device)
                out[rows] = pair_values[torch.from_numpy(self.query_pair[real]).to(pair_values.device)]
            return out
        out_np = np.zeros(len(self.query_pair), dtype=np.float64)  # [Q]
        out_np[real] = pair_values[self.query_pair[real]]
        return out_np


def plan_queries(texts: Sequence[str], query_pool: np.ndarray, n_pools: int) -> QueryPlan:
    """Deduplicate ``texts [Q]`` judged on pool rows ``query_pool [Q]``."""
    text_ids: dict[str, int] = {}
    ids = np.fromiter(
        (-1 if is_blank(t) else text_ids.setdefault(t, len(text_ids)) for t in texts), dtype=np.int64, count=len(texts)
    )  # [Q]
    real = ids >= 0
    codes = ids[real] * n_pools + np.asarray(query_pool, dtype=np.int64)[real]  # [Q_real]
    unique_codes, inverse = np.unique(codes, return_inverse=True)  # [C], [Q_real]
    query_pair = np.full(len(ids), -1, dtype=np.int64)
    query_pair[real] = inverse.reshape(-1)
    # Ids are handed out in first-seen order, so the first index of id u precedes that of u + 1.
    _, first_real = np.unique(ids[real], return_index=True)  # [U]
    text_query = np.flatnonzero(real)[first_real]  # [U]
    return QueryPlan(list(text_ids), unique_codes // n_pools, unique_codes % n_pools, query_pair, text_query)


def check_finite(values: Any, what: str) -> Any:
    """``values`` unchanged, or FloatingPointError naming ``what`` and the bad positions."""
    if is_tensor(values):
        import torch

        finite = torch.isfinite(values)
        if bool(finite.all()):
            return values
        bad = torch.nonzero(~finite).reshape(-1)[:10].tolist()
    else:
        if np.isfinite(values).all():
            return values
        bad = np.flatnonzero(~np.isfinite(values))[:10].tolist()
    raise FloatingPointError(f"{what} hold non-finite values at positions {bad}")
