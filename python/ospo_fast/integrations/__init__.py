"""OSPO's per-token advantages inside other RL trainers.

Adapters for trainers live beside this file and import their trainer lazily:
:mod:`ospo_fast.integrations.trl` (TRL's ``GRPOTrainer``) and
:mod:`ospo_fast.integrations.verl` (verl's V1 trainer, as a verl plugin). Both turn the
trainer's own completions and group advantage ``Â`` into ``A [B, T]`` with
:func:`ospo_fast.attribution.step_token_advantages`, the function the project's own
trainer calls, so every trainer gets the same advantages for the same batch. This
module holds the checks and the log statistics they share.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ospo_fast.attribution.advantages import StepAdvantages
from ospo_fast.attribution.config import OwenConfig
from ospo_fast.types import RedistributionMode, check_choice

__all__ = ["advantage_metrics", "check_adapter_mode", "check_ospo_setup", "check_prefix_mask"]


def check_adapter_mode(name: str, mode: Any) -> None:
    """A redistribution mode an adapter can run: mode 'signed' needs each group's reward
    std as its credit scale, which neither trainer hands the adapters."""
    check_choice(name, mode, RedistributionMode)
    if mode == "signed":
        raise ValueError(
            f"{name} 'signed' is not available in the TRL and verl adapters: its credit scale is each group's "
            "reward std, which the trainer does not pass on. Use 'prop', 'rank' or 'hybrid' here, ospo-train "
            "for 'signed', or step_token_advantages(..., credit_scale=...) from your own loop"
        )


def check_ospo_setup(evaluator: Any, owen_config: Any, mode: str, alpha: float) -> None:
    """Reject a bad combination when an adapter is built, not mid-run."""
    if not isinstance(owen_config, OwenConfig):
        raise TypeError(f"owen_config must be an ospo_fast.attribution.OwenConfig, got {type(owen_config).__name__}")
    if not callable(getattr(evaluator, "evaluate", None)):
        raise TypeError(
            "evaluator must have an evaluate(...) method (an ospo_fast CoalitionEvaluator), "
            f"got {type(evaluator).__name__}"
        )
    if getattr(evaluator, "join", None) != owen_config.join:
        raise ValueError(
            f"evaluator.join is {getattr(evaluator, 'join', None)!r} but owen_config.join is {owen_config.join!r}; "
            "build them alike"
        )
    check_adapter_mode("mode", mode)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")


def check_prefix_mask(mask: np.ndarray, name: str) -> None:
    """Each row of ``mask [B, T]`` must be its real tokens first, then padding.

    Decoding a completion takes its masked tokens as one run; a hole (e.g. tool output
    masked inside a multi-turn response) would shift every later token's characters.
    """
    mask = np.asarray(mask, dtype=bool)
    prefix = np.arange(mask.shape[1])[None, :] < mask.sum(axis=1, keepdims=True)  # [B, T]
    bad = np.flatnonzero((mask != prefix).any(axis=1))
    if len(bad):
        raise ValueError(
            f"{name} rows {bad[:10].tolist()} have masked tokens inside the response; OSPO needs each row's "
            "tokens first and padding after (multi-turn tool masks are not supported)"
        )


def advantage_metrics(step: StepAdvantages, token_mask: Any) -> dict[str, float]:
    """A step's per-token advantage statistics under ``ospo/``, for a trainer's scalar logs.

    ``within_row_adv_std`` (mean over rows of the std of ``A_t`` in the row; 0 when every
    token got ``Â``), ``answer_token_adv_std``, ``answer_token_share`` (answer tokens /
    real tokens) and ``coalitions`` (scored this step).
    """
    stats = {f"ospo/{name}": value for name, value in step.statistics(token_mask).items()}
    return stats | {"ospo/coalitions": float(step.n_coalitions)}
