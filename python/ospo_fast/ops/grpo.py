"""GRPO group-relative advantages (spec §7).

Native twin: ``csrc/ospo/grpo.cpp``; plain twin: :mod:`ospo_fast.ops.reference`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ospo_fast.ops import reference
from ospo_fast.ops.arrays import as_count, as_float, as_real
from ospo_fast.ops.native import core
from ospo_fast.types import AdvantageScale, check_choice


def group_advantages(rewards: Any, group_size: int, eps: float = 1e-4, scale: AdvantageScale = "std") -> np.ndarray:
    """``Â = (r − mean_group) / (std_group + eps)`` over consecutive groups; float64 ``[B]``.

    The std is unbiased, as ``torch.std`` computes it. A group of equal rewards gets 0,
    even with ``eps = 0``. ``scale="none"`` keeps only the centring (Dr. GRPO).
    """
    r = as_float("rewards", rewards).reshape(-1)
    g = as_count("group_size", group_size)
    e = as_real("eps", eps)
    if core is None:
        return reference.group_advantages(r, g, e, scale)
    return core.group_advantages(r, g, e, scale)


def group_advantage_scales(
    rewards: Any, group_size: int, eps: float = 1e-4, scale: AdvantageScale = "std"
) -> np.ndarray:
    """The factor :func:`group_advantages` turns each group's reward differences into Â by:
    ``1 / (std_group + eps)`` (0 where that is not finite), or 1 with ``scale="none"``;
    float64 ``[B]``, one per response.

    Mode signed's ``credit_scale``: Owen credit is in reward units (the stratified
    estimator's sums to ``v(N) − v(∅)``), so this is the same change of units GRPO
    applies to the reward itself, not a tuned constant.
    """
    check_choice("scale", scale, AdvantageScale)
    r = as_float("rewards", rewards).reshape(-1)
    g = as_count("group_size", group_size)
    e = as_real("eps", eps)
    if scale == "none":
        return np.ones(len(r), dtype=np.float64)
    if g < 2 or len(r) % g:
        raise ValueError(f"rewards length {len(r)} must be a multiple of group_size {g} >= 2")
    with np.errstate(divide="ignore", over="ignore"):
        per_group = 1.0 / (r.reshape(-1, g).std(axis=1, ddof=1) + e)  # [G]
    per_group[~np.isfinite(per_group)] = 0.0
    return np.repeat(per_group, g)
