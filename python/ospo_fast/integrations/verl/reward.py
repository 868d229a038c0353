"""The NDCG@pool reward as verl's custom reward function.

verl's reward workers load it by config and call it once per response::

    reward:
      custom_reward_function:
        path: pkg://ospo_fast.integrations.verl.reward
        name: compute_score
        reward_kwargs:
          ospo: ${ospo}
          verl_trainer: {use_v1: ${trainer.use_v1}, trainer_mode: ${trainer.v1.trainer_mode}}

verl merges ``reward_kwargs`` into every call (``verl/trainer/ppo/reward.py``,
``get_custom_reward_fn``). ``ospo`` builds the reward (once per worker process);
``verl_trainer`` lets the reward refuse a run whose trainer would not apply OSPO's
per-token advantages (the legacy trainer, an async mode, plain ``sync``), since the
reward is the one OSPO piece every verl trainer runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ospo_fast.integrations.verl.advantages import sample_of
from ospo_fast.integrations.verl.settings import OSPOSettings, reward_of
from ospo_fast.integrations.verl.support import check_trainer_mode, check_verl_version


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    ospo: Mapping[str, Any] | None = None,
    verl_trainer: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> float:
    """NDCG@pool of the answer in ``solution_str`` against the pool in ``extra_info``.

    ``ground_truth`` (the row's ``reward_model.ground_truth``, its target product ids)
    becomes the sample's ``answer``. verl adds ``num_turns`` and
    ``rollout_reward_scores`` to ``extra_info`` and reward-model routing keywords to
    the call; this reward needs none of them.
    """
    if ospo is None or verl_trainer is None:
        raise ValueError(
            "compute_score needs reward.custom_reward_function.reward_kwargs.ospo and .verl_trainer "
            "(see examples/verl/config/ospo_grpo.yaml)"
        )
    import verl

    check_verl_version(verl.__version__)
    check_trainer_mode(verl_trainer.get("use_v1"), verl_trainer.get("trainer_mode"))
    sample = sample_of(extra_info) | {"answer": ground_truth}
    return float(reward_of(OSPOSettings.from_config(ospo))([solution_str], [sample])[0])
