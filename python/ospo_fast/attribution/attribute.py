"""Segment-level credit for a whole RL step: segment -> plan -> v(S) -> Owen values.

:func:`score_coalitions` runs spec §3-4 for every response of a step at once: the
answers are segmented, one coalition plan covers them all (CSR), and the
:class:`~ospo_fast.attribution.coalition_values.CoalitionEvaluator` scores every
coalition in one batched pass, on the evaluator's device. :func:`attribute` adds the
Owen values (``cfg.estimator``) on the host, for callers that want φ per segment;
:func:`ospo_fast.attribution.advantages.step_token_advantages` instead hands the scored
coalitions to the fused op, which computes φ and the token advantages in one pass.
Spans are in answer coordinates; ``extract_answer`` gives the answer's offset in its
completion.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ospo_fast.attribution.config import OwenConfig
from ospo_fast.attribution.segment import Segmenter, get_segmenter
from ospo_fast.ops.coalitions import coalition_plan, sample_subset_coalitions, window_count
from ospo_fast.ops.device import to_numpy
from ospo_fast.ops.owen import owen_values, owen_values_batch
from ospo_fast.types import OwenEstimator, SegmenterName, SubsetSizes

if TYPE_CHECKING:
    from ospo_fast.attribution.coalition_values import CoalitionEvaluator


@dataclass(frozen=True)
class ScoredCoalitions:
    """The coalitions of one step and their values.

    spans             [B] int64 [n_b, 2] segment char spans in answer coordinates
    n_segments        [B] int64
    coalition_offsets [B+1] int64 CSR into ``coalitions``
    coalitions        int32 [K, 2] windows, or bool [K, n_max] masks when not contiguous
    values            [K] v(S) in plan order: float64 numpy, or a tensor on the evaluator's device
    timings           seconds: segment, plan, evaluate (build, dedupe, pack, encode, ndcg)
    """

    spans: list[np.ndarray]
    n_segments: np.ndarray
    coalition_offsets: np.ndarray
    coalitions: np.ndarray
    values: Any
    timings: dict[str, float]

    @property
    def n_coalitions(self) -> int:
        return int(self.coalition_offsets[-1])


@dataclass(frozen=True)
class Attribution:
    """Credit of one step.

    spans             [B] int64 [n_i, 2] segment char spans in answer coordinates
    phi               [B] float64 [n_i] Owen value of each segment
    n_coalitions      coalitions scored (K)
    values            [K] float64 v(S) in plan order
    coalition_offsets [B+1] int64 CSR into ``coalitions``
    coalitions        int32 [K, 2] windows, or bool [K, n_max] masks when not contiguous
    timings           seconds: segment, plan, evaluate (build, dedupe, pack, encode, ndcg), owen
    """

    spans: list[np.ndarray]
    phi: list[np.ndarray]
    n_coalitions: int
    values: np.ndarray
    coalition_offsets: np.ndarray
    coalitions: np.ndarray
    timings: dict[str, float]


@functools.lru_cache(maxsize=8)
def cached_segmenter(name: SegmenterName, cover_all_words: bool) -> Segmenter:
    """One segmenter per setting (a spaCy pipeline is slow to load)."""
    return get_segmenter(name, cover_all_words=cover_all_words)


def subset_budgets(n_segments: np.ndarray, cfg: OwenConfig) -> np.ndarray:
    """Coalitions each response's subset plan may score: M, or what its contiguous plan scores."""
    if cfg.subset_budget == "max_coalitions":
        return np.full(len(n_segments), cfg.max_coalitions, dtype=np.int64)
    # at least 2: a plan keeps ∅ and the full set (with no segment, both are ∅ and one row comes back)
    return np.array([max(min(window_count(int(n), cfg.w_max), cfg.max_coalitions), 2) for n in n_segments],
                    dtype=np.int64)


def subset_plan(
    n_segments: np.ndarray, budgets: int | np.ndarray, *, seed: int, sizes: SubsetSizes = "half"
) -> tuple[np.ndarray, np.ndarray]:
    """Random-subset coalitions of every response: ``(offsets [B+1] int64, masks bool [K, n_max])``.

    Response b draws at most ``budgets[b]`` (one int: the same for all) with ``stream=b``,
    as :func:`ospo_fast.ops.coalition_plan` does.
    """
    per_response = np.broadcast_to(np.asarray(budgets), (len(n_segments),))
    plans = [
        sample_subset_coalitions(int(n), int(budget), seed=seed, stream=b, sizes=sizes)
        for b, (n, budget) in enumerate(zip(n_segments, per_response))
    ]
    offsets = np.zeros(len(plans) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in plans])
    masks = np.zeros((int(offsets[-1]), int(n_segments.max(initial=0))), dtype=bool)  # [K, n_max]
    for b, plan in enumerate(plans):
        masks[offsets[b] : offsets[b + 1], : plan.shape[1]] = plan
    return offsets, masks


def owen_of_masks(
    n_segments: np.ndarray, offsets: np.ndarray, masks: np.ndarray, values: np.ndarray,
    estimator: OwenEstimator = "spec",
) -> list[np.ndarray]:
    """Owen values per response for mask plans."""
    return [
        owen_values(int(n), masks[lo:hi, :n], values[lo:hi], estimator)
        for n, lo, hi in zip(n_segments, offsets[:-1], offsets[1:])
    ]


def score_coalitions(
    answers: Sequence[str],
    samples: Sequence[Mapping[str, Any]],
    evaluator: CoalitionEvaluator,
    cfg: OwenConfig,
    *,
    seed: int,
) -> ScoredCoalitions:
    """Segments, coalition plan and v(S) of every answer; ``samples[b]`` judges ``answers[b]``."""
    if len(answers) != len(samples):
        raise ValueError(f"got {len(answers)} answers but {len(samples)} samples")
    if evaluator.join != cfg.join:
        raise ValueError(f"evaluator.join is {evaluator.join!r} but cfg.join is {cfg.join!r}; build them alike")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    segmenter = cached_segmenter(cfg.segmenter, cfg.cover_all_words)
    spans = [np.asarray(segmenter(a), dtype=np.int64).reshape(-1, 2) for a in answers]
    n_segments = np.array([len(s) for s in spans], dtype=np.int64)  # [B]
    timings["segment"] = time.perf_counter() - start

    start = time.perf_counter()
    if cfg.contiguous:
        offsets, coalitions = coalition_plan(n_segments, cfg.w_max, cfg.max_coalitions, seed=seed)
    else:
        offsets, coalitions = subset_plan(n_segments, subset_budgets(n_segments, cfg), seed=seed,
                                          sizes=cfg.subset_sizes)
    timings["plan"] = time.perf_counter() - start

    start = time.perf_counter()
    values = evaluator.evaluate(answers, spans, np.arange(len(answers)), samples, offsets, coalitions)  # [K]
    timings["evaluate"] = time.perf_counter() - start
    stats = evaluator.last_stats
    if stats is not None:
        timings |= {
            "build": stats.build_s,
            "dedupe": stats.dedupe_s,
            "pack": stats.pack_s,
            "encode": stats.encode_s,
            "ndcg": stats.ndcg_s,
        }
    return ScoredCoalitions(spans, n_segments, offsets, coalitions, values, timings)


def attribute(
    answers: Sequence[str],
    samples: Sequence[Mapping[str, Any]],
    evaluator: CoalitionEvaluator,
    cfg: OwenConfig,
    *,
    seed: int,
) -> Attribution:
    """Owen credit of each segment of each answer; ``samples[b]`` judges ``answers[b]``."""
    scored = score_coalitions(answers, samples, evaluator, cfg, seed=seed)
    values = np.asarray(to_numpy(scored.values), dtype=np.float64)  # [K]
    start = time.perf_counter()
    if cfg.contiguous:
        phi_all, phi_offsets = owen_values_batch(
            scored.n_segments, scored.coalition_offsets, scored.coalitions, values, cfg.estimator
        )
        phi = [phi_all[lo:hi] for lo, hi in zip(phi_offsets[:-1], phi_offsets[1:])]
    else:
        phi = owen_of_masks(scored.n_segments, scored.coalition_offsets, scored.coalitions, values, cfg.estimator)
    timings = scored.timings | {"owen": time.perf_counter() - start}
    return Attribution(scored.spans, phi, scored.n_coalitions, values, scored.coalition_offsets, scored.coalitions,
                       timings)
