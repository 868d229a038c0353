"""The compiled core, or ``None`` when the package was used without building it.

Nothing compiles here: ``pip install .`` builds ``ospo_fast._core`` ahead of time.
Without it every public op falls back to its twin in :mod:`ospo_fast.ops.reference`.
"""

from __future__ import annotations

from types import ModuleType

core: ModuleType | None
try:
    from ospo_fast import _core as core
except ImportError:
    core = None


def native_available() -> bool:
    """True when the C++ core was built and imports."""
    return core is not None


def cuda_kernels_built() -> bool:
    """True when the core was compiled with its CUDA kernels."""
    return core is not None and bool(core.with_cuda)


def cuda_available() -> bool:
    """True when the CUDA kernels were built and a CUDA device is usable now."""
    return cuda_kernels_built() and bool(core.cuda_device_count() > 0)  # type: ignore[union-attr]
