"""One RL step's attribution end to end, through the function the trainer calls, side by side in one run.

Question: how long does one RL step's attribution take, from the answers to the token
advantages? That is the rewards, the GRPO Â, and
:func:`ospo_fast.attribution.step_token_advantages` (segments -> coalition plan ->
partial queries -> encoder -> fused NDCG@pool -> fused Owen + redistribution), exactly as
the trainer and the TRL and verl adapters run it.

Implementations (speedups against the first):

1. ``loop``: shaped like the published implementation (``published_loop.py``): per
   coalition, an encoder call on a batch of one, a faiss top-1000 search and Python
   NDCG; Owen and PROP in Python. Timed on the first ``--loop-responses`` responses
   (whole prompt groups) and extrapolated per coalition to the step (median over responses).
2. ``cpu``: the library on the host (numpy, the C++ core, onnxruntime).
3. ``device``: the same call with the reward on a torch device (``--device``, default
   ``cuda``): the corpus, the encoder, the packing, the fused NDCG and the Owen reduction
   run there, on the CPU's world and on a ``--gpu-products`` world. Its results are
   checked against the CPU core's on the same step, and its fused NDCG is timed against
   a bare matmul on the device. ``--device cpu --backend triton`` under
   ``TRITON_INTERPRET=1`` runs this path's Triton kernels on the CPU (a smoke test: the
   interpreter is slow, so its times mean nothing).

Both the loop and ospo_fast score the same coalitions: the rows with Â ≠ 0, the same plan
(segmenter ``word``, so every response reaches M). Their values and token advantages are
compared in the run. Also printed: thread choices (each measured), an ablation of the
evaluator and the kernel timings (``kernel_timings.py``). The world and the corpus
embeddings are cached (``--cache-dir``, default $OSPO_CACHE_DIR or ~/.cache/ospo_fast).

    python benchmarks/owen_throughput.py            # full: B 64, 256 x M 32, 96
    python benchmarks/owen_throughput.py --quick    # B 64, M 96: about 3 minutes warm, 10 on a cold cache
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    Threads,
    Timing,
    measure,
    pick_threads,
    print_table,
    set_blas_core_threads,
    set_onnx_threads,
    set_torch_threads,
    write_results,
)
from kernel_timings import gpu_ndcg_kernel_rows, input_kernel_rows, ndcg_kernel_rows, owen_kernel_rows  # noqa: E402
from published_loop import STAGES, LoopModel, LoopResult, loop_step  # noqa: E402
from workload import SEGMENTER, Step, cached_world, make_step, min_segments  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ospo_fast.attribution import CoalitionEvaluator, OwenConfig, StepAdvantages, step_token_advantages  # noqa: E402
from ospo_fast.attribution.partial_queries import build_queries  # noqa: E402
from ospo_fast.attribution.segment import get_segmenter  # noqa: E402
from ospo_fast.ops.coalitions import coalition_plan  # noqa: E402
from ospo_fast.ops.device import synchronize, to_numpy  # noqa: E402
from ospo_fast.ops.grpo import group_advantages  # noqa: E402
from ospo_fast.ops.native import native_available  # noqa: E402
from ospo_fast.ops.ndcg import pool_ndcg_dense  # noqa: E402
from ospo_fast.reward.query_plan import QueryPlan  # noqa: E402
from ospo_fast.reward.retrieval_reward import Pools, RetrievalReward  # noqa: E402
from ospo_fast.reward.retrievers import OnnxEncoder  # noqa: E402

IMPLEMENTATIONS = ("loop", "cpu", "device")
QUICK = {"responses": [64], "coalitions": [96], "loop_responses": 8, "ablation_repeats": 1, "gpu_products": 0}
# The figures: the CPU step against the loop; one device step at 1M products; fused NDCG against a matmul.
TARGET_CPU_SPEEDUP = 20.0
TARGET_DEVICE_STEP_S = 0.1
TARGET_FUSED_OVER_MATMUL = 2.0


# ------------------------------------------------------------------ arguments


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--responses", type=int, nargs="+", default=[64, 256], help="B values (multiples of G)")
    parser.add_argument("--coalitions", type=int, nargs="+", default=[32, 96], help="M values")
    parser.add_argument("--w-max", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8, help="G samples per prompt")
    parser.add_argument("--repeat-rate", type=float, default=0.25, help="chance a sample repeats one of its group")
    parser.add_argument("--n-products", type=int, default=20_000)
    parser.add_argument("--gpu-products", type=int, default=1_000_000, help="extra world for the device only; 0: none")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each ospo_fast step")
    parser.add_argument("--ablation-repeats", type=int, default=3)
    parser.add_argument("--loop-responses", type=int, default=64, help="responses the loop is timed on")
    parser.add_argument("--threads", default="auto", help="'auto' (measure 1 and 2, keep the faster) or a count")
    parser.add_argument("--device", default="cuda", help="torch device of the 'device' implementation")
    parser.add_argument("--backend", default="auto", choices=("auto", "cpu", "cuda", "triton"),
                        help="kernels of the 'device' implementation (ospo_fast.ops.dispatch)")
    parser.add_argument(
        "--implementations", nargs="+", choices=IMPLEMENTATIONS, default=list(IMPLEMENTATIONS),
        help="which to run; the loop needs faiss",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None, help="world + corpus cache ($OSPO_CACHE_DIR)")
    parser.add_argument("--out", type=Path, default=Path("bench_results"))
    parser.add_argument("--name", default=None, help="result file stem (default owen_throughput[_quick])")
    parser.add_argument(
        "--quick", action="store_true",
        help="B = 64, M = 96, the loop on one prompt group, single ablation runs, no device-only world",
    )
    args = parser.parse_args(argv)
    if args.quick:
        # Options given on the command line still win over the quick sizes.
        parser.set_defaults(**QUICK)
        args = parser.parse_args(argv)
    if args.name is None:
        args.name = "owen_throughput_quick" if args.quick else "owen_throughput"
    if any(b % args.group_size for b in args.responses) or args.loop_responses % args.group_size:
        raise SystemExit(f"--responses and --loop-responses must be multiples of G = {args.group_size}")
    if args.threads != "auto" and not args.threads.isdigit():
        raise SystemExit(f"--threads must be 'auto' or a count, got {args.threads!r}")
    return args


# ------------------------------------------------------------------ ospo_fast's step


def fast_step(reward: RetrievalReward, evaluator: CoalitionEvaluator, step: Step, cfg: OwenConfig, group_size: int,
              seed: int) -> tuple[StepAdvantages, dict[str, float]]:
    """Rewards, GRPO Â and the trainer's step function on one step, timed per stage."""
    start = time.perf_counter()
    rewards = reward.score_answers(step.answers, step.samples)  # [B]
    rewarded = time.perf_counter()
    advantages = group_advantages(rewards, group_size)  # [B]
    grouped = time.perf_counter()
    result = step_token_advantages(step.answers, step.token_offsets, step.token_mask, advantages, step.samples,
                                   evaluator, cfg, seed=seed, mode="prop")
    synchronize(evaluator.device)
    seconds = {stage: result.timings.get(stage, 0.0) for stage in STAGES}
    return result, seconds | {"reward": rewarded - start, "grpo": grouped - rewarded}


def measure_fast(name: str, reward: RetrievalReward, evaluator: CoalitionEvaluator, step: Step, cfg: OwenConfig,
                 group_size: int, seed: int, repeats: int) -> tuple[Timing, StepAdvantages, dict[str, float]]:
    """p20/p50/p80 of the whole step and the median seconds of each stage."""
    per_stage: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def run() -> StepAdvantages:
        result, seconds = fast_step(reward, evaluator, step, cfg, group_size, seed)
        for stage, value in seconds.items():
            per_stage[stage].append(value)
        return result

    timing, result = measure(name, run, repeats=repeats)
    return timing, result, {stage: float(np.median(v[-repeats:])) for stage, v in per_stage.items()}


# ------------------------------------------------------------------ ablation of the evaluator


def without_dedup(encoder: Any, reward: RetrievalReward, queries: list[str], coalition_pool: np.ndarray,
                  pools: Pools) -> np.ndarray:
    """v(S) with every non-blank coalition encoded and scored, repeats included: float64 ``[K]``."""
    real = np.flatnonzero([bool(q.strip()) for q in queries])  # [K_real]
    query_pair = np.full(len(queries), -1, dtype=np.int64)  # [K]
    query_pair[real] = np.arange(len(real))
    every = QueryPlan([queries[i] for i in real], np.arange(len(real)), coalition_pool[real], query_pair, real)
    embeddings = encoder.encode(every.texts, batch_size=64)  # [K_real, d]
    return every.scatter(reward.score_embedded(embeddings, every, pools))


def ablation(reward: RetrievalReward, step: Step, cfg: OwenConfig, seed: int, repeats: int
             ) -> tuple[list[dict[str, Any]], float]:
    """v(S) of one step, each measure added in turn: batched torch, + dedup, + packed ids, + onnxruntime.

    Returns the rows and the largest value difference between the variants.
    """
    segmenter = get_segmenter(cfg.segmenter, cover_all_words=cfg.cover_all_words)
    spans = [np.asarray(segmenter(a), dtype=np.int64).reshape(-1, 2) for a in step.answers]
    offsets, coalitions = coalition_plan(np.array([len(s) for s in spans]), cfg.w_max, cfg.max_coalitions, seed=seed)
    index = np.arange(len(step.answers))
    n_real = sum(bool(q.strip()) for q in build_queries(step.answers, spans, offsets, coalitions, "space"))

    def every_coalition() -> np.ndarray:
        queries = build_queries(step.answers, spans, offsets, coalitions, "space")
        pools = reward.load_pools(step.samples)
        coalition_pool = np.repeat(pools.of_sample[index], np.diff(offsets))  # [K]
        return without_dedup(reward.retriever.encoder, reward, queries, coalition_pool, pools)

    timing, values = measure("batched torch", every_coalition, repeats=repeats, warmup=0)
    rows = [{"variant": "batched torch (length-sorted, no dedup)", "encoder_path": "text batches, torch on cpu",
             "texts_encoded": n_real, "p20_s": timing.p20, "p50_s": timing.p50, "p80_s": timing.p80}]
    results = [values]
    variants = (("+ dedup", False, False), ("+ packed token ids", True, False),
                ("+ onnxruntime (library default)", True, True))
    for label, pack, onnx in variants:
        evaluator = CoalitionEvaluator(reward, pack_segments=pack, onnx_on_cpu=onnx)

        def evaluate(e: CoalitionEvaluator = evaluator) -> np.ndarray:
            return e.evaluate(step.answers, spans, index, step.samples, offsets, coalitions)

        timing, values = measure(label, evaluate, repeats=repeats, warmup=0)
        stats = evaluator.last_stats
        rows.append({"variant": label, "encoder_path": stats.encoder, "texts_encoded": stats.n_unique_texts,
                     "p20_s": timing.p20, "p50_s": timing.p50, "p80_s": timing.p80})
        results.append(values)
    for previous, row in zip([rows[0], *rows[:-1]], rows):
        row["speedup_vs_previous"] = previous["p50_s"] / row["p50_s"]
        row["speedup_vs_batched_torch"] = rows[0]["p50_s"] / row["p50_s"]
    return rows, max(float(np.abs(v - results[0]).max()) for v in results)


# ------------------------------------------------------------------ the device implementation


def device_rows(args: argparse.Namespace, env: Setup, cpu_runs: dict[tuple[int, int], FastRun],
                loop_step_s: dict[tuple[int, int], float]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict]:
    """The step on ``args.device`` for every (B, M), on the CPU's world and on the large device-only world.

    Returns result rows, kernel rows (fused NDCG vs matmul on the largest world's headline
    step, on a GPU) and checks (the device's advantages against the CPU core's).
    """
    import torch

    from ospo_fast.reward.retrievers import build_retriever

    device = torch.device(args.device)
    print(f"\ndevice: {torch.cuda.get_device_name(device) if device.type == 'cuda' else device}, "
          f"backend {args.backend}", flush=True)
    rows: list[dict[str, Any]] = []
    kernels: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    headline = (min(args.responses), max(args.coalitions))
    worlds = [args.n_products] + ([args.gpu_products] if args.gpu_products and device.type == "cuda" else [])
    for n_products in worlds:
        world = cached_world(n_products, max(env.steps) // args.group_size, args.seed, env.cache_dir)
        retriever = build_retriever("minilm", world.catalog["text"].tolist(), cache_dir=env.cache_dir,
                                    device=str(device))
        reward = RetrievalReward(retriever, world.catalog["product_id"].tolist(), k=args.k, gain="binary",
                                 device=device, backend=args.backend)
        evaluator = CoalitionEvaluator(reward)
        records = world.queries.to_dict("records")
        for n_responses in args.responses:
            step = env.steps[n_responses] if n_products == args.n_products else make_step(
                records, n_responses, args.group_size, args.repeat_rate, env.min_words, args.seed)
            for m in args.coalitions:
                timing, result, stages = measure_fast(
                    "device", reward, evaluator, step, env.cfgs[m], args.group_size, args.seed, args.repeats)
                base = loop_step_s.get((n_responses, m)) if n_products == args.n_products else None
                rows.append(step_row(f"ospo_fast {device.type} ({args.backend})", n_products, n_responses, m,
                                     result.n_coalitions, timing, base, evaluator.last_stats, stages,
                                     "measured on the whole step", "host: as the CPU row"))
                cpu = cpu_runs.get((n_responses, m)) if n_products == args.n_products else None
                if cpu is not None:
                    checks[f"device_vs_cpu_B{n_responses}_M{m}"] = compare_steps(result, cpu.result, step)
                if device.type == "cuda" and n_products == worlds[-1] and (n_responses, m) == headline:
                    table, kernel_checks = gpu_ndcg_kernel_rows(reward, step, result, args.repeats)
                    kernels += table
                    checks |= kernel_checks
    return rows, kernels, checks


def compare_steps(device: StepAdvantages, cpu: StepAdvantages, step: Step) -> dict[str, float]:
    """The device step against the CPU core's on the same step (same coalitions when both scored the same rows)."""
    got = np.asarray(to_numpy(device.token_advantages), dtype=np.float64)
    want = np.asarray(cpu.token_advantages)
    scale = max(float(np.abs(cpu.advantages).max()), 1e-30)
    row_close = np.isclose(got, want, rtol=1e-3, atol=1e-4 * scale).all(axis=1)
    same_plan = device.n_coalitions == cpu.n_coalitions
    values = (np.abs(np.asarray(to_numpy(device.scored.values), dtype=np.float64) - cpu.scored.values)
              if same_plan and device.scored is not None else np.zeros(1))
    return {
        "advantages_max_abs_diff_over_max_adv": float(np.abs(got - want).max() / scale),
        "rows_within_1e-3": float(row_close.mean()),
        "values_max_abs_diff": float(values.max()),
        "values_over_1e-4": float((values > 1e-4).mean()),
    }


# ------------------------------------------------------------------ rows


def step_row(name: str, n_products: int, n_responses: int, m: int, n_coalitions: int, timing: Timing,
             loop_s: float | None, stats: Any, stages: dict[str, float], note: str, threads: str) -> dict[str, Any]:
    return {
        "implementation": name, "threads": threads, "products": n_products, "B": n_responses, "M": m,
        "K": n_coalitions,
        "unique_texts": getattr(stats, "n_unique_texts", None), "encoder_path": getattr(stats, "encoder", None),
        "p20_s": timing.p20, "p50_s": timing.p50, "p80_s": timing.p80,
        "responses_per_s": n_responses / timing.p50, "coalitions_per_s": n_coalitions / timing.p50,
        "speedup_vs_loop": (loop_s / timing.p50) if loop_s else None, "note": note,
        **{f"stage_{stage}_s": stages.get(stage, 0.0) for stage in STAGES},
    }


def loop_row(n_products: int, n_responses: int, m: int, n_coalitions: int, loop: LoopResult, threads: str
             ) -> dict[str, Any]:
    """Extrapolated per coalition: the median over timed responses of seconds per coalition, times K."""
    per_coalition = float(np.median(loop.response_s / np.maximum(loop.n_coalitions, 1)))
    step_s = per_coalition * n_coalitions
    timed_total = sum(loop.stage_s.values())
    stages = {stage: step_s * seconds / timed_total for stage, seconds in loop.stage_s.items()}
    n_timed = len(loop.response_s)
    timing = Timing("loop", n_timed, step_s, step_s, step_s)
    note = (f"timed on {n_timed} responses ({int(loop.n_coalitions.sum())} coalitions), "
            f"extrapolated per coalition (median)")
    row = step_row("loop (published shape)", n_products, n_responses, m, n_coalitions, timing, step_s, None, stages,
                   note, threads)
    row["p20_s"] = row["p80_s"] = None
    return row


def check_against_loop(loop: LoopResult, result: StepAdvantages, step: Step) -> dict:
    """The loop's values and advantages against ospo_fast's on the responses both attributed."""
    fast_values = np.asarray(result.scored.values)[: len(loop.values)]
    token_advantages = np.asarray(result.token_advantages)
    advantage_diff = max(
        float(np.abs(np.array(a) - token_advantages[b][step.token_mask[b]]).max())
        for b, a in zip(loop.rows, loop.advantages)
    )
    return {"responses": len(loop.rows), "values_max_abs_diff": float(np.abs(loop.values - fast_values).max()),
            "token_advantages_max_abs_diff": advantage_diff}


# ------------------------------------------------------------------ setup and main


@dataclass(frozen=True)
class Setup:
    """The CPU world, its retriever and the steps every implementation runs on."""

    cache_dir: Path
    retriever: Any
    reward: RetrievalReward
    evaluator: CoalitionEvaluator
    faiss_index: Any
    steps: dict[int, Step]
    cfgs: dict[int, OwenConfig]
    min_words: int


def setup(args: argparse.Namespace) -> Setup:
    from ospo_fast.reward.retrievers import build_retriever, default_cache_dir

    cache_dir = default_cache_dir() if args.cache_dir is None else args.cache_dir
    world = cached_world(args.n_products, max(args.responses) // args.group_size, args.seed, cache_dir)
    retriever = build_retriever("minilm", world.catalog["text"].tolist(), cache_dir=cache_dir)
    reward = RetrievalReward(retriever, world.catalog["product_id"].tolist(), k=args.k, gain="binary")
    records = world.queries.to_dict("records")
    min_words = min_segments(max(args.coalitions), args.w_max)
    steps = {b: make_step(records, b, args.group_size, args.repeat_rate, min_words, args.seed) for b in args.responses}
    cfgs = {m: OwenConfig(w_max=args.w_max, max_coalitions=m, segmenter=SEGMENTER) for m in args.coalitions}
    faiss_index = None
    if importlib.util.find_spec("faiss") is not None:
        import faiss

        faiss_index = faiss.IndexFlatIP(retriever.corpus.shape[1])
        faiss_index.add(retriever.corpus)
    return Setup(cache_dir, retriever, reward, CoalitionEvaluator(reward), faiss_index, steps, cfgs, min_words)


@dataclass(frozen=True)
class FastRun:
    timing: Timing
    result: StepAdvantages
    stats: Any
    stages: dict[str, float]


def run_steps(args: argparse.Namespace, env: Setup, threads: Threads
              ) -> tuple[list[dict[str, Any]], dict[str, Any], dict[tuple[int, int], FastRun]]:
    """The loop and ospo_fast on the CPU for every (B, M): result rows, agreement checks, the fast runs."""
    segmenter = get_segmenter(SEGMENTER, cover_all_words=True)
    smallest = min(args.responses)
    rows: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    fast: dict[tuple[int, int], FastRun] = {}
    started = time.perf_counter()
    for m in args.coalitions:
        loop = None
        if "loop" in args.implementations:
            import faiss

            set_torch_threads(threads.torch_single)
            faiss.omp_set_num_threads(threads.faiss_single)
            model = LoopModel(env.retriever.encoder.model, env.faiss_index, list(env.reward.row_of), args.k)
            n_timed = min(args.loop_responses, smallest)
            loop = loop_step(model, segmenter, env.steps[smallest], args.w_max, m, args.group_size, n_timed,
                             args.seed)
        for b in args.responses:
            step = env.steps[b]
            run = None
            if "cpu" in args.implementations:
                set_torch_threads(threads.torch_batched)
                timing, result, stages = measure_fast(
                    "cpu", env.reward, env.evaluator, step, env.cfgs[m], args.group_size, args.seed, args.repeats)
                run = fast[(b, m)] = FastRun(timing, result, env.evaluator.last_stats, stages)
            loop_s = None
            if loop is not None:
                n_coalitions = run.result.n_coalitions if run else int(coalition_plan(
                    np.array([len(segmenter(a)) for a in step.answers]), args.w_max, m, seed=args.seed)[0][-1])
                rows.append(loop_row(args.n_products, b, m, n_coalitions, loop, threads.of_loop))
                loop_s = rows[-1]["p50_s"]
                if run:
                    checks[f"loop_vs_cpu_B{b}_M{m}"] = check_against_loop(loop, run.result, step)
            if run:
                rows.append(step_row("ospo_fast CPU", args.n_products, b, m, run.result.n_coalitions, run.timing,
                                     loop_s, run.stats, run.stages, "measured on the whole step", threads.of_cpu))
            print(f"  B={b} M={m} done ({time.perf_counter() - started:.0f}s)", flush=True)
    return rows, checks, fast


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    if "loop" in args.implementations:
        try:
            import faiss  # noqa: F401
        except ImportError:
            raise SystemExit("the loop needs faiss (faiss-cpu); run with --implementations cpu device") from None
    env = setup(args)
    smallest = env.steps[min(args.responses)]
    print(f"world: {env.retriever.n_items} products, ready in {time.perf_counter() - started:.1f}s; native core: "
          f"{native_available()}; answers of >= {env.min_words} words (segmenter {SEGMENTER!r}), "
          f"G = {args.group_size}: {len(set(smallest.answers))} distinct of {len(smallest.answers)}", flush=True)
    threads = choose_threads(args, env, smallest)
    print("threads: " + ", ".join(f"{name} {value}" for name, value in vars(threads).items() if name != "measured")
          + "".join(f"\n  {name}: " + ", ".join(f"{n} thread(s) {s * 1e3:.0f} ms" for n, s in seconds.items())
                    for name, seconds in (threads.measured or {}).items()), flush=True)

    rows, checks, fast = run_steps(args, env, threads)
    kernel_table: list[dict[str, Any]] = []
    if "device" in args.implementations:
        import torch

        if args.device.startswith("cuda") and not torch.cuda.is_available():
            print("\ndevice: skipped (torch.cuda.is_available() is False)")
        else:
            loop_s = {(r["B"], r["M"]): r["p50_s"] for r in rows if r["implementation"].startswith("loop")}
            device_table, device_kernels, device_checks = device_rows(args, env, fast, loop_s)
            rows += device_table
            kernel_table += device_kernels
            checks |= device_checks

    headline = (min(args.responses), max(args.coalitions))
    ablation_rows: list[dict[str, Any]] = []
    if headline in fast:
        set_torch_threads(threads.torch_batched)
        ablation_rows, checks["ablation_values_max_abs_diff"] = ablation(
            env.reward, env.steps[headline[0]], env.cfgs[headline[1]], args.seed, args.ablation_repeats)
        loop_rows = [r for r in rows if r["implementation"].startswith("loop") and (r["B"], r["M"]) == headline]
        if loop_rows:
            loop_v = sum(loop_rows[0][f"stage_{s}_s"] for s in ("build", "encode", "search", "ndcg"))
            for row in ablation_rows:
                row["speedup_vs_loop_v"] = loop_v / row["p50_s"]
        run, step = fast[headline], env.steps[headline[0]]
        kernels = [input_kernel_rows(env.evaluator.encoder, step, run.result, args.repeats),
                   owen_kernel_rows(step, run.result, args.repeats)]
        if env.faiss_index is not None:
            import faiss

            faiss.omp_set_num_threads(threads.faiss_batched)
            kernels.insert(0, ndcg_kernel_rows(env.reward, env.evaluator.encoder, env.faiss_index, step, run.result,
                                               args.repeats))
        for rows_of, kernel_checks in kernels:
            kernel_table += [row | {"threads": threads.of_kernel(row["kernel"])} for row in rows_of]
            checks |= kernel_checks

    targets = target_report(rows, kernel_table, headline, args)
    report(args, rows, ablation_rows, kernel_table, checks, targets)
    extra = {
        "config": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "threads": {name: value for name, value in vars(threads).items() if name != "measured"},
        "threads_measured_s": {name: {str(n): s for n, s in seconds.items()}
                               for name, seconds in (threads.measured or {}).items()},
        "ablation": ablation_rows, "kernels": kernel_table, "checks": checks, "targets": targets,
        "segmenter": SEGMENTER, "min_words": env.min_words, "wall_s": time.perf_counter() - started,
    }
    json_path, csv_path = write_results(args.name, rows, extra, args.out)
    print(f"\nwrote {json_path} and {csv_path} in {time.perf_counter() - started:.0f}s")
    return {"rows": rows, **extra}


def choose_threads(args: argparse.Namespace, env: Setup, step: Step) -> Threads:
    """Measure 1 and 2 threads for each library on a slice of the step's own work; keep the faster."""
    onnx = env.evaluator.encoder if isinstance(env.evaluator.encoder, OnnxEncoder) else None
    if args.threads != "auto":
        n = int(args.threads)
        chosen = Threads(n, n, n, n, n, n)
        set_torch_threads(n)
        set_blas_core_threads(n)
        if onnx is not None:
            set_onnx_threads(onnx, n)
        if env.faiss_index is not None:
            import faiss

            faiss.omp_set_num_threads(n)
        return chosen
    cfg = env.cfgs[max(args.coalitions)]
    segmenter = get_segmenter(SEGMENTER, cover_all_words=True)
    spans = [np.asarray(segmenter(a), dtype=np.int64).reshape(-1, 2) for a in step.answers]
    offsets, coalitions = coalition_plan(np.array([len(s) for s in spans]), cfg.w_max, cfg.max_coalitions,
                                         seed=args.seed)
    texts = list(dict.fromkeys(q for q in build_queries(step.answers, spans, offsets, coalitions, "space") if q))
    singles, batch = texts[:12], texts[:128]
    torch_encoder = env.retriever.encoder
    measured: dict[str, dict[int, float]] = {}
    chosen = Threads(measured=measured)

    def one_at_a_time() -> list[np.ndarray]:
        return [torch_encoder.model.encode([t], normalize_embeddings=True, show_progress_bar=False) for t in singles]

    chosen.torch_single = pick_threads("torch_single: 12 queries, batch of one", set_torch_threads, one_at_a_time,
                                       2, measured)
    chosen.torch_batched = pick_threads("torch_batched: 128 queries, batches of 64", set_torch_threads,
                                        lambda: torch_encoder.encode(batch), 2, measured)
    if onnx is not None:
        chosen.onnx = pick_threads("onnx: 128 queries, batches of 64", lambda n: set_onnx_threads(onnx, n),
                                   lambda: onnx.encode(batch), 2, measured)
    embeddings = torch_encoder.encode(batch)  # [128, d]
    if env.faiss_index is not None:
        import faiss

        index = env.faiss_index
        chosen.faiss_single = pick_threads(
            "faiss_single: 12 top-1000 searches of one query", faiss.omp_set_num_threads,
            lambda: [index.search(embeddings[i : i + 1], args.k) for i in range(12)], 2, measured)
        chosen.faiss_batched = pick_threads("faiss_batched: one top-1000 search of 128 queries",
                                            faiss.omp_set_num_threads, lambda: index.search(embeddings, args.k), 2,
                                            measured)
    pools = env.reward.load_pools(step.samples[:1])
    owner = np.zeros(len(embeddings), dtype=np.int64)  # [128] all on the first pool
    chosen.blas_core = pick_threads(
        "blas_core: fused NDCG of 128 queries", set_blas_core_threads,
        lambda: pool_ndcg_dense(embeddings, env.retriever.corpus, pools.items, pools.relevance, owner, args.k),
        2, measured)
    return chosen


def target_report(e2e_rows: list[dict[str, Any]], kernel_table: list[dict[str, Any]], headline: tuple[int, int],
                  args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cpu = [r for r in e2e_rows if r["implementation"] == "ospo_fast CPU" and (r["B"], r["M"]) == headline
           and r["products"] == args.n_products]
    if cpu and cpu[0]["speedup_vs_loop"] is not None:
        speedup = cpu[0]["speedup_vs_loop"]
        out["end_to_end_cpu_vs_loop"] = {"B": headline[0], "M": headline[1], "speedup": speedup,
                                         "target": TARGET_CPU_SPEEDUP, "met": speedup >= TARGET_CPU_SPEEDUP}
    fused = [r for r in kernel_table if r["kernel"].startswith("NDCG@pool: fused pool_ndcg_dense")]
    if fused:
        out["fused_ndcg_vs_faiss_numpy"] = {"speedup": fused[0]["ratio"], "target": 3.0, "met": fused[0]["ratio"] >= 3.0}
    device = [r for r in e2e_rows if r["implementation"].startswith("ospo_fast cuda") and (r["B"], r["M"]) == headline]
    if device:
        largest = max(device, key=lambda r: r["products"])
        out["device_step_s"] = {"products": largest["products"], "B": headline[0], "M": headline[1],
                                "p50_s": largest["p50_s"], "target": TARGET_DEVICE_STEP_S,
                                "met": largest["p50_s"] <= TARGET_DEVICE_STEP_S}
    on_gpu = [r for r in kernel_table if r["kernel"].startswith("GPU fused")]
    if on_gpu:
        out["gpu_fused_ndcg_over_matmul"] = {"ratio": on_gpu[0]["ratio"], "target": TARGET_FUSED_OVER_MATMUL,
                                             "met": on_gpu[0]["ratio"] <= TARGET_FUSED_OVER_MATMUL}
    return out


def report(args: argparse.Namespace, e2e_rows: list[dict[str, Any]], ablation_rows: list[dict[str, Any]],
           kernel_table: list[dict[str, Any]], checks: dict[str, Any], targets: dict[str, Any]) -> None:
    mode = "quick" if args.quick else "full"
    print_table(
        f"One RL step end to end ({mode}; p50 s of {args.repeats} repeats, speedup vs the loop)", e2e_rows,
        ["implementation", "threads", "products", "B", "M", "K", "unique_texts", "p50_s", "responses_per_s",
         "coalitions_per_s", "speedup_vs_loop", "note"],
    )
    print_table("Stage breakdown (median s per step; the loop's scaled from its timed responses)", e2e_rows,
                ["implementation", "B", "M", *(f"stage_{s}_s" for s in STAGES)])
    if ablation_rows:
        print_table(f"Ablation: v(S) of the B={min(args.responses)}, M={max(args.coalitions)} step (p50 s of "
                    f"{args.ablation_repeats}; each row adds one measure to the row above)",
                    ablation_rows, ["variant", "encoder_path", "texts_encoded", "p50_s", "speedup_vs_previous",
                                    "speedup_vs_batched_torch", "speedup_vs_loop_v"])
    if kernel_table:
        print_table("Kernels (p50 s)", kernel_table, ["kernel", "threads", "shape", "p50_s", "ratio", "ratio_to"])
    print("\nchecks: " + "; ".join(f"{name} = {value}" for name, value in checks.items()))
    for name, target in targets.items():
        print(f"target {name}: {target}")


if __name__ == "__main__":
    main()
