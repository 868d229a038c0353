"""OSPO advantages of a verl batch, from the advantages verl's own estimator wrote.

verl's outcome estimators (GRPO and its kin) give response ``b`` one value ``Â_b`` on
every token of its ``response_mask``. This module reads that ``Â_b`` back, decodes the
responses with each token's characters, and hands both to
:func:`ospo_fast.attribution.advantages.step_token_advantages`, which spreads ``Â_b``
over the response's tokens with mean ``Â_b``. Tensors are verl's, right-padded the way
``TensorDict.to_padded_tensor`` pads TransferQueue's nested fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ospo_fast.attribution.advantages import StepAdvantages, step_token_advantages
from ospo_fast.attribution.completions import decode_completions
from ospo_fast.integrations import check_prefix_mask

if TYPE_CHECKING:
    from ospo_fast.attribution.coalition_values import CoalitionEvaluator
    from ospo_fast.integrations.verl.settings import OSPOSettings

SAMPLE_FIELDS = ("candidate_pool", "pool_relevance")
# verl's estimators compute in float32; a row's values may differ by rounding alone.
CONSTANT_ROW_ATOL = 1e-5


def sample_of(extra_info: Any, row: int | None = None) -> dict[str, Any]:
    """The reward sample of one response: its dataset row's ``extra_info``."""
    where = "extra_info" if row is None else f"extra_info of row {row}"
    if not isinstance(extra_info, Mapping):
        raise ValueError(f"{where} must be a dict with {list(SAMPLE_FIELDS)}, got {type(extra_info).__name__}")
    missing = [name for name in SAMPLE_FIELDS if name not in extra_info]
    if missing:
        raise ValueError(
            f"{where} has no {missing[0]!r}: put each sample's pool in the dataset's extra_info column "
            "(examples/verl/prepare_data.py)"
        )
    return dict(extra_info)


def row_advantages(advantages: torch.Tensor, response_mask: torch.Tensor) -> np.ndarray:
    """Each response's single ``Â`` from verl's ``advantages [B, T]``; float64 ``[B]``, 0 for empty rows."""
    if advantages.ndim != 2 or response_mask.shape != advantages.shape:
        raise ValueError(
            f"advantages and response_mask must both be [B, T], got {tuple(advantages.shape)} and "
            f"{tuple(response_mask.shape)}"
        )
    values = advantages.detach().double().cpu().numpy()  # [B, T]
    mask = response_mask.bool().cpu().numpy()  # [B, T]
    first = mask.argmax(axis=1)  # [B] first response token (0 for an empty row)
    row = np.where(mask.any(axis=1), values[np.arange(len(values)), first], 0.0)  # [B]
    varying = np.flatnonzero((np.abs(values - row[:, None]) > CONSTANT_ROW_ATOL).any(axis=1, where=mask))
    if len(varying):
        raise ValueError(
            f"verl's advantages vary along rows {varying[:10].tolist()}: OSPO redistributes one advantage per "
            "response, so algorithm.adv_estimator must be an outcome estimator (e.g. grpo)"
        )
    return row


def verl_token_advantages(
    responses: torch.Tensor,
    response_mask: torch.Tensor,
    advantages: torch.Tensor,
    extra_infos: Sequence[Any],
    tokenizer: Any,
    eos_ids: Sequence[int],
    evaluator: CoalitionEvaluator,
    settings: OSPOSettings,
    *,
    seed: int,
) -> StepAdvantages:
    """OSPO advantages of a verl batch; ``token_advantages`` float32 ``[B, T]`` on ``advantages``' device.

    responses      [B, T] response ids, right-padded
    response_mask  [B, T] the tokens verl trains on: each row's tokens first, then padding
    advantages     [B, T] what verl's outcome estimator wrote (one value per row over its mask)
    extra_infos    [B] the dataset's ``extra_info`` of each row (``candidate_pool``, ``pool_relevance``)
    eos_ids        ids that end a response; they add no text
    """
    if responses.ndim != 2 or response_mask.shape != responses.shape:
        raise ValueError(
            f"responses and response_mask must both be [B, T], got {tuple(responses.shape)} and "
            f"{tuple(response_mask.shape)}"
        )
    if len(extra_infos) != responses.shape[0]:
        raise ValueError(f"got {len(extra_infos)} extra_info rows for {responses.shape[0]} responses")
    group_advantages = row_advantages(advantages, response_mask)  # [B]
    mask = response_mask.bool().cpu().numpy()  # [B, T]
    check_prefix_mask(mask, "response_mask")
    texts, token_offsets = decode_completions(tokenizer, responses.cpu().numpy(), mask, eos_ids)
    samples = [sample_of(info, b) for b, info in enumerate(extra_infos)]
    return step_token_advantages(
        texts, token_offsets, mask, group_advantages, samples, evaluator, settings.owen, seed=seed,
        mode=settings.mode, alpha=settings.alpha, invert_negative=settings.invert_negative, clip=settings.clip,
        out_device=advantages.device,
    )
