"""The ``ospo`` block of a verl config, and the reward and evaluator it builds.

Two kinds of verl process need OSPO objects: the reward workers score responses
(:func:`ospo_fast.integrations.verl.reward.compute_score`), and the trainer in verl's
TaskRunner scores coalitions (:mod:`ospo_fast.integrations.verl.plugin`). Both read the
same block, so both build the same reward, once per process::

    ospo:
      world_dir: /data/ospo/world     # a saved world (ospo_fast.data.save_world)
      retriever: minilm               # minilm | paraphrase-minilm-l3 | bm25 | a local model path
      k: 1000
      gain: binary                    # binary | graded | exp
      cache_dir: null                 # retriever files; null = $OSPO_CACHE_DIR or ~/.cache/ospo_fast
      mode: prop                      # prop | rank | hybrid
      alpha: 0.7
      invert_negative: false
      clip: 0.0
      seed: 0
      owen: {w_max: 8, max_coalitions: 96, segmenter: phrase, join: space}
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ospo_fast.attribution.config import OwenConfig
from ospo_fast.integrations import check_adapter_mode
from ospo_fast.types import RedistributionMode, RewardGain, check_choice

if TYPE_CHECKING:
    from ospo_fast.attribution.coalition_values import CoalitionEvaluator
    from ospo_fast.reward.retrieval_reward import RetrievalReward


@dataclass(frozen=True)
class OSPOSettings:
    """What the ``ospo`` block of a verl config says (module docstring)."""

    world_dir: str
    retriever: str = "minilm"
    k: int = 1000
    gain: RewardGain = "binary"
    cache_dir: str | None = None
    mode: RedistributionMode = "prop"
    alpha: float = 0.7
    invert_negative: bool = False
    clip: float = 0.0
    seed: int = 0
    owen: OwenConfig = field(default_factory=OwenConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.world_dir, str) or not self.world_dir:
            raise ValueError(f"ospo.world_dir must name a saved world's folder, got {self.world_dir!r}")
        if not isinstance(self.retriever, str) or not self.retriever:
            raise ValueError(f"ospo.retriever must be a retriever name or model path, got {self.retriever!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"ospo.k must be an int >= 1, got {self.k!r}")
        check_choice("ospo.gain", self.gain, RewardGain)
        check_adapter_mode("ospo.mode", self.mode)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 <= self.alpha <= 1:
            raise ValueError(f"ospo.alpha must be a number in [0, 1], got {self.alpha!r}")
        if isinstance(self.clip, bool) or not isinstance(self.clip, (int, float)) or self.clip < 0:
            raise ValueError(f"ospo.clip must be a number >= 0, got {self.clip!r}")
        if not isinstance(self.invert_negative, bool):
            raise ValueError(f"ospo.invert_negative must be a bool, got {self.invert_negative!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"ospo.seed must be an int >= 0, got {self.seed!r}")

    @classmethod
    def from_config(cls, block: Any) -> OSPOSettings:
        """Settings from the ``ospo`` block (a DictConfig or any mapping); unknown keys are refused."""
        if not isinstance(block, Mapping):
            raise ValueError(
                f"the verl config needs an 'ospo' block (a mapping with world_dir, retriever, ...), got {block!r}"
            )
        values = dict(block)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"ospo.{unknown[0]} is not a setting; the ospo block takes {sorted(known)}")
        owen = values.pop("owen", {})
        if not isinstance(owen, Mapping):
            raise ValueError(f"ospo.owen must be a mapping of OwenConfig fields, got {owen!r}")
        owen_known = {f.name for f in fields(OwenConfig)}
        owen_unknown = sorted(set(owen) - owen_known)
        if owen_unknown:
            raise ValueError(f"ospo.owen.{owen_unknown[0]} is not an OwenConfig field; it takes {sorted(owen_known)}")
        return cls(owen=OwenConfig(**dict(owen)), **values)


@functools.cache
def reward_of(settings: OSPOSettings) -> RetrievalReward:
    """This process's NDCG@pool reward over the world's catalog, built on first use (host numpy path)."""
    from ospo_fast.data.world import load_world
    from ospo_fast.reward.retrieval_reward import RetrievalReward
    from ospo_fast.reward.retrievers.factory import build_retriever

    catalog = load_world(settings.world_dir).catalog
    cache_dir = None if settings.cache_dir is None else Path(settings.cache_dir)
    retriever = build_retriever(settings.retriever, catalog["text"].tolist(), cache_dir=cache_dir)
    return RetrievalReward(retriever, catalog["product_id"].tolist(), k=settings.k, gain=settings.gain)


@functools.cache
def evaluator_of(settings: OSPOSettings) -> CoalitionEvaluator:
    """This process's coalition evaluator over :func:`reward_of`, built on first use."""
    from ospo_fast.attribution.coalition_values import CoalitionEvaluator

    return CoalitionEvaluator(reward_of(settings), join=settings.owen.join)
