"""The attribution layer: segmenters, coalition values v(S), Owen credit, and the
per-token advantages of a step (:func:`step_token_advantages`, the function every
trainer calls)."""

from ospo_fast.attribution.advantages import (
    StepAdvantages,
    broadcast_advantages,
    clip_to_batch_spread,
    composed_token_advantages,
    step_token_advantages,
)
from ospo_fast.attribution.attribute import Attribution, ScoredCoalitions, attribute, score_coalitions, subset_plan
from ospo_fast.attribution.coalition_values import CoalitionEvaluator, EvaluationStats
from ospo_fast.attribution.completions import decode_completions, eos_token_ids, token_char_offsets
from ospo_fast.attribution.config import OwenConfig
from ospo_fast.attribution.seeds import step_seed
from ospo_fast.attribution.segment import Segmenter, get_segmenter

__all__ = [
    "Attribution",
    "CoalitionEvaluator",
    "EvaluationStats",
    "OwenConfig",
    "ScoredCoalitions",
    "Segmenter",
    "StepAdvantages",
    "attribute",
    "broadcast_advantages",
    "clip_to_batch_spread",
    "composed_token_advantages",
    "decode_completions",
    "eos_token_ids",
    "get_segmenter",
    "score_coalitions",
    "step_seed",
    "step_token_advantages",
    "subset_plan",
    "token_char_offsets",
]
