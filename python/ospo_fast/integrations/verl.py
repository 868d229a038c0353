"""OSPO inside verl (read against verl 0.9.1 and main at b178a3c, 0.8.0.dev).

Two pieces:

* :func:`make_compute_score` — the NDCG@pool reward as verl's custom reward function
  ``compute_score(data_source, solution_str, ground_truth, extra_info) -> float``.
  The sample's pool comes from the dataset's ``extra_info`` (``candidate_pool``,
  ``pool_relevance``); ``ground_truth`` (``reward_model.ground_truth``) holds the
  target product ids and is passed on as the sample's ``answer``.
* :class:`OSPOAdvantageEstimator` — an advantage estimator with verl's signature
  ``(token_level_rewards, response_mask, index, epsilon, norm_adv_by_std_in_grpo,
  config, non_tensor_batch, batch, **kwargs) -> (advantages [B, T], returns [B, T])``,
  registered under ``"ospo"`` by :func:`register_ospo_estimator` through verl's
  ``core_algos.register_adv_est``. ``Â`` is verl's GRPO advantage over ``uid`` groups;
  OSPO spreads it over each response's tokens with mean ``Â`` over ``response_mask``.

What the estimator reads (verl's own names):

==========================  ======================================================
``index``                   ``non_tensor_batch["uid"]``: the group of each response
``batch["prompts"]``        [B, P] left-padded prompt ids
``batch["responses"]``      [B, T] response ids (decoded here, with each token's chars)
``batch["attention_mask"]`` [B, P + T]; its first P columns are the prompt mask
``non_tensor_batch["extra_info"]``  [B] dicts with ``candidate_pool`` and ``pool_relevance``
==========================  ======================================================

verl 0.9.1's ``compute_advantage`` passes ``non_tensor_batch`` and ``batch`` to a
registered estimator only when it is ``"gdpo"``; see ``docs/integrations.md`` for the
one-line change that passes them to ``"ospo"`` too. verl is imported only by
:func:`register_ospo_estimator`; the rest needs numpy and torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ospo_fast.attribution.advantages import step_token_advantages
from ospo_fast.attribution.completions import decode_completions
from ospo_fast.attribution.config import OwenConfig
from ospo_fast.attribution.seeds import step_seed
from ospo_fast.integrations import check_ospo_setup, check_prefix_mask
from ospo_fast.types import RedistributionMode

if TYPE_CHECKING:
    from ospo_fast.attribution.coalition_values import CoalitionEvaluator
    from ospo_fast.reward.retrieval_reward import RetrievalReward

ESTIMATOR_NAME = "ospo"
SAMPLE_FIELDS = ("candidate_pool", "pool_relevance")
BATCH_KEYS = ("prompts", "responses", "attention_mask")

__all__ = [
    "ESTIMATOR_NAME",
    "OSPOAdvantageEstimator",
    "compute_ospo_token_advantages",
    "make_compute_score",
    "register_ospo_estimator",
    "uid_group_advantages",
]


def sample_of(extra_info: Any, ground_truth: Any = None, *, row: int | None = None) -> dict[str, Any]:
    """The reward's sample of one response: verl's ``extra_info``, with ``ground_truth`` as its ``answer``."""
    where = "extra_info" if row is None else f"extra_info of row {row}"
    if not isinstance(extra_info, Mapping):
        raise ValueError(f"{where} must be a dict with {list(SAMPLE_FIELDS)}, got {type(extra_info).__name__}")
    missing = [name for name in SAMPLE_FIELDS if name not in extra_info]
    if missing:
        raise ValueError(f"{where} has no {missing[0]!r}: put the sample's pool in the dataset's extra_info column")
    sample = dict(extra_info)
    if ground_truth is not None:
        sample["answer"] = ground_truth
    return sample


def make_compute_score(reward: RetrievalReward) -> Callable[..., float]:
    """``reward`` as verl's per-response ``compute_score``; bind it to a module-level name for verl to load."""
    if not callable(reward):
        raise TypeError(f"reward must be a callable RetrievalReward, got {type(reward).__name__}")

    def compute_score(
        data_source: str,
        solution_str: str,
        ground_truth: Any,
        extra_info: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> float:
        # verl adds reward-model routing kwargs when a reward model is configured; this reward needs none.
        return float(reward([solution_str], [sample_of(extra_info, ground_truth)])[0])

    return compute_score


def uid_group_advantages(
    scores: np.ndarray, index: Sequence[Any], *, epsilon: float = 1e-6, norm_by_std: bool = True
) -> np.ndarray:
    """verl's GRPO ``Â`` (``compute_grpo_outcome_advantage``) over ``uid`` groups; float64 ``[B]``.

    Groups need not be contiguous or equal in size; a group of one gets mean 0 and
    std 1, as in verl; the std is unbiased (``torch.std``).
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)  # [B]
    ids = np.asarray(index, dtype=object).reshape(-1)  # [B]
    if len(ids) != len(s):
        raise ValueError(f"index must be [B] = [{len(s)}], got {len(ids)} entries")
    _, group = np.unique(ids.astype(str), return_inverse=True)  # [B] group of each row
    group = group.reshape(-1)
    size = np.bincount(group)  # [G]
    mean = np.bincount(group, weights=s) / size
    squares = np.bincount(group, weights=(s - mean[group]) ** 2)
    std = np.sqrt(np.divide(squares, size - 1, out=np.ones_like(squares), where=size > 1))
    mean[size == 1] = 0.0
    centred = s - mean[group]
    return centred / (std[group] + epsilon) if norm_by_std else centred


def compute_ospo_token_advantages(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Sequence[Any],
    *,
    texts: Sequence[str],
    token_offsets: np.ndarray,
    samples: Sequence[Mapping[str, Any]],
    evaluator: CoalitionEvaluator,
    owen_config: OwenConfig,
    mode: RedistributionMode = "prop",
    seed: int,
    epsilon: float = 1e-6,
    norm_adv_by_std_in_grpo: bool = True,
    alpha: float = 0.7,
    invert_negative: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """OSPO ``(advantages, returns)``, both float32 ``[B, T]``, 0 outside ``response_mask``.

    token_level_rewards  [B, T] verl's rewards; a response's reward is its row sum
    response_mask        [B, T] response tokens up to the EOS
    index                [B] uid of each response's group
    texts                [B] response texts; ``token_offsets [B, T, 2]`` are char spans in them
    samples              [B] reward samples (``candidate_pool``, ``pool_relevance``)

    As in verl's GRPO, returns equal advantages.
    """
    if token_level_rewards.ndim != 2 or response_mask.shape != token_level_rewards.shape:
        raise ValueError(
            f"token_level_rewards and response_mask must both be [B, T], got {tuple(token_level_rewards.shape)} "
            f"and {tuple(response_mask.shape)}"
        )
    scores = token_level_rewards.detach().sum(dim=-1).double().cpu().numpy()  # [B]
    group_adv = uid_group_advantages(scores, index, epsilon=epsilon, norm_by_std=norm_adv_by_std_in_grpo)  # [B]
    result = step_token_advantages(
        texts, token_offsets, response_mask.bool().cpu().numpy(), group_adv, samples, evaluator, owen_config,
        seed=seed, mode=mode, alpha=alpha, invert_negative=invert_negative, out_device=token_level_rewards.device,
    )
    return result.token_advantages, result.token_advantages


class OSPOAdvantageEstimator:
    """verl advantage estimator that gives OSPO per-token advantages (see the module docstring).

    evaluator        an ospo_fast ``CoalitionEvaluator`` built on the same reward as ``compute_score``
    owen_config      ``OwenConfig``; ``evaluator.join`` must match
    mode             'prop', 'rank' or 'hybrid' redistribution
    tokenizer        the policy's tokenizer (decodes ``batch["responses"]``)
    eos_ids          ids that end a response (default: the tokenizer's EOS)
    seed             coalition draws use ``step_seed(seed, call number)``
    """

    def __init__(
        self,
        evaluator: CoalitionEvaluator,
        owen_config: OwenConfig | None = None,
        mode: RedistributionMode = "prop",
        *,
        tokenizer: Any,
        eos_ids: Sequence[int] | None = None,
        seed: int = 0,
        alpha: float = 0.7,
        invert_negative: bool = False,
    ) -> None:
        owen_config = OwenConfig() if owen_config is None else owen_config
        check_ospo_setup(evaluator, owen_config, mode, alpha)
        if eos_ids is None and getattr(tokenizer, "eos_token_id", None) is None:
            raise ValueError("tokenizer has no eos_token_id; pass eos_ids")
        self.evaluator = evaluator
        self.owen_config = owen_config
        self.mode: RedistributionMode = mode
        self.tokenizer = tokenizer
        self.eos_ids = sorted({int(tokenizer.eos_token_id)} if eos_ids is None else {int(i) for i in eos_ids})
        self.seed = int(seed)
        self.alpha = float(alpha)
        self.invert_negative = bool(invert_negative)
        self.calls = 0

    def __call__(
        self,
        token_level_rewards: torch.Tensor,
        response_mask: torch.Tensor,
        index: Sequence[Any] | None = None,
        epsilon: float = 1e-6,
        norm_adv_by_std_in_grpo: bool = True,
        config: Any = None,
        non_tensor_batch: Mapping[str, Any] | None = None,
        batch: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if index is None:
            raise ValueError("the 'ospo' estimator needs index (verl passes non_tensor_batch['uid'] when it is set)")
        if non_tensor_batch is None or batch is None:
            raise ValueError(
                "the 'ospo' estimator needs non_tensor_batch and batch: verl's compute_advantage passes them to "
                "'gdpo' only; pass them to 'ospo' too (docs/integrations.md)"
            )
        missing = [key for key in BATCH_KEYS if key not in batch]
        if missing:
            raise ValueError(f"batch has no {missing[0]!r}; the 'ospo' estimator reads {list(BATCH_KEYS)}")
        if "extra_info" not in non_tensor_batch:
            raise ValueError(
                "non_tensor_batch has no 'extra_info': the dataset's extra_info must hold the sample pools"
            )
        if config is not None:
            # verl passes the flag to its own GRPO only; other estimators read it from the algorithm config.
            norm_adv_by_std_in_grpo = bool(config.get("norm_adv_by_std_in_grpo", norm_adv_by_std_in_grpo))
        responses = batch["responses"]
        shape = responses.shape
        if responses.ndim != 2 or response_mask.shape != shape or token_level_rewards.shape != shape:
            raise ValueError(
                "token_level_rewards, response_mask and batch['responses'] must all be [B, T], got "
                f"{tuple(token_level_rewards.shape)}, {tuple(response_mask.shape)} and {tuple(responses.shape)}"
            )
        check_prefix_mask(response_mask.cpu().numpy(), "response_mask")
        texts, token_offsets = decode_completions(
            self.tokenizer, responses.cpu().numpy(), response_mask.bool().cpu().numpy(), self.eos_ids
        )
        samples = [sample_of(info, row=b) for b, info in enumerate(non_tensor_batch["extra_info"])]
        seed = step_seed(self.seed, self.calls)
        self.calls += 1
        return compute_ospo_token_advantages(
            token_level_rewards,
            response_mask,
            index,
            texts=texts,
            token_offsets=token_offsets,
            samples=samples,
            evaluator=self.evaluator,
            owen_config=self.owen_config,
            mode=self.mode,
            seed=seed,
            epsilon=epsilon,
            norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo,
            alpha=self.alpha,
            invert_negative=self.invert_negative,
        )


def require_core_algos() -> Any:
    """verl's ``verl.trainer.ppo.core_algos``, or an ImportError that says how to get it."""
    try:
        from verl.trainer.ppo import core_algos
    except ImportError as err:
        raise ImportError("registering the 'ospo' advantage estimator needs verl: pip install verl") from err
    return core_algos


def register_ospo_estimator(estimator: OSPOAdvantageEstimator, name: str = ESTIMATOR_NAME) -> OSPOAdvantageEstimator:
    """Register ``estimator`` in verl's registry; select it with ``algorithm.adv_estimator=<name>``.

    Call it in the process that runs the trainer's ``fit`` (the driver), before training.
    """
    if not isinstance(estimator, OSPOAdvantageEstimator):
        raise TypeError(f"estimator must be an OSPOAdvantageEstimator, got {type(estimator).__name__}")
    return require_core_algos().register_adv_est(name)(estimator)
