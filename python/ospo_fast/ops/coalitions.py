"""Coalition plans (spec §4): which windows of a response's segments are scored.

Native twin: ``csrc/ospo/coalitions.cpp``; plain twin: :mod:`ospo_fast.ops.reference`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ospo_fast.ops import reference
from ospo_fast.ops.arrays import UINT64_MAX, as_count, as_int
from ospo_fast.ops.native import core
from ospo_fast.types import SubsetSizes, check_choice


def _check_budget(w_max: int, max_coalitions: int | None = None) -> None:
    if w_max < 1:
        raise ValueError(f"w_max must be >= 1, got {w_max}")
    if max_coalitions is not None and max_coalitions < 2:
        raise ValueError(
            f"max_coalitions must be >= 2 (the empty and the full coalition are always kept), got {max_coalitions}"
        )


def contiguous_coalitions(
    n_segments: int, w_max: int, *, include_empty: bool = True, include_full: bool = True
) -> np.ndarray:
    """Every window of at most ``w_max`` segments: int32 ``[K, 2]`` half-open ``(start, end)``.

    Order: ∅ ``(0, 0)``, widths ascending left to right, then the full set when it is not
    already a window.
    """
    n = as_count("n_segments", n_segments)
    w = as_count("w_max", w_max)
    _check_budget(w)
    if core is None:
        return reference.contiguous_coalitions(n, w, include_empty=include_empty, include_full=include_full)
    return core.contiguous_coalitions(n, w, bool(include_empty), bool(include_full))


def window_count(n_segments: int, w_max: int) -> int:
    """Rows of :func:`contiguous_coalitions` ``(n_segments, w_max)``, without building them:
    ∅, the ``n − w + 1`` windows of each width ``w <= w_max``, and the full set when wider."""
    n = as_count("n_segments", n_segments)
    w = min(as_count("w_max", w_max), n)
    _check_budget(max(w, 1))
    return 1 + w * (n + 1) - w * (w + 1) // 2 + (1 if 0 < w < n else 0)


def sample_coalitions(n_segments: int, w_max: int, max_coalitions: int, *, seed: int, stream: int = 0) -> np.ndarray:
    """At most ``max_coalitions`` windows; ∅ and the full set are always kept.

    The others are drawn uniformly without replacement, deterministically for
    ``(seed, stream)``; kept rows stay in the order of :func:`contiguous_coalitions`.
    """
    n = as_count("n_segments", n_segments)
    w = as_count("w_max", w_max)
    budget = as_count("max_coalitions", max_coalitions)
    _check_budget(w, budget)
    seed, stream = as_count("seed", seed, UINT64_MAX), as_count("stream", stream, UINT64_MAX)
    if core is None:
        return reference.sample_coalitions(n, w, budget, seed=seed, stream=stream)
    return core.sample_coalitions(n, w, budget, seed, stream)


def sample_subset_coalitions(
    n_segments: int, max_coalitions: int, *, seed: int, stream: int = 0, sizes: SubsetSizes = "half"
) -> np.ndarray:
    """Random non-contiguous coalitions for the ablation: bool ``[K, n]``.

    Row 0 is ∅, the last row the full set; with a budget of at least ``2**n`` every
    subset is returned in bitmask order. Otherwise distinct proper subsets: each segment
    in with chance ½ (``sizes="half"``), or a size ``s`` drawn with chance ∝
    ``1 / (s (n − s))`` and then ``s`` segments uniformly (``"kernel"``).
    """
    check_choice("sizes", sizes, SubsetSizes)
    n = as_count("n_segments", n_segments)
    budget = as_count("max_coalitions", max_coalitions)
    _check_budget(1, budget)
    seed, stream = as_count("seed", seed, UINT64_MAX), as_count("stream", stream, UINT64_MAX)
    if core is None:
        return reference.sample_subset_coalitions(n, budget, seed=seed, stream=stream, sizes=sizes)
    return core.sample_subset_coalitions(n, budget, seed, stream, sizes)


def coalition_plan(n_segments: Any, w_max: int, max_coalitions: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The windows of a whole RL step in CSR form.

    ``n_segments [B]``; response b gets ``sample_coalitions(n_segments[b], ..., stream=b)``.
    Returns ``(coalition_offsets [B+1] int64, coalitions [K, 2] int32)``.
    """
    counts = as_int("n_segments", n_segments).reshape(-1)
    w = as_count("w_max", w_max)
    budget = as_count("max_coalitions", max_coalitions)
    _check_budget(w, budget)
    seed = as_count("seed", seed, UINT64_MAX)
    if core is None:
        if (counts < 0).any():
            raise ValueError("n_segments must be >= 0")
        return reference.coalition_plan(counts, w, budget, seed=seed)
    return core.coalition_plan(counts, w, budget, seed)
