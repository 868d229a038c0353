"""GPU launcher of the fused step op: Owen values -> token credit -> token advantages.

Takes tensors on one device and launches the CUDA kernel (kernels/cuda/owen_advantages.cu)
or the Triton kernel (kernels/triton/owen_advantages.py), one launch per pass; a batch
whose work space would not fit in half the free memory runs in several passes.
:func:`ospo_fast.ops.credit.token_advantages_batch` chooses the kernel and calls this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ospo_fast.ops.device import (
    check_offsets,
    free_memory,
    on,
    passes,
    require,
    require_shape,
    rows_per_pass,
    stream_of,
)
from ospo_fast.ops.native import core
from ospo_fast.types import Kernel, OwenEstimator

if TYPE_CHECKING:
    import torch

FLOAT32_MAX = float(np.finfo(np.float32).max)
INPUT_NAMES = ("n_segments", "coalition_offsets", "coalitions", "values", "segment_spans", "token_offsets",
               "token_mask", "answer_mask", "advantages")


def checked_batch(device: torch.device, *arrays: Any, credit_scales: Any | None = None) -> dict[str, torch.Tensor]:
    """The nine inputs of ``token_advantages_batch`` on ``device`` in the kernels' dtypes, checked,
    and mode signed's ``credit_scales [B]`` when given."""
    import torch

    dtypes = (torch.int64, torch.int64, torch.int32, torch.float32, torch.int64, torch.int64, torch.bool,
              torch.bool, torch.float32)
    batch = {name: on(device, a, dtype) for name, a, dtype in zip(INPUT_NAMES, arrays, dtypes)}
    batch["coalitions"] = batch["coalitions"].reshape(-1, 2)
    batch["segment_spans"] = batch["segment_spans"].reshape(-1, 2)
    n = batch["n_segments"]
    n_responses, n_rows = n.numel(), batch["coalitions"].shape[0]
    token_shape = tuple(batch["token_mask"].shape)
    require(len(token_shape) == 2 and token_shape[0] == n_responses,
            f"token_mask must be [B={n_responses}, T], got {token_shape}")
    require_shape("answer_mask", batch["answer_mask"], token_shape)
    require_shape("token_offsets", batch["token_offsets"], (*token_shape, 2))
    require_shape("values", batch["values"], (n_rows,))
    require_shape("advantages", batch["advantages"], (n_responses,))
    require_shape("coalition_offsets", batch["coalition_offsets"], (n_responses + 1,))
    check_offsets(batch["coalition_offsets"], n_rows, "coalition_offsets", "the coalition rows")
    require(bool((n >= 0).all()), "n_segments must be >= 0")
    require_shape("segment_spans", batch["segment_spans"], (int(n.sum()), 2))
    owner = torch.repeat_interleave(torch.arange(n_responses, device=device), torch.diff(batch["coalition_offsets"]))
    start, end = batch["coalitions"][:, 0].long(), batch["coalitions"][:, 1].long()
    require(not bool(((start < 0) | (start > end) | (end > n[owner])).any()),
            "coalitions must be windows (start, end) with 0 <= start <= end <= the response's segments")
    # The kernels hold values and advantages in float32: both must survive the conversion,
    # and A_t = T p_t Â (p_t <= 1) must stay finite there.
    require(bool(torch.isfinite(batch["values"]).all()),
            f"values must be finite in float32 (|v| <= {FLOAT32_MAX:.6g}) for the GPU kernels")
    limit = FLOAT32_MAX / max(token_shape[1], 1)
    require(bool((batch["advantages"].abs() <= limit).all()),
            f"advantages must satisfy |x| <= {limit:.6g} (A_t = T p_t Â over T = {token_shape[1]} tokens in float32)")
    if credit_scales is not None:
        scales = on(device, credit_scales, torch.float32).reshape(-1)
        require_shape("credit_scale", scales, (n_responses,))
        require(bool((torch.isfinite(scales) & (scales >= 0)).all()),
                "credit_scale must be finite and >= 0 (in float32 for the GPU kernels)")
        batch["credit_scales"] = scales
    return batch


def token_advantages(
    kernel: Kernel,
    batch: dict[str, torch.Tensor],
    mode: str,
    alpha: float,
    invert_negative: bool,
    estimator: OwenEstimator = "spec",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 ``[B, T]``, Owen values float64 ``[sum n]``) on the batch's device, in as many
    passes as memory needs."""
    import torch

    n_responses, n_tokens = batch["token_mask"].shape
    device = batch["values"].device
    out = torch.empty((n_responses, n_tokens), dtype=torch.float32, device=device)  # [B, T]
    phi_offsets = [0, *np.cumsum(batch["n_segments"].tolist()).tolist()]
    phi = torch.zeros(int(phi_offsets[-1]), dtype=torch.float64, device=device)  # [S]
    if n_responses == 0:
        return out, phi
    offsets = batch["coalition_offsets"].tolist()
    rows_most = max(b - a for a, b in zip(offsets[:-1], offsets[1:]))
    segments_most = max(int(batch["n_segments"].max()), 0)
    # token offsets, masks, float32 out and float64 scratch per token; rows, spans and the
    # Triton kernel's window table per response
    bytes_per_response = (
        n_tokens * (16 + 2 + 4 + 8) + rows_most * 12 + segments_most * 24 + (segments_most + 1) ** 2 * 4 + 48
    )
    per_pass = rows_per_pass(n_responses, bytes_per_response, 0, free_memory(device))
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
        if "credit_scales" in batch:
            part["credit_scales"] = batch["credit_scales"][b0:b1]
        out[b0:b1], phi[phi_offsets[b0] : phi_offsets[b1]] = launch_pass(
            kernel, part, mode, alpha, invert_negative, estimator
        )
    if mode == "signed" and not bool(torch.isfinite(out).all()):
        raise ValueError("mode 'signed' gave a non-finite advantage in float32: lower credit_scale or the advantages")
    return out, phi


def launch_pass(
    kernel: Kernel,
    part: dict[str, torch.Tensor],
    mode: str,
    alpha: float,
    invert_negative: bool,
    estimator: OwenEstimator = "spec",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One launch over a part of the batch: (float32 ``[b, T]``, float64 φ ``[s]``)."""
    import torch

    if kernel == "triton":
        from ospo_fast.kernels.owen_advantages import owen_token_advantages

        return owen_token_advantages(
            **part, mode=mode, alpha=alpha, invert_negative=invert_negative, estimator=estimator
        )
    scales = part.pop("credit_scales", None)
    device = part["values"].device
    n_responses, n_tokens = part["token_mask"].shape
    part = {name: tensor.contiguous() for name, tensor in part.items()}
    phi_offsets = torch.zeros(n_responses + 1, dtype=torch.int64, device=device)
    torch.cumsum(part["n_segments"], 0, out=phi_offsets[1:])
    phi = torch.empty(part["segment_spans"].shape[0], dtype=torch.float64, device=device)  # [S]
    scratch = torch.empty((n_responses, n_tokens), dtype=torch.float64, device=device)  # [b, T]
    out = torch.empty((n_responses, n_tokens), dtype=torch.float32, device=device)  # [b, T]
    core.owen_token_advantages_cuda(  # type: ignore[union-attr]
        part["n_segments"].data_ptr(), part["coalition_offsets"].data_ptr(), part["coalitions"].data_ptr(),
        part["values"].data_ptr(), phi_offsets.data_ptr(), part["segment_spans"].data_ptr(),
        part["token_offsets"].data_ptr(), part["token_mask"].data_ptr(), part["answer_mask"].data_ptr(),
        part["advantages"].data_ptr(), n_responses=n_responses, n_tokens=n_tokens, mode=mode, alpha=alpha,
        invert_negative=invert_negative, phi=phi.data_ptr(), scratch=scratch.data_ptr(), out=out.data_ptr(),
        stream=stream_of(device), estimator=estimator,
        credit_scales=0 if scales is None else scales.contiguous().data_ptr(),
    )
    return out, phi
