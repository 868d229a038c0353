"""Partial-query packing in Triton: the encoder rows of a step's coalitions.

Row k is ``[CLS] ids(segment s) for s in the coalition, in order [SEP] [PAD]...``,
truncated to ``max_length`` with ``[SEP]`` kept last: the rows of
``ospo::pack_windows`` / ``ospo::pack_subsets`` (csrc/ospo/pack.cpp), whose CUDA twin is
kernels/cuda/pack_queries.cu. One program per row; the outputs are filled with
``[PAD]`` and 0 first, and each program writes its row's ``[CLS]``, content, ``[SEP]``
and attention ones.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 64  # content positions written per step


@triton.jit
def _frame_row(ids_ptr, mask_ptr, row_base, row_length, cls_id, sep_id, BLOCK: tl.constexpr):
    """``[CLS]`` at 0, ``[SEP]`` at ``row_length - 1`` and attention ones over the row."""
    tl.store(ids_ptr + row_base, cls_id)
    tl.store(ids_ptr + row_base + row_length - 1, sep_id)
    for p0 in range(0, row_length, BLOCK):
        positions = p0 + tl.arange(0, BLOCK)
        tl.store(mask_ptr + row_base + positions, tl.full([BLOCK], 1, tl.int64), mask=positions < row_length)


@triton.jit
def _pack_windows_kernel(
    token_ids_ptr,  # [total] int32
    token_offsets_ptr,  # [S+1] int64
    first_segment_ptr,  # [K] int64
    windows_ptr,  # [K, 2] int32
    ids_ptr,  # [K, width] int64, all [PAD]
    mask_ptr,  # [K, width] int64, all 0
    width,
    max_length,
    cls_id,
    sep_id,
    BLOCK: tl.constexpr,
):
    k = tl.program_id(0).to(tl.int64)
    first = tl.load(first_segment_ptr + k)
    start = tl.load(windows_ptr + 2 * k).to(tl.int64)
    end = tl.load(windows_ptr + 2 * k + 1).to(tl.int64)
    # A window's segments are adjacent in token_ids, so its content is one slice.
    lo = tl.load(token_offsets_ptr + first + start)
    n_content = tl.minimum(tl.load(token_offsets_ptr + first + end) - lo, max_length - 2)
    row_base = k * width
    for c0 in range(0, n_content, BLOCK):
        content = c0 + tl.arange(0, BLOCK)
        keep = content < n_content
        token = tl.load(token_ids_ptr + lo + content, mask=keep, other=0)
        tl.store(ids_ptr + row_base + 1 + content, token.to(tl.int64), mask=keep)
    _frame_row(ids_ptr, mask_ptr, row_base, n_content + 2, cls_id, sep_id, BLOCK)


@triton.jit
def _pack_subsets_kernel(
    token_ids_ptr,  # [total] int32
    token_offsets_ptr,  # [S+1] int64
    first_segment_ptr,  # [K] int64
    masks_ptr,  # [K, mask_stride] bool
    mask_stride,
    ids_ptr,  # [K, width] int64, all [PAD]
    mask_ptr,  # [K, width] int64, all 0
    width,
    max_length,
    cls_id,
    sep_id,
    BLOCK: tl.constexpr,
):
    k = tl.program_id(0).to(tl.int64)
    first = tl.load(first_segment_ptr + k)
    row_base = k * width
    limit = max_length - 2  # content positions a row holds
    written = tl.zeros([], dtype=tl.int64)
    for j in range(0, mask_stride):
        member = tl.load(masks_ptr + k * mask_stride + j).to(tl.int1)
        lo = tl.load(token_offsets_ptr + first + j)
        length = tl.where(member, tl.load(token_offsets_ptr + first + j + 1) - lo, 0)
        for c0 in range(0, length, BLOCK):
            content = c0 + tl.arange(0, BLOCK)
            position = written + content
            keep = (content < length) & (position < limit)
            token = tl.load(token_ids_ptr + lo + content, mask=keep, other=0)
            tl.store(ids_ptr + row_base + 1 + position, token.to(tl.int64), mask=keep)
        written += length
    _frame_row(ids_ptr, mask_ptr, row_base, tl.minimum(written, limit) + 2, cls_id, sep_id, BLOCK)


def _outputs(n_rows: int, width: int, pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.full((n_rows, width), pad_id, dtype=torch.int64, device=device),
            torch.zeros((n_rows, width), dtype=torch.int64, device=device))


def pack_windows(
    token_ids: torch.Tensor, token_offsets: torch.Tensor, first_segment: torch.Tensor, windows: torch.Tensor, *,
    cls_id: int, sep_id: int, pad_id: int, max_length: int, width: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` int64 ``[K, width]`` of window rows.

    ``token_ids [total]`` int32 and ``token_offsets [S+1]`` are every segment's ids in
    CSR form; row k is the window ``windows[k]`` (int32 ``[K, 2]``, relative to segment
    ``first_segment[k]``). ``width`` must hold the longest row; the launcher trusts the
    bounds (``ospo_fast.ops.pack_gpu`` checks them).
    """
    n_rows = windows.shape[0]
    input_ids, attention_mask = _outputs(n_rows, width, pad_id, windows.device)
    if n_rows and width:
        _pack_windows_kernel[(n_rows,)](
            token_ids, token_offsets, first_segment, windows, input_ids, attention_mask, width, max_length,
            cls_id, sep_id, BLOCK=BLOCK,
        )
    return input_ids, attention_mask


def pack_subsets(
    token_ids: torch.Tensor, token_offsets: torch.Tensor, first_segment: torch.Tensor, masks: torch.Tensor, *,
    cls_id: int, sep_id: int, pad_id: int, max_length: int, width: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`pack_windows` for member masks ``masks`` bool ``[K, n_max]`` (column j = segment
    ``first_segment[k] + j``)."""
    n_rows, mask_stride = masks.shape
    input_ids, attention_mask = _outputs(n_rows, width, pad_id, masks.device)
    if n_rows and width:
        _pack_subsets_kernel[(n_rows,)](
            token_ids, token_offsets, first_segment, masks, mask_stride, input_ids, attention_mask, width,
            max_length, cls_id, sep_id, BLOCK=BLOCK,
        )
    return input_ids, attention_mask
