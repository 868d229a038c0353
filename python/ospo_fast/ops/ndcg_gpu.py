"""GPU launcher of the fused NDCG@pool (kernels/triton/fused_ndcg.py).

Takes the queries and pools as tensors on one device. The corpus is either resident
there (a tensor on that device: scored in one stream) or in host memory (numpy or a
tensor elsewhere): then only the pools' rows are copied over for the pool scores, and
the corpus streams through in pieces, so one piece is resident at a time. Queries run
in passes sized to half the free memory.
:func:`ospo_fast.ops.ndcg.pool_ndcg_dense` chooses the kernel and calls this.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from ospo_fast.ops.device import free_memory, is_tensor, on, passes, require, require_shape, rows_per_pass
from ospo_fast.types import DotPrecision, GainMode

if TYPE_CHECKING:
    import torch


def fused_ndcg(
    device: torch.device, queries: torch.Tensor, corpus: Any, pool_items: torch.Tensor,
    pool_relevance: torch.Tensor, query_pool: torch.Tensor, k: int, gain: GainMode, precision: DotPrecision,
) -> torch.Tensor:
    """float32 ``[C]`` on ``device``; ``queries [C, d]``, ``corpus [N, d]``, pools ``[S, P]``, ``query_pool [C]``."""
    import torch

    from ospo_fast.kernels import fused_ndcg as fused

    items = on(device, pool_items, torch.int64)  # [S, P]
    relevance = on(device, pool_relevance, torch.float64)  # [S, P]
    owner = on(device, query_pool, torch.int64).reshape(-1)  # [C]
    n_queries, dim = tuple(queries.shape)
    n_corpus = int(corpus.shape[0])
    require(len(corpus.shape) == 2 and corpus.shape[1] == dim,
            f"queries [C, d] and corpus [N, d] must share d, got {tuple(queries.shape)} and {tuple(corpus.shape)}")
    require(items.dim() == 2, f"pool_items must be [S, P], got shape {tuple(items.shape)}")
    require_shape("pool_relevance", relevance, tuple(items.shape))
    require_shape("query_pool", owner, (n_queries,))
    n_pools, pool_size = items.shape
    require(bool(((owner >= 0) & (owner < n_pools)).all()), f"query_pool entries must be in [0, {n_pools})")
    require(bool(((items >= -1) & (items < n_corpus)).all()), f"pool_items must be -1 or catalog rows in [0, {n_corpus})")
    gains = fused.pool_gains(items, relevance, gain)  # [S, P]
    ideal = fused.ideal_dcg(items, gains, k)  # [S]
    resident = is_resident(corpus, device)
    if resident:
        vectors, vector_rows = resident_rows(device, corpus), items
        corpus_bytes = 0
    else:
        vectors, vector_rows = pool_rows_on_device(device, corpus, items)
        corpus_bytes = int(vectors.numel()) * 4
    free = free_memory(device)
    # A host corpus streams in pieces planned on half the budget; the queries get the rest.
    corpus_rows = n_corpus if resident else rows_per_pass(n_corpus, 4 * dim, corpus_bytes, free // 2)
    piece_bytes = 0 if resident else min(n_corpus, corpus_rows) * 4 * dim
    # query, pool scores / items / gains / positions / counts and their sorting temporaries
    per_query = 4 * dim + 96 * pool_size + 16
    fixed = n_pools * pool_size * 28 + corpus_bytes + piece_bytes
    out = torch.zeros(n_queries, dtype=torch.float32, device=device)  # [C]
    if n_queries == 0:
        return out
    for q0, q1 in passes(n_queries, rows_per_pass(n_queries, per_query, fixed, free)):
        q = on(device, queries[q0:q1], torch.float32)  # [c, d]
        pool_of = owner[q0:q1]
        scores = fused.pool_scores(q, vectors, vector_rows, pool_of)  # [c, P]
        s_scores, s_items, s_gains, positions = (
            t.contiguous() for t in fused.sort_pools(scores, items[pool_of], gains[pool_of])
        )
        counts = fused.initial_counts(s_items, k)  # [c, P]
        for start, stop in ((0, n_corpus),) if resident else passes(n_corpus, corpus_rows):
            piece = vectors if resident else on(device, corpus[start:stop], torch.float32)
            fused.count_beaters(q, piece, s_scores, s_items, counts, k, corpus_start=start, precision=precision)
        out[q0:q1] = fused.ndcg_from_counts(counts, s_gains, positions, ideal[pool_of].contiguous(), k)
    return out


def is_resident(corpus: Any, device: torch.device) -> bool:
    """Whether the corpus can be read where the kernels run without a copy."""
    if is_tensor(corpus):
        return corpus.device == device
    # Host memory is the device's own memory when the kernels run on the CPU (the interpreter).
    return device.type == "cpu"


def resident_rows(device: torch.device, corpus: Any) -> torch.Tensor:
    """The corpus as a float32 tensor where the kernels run, without a copy when it already is one."""
    import torch

    if is_tensor(corpus):
        return on(device, corpus, torch.float32)
    array = np.ascontiguousarray(corpus, dtype=np.float32)
    with warnings.catch_warnings():
        # A prepared corpus is read-only; the kernels only read it, so sharing its memory is safe.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def pool_rows_on_device(device: torch.device, corpus: Any, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Only the corpus rows the pools use, on ``device``, and the pools re-pointed at them."""
    import torch

    used = torch.unique(items[items >= 0])  # [U] sorted
    rows = corpus[used.to(corpus.device)] if is_tensor(corpus) else np.asarray(corpus)[used.cpu().numpy()]
    remapped = torch.where(items >= 0, torch.searchsorted(used, items.clamp(min=0)), -1)  # [S, P]
    return on(device, rows, torch.float32), remapped.contiguous()
