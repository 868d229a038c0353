"""Arrays and tensors on devices: what the op modules and the GPU launchers share.

Results follow the inputs: when any input is a torch tensor the result is a tensor on
that tensor's device (float32 on CUDA, float64 on the CPU), and all-numpy input gives
numpy (float64 for real values). torch is imported only when a tensor is in play.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

# Share of the free memory one pass may plan for; the rest absorbs allocator rounding
# and whatever else runs on the device.
MEMORY_FRACTION = 0.5


def is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "device")


def is_cuda_tensor(value: Any) -> bool:
    return is_tensor(value) and value.device.type == "cuda"


def to_numpy(value: Any) -> Any:
    """A tensor as a numpy array (a view for CPU tensors); anything else unchanged."""
    return value.detach().cpu().numpy() if is_tensor(value) else value


def tensor_device(*arrays: Any) -> torch.device | None:
    """The device of the first tensor among ``arrays``, or None when there is none."""
    return next((a.device for a in arrays if is_tensor(a)), None)


def like_inputs(result: Any, *arrays: Any) -> Any:
    """``result`` (an array, a tensor or a tuple of them) in the form of the inputs (module doc)."""
    if isinstance(result, tuple):
        return tuple(like_inputs(r, *arrays) for r in result)
    device = tensor_device(*arrays)
    if device is None:
        array = np.asarray(to_numpy(result))
        return array.astype(np.float64) if array.dtype.kind == "f" else array
    import torch

    tensor = torch.as_tensor(result).to(device)
    if tensor.is_floating_point():
        tensor = tensor.to(torch.float32 if device.type == "cuda" else torch.float64)
    return tensor


def on(device: torch.device, value: Any, dtype: torch.dtype) -> torch.Tensor:
    """``value`` (array, tensor or list) as a contiguous tensor of ``dtype`` on ``device``."""
    import torch

    return torch.as_tensor(value).to(device=device, dtype=dtype).contiguous()


def free_memory(device: torch.device) -> int:
    """Free bytes where ``device``'s buffers live: the GPU's, or the host's for the CPU."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def rows_per_pass(n_rows: int, bytes_per_row: int, fixed_bytes: int, free_bytes: int) -> int:
    """How many rows one pass may take so that its work space fits in the budget.

    The budget is ``MEMORY_FRACTION`` of ``free_bytes``; ``fixed_bytes`` is the part that
    does not grow with the rows. Raises MemoryError when not even one row fits.
    """
    budget = int(free_bytes * MEMORY_FRACTION) - fixed_bytes
    if budget < bytes_per_row:
        raise MemoryError(
            f"one row needs {bytes_per_row} bytes of device memory beyond {fixed_bytes} fixed bytes, "
            f"but only {free_bytes} bytes are free"
        )
    return max(1, min(n_rows, budget // max(bytes_per_row, 1)))


def passes(n_rows: int, rows_per: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive passes covering ``n_rows``."""
    for start in range(0, n_rows, rows_per):
        yield start, min(n_rows, start + rows_per)


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def require_shape(name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    require(tuple(tensor.shape) == shape, f"{name} must have shape {shape}, got {tuple(tensor.shape)}")


def check_offsets(offsets: torch.Tensor, total: int, name: str, total_name: str) -> None:
    """``offsets`` is a CSR index ``[B+1]`` rising from 0 to ``total``."""
    require(offsets.dim() == 1 and offsets.numel() >= 1, f"{name} must be [B+1], got shape {tuple(offsets.shape)}")
    first, last = int(offsets[0]), int(offsets[-1])
    rises = bool((offsets[1:] >= offsets[:-1]).all())
    require(first == 0 and last == total and rises, f"{name} must rise from 0 to {total} ({total_name}), got {first}..{last}")


def synchronize(device: torch.device | None) -> None:
    """Wait for ``device``'s queued kernels (CUDA only), so a stage's time is its own."""
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def stream_of(device: torch.device) -> int:
    """The current CUDA stream of ``device`` as an address, for the CUDA launchers."""
    import torch

    return int(torch.cuda.current_stream(device).cuda_stream)
