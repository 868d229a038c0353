"""Owen-Shapley values (spec §5) and the exact Shapley oracle.

Native twin: ``csrc/ospo/owen.cpp``; plain twin: :mod:`ospo_fast.ops.reference`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ospo_fast.ops import reference
from ospo_fast.ops.arrays import as_bool, as_count, as_float, as_int
from ospo_fast.ops.native import core
from ospo_fast.types import OwenEstimator, check_choice


def owen_values(n_segments: int, coalitions: Any, values: Any, estimator: OwenEstimator = "spec") -> np.ndarray:
    """Owen values over the evaluated coalitions; float64 ``[n]``.

    ``estimator="spec"``: spec §5, ``φ_i = Σ (v(S ∪ {i}) − v(S)) / (n · C(n − 1, |S|))``
    over rows ``S`` with ``i ∉ S`` whose union with ``i`` is also a row (no
    renormalisation). ``"stratified"``: those contributions averaged per size ``|S|``,
    the sizes alike, then shifted so ``Σφ = v(N) − v(∅)`` (when N is a row).
    ``coalitions`` is int windows ``[K, 2]`` or a bool mask ``[K, n]``; ``values [K]``
    includes the ∅ row. Invalid rows (start > end, end > n, repeats) raise ValueError.
    """
    check_choice("estimator", estimator, OwenEstimator)
    n = as_count("n_segments", n_segments)
    raw = np.asarray(coalitions)
    rows = as_bool("coalitions", raw) if raw.dtype == bool else as_int("coalitions", raw, np.int32)
    vals = as_float("values", values)
    if core is None:
        return reference.owen_values(n, rows, vals, estimator)
    return core.owen_values(n, rows, vals, estimator)


def owen_values_batch(
    n_segments: Any, coalition_offsets: Any, coalitions: Any, values: Any, estimator: OwenEstimator = "spec"
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`owen_values` (windows) for a whole step in CSR form.

    ``n_segments [B]``, ``coalition_offsets [B+1]`` into ``coalitions [K, 2]`` and
    ``values [K]``. Returns ``(phi [sum n] float64, phi_offsets [B+1] int64)``.
    """
    check_choice("estimator", estimator, OwenEstimator)
    counts = as_int("n_segments", n_segments)
    offsets = as_int("coalition_offsets", coalition_offsets)
    rows = as_int("coalitions", coalitions, np.int32)
    vals = as_float("values", values)
    if core is None:
        return reference.owen_values_batch(counts, offsets, rows, vals, estimator)
    return core.owen_values_batch(counts, offsets, rows, vals, estimator)


def exact_shapley(values: Any) -> np.ndarray:
    """Exact Shapley values from ``values [2**n]`` (``values[m]`` = v of bitmask m); ``[n]``."""
    vals = as_float("values", values)
    if core is None:
        return reference.exact_shapley(vals)
    return core.exact_shapley(vals)
