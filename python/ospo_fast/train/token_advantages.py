"""Per-token advantages of a batch of completions: GRPO's Â broadcast, or OSPO's
segment credit moved onto the answer's real tokens and redistributed (spec §6).

Pure numpy over the core ops, with no model in sight, so any RL trainer can call
:func:`ospo_token_advantages` with its own completions and token offsets:

    answers, offsets = zip(*map(extract_answer, completions))
    attribution = attribute(answers, samples, evaluator, owen_cfg, seed=step)
    A = ospo_token_advantages(completions, token_offsets, token_mask, group_adv,
                              attribution.spans, attribution.phi, mode="prop")   # [B, T]

Rule for tokens outside the answer (the ``<think>`` block, tags, EOS): they get
``A_t = Â``; the answer's tokens share the rest in proportion to their credit, so the
mean over a completion's tokens is always ``Â`` (``redistribute_batch`` guarantees it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

import ospo_fast as ops
from ospo_fast.attribution import Attribution, OwenConfig, attribute
from ospo_fast.reward import extract_answer

if TYPE_CHECKING:
    from ospo_fast.coalitions_eval import CoalitionEvaluator

RedistributionMode = Literal["prop", "rank", "hybrid"]


def answer_token_mask(completion: str, token_offsets: np.ndarray) -> np.ndarray:
    """bool ``[T]``: tokens sharing a character with the answer the reward scores.

    ``token_offsets [T, 2]`` are half-open char spans in ``completion``; empty spans
    (EOS, padding) are never answer tokens.
    """
    offsets = np.asarray(token_offsets, dtype=np.int64).reshape(-1, 2)
    answer, start = extract_answer(completion)
    if not answer:
        return np.zeros(len(offsets), dtype=bool)
    end = start + len(answer)
    return (offsets[:, 0] < end) & (offsets[:, 1] > start) & (offsets[:, 1] > offsets[:, 0])


def answer_token_masks(completions: Sequence[str], token_offsets: np.ndarray, token_mask: np.ndarray) -> np.ndarray:
    """bool ``[B, T]``: :func:`answer_token_mask` of each row, restricted to real tokens."""
    out = np.zeros(np.shape(token_mask), dtype=bool)
    for b, completion in enumerate(completions):
        out[b] = answer_token_mask(completion, token_offsets[b]) & token_mask[b]
    return out


def completion_credit(
    segment_spans: np.ndarray, answer_offset: int, token_offsets: np.ndarray, phi: np.ndarray
) -> np.ndarray:
    """Token credit ``Wᵀφ`` (spec §6.1) over a completion's tokens; float64 ``[T]``.

    segment_spans  [n, 2] segment char spans in answer coordinates (as ``attribute`` gives them)
    answer_offset  where the answer starts in the completion (``extract_answer``'s second value)
    token_offsets  [T, 2] char spans of the completion's tokens
    phi            [n] Owen value of each segment
    """
    spans = np.asarray(segment_spans, dtype=np.int64).reshape(-1, 2) + int(answer_offset)  # [n, 2]
    return ops.token_credit(spans, np.asarray(token_offsets, dtype=np.int64).reshape(-1, 2), phi)


def invert_negative_credit(credit: np.ndarray, answer_mask: np.ndarray, advantages: np.ndarray) -> np.ndarray:
    """Rows with ``Â < 0``: ``credit' = max + min − credit`` over the answer tokens.

    The spec §10 open question: with a negative advantage, PROP pushes hardest on the
    tokens that helped most; mirroring the credit inside its range makes it push
    hardest on the tokens that helped least. ``credit [B, T]``, ``answer_mask [B, T]``.
    """
    out = np.array(credit, dtype=np.float64)
    for b in np.flatnonzero(np.asarray(advantages) < 0):
        answer = answer_mask[b]
        if answer.any():
            c = out[b, answer]
            out[b, answer] = c.max() + c.min() - c
    return out


def clip_to_batch_spread(token_advantages: np.ndarray, advantages: np.ndarray, c: float) -> np.ndarray:
    """Clamp ``A_t`` to ``±c · std(Â over the batch)`` (spec §6.5); ``c = 0`` leaves it as is."""
    if c <= 0 or len(advantages) < 2:
        return token_advantages
    bound = c * float(np.std(advantages, ddof=1))
    return np.clip(token_advantages, -bound, bound)


def grpo_token_advantages(advantages: np.ndarray, token_mask: np.ndarray) -> np.ndarray:
    """``A[b, t] = Â_b`` on real tokens, 0 on padding; float64 ``[B, T]``."""
    return np.where(token_mask, np.asarray(advantages, dtype=np.float64)[:, None], 0.0)


@dataclass(frozen=True)
class RowCredit:
    """Segment credit of every row of a batch; rows with Â = 0 have no segments.

    spans        [B] int64 [n_b, 2] answer-coordinate spans
    phi          [B] float64 [n_b] Owen values
    attribution  the attributed rows' result (timings, coalition count); None when no row had Â ≠ 0
    """

    spans: list[np.ndarray]
    phi: list[np.ndarray]
    attribution: Attribution | None


def attribute_nonzero(
    completions: Sequence[str],
    advantages: np.ndarray,
    samples: Sequence[Mapping[str, Any]],
    evaluator: CoalitionEvaluator,
    owen_config: OwenConfig,
    *,
    seed: int,
) -> RowCredit:
    """Attribute only the completions with Â ≠ 0.

    The others get ``A_t = Â = 0`` whatever their credit, so scoring their coalitions
    would be wasted work; they keep empty spans and values.
    """
    spans = [np.zeros((0, 2), dtype=np.int64) for _ in completions]
    phi = [np.zeros(0, dtype=np.float64) for _ in completions]
    active = np.flatnonzero(np.asarray(advantages) != 0)
    if not len(active):
        return RowCredit(spans, phi, None)
    answers = [extract_answer(completions[b])[0] for b in active]
    result = attribute(answers, [samples[b] for b in active], evaluator, owen_config, seed=seed)
    for i, b in enumerate(active):
        spans[b], phi[b] = result.spans[i], result.phi[i]
    return RowCredit(spans, phi, result)


def ospo_token_advantages(
    completions: Sequence[str],
    token_offsets: np.ndarray,
    token_mask: np.ndarray,
    advantages: np.ndarray,
    segment_spans: Sequence[np.ndarray],
    phi: Sequence[np.ndarray],
    mode: RedistributionMode = "prop",
    *,
    alpha: float = 0.7,
    invert_negative: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """OSPO token advantages of a batch: ``(A [B, T] float64, answer_mask [B, T] bool)``.

    completions    [B] completion texts (``token_offsets`` index into them)
    token_offsets  [B, T, 2] int64 char span of each completion token
    token_mask     [B, T] bool real (non-padding) tokens
    advantages     [B] GRPO Â
    segment_spans  [B] int64 [n_b, 2] answer-coordinate spans from ``attribute``
    phi            [B] float64 [n_b] Owen values from ``attribute``
    """
    token_mask = np.asarray(token_mask, dtype=bool)
    n_rows, width = token_mask.shape
    lengths = [len(completions), len(np.asarray(advantages)), len(segment_spans), len(phi), len(token_offsets)]
    if any(n != n_rows for n in lengths):
        raise ValueError(f"completions, advantages, segment_spans, phi and token_offsets need {n_rows} rows, got {lengths}")
    answer_mask = answer_token_masks(completions, token_offsets, token_mask)  # [B, T]
    credit = np.zeros((n_rows, width), dtype=np.float64)  # [B, T]
    for b, completion in enumerate(completions):
        _, offset = extract_answer(completion)
        credit[b] = completion_credit(segment_spans[b], offset, token_offsets[b], phi[b])
    if invert_negative:
        credit = invert_negative_credit(credit, answer_mask, advantages)
    token_adv = ops.redistribute_batch(
        credit, np.asarray(advantages, dtype=np.float64), mode,
        token_mask=token_mask, answer_mask=answer_mask, alpha=alpha,
    )
    return token_adv, answer_mask
