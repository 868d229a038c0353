"""Shared benchmark plumbing: repeated timings with percentiles, machine facts, result files.

Every benchmark prints ratios against a baseline measured in the same run; this
module only times and records. Timings are noisy on shared machines: quote p50.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ospo_fast.ops.native import core


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of one measured callable over its repeats."""

    name: str
    repeats: int
    p20: float
    p50: float
    p80: float


def measure(name: str, fn: Callable[[], Any], *, repeats: int, warmup: int = 1) -> tuple[Timing, Any]:
    """Runs ``fn`` warmup + repeats times; returns the timing and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    p20, p50, p80 = np.percentile(seconds, [20, 50, 80])
    return Timing(name, repeats, float(p20), float(p50), float(p80)), result


def git_commit() -> str:
    """The checkout's short commit, with ``+dirty`` when tracked files differ from it."""
    here = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=here).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, check=True, cwd=here).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+dirty" if changed else commit


# CPU features that change which kernels run or how fast (the screened NDCG needs AVX512-BF16).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_facts() -> dict[str, Any]:
    """The CPU model and the flags in ``CPU_FLAGS`` it has (from /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"cpu_model": platform.processor() or None, "cpu_flags": {}}
    fields = dict(line.split(":", 1) for line in text.splitlines()[:40] if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {"cpu_model": fields.get("model name"), "cpu_flags": {flag: flag in flags for flag in CPU_FLAGS}}


def machine_facts() -> dict[str, Any]:
    """What a reader needs to compare runs: CPU model and flags, cores, versions, commit."""
    versions = {}
    for package in ("ospo_fast", "numpy", "torch", "faiss-cpu", "sentence-transformers", "onnxruntime", "triton"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    from ospo_fast.ops.ndcg import screen_supported

    return {
        "machine": platform.machine(),
        **cpu_facts(),
        "cpu_count": os.cpu_count(),
        "screened_ndcg_kernel": screen_supported(),
        "python": platform.python_version(),
        "gpu": gpu,
        "git_commit": git_commit(),
        "versions": versions,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_results(name: str, rows: list[dict[str, Any]], extra: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """``<out_dir>/<name>.json`` (machine facts + rows) and ``<name>.csv`` (rows)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out_dir / f"{name}.json", out_dir / f"{name}.csv"
    json_path.write_text(json.dumps({"machine": machine_facts(), **extra, "rows": rows}, indent=2))
    columns = sorted({key for row in rows for key in row})
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return json_path, csv_path


def timing_row(timing: Timing, baseline: Timing, **fields: Any) -> dict[str, Any]:
    """A result row with the speedup of ``timing`` over ``baseline`` (both p50)."""
    return {**asdict(timing), "speedup_vs_baseline": baseline.p50 / timing.p50, **fields}


def print_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    print(f"\n{title}")
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(w) for c, w in zip(columns, widths)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


# ------------------------------------------------------------------ threads


@dataclass
class Threads:
    """Threads per library; ``measured`` holds the seconds behind each automatic choice."""

    torch_single: int = 1
    torch_batched: int = 1
    onnx: int = 1
    faiss_single: int = 1
    faiss_batched: int = 1
    blas_core: int = 1
    measured: dict[str, dict[int, float]] | None = None

    @property
    def of_loop(self) -> str:
        """The threads the published-shape loop ran with."""
        return f"torch {self.torch_single}, faiss {self.faiss_single}"

    @property
    def of_cpu(self) -> str:
        """The threads ospo_fast's CPU step ran with (the encoder, and BLAS plus the native core)."""
        return f"onnx {self.onnx}, BLAS/core {self.blas_core}"

    def of_kernel(self, kernel: str) -> str:
        """The threads a kernel table row ran with, by the library it times."""
        if "faiss" in kernel:
            return f"faiss {self.faiss_batched}"
        if kernel.startswith("GPU"):
            return "device"
        if "tokenizer" in kernel or "reference.py" in kernel:
            return "1 (Python)"
        return f"BLAS/core {self.blas_core}"


def set_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def set_onnx_threads(encoder: Any, n: int) -> None:
    encoder.set_threads(n)


def set_blas_core_threads(n: int) -> None:
    """Every BLAS in the process (numpy's, for the fused NDCG's tiles, and faiss's) and the native core."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")
    if core is not None:
        core.set_num_threads(n)


def pick_threads(name: str, setter: Callable[[int], None], work: Callable[[], Any], repeats: int,
                 measured: dict[str, dict[int, float]]) -> int:
    seconds = {}
    for n in (1, 2):
        setter(n)
        seconds[n] = measure(f"{name} {n}", work, repeats=repeats)[0].p50
    measured[name] = seconds
    best = min(seconds, key=seconds.__getitem__)
    setter(best)
    return best
