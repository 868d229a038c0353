"""The SFT warm start: teach the output format on deliberately imperfect queries.

Targets are ``<think>short reasoning</think><answer>imperfect_query</answer>``. The
imperfect query (a target attribute dropped or wrong) rather than the gold one leaves
the RL stage headroom: the format is learnt, the best query is not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ospo_fast.train.policy import completion_logprobs


def short_reasoning(row: Mapping[str, Any]) -> str:
    """One sentence naming the product type when the world records it."""
    attributes = json.loads(row.get("target_attributes") or "{}")
    product_type = attributes.get("product_type")
    if product_type:
        return f"The shopper needs a {str(product_type).lower()}."
    return "I will name the product and its key details."


def sft_target(row: Mapping[str, Any]) -> str:
    """The completion SFT teaches for ``row`` (its ``imperfect_query`` as the answer)."""
    if "imperfect_query" not in row:
        raise ValueError("SFT needs an 'imperfect_query' column in the world's queries")
    return f"<think>{short_reasoning(row)}</think><answer>{row['imperfect_query']}</answer>"


def encode_targets(tokenizer: Any, targets: Sequence[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded target tokens, each ended by the EOS: ``(ids [B, T], mask [B, T])``."""
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"][: max_tokens - 1] + [tokenizer.eos_token_id] for t in targets]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row)
        mask[b, : len(row)] = True
    return ids, mask


def sft_loss(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    targets: Sequence[str],
    *,
    max_prompt_tokens: int,
    max_target_tokens: int,
) -> torch.Tensor:
    """Mean negative log-likelihood of the target tokens (the prompt is context only)."""
    device = next(model.parameters()).device
    encoded = tokenizer(list(prompts), return_tensors="pt", padding=True, truncation=True, max_length=max_prompt_tokens)
    target_ids, target_mask = encode_targets(tokenizer, targets, max_target_tokens)
    logprobs = completion_logprobs(
        model,
        encoded["input_ids"].to(device),
        encoded["attention_mask"].to(device),
        target_ids.to(device),
        target_mask.to(device),
        temperature=1.0,
    )  # [B, T]
    mask = target_mask.to(device)
    return -(logprobs * mask).sum() / mask.sum()
