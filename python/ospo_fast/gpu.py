"""GPU dispatch: the same ops on CUDA tensors, through the CUDA or Triton kernels.

``backend="auto"`` runs an op on the GPU when any input is a CUDA torch tensor, and on
the CPU otherwise (numpy arrays, CPU tensors). ``"cpu"``, ``"cuda"`` and ``"triton"``
force a path; numpy inputs of a forced GPU path go to the current CUDA device and the
result comes back as numpy. When the wanted kernel is missing (no CUDA device, a core
built without CUDA, no triton, or an op without that kernel) the op runs on the CPU
core instead, with one warning per op.

Results follow the inputs: a torch input gives a torch result on its device (float32
on CUDA, whichever path ran), numpy gives numpy float64.

Kernels per op, in order of preference::

    owen  (token_advantages_batch)  cuda (kernels/cuda/owen_advantages.cu), triton
    ndcg  (pool_ndcg_dense)         triton (kernels/triton/fused_ndcg.py)
    pack  (pack_query_windows/...)  cuda (kernels/cuda/pack_queries.cu)

Batches are split so that each piece's work space fits in half of the free device
memory (:func:`free_device_memory`); a batch too large for one pass runs in several.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ospo_fast import reference
from ospo_fast._native import core, cuda_kernels_built

if TYPE_CHECKING:
    import torch

Backend = Literal["auto", "cpu", "cuda", "triton"]
Op = Literal["owen", "ndcg", "pack"]
Kernel = Literal["cpu", "cuda", "triton"]
DotPrecision = Literal["ieee", "tf32x3", "tf32"]

BACKENDS: tuple[str, ...] = ("auto", "cpu", "cuda", "triton")
GPU_KERNELS: dict[str, tuple[Kernel, ...]] = {"owen": ("cuda", "triton"), "ndcg": ("triton",), "pack": ("cuda",)}
CUDA_ENTRY_POINTS: dict[str, str] = {"owen": "owen_token_advantages_cuda", "pack": "pack_query_windows_cuda"}
# Share of the free device memory one pass may plan for; the rest absorbs allocator
# rounding and whatever else runs on the device.
MEMORY_FRACTION = 0.5

_warned_ops: set[str] = set()

__all__ = [
    "BACKENDS",
    "cuda_kernels_built",
    "free_device_memory",
    "kernel_missing_reason",
    "pack_query_subsets",
    "pack_query_windows",
    "pool_ndcg_dense",
    "resolve_backend",
    "rows_per_pass",
    "token_advantages_batch",
    "triton_available",
]


# ------------------------------------------------------------------ what is available

def is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "device")


def is_cuda_tensor(value: Any) -> bool:
    return is_tensor(value) and value.device.type == "cuda"


def cuda_device_available() -> bool:
    """True when torch is installed and sees a CUDA device."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def kernel_missing_reason(op: Op, kernel: Kernel) -> str | None:
    """Why ``kernel`` cannot run ``op`` here, or None when it can."""
    if kernel not in GPU_KERNELS[op]:
        return f"{op} has no {kernel} kernel"
    if not cuda_device_available():
        return "no CUDA device is available"
    if kernel == "cuda" and not (cuda_kernels_built() and hasattr(core, CUDA_ENTRY_POINTS[op])):
        return "ospo_fast._core was built without its CUDA kernels"
    if kernel == "triton" and not triton_available():
        return "triton is not installed"
    return None


def resolve_backend(op: Op, backend: Backend, *arrays: Any) -> Kernel:
    """The path that runs ``op`` on ``arrays``: "cpu", "cuda" or "triton"."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "cpu" or (backend == "auto" and not any(is_cuda_tensor(a) for a in arrays)):
        return "cpu"
    wanted = GPU_KERNELS[op] if backend == "auto" else (backend,)
    reasons = []
    for kernel in wanted:
        reason = kernel_missing_reason(op, kernel)
        if reason is None:
            return kernel
        reasons.append(reason)
    if op not in _warned_ops:
        _warned_ops.add(op)
        warnings.warn(
            f"ospo_fast: {op} runs on the CPU core instead of the GPU ({'; '.join(reasons)})",
            RuntimeWarning,
            stacklevel=3,
        )
    return "cpu"


# ------------------------------------------------------------------ memory and chunks

def free_device_memory(device: torch.device) -> int:
    """Free bytes on ``device`` (torch.cuda.mem_get_info)."""
    import torch

    return int(torch.cuda.mem_get_info(device)[0])


def rows_per_pass(n_rows: int, bytes_per_row: int, fixed_bytes: int, free_bytes: int) -> int:
    """How many rows one pass may take so that its work space fits in the budget.

    The budget is ``MEMORY_FRACTION`` of ``free_bytes``; ``fixed_bytes`` is the part that
    does not grow with the rows. Raises MemoryError when not even one row fits.
    """
    budget = int(free_bytes * MEMORY_FRACTION) - fixed_bytes
    if budget < bytes_per_row:
        raise MemoryError(
            f"one row needs {bytes_per_row} bytes of device memory beyond {fixed_bytes} fixed bytes, "
            f"but only {free_bytes} bytes are free"
        )
    return max(1, min(n_rows, budget // max(bytes_per_row, 1)))


def passes(n_rows: int, rows_per: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive passes covering ``n_rows``."""
    for start in range(0, n_rows, rows_per):
        yield start, min(n_rows, start + rows_per)


# ------------------------------------------------------------------ conversions

def to_numpy(value: Any) -> Any:
    """A tensor as a numpy array; anything else unchanged."""
    return value.detach().cpu().numpy() if is_tensor(value) else value


def _result_device(arrays: tuple[Any, ...]) -> torch.device | None:
    """The device of the first tensor among the inputs, or None for all-numpy input."""
    return next((a.device for a in arrays if is_tensor(a)), None)


def like_inputs(result: Any, *arrays: Any) -> Any:
    """``result`` (an array, a tensor or a tuple of them) in the form of the inputs (module doc)."""
    if isinstance(result, tuple):
        return tuple(like_inputs(r, *arrays) for r in result)
    device = _result_device(arrays)
    if device is None:
        array = np.asarray(to_numpy(result))
        return array.astype(np.float64) if array.dtype.kind == "f" else array
    import torch

    tensor = torch.as_tensor(result).to(device)
    if tensor.is_floating_point():
        tensor = tensor.to(torch.float32 if device.type == "cuda" else torch.float64)
    return tensor


def _work_device(arrays: tuple[Any, ...]) -> torch.device:
    """The CUDA device of the first CUDA tensor, else the current CUDA device."""
    import torch

    return next((a.device for a in arrays if is_cuda_tensor(a)), torch.device("cuda"))


def _on(device: torch.device, value: Any, dtype: torch.dtype) -> torch.Tensor:
    import torch

    return torch.as_tensor(value).to(device=device, dtype=dtype).contiguous()


def _stream_of(device: torch.device) -> int:
    import torch

    return int(torch.cuda.current_stream(device).cuda_stream)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _require_shape(name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    _require(tuple(tensor.shape) == shape, f"{name} must have shape {shape}, got {tuple(tensor.shape)}")


def _check_offsets(offsets: torch.Tensor, total: int, name: str, total_name: str) -> None:
    _require(offsets.dim() == 1 and offsets.numel() >= 1, f"{name} must be [B+1], got shape {tuple(offsets.shape)}")
    first, last = int(offsets[0]), int(offsets[-1])
    rises = bool((offsets[1:] >= offsets[:-1]).all())
    _require(first == 0 and last == total and rises,
             f"{name} must rise from 0 to {total} ({total_name}), got {first}..{last}")


# ------------------------------------------------------------------ token advantages

def token_advantages_batch(
    n_segments: Any,
    coalition_offsets: Any,
    coalitions: Any,
    values: Any,
    segment_spans: Any,
    token_offsets: Any,
    token_mask: Any,
    answer_mask: Any,
    advantages: Any,
    mode: reference.RedistributionMode = "prop",
    *,
    alpha: float = 0.7,
    invert_negative: bool = False,
    backend: Backend = "auto",
) -> Any:
    """``reference.token_advantages_batch`` on the path :func:`resolve_backend` picks; ``[B, T]``."""
    arrays = (n_segments, coalition_offsets, coalitions, values, segment_spans, token_offsets, token_mask,
              answer_mask, advantages)
    kernel = resolve_backend("owen", backend, *arrays)
    if kernel == "cpu":
        from ospo_fast.credit import token_advantages_batch as on_cpu

        return on_cpu(*arrays, mode, alpha=alpha, invert_negative=invert_negative, backend="cpu")
    if mode not in ("prop", "rank", "hybrid"):
        raise ValueError(f"mode must be 'prop', 'rank' or 'hybrid', got {mode!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    device = _work_device(arrays)
    batch = _owen_batch(device, *arrays)
    out = _owen_in_passes(kernel, batch, mode, float(alpha), bool(invert_negative))
    return like_inputs(out, *arrays)


def _owen_batch(device: torch.device, *arrays: Any) -> dict[str, torch.Tensor]:
    """The inputs on ``device`` in the kernels' dtypes, checked (a few small host syncs)."""
    import torch

    names = ("n_segments", "coalition_offsets", "coalitions", "values", "segment_spans", "token_offsets",
             "token_mask", "answer_mask", "advantages")
    dtypes = (torch.int64, torch.int64, torch.int32, torch.float32, torch.int64, torch.int64, torch.bool,
              torch.bool, torch.float32)
    batch = {name: _on(device, a, dtype) for name, a, dtype in zip(names, arrays, dtypes)}
    batch["coalitions"] = batch["coalitions"].reshape(-1, 2)
    batch["segment_spans"] = batch["segment_spans"].reshape(-1, 2)
    n = batch["n_segments"]
    n_responses, n_rows = n.numel(), batch["coalitions"].shape[0]
    token_shape = tuple(batch["token_mask"].shape)
    _require(len(token_shape) == 2 and token_shape[0] == n_responses,
             f"token_mask must be [B={n_responses}, T], got {token_shape}")
    _require_shape("answer_mask", batch["answer_mask"], token_shape)
    _require_shape("token_offsets", batch["token_offsets"], (*token_shape, 2))
    _require_shape("values", batch["values"], (n_rows,))
    _require_shape("advantages", batch["advantages"], (n_responses,))
    _require_shape("coalition_offsets", batch["coalition_offsets"], (n_responses + 1,))
    _check_offsets(batch["coalition_offsets"], n_rows, "coalition_offsets", "the coalition rows")
    _require(bool((n >= 0).all()), "n_segments must be >= 0")
    _require_shape("segment_spans", batch["segment_spans"], (int(n.sum()), 2))
    owner = torch.repeat_interleave(torch.arange(n_responses, device=device), torch.diff(batch["coalition_offsets"]))
    start, end = batch["coalitions"][:, 0].long(), batch["coalitions"][:, 1].long()
    _require(not bool(((start < 0) | (start > end) | (end > n[owner])).any()),
             "coalitions must be windows (start, end) with 0 <= start <= end <= the response's segments")
    return batch


def _owen_in_passes(
    kernel: Kernel, batch: dict[str, torch.Tensor], mode: str, alpha: float, invert: bool
) -> torch.Tensor:
    import torch

    n_responses, n_tokens = batch["token_mask"].shape
    device = batch["values"].device
    out = torch.empty((n_responses, n_tokens), dtype=torch.float32, device=device)
    if n_responses == 0 or n_tokens == 0:
        return out
    offsets = batch["coalition_offsets"].tolist()
    phi_offsets = [0, *np.cumsum(batch["n_segments"].tolist()).tolist()]
    rows_most = max(b - a for a, b in zip(offsets[:-1], offsets[1:]))
    segments_most = max(int(batch["n_segments"].max()), 0)
    # token offsets, masks, float32 out and float64 scratch per token; rows, spans and the
    # Triton kernel's window table per response
    bytes_per_response = (
        n_tokens * (16 + 2 + 4 + 8) + rows_most * 12 + segments_most * 24 + (segments_most + 1) ** 2 * 4 + 48
    )
    per_pass = rows_per_pass(n_responses, bytes_per_response, 0, free_device_memory(device))
    for b0, b1 in passes(n_responses, per_pass):
        part = {
            "n_segments": batch["n_segments"][b0:b1],
            "coalition_offsets": batch["coalition_offsets"][b0 : b1 + 1] - offsets[b0],
            "coalitions": batch["coalitions"][offsets[b0] : offsets[b1]],
            "values": batch["values"][offsets[b0] : offsets[b1]],
            "segment_spans": batch["segment_spans"][phi_offsets[b0] : phi_offsets[b1]],
            "token_offsets": batch["token_offsets"][b0:b1],
            "token_mask": batch["token_mask"][b0:b1],
            "answer_mask": batch["answer_mask"][b0:b1],
            "advantages": batch["advantages"][b0:b1],
        }
        out[b0:b1] = _owen_pass(kernel, part, mode, alpha, invert)
    return out


def _owen_pass(
    kernel: Kernel, part: dict[str, torch.Tensor], mode: str, alpha: float, invert: bool
) -> torch.Tensor:
    import torch

    if kernel == "triton":
        from ospo_fast.kernels.owen_advantages import owen_token_advantages

        return owen_token_advantages(**part, mode=mode, alpha=alpha, invert_negative=invert)[0]
    device = part["values"].device
    n_responses, n_tokens = part["token_mask"].shape
    part = {name: tensor.contiguous() for name, tensor in part.items()}
    phi_offsets = torch.zeros(n_responses + 1, dtype=torch.int64, device=device)
    torch.cumsum(part["n_segments"], 0, out=phi_offsets[1:])
    phi = torch.empty(part["segment_spans"].shape[0], dtype=torch.float64, device=device)
    scratch = torch.empty((n_responses, n_tokens), dtype=torch.float64, device=device)
    out = torch.empty((n_responses, n_tokens), dtype=torch.float32, device=device)
    core.owen_token_advantages_cuda(
        part["n_segments"].data_ptr(), part["coalition_offsets"].data_ptr(), part["coalitions"].data_ptr(),
        part["values"].data_ptr(), phi_offsets.data_ptr(), part["segment_spans"].data_ptr(),
        part["token_offsets"].data_ptr(), part["token_mask"].data_ptr(), part["answer_mask"].data_ptr(),
        part["advantages"].data_ptr(), n_responses=n_responses, n_tokens=n_tokens, mode=mode, alpha=alpha,
        invert_negative=invert, phi=phi.data_ptr(), scratch=scratch.data_ptr(), out=out.data_ptr(),
        stream=_stream_of(device),
    )
    return out


# ------------------------------------------------------------------ fused NDCG

def pool_ndcg_dense(
    queries: Any,
    corpus: Any,
    pool_items: Any,
    pool_relevance: Any,
    query_pool: Any,
    k: int,
    gain: reference.GainMode = "linear",
    *,
    backend: Backend = "auto",
    precision: DotPrecision = "ieee",
) -> Any:
    """``reference.pool_ndcg_dense`` on the path :func:`resolve_backend` picks; ``[C]``.

    On the GPU the corpus may stay in host memory (numpy): it then streams to the device
    in pieces, so only the pools' rows and one piece are resident at a time.
    ``precision`` is the Triton kernel's dot precision (kernels/triton/fused_ndcg.py).
    """
    arrays = (queries, corpus, pool_items, pool_relevance, query_pool)
    kernel = resolve_backend("ndcg", backend, *arrays)
    if kernel == "cpu":
        from ospo_fast.ndcg import pool_ndcg_dense as on_cpu

        return on_cpu(*arrays, k, gain, backend="cpu")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if precision not in ("ieee", "tf32x3", "tf32"):
        raise ValueError(f"precision must be 'ieee', 'tf32x3' or 'tf32', got {precision!r}")
    out = _fused_ndcg(_work_device(arrays), *arrays, k, gain, precision)
    return like_inputs(out, *arrays)


def _fused_ndcg(
    device: torch.device, queries: Any, corpus: Any, pool_items: Any, pool_relevance: Any, query_pool: Any,
    k: int, gain: str, precision: str,
) -> torch.Tensor:
    import torch

    from ospo_fast.kernels import fused_ndcg as fused

    items = _on(device, pool_items, torch.int64)  # [S, P]
    relevance = _on(device, pool_relevance, torch.float64)  # [S, P]
    owner = _on(device, query_pool, torch.int64).reshape(-1)  # [C]
    n_queries, dim = tuple(queries.shape)
    n_corpus = int(corpus.shape[0])
    _require(len(corpus.shape) == 2 and corpus.shape[1] == dim,
             f"queries [C, d] and corpus [N, d] must share d, got {tuple(queries.shape)} and {tuple(corpus.shape)}")
    _require(items.dim() == 2, f"pool_items must be [S, P], got shape {tuple(items.shape)}")
    _require_shape("pool_relevance", relevance, tuple(items.shape))
    _require_shape("query_pool", owner, (n_queries,))
    n_pools, pool_size = items.shape
    _require(bool(((owner >= 0) & (owner < n_pools)).all()), f"query_pool entries must be in [0, {n_pools})")
    _require(bool(((items >= -1) & (items < n_corpus)).all()),
             f"pool_items must be -1 or catalog rows in [0, {n_corpus})")
    gains = fused.pool_gains(items, relevance, gain)  # [S, P]
    ideal = fused.ideal_dcg(items, gains, k)  # [S]
    resident = is_tensor(corpus) and corpus.device == device
    if resident:
        vectors, vector_rows = _on(device, corpus, torch.float32), items
        corpus_bytes = 0
    else:
        vectors, vector_rows = _pool_rows_on_device(device, corpus, items)
        corpus_bytes = int(vectors.numel()) * 4
    free = free_device_memory(device)
    # A host corpus streams in pieces planned on half the budget; the queries get the rest.
    corpus_rows = n_corpus if resident else rows_per_pass(n_corpus, 4 * dim, corpus_bytes, free // 2)
    piece_bytes = 0 if resident else min(n_corpus, corpus_rows) * 4 * dim
    # query, pool scores / items / gains / positions / counts and their sorting temporaries
    per_query = 4 * dim + 96 * pool_size + 16
    fixed = n_pools * pool_size * 28 + corpus_bytes + piece_bytes
    out = torch.zeros(n_queries, dtype=torch.float32, device=device)
    if n_queries == 0:
        return out
    for q0, q1 in passes(n_queries, rows_per_pass(n_queries, per_query, fixed, free)):
        q = _on(device, queries[q0:q1], torch.float32)
        pool_of = owner[q0:q1]
        scores = fused.pool_scores(q, vectors, vector_rows, pool_of)
        s_scores, s_items, s_gains, positions = (
            t.contiguous() for t in fused.sort_pools(scores, items[pool_of], gains[pool_of])
        )
        counts = fused.initial_counts(s_items, k)
        for start, stop in ((0, n_corpus),) if resident else passes(n_corpus, corpus_rows):
            piece = vectors if resident else _on(device, corpus[start:stop], torch.float32)
            fused.count_beaters(q, piece, s_scores, s_items, counts, k, corpus_start=start, precision=precision)
        out[q0:q1] = fused.ndcg_from_counts(counts, s_gains, positions, ideal[pool_of].contiguous(), k)
    return out


def _pool_rows_on_device(
    device: torch.device, corpus: Any, items: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Only the corpus rows the pools use, on ``device``, and the pools re-pointed at them."""
    import torch

    used = torch.unique(items[items >= 0])  # [U] sorted
    rows = corpus[used.to(corpus.device)] if is_tensor(corpus) else np.asarray(corpus)[used.cpu().numpy()]
    remapped = torch.where(items >= 0, torch.searchsorted(used, items.clamp(min=0)), -1)  # [S, P]
    return _on(device, rows, torch.float32), remapped.contiguous()


# ------------------------------------------------------------------ packing

def pack_query_windows(
    token_ids: Any, token_offsets: Any, segment_offsets: Any, coalition_offsets: Any, coalitions: Any, *,
    cls_id: int, sep_id: int, pad_id: int, max_length: int, pad_to: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``ospo_fast.packing.pack_query_windows`` with the CUDA kernel; int64 ``[K, L]`` tensors."""
    import torch

    arrays = (token_ids, token_offsets, segment_offsets, coalition_offsets, coalitions)
    device = _work_device(arrays)
    windows = _on(device, coalitions, torch.int32).reshape(-1, 2)
    ids, offsets, first_of, owner = _pack_inputs(device, *arrays[:4], n_rows=windows.shape[0])
    n_segments = torch.diff(_on(device, segment_offsets, torch.int64))[owner]
    start, end = windows[:, 0].long(), windows[:, 1].long()
    _require(not bool(((start < 0) | (start > end) | (end > n_segments)).any()),
             "coalitions must be windows (start, end) with 0 <= start <= end <= the response's segments")
    content = offsets[first_of + end] - offsets[first_of + start]
    width = _packed_width(content, max_length, pad_to)
    input_ids, attention_mask = _packed_outputs(device, owner.numel(), width)
    core.pack_query_windows_cuda(
        ids.data_ptr(), offsets.data_ptr(), first_of.data_ptr(), windows.data_ptr(), n_rows=owner.numel(),
        cls_id=cls_id, sep_id=sep_id, pad_id=pad_id, max_length=max_length, width=width,
        input_ids=input_ids.data_ptr(), attention_mask=attention_mask.data_ptr(), stream=_stream_of(device),
    )
    return like_inputs((input_ids, attention_mask), *arrays)


def pack_query_subsets(
    token_ids: Any, token_offsets: Any, segment_offsets: Any, coalition_offsets: Any, masks: Any, *,
    cls_id: int, sep_id: int, pad_id: int, max_length: int, pad_to: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``ospo_fast.packing.pack_query_subsets`` with the CUDA kernel; int64 ``[K, L]`` tensors."""
    import torch

    arrays = (token_ids, token_offsets, segment_offsets, coalition_offsets, masks)
    device = _work_device(arrays)
    rows = _on(device, masks, torch.bool)
    _require(rows.dim() == 2, f"masks must be [K, n_max], got shape {tuple(rows.shape)}")
    ids, offsets, first_of, owner = _pack_inputs(device, *arrays[:4], n_rows=rows.shape[0])
    n_segments = torch.diff(_on(device, segment_offsets, torch.int64))[owner]
    columns = torch.arange(rows.shape[1], device=device)
    _require(not bool((rows & (columns[None, :] >= n_segments[:, None])).any()),
             "masks must not set columns past their response's segment count")
    lengths = torch.diff(offsets)  # [S]
    if lengths.numel():
        segment = (first_of[:, None] + columns[None, :]).clamp(max=lengths.numel() - 1)  # [K, n_max]
        content = torch.where(rows, lengths[segment], 0).sum(dim=1)  # [K]
    else:
        content = torch.zeros(rows.shape[0], dtype=torch.int64, device=device)
    width = _packed_width(content, max_length, pad_to)
    input_ids, attention_mask = _packed_outputs(device, owner.numel(), width)
    core.pack_query_subsets_cuda(
        ids.data_ptr(), offsets.data_ptr(), first_of.data_ptr(), rows.data_ptr(), mask_stride=rows.shape[1],
        n_rows=owner.numel(), cls_id=cls_id, sep_id=sep_id, pad_id=pad_id, max_length=max_length, width=width,
        input_ids=input_ids.data_ptr(), attention_mask=attention_mask.data_ptr(), stream=_stream_of(device),
    )
    return like_inputs((input_ids, attention_mask), *arrays)


def _pack_inputs(
    device: torch.device, token_ids: Any, token_offsets: Any, segment_offsets: Any, coalition_offsets: Any, *,
    n_rows: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids int32, token offsets, first segment of each row, owner response of each row)."""
    import torch

    ids = _on(device, token_ids, torch.int32).reshape(-1)
    offsets = _on(device, token_offsets, torch.int64).reshape(-1)
    segments = _on(device, segment_offsets, torch.int64).reshape(-1)
    rows = _on(device, coalition_offsets, torch.int64).reshape(-1)
    _check_offsets(offsets, ids.numel(), "segment_token_offsets", "segment_token_ids")
    _check_offsets(segments, offsets.numel() - 1, "segment_offsets", "the segments")
    _require_shape("coalition_offsets", rows, tuple(segments.shape))
    _check_offsets(rows, n_rows, "coalition_offsets", "the coalition rows")
    owner = torch.repeat_interleave(torch.arange(rows.numel() - 1, device=device), torch.diff(rows))
    return ids, offsets, segments[owner].contiguous(), owner


def _packed_width(content_lengths: torch.Tensor, max_length: int, pad_to: int | None) -> int:
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 ([CLS] and [SEP]), got {max_length}")
    longest = int(content_lengths.clamp(max=max_length - 2).max()) + 2 if content_lengths.numel() else 0
    if pad_to is None:
        return longest
    if pad_to < longest:
        raise ValueError(f"pad_to must be >= the longest packed row ({longest}), got {pad_to}")
    return pad_to


def _packed_outputs(device: torch.device, n_rows: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    return (torch.empty((n_rows, width), dtype=torch.int64, device=device),
            torch.empty((n_rows, width), dtype=torch.int64, device=device))
