"""ospo_fast: Owen-Shapley Policy Optimization with a native attribution core.

The public ops below run on the C++ core when it is built (``pip install .``) and on
their plain twins in :mod:`ospo_fast.reference` otherwise. See ``docs/interfaces.md``.
"""

from __future__ import annotations

from ospo_fast._native import cuda_kernels_built, native_available
from ospo_fast.coalitions import coalition_plan, contiguous_coalitions, sample_coalitions, sample_subset_coalitions
from ospo_fast.credit import redistribute, redistribute_batch, token_advantages_batch, token_credit, token_credit_batch
from ospo_fast.grpo import group_advantages
from ospo_fast.ndcg import PreparedCorpus, ndcg_at_k, pool_ndcg, pool_ndcg_dense, prepare_corpus, screen_supported
from ospo_fast.owen import exact_shapley, owen_values, owen_values_batch
from ospo_fast.packing import encoder_batch

__version__ = "0.1.0"


def cuda_available() -> bool:
    """True when the CUDA kernels were built and a CUDA device is usable now."""
    if not cuda_kernels_built():
        return False
    from ospo_fast._native import core

    return bool(core.cuda_device_count() > 0)


__all__ = [
    "PreparedCorpus",
    "__version__",
    "coalition_plan",
    "contiguous_coalitions",
    "cuda_available",
    "cuda_kernels_built",
    "encoder_batch",
    "exact_shapley",
    "group_advantages",
    "native_available",
    "ndcg_at_k",
    "owen_values",
    "owen_values_batch",
    "pool_ndcg",
    "pool_ndcg_dense",
    "prepare_corpus",
    "redistribute",
    "redistribute_batch",
    "sample_coalitions",
    "sample_subset_coalitions",
    "screen_supported",
    "token_advantages_batch",
    "token_credit",
    "token_credit_batch",
]
