"""Per-token advantages of one RL step: the function every trainer calls.

:func:`step_token_advantages` is what the project's trainer, the TRL adapter, the verl
adapter and ``benchmarks/owen_throughput.py`` all run::

    completions, token offsets, mask, GRPO Â, samples
      ─► answers (extract_answer) and their tokens (answer_mask)
      ─► rows with Â ≠ 0 only: segments ─► coalition plan ─► v(S) (one batched pass)
      ─► fused token_advantages_batch: Owen φ (spec or stratified) ─► token credit on
         the answer's real tokens ─► PROP / RANK / HYBRID / SIGNED redistribution ─► A [B, T]

It runs where the evaluator's reward runs: numpy and the C++ core by default; on a torch
device (CUDA, or the Triton interpreter on the CPU) v(S), the Owen reduction and the
redistribution stay on the device, and only ``A`` leaves, to ``out_device``.

Rows with Â = 0 are never scored: their tokens get ``A_t = Â = 0`` whatever their credit.
Tokens outside the answer (the ``<think>`` block, tags, EOS) get ``A_t = Â``; the
answer's tokens share the rest by their credit (PROP / RANK / HYBRID), or get Â plus
their centred credit (SIGNED), so the mean over a completion's tokens is always ``Â``
(spec §10, "misplaced credit").

The composed path (:func:`composed_token_advantages`: φ, then ``token_credit_batch``,
then ``redistribute_batch``) serves only what the fused op cannot: non-contiguous
coalition plans (the subset ablation), whose Owen values are per-mask, on the host.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ospo_fast.attribution.attribute import ScoredCoalitions, owen_of_masks, score_coalitions
from ospo_fast.attribution.config import OwenConfig
from ospo_fast.ops.credit import (
    redistribute_batch,
    require_signed_arguments,
    token_advantages_batch,
    token_credit_batch,
)
from ospo_fast.ops.device import is_tensor, to_numpy
from ospo_fast.types import AnswerFormat, RedistributionMode, check_choice
from ospo_fast.reward.answer import answer_token_masks, extract_answer

if TYPE_CHECKING:
    from ospo_fast.attribution.coalition_values import CoalitionEvaluator

AdvantagePath = Literal["fused", "composed", "broadcast"]


@dataclass(frozen=True)
class StepAdvantages:
    """The per-token advantages of one step and what produced them.

    token_advantages [B, T] float: float64 numpy on the host path, a tensor on the
                     evaluator's device, or a float32 tensor on ``out_device`` when given;
                     0 on padding, each row's mean over its tokens = Â
    answer_mask      [B, T] bool numpy: the tokens of the scored answer
    advantages       [B] float64 numpy: the GRPO Â the rows were built from
    segment_spans    [B] int64 [n_b, 2] segment char spans in completion coordinates
                     (empty for rows with Â = 0 and for GRPO)
    phi              [B] float64 [n_b] Owen value of each segment
    path             "fused" (one native/GPU op), "composed" (subset plans), "broadcast" (GRPO)
    scored           the coalitions of the rows with Â ≠ 0 and their v(S) (answer coordinates,
                     rows in batch order); None when no row was scored
    timings          seconds per stage (segment, plan, evaluate, build, dedupe, pack,
                     encode, ndcg, advantages)
    """

    token_advantages: Any
    answer_mask: np.ndarray
    advantages: np.ndarray
    segment_spans: list[np.ndarray]
    phi: list[np.ndarray]
    path: AdvantagePath
    scored: ScoredCoalitions | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def n_coalitions(self) -> int:
        """Coalitions scored for this step."""
        return 0 if self.scored is None else self.scored.n_coalitions

    def statistics(self, token_mask: Any) -> dict[str, float]:
        """Spread of the advantages for logs: within rows, over answer tokens, and the answer share.

        ``answer_token_adv_std``: std of A_t over every answer token of the batch;
        ``within_row_adv_std``: mean over rows of the std of A_t over the row's tokens (0 for
        a broadcast Â); ``answer_token_share``: answer tokens / real tokens.
        """
        values = np.asarray(to_numpy(self.token_advantages), dtype=np.float64)  # [B, T]
        real = np.asarray(to_numpy(token_mask), dtype=bool)  # [B, T]
        answer = values[self.answer_mask]
        counts = real.sum(axis=1)
        row_means = np.where(counts > 0, (values * real).sum(axis=1) / np.maximum(counts, 1), 0.0)
        row_var = (((values - row_means[:, None]) ** 2) * real).sum(axis=1) / np.maximum(counts, 1)
        return {
            "answer_token_adv_std": float(answer.std()) if answer.size else 0.0,
            "within_row_adv_std": float(np.sqrt(row_var)[counts > 0].mean()) if (counts > 0).any() else 0.0,
            "answer_token_share": float(self.answer_mask.sum() / max(int(real.sum()), 1)),
        }


def _host_batch(
    completions: Sequence[str], token_offsets: Any, token_mask: Any, advantages: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(token_offsets int64 [B, T, 2], token_mask bool [B, T], advantages float64 [B])``, checked."""
    mask = np.asarray(to_numpy(token_mask), dtype=bool)  # [B, T]
    offsets = np.asarray(to_numpy(token_offsets), dtype=np.int64)  # [B, T, 2]
    adv = np.asarray(to_numpy(advantages), dtype=np.float64).reshape(-1)  # [B]
    if mask.ndim != 2 or offsets.shape != (*mask.shape, 2):
        raise ValueError(
            f"token_mask must be [B, T] and token_offsets [B, T, 2], got {mask.shape} and {offsets.shape}"
        )
    n_rows = mask.shape[0]
    if len(completions) != n_rows or len(adv) != n_rows:
        raise ValueError(
            f"completions and advantages need one row per token_mask row ({n_rows}), "
            f"got {len(completions)} and {len(adv)}"
        )
    if not np.isfinite(adv).all():
        raise ValueError(f"advantages hold non-finite values at rows {np.flatnonzero(~np.isfinite(adv))[:10].tolist()}")
    return offsets, mask, adv


def broadcast_advantages(
    completions: Sequence[str], token_offsets: Any, token_mask: Any, advantages: Any, *,
    answer_format: AnswerFormat = "lenient", out_device: Any = None,
) -> StepAdvantages:
    """GRPO: ``A[b, t] = Â_b`` on real tokens, 0 on padding (float64 ``[B, T]``).

    ``answer_format`` only decides which tokens ``answer_mask`` reports (for the logs).
    """
    offsets, mask, adv = _host_batch(completions, token_offsets, token_mask, advantages)
    values = np.where(mask, adv[:, None], 0.0)  # [B, T]
    empty_spans = [np.zeros((0, 2), dtype=np.int64) for _ in completions]
    empty_phi = [np.zeros(0, dtype=np.float64) for _ in completions]
    return StepAdvantages(
        _to_out_device(values, out_device), answer_token_masks(completions, offsets, mask, answer_format), adv,
        empty_spans, empty_phi, "broadcast",
    )


def step_token_advantages(
    completions: Sequence[str],
    token_offsets: Any,
    token_mask: Any,
    advantages: Any,
    samples: Sequence[Mapping[str, Any]],
    evaluator: CoalitionEvaluator,
    owen_config: OwenConfig,
    *,
    seed: int,
    mode: RedistributionMode = "prop",
    alpha: float = 0.7,
    invert_negative: bool = False,
    clip: float = 0.0,
    out_device: Any = None,
    credit_scale: Any | None = None,
) -> StepAdvantages:
    """OSPO advantages of one step's completions (module docstring).

    completions    [B] completion texts; ``token_offsets`` index into them
    token_offsets  [B, T, 2] int64 half-open char span of each completion token
    token_mask     [B, T] bool real (non-padding) tokens
    advantages     [B] GRPO Â of each completion
    samples        [B] rows with ``candidate_pool`` and ``pool_relevance`` (what ``evaluator`` scores on);
                   each answer is found in the evaluator's reward's ``answer_format``
    seed           coalition draws (:func:`ospo_fast.attribution.seeds.step_seed`)
    mode, alpha    spec §6.4 redistribution; ``invert_negative`` mirrors the credit of rows with Â < 0
    clip           c > 0 clamps A_t to ±c·std(Â over the batch) (spec §6.5)
    out_device     where ``A`` goes (the loss's device): a float32 tensor there; None keeps it
                   where it was computed
    credit_scale   [B] mode "signed" only (and required there): advantage units per unit of
                   credit, :func:`ospo_fast.ops.grpo.group_advantage_scales` for GRPO's Â
    """
    check_choice("mode", mode, RedistributionMode)
    if not isinstance(owen_config, OwenConfig):
        raise TypeError(f"owen_config must be an ospo_fast OwenConfig, got {type(owen_config).__name__}")
    if not isinstance(clip, (int, float)) or isinstance(clip, bool) or not np.isfinite(clip) or clip < 0:
        raise ValueError(f"clip must be a finite number >= 0, got {clip!r}")
    offsets, mask, adv = _host_batch(completions, token_offsets, token_mask, advantages)
    scales = _credit_scales(mode, credit_scale, len(adv), invert_negative)
    if len(samples) != len(completions):
        raise ValueError(f"samples need one row per completion ({len(completions)}), got {len(samples)}")
    # The credited answer is the one the reward scored.
    answer_format = getattr(getattr(evaluator, "reward", None), "answer_format", "lenient")
    answers, answer_starts = zip(*(extract_answer(c, answer_format) for c in completions)) if completions else ((), ())
    answer_mask = answer_token_masks(completions, offsets, mask, answer_format)  # [B, T]

    active = np.flatnonzero(adv != 0)  # [A] rows worth scoring
    scored = score_coalitions(
        [answers[b] for b in active], [samples[b] for b in active], evaluator, owen_config, seed=seed
    ) if len(active) else None
    batch = _full_batch(len(completions), active, scored, answer_starts, evaluator)
    start = time.perf_counter()
    if owen_config.contiguous:
        values, phi = token_advantages_batch(
            batch.n_segments, batch.coalition_offsets, batch.coalitions, batch.values, batch.spans_flat, offsets,
            mask, answer_mask, adv, mode, alpha=alpha, invert_negative=invert_negative, backend=evaluator.backend,
            return_phi=True, estimator=owen_config.estimator, credit_scale=scales,
        )  # [B, T], [S]
        path: AdvantagePath = "fused"
        phi_host = np.asarray(to_numpy(phi), dtype=np.float64)
    else:
        phi_host = np.concatenate([np.zeros(0), *owen_of_masks(
            batch.n_segments, batch.coalition_offsets, batch.coalitions,
            np.asarray(to_numpy(batch.values), dtype=np.float64), owen_config.estimator,
        )])  # [S]
        values = composed_token_advantages(
            phi_host, batch.n_segments, batch.spans_flat, offsets, mask, answer_mask, adv, mode,
            alpha=alpha, invert_negative=invert_negative, credit_scale=scales,
        )  # [B, T]
        values = _like_values(values, batch.values)
        path = "composed"
    values = clip_to_batch_spread(values, adv, clip)
    timings = (scored.timings if scored is not None else {}) | {"advantages": time.perf_counter() - start}
    phi_offsets = np.concatenate([[0], np.cumsum(batch.n_segments)])
    return StepAdvantages(
        token_advantages=_to_out_device(values, out_device),
        answer_mask=answer_mask,
        advantages=adv,
        segment_spans=[batch.spans_flat[lo:hi] for lo, hi in zip(phi_offsets[:-1], phi_offsets[1:])],
        phi=[phi_host[lo:hi] for lo, hi in zip(phi_offsets[:-1], phi_offsets[1:])],
        path=path,
        scored=scored,
        timings=timings,
    )


def _credit_scales(mode: RedistributionMode, credit_scale: Any | None, n_rows: int, invert_negative: bool
                   ) -> np.ndarray | None:
    """Mode signed's ``[B]`` float64 scales, checked here so that a bad one fails before any scoring."""
    require_signed_arguments(mode, credit_scale, invert_negative)
    if mode != "signed":
        return None
    scales = np.asarray(to_numpy(credit_scale), dtype=np.float64).reshape(-1)  # [B]
    if scales.shape != (n_rows,):
        raise ValueError(f"credit_scale must be [B] = [{n_rows}], got {scales.shape}")
    if not (np.isfinite(scales) & (scales >= 0)).all():
        raise ValueError("credit_scale must be finite and >= 0")
    return scales


@dataclass(frozen=True)
class _Batch:
    """The scored rows spread over the whole batch; rows with Â = 0 hold no segment and no coalition.

    n_segments [B], coalition_offsets [B+1], coalitions [K, ...], values [K],
    spans_flat [S, 2] int64 segment spans in completion coordinates, CSR by n_segments.
    """

    n_segments: np.ndarray
    coalition_offsets: np.ndarray
    coalitions: np.ndarray
    values: Any
    spans_flat: np.ndarray


def _full_batch(
    n_rows: int, active: np.ndarray, scored: ScoredCoalitions | None, answer_starts: Sequence[int],
    evaluator: CoalitionEvaluator,
) -> _Batch:
    n_segments = np.zeros(n_rows, dtype=np.int64)  # [B]
    counts = np.zeros(n_rows, dtype=np.int64)  # [B]
    if scored is None:
        return _Batch(n_segments, np.zeros(n_rows + 1, dtype=np.int64), np.zeros((0, 2), dtype=np.int32),
                      _empty_values(evaluator.device), np.zeros((0, 2), dtype=np.int64))
    n_segments[active] = scored.n_segments
    counts[active] = np.diff(scored.coalition_offsets)
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    # Rows keep their order, so the scored rows' CSR data serve the whole batch unchanged.
    shifted = [spans + answer_starts[b] for b, spans in zip(active, scored.spans)]
    spans_flat = np.concatenate([np.zeros((0, 2), dtype=np.int64), *shifted]).astype(np.int64)  # [S, 2]
    return _Batch(n_segments, offsets, scored.coalitions, scored.values, spans_flat)


def _empty_values(device: Any) -> Any:
    if device is None:
        return np.zeros(0, dtype=np.float64)
    import torch

    return torch.zeros(0, dtype=torch.float64, device=device)


def _like_values(result: np.ndarray, values: Any) -> Any:
    """A host result on the device the coalition values live on."""
    if not is_tensor(values):
        return result
    import torch

    return torch.from_numpy(result).to(values.device)


def _to_out_device(values: Any, out_device: Any) -> Any:
    if out_device is None:
        return values
    import torch

    return torch.as_tensor(values).to(device=out_device, dtype=torch.float32)


def composed_token_advantages(
    phi: np.ndarray,
    n_segments: np.ndarray,
    segment_spans: np.ndarray,
    token_offsets: np.ndarray,
    token_mask: np.ndarray,
    answer_mask: np.ndarray,
    advantages: np.ndarray,
    mode: RedistributionMode = "prop",
    *,
    alpha: float = 0.7,
    invert_negative: bool = False,
    credit_scale: np.ndarray | None = None,
) -> np.ndarray:
    """Token advantages from given Owen values ``phi [sum n]``; float64 ``[B, T]``.

    The fused op's rules, applied to ops of their own: ``token_credit_batch`` (spec §6.1),
    uniform weights for rows with at most one segment (§6.2), the credit negated for
    rows with Â < 0 under ``invert_negative``, then ``redistribute_batch`` (§6.3-6.4;
    ``credit_scale [B]`` for mode signed).
    """
    phi_offsets = np.concatenate([[0], np.cumsum(n_segments)]).astype(np.int64)  # [B+1]
    credit = token_credit_batch(segment_spans, phi_offsets, phi, token_offsets, token_mask)  # [B, T]
    credit[np.asarray(n_segments) <= 1] = 0.0
    if invert_negative:
        credit[np.asarray(advantages) < 0] *= -1.0
    return redistribute_batch(credit, advantages, mode, token_mask=token_mask, answer_mask=answer_mask, alpha=alpha,
                              credit_scale=credit_scale)


def clip_to_batch_spread(token_advantages: Any, advantages: np.ndarray, c: float) -> Any:
    """Clamp ``A_t`` to ``±c · std(Â over the batch)`` (spec §6.5); ``c = 0`` leaves it as is."""
    if c <= 0 or len(advantages) < 2:
        return token_advantages
    bound = c * float(np.std(advantages, ddof=1))
    if is_tensor(token_advantages):
        return token_advantages.clamp(-bound, bound)
    return np.clip(token_advantages, -bound, bound)
