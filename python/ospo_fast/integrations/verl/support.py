"""Which verl runs OSPO supports, and the errors for the others.

The OSPO trainer overrides ``PPOTrainer._compute_advantage`` of verl's V1 trainer
(``verl/trainer/ppo/v1/trainer_base.py``), a private method, so it is tied to the verl
series it was read and tested against. It replaces the advantages of outcome
estimators only: those that give every response one ``Â`` on all its tokens.
"""

from __future__ import annotations

from typing import Any

from packaging.version import InvalidVersion, Version

TRAINER_MODE = "ospo_sync"
"""``trainer.v1.trainer_mode`` that selects the OSPO trainer."""
BASE_TRAINER_MODE = "sync"
"""The verl mode it runs as: verl compares the mode name with "sync" to pick its code paths."""
SUPPORTED_SERIES = ((0, 9), (0, 10))
"""verl 0.9.x (0.9.1 installed and tested; 0.9.0 read) and main (0.10.0.dev at 1dda039, read)."""
OUTCOME_ESTIMATORS = (
    "grpo", "grpo_vectorized", "grpo_passk", "rloo", "rloo_vectorized", "opo", "gpg",
    "reinforce_plus_plus_baseline",
)
"""verl estimators whose advantages are one value per response over its mask (core_algos.py)."""


def check_verl_version(version: str) -> None:
    """Raise unless ``version`` (``verl.__version__``) is a supported series."""
    try:
        release = Version(version).release[:2]
    except InvalidVersion:
        raise ValueError(f"verl reports an unreadable version {version!r}") from None
    if release not in SUPPORTED_SERIES:
        supported = ", ".join(f"{major}.{minor}.x" for major, minor in SUPPORTED_SERIES)
        raise RuntimeError(
            f"ospo_fast's verl trainer supports verl {supported} (the V1 trainer's _compute_advantage it "
            f"overrides was read there); found verl {version}"
        )


def check_trainer_mode(use_v1: Any, trainer_mode: Any) -> None:
    """Raise unless the run uses the V1 trainer in the OSPO mode."""
    if use_v1 is not True:
        raise ValueError(
            f"trainer.use_v1 is {use_v1!r}: OSPO runs in verl's V1 trainer only; the legacy RayPPOTrainer "
            "would train with plain sequence advantages. Set trainer.use_v1=true"
        )
    if trainer_mode != TRAINER_MODE:
        raise ValueError(
            f"trainer.v1.trainer_mode is {trainer_mode!r}: OSPO's per-token advantages come from the "
            f"{TRAINER_MODE!r} trainer (verl's sync trainer with OSPO advantages); the async modes are not "
            f"supported. Set trainer.v1.trainer_mode={TRAINER_MODE}"
        )


def check_estimator(name: Any) -> None:
    """Raise unless ``algorithm.adv_estimator`` gives each response a single ``Â``."""
    if name not in OUTCOME_ESTIMATORS:
        raise ValueError(
            f"algorithm.adv_estimator is {name!r}: OSPO spreads one advantage per response over its tokens, "
            f"so it needs an outcome estimator, one of {', '.join(OUTCOME_ESTIMATORS)}"
        )
