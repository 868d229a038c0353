"""One launch per RL step: Owen values -> token credit -> token advantages.

Estimators: spec §5 (``ESTIMATOR`` 0) or size-stratified (1); modes prop, rank, hybrid
(spec §6.4) and signed (``MODE`` 3: Â plus the scaled, centred credit).

Program ``b`` handles response ``b`` of the CSR batch from its coalition values to its
row of advantages, so a step costs one launch whatever the batch size. The math is
``reference.token_advantages_batch`` (spec §5-§6); the CUDA twin is
``kernels/cuda/owen_advantages.cu`` and the CPU twin ``ospo::token_advantages_batch``.

Everything inside runs in float64, because min-max scaling amplifies rounding when a
response's credits are close together and the RANK mode must see the reference's ties:
the token credit is computed in the reference's order (``overlap / length``, then the
column normalisation), so a token inside one segment gets exactly that segment's φ.
Inputs may be float32; the advantages come back float32 and φ float64.

Coalitions follow the reference's set semantics: every empty window is ∅, and when a
set appears in several rows its last row's value is the one looked up. Each program
finds windows through its own ``[(n + 1)²]`` table of row indices, so the Owen sum is
linear in the number of rows.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ospo_fast.types import OwenEstimator, RedistributionMode, check_choice

# The kernel's code for each mode (its MODE constexpr) and estimator (ESTIMATOR).
MODE_IDS: dict[str, int] = {"prop": 0, "rank": 1, "hybrid": 2, "signed": 3}
ESTIMATOR_IDS: dict[str, int] = {"spec": 0, "stratified": 1}
# The [BLOCK_T, chunk] tiles of the credit (segments) and RANK (tokens) loops hold at
# most this many float64 values, so long completions take narrower chunks.
TILE_ELEMENTS = 4096
MAX_CHUNK = 16
ROW_CHUNK = 32  # coalition rows per [BLOCK_S, chunk] tile of the Owen sum


@triton.jit
def _shapley_weights(n, sizes):
    """``1 / (n · C(n − 1, s))`` for each size, as a product of factors below 1.

    The symmetry ``C(n − 1, s) = C(n − 1, n − 1 − s)`` keeps every factor ``t / (n − t)``
    below 1, so the product only underflows where the weight itself does.
    """
    smaller = tl.minimum(sizes, n - 1 - sizes)
    weights = tl.full(sizes.shape, 1.0, tl.float64) / tl.maximum(n, 1).to(tl.float64)
    for t in range(1, n // 2 + 1):
        factor = t / (n - t).to(tl.float64)
        weights = tl.where(t <= smaller, weights * factor, weights)
    return weights


@triton.jit
def _row_of(table_ptr, n, start, end, mask):
    """Row index of the window ``[start, end)`` (-1 when not evaluated); every empty window is ∅."""
    key = tl.where(start == end, 0, start * (n + 1) + end)
    return tl.load(table_ptr + key, mask=mask, other=-1)


@triton.jit
def _fill_table(coalitions_ptr, table_ptr, row_lo, n_rows, n, ROW_CHUNK: tl.constexpr):
    """``table`` ([(n + 1)²] int32, all -1 on entry) maps each window to its row; the
    reference keys values by set, so the last row of a repeated set wins (atomic max)."""
    for r0 in range(0, n_rows, ROW_CHUNK):
        rows = r0 + tl.arange(0, ROW_CHUNK)
        row_ok = rows < n_rows
        start = tl.load(coalitions_ptr + 2 * (row_lo + rows), mask=row_ok, other=0)
        end = tl.load(coalitions_ptr + 2 * (row_lo + rows) + 1, mask=row_ok, other=0)
        tl.atomic_max(table_ptr + tl.where(start == end, 0, start * (n + 1) + end), rows, mask=row_ok)
    tl.debug_barrier()  # the table is read back by the estimators


@triton.jit
def _owen_phi(
    coalitions_ptr, values_ptr, table_ptr, row_lo, n_rows, n, BLOCK_S: tl.constexpr, ROW_CHUNK: tl.constexpr
):
    """φ [BLOCK_S] float64 of one response from its window rows (spec §5), through the filled table."""
    segments = tl.arange(0, BLOCK_S)
    segment_ok = segments < n
    single_row = _row_of(table_ptr, n, segments, segments + 1, segment_ok)  # [S]
    single_value = tl.load(values_ptr + row_lo + single_row, mask=single_row >= 0, other=0.0).to(tl.float64)
    phi = tl.zeros([BLOCK_S], dtype=tl.float64)
    for r0 in range(0, n_rows, ROW_CHUNK):
        rows = r0 + tl.arange(0, ROW_CHUNK)
        row_ok = rows < n_rows
        start = tl.load(coalitions_ptr + 2 * (row_lo + rows), mask=row_ok, other=0)  # [R] int32
        end = tl.load(coalitions_ptr + 2 * (row_lo + rows) + 1, mask=row_ok, other=0)  # [R] int32
        empty = start == end
        base = tl.load(values_ptr + row_lo + _row_of(table_ptr, n, start, end, row_ok), mask=row_ok, other=0.0)
        base = base.to(tl.float64)
        weight = _shapley_weights(n, end - start)  # [R]
        # A non-empty window stays a window only by growing into a neighbour.
        right = _row_of(table_ptr, n, start, end + 1, row_ok & ~empty & (end < n))
        right_value = tl.load(values_ptr + row_lo + right, mask=right >= 0, other=0.0).to(tl.float64)
        gain_right = tl.where(right >= 0, (right_value - base) * weight, 0.0)  # [R] to segment `end`
        left = _row_of(table_ptr, n, start - 1, end, row_ok & ~empty & (start > 0))
        left_value = tl.load(values_ptr + row_lo + left, mask=left >= 0, other=0.0).to(tl.float64)
        gain_left = tl.where(left >= 0, (left_value - base) * weight, 0.0)  # [R] to segment `start - 1`
        # ∅ grows into every singleton that was evaluated.
        from_empty = tl.where(
            (row_ok & empty)[None, :] & (single_row >= 0)[:, None],
            (single_value[:, None] - base[None, :]) * weight[None, :],
            0.0,
        )  # [S, R]
        to_right = tl.where(end[None, :] == segments[:, None], gain_right[None, :], 0.0)  # [S, R]
        to_left = tl.where(start[None, :] - 1 == segments[:, None], gain_left[None, :], 0.0)  # [S, R]
        phi += tl.sum(from_empty + to_right + to_left, axis=1)
    return phi


@triton.jit
def _window_delta(values_ptr, table_ptr, row_lo, n, base_start, base_end, grown_start, grown_end, ok):
    """``v(grown) − v(base)`` [S] float64 where both windows were scored, and whether they were."""
    base = _row_of(table_ptr, n, base_start, base_end, ok)
    grown = _row_of(table_ptr, n, grown_start, grown_end, ok & (base >= 0))
    scored = grown >= 0
    base_value = tl.load(values_ptr + row_lo + base, mask=scored, other=0.0).to(tl.float64)
    grown_value = tl.load(values_ptr + row_lo + grown, mask=scored, other=0.0).to(tl.float64)
    return tl.where(scored, grown_value - base_value, 0.0), scored


@triton.jit
def _stratified_phi(values_ptr, table_ptr, row_lo, n, BLOCK_S: tl.constexpr):
    """φ [BLOCK_S] float64 by size strata (``ospo::stratified_phi``), shifted to efficiency.

    Per player and coalition size: the mean of the marginal contributions the plan
    scored (∅ → {i}; the window of that width ending just left of i, or starting just
    right of it, grown by i); the mean over the sizes reached; then every φ moves by
    ``(v(N) − v(∅)) / n − mean(φ)`` when N was scored. Reads the filled window table.
    """
    segments = tl.arange(0, BLOCK_S)
    ok = segments < n
    nowhere = segments * 0  # ∅ as a block of windows, one per player
    total, scored = _window_delta(values_ptr, table_ptr, row_lo, n, nowhere, nowhere, segments, segments + 1, ok)
    n_sizes = scored.to(tl.int32)
    for s in range(1, n):
        left, left_scored = _window_delta(
            values_ptr, table_ptr, row_lo, n, segments - s, segments, segments - s, segments + 1, ok & (segments >= s)
        )
        right, right_scored = _window_delta(
            values_ptr, table_ptr, row_lo, n, segments + 1, segments + 1 + s, segments, segments + 1 + s,
            ok & (segments + 1 + s <= n),
        )
        count = left_scored.to(tl.int32) + right_scored.to(tl.int32)
        total += tl.where(count > 0, (left + right) / tl.maximum(count, 1).to(tl.float64), 0.0)
        n_sizes += (count > 0).to(tl.int32)
    phi = tl.where(n_sizes > 0, total / tl.maximum(n_sizes, 1).to(tl.float64), 0.0)
    n_real = tl.maximum(n, 1).to(tl.float64)
    mean = tl.sum(tl.where(ok, phi / n_real, 0.0))
    full = _row_of(table_ptr, n, 0, n, n > 0)
    empty = _row_of(table_ptr, n, 0, 0, n > 0)
    full_value = tl.load(values_ptr + row_lo + full, mask=full >= 0, other=0.0).to(tl.float64)
    empty_value = tl.load(values_ptr + row_lo + empty, mask=empty >= 0, other=0.0).to(tl.float64)
    shift = full_value / n_real - empty_value / n_real - mean
    return tl.where(ok & (full >= 0), phi + shift, phi)


@triton.jit
def _token_credit(
    spans_ptr, phi_ptr, seg_lo, n, t0, t1, BLOCK_T: tl.constexpr, SEGMENT_CHUNK: tl.constexpr
):
    """Spec §6.1 ``Wᵀφ`` [BLOCK_T] float64 in the reference's order of operations."""
    has_length = t1 > t0  # [T]
    length = tl.where(has_length, t1 - t0, 1).to(tl.float64)  # [T], 1 where unused
    column = tl.zeros([BLOCK_T], dtype=tl.float64)
    for c0 in range(0, n, SEGMENT_CHUNK):
        seg = c0 + tl.arange(0, SEGMENT_CHUNK)
        seg_ok = seg < n
        s0 = tl.load(spans_ptr + 2 * (seg_lo + seg), mask=seg_ok, other=0)
        s1 = tl.load(spans_ptr + 2 * (seg_lo + seg) + 1, mask=seg_ok, other=0)
        shared = tl.maximum(tl.minimum(s1[None, :], t1[:, None]) - tl.maximum(s0[None, :], t0[:, None]), 0)
        weight = tl.where(has_length[:, None] & seg_ok[None, :], shared.to(tl.float64) / length[:, None], 0.0)
        column += tl.sum(weight, axis=1)
    credit = tl.zeros([BLOCK_T], dtype=tl.float64)
    for c0 in range(0, n, SEGMENT_CHUNK):
        seg = c0 + tl.arange(0, SEGMENT_CHUNK)
        seg_ok = seg < n
        s0 = tl.load(spans_ptr + 2 * (seg_lo + seg), mask=seg_ok, other=0)
        s1 = tl.load(spans_ptr + 2 * (seg_lo + seg) + 1, mask=seg_ok, other=0)
        phi = tl.load(phi_ptr + seg_lo + seg, mask=seg_ok, other=0.0)
        shared = tl.maximum(tl.minimum(s1[None, :], t1[:, None]) - tl.maximum(s0[None, :], t0[:, None]), 0)
        weight = tl.where(has_length[:, None] & seg_ok[None, :], shared.to(tl.float64) / length[:, None], 0.0)
        normalised = weight / tl.where(column > 0, column, 1.0)[:, None]
        credit += tl.sum(normalised * phi[None, :], axis=1)
    return credit


@triton.jit
def _average_ranks(scratch_ptr, row_base, n_tokens, scaled, BLOCK_T: tl.constexpr, RANK_CHUNK: tl.constexpr):
    """1-based ascending ranks of the answer's scaled credit, ties averaged.

    ``scratch`` holds the row's scaled credit with NaN off the answer, and NaN never
    compares true, so only answer tokens are counted.
    """
    less = tl.zeros([BLOCK_T], dtype=tl.int32)
    equal = tl.zeros([BLOCK_T], dtype=tl.int32)
    for u0 in range(0, n_tokens, RANK_CHUNK):
        other = u0 + tl.arange(0, RANK_CHUNK)
        theirs = tl.load(scratch_ptr + row_base + other, mask=other < n_tokens, other=float("nan"))  # [U]
        less += tl.sum((theirs[None, :] < scaled[:, None]).to(tl.int32), axis=1)
        equal += tl.sum((theirs[None, :] == scaled[:, None]).to(tl.int32), axis=1)
    return less.to(tl.float64) + (equal.to(tl.float64) + 1.0) * 0.5


@triton.jit
def _owen_advantages_kernel(
    # inputs
    n_segments_ptr,  # [B] int64
    coalition_offsets_ptr,  # [B+1] int64
    coalitions_ptr,  # [K, 2] int32 windows relative to the response
    values_ptr,  # [K] float
    phi_offsets_ptr,  # [B+1] int64
    spans_ptr,  # [S, 2] int64 segment char spans
    token_offsets_ptr,  # [B, T, 2] int64 token char spans
    token_mask_ptr,  # [B, T] bool
    answer_mask_ptr,  # [B, T] bool
    advantages_ptr,  # [B] float
    credit_scales_ptr,  # [B] float (MODE 3 only)
    # outputs
    phi_ptr,  # [S] float64
    table_ptr,  # [B, (n_max + 1)²] int32 work space, all -1
    table_stride,
    scratch_ptr,  # [B, T] float64 (RANK mode only)
    out_ptr,  # [B, T] float32
    n_tokens,
    alpha,
    MODE: tl.constexpr,
    ESTIMATOR: tl.constexpr,
    INVERT_NEGATIVE: tl.constexpr,
    BLOCK_S: tl.constexpr,
    ROW_CHUNK: tl.constexpr,
    BLOCK_T: tl.constexpr,
    SEGMENT_CHUNK: tl.constexpr,
    RANK_CHUNK: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    n = tl.load(n_segments_ptr + b)
    row_lo = tl.load(coalition_offsets_ptr + b)
    n_rows = tl.load(coalition_offsets_ptr + b + 1) - row_lo
    seg_lo = tl.load(phi_offsets_ptr + b)
    advantage = tl.load(advantages_ptr + b).to(tl.float64)

    table_b = table_ptr + b * table_stride
    _fill_table(coalitions_ptr, table_b, row_lo, n_rows, n, ROW_CHUNK)
    if ESTIMATOR == 1:
        phi = _stratified_phi(values_ptr, table_b, row_lo, n, BLOCK_S)
    else:
        phi = _owen_phi(coalitions_ptr, values_ptr, table_b, row_lo, n_rows, n, BLOCK_S, ROW_CHUNK)
    segments = tl.arange(0, BLOCK_S)
    tl.store(phi_ptr + seg_lo + segments, phi, mask=segments < n)
    tl.debug_barrier()  # the credit below reads φ back in chunks

    tokens = tl.arange(0, BLOCK_T)
    token_ok = tokens < n_tokens
    row_base = b * n_tokens
    real = tl.load(token_mask_ptr + row_base + tokens, mask=token_ok, other=0) != 0  # [T]
    answer = real & (tl.load(answer_mask_ptr + row_base + tokens, mask=token_ok, other=0) != 0)  # [T]
    t0 = tl.load(token_offsets_ptr + 2 * (row_base + tokens), mask=token_ok, other=0)  # [T]
    t1 = tl.load(token_offsets_ptr + 2 * (row_base + tokens) + 1, mask=token_ok, other=0)  # [T]
    credit = _token_credit(spans_ptr, phi_ptr, seg_lo, n, t0, t1, BLOCK_T, SEGMENT_CHUNK)  # [T]
    if n <= 1:  # spec §6.2: with at most one segment every token weighs the same
        credit = tl.zeros([BLOCK_T], dtype=tl.float64)
    if INVERT_NEGATIVE:
        if advantage < 0:
            credit = -credit

    n_answer = tl.sum(answer.to(tl.int64))
    answer_count = tl.maximum(n_answer, 1).to(tl.float64)
    # Signed mode's mean answer credit, a sum of c / n_answer (math.h signed_advantage).
    mean_credit = tl.sum(tl.where(answer, credit / answer_count, 0.0))
    raw_credit = credit
    # Off-answer lanes are replaced by in-range values so that nothing below is inf/NaN.
    lowest = tl.min(tl.where(answer, credit, float("inf")))
    lowest = tl.where(n_answer > 0, lowest, 0.0)
    credit = tl.where(answer, credit, lowest)
    spread = tl.max(credit) - lowest
    scaled = tl.where(spread == 0, 0.5, (credit - lowest) / tl.where(spread == 0, 1.0, spread))  # [T]
    scaled_sum = tl.sum(tl.where(answer, scaled, 0.0))
    prop = scaled / tl.where(scaled_sum == 0, 1.0, scaled_sum)
    if MODE == 1:
        tl.store(scratch_ptr + row_base + tokens, tl.where(answer, scaled, float("nan")), mask=token_ok)
        tl.debug_barrier()
        ranks = _average_ranks(scratch_ptr, row_base, n_tokens, scaled, BLOCK_T, RANK_CHUNK)
        weight = ranks / (0.5 * answer_count * (answer_count + 1.0))
    elif MODE == 2:
        weight = alpha * prop + (1.0 - alpha) / answer_count
    else:
        weight = prop
    on_answer = answer_count * weight * advantage
    if MODE == 3:
        scale = tl.load(credit_scales_ptr + b).to(tl.float64)
        on_answer = advantage + (2.0 * scale) * (0.5 * raw_credit - 0.5 * mean_credit)
    result = tl.where(answer, on_answer, tl.where(real, advantage, 0.0))
    tl.store(out_ptr + row_base + tokens, result.to(tl.float32), mask=token_ok)


def _block(n: int, floor: int = 1) -> int:
    return triton.next_power_of_2(max(int(n), floor))


def owen_token_advantages(
    n_segments: torch.Tensor,
    coalition_offsets: torch.Tensor,
    coalitions: torch.Tensor,
    values: torch.Tensor,
    segment_spans: torch.Tensor,
    token_offsets: torch.Tensor,
    token_mask: torch.Tensor,
    answer_mask: torch.Tensor,
    advantages: torch.Tensor,
    mode: RedistributionMode = "prop",
    *,
    alpha: float = 0.7,
    invert_negative: bool = False,
    estimator: OwenEstimator = "spec",
    credit_scales: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """OSPO token advantages of a CSR batch in one launch.

    Shapes: ``n_segments [B]``, ``coalition_offsets [B+1]``, ``coalitions [K, 2]`` windows,
    ``values [K]``, ``segment_spans [sum n, 2]``, ``token_offsets [B, T, 2]``,
    ``token_mask``/``answer_mask [B, T]``, ``advantages [B]``, all on one device;
    ``credit_scales [B]`` in mode "signed" (advantage units per unit of credit).
    Returns ``(advantages [B, T] float32, phi [sum n] float64)``. Every window must lie
    within its response's segments; the kernel trusts that (``ospo_fast.gpu`` checks it).
    """
    check_choice("mode", mode, RedistributionMode)
    check_choice("estimator", estimator, OwenEstimator)
    if (mode == "signed") != (credit_scales is not None):
        raise ValueError("credit_scales is required with mode 'signed' and only applies there")
    device = values.device
    n_segments = n_segments.to(device=device, dtype=torch.int64).contiguous()
    coalition_offsets = coalition_offsets.to(device=device, dtype=torch.int64).contiguous()
    n_responses = n_segments.numel()
    n_tokens = token_mask.shape[1] if token_mask.dim() == 2 else 0
    phi_offsets = torch.zeros(n_responses + 1, dtype=torch.int64, device=device)
    torch.cumsum(n_segments, 0, out=phi_offsets[1:])
    phi = torch.empty(int(phi_offsets[-1]), dtype=torch.float64, device=device)
    out = torch.empty((n_responses, n_tokens), dtype=torch.float32, device=device)
    if n_responses == 0:
        return out, phi
    max_segments = int(n_segments.max())
    table_stride = (max_segments + 1) ** 2
    table = torch.full((n_responses, table_stride), -1, dtype=torch.int32, device=device)
    scratch = torch.empty((n_responses, n_tokens) if mode == "rank" else (1,), dtype=torch.float64, device=device)
    block_t = _block(n_tokens, 16)
    chunk = max(1, min(MAX_CHUNK, TILE_ELEMENTS // block_t))
    _owen_advantages_kernel[(n_responses,)](
        n_segments,
        coalition_offsets,
        coalitions.to(device=device, dtype=torch.int32).contiguous(),
        values.contiguous(),
        phi_offsets,
        segment_spans.to(device=device, dtype=torch.int64).contiguous(),
        token_offsets.to(device=device, dtype=torch.int64).contiguous(),
        token_mask.to(device=device, dtype=torch.bool).contiguous(),
        answer_mask.to(device=device, dtype=torch.bool).contiguous(),
        advantages.to(device=device).contiguous(),
        advantages if credit_scales is None else credit_scales.to(device=device).contiguous(),
        phi,
        table,
        table_stride,
        scratch,
        out,
        n_tokens,
        float(alpha),
        MODE=MODE_IDS[mode],
        ESTIMATOR=ESTIMATOR_IDS[estimator],
        INVERT_NEGATIVE=bool(invert_negative),
        BLOCK_S=_block(max_segments, 16),
        ROW_CHUNK=ROW_CHUNK,
        BLOCK_T=block_t,
        SEGMENT_CHUNK=chunk,
        RANK_CHUNK=chunk,
        num_warps=4 if block_t <= 256 else 8,
    )
    return out, phi
