"""Fused retrieval NDCG@pool: spec §2 with the global top-k rule, never building [C, N].

``reference.pool_ndcg_dense`` scores every query against the whole corpus. Here:

1. :func:`pool_scores` scores each query's own pool items (a gather, ``[C, P]``);
2. :func:`sort_pools` orders each pool by score, so the best items share the first chunk;
3. :func:`count_beaters` streams the corpus in tiles (``tl.dot``) and counts, for every
   (query, pool item), the catalog rows ranked before it: a higher score, or the same
   score and a lower row, never the item itself. The state is ``[C, P]`` int32. A
   chunk of pool items whose counts all reached ``k`` is out of the top-k for good and
   is skipped for the rest of the stream, so the counting work shrinks as it runs;
4. :func:`ndcg_from_counts` keeps the items counted below ``k``, orders them by count
   (the global rank) and sums the DCG; :func:`ideal_dcg` is the pool's gains sorted
   descending, cut at ``k``.

Scores are float32 dot products. ``precision`` is ``tl.dot``'s input precision:
"ieee" (plain fp32 FMAs), "tf32x3" (tensor cores, about fp32 accuracy) or "tf32"
(fastest, about 1e-3 relative error, so near-ties may rank differently from the fp32
reference). Exact ties are resolved as the reference does whenever the float32 scores
agree, which the tests make certain with dyadic-rational embeddings.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ospo_fast.types import DotPrecision, GainMode, check_choice


BLOCK_C = 32  # queries per program of the counting kernel
BLOCK_N = 64  # corpus rows per streamed tile
BLOCK_D = 32  # embedding columns per tl.dot step
BLOCK_P = 8  # pool items compared at once against a tile ([BLOCK_C, BLOCK_P, BLOCK_N])
# 8 warps keep the counting kernel free of register spills on sm_80 and sm_90 with
# every dot precision (ptxas: 150-188 registers, no stack); 4 warps spill.
COUNT_WARPS = 8


@triton.jit
def _pool_scores_kernel(
    queries_ptr,  # [C, D] float32
    vectors_ptr,  # [R, D] float32 rows the pools point into
    rows_ptr,  # [S, P] int64 row of each pool item in vectors, -1 = padding
    query_pool_ptr,  # [C] int64
    out_ptr,  # [C, P] float32
    P,
    D,
    stride_query,
    stride_vector,
    BLOCK_P: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    c = tl.program_id(0).to(tl.int64)
    items = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    item_ok = items < P
    pool = tl.load(query_pool_ptr + c)
    rows = tl.load(rows_ptr + pool * P + items, mask=item_ok, other=-1)  # [BLOCK_P]
    valid = rows >= 0
    acc = tl.zeros([BLOCK_P], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        dims = d0 + tl.arange(0, BLOCK_D)
        dim_ok = dims < D
        q = tl.load(queries_ptr + c * stride_query + dims, mask=dim_ok, other=0.0)  # [BLOCK_D]
        v = tl.load(
            vectors_ptr + rows[:, None] * stride_vector + dims[None, :],
            mask=valid[:, None] & dim_ok[None, :],
            other=0.0,
        )  # [BLOCK_P, BLOCK_D]
        acc += tl.sum(v * q[None, :], axis=1)
    tl.store(out_ptr + c * P + items, acc, mask=item_ok)


@triton.jit
def _count_beaters_kernel(
    queries_ptr,  # [C, D] float32
    corpus_ptr,  # [N, D] float32, catalog rows corpus_start ... corpus_start + N - 1
    pool_scores_ptr,  # [C, P] float32
    pool_items_ptr,  # [C, P] int64, -1 = padding
    counts_ptr,  # [C, P] int32, in/out
    C,
    N,
    D,
    P,
    corpus_start,
    k,
    tiles_per_split,
    stride_query,
    stride_corpus,
    BLOCK_C: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_P: tl.constexpr,
    PRECISION: tl.constexpr,
    ATOMIC: tl.constexpr,
):
    queries = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    query_ok = queries < C
    queries = queries.to(tl.int64)
    n_tiles = tl.cdiv(N, BLOCK_N)
    first_tile = tl.program_id(1) * tiles_per_split
    last_tile = tl.minimum(first_tile + tiles_per_split, n_tiles)
    for tile in range(first_tile, last_tile):
        rows = tile * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rows < N
        scores = tl.zeros([BLOCK_C, BLOCK_N], dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            dims = d0 + tl.arange(0, BLOCK_D)
            dim_ok = dims < D
            q = tl.load(
                queries_ptr + queries[:, None] * stride_query + dims[None, :],
                mask=query_ok[:, None] & dim_ok[None, :],
                other=0.0,
            )  # [BLOCK_C, BLOCK_D]
            x = tl.load(
                corpus_ptr + rows.to(tl.int64)[None, :] * stride_corpus + dims[:, None],
                mask=row_ok[None, :] & dim_ok[:, None],
                other=0.0,
            )  # [BLOCK_D, BLOCK_N]
            scores = tl.dot(q, x, scores, input_precision=PRECISION)
        catalog_rows = (corpus_start + rows).to(tl.int64)  # [BLOCK_N]
        for p0 in range(0, P, BLOCK_P):
            items = p0 + tl.arange(0, BLOCK_P)
            cell = queries[:, None] * P + items[None, :]  # [BLOCK_C, BLOCK_P]
            cell_ok = query_ok[:, None] & (items < P)[None, :]
            counts = tl.load(counts_ptr + cell, mask=cell_ok, other=k)
            # Counts only grow: once every item of the chunk reached k it never matters again.
            if tl.min(counts) < k:
                item_scores = tl.load(pool_scores_ptr + cell, mask=cell_ok, other=0.0)
                item_rows = tl.load(pool_items_ptr + cell, mask=cell_ok, other=-1)
                s = scores[:, None, :]  # [BLOCK_C, 1, BLOCK_N]
                t = item_scores[:, :, None]  # [BLOCK_C, BLOCK_P, 1]
                r = catalog_rows[None, None, :]
                j = item_rows[:, :, None]
                before = ((s > t) | ((s == t) & (r < j))) & (r != j) & row_ok[None, None, :]
                added = tl.sum(before.to(tl.int32), axis=2)  # [BLOCK_C, BLOCK_P]
                if ATOMIC:
                    tl.atomic_add(counts_ptr + cell, added, mask=cell_ok)
                else:
                    tl.store(counts_ptr + cell, counts + added, mask=cell_ok)


@triton.jit
def _ndcg_from_counts_kernel(
    counts_ptr,  # [C, P] int32 rows ranked before each pool item
    gains_ptr,  # [C, P] float32
    positions_ptr,  # [C, P] int64 original pool position (orders duplicates as the reference)
    ideal_ptr,  # [C] float32
    out_ptr,  # [C] float32
    P,
    k,
    BLOCK_P: tl.constexpr,
    CHUNK: tl.constexpr,
):
    c = tl.program_id(0).to(tl.int64)
    items = tl.arange(0, BLOCK_P)
    item_ok = items < P
    counts = tl.load(counts_ptr + c * P + items, mask=item_ok, other=k)
    kept = counts < k
    gains = tl.load(gains_ptr + c * P + items, mask=item_ok, other=0.0)
    positions = tl.load(positions_ptr + c * P + items, mask=item_ok, other=0)
    ahead = tl.zeros([BLOCK_P], dtype=tl.int32)  # kept items listed before each item
    for o0 in range(0, P, CHUNK):
        others = o0 + tl.arange(0, CHUNK)
        other_ok = others < P
        other_counts = tl.load(counts_ptr + c * P + others, mask=other_ok, other=k)
        other_positions = tl.load(positions_ptr + c * P + others, mask=other_ok, other=0)
        first = (other_counts[None, :] < counts[:, None]) | (
            (other_counts[None, :] == counts[:, None]) & (other_positions[None, :] < positions[:, None])
        )
        ahead += tl.sum((first & (other_counts < k)[None, :]).to(tl.int32), axis=1)
    discount = 1.0 / tl.log2(ahead.to(tl.float32) + 2.0)
    dcg = tl.sum(tl.where(kept, gains * discount, 0.0))
    ideal = tl.load(ideal_ptr + c)
    tl.store(out_ptr + c, tl.where(ideal > 0, dcg / tl.where(ideal > 0, ideal, 1.0), 0.0))


def pool_gains(pool_items: torch.Tensor, pool_relevance: torch.Tensor, gain: GainMode) -> torch.Tensor:
    """``[S, P]`` float32 gains (``linear``: rel, ``exp``: 2^rel − 1); padding gets 0."""
    check_choice("gain", gain, GainMode)
    relevance = pool_relevance.to(torch.float64)
    gains = torch.exp2(relevance) - 1.0 if gain == "exp" else relevance
    return torch.where(pool_items >= 0, gains, 0.0).to(torch.float32)


def ideal_dcg(pool_items: torch.Tensor, gains: torch.Tensor, k: int) -> torch.Tensor:
    """``[S]`` float32 IDCG: each pool's valid gains sorted descending, cut at ``k``."""
    valid = pool_items >= 0
    ordered = torch.sort(torch.where(valid, gains.to(torch.float64), -torch.inf), dim=1, descending=True).values
    ranks = torch.arange(ordered.shape[1], device=gains.device, dtype=torch.float64)
    keep = (ranks < k)[None, :] & (ranks[None, :] < valid.sum(dim=1, keepdim=True))
    terms = torch.where(keep, ordered / torch.log2(ranks + 2.0)[None, :], 0.0)
    return terms.sum(dim=1).to(torch.float32)


def pool_scores(
    queries: torch.Tensor, vectors: torch.Tensor, vector_rows: torch.Tensor, query_pool: torch.Tensor
) -> torch.Tensor:
    """``[C, P]`` float32: query c against the rows ``vector_rows[query_pool[c]]`` of ``vectors``.

    ``vectors [R, d]`` is the corpus itself or just the pools' rows; ``vector_rows [S, P]``
    int64 points into it, -1 for padding (its score is 0 and is never read).
    """
    n_queries, dim = queries.shape
    pool_size = vector_rows.shape[1]
    out = torch.empty((n_queries, pool_size), dtype=torch.float32, device=queries.device)
    if n_queries == 0 or pool_size == 0:
        return out
    block_p = min(32, triton.next_power_of_2(pool_size))
    _pool_scores_kernel[(n_queries, triton.cdiv(pool_size, block_p))](
        queries,
        vectors,
        vector_rows,
        query_pool,
        out,
        pool_size,
        dim,
        queries.stride(0),
        vectors.stride(0),
        BLOCK_P=block_p,
        BLOCK_D=min(64, triton.next_power_of_2(max(dim, 1))),
    )
    return out


def sort_pools(
    scores: torch.Tensor, items: torch.Tensor, gains: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each query's pool in ranking order (score descending, lower row first), padding last.

    Returns ``(scores, items, gains, positions)`` ``[C, P]``; positions are the items'
    original pool columns.
    """
    positions = torch.argsort(items, dim=1, stable=True)
    keyed = torch.where(items >= 0, scores, -torch.inf).gather(1, positions)
    positions = positions.gather(1, torch.argsort(keyed, dim=1, descending=True, stable=True))
    return scores.gather(1, positions), items.gather(1, positions), gains.gather(1, positions), positions


def initial_counts(sorted_items: torch.Tensor, k: int) -> torch.Tensor:
    """``[C, P]`` int32: 0 for real items, ``k`` for padding (never kept, never counted)."""
    return torch.where(sorted_items >= 0, 0, k).to(torch.int32)


def count_beaters(
    queries: torch.Tensor,
    corpus: torch.Tensor,
    sorted_scores: torch.Tensor,
    sorted_items: torch.Tensor,
    counts: torch.Tensor,
    k: int,
    *,
    corpus_start: int = 0,
    precision: DotPrecision = "ieee",
    n_splits: int | None = None,
) -> None:
    """Adds to ``counts [C, P]`` the rows of ``corpus`` (catalog rows from ``corpus_start``)
    ranked before each pool item. Call once per corpus chunk.

    ``n_splits`` divides the corpus tiles between programs that add their counts
    atomically; the default fills the device's multiprocessors.
    """
    n_queries, dim = queries.shape
    n_rows = corpus.shape[0]
    pool_size = sorted_items.shape[1]
    if n_queries == 0 or n_rows == 0 or pool_size == 0:
        return
    query_blocks = triton.cdiv(n_queries, BLOCK_C)
    n_tiles = triton.cdiv(n_rows, BLOCK_N)
    if n_splits is None:
        n_splits = _default_splits(queries.device, query_blocks, n_tiles)
    n_splits = max(1, min(int(n_splits), n_tiles))
    tiles_per_split = triton.cdiv(n_tiles, n_splits)
    n_splits = triton.cdiv(n_tiles, tiles_per_split)
    _count_beaters_kernel[(query_blocks, n_splits)](
        queries,
        corpus,
        sorted_scores,
        sorted_items,
        counts,
        n_queries,
        n_rows,
        dim,
        pool_size,
        int(corpus_start),
        int(k),
        tiles_per_split,
        queries.stride(0),
        corpus.stride(0),
        BLOCK_C=BLOCK_C,
        BLOCK_N=BLOCK_N,
        BLOCK_D=BLOCK_D,
        BLOCK_P=BLOCK_P,
        PRECISION=precision,
        ATOMIC=n_splits > 1,
        num_warps=COUNT_WARPS,
    )


def _default_splits(device: torch.device, query_blocks: int, n_tiles: int) -> int:
    """Enough corpus splits for about four programs per multiprocessor."""
    if device.type != "cuda":
        return 1
    n_sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(n_tiles, triton.cdiv(4 * n_sms, query_blocks)))


def ndcg_from_counts(
    counts: torch.Tensor, sorted_gains: torch.Tensor, positions: torch.Tensor, ideal: torch.Tensor, k: int
) -> torch.Tensor:
    """``[C]`` float32 NDCG from the finished counts; ``ideal [C]`` is each query's IDCG."""
    n_queries, pool_size = counts.shape
    out = torch.zeros(n_queries, dtype=torch.float32, device=counts.device)
    if n_queries == 0 or pool_size == 0:
        return out
    block_p = triton.next_power_of_2(pool_size)
    _ndcg_from_counts_kernel[(n_queries,)](
        counts, sorted_gains, positions, ideal, out, pool_size, int(k), BLOCK_P=block_p, CHUNK=min(32, block_p)
    )
    return out


def fused_pool_ndcg(
    queries: torch.Tensor,
    corpus: torch.Tensor,
    pool_items: torch.Tensor,
    pool_relevance: torch.Tensor,
    query_pool: torch.Tensor,
    k: int,
    gain: GainMode = "linear",
    *,
    precision: DotPrecision = "ieee",
    n_splits: int | None = None,
) -> torch.Tensor:
    """``reference.pool_ndcg_dense`` with everything on one device; returns ``[C]`` float32.

    ``queries [C, d]``, ``corpus [N, d]`` (float32), ``pool_items [S, P]`` int (-1 = padding),
    ``pool_relevance [S, P]``, ``query_pool [C]`` int. Memory is O(C·P + S·P), never O(C·N).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    queries = queries.to(torch.float32).contiguous()
    corpus = corpus.to(torch.float32).contiguous()
    pool_items = pool_items.to(torch.int64).contiguous()
    query_pool = query_pool.to(torch.int64).contiguous()
    gains = pool_gains(pool_items, pool_relevance, gain)
    ideal = ideal_dcg(pool_items, gains, k)[query_pool].contiguous()
    scores = pool_scores(queries, corpus, pool_items, query_pool)
    items_q = pool_items[query_pool]
    sorted_scores, sorted_items, sorted_gains, positions = sort_pools(scores, items_q, gains[query_pool])
    counts = initial_counts(sorted_items, k)
    count_beaters(
        queries, corpus, sorted_scores.contiguous(), sorted_items.contiguous(), counts, k,
        precision=precision, n_splits=n_splits,
    )
    return ndcg_from_counts(counts, sorted_gains.contiguous(), positions.contiguous(), ideal, k)
