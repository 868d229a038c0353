"""GPU launchers of partial-query packing: CUDA (kernels/cuda/pack_queries.cu) or Triton
(kernels/triton/pack_queries.py).

Takes the CSR token batch and the coalition rows as tensors on one device, checks the
bounds there, and launches one program per row. :mod:`ospo_fast.ops.packing` chooses
the kernel and calls this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ospo_fast.ops.device import check_offsets, on, require, require_shape, stream_of
from ospo_fast.ops.native import core
from ospo_fast.types import Kernel

if TYPE_CHECKING:
    import torch


def pack_windows(
    kernel: Kernel, device: torch.device, token_ids: Any, token_offsets: Any, segment_offsets: Any,
    coalition_offsets: Any, coalitions: Any, *, cls_id: int, sep_id: int, pad_id: int, max_length: int,
    pad_to: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 ``[K, L]`` ``(input_ids, attention_mask)`` of window rows, on ``device``."""
    import torch

    windows = on(device, coalitions, torch.int32).reshape(-1, 2)  # [K, 2]
    ids, offsets, first_of, owner = _csr_inputs(device, token_ids, token_offsets, segment_offsets,
                                                coalition_offsets, n_rows=windows.shape[0])
    n_segments = torch.diff(on(device, segment_offsets, torch.int64))[owner]  # [K]
    start, end = windows[:, 0].long(), windows[:, 1].long()
    require(not bool(((start < 0) | (start > end) | (end > n_segments)).any()),
            "coalitions must be windows (start, end) with 0 <= start <= end <= the response's segments")
    content = offsets[first_of + end] - offsets[first_of + start]  # [K]
    width = packed_width(content, max_length, pad_to)
    special = {"cls_id": cls_id, "sep_id": sep_id, "pad_id": pad_id, "max_length": max_length, "width": width}
    if kernel == "triton":
        from ospo_fast.kernels.pack_queries import pack_windows as triton_pack

        return triton_pack(ids, offsets, first_of, windows, **special)
    input_ids, attention_mask = _outputs(device, owner.numel(), width)
    core.pack_query_windows_cuda(  # type: ignore[union-attr]
        ids.data_ptr(), offsets.data_ptr(), first_of.data_ptr(), windows.data_ptr(), n_rows=owner.numel(),
        input_ids=input_ids.data_ptr(), attention_mask=attention_mask.data_ptr(), stream=stream_of(device),
        **special,
    )
    return input_ids, attention_mask


def pack_subsets(
    kernel: Kernel, device: torch.device, token_ids: Any, token_offsets: Any, segment_offsets: Any,
    coalition_offsets: Any, masks: Any, *, cls_id: int, sep_id: int, pad_id: int, max_length: int,
    pad_to: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 ``[K, L]`` ``(input_ids, attention_mask)`` of member-mask rows, on ``device``."""
    import torch

    rows = on(device, masks, torch.bool)  # [K, n_max]
    require(rows.dim() == 2, f"masks must be [K, n_max], got shape {tuple(rows.shape)}")
    ids, offsets, first_of, owner = _csr_inputs(device, token_ids, token_offsets, segment_offsets,
                                                coalition_offsets, n_rows=rows.shape[0])
    n_segments = torch.diff(on(device, segment_offsets, torch.int64))[owner]  # [K]
    columns = torch.arange(rows.shape[1], device=device)
    require(not bool((rows & (columns[None, :] >= n_segments[:, None])).any()),
            "masks must not set columns past their response's segment count")
    lengths = torch.diff(offsets)  # [S]
    if lengths.numel():
        segment = (first_of[:, None] + columns[None, :]).clamp(max=lengths.numel() - 1)  # [K, n_max]
        content = torch.where(rows, lengths[segment], 0).sum(dim=1)  # [K]
    else:
        content = torch.zeros(rows.shape[0], dtype=torch.int64, device=device)
    width = packed_width(content, max_length, pad_to)
    special = {"cls_id": cls_id, "sep_id": sep_id, "pad_id": pad_id, "max_length": max_length, "width": width}
    if kernel == "triton":
        from ospo_fast.kernels.pack_queries import pack_subsets as triton_pack

        return triton_pack(ids, offsets, first_of, rows, **special)
    input_ids, attention_mask = _outputs(device, owner.numel(), width)
    core.pack_query_subsets_cuda(  # type: ignore[union-attr]
        ids.data_ptr(), offsets.data_ptr(), first_of.data_ptr(), rows.data_ptr(), mask_stride=rows.shape[1],
        n_rows=owner.numel(), input_ids=input_ids.data_ptr(), attention_mask=attention_mask.data_ptr(),
        stream=stream_of(device), **special,
    )
    return input_ids, attention_mask


def _csr_inputs(
    device: torch.device, token_ids: Any, token_offsets: Any, segment_offsets: Any, coalition_offsets: Any, *,
    n_rows: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids int32 [total], token offsets [S+1], first segment of each row [K], owner response of each row [K])."""
    import torch

    ids = on(device, token_ids, torch.int32).reshape(-1)
    offsets = on(device, token_offsets, torch.int64).reshape(-1)
    segments = on(device, segment_offsets, torch.int64).reshape(-1)
    rows = on(device, coalition_offsets, torch.int64).reshape(-1)
    check_offsets(offsets, ids.numel(), "segment_token_offsets", "segment_token_ids")
    check_offsets(segments, offsets.numel() - 1, "segment_offsets", "the segments")
    require_shape("coalition_offsets", rows, tuple(segments.shape))
    check_offsets(rows, n_rows, "coalition_offsets", "the coalition rows")
    owner = torch.repeat_interleave(torch.arange(rows.numel() - 1, device=device), torch.diff(rows))
    return ids, offsets, segments[owner].contiguous(), owner


def packed_width(content_lengths: torch.Tensor, max_length: int, pad_to: int | None) -> int:
    """Columns of the packed rows: the longest row after truncation, or ``pad_to``."""
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 ([CLS] and [SEP]), got {max_length}")
    longest = int(content_lengths.clamp(max=max_length - 2).max()) + 2 if content_lengths.numel() else 0
    if pad_to is None:
        return longest
    if pad_to < longest:
        raise ValueError(f"pad_to must be >= the longest packed row ({longest}), got {pad_to}")
    return pad_to


def _outputs(device: torch.device, n_rows: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    return (torch.empty((n_rows, width), dtype=torch.int64, device=device),
            torch.empty((n_rows, width), dtype=torch.int64, device=device))
