"""Segment-level credit for a whole RL step: segment -> plan -> v(S) -> Owen values.

:func:`attribute` runs the pipeline of spec §3-5 for every response of a step at once:
the answers are segmented, one coalition plan covers them all (CSR), the
:class:`~ospo_fast.coalitions_eval.CoalitionEvaluator` scores every coalition in one
batched pass, and the Owen estimator turns the values into one φ per segment.
Spans are in answer coordinates; :func:`extract_answer` gives the answer's offset in
its completion, so the trainer can move them onto the completion's tokens.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

import ospo_fast as ops  # the core ops (native when built, else their twins in ospo_fast.reference)
from ospo_fast.coalitions_eval import JoinMode
from ospo_fast.reward import extract_answer
from ospo_fast.segment import Segmenter, SegmenterName, get_segmenter

if TYPE_CHECKING:
    from ospo_fast.coalitions_eval import CoalitionEvaluator

__all__ = ["Attribution", "OwenConfig", "attribute", "extract_answer"]


def _positive_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class OwenConfig:
    """How answers are cut into players and which coalitions are scored (spec §3-4)."""

    w_max: int = field(default=8, metadata={"help": "widest contiguous window (paper's w); w <= 2 collapses"})
    max_coalitions: int = field(
        default=96, metadata={"help": "coalitions scored per response (paper's M), ∅ and the full set included"}
    )
    contiguous: bool = field(
        default=True, metadata={"help": "windows (OSPO); False = random subsets, the ablation that collapses"}
    )
    join: JoinMode = field(
        default="space",
        metadata={"help": "partial query: 'space' joins segment texts (reference), 'slice' keeps the text"},
    )
    segmenter: SegmenterName = field(default="phrase", metadata={"help": "'phrase', 'sentence', 'spacy' or 'word'"})
    cover_all_words: bool = field(
        default=True, metadata={"help": "words outside every phrase become segments, so none loses credit"}
    )

    def __post_init__(self) -> None:
        _positive_int("w_max", self.w_max, 1)
        _positive_int("max_coalitions", self.max_coalitions, 2)
        if self.join not in ("space", "slice"):
            raise ValueError(f"join must be 'space' or 'slice', got {self.join!r}")
        if self.segmenter not in ("phrase", "sentence", "spacy", "word"):
            raise ValueError(f"segmenter must be 'phrase', 'sentence', 'spacy' or 'word', got {self.segmenter!r}")
        for name in ("contiguous", "cover_all_words"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")


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


def subset_plan(n_segments: np.ndarray, max_coalitions: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random-subset coalitions of every response: ``(offsets [B+1] int64, masks bool [K, n_max])``.

    Response b draws with ``stream=b``, as :func:`ospo_fast.coalition_plan` does.
    """
    plans = [
        ops.sample_subset_coalitions(int(n), max_coalitions, seed=seed, stream=b) for b, n in enumerate(n_segments)
    ]
    offsets = np.zeros(len(plans) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in plans])
    masks = np.zeros((int(offsets[-1]), int(n_segments.max(initial=0))), dtype=bool)  # [K, n_max]
    for b, plan in enumerate(plans):
        masks[offsets[b] : offsets[b + 1], : plan.shape[1]] = plan
    return offsets, masks


def owen_of_masks(
    n_segments: np.ndarray, offsets: np.ndarray, masks: np.ndarray, values: np.ndarray
) -> list[np.ndarray]:
    """Spec §5 Owen values per response for mask plans."""
    return [
        ops.owen_values(int(n), masks[lo:hi, :n], values[lo:hi])
        for n, lo, hi in zip(n_segments, offsets[:-1], offsets[1:])
    ]


def attribute(
    answers: Sequence[str],
    samples: Sequence[Mapping[str, Any]],
    evaluator: CoalitionEvaluator,
    cfg: OwenConfig,
    *,
    seed: int,
) -> Attribution:
    """Owen credit of each segment of each answer; ``samples[b]`` judges ``answers[b]``."""
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
        offsets, coalitions = ops.coalition_plan(n_segments, cfg.w_max, cfg.max_coalitions, seed=seed)
    else:
        offsets, coalitions = subset_plan(n_segments, cfg.max_coalitions, seed=seed)
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

    start = time.perf_counter()
    if cfg.contiguous:
        phi_all, phi_offsets = ops.owen_values_batch(n_segments, offsets, coalitions, values)
        phi = [phi_all[lo:hi] for lo, hi in zip(phi_offsets[:-1], phi_offsets[1:])]
    else:
        phi = owen_of_masks(n_segments, offsets, coalitions, values)
    timings["owen"] = time.perf_counter() - start
    return Attribution(spans, phi, len(values), values, offsets, coalitions, timings)
