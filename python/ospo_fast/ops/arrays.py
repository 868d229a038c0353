"""Turn user inputs into the exact arrays the core expects, or raise naming the argument.

The bindings check dtypes and shapes strictly; these helpers only widen what is
safe to widen (any integer dtype to int32/int64, any real dtype to float64, 0/1
integers to bool) and accept CPU torch tensors through ``__array__``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_numpy(name: str, value: Any) -> np.ndarray:
    if type(value).__module__.startswith("torch") and getattr(value, "is_cuda", False):
        raise TypeError(f"{name} is a CUDA tensor; this op runs on the CPU, pass a CPU tensor or numpy array")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}") from error
    if array.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got ragged or object input of type {type(value).__name__}")
    return array


def as_float(name: str, value: Any) -> np.ndarray:
    """float64, from any real dtype."""
    array = _as_numpy(name, value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real-valued array, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float64)


def as_float32(name: str, value: Any) -> np.ndarray:
    """float32, from any real dtype (embeddings)."""
    array = _as_numpy(name, value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real-valued array, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def as_int(name: str, value: Any, dtype: type = np.int64) -> np.ndarray:
    """An integer array of ``dtype``; values that do not fit raise."""
    array = _as_numpy(name, value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {array.dtype}")
    if array.size and array.dtype != dtype:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise ValueError(f"{name} holds values outside the {np.dtype(dtype).name} range")
    return np.ascontiguousarray(array, dtype=dtype)


def as_pairs(name: str, value: Any, dtype: type = np.int64) -> np.ndarray:
    """``[n, 2]`` (start, end) rows of ``dtype`` from any integer array holding 2 n values."""
    array = as_int(name, value, dtype)
    if array.size % 2:
        raise ValueError(f"{name} must hold (start, end) pairs [n, 2], got shape {array.shape}")
    return array.reshape(-1, 2)


def as_bool(name: str, value: Any) -> np.ndarray:
    """bool, from bool or 0/1 integers."""
    array = _as_numpy(name, value)
    if array.dtype == bool:
        return np.ascontiguousarray(array)
    if array.dtype.kind in "iu" and np.isin(array, (0, 1)).all():
        return np.ascontiguousarray(array, dtype=bool)
    raise TypeError(f"{name} must be a bool mask (or 0/1 integers), got dtype {array.dtype}")


INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1


def as_count(name: str, value: Any, limit: int = INT64_MAX) -> int:
    """A Python int in ``[0, limit]`` (the core takes int64 counts, uint64 seeds)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    if value > limit:
        raise ValueError(f"{name} must be <= {limit}, got {value}")
    return int(value)


def as_real(name: str, value: Any) -> float:
    """A finite Python float from a real scalar (an int too large for a float raises here)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be finite, got an int of {int(value).bit_length()} bits") from None
    if not np.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    return number
