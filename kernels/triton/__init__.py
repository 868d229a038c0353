"""Triton kernels of ospo_fast, installed as ``ospo_fast.kernels``.

Importing this package imports triton; the launchers in ``ospo_fast.ops`` do so only
when a Triton kernel is about to run. On a CPU, ``TRITON_INTERPRET=1`` (set before
triton is imported) runs the same kernels on CPU tensors, which is how the tests check
them.
"""

from ospo_fast.kernels.fused_ndcg import fused_pool_ndcg
from ospo_fast.kernels.owen_advantages import owen_token_advantages
from ospo_fast.kernels.pack_queries import pack_subsets, pack_windows

__all__ = ["fused_pool_ndcg", "owen_token_advantages", "pack_subsets", "pack_windows"]
