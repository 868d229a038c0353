"""ospo_fast: Owen-Shapley Policy Optimization with a native attribution core.

Layers, each using only those before it (see ``docs/interfaces.md``):

* :mod:`ospo_fast.ops` — the native ops (C++, CUDA, Triton), their numpy twins, dispatch;
* :mod:`ospo_fast.reward` — answer extraction, the NDCG@pool reward, retrievers;
* :mod:`ospo_fast.attribution` — segments, coalition values, Owen credit, and
  :func:`~ospo_fast.attribution.step_token_advantages`, the per-token advantages of a step;
* :mod:`ospo_fast.data`, :mod:`ospo_fast.train`, :mod:`ospo_fast.integrations`.

The ops are re-exported here (``import ospo_fast as of; of.owen_values(...)``); they run
on the C++ core when it is built (``pip install .``) and on their twins in
:mod:`ospo_fast.ops.reference` otherwise. The main classes of the upper layers are
reachable from here too, imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ospo_fast.ops import (
    PreparedCorpus,
    coalition_plan,
    contiguous_coalitions,
    cuda_available,
    cuda_kernels_built,
    encoder_batch,
    exact_shapley,
    group_advantages,
    native_available,
    ndcg_at_k,
    owen_values,
    owen_values_batch,
    pool_ndcg,
    pool_ndcg_dense,
    prepare_corpus,
    redistribute,
    redistribute_batch,
    sample_coalitions,
    sample_subset_coalitions,
    screen_supported,
    token_advantages_batch,
    token_credit,
    token_credit_batch,
)

__version__ = "0.1.0"

# name -> module that defines it; imported on first use, so `import ospo_fast` stays light.
_LAZY = {
    "RetrievalReward": "ospo_fast.reward.retrieval_reward",
    "extract_answer": "ospo_fast.reward.answer",
    "build_retriever": "ospo_fast.reward.retrievers.factory",
    "CoalitionEvaluator": "ospo_fast.attribution.coalition_values",
    "OwenConfig": "ospo_fast.attribution.config",
    "StepAdvantages": "ospo_fast.attribution.advantages",
    "step_token_advantages": "ospo_fast.attribution.advantages",
    "step_seed": "ospo_fast.attribution.seeds",
    "attribute": "ospo_fast.attribution.attribute",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ospo_fast' has no attribute {name!r}")


__all__ = [
    "CoalitionEvaluator",
    "OwenConfig",
    "PreparedCorpus",
    "RetrievalReward",
    "StepAdvantages",
    "__version__",
    "attribute",
    "build_retriever",
    "coalition_plan",
    "contiguous_coalitions",
    "cuda_available",
    "cuda_kernels_built",
    "encoder_batch",
    "exact_shapley",
    "extract_answer",
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
    "step_seed",
    "step_token_advantages",
    "token_advantages_batch",
    "token_credit",
    "token_credit_batch",
]
