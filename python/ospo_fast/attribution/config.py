"""What OSPO scores: how answers are cut into players and which coalitions count (spec §3-4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ospo_fast.types import JoinMode, OwenEstimator, SegmenterName, SubsetBudget, SubsetSizes, check_choice


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
    segmenter: SegmenterName = field(default="phrase", metadata={"help": "how answers are cut into players"})
    cover_all_words: bool = field(
        default=True, metadata={"help": "words outside every phrase become segments, so none loses credit"}
    )
    estimator: OwenEstimator = field(
        default="spec",
        metadata={"help": "'spec' (§5 Shapley-kernel weights, the paper's) or 'stratified' (sizes weighted alike, "
                          "then efficient): the same coalitions, read differently"},
    )
    subset_sizes: SubsetSizes = field(
        default="half",
        metadata={"help": "subset ablation: each segment in at ½, or sizes from the Shapley kernel ('kernel')"},
    )
    subset_budget: SubsetBudget = field(
        default="max_coalitions",
        metadata={"help": "subset ablation: M coalitions per response, or as many as the contiguous plan "
                          "scores ('contiguous'), so that both spend the same"},
    )

    def __post_init__(self) -> None:
        _positive_int("w_max", self.w_max, 1)
        _positive_int("max_coalitions", self.max_coalitions, 2)
        check_choice("join", self.join, JoinMode)
        check_choice("segmenter", self.segmenter, SegmenterName)
        check_choice("estimator", self.estimator, OwenEstimator)
        check_choice("subset_sizes", self.subset_sizes, SubsetSizes)
        check_choice("subset_budget", self.subset_budget, SubsetBudget)
        for name in ("contiguous", "cover_all_words"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
