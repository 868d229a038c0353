"""Coalition evaluation for one RL step: the batched evaluator vs a per-coalition loop.

Question: how long does v(S) take for every coalition of one step (64 responses x 64
coalitions, a 20,000-product world, all-MiniLM-L6-v2 on the CPU)?

* ``batched``: :class:`ospo_fast.attribution.coalition_values.CoalitionEvaluator` with its defaults.
  Partial queries are deduplicated as (text, pool) pairs, their encoder rows packed from
  per-segment token ids, encoded longest first on onnxruntime, and scored by one fused
  NDCG@pool call.
* ``loop``: shaped like the published implementation. Each coalition is encoded alone
  (``SentenceTransformer.encode`` on a batch of one), searched with a faiss
  ``IndexFlatIP`` for its top 1000, filtered to the pool in Python, and scored by a
  Python NDCG. The loop is timed on the first ``--loop-responses`` responses and
  extrapolated per coalition to the whole step; the output says so.

Responses are those of ``owen_throughput.py``: the gold or the imperfect query of a world
row plus shopper add-ons, G = 8 samples per prompt, with repeats inside a group as
sampling at temperature 1 gives, and long enough that the ``word`` segmenter reaches M
coalitions. Both ways run with the same thread count for torch, onnxruntime, faiss, BLAS
and the native core. ``owen_throughput.py`` is the end-to-end version of this question.

    python benchmarks/coalition_eval.py            # full run
    python benchmarks/coalition_eval.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import measure, print_table, write_results  # noqa: E402
from harness import set_blas_core_threads, set_onnx_threads  # noqa: E402
from published_loop import LoopModel, binary_gains  # noqa: E402
from workload import make_step, min_segments  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-products", type=int, default=20_000)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8, help="G samples per prompt")
    parser.add_argument("--coalitions", type=int, default=64, help="M coalitions per response")
    parser.add_argument("--w-max", type=int, default=8)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument(
        "--repeat-rate", type=float, default=0.25, help="chance a sample repeats an earlier one of its group"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-responses", type=int, default=8, help="responses the per-coalition loop is timed on")
    parser.add_argument("--threads", type=int, default=1, help="threads of every library, for both ways")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None, help="corpus embedding cache (default $OSPO_CACHE_DIR)")
    parser.add_argument("--out", type=Path, default=Path("bench_results"))
    parser.add_argument("--quick", action="store_true", help="2,000 products, 2 prompts, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.n_products, args.prompts, args.repeats, args.loop_responses = 2_000, 2, 1, 2
    return args


def loop_values(
    loop: LoopModel,
    answers: list[str],
    spans: list[np.ndarray],
    samples: list[dict[str, Any]],
    offsets: np.ndarray,
    coalitions: np.ndarray,
    n_responses: int,
) -> np.ndarray:
    """The published shape: encode one query, faiss top-k, Python pool filter, Python NDCG."""
    seconds = {"encode": 0.0, "search": 0.0, "ndcg": 0.0}
    values = []
    for b in range(n_responses):
        gains, ideal = binary_gains(samples[b], loop.k)
        segments = [answers[b][s:e] for s, e in spans[b].tolist()]
        for start, end in coalitions[offsets[b] : offsets[b + 1]].tolist():
            values.append(loop.value(" ".join(segments[start:end]), gains, ideal, seconds))
    return np.array(values)


def main() -> None:
    args = parse_args()
    import faiss
    import torch

    import ospo_fast
    from ospo_fast.attribution.coalition_values import CoalitionEvaluator
    from ospo_fast.data import WorldConfig, generate_world
    from ospo_fast.reward.retrievers import OnnxEncoder, build_retriever
    from ospo_fast.reward import RetrievalReward
    from ospo_fast.attribution.segment import get_segmenter

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    set_blas_core_threads(args.threads)
    print(f"native core: {ospo_fast.native_available()}; threads of every library: {args.threads}")

    start = time.perf_counter()
    config = WorldConfig(n_products=args.n_products, n_train=max(64, args.prompts), n_test=0, seed=args.seed)
    world = generate_world(config)
    retriever = build_retriever("minilm", world.catalog["text"].tolist(), cache_dir=args.cache_dir)
    catalog_ids = world.catalog["product_id"].tolist()
    print(f"world + retriever ready in {time.perf_counter() - start:.1f}s: {retriever.n_items} products")

    step = make_step(world.queries.to_dict("records"), args.prompts * args.group_size, args.group_size,
                     args.repeat_rate, min_segments(args.coalitions, args.w_max), args.seed)
    answers, samples = step.answers, step.samples
    segmenter = get_segmenter("word")
    spans = [np.asarray(segmenter(a), dtype=np.int64).reshape(-1, 2) for a in answers]
    n_segments = np.array([len(s) for s in spans])
    offsets, coalitions = ospo_fast.coalition_plan(n_segments, args.w_max, args.coalitions, seed=args.seed)
    n_total = int(offsets[-1])
    print(
        f"step: {len(answers)} responses ({args.prompts} prompts x G={args.group_size}), {len(set(answers))} distinct; "
        f"{n_total} coalitions; segments per response {n_segments.min()}-{n_segments.max()}"
    )

    evaluator = CoalitionEvaluator(RetrievalReward(retriever, catalog_ids, k=args.k, gain="binary"))
    if isinstance(evaluator.encoder, OnnxEncoder):
        set_onnx_threads(evaluator.encoder, args.threads)
    stage_seconds: dict[str, list[float]] = {"build": [], "dedupe": [], "pack": [], "encode": [], "ndcg": []}

    def batched() -> np.ndarray:
        values = evaluator.evaluate(answers, spans, np.arange(len(answers)), samples, offsets, coalitions)
        stats = evaluator.last_stats
        for stage in stage_seconds:
            stage_seconds[stage].append(getattr(stats, f"{stage}_s"))
        return values

    batched_timing, batched_values = measure("batched", batched, repeats=args.repeats)
    stats = evaluator.last_stats

    index = faiss.IndexFlatIP(retriever.corpus.shape[1])
    index.add(retriever.corpus)
    loop = LoopModel(retriever.encoder.model, index, catalog_ids, args.k)
    n_loop = min(args.loop_responses, len(answers))
    n_loop_coalitions = int(offsets[n_loop])
    loop_timing, looped = measure(
        "loop", lambda: loop_values(loop, answers, spans, samples, offsets, coalitions, n_loop), repeats=args.repeats,
    )
    max_diff = float(np.abs(looped - batched_values[:n_loop_coalitions]).max())

    loop_per_coalition = loop_timing.p50 / n_loop_coalitions
    loop_step = loop_per_coalition * n_total
    speedup = loop_step / batched_timing.p50
    table = [
        {
            "method": "loop (published shape)",
            "coalitions_timed": n_loop_coalitions,
            "p50_s_timed": loop_timing.p50,
            "ms_per_coalition": 1e3 * loop_per_coalition,
            "s_per_step": loop_step,
            "speedup": 1.0,
            "note": f"extrapolated per coalition from {n_loop} responses",
        },
        {
            "method": "batched CoalitionEvaluator",
            "coalitions_timed": n_total,
            "p50_s_timed": batched_timing.p50,
            "ms_per_coalition": 1e3 * batched_timing.p50 / n_total,
            "s_per_step": batched_timing.p50,
            "speedup": speedup,
            "note": "measured on the whole step",
        },
    ]
    title = (
        f"v(S) for one step: {len(answers)} responses x {args.coalitions} coalitions = {n_total}, "
        f"{retriever.n_items} products, MiniLM on CPU ({args.threads} thread(s)), medians of {args.repeats} repeats"
    )
    columns = ["method", "coalitions_timed", "p50_s_timed", "ms_per_coalition", "s_per_step", "speedup", "note"]
    print_table(title, table, columns)
    stages = {stage: float(np.median(seconds)) for stage, seconds in stage_seconds.items()}
    print(
        "\nbatched stages (median s): " + ", ".join(f"{stage} {seconds:.3f}" for stage, seconds in stages.items())
        + f"\nbatched encoder path: {stats.encoder}"
        + f"\nbatched sizes: {stats.n_nonblank} non-empty coalitions -> {stats.n_unique_texts} unique texts, "
        f"{stats.n_unique_pairs} (text, pool) pairs"
        + f"\nloop vs batched values on the timed coalitions: max |diff| = {max_diff:.2e}"
        + f"\nspeedup (loop extrapolated / batched, p50): {speedup:.1f}x"
    )
    timings = (loop_timing, batched_timing)
    rows_out = [{**row, "p20_s_timed": t.p20, "p80_s_timed": t.p80} for row, t in zip(table, timings)]
    extra = {
        "config": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "n_responses": len(answers),
        "n_distinct_responses": len(set(answers)),
        "n_coalitions": n_total,
        "batched_stage_median_s": stages,
        "batched_sizes": {
            "nonblank": stats.n_nonblank,
            "unique_texts": stats.n_unique_texts,
            "unique_pairs": stats.n_unique_pairs,
        },
        "loop_extrapolated": True,
        "loop_coalitions_timed": n_loop_coalitions,
        "max_abs_value_diff": max_diff,
        "speedup": speedup,
        "native_core": ospo_fast.native_available(),
        "torch_threads": torch.get_num_threads(),
    }
    json_path, _ = write_results("coalition_eval", rows_out, extra, args.out)
    print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
