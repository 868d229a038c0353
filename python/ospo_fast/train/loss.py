"""The policy loss: token-level PPO clip with an optional KL penalty (spec §7).

A standalone function on tensors, so another trainer can import it instead of copying it.
"""

from __future__ import annotations

from typing import Literal

import torch

LossAggregation = Literal["token-mean", "seq-mean"]


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL(π ‖ π_ref) estimate ``exp(r) − r − 1`` with ``r = log π_ref − log π`` (≥ 0, unbiased)."""
    log_ratio = ref_logprobs - logprobs
    return torch.exp(log_ratio) - log_ratio - 1.0


def ppo_clip_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    beta: float = 0.0,
    ref_logprobs: torch.Tensor | None = None,
    aggregation: LossAggregation = "token-mean",
    total_tokens: float | None = None,
    total_sequences: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``−min(ρ_t A_t, clip(ρ_t, 1 − ε_low, 1 + ε_high) A_t) + β · KL_t``, aggregated.

    logprobs       [B, T] log π(token) under the policy being trained (carries grad)
    old_logprobs   [B, T] log π_old(token) at generation time (no grad)
    advantages     [B, T] per-token advantages A_t
    mask           [B, T] real completion tokens
    ref_logprobs   [B, T] log π_ref(token), needed when ``beta > 0``

    ``token-mean`` divides the masked sum by ``total_tokens`` (default: this batch's real
    tokens); ``seq-mean`` averages each sequence over its tokens, then divides by
    ``total_sequences`` (default: this batch's rows). Passing the totals of a whole
    generation makes micro-batches sum to exactly the loss of the full batch.
    Returns ``(loss, stats)``; stats are detached scalars (clip fraction, KL, ratio).
    """
    if logprobs.shape != old_logprobs.shape or logprobs.shape != advantages.shape or logprobs.shape != mask.shape:
        raise ValueError(
            f"logprobs, old_logprobs, advantages and mask must share a shape, got {tuple(logprobs.shape)}, "
            f"{tuple(old_logprobs.shape)}, {tuple(advantages.shape)}, {tuple(mask.shape)}"
        )
    if aggregation not in ("token-mean", "seq-mean"):
        raise ValueError(f"aggregation must be 'token-mean' or 'seq-mean', got {aggregation!r}")
    if beta > 0 and ref_logprobs is None:
        raise ValueError("ref_logprobs is required when beta > 0")
    weights = mask.to(logprobs.dtype)  # [B, T]
    ratio = torch.exp(logprobs - old_logprobs)  # [B, T]
    clipped_ratio = torch.clamp(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high)
    per_token = -torch.minimum(ratio * advantages, clipped_ratio * advantages)  # [B, T]
    kl = kl_k3(logprobs, ref_logprobs) if ref_logprobs is not None else torch.zeros_like(logprobs)
    if beta > 0:
        per_token = per_token + beta * kl
    if aggregation == "token-mean":
        denominator = total_tokens if total_tokens is not None else weights.sum().clamp(min=1.0)
        loss = (per_token * weights).sum() / denominator
    else:
        per_sequence = (per_token * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # [B]
        denominator = total_sequences if total_sequences is not None else float(len(per_sequence))
        loss = per_sequence.sum() / denominator
    with torch.no_grad():
        n_tokens = weights.sum().clamp(min=1.0)
        is_clipped = (ratio * advantages > clipped_ratio * advantages).to(weights.dtype)
        stats = {
            "clip_fraction": (is_clipped * weights).sum() / n_tokens,
            "kl": (kl * weights).sum() / n_tokens,
            "ratio": (ratio * weights).sum() / n_tokens,
        }
    return loss, stats
