"""The attribution core's ops: native C++ (CPU), CUDA and Triton kernels behind one API.

Each op module checks its arguments, resolves its kernels once
(:mod:`ospo_fast.ops.dispatch`), and runs the C++ core (:mod:`ospo_fast.ops.native`),
a GPU launcher (``*_gpu`` modules), or its plain twin in :mod:`ospo_fast.ops.reference`
when the core is not built. The mode and choice names live in :mod:`ospo_fast.types`,
shared by every layer and the kernels.
"""

from ospo_fast.ops.coalitions import coalition_plan, contiguous_coalitions, sample_coalitions, sample_subset_coalitions
from ospo_fast.ops.credit import redistribute, redistribute_batch, token_advantages_batch, token_credit, token_credit_batch
from ospo_fast.ops.grpo import group_advantages
from ospo_fast.ops.native import cuda_available, cuda_kernels_built, native_available
from ospo_fast.ops.ndcg import PreparedCorpus, ndcg_at_k, pool_ndcg, pool_ndcg_dense, prepare_corpus, screen_supported
from ospo_fast.ops.owen import exact_shapley, owen_values, owen_values_batch
from ospo_fast.ops.packing import encoder_batch

__all__ = [
    "PreparedCorpus",
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
