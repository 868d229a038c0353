"""OSPO inside verl, on verl as released (0.9.x and main, V1 trainer): no patch to verl.

Three pieces, each loaded by verl through one of its own extension points:

* :mod:`~ospo_fast.integrations.verl.plugin` — the ``ospo_sync`` trainer mode, a
  subclass of verl's ``PPOTrainerSync`` registered with ``register_trainer``; verl
  imports it in every process through the ``verl.plugins`` entry point ospo_fast
  declares. Importing it imports verl's V1 trainer, so nothing else here does.
* :func:`~ospo_fast.integrations.verl.reward.compute_score` — the NDCG@pool reward as
  verl's custom reward function (``pkg://ospo_fast.integrations.verl.reward``).
* :class:`~ospo_fast.integrations.verl.settings.OSPOSettings` — the config's ``ospo``
  block, which both read; :func:`~ospo_fast.integrations.verl.dataset.verl_dataset_rows`
  writes a world's queries as verl dataset rows whose ``extra_info`` holds the pools.

:func:`~ospo_fast.integrations.verl.advantages.verl_token_advantages` is the whole OSPO
step on verl-shaped tensors; it calls :func:`ospo_fast.attribution.step_token_advantages`.
See ``docs/integrations.md`` and ``examples/verl/``.
"""

from ospo_fast.integrations.verl.advantages import row_advantages, sample_of, verl_token_advantages
from ospo_fast.integrations.verl.dataset import DATA_SOURCE, verl_dataset_rows
from ospo_fast.integrations.verl.settings import OSPOSettings, evaluator_of, reward_of
from ospo_fast.integrations.verl.support import (
    BASE_TRAINER_MODE,
    OUTCOME_ESTIMATORS,
    SUPPORTED_SERIES,
    TRAINER_MODE,
    check_estimator,
    check_trainer_mode,
    check_verl_version,
)

__all__ = [
    "BASE_TRAINER_MODE",
    "DATA_SOURCE",
    "OUTCOME_ESTIMATORS",
    "OSPOSettings",
    "SUPPORTED_SERIES",
    "TRAINER_MODE",
    "check_estimator",
    "check_trainer_mode",
    "check_verl_version",
    "evaluator_of",
    "reward_of",
    "row_advantages",
    "sample_of",
    "verl_dataset_rows",
    "verl_token_advantages",
]
