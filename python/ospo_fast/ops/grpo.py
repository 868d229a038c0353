"""GRPO group-relative advantages (spec §7).

Native twin: ``csrc/ospo/grpo.cpp``; plain twin: :mod:`ospo_fast.ops.reference`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ospo_fast.ops import reference
from ospo_fast.ops.arrays import as_count, as_float, as_real
from ospo_fast.ops.native import core
from ospo_fast.types import AdvantageScale


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
