"""The verl plugin: an ``ospo_sync`` trainer mode for verl's V1 trainer.

verl imports this module in every process that imports ``verl``: ospo_fast declares it
under the ``verl.plugins`` entry-point group, which ``verl/__init__.py`` loads on import
(verl >= 0.9; ``VERL_USE_EXTERNAL_PLUGINS`` filters it, and
``VERL_USE_EXTERNAL_MODULES=ospo_fast.integrations.verl.plugin`` loads it by name).
So the registration happens inside verl's ``TaskRunnerV1`` Ray actor, the process
whose ``run`` calls ``get_trainer_cls(config.trainer.v1.trainer_mode)``, with nothing
to edit in verl and nothing to register in the launch script.

:class:`OSPOTrainerSync` is verl's ``PPOTrainerSync`` with one override,
``_compute_advantage``: verl first computes its own advantages as usual (KL in reward,
rollout correction, the outcome estimator, the write-back to TransferQueue); the
override then reads each response's ids, mask, advantage and dataset ``extra_info``
back from TransferQueue, replaces the advantages and returns with OSPO's per-token
ones (each row's mean over its mask stays verl's ``Â``), and logs ``ospo/*`` metrics.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import torch
import verl
from omegaconf import DictConfig, OmegaConf

from ospo_fast.integrations.verl.support import (
    BASE_TRAINER_MODE,
    TRAINER_MODE,
    check_estimator,
    check_trainer_mode,
    check_verl_version,
)

# Before importing verl's V1 trainer, which older verl lacks, say which verl is needed.
check_verl_version(verl.__version__)

import transfer_queue as tq  # noqa: E402  (verl's V1 trainer keeps every batch in TransferQueue)
from tensordict import TensorDict  # noqa: E402
from transfer_queue import KVBatchMeta  # noqa: E402
from verl.trainer.ppo.v1 import PPOTrainerSync, register_trainer  # noqa: E402
from verl.utils.config import omega_conf_to_dataclass  # noqa: E402
from verl.workers.utils.padding import response_to_nested  # noqa: E402

from ospo_fast.attribution.completions import eos_token_ids  # noqa: E402
from ospo_fast.attribution.seeds import step_seed  # noqa: E402
from ospo_fast.integrations import advantage_metrics  # noqa: E402
from ospo_fast.integrations.verl.advantages import verl_token_advantages  # noqa: E402
from ospo_fast.integrations.verl.settings import OSPOSettings, evaluator_of  # noqa: E402

# What the override reads back from TransferQueue after verl's own advantage step.
OSPO_FIELDS = ("responses", "response_mask", "advantages", "extra_info")

__all__ = ["OSPO_FIELDS", "OSPOTrainerSync", "as_base_mode", "padded"]


def as_base_mode(config: DictConfig) -> DictConfig:
    """A resolved copy of ``config`` whose ``trainer.v1.trainer_mode`` is verl's ``"sync"``.

    verl reads the mode twice: ``get_trainer_cls`` finds this class by it, and the trainer
    compares it with ``"sync"`` to pick its sync replay buffer and checkpointing
    (``trainer_base.py``). Resolving first keeps interpolations of the mode (the reward's
    guard) at ``ospo_sync``.
    """
    base = copy.deepcopy(config)
    OmegaConf.resolve(base)
    base.trainer.v1.trainer_mode = BASE_TRAINER_MODE
    return base


def padded(values: torch.Tensor) -> torch.Tensor:
    """A TransferQueue field as ``[B, T]``: nested rows right-padded with 0 (verl's own padding)."""
    return values.to_padded_tensor(0) if values.is_nested else values


@register_trainer(TRAINER_MODE)
class OSPOTrainerSync(PPOTrainerSync):
    """verl's sync V1 trainer with OSPO per-token advantages (module docstring).

    Reads the config's ``ospo`` block (:class:`~ospo_fast.integrations.verl.settings.OSPOSettings`)
    and builds the coalition evaluator in this process (verl's TaskRunner, on its CPU).
    """

    def __init__(self, config: DictConfig) -> None:
        check_verl_version(verl.__version__)
        check_trainer_mode(config.trainer.use_v1, config.trainer.v1.trainer_mode)
        check_estimator(config.algorithm.adv_estimator)
        self.ospo_settings = OSPOSettings.from_config(config.get("ospo"))
        self.ospo_evaluator = evaluator_of(self.ospo_settings)
        super().__init__(as_base_mode(config))

    @functools.cached_property
    def ospo_eos_ids(self) -> list[int]:
        """The tokens a rollout stops on: the tokenizer's EOS and the model's generation config's."""
        model_config = omega_conf_to_dataclass(self.config.actor_rollout_ref.model)
        return eos_token_ids(self.tokenizer, model_config)

    def _compute_advantage(self, batch: KVBatchMeta, metrics: dict[str, Any]) -> KVBatchMeta:
        batch = super()._compute_advantage(batch, metrics)
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=list(OSPO_FIELDS))
        response_mask = data["response_mask"]  # nested [B, (T_b)]
        step = verl_token_advantages(
            padded(data["responses"]), padded(response_mask), padded(data["advantages"]), list(data["extra_info"]),
            self.tokenizer, self.ospo_eos_ids, self.ospo_evaluator, self.ospo_settings,
            seed=step_seed(self.ospo_settings.seed, self.global_steps, self.local_trigger_step,
                           self.parameter_sync_step),
        )
        metrics.update(advantage_metrics(step, padded(response_mask)))
        advantages = response_to_nested(step.token_advantages, response_mask)  # nested [B, (T_b)]
        # verl's outcome estimators return their advantages as the returns too.
        fields = TensorDict({"advantages": advantages, "returns": advantages}, batch_size=len(batch))
        return tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=fields)
