"""From segment credit to per-token advantages (spec §6).

Native twin: ``csrc/ospo/credit.cpp``; plain twin: :mod:`ospo_fast.ops.reference`;
GPU twins of the fused step: :mod:`ospo_fast.ops.owen_gpu`.
Every redistribution keeps the sequence mean: ``mean(A) == Â`` in every mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ospo_fast.ops import owen_gpu, reference
from ospo_fast.ops.arrays import as_bool, as_float, as_int, as_pairs, as_real
from ospo_fast.ops.device import like_inputs, tensor_device, to_numpy
from ospo_fast.ops.dispatch import resolve_backend, work_device
from ospo_fast.ops.native import core
from ospo_fast.types import Backend, OwenEstimator, RedistributionMode, check_choice


def token_credit(segment_spans: Any, token_offsets: Any, phi: Any) -> np.ndarray:
    """Character-overlap projection ``Wᵀφ`` of spec §6.1; float64 ``[T]``.

    ``segment_spans [n, 2]`` and ``token_offsets [T, 2]`` are half-open char spans in
    the same text; each token's credit is the overlap-weighted mean of the ``phi [n]``
    of the segments it touches, 0 when it touches none.
    """
    spans = as_pairs("segment_spans", segment_spans)
    offsets = as_pairs("token_offsets", token_offsets)
    values = as_float("phi", phi).reshape(-1)
    if core is None:
        return reference.token_credit(spans, offsets, values)
    return core.token_credit(spans, offsets, values)


def redistribute(
    credit: Any,
    advantage: float,
    mode: RedistributionMode = "prop",
    *,
    answer_mask: Any | None = None,
    alpha: float = 0.7,
    credit_scale: float | None = None,
) -> np.ndarray:
    """Token advantages of one response (spec §6.2–6.4); float64 ``[T]``.

    Min-max the answer tokens' credit, weight them by prop / rank / hybrid and give
    them ``T_ans · p_t · Â``; tokens outside ``answer_mask`` get ``Â``. RANK gives the
    highest credit the highest weight, ties sharing the average rank. Mode ``signed``
    gives ``Â + credit_scale · (c_t − mean c)`` (``credit_scale`` required there only).
    """
    c = as_float("credit", credit).reshape(-1)
    mask = None if answer_mask is None else as_bool("answer_mask", answer_mask)
    adv, a = as_real("advantage", advantage), as_real("alpha", alpha)
    scale = None if credit_scale is None else as_real("credit_scale", credit_scale)
    if core is None:
        return reference.redistribute(c, adv, mode, answer_mask=mask, alpha=a, credit_scale=scale)
    return core.redistribute(c, adv, mode, mask, a, scale)


def redistribute_batch(
    credit: Any,
    advantages: Any,
    mode: RedistributionMode = "prop",
    *,
    token_mask: Any,
    answer_mask: Any | None = None,
    alpha: float = 0.7,
    credit_scale: Any | None = None,
) -> np.ndarray:
    """:func:`redistribute` for every row of ``credit [B, T]``; padding gets 0.

    Row b runs over its positions with ``token_mask`` set, with ``advantages[b]`` (and
    ``credit_scale[b]`` in mode signed); ``answer_mask`` defaults to ``token_mask``.
    """
    c = as_float("credit", credit)
    adv = as_float("advantages", advantages)
    tokens = as_bool("token_mask", token_mask)
    answers = tokens if answer_mask is None else as_bool("answer_mask", answer_mask)
    a = as_real("alpha", alpha)
    scales = None if credit_scale is None else as_float("credit_scale", credit_scale).reshape(-1)
    if core is None:
        return reference.redistribute_batch(
            c, adv, mode, token_mask=tokens, answer_mask=answers, alpha=a, credit_scale=scales
        )
    return core.redistribute_batch(c, adv, mode, tokens, answers, a, scales)


def token_credit_batch(
    segment_spans: Any, phi_offsets: Any, phi: Any, token_offsets: Any, token_mask: Any
) -> np.ndarray:
    """:func:`token_credit` per row; spans and ``phi`` are CSR by ``phi_offsets [B+1]``.

    ``token_offsets [B, T, 2]``; padding (``token_mask [B, T]`` false) gets 0.
    """
    spans = as_pairs("segment_spans", segment_spans)
    offsets = as_int("phi_offsets", phi_offsets)
    values = as_float("phi", phi)
    tokens = as_int("token_offsets", token_offsets)
    mask = as_bool("token_mask", token_mask)
    if core is None:
        return reference.token_credit_batch(spans, offsets, values, tokens, mask)
    return core.token_credit_batch(spans, offsets, values, tokens, mask)


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
    mode: RedistributionMode = "prop",
    *,
    alpha: float = 0.7,
    invert_negative: bool = False,
    backend: Backend = "auto",
    return_phi: bool = False,
    estimator: OwenEstimator = "spec",
    credit_scale: Any | None = None,
) -> Any:
    """One RL step's OSPO advantages from coalition values, in one call; ``[B, T]``.

    Owen values (:func:`ospo_fast.owen_values_batch` with ``estimator``) → token credit
    (:func:`token_credit_batch`) → :func:`redistribute_batch`. A response with at
    most one segment gets uniform weights. ``invert_negative`` negates the credit of
    rows with ``Â < 0`` (the open question of spec §10). Mode ``signed`` needs
    ``credit_scale [B]`` (advantage units per unit of credit, e.g. ``1 / (σ_group + ε)``).

    CUDA tensors run the fused GPU kernel (one launch per pass, float32 result on the
    device); numpy or CPU tensors run the C++ core (float64). ``backend`` forces
    "cpu", "cuda" or "triton" (see :mod:`ospo_fast.ops.dispatch`). ``return_phi``
    also returns the Owen values the pass computed: ``(A [B, T], phi [sum n] float64)``.
    """
    inputs = (n_segments, coalition_offsets, coalitions, values, segment_spans, token_offsets, token_mask,
              answer_mask, advantages)
    check_choice("mode", mode, RedistributionMode)
    check_choice("estimator", estimator, OwenEstimator)
    alpha = as_real("alpha", alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    require_signed_arguments(mode, credit_scale, bool(invert_negative))
    kernel = resolve_backend("owen", backend, *inputs)
    if kernel != "cpu":
        batch = owen_gpu.checked_batch(work_device(kernel, *inputs), *inputs, credit_scales=credit_scale)
        result, phi = owen_gpu.token_advantages(kernel, batch, mode, float(alpha), bool(invert_negative), estimator)
        out = like_inputs(result, *inputs)
        return (out, phi_like_inputs(phi, *inputs)) if return_phi else out
    host = [to_numpy(value) for value in inputs]
    args = (
        as_int("n_segments", host[0]),
        as_int("coalition_offsets", host[1]),
        as_int("coalitions", host[2], np.int32),
        as_float("values", host[3]),
        as_pairs("segment_spans", host[4]),
        as_int("token_offsets", host[5]),
        as_bool("token_mask", host[6]),
        as_bool("answer_mask", host[7]),
        as_float("advantages", host[8]),
    )
    scales = None if credit_scale is None else as_float("credit_scale", to_numpy(credit_scale)).reshape(-1)
    if core is None:
        result, phi = reference.token_advantages_batch(
            *args, mode, alpha=alpha, invert_negative=invert_negative, return_phi=True, estimator=estimator,
            credit_scale=scales,
        )
    else:
        result, phi = core.token_advantages_batch(
            *args, mode, float(alpha), bool(invert_negative), estimator, scales
        )
    out = like_inputs(result, *inputs)
    return (out, phi_like_inputs(phi, *inputs)) if return_phi else out


def require_signed_arguments(mode: RedistributionMode, credit_scale: Any | None, invert_negative: bool) -> None:
    """Mode signed needs ``credit_scale`` and refuses ``invert_negative``; the others refuse ``credit_scale``."""
    if mode != "signed" and credit_scale is not None:
        raise ValueError("credit_scale only applies to mode 'signed'")
    if mode == "signed" and credit_scale is None:
        raise ValueError("mode 'signed' needs credit_scale [B] (advantage units per unit of credit; "
                         "ospo_fast.ops.grpo.group_advantage_scales gives GRPO's)")
    if mode == "signed" and invert_negative:
        raise ValueError("invert_negative does not apply to mode 'signed' (its credit already pushes down what hurt)")


def phi_like_inputs(phi: Any, *inputs: Any) -> Any:
    """Owen values in the inputs' form, float64 wherever they are (a tensor on the inputs' device)."""
    device = tensor_device(*inputs)
    if device is None:
        return np.asarray(to_numpy(phi), dtype=np.float64)
    import torch

    return torch.as_tensor(phi).to(device=device, dtype=torch.float64)
