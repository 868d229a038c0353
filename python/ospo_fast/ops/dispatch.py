"""Which kernels run an op: resolved once per call, here and nowhere else.

``backend="auto"`` follows the data: an op with a CUDA tensor among its inputs runs a
GPU kernel, anything else (numpy arrays, CPU tensors) the C++ core. ``"cpu"``,
``"cuda"`` and ``"triton"`` force a path. A forced GPU path moves numpy inputs to the
current CUDA device, and the result comes back in the inputs' form
(:func:`ospo_fast.ops.device.like_inputs`).

Triton kernels also run on the CPU under the Triton interpreter (``TRITON_INTERPRET=1``
set before triton is imported): with ``backend="triton"`` and CPU data they run on CPU
tensors. That is how the GPU plumbing is tested on machines without a GPU.

When the wanted kernel is missing (no CUDA device, a core built without CUDA, no
triton, or an op without that kernel) the op runs on the C++ core, with one warning
per op and process.

Kernels per op, in order of preference::

    owen  (token_advantages_batch)        cuda (kernels/cuda/owen_advantages.cu), triton
    ndcg  (pool_ndcg_dense)               triton (kernels/triton/fused_ndcg.py)
    pack  (pack_query_windows / subsets)  cuda (kernels/cuda/pack_queries.cu), triton
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from typing import TYPE_CHECKING, Any, Literal

from ospo_fast.ops.device import is_cuda_tensor
from ospo_fast.ops.native import core, cuda_kernels_built
from ospo_fast.types import Backend, Kernel, choices_of

if TYPE_CHECKING:
    import torch

Op = Literal["owen", "ndcg", "pack"]

BACKENDS = choices_of(Backend)
GPU_KERNELS: dict[str, tuple[Kernel, ...]] = {
    "owen": ("cuda", "triton"),
    "ndcg": ("triton",),
    "pack": ("cuda", "triton"),
}
CUDA_ENTRY_POINTS: dict[str, str] = {"owen": "owen_token_advantages_cuda", "pack": "pack_query_windows_cuda"}

_warned_ops: set[str] = set()


def cuda_device_available() -> bool:
    """True when torch is installed and sees a CUDA device."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def triton_interpreted() -> bool:
    """True when Triton kernels run in the interpreter, on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def kernel_missing_reason(op: Op, kernel: Kernel, *, data_on_cuda: bool) -> str | None:
    """Why ``kernel`` cannot run ``op`` here, or None when it can."""
    if kernel not in GPU_KERNELS[op]:
        return f"{op} has no {kernel} kernel"
    if kernel == "triton":
        if not triton_available():
            return "triton is not installed"
        if data_on_cuda or triton_interpreted() or cuda_device_available():
            return None
        return "no CUDA device is available (and TRITON_INTERPRET is not 1)"
    if not cuda_device_available():
        return "no CUDA device is available"
    if not (cuda_kernels_built() and hasattr(core, CUDA_ENTRY_POINTS[op])):
        return "ospo_fast._core was built without its CUDA kernels"
    return None


def resolve_backend(op: Op, backend: Backend, *arrays: Any) -> Kernel:
    """The kernels that run ``op`` on ``arrays``: "cpu", "cuda" or "triton"."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(repr(b) for b in BACKENDS)}; got {backend!r}")
    data_on_cuda = any(is_cuda_tensor(a) for a in arrays)
    if backend == "cpu" or (backend == "auto" and not data_on_cuda):
        return "cpu"
    wanted = GPU_KERNELS[op] if backend == "auto" else (backend,)
    reasons = []
    for kernel in wanted:
        reason = kernel_missing_reason(op, kernel, data_on_cuda=data_on_cuda)
        if reason is None:
            return kernel
        reasons.append(reason)
    if op not in _warned_ops:
        _warned_ops.add(op)
        warnings.warn(
            f"ospo_fast: {op} runs on the CPU core instead of the GPU ({'; '.join(reasons)})",
            RuntimeWarning,
            stacklevel=3,
        )
    return "cpu"


def work_device(kernel: Kernel, *arrays: Any) -> torch.device:
    """Where a GPU kernel runs: the first CUDA tensor's device, else the current CUDA
    device, else (the Triton interpreter) the CPU."""
    import torch

    cuda = next((a.device for a in arrays if is_cuda_tensor(a)), None)
    if cuda is not None:
        return cuda
    if kernel == "triton" and triton_interpreted():
        return torch.device("cpu")
    return torch.device("cuda")
