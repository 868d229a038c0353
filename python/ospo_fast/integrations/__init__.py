"""Per-token OSPO advantages for other RL trainers.

Any trainer that samples completions and has its own GRPO advantages ``Â [B]`` can turn
them into OSPO's per-token ``A [B, T]`` with :func:`ospo_advantages`:

    A = ospo_advantages(completions, token_offsets, token_mask, advantages, samples,
                        evaluator, owen_cfg, mode="prop", seed=step_seed(run_seed, step))

The answer of each completion is cut into segments, every coalition is scored in one
batched pass (``evaluator``), the Owen values land on the answer's real tokens, and the
rest of the completion keeps ``Â``; each row's mean over its tokens is ``Â``.

Adapters for trainers live beside this file and import their trainer lazily:
:mod:`ospo_fast.integrations.trl` (TRL's ``GRPOTrainer``) and
:mod:`ospo_fast.integrations.verl` (verl's advantage-estimator registry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ospo_fast.attribution import OwenConfig
from ospo_fast.train.token_advantages import RedistributionMode, attribute_nonzero, ospo_token_advantages

if TYPE_CHECKING:
    from ospo_fast.coalitions_eval import CoalitionEvaluator

MODES = ("prop", "rank", "hybrid")

__all__ = ["MODES", "RedistributionMode", "check_ospo_setup", "check_prefix_mask", "ospo_advantages", "step_seed"]


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
    if mode not in MODES:
        raise ValueError(f"mode must be 'prop', 'rank' or 'hybrid', got {mode!r}")
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


def step_seed(run_seed: int, step: int, rank: int = 0) -> int:
    """Coalition-sampling seed of one step on one rank: new draws each step, reproducible per run."""
    state = np.random.SeedSequence([int(run_seed), int(step), int(rank)]).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 1  # 63 bits, so it fits an int64 seed as well as a uint64 one


def ospo_advantages(
    completions: Sequence[str],
    token_offsets: np.ndarray,
    token_mask: np.ndarray,
    advantages: np.ndarray,
    samples: Sequence[Mapping[str, Any]],
    evaluator: CoalitionEvaluator,
    owen_config: OwenConfig,
    mode: RedistributionMode = "prop",
    *,
    seed: int,
    alpha: float = 0.7,
    invert_negative: bool = False,
) -> np.ndarray:
    """OSPO advantages of a batch of completions; float64 ``[B, T]``, 0 on padding.

    completions    [B] completion texts; ``token_offsets`` index into them
    token_offsets  [B, T, 2] int64 half-open char span of each completion token
    token_mask     [B, T] bool real (non-padding) tokens
    advantages     [B] the trainer's GRPO Â of each completion
    samples        [B] rows with ``candidate_pool`` and ``pool_relevance`` (what ``evaluator`` scores on)

    Only completions with ``Â ≠ 0`` are attributed: the others get ``A_t = Â = 0``
    whatever their credit, so scoring their coalitions would be wasted work.
    """
    check_ospo_setup(evaluator, owen_config, mode, alpha)
    token_mask = np.asarray(token_mask, dtype=bool)  # [B, T]
    offsets = np.asarray(token_offsets, dtype=np.int64)  # [B, T, 2]
    adv = np.asarray(advantages, dtype=np.float64).reshape(-1)  # [B]
    if token_mask.ndim != 2 or offsets.shape != (*token_mask.shape, 2):
        raise ValueError(
            f"token_mask must be [B, T] and token_offsets [B, T, 2], got {token_mask.shape} and {offsets.shape}"
        )
    n_rows = token_mask.shape[0]
    if len(completions) != n_rows or len(adv) != n_rows or len(samples) != n_rows:
        raise ValueError(
            f"completions, advantages and samples need one row per token_mask row ({n_rows}), "
            f"got {len(completions)}, {len(adv)} and {len(samples)}"
        )
    if not np.isfinite(adv).all():
        raise ValueError(f"advantages hold non-finite values at rows {np.flatnonzero(~np.isfinite(adv))[:10].tolist()}")
    credit = attribute_nonzero(list(completions), adv, samples, evaluator, owen_config, seed=seed)
    token_adv, _ = ospo_token_advantages(
        list(completions), offsets, token_mask, adv, credit.spans, credit.phi, mode,
        alpha=alpha, invert_negative=invert_negative,
    )
    return token_adv
