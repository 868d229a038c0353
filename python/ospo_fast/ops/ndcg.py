"""Retrieval NDCG (spec §2): NDCG@k, and NDCG@pool with the global top-k rule.

Native twin: ``csrc/ospo/ndcg.cpp``; plain twin: :mod:`ospo_fast.ops.reference`; GPU
twin of the fused version: :mod:`ospo_fast.ops.ndcg_gpu`.
Ranking everywhere: score descending, then the lower catalog row first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ospo_fast.ops import ndcg_gpu, reference
from ospo_fast.ops.arrays import as_count, as_float, as_float32, as_int
from ospo_fast.ops.device import like_inputs, on, to_numpy
from ospo_fast.ops.dispatch import resolve_backend, work_device
from ospo_fast.ops.native import core
from ospo_fast.types import Backend, CpuNdcgKernel, DotPrecision, GainMode, check_choice

# Bytes of float32 corpus scores one tile may hold ([C, L] at a time).
_TILE_BYTES = 64 << 20
# Queries scored together; a larger batch is split so tiles stay within _TILE_BYTES.
_MAX_QUERIES_PER_PASS = 16384
# Largest |score| the tiled kernel's float32 dot products may reach (half of FLT_MAX,
# room for the rounding of the partial sums).
_MAX_FLOAT32_SCORE = float(np.finfo(np.float32).max) / 2.0


@dataclass(frozen=True, eq=False)
class PreparedCorpus:
    """A float32 corpus ``[N, d]`` prepared once for :func:`pool_ndcg_dense` (like adding it to an index).

    ``rows`` is a read-only view of the corpus (a copy when it was not float32 and
    C-contiguous): the corpus must not change after preparing. ``screened`` is the
    native bf16-packed copy the screened CPU kernel reads, or None where this CPU lacks
    AVX512-BF16, there is no native core, or the corpus was prepared for a GPU.
    ``device_rows`` is the corpus copied once to a GPU for the Triton kernel, or None.
    """

    rows: np.ndarray  # [N, d] float32
    screened: Any
    device_rows: Any = None  # torch.Tensor [N, d] float32 on a CUDA device
    largest_norm: float = 0.0  # max_n ||rows[n]||, for the float32 score bound of the tiled kernel

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows.shape  # type: ignore[return-value]

    @property
    def scored(self) -> Any:
        """The rows the kernels read: the device copy when there is one."""
        return self.rows if self.device_rows is None else self.device_rows


def screen_supported() -> bool:
    """True when the CPU runs the screened fused NDCG (native core, x86-64 with AVX512-BF16)."""
    return core is not None and bool(core.bf16_screen_supported())


def prepare_corpus(corpus: Any, *, device: Any = None) -> PreparedCorpus:
    """``corpus [N, d]`` as float32, packed once for the kernels that will score it.

    ``device`` None or a CPU device: packed for the screened CPU kernel where it runs.
    A CUDA device: copied there once (``device_rows``), for the Triton kernel.
    """
    if isinstance(corpus, PreparedCorpus):
        return corpus
    rows = as_float32("corpus", to_numpy(corpus)).view()
    if rows.ndim != 2:
        raise ValueError(f"corpus must be [N, d], got shape {rows.shape}")
    rows.setflags(write=False)
    largest = largest_norm(rows)
    if device is not None and str(device).startswith("cuda"):
        import torch

        return PreparedCorpus(rows, None, on(torch.device(device), rows, torch.float32), largest)
    screened = core.ScreenedCorpus(rows) if screen_supported() and rows.size else None
    return PreparedCorpus(rows, screened, None, largest)


def largest_norm(rows: np.ndarray) -> float:
    """max_n ||rows[n]|| of float32 ``[N, d]`` rows, computed in float64 (0 for no rows)."""
    if rows.size == 0:
        return 0.0
    return float(np.sqrt(np.einsum("nd,nd->n", rows, rows, dtype=np.float64).max()))


def _require_float32_scores(queries: np.ndarray, corpus_norm: float) -> None:
    """The tiled kernel scores in float32: |q . x| <= ||q|| ||x|| must stay well inside it."""
    bound = largest_norm(queries) * corpus_norm
    if not bound <= _MAX_FLOAT32_SCORE:
        raise ValueError(
            f"queries and corpus are too large for float32 scores: max ||q|| * max ||x|| = {bound:.6g} "
            f"> {_MAX_FLOAT32_SCORE:.6g}; scale the embeddings down (cosine retrieval uses unit rows)"
        )


def _check_k(k: int) -> int:
    k = as_count("k", k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return k


def _as_scores(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    return np.ascontiguousarray(array) if array.dtype in (np.float32, np.float64) else as_float(name, array)


def ndcg_at_k(scores: Any, relevance: Any, k: int, gain: GainMode = "linear") -> np.ndarray:
    """NDCG@k per row of ``scores [Q, N]`` against ``relevance [Q, N]``; float64 ``[Q]``.

    IDCG comes from the relevance sorted descending and cut at k; IDCG 0 gives 0.
    ``gain="exp"`` uses ``2**rel - 1``.
    """
    s = as_float("scores", scores)
    rel = as_float("relevance", relevance)
    k = _check_k(k)
    if core is None:
        return reference.ndcg_at_k(s, rel, k, gain)
    return core.ndcg_at_k(s, rel, k, gain)


def _gather_pool_scores(scores: np.ndarray, pool_items: np.ndarray) -> np.ndarray:
    """float64 ``[Q, P]`` scores of the pool items.

    Padding and out-of-range rows read a clipped row here; the core rejects them.
    """
    if scores.shape[1] == 0:
        return np.zeros(pool_items.shape, dtype=np.float64)
    safe = np.clip(pool_items, 0, scores.shape[1] - 1)
    return np.take_along_axis(scores, safe, axis=1).astype(np.float64)


def pool_ndcg(
    scores: Any, pool_items: Any, pool_relevance: Any, k: int, gain: GainMode = "linear"
) -> np.ndarray:
    """Spec §2 NDCG@pool from full score rows ``scores [Q, N]``; float64 ``[Q]``.

    ``pool_items [Q, P]`` are unique catalog rows (-1 = padding) with
    ``pool_relevance [Q, P]``. Pool items ranked below the global top-k are dropped;
    the rest keep their ranked order; IDCG is the pool's ideal order cut at k.
    """
    s = _as_scores("scores", scores)
    items = as_int("pool_items", pool_items)
    rel = as_float("pool_relevance", pool_relevance)
    k = _check_k(k)
    if s.ndim != 2 or items.ndim != 2 or items.shape[0] != s.shape[0]:
        raise ValueError(f"scores must be [Q, N] and pool_items [Q, P], got {s.shape} and {items.shape}")
    if core is None:
        return reference.pool_ndcg(s, items, rel, k, gain)
    ranking = core.PoolRanking(_gather_pool_scores(s, items), items, rel, gain, s.shape[1], k)
    ranking.add_tile(s, 0)
    return ranking.ndcg()


def _pool_scores_dense(queries: np.ndarray, corpus: np.ndarray, pools: np.ndarray, query_pool: np.ndarray) -> np.ndarray:
    """float64 ``[C, P]``: each query against its own pool, one matmul per distinct pool."""
    out = np.zeros((len(queries), pools.shape[1]), dtype=np.float64)
    if corpus.shape[0] == 0:  # every pool item is padding then (the core rejects any other)
        return out
    for pool in np.unique(query_pool):
        rows = np.flatnonzero(query_pool == pool)
        items = pools[pool]
        out[rows] = queries[rows] @ corpus[np.clip(items, 0, len(corpus) - 1)].T
    return out


def pool_ndcg_dense(
    queries: Any,
    corpus: Any,
    pool_items: Any,
    pool_relevance: Any,
    query_pool: Any,
    k: int,
    gain: GainMode = "linear",
    *,
    backend: Backend = "auto",
    precision: DotPrecision = "ieee",
    cpu_kernel: CpuNdcgKernel = "auto",
) -> Any:
    """Fused NDCG@pool for inner-product retrieval, without the ``[C, N]`` score matrix.

    ``queries [C, d]`` and ``corpus [N, d]`` (float32, or a :func:`prepare_corpus` result
    to pack it once); query c is judged on pool row ``query_pool[c]`` of
    ``pool_items [S, P]`` / ``pool_relevance [S, P]``. Returns ``[C]``: float64 numpy on
    the CPU.

    CPU kernels (``cpu_kernel``; "auto" takes the first that runs here):

    - "screened" (x86-64 with AVX512-BF16): scores are exact fp64 inner products of
      the float32 inputs. A bf16 pass over the corpus with a certified error bound
      settles which pool items are in the global top-k; only rows near a pool item's
      score are rescored exactly (``csrc/ospo/screened_ndcg.h``). Per-thread state is
      16 MiB of screen rows, or ``64 · N`` floats when that is more.
    - "tiled": the corpus streams through in tiles, one float32 BLAS matmul each,
      while the core counts the rows ranked before each pool item; state ``O(C · P)``.

    CUDA tensors run the Triton kernel (``kernels/triton/fused_ndcg.py``, dot
    ``precision`` "ieee", "tf32x3" or "tf32") and return a float32 tensor on the
    device; ``backend`` forces "cpu" or "triton" (see :mod:`ospo_fast.ops.dispatch`).
    Under the Triton interpreter, ``backend="triton"`` runs that kernel on CPU tensors.
    """
    check_choice("cpu_kernel", cpu_kernel, CpuNdcgKernel)
    prepared = corpus if isinstance(corpus, PreparedCorpus) else None
    inputs = (queries, prepared.scored if prepared else corpus, pool_items, pool_relevance, query_pool)
    kernel = resolve_backend("ndcg", backend, *inputs)
    if kernel != "cpu":
        k = _check_k(k)
        check_choice("gain", gain, GainMode)
        check_choice("precision", precision, DotPrecision)
        import torch

        device = work_device(kernel, *inputs)
        queries_on = on(device, queries, torch.float32)  # [C, d]
        out = ndcg_gpu.fused_ndcg(device, queries_on, inputs[1], *inputs[2:], k, gain, precision)
        return like_inputs(out, *inputs)
    q = as_float32("queries", to_numpy(queries))
    x = prepared.rows if prepared else as_float32("corpus", to_numpy(corpus))
    pools = as_int("pool_items", to_numpy(pool_items))
    rel = as_float("pool_relevance", to_numpy(pool_relevance))
    owner = as_int("query_pool", to_numpy(query_pool)).reshape(-1)
    k = _check_k(k)
    if q.ndim != 2 or x.ndim != 2 or q.shape[1] != x.shape[1]:
        raise ValueError(f"queries [C, d] and corpus [N, d] must share d, got {q.shape} and {x.shape}")
    if pools.ndim != 2 or rel.shape != pools.shape:
        raise ValueError(f"pool_items and pool_relevance must both be [S, P], got {pools.shape} and {rel.shape}")
    if owner.shape[0] != q.shape[0]:
        raise ValueError(f"query_pool must have one entry per query ({q.shape[0]}), got {owner.shape[0]}")
    if owner.size and (owner.min() < 0 or owner.max() >= pools.shape[0]):
        raise ValueError(f"query_pool entries must be in [0, {pools.shape[0]}), got [{owner.min()}, {owner.max()}]")
    if core is None:
        return like_inputs(reference.pool_ndcg_dense(q, x, pools, rel, owner, k, gain), *inputs)
    if cpu_kernel == "screened" and not screen_supported():
        raise RuntimeError("cpu_kernel='screened' needs the native core on an x86-64 CPU with AVX512-BF16")
    if cpu_kernel != "tiled" and screen_supported() and x.size and q.size:
        screened = (prepared or prepare_corpus(x)).screened
        out = screened.pool_ndcg(q, np.ascontiguousarray(pools[owner]), np.ascontiguousarray(rel[owner]), k, gain)
        if out is not None:
            return like_inputs(out, *inputs)
    _require_float32_scores(q, prepared.largest_norm if prepared else largest_norm(x))
    out = np.zeros(q.shape[0], dtype=np.float64)
    for start in range(0, q.shape[0], _MAX_QUERIES_PER_PASS):
        block = slice(start, start + _MAX_QUERIES_PER_PASS)
        out[block] = _pool_ndcg_dense_pass(q[block], x, pools, rel, owner[block], k, gain)
    return like_inputs(out, *inputs)


def _pool_ndcg_dense_pass(
    queries: np.ndarray, corpus: np.ndarray, pools: np.ndarray, relevance: np.ndarray, owner: np.ndarray, k: int, gain: str
) -> np.ndarray:
    ranking = core.PoolRanking(
        _pool_scores_dense(queries, corpus, pools, owner), pools[owner], relevance[owner], gain, corpus.shape[0], k
    )
    tile = max(1024, _TILE_BYTES // (4 * max(1, len(queries))))
    for start in range(0, corpus.shape[0], tile):
        ranking.add_tile(queries @ corpus[start : start + tile].T, start)  # [C, L] float32
    return ranking.ndcg()

