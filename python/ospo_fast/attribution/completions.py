"""Completion texts and each token's characters, from token ids.

The char offsets of every completion token are what put the answer's credit on the
answer's real tokens (spec §10 "misplaced credit"): a ``<think>`` block comes first, so
the answer's tokens are found by their characters, not by their count. Trainers that
hold only token ids (TRL, verl) decode them here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def token_char_offsets(tokenizer: Any, token_ids: Sequence[int], text: str) -> np.ndarray:
    """Half-open char span of each token in ``text`` (the decode of ``token_ids``); int64 [T, 2].

    Token t ends where the decode of the first t + 1 tokens ends. A token that completes a
    multi-byte character of a byte-level vocabulary ends with the character.
    """
    ids = list(token_ids)
    if not ids:
        return np.zeros((0, 2), dtype=np.int64)
    prefixes = tokenizer.batch_decode([ids[: t + 1] for t in range(len(ids))], skip_special_tokens=False)
    ends = np.array([len(p) for p in prefixes], dtype=np.int64)  # [T]
    # A prefix cut inside a character decodes to U+FFFD; monotone and clipped ends absorb it.
    ends = np.minimum(np.maximum.accumulate(ends), len(text))
    starts = np.concatenate([[0], ends[:-1]])
    return np.stack([starts, ends], axis=1)


def eos_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """The ids that end a completion: the tokenizer's EOS and the generation config's."""
    ids = {int(tokenizer.eos_token_id)}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured is not None:
        ids.update(int(i) for i in configured)
    return sorted(ids)


def decode_completions(
    tokenizer: Any, completion_ids: np.ndarray, completion_mask: np.ndarray, eos_ids: Sequence[int]
) -> tuple[list[str], np.ndarray]:
    """Texts ``[B]`` and token char spans int64 ``[B, T, 2]`` of right-padded completions.

    ``completion_ids [B, T]`` and ``completion_mask [B, T]`` (real tokens, the EOS
    included). The EOS adds no text and gets an empty span at the end; padding gets (0, 0).
    """
    ids = np.asarray(completion_ids)
    mask = np.asarray(completion_mask, dtype=bool)
    eos = {int(i) for i in eos_ids}
    texts, offsets = [], np.zeros((*ids.shape, 2), dtype=np.int64)  # [B, T, 2]
    for b in range(len(ids)):
        real = ids[b][mask[b]]
        body = [int(t) for t in real if int(t) not in eos]
        text = tokenizer.decode(body, skip_special_tokens=False)
        texts.append(text)
        offsets[b, : len(body)] = token_char_offsets(tokenizer, body, text)
        offsets[b, len(body) : len(real)] = len(text)
    return texts, offsets
