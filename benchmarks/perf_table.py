"""The README's performance table, rebuilt from saved runs of owen_throughput.py.

Each figure is the median over the runs, with the range (min to max) beside it; the
thread counts each side used, the CPU model and flags, and the commit come from the runs
themselves, so the table and the runs cannot drift apart::

    python benchmarks/perf_table.py benchmarks/results/owen_throughput_quick/*.json            # print it
    python benchmarks/perf_table.py benchmarks/results/owen_throughput_quick/*.json --write README.md
    python benchmarks/perf_table.py benchmarks/results/owen_throughput_quick/*.json --check README.md

``--write`` replaces the block between ``<!-- perf-table:start -->`` and
``<!-- perf-table:end -->``; ``--check`` exits 1 when that block differs from the runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

START, END = "<!-- perf-table:start -->", "<!-- perf-table:end -->"
MIN_RUNS = 3


@dataclass(frozen=True)
class Figure:
    """One row of the table: a label, how to read it off a run, its unit, and the threads behind it."""

    label: str
    read: Callable[[dict[str, Any]], float]
    unit: str  # "s" (seconds) or "x" (a ratio)
    threads: Callable[[dict[str, Any]], str]


def _row(run: dict[str, Any], implementation: str) -> dict[str, Any]:
    return next(r for r in run["rows"] if r["implementation"] == implementation)


def _kernel(run: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(r for r in run["kernels"] if r["kernel"].startswith(prefix))


def _ablation(run: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(r for r in run["ablation"] if r["variant"].startswith(prefix))


LOOP, CPU = "loop (published shape)", "ospo_fast CPU"
FIGURES = (
    Figure("loop shaped like the published code (encoder batch of one, faiss top-1000, Python NDCG and Owen)",
           lambda r: _row(r, LOOP)["p50_s"], "s", lambda r: _row(r, LOOP)["threads"]),
    Figure("ospo_fast CPU step (the trainer's `step_token_advantages`, rewards and Â included)",
           lambda r: _row(r, CPU)["p50_s"], "s", lambda r: _row(r, CPU)["threads"]),
    Figure("**end to end: ospo_fast CPU vs the loop**", lambda r: _row(r, CPU)["speedup_vs_loop"], "x",
           lambda r: f"{_row(r, LOOP)['threads']} vs {_row(r, CPU)['threads']}"),
    Figure("of the CPU step: the MiniLM encoder (onnxruntime)", lambda r: _row(r, CPU)["stage_encode_s"], "s",
           lambda r: _row(r, CPU)["threads"]),
    Figure("of the CPU step: the fused NDCG", lambda r: _row(r, CPU)["stage_ndcg_s"], "s",
           lambda r: _row(r, CPU)["threads"]),
    Figure("v(S) ablation: batched torch, no dedup", lambda r: _ablation(r, "batched torch")["p50_s"], "s",
           lambda r: f"torch {r['threads']['torch_batched']}"),
    Figure("v(S) ablation: + dedup", lambda r: _ablation(r, "+ dedup")["p50_s"], "s",
           lambda r: f"torch {r['threads']['torch_batched']}"),
    Figure("v(S) ablation: + packed token ids", lambda r: _ablation(r, "+ packed")["p50_s"], "s",
           lambda r: f"torch {r['threads']['torch_batched']}"),
    Figure("v(S) ablation: + onnxruntime (the library default)", lambda r: _ablation(r, "+ onnxruntime")["p50_s"],
           "s", lambda r: f"onnx {r['threads']['onnx']}"),
    Figure("kernel: faiss `IndexFlatIP` top-1000 + numpy NDCG (baseline)",
           lambda r: _kernel(r, "NDCG@pool: faiss")["p50_s"], "s",
           lambda r: _kernel(r, "NDCG@pool: faiss")["threads"]),
    Figure("kernel: fused `pool_ndcg_dense`, screened CPU kernel",
           lambda r: _kernel(r, "NDCG@pool: fused pool_ndcg_dense (screened")["p50_s"], "s",
           lambda r: _kernel(r, "NDCG@pool: fused pool_ndcg_dense (screened")["threads"]),
    Figure("**kernel: fused NDCG vs faiss + numpy**",
           lambda r: _kernel(r, "NDCG@pool: fused pool_ndcg_dense (screened")["ratio"], "x",
           lambda r: f"{_kernel(r, 'NDCG@pool: faiss')['threads']} vs "
                     f"{_kernel(r, 'NDCG@pool: fused pool_ndcg_dense (screened')['threads']}"),
    Figure("kernel: fused NDCG, tiled CPU kernel (fp32 BLAS tiles) vs faiss + numpy",
           lambda r: _kernel(r, "NDCG@pool: fused pool_ndcg_dense (tiled")["ratio"], "x",
           lambda r: _kernel(r, "NDCG@pool: fused pool_ndcg_dense (tiled")["threads"]),
    Figure("kernel: bare fp32 matmul `[C, d] @ [d, N]`", lambda r: _kernel(r, "bare matmul")["p50_s"], "s",
           lambda r: _kernel(r, "bare matmul")["threads"]),
    Figure("kernel: fused NDCG / bare matmul", lambda r: _kernel(r, "bare matmul")["ratio"], "x",
           lambda r: _kernel(r, "bare matmul")["threads"]),
    Figure("kernel: encoder inputs packed from segment ids vs the tokenizer",
           lambda r: _kernel(r, "encoder inputs: packed")["ratio"], "x",
           lambda r: _kernel(r, "encoder inputs: packed")["threads"]),
    Figure("kernel: native Owen + redistribution vs reference.py",
           lambda r: _kernel(r, "Owen + redistribution: native")["ratio"], "x",
           lambda r: _kernel(r, "Owen + redistribution: native")["threads"]),
)


def fmt(value: float, unit: str) -> str:
    """A ratio to 2 decimals below 10 (1 above), seconds to 3 significant digits (ms below 10 ms)."""
    if unit == "x":
        return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"
    return f"{value:.3g} s" if value >= 0.01 else f"{value * 1e3:.2g} ms"


def summarise(values: Sequence[float], unit: str) -> tuple[str, str]:
    """``(median, "min – max")`` of one figure over the runs."""
    return fmt(float(np.median(values)), unit), f"{fmt(min(values), unit)} – {fmt(max(values), unit)}"


def distinct(values: Sequence[str]) -> str:
    return "; ".join(dict.fromkeys(values))


def table(runs: Sequence[dict[str, Any]]) -> str:
    """The markdown block for ``runs`` (at least ``MIN_RUNS`` of the same command and size)."""
    if len(runs) < MIN_RUNS:
        raise ValueError(f"a table needs at least {MIN_RUNS} runs, got {len(runs)}")
    configs = {json.dumps({k: v for k, v in r["config"].items() if k not in ("out", "name", "cache_dir")},
                          sort_keys=True) for r in runs}
    if len(configs) != 1:
        raise ValueError("the runs were made with different options; a table compares like with like")
    config = runs[0]["config"]
    machine = runs[0]["machine"]
    flags = machine.get("cpu_flags", {})
    cpu = (f"{distinct([r['machine'].get('cpu_model') or 'unknown CPU' for r in runs])}, "
           f"{distinct([str(r['machine']['cpu_count']) for r in runs])} cores, AVX512-BF16 "
           f"{'yes' if flags.get('avx512_bf16') else 'no'} (screened NDCG kernel "
           f"{'on' if machine.get('screened_ndcg_kernel') else 'off'})")
    commits = distinct([r["machine"]["git_commit"] for r in runs])
    command = "python benchmarks/owen_throughput.py" + (" --quick" if config.get("quick") else "")
    lines = [
        f"{len(runs)} separate runs of `{command}` (B = {config['responses'][0]}, M = {config['coalitions'][0]}, "
        f"w_max = {config['w_max']}, {config['n_products']:,} products, all-MiniLM-L6-v2), at commit {commits}, "
        f"on {cpu}, machine otherwise idle. Median over the runs, and the range from the slowest to the fastest "
        f"run; each run's own figure is a p50 of {config['repeats']} repeats. Threads: each library was timed "
        f"at 1 and 2 threads in each run and the faster kept (`--threads auto`); the column shows what each "
        f"side ran with, across the runs.",
        "",
        "| figure | median | range over the runs | threads |",
        "|---|---|---|---|",
    ]
    for figure in FIGURES:
        median, spread = summarise([figure.read(r) for r in runs], figure.unit)
        lines.append(f"| {figure.label} | {median} | {spread} | {distinct([figure.threads(r) for r in runs])} |")
    return "\n".join(lines)


def with_table(readme: str, block: str) -> str:
    """``readme`` with its perf-table block replaced by ``block``."""
    if START not in readme or END not in readme:
        raise ValueError(f"the README has no {START} ... {END} block")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="+", help="owen_throughput JSON results, one per run")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, help="replace the table block of this README")
    group.add_argument("--check", type=Path, help="exit 1 when this README's table block differs from the runs")
    args = parser.parse_args(argv)
    runs = [json.loads(path.read_text()) for path in sorted(args.results)]
    block = table(runs)
    if args.write:
        args.write.write_text(with_table(args.write.read_text(), block))
    elif args.check:
        readme = args.check.read_text()
        if with_table(readme, block) != readme:
            print(f"{args.check}: the performance table differs from the runs; rebuild it with --write")
            return 1
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
