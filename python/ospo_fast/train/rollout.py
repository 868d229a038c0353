"""Rollouts: G sampled completions per prompt, with each token's characters in its text
(:func:`ospo_fast.attribution.completions.decode_completions`)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ospo_fast.attribution.completions import decode_completions, eos_token_ids


@dataclass
class Rollout:
    """One batch of completions; row b answers prompt b // G.

    prompt_ids, prompt_mask          [B, P] left-padded prompt tokens
    completion_ids, completion_mask  [B, T] right-padded; the mask covers the EOS when one was sampled
    texts                            [B] completion text (tokens before the EOS)
    token_offsets                    [B, T, 2] int64 char span of each token in its text; padding (0, 0)
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    texts: list[str]
    token_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


def completion_masks(completion_ids: torch.Tensor, eos_ids: Sequence[int]) -> torch.Tensor:
    """[B, T] bool: tokens up to and including the first EOS (all of them when none)."""
    is_eos = torch.isin(completion_ids, torch.tensor(list(eos_ids), device=completion_ids.device))  # [B, T]
    after_eos = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0  # strictly after the first EOS
    return ~after_eos


def _forward_parameters(model: nn.Module) -> Any:
    base = getattr(model, "module", model)  # DistributedDataParallel
    base = base.get_base_model() if hasattr(base, "get_base_model") else base
    return inspect.signature(base.forward).parameters


def cache_argument(model: nn.Module) -> str:
    """The keyword that passes a KV cache: ``cache`` in recent transformers, ``past_key_values`` before."""
    return "cache" if "cache" in _forward_parameters(model) else "past_key_values"


def prompt_prefill_cache(model: nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> Any:
    """The KV cache of each prompt but its last token, computed once for every copy of it.

    generate() would otherwise prefill each of the G identical copies of a prompt, and
    again for each decoding; on a CPU that prefill is most of the cost of a rollout. The
    last token stays uncached because generate() must run at least one position itself.
    """
    from transformers import DynamicCache

    cache = DynamicCache()
    position_ids = (prompt_mask.long().cumsum(dim=1) - 1).clamp(min=0)  # [b, P]
    # Only the cache is wanted: vocabulary logits at every prompt position would cost ~20% more.
    skip_logits = {"logits_to_keep": 1} if "logits_to_keep" in _forward_parameters(model) else {}
    model(
        input_ids=prompt_ids[:, :-1], attention_mask=prompt_mask[:, :-1], position_ids=position_ids[:, :-1],
        use_cache=True, **{cache_argument(model): cache}, **skip_logits,
    )
    return cache


@dataclass(frozen=True)
class Decoding:
    """One way to decode the same prompts: ``n_per_prompt`` completions each, greedy or sampled."""

    n_per_prompt: int
    do_sample: bool
    temperature: float = 1.0
    top_p: float = 1.0


@torch.no_grad()
def generate(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    n_per_prompt: int,
    max_new_tokens: int,
    max_prompt_tokens: int,
    do_sample: bool,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 64,
) -> Rollout:
    """``n_per_prompt`` completions of each prompt (consecutive rows), about ``batch_size`` rows per call."""
    (rollout,) = generate_passes(
        model, tokenizer, prompts, [Decoding(n_per_prompt, do_sample, temperature, top_p)],
        max_new_tokens=max_new_tokens, max_prompt_tokens=max_prompt_tokens, batch_size=batch_size,
    )
    return rollout


@torch.no_grad()
def generate_passes(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    passes: Sequence[Decoding],
    *,
    max_new_tokens: int,
    max_prompt_tokens: int,
    batch_size: int = 64,
) -> list[Rollout]:
    """One rollout per decoding of the same prompts, each prompt prefilled once for all of them.

    Evaluation decodes the held-out prompts greedily and by sampling; on a CPU the prompt
    prefill is most of a pass, so it is shared. Sampled passes draw from the torch RNG in
    pass order within each chunk of prompts, greedy ones draw nothing.
    """
    import copy

    from transformers import GenerationConfig

    if not passes:
        raise ValueError("passes must name at least one decoding")
    device = next(model.parameters()).device
    encoded = tokenizer(
        list(prompts), return_tensors="pt", padding=True, truncation=True, max_length=max_prompt_tokens
    )
    unique_ids = encoded["input_ids"].to(device)  # [N, P]
    unique_mask = encoded["attention_mask"].to(device)  # [N, P]
    eos = eos_token_ids(tokenizer, model)
    configs = [
        GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=d.do_sample,
            temperature=d.temperature if d.do_sample else None,
            top_p=d.top_p if d.do_sample else None,
            top_k=None,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos,
        )
        for d in passes
    ]
    was_training = model.training
    model.eval()
    chunks: list[list[torch.Tensor]] = [[] for _ in passes]
    prompts_per_call = max(1, batch_size // max(d.n_per_prompt for d in passes))
    share_prefill = (len(passes) > 1 or passes[0].n_per_prompt > 1) and unique_ids.shape[1] > 1
    for first in range(0, len(unique_ids), prompts_per_call):
        ids = unique_ids[first : first + prompts_per_call]
        mask = unique_mask[first : first + prompts_per_call]
        prefill = prompt_prefill_cache(model, ids, mask) if share_prefill else None
        for p, (decoding, config) in enumerate(zip(passes, configs, strict=True)):
            n = decoding.n_per_prompt
            cache = {}
            if prefill is not None:
                # generate() extends the cache it is given; only the last pass may take the original.
                own = prefill if p == len(passes) - 1 else copy.deepcopy(prefill)
                own.batch_repeat_interleave(n)
                cache = {cache_argument(model): own}
            out = model.generate(
                input_ids=ids.repeat_interleave(n, dim=0), attention_mask=mask.repeat_interleave(n, dim=0),
                generation_config=config, **cache,
            )
            chunks[p].append(out[:, ids.shape[1] :])
    model.train(was_training)
    return [
        _assemble(tokenizer, unique_ids, unique_mask, pass_chunks, decoding.n_per_prompt, eos)
        for decoding, pass_chunks in zip(passes, chunks, strict=True)
    ]


def _assemble(
    tokenizer: Any, unique_ids: torch.Tensor, unique_mask: torch.Tensor, chunks: Sequence[torch.Tensor],
    n_per_prompt: int, eos: Sequence[int],
) -> Rollout:
    width = max(c.shape[1] for c in chunks)
    completion_ids = torch.cat(
        [nn.functional.pad(c, (0, width - c.shape[1]), value=tokenizer.pad_token_id) for c in chunks]
    )  # [B, T]
    completion_mask = completion_masks(completion_ids, eos)  # [B, T]
    prompt_ids = unique_ids.repeat_interleave(n_per_prompt, dim=0)  # [B, P]
    prompt_mask = unique_mask.repeat_interleave(n_per_prompt, dim=0)  # [B, P]
    return finish_rollout(tokenizer, prompt_ids, prompt_mask, completion_ids, completion_mask, eos)


def finish_rollout(
    tokenizer: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    eos_ids: Sequence[int],
) -> Rollout:
    """Texts and token char offsets of given completions (also used to build test rollouts)."""
    texts, offsets = decode_completions(tokenizer, completion_ids.cpu().numpy(), completion_mask.cpu().numpy(), eos_ids)
    return Rollout(prompt_ids, prompt_mask, completion_ids, completion_mask.to(completion_ids.device), texts, offsets)
