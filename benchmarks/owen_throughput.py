"""End-to-end OSPO attribution for one RL step, measured side by side in one run.

Question: how many responses (and coalitions) per second does one RL step's attribution
take, from the answers to the token advantages? Stages: segmentation -> coalition plan
-> partial queries -> encoder -> NDCG@pool -> Owen -> token advantages, plus the rewards
and GRPO advantages the token advantages need.

Implementations (speedups against the first):

1. ``loop``: shaped like the published implementation. Per response: the reward and
   every coalition value is one SentenceTransformer call on a batch of one, a faiss
   ``IndexFlatIP`` top-1000 search, the pool filter and NDCG in Python; then Owen values
   (a dict of coalitions scanned per segment), the token map, min-max and PROP weights
   in Python loops. It is timed on the first ``--loop-responses`` responses (whole
   prompt groups) and extrapolated per coalition to the step (median over responses).
2. ``ospo_fast CPU``: the library as the trainer runs it: ``RetrievalReward`` for the
   rewards, ``attribute()`` with a ``CoalitionEvaluator`` (dedup of (text, pool) pairs,
   packed token ids, length-sorted batches, the encoder on onnxruntime, one fused NDCG
   call) and ``token_advantages_batch``.
3. ``ospo_fast GPU`` when ``torch.cuda.is_available()``: the same pipeline with the
   encoder on CUDA, the fused NDCG and the token advantages through ``ospo_fast.gpu``;
   also on a 1,000,000-product world. Skipped without a GPU.

Both ways use the same segmenter (``word``: every response reaches M coalitions) and the
same ``coalition_plan``, so their values and token advantages are compared in the run.
Responses: the gold or imperfect query of a world train row plus shopper add-ons, G = 8
per prompt, repeats inside a group as sampling gives. Token offsets come from a simple
subword-like split of each answer (a stand-in for the policy's tokens).

Also printed: thread choices (each measured), an ablation of the evaluator (batched
torch / + dedup / + packing / + onnxruntime) and kernel timings (fused NDCG vs faiss
top-1000 + numpy NDCG vs a bare matmul; Owen + redistribution native vs reference.py).
The world and the corpus embeddings are cached (``--cache-dir``, default
$OSPO_CACHE_DIR or ~/.cache/ospo_fast).

    PYTHONPATH=python python benchmarks/owen_throughput.py            # full: B 64, 256 x M 32, 96
    PYTHONPATH=python python benchmarks/owen_throughput.py --quick    # B 64, M 96, about 2 minutes
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Timing, measure, print_table, write_results  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import ospo_fast as ops  # noqa: E402
from ospo_fast import reference  # noqa: E402
from ospo_fast.attribution import Attribution, OwenConfig, attribute  # noqa: E402
from ospo_fast.coalitions_eval import CoalitionEvaluator, build_queries, pack_unique_queries  # noqa: E402
from ospo_fast.data import World, WorldConfig, generate_world, load_world, save_world  # noqa: E402
from ospo_fast.retrieval import OnnxEncoder  # noqa: E402
from ospo_fast.reward import Pools, QueryPlan, RetrievalReward, lookup_rows, plan_queries  # noqa: E402
from ospo_fast.segment import Segmenter, get_segmenter  # noqa: E402

IMPLEMENTATIONS = ("loop", "cpu", "gpu")
STAGES = ("segment", "plan", "reward", "grpo", "build", "dedupe", "pack", "encode", "search", "ndcg", "owen", "advantages")
ADD_ONS = (
    "for a small apartment", "easy to clean", "under $200", "with free shipping", "highly rated",
    "pet friendly", "for everyday use", "durable and sturdy", "that matches a grey sofa", "good value",
    "modern look", "quick delivery", "best seller", "for my new home", "no assembly needed",
    "in a neutral colour", "that lasts for years", "kid friendly", "space saving design", "gift for my sister",
)
# Subword-like pieces with their leading space, as a BPE policy tokenizer cuts an answer.
TOKEN_PIECE = re.compile(r"\s?[^\W\d_]{1,4}|\s?\d+|\s?[^\w\s]")
SEGMENTER = "word"
QUICK = {"responses": [64], "coalitions": [96], "loop_responses": 8, "ablation_repeats": 1, "gpu_products": 0}


# ------------------------------------------------------------------ arguments


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--responses", type=int, nargs="+", default=[64, 256], help="B values (multiples of G)")
    parser.add_argument("--coalitions", type=int, nargs="+", default=[32, 96], help="M values")
    parser.add_argument("--w-max", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8, help="G samples per prompt")
    parser.add_argument("--repeat-rate", type=float, default=0.25, help="chance a sample repeats one of its group")
    parser.add_argument("--n-products", type=int, default=20_000)
    parser.add_argument("--gpu-products", type=int, default=1_000_000, help="extra world for the GPU only; 0: none")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each ospo_fast step")
    parser.add_argument("--ablation-repeats", type=int, default=3)
    parser.add_argument("--loop-responses", type=int, default=64, help="responses the loop is timed on")
    parser.add_argument("--threads", default="auto", help="'auto' (measure 1 and 2, keep the faster) or a count")
    parser.add_argument("--gpu-batch", type=int, default=512, help="encoder rows per call on the GPU")
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
        help="B = 64, M = 96, the loop on one prompt group, single ablation runs, no GPU-only world",
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


# ------------------------------------------------------------------ world and step


def cached_world(n_products: int, n_prompts: int, seed: int, cache_dir: Path) -> World:
    """The world of this config, generated once; keyed by the config and the generator's source."""
    from ospo_fast.data import vocabulary, world as world_module

    config = WorldConfig(n_products=n_products, n_train=max(64, n_prompts), n_test=0, seed=seed)
    digest = hashlib.sha256(repr(config).encode())
    for module in (world_module, vocabulary):
        digest.update(Path(module.__file__).read_bytes())
    directory = cache_dir / "worlds" / f"products{n_products}-{digest.hexdigest()[:16]}"
    try:
        return load_world(directory)
    except FileNotFoundError:
        world = generate_world(config)
        save_world(world, directory)
        return world


def min_segments(max_coalitions: int, w_max: int) -> int:
    """Fewest segments whose candidate set (∅, windows <= w_max, full) holds ``max_coalitions``."""
    n = 1
    while len(ops.contiguous_coalitions(n, w_max)) < max_coalitions:
        n += 1
    return n


def group_answers(row: dict[str, Any], group_size: int, repeat_rate: float, min_words: int, seed: int) -> list[str]:
    """G answers to one prompt: its gold or imperfect query plus add-ons, some repeated."""
    rng = np.random.default_rng(seed)
    group: list[str] = []
    for _ in range(group_size):
        if group and rng.random() < repeat_rate:
            group.append(group[int(rng.integers(len(group)))])
            continue
        words = str(row["gold_query"] if rng.random() < 0.5 else row["imperfect_query"]).split()
        extras = [ADD_ONS[i] for i in rng.permutation(len(ADD_ONS))]
        while extras and (len(words) < min_words or rng.random() < 0.3):
            words += extras.pop().split()
        group.append(" ".join(words))
    return group


def token_spans(answer: str) -> np.ndarray:
    """int64 ``[T, 2]`` char spans of the answer's subword-like tokens."""
    return np.array([m.span() for m in TOKEN_PIECE.finditer(answer)], dtype=np.int64).reshape(-1, 2)


@dataclass(frozen=True)
class Step:
    """One RL step's responses.

    answers       [B] answer texts, G consecutive per prompt
    samples       [B] the world row each answer is judged on
    token_offsets [B, T, 2] int64 answer char span of each token, 0 beyond the answer's tokens
    token_mask    [B, T] bool real tokens
    """

    answers: list[str]
    samples: list[dict[str, Any]]
    token_offsets: np.ndarray
    token_mask: np.ndarray


def make_step(rows: list[dict[str, Any]], n_responses: int, group_size: int, repeat_rate: float, min_words: int,
              seed: int) -> Step:
    """Prompt p always gets the same answers, so a smaller step is a prefix of a larger one."""
    prompts = rows[: n_responses // group_size]
    if len(prompts) * group_size != n_responses:
        raise ValueError(f"the world has {len(rows)} prompts, too few for {n_responses} responses")
    answers = [a for p, row in enumerate(prompts) for a in group_answers(row, group_size, repeat_rate, min_words,
                                                                          seed * 100_003 + p)]
    spans = [token_spans(a) for a in answers]
    width = max(len(s) for s in spans)
    token_offsets = np.zeros((len(answers), width, 2), dtype=np.int64)  # [B, T, 2]
    token_mask = np.zeros((len(answers), width), dtype=bool)  # [B, T]
    for b, s in enumerate(spans):
        token_offsets[b, : len(s)] = s
        token_mask[b, : len(s)] = True
    return Step(answers, [row for row in prompts for _ in range(group_size)], token_offsets, token_mask)


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


def set_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def set_onnx_threads(encoder: Any, n: int) -> None:
    encoder.set_threads(n)


def set_blas_core_threads(n: int) -> None:
    """Every BLAS in the process (numpy's, for the fused NDCG's tiles, and faiss's) and the native core."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")
    if ops.native_available():
        ops._native.core.set_num_threads(n)


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


# ------------------------------------------------------------------ the published-shape loop


def python_ndcg(ranked_ids: Sequence[int], catalog_ids: Sequence[str], gains: dict[str, float], ideal: float) -> float:
    """Spec §2 over a faiss top-k list: keep the pool's items in ranked order, DCG / IDCG."""
    kept = [gains[catalog_ids[i]] for i in ranked_ids if i >= 0 and catalog_ids[i] in gains]
    dcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(kept))
    return dcg / ideal if ideal > 0 else 0.0


def python_owen(n: int, windows: list[list[int]], values: list[float]) -> list[float]:
    """Spec §5 as the reference writes it: a dict of coalitions, scanned for each segment."""
    value_of = {frozenset(range(a, e)): v for (a, e), v in zip(windows, values)}
    phi = [0.0] * n
    for i in range(n):
        for coalition, value in value_of.items():
            if i in coalition:
                continue
            grown = coalition | {i}
            if grown in value_of:
                phi[i] += (value_of[grown] - value) / (n * math.comb(n - 1, len(coalition)))
    return phi


def python_prop_advantages(
    n: int, spans: list[list[int]], phi: list[float], tokens: list[list[int]], advantage: float
) -> list[float]:
    """Spec §6 PROP per token: character-overlap credit, min-max, weights, T · p_t · Â.

    PBRS's reward factor cancels in PROP's weights; like ospo_fast (spec §10), a zero
    reward keeps uniform weights, and <= 1 segment gives every token 1/T.
    """
    credit = []
    for token_start, token_end in tokens:
        shares = [max(0, min(e, token_end) - max(s, token_start)) / (token_end - token_start) for s, e in spans]
        total = sum(shares)
        credit.append(sum(share / total * p for share, p in zip(shares, phi)) if total > 0 and n > 1 else 0.0)
    low, high = min(credit), max(credit)
    scaled = [0.5] * len(credit) if high == low else [(c - low) / (high - low) for c in credit]
    total = sum(scaled)
    return [len(scaled) * s / total * advantage for s in scaled]


@dataclass(frozen=True)
class LoopResult:
    """The loop on the first responses of a step.

    values          [K_timed] coalition values in plan order
    advantages      per response, the token advantages of its real tokens
    stage_s         seconds per stage, summed over the timed responses
    response_s      [n] seconds spent on each response
    n_coalitions    [n] coalitions of each response
    """

    values: np.ndarray
    advantages: list[list[float]]
    stage_s: dict[str, float]
    response_s: np.ndarray
    n_coalitions: np.ndarray


@dataclass(frozen=True)
class LoopModel:
    """What the loop needs: the torch model (batch of one), the faiss index, the catalog ids."""

    model: Any
    index: Any
    catalog_ids: list[str]
    k: int

    def value(self, text: str, gains: dict[str, float], ideal: float, seconds: dict[str, float]) -> float:
        """One retrieval NDCG@pool: encode, search, filter, score."""
        if not text.strip():
            return 0.0
        start = time.perf_counter()
        embedding = self.model.encode([text], convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        encoded = time.perf_counter()
        _, ids = self.index.search(embedding.astype(np.float32), self.k)
        searched = time.perf_counter()
        value = python_ndcg(ids[0].tolist(), self.catalog_ids, gains, ideal)
        seconds["encode"] += encoded - start
        seconds["search"] += searched - encoded
        seconds["ndcg"] += time.perf_counter() - searched
        return value


def binary_gains(sample: dict[str, Any], k: int) -> tuple[dict[str, float], float]:
    gains = {pid: float(label == 3) for pid, label in zip(sample["candidate_pool"], sample["pool_relevance"])}
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(gains.values(), reverse=True)[:k]))
    return gains, ideal


def loop_step(loop: LoopModel, segmenter: Segmenter, step: Step, cfg: OwenConfig, group_size: int,
              n_responses: int, seed: int) -> LoopResult:
    """The published shape on the first ``n_responses`` responses (whole groups), timed per stage."""
    seconds = dict.fromkeys(STAGES, 0.0)
    response_s = np.zeros(n_responses)
    values: list[float] = []
    advantages: list[list[float]] = []
    start = time.perf_counter()
    spans = [[list(s) for s in segmenter(a)] for a in step.answers[:n_responses]]
    seconds["segment"] = time.perf_counter() - start
    response_s += seconds["segment"] / n_responses
    start = time.perf_counter()
    offsets, windows = ops.coalition_plan(np.array([len(s) for s in spans]), cfg.w_max, cfg.max_coalitions, seed=seed)
    seconds["plan"] = time.perf_counter() - start
    response_s += seconds["plan"] / n_responses
    for first in range(0, n_responses, group_size):
        group = range(first, first + group_size)
        rewards = []
        for b in group:
            tick = time.perf_counter()
            gains, ideal = binary_gains(step.samples[b], loop.k)
            # The reward's encode, search and NDCG count once, as the reward stage.
            rewards.append(loop.value(step.answers[b], gains, ideal, dict.fromkeys(STAGES, 0.0)))
            seconds["reward"] += time.perf_counter() - tick
            response_s[b] += time.perf_counter() - tick
        tick = time.perf_counter()
        mean = sum(rewards) / len(rewards)
        std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1))  # unbiased, as torch.std
        group_advantages = [(r - mean) / (std + 1e-4) for r in rewards]
        seconds["grpo"] += time.perf_counter() - tick
        for b, advantage in zip(group, group_advantages):
            tick = time.perf_counter()
            gains, ideal = binary_gains(step.samples[b], loop.k)
            segments = [step.answers[b][s:e] for s, e in spans[b]]
            rows = windows[offsets[b] : offsets[b + 1]].tolist()
            response_values = []
            for a, e in rows:
                built = time.perf_counter()
                text = " ".join(segments[a:e])
                seconds["build"] += time.perf_counter() - built
                response_values.append(loop.value(text, gains, ideal, seconds))
            owen_start = time.perf_counter()
            phi = python_owen(len(segments), rows, response_values)
            owen_end = time.perf_counter()
            tokens = step.token_offsets[b][step.token_mask[b]].tolist()
            advantages.append(python_prop_advantages(len(segments), spans[b], phi, tokens, advantage))
            seconds["owen"] += owen_end - owen_start
            seconds["advantages"] += time.perf_counter() - owen_end
            values += response_values
            response_s[b] += time.perf_counter() - tick
    return LoopResult(np.array(values), advantages, seconds, response_s, np.diff(offsets))


# ------------------------------------------------------------------ ospo_fast


AdvantagesFn = Callable[..., np.ndarray]


def fast_step(reward: RetrievalReward, evaluator: CoalitionEvaluator, step: Step, cfg: OwenConfig, group_size: int,
              seed: int, advantages_fn: AdvantagesFn = ops.token_advantages_batch
              ) -> tuple[np.ndarray, Attribution, dict[str, float]]:
    """Rewards, GRPO Â, attribute() and the token advantages ``[B, T]`` of one step, timed per stage."""
    start = time.perf_counter()
    rewards = reward.score_answers(step.answers, step.samples)  # [B]
    rewarded = time.perf_counter()
    advantages = ops.group_advantages(rewards, group_size)  # [B]
    grouped = time.perf_counter()
    result = attribute(step.answers, step.samples, evaluator, cfg, seed=seed)
    attributed = time.perf_counter()
    token_advantages = advantages_fn(
        np.array([len(s) for s in result.spans]), result.coalition_offsets, result.coalitions, result.values,
        np.concatenate(result.spans), step.token_offsets, step.token_mask, step.token_mask, advantages,
    )  # [B, T]
    seconds = {stage: result.timings.get(stage, 0.0) for stage in STAGES}
    seconds |= {"reward": rewarded - start, "grpo": grouped - rewarded, "advantages": time.perf_counter() - attributed}
    return np.asarray(token_advantages), result, seconds


def measure_fast(name: str, reward: RetrievalReward, evaluator: CoalitionEvaluator, step: Step, cfg: OwenConfig,
                 group_size: int, seed: int, repeats: int, advantages_fn: AdvantagesFn = ops.token_advantages_batch
                 ) -> tuple[Timing, tuple[np.ndarray, Attribution], dict[str, float]]:
    """p20/p50/p80 of the whole step and the median seconds of each stage."""
    per_stage: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def run() -> tuple[np.ndarray, Attribution]:
        token_advantages, result, seconds = fast_step(reward, evaluator, step, cfg, group_size, seed, advantages_fn)
        for stage, value in seconds.items():
            per_stage[stage].append(value)
        return token_advantages, result

    timing, out = measure(name, run, repeats=repeats)
    return timing, out, {stage: float(np.median(v[-repeats:])) for stage, v in per_stage.items()}


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
    offsets, coalitions = ops.coalition_plan(np.array([len(s) for s in spans]), cfg.w_max, cfg.max_coalitions,
                                             seed=seed)
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


# ------------------------------------------------------------------ kernels


def faiss_numpy_ndcg(index: Any, queries: np.ndarray, pools: Pools, query_pool: np.ndarray, k: int) -> np.ndarray:
    """faiss top-k, then the pool filter and NDCG vectorised in numpy: float64 ``[C]``."""
    _, ids = index.search(queries, k)  # [C, k]
    items, gains = pools.items[query_pool], pools.relevance[query_pool]  # [C, P]
    # One lookup gives both: gain + 1 on pool items, 0 elsewhere.
    found = lookup_rows(ids, items, gains + 1.0)  # [C, k]
    in_pool = found > 0
    position = np.cumsum(in_pool, axis=1)  # [C, k] 1-based rank inside the filtered list
    dcg = (np.where(in_pool, found - 1.0, 0.0) / np.log2(position + 1.0, where=in_pool, out=np.ones(found.shape))).sum(
        axis=1
    )  # [C]
    ideal_gains = -np.sort(-gains, axis=1)[:, :k]  # [C, min(P, k)]
    ideal = (ideal_gains / np.log2(np.arange(ideal_gains.shape[1]) + 2.0)).sum(axis=1)  # [C]
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def ndcg_kernel_rows(reward: RetrievalReward, encoder: Any, faiss_index: Any, step: Step, result: Attribution,
                     repeats: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Fused NDCG vs faiss top-k + numpy NDCG vs a bare matmul, on the step's unique (text, pool) pairs."""
    queries = build_queries(step.answers, result.spans, result.coalition_offsets, result.coalitions, "space")
    pools = reward.load_pools(step.samples)
    plan = plan_queries(queries, np.repeat(pools.of_sample, np.diff(result.coalition_offsets)), len(pools.items))
    embeddings = encoder.encode(plan.texts)[plan.pair_text]  # [C, d]
    corpus = reward.retriever.corpus  # [N, d]
    n_pairs, (n_items, dim) = len(embeddings), corpus.shape
    shape = f"C={n_pairs}, N={n_items}, d={dim}, k={reward.k}"

    # Packed once per corpus, as faiss adds the corpus to its index once (neither is timed below).
    started = time.perf_counter()
    prepared = ops.prepare_corpus(corpus)
    prepare_s = time.perf_counter() - started
    kernel = "screened" if prepared.screened is not None else "tiled"

    def fused_ndcg() -> np.ndarray:
        return ops.pool_ndcg_dense(embeddings, prepared, pools.items, pools.relevance, plan.pair_pool, reward.k)

    def tiled_ndcg() -> np.ndarray:
        return ops.pool_ndcg_dense(embeddings, corpus, pools.items, pools.relevance, plan.pair_pool, reward.k,
                                   cpu_kernel="tiled")

    fused_t, fused = measure("fused", fused_ndcg, repeats=repeats)
    tiled_t, tiled = measure("tiled", tiled_ndcg, repeats=repeats)
    faiss_t, via_faiss = measure(
        "faiss", lambda: faiss_numpy_ndcg(faiss_index, embeddings, pools, plan.pair_pool, reward.k), repeats=repeats)
    scores = np.empty((n_pairs, n_items), dtype=np.float32)  # [C, N]
    matmul_t, _ = measure("matmul", lambda: np.matmul(embeddings, corpus.T, out=scores), repeats=repeats)
    rows = [
        {"kernel": "NDCG@pool: faiss IndexFlatIP top-k + numpy NDCG", "shape": shape, "p50_s": faiss_t.p50,
         "ratio": 1.0, "ratio_to": "itself"},
        {"kernel": f"NDCG@pool: fused pool_ndcg_dense ({kernel} CPU kernel)", "shape": shape, "p50_s": fused_t.p50,
         "ratio": faiss_t.p50 / fused_t.p50, "ratio_to": "speedup over faiss + numpy"},
        {"kernel": "NDCG@pool: fused pool_ndcg_dense (tiled CPU kernel: fp32 BLAS tiles)", "shape": shape,
         "p50_s": tiled_t.p50, "ratio": faiss_t.p50 / tiled_t.p50, "ratio_to": "speedup over faiss + numpy"},
        {"kernel": "bare matmul [C, d] @ [d, N] (the fp32 floor)", "shape": shape, "p50_s": matmul_t.p50,
         "ratio": fused_t.p50 / matmul_t.p50, "ratio_to": "fused / matmul"},
        {"kernel": "prepare_corpus (once per corpus, like faiss index.add)", "shape": f"N={n_items}, d={dim}",
         "p50_s": prepare_s, "ratio": prepare_s / fused_t.p50, "ratio_to": "share of one fused call"},
    ]
    differs = np.abs(fused - via_faiss)
    checks = {"fused_vs_faiss_max_abs_diff": float(differs.max()), "fused_vs_faiss_pairs_over_1e-6": int(
        (differs > 1e-6).sum()), "fused_vs_tiled_max_abs_diff": float(np.abs(fused - tiled).max())}
    return rows, checks


def padded_fraction(lengths: np.ndarray, batch_size: int, *, sort: bool) -> float:
    """Share of pad tokens when rows of ``lengths`` run in batches padded to their longest row."""
    ordered = -np.sort(-lengths) if sort else lengths
    padded = sum(int(ordered[i : i + batch_size].max()) * len(ordered[i : i + batch_size])
                 for i in range(0, len(ordered), batch_size))
    return 1.0 - float(lengths.sum()) / padded


def input_kernel_rows(encoder: Any, step: Step, result: Attribution, repeats: int
                      ) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Encoder inputs of the unique partial queries: the tokenizer on their texts vs packing segment ids."""
    queries = build_queries(step.answers, result.spans, result.coalition_offsets, result.coalitions, "space")
    plan = plan_queries(queries, np.zeros(len(queries), dtype=np.int64), 1)
    tokenizer = encoder.tokenizer

    def tokenized() -> list[list[int]]:
        return tokenizer(plan.texts, truncation=True, max_length=encoder.max_length)["input_ids"]

    def packed() -> tuple[np.ndarray, np.ndarray]:
        return pack_unique_queries(tokenizer, encoder.max_length, step.answers, result.spans,
                                   result.coalition_offsets, result.coalitions, plan.text_query)

    tokenize_t, token_rows = measure("tokenize", tokenized, repeats=repeats)
    pack_t, (input_ids, attention_mask) = measure("pack", packed, repeats=repeats)
    lengths = attention_mask.sum(axis=1)  # [U]
    same = all(list(input_ids[u, : lengths[u]]) == list(row) for u, row in enumerate(token_rows))
    shape = f"U={len(plan.texts)} queries, mean {lengths.mean():.1f} tokens"
    rows = [
        {"kernel": "encoder inputs: tokenizer on the joined texts", "shape": shape, "p50_s": tokenize_t.p50,
         "ratio": 1.0, "ratio_to": "itself"},
        {"kernel": "encoder inputs: packed from per-segment ids", "shape": shape, "p50_s": pack_t.p50,
         "ratio": tokenize_t.p50 / pack_t.p50, "ratio_to": "speedup over the tokenizer"},
    ]
    checks = {
        "packed_ids_equal_tokenizer": same,
        "pad_share_batches_of_64_unsorted": padded_fraction(lengths, 64, sort=False),
        "pad_share_batches_of_64_length_sorted": padded_fraction(lengths, 64, sort=True),
    }
    return rows, checks


def owen_kernel_rows(reward: RetrievalReward, step: Step, result: Attribution, fast_advantages: np.ndarray,
                     group_size: int, repeats: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Owen + redistribution of the step's real values: reference.py vs the native core."""
    rewards = reward.score_answers(step.answers, step.samples)
    args = dict(
        n_segments=np.array([len(s) for s in result.spans]), coalition_offsets=result.coalition_offsets,
        coalitions=result.coalitions, values=result.values, segment_spans=np.concatenate(result.spans),
        token_offsets=step.token_offsets, token_mask=step.token_mask, answer_mask=step.token_mask,
        advantages=ops.group_advantages(rewards, group_size),
    )
    reference_t, via_reference = measure("reference", lambda: reference.token_advantages_batch(**args),
                                         repeats=repeats, warmup=0)
    native_t, via_native = measure("native", lambda: ops.token_advantages_batch(**args), repeats=repeats)
    shape = f"B={len(step.answers)}, K={len(result.values)}, T={step.token_mask.shape[1]}"
    rows = [
        {"kernel": "Owen + redistribution: reference.py", "shape": shape, "p50_s": reference_t.p50, "ratio": 1.0,
         "ratio_to": "itself"},
        {"kernel": "Owen + redistribution: native token_advantages_batch", "shape": shape, "p50_s": native_t.p50,
         "ratio": reference_t.p50 / native_t.p50, "ratio_to": "speedup over reference.py"},
    ]
    checks = {
        "native_vs_reference_advantages_max_abs_diff": float(np.abs(via_native - via_reference).max()),
        "native_vs_step_advantages_max_abs_diff": float(np.abs(via_native - fast_advantages).max()),
    }
    return rows, checks


# ------------------------------------------------------------------ GPU


class DeviceNdcgReward(RetrievalReward):
    """The reward with its fused NDCG through :mod:`ospo_fast.gpu`, the corpus resident on the GPU."""

    def __init__(self, retriever: Any, catalog_ids: Sequence[str], **kwargs: Any) -> None:
        import torch

        super().__init__(retriever, catalog_ids, **kwargs)
        self.device_corpus = torch.from_numpy(retriever.corpus).to("cuda")  # [N, d]

    def score_embedded(self, embeddings: np.ndarray, plan: QueryPlan, pools: Pools) -> np.ndarray:
        import torch

        from ospo_fast import gpu

        if not plan.texts:
            return np.zeros(0, dtype=np.float64)
        queries = torch.from_numpy(np.ascontiguousarray(embeddings[plan.pair_text])).to("cuda")  # [C, d]
        values = gpu.pool_ndcg_dense(queries, self.device_corpus, pools.items, pools.relevance, plan.pair_pool,
                                     self.k, self.core_gain)
        return values.double().cpu().numpy()


def gpu_rows(args: argparse.Namespace, cache_dir: Path, steps: dict[int, Step], cfgs: dict[int, OwenConfig],
             loop_step_s: dict[tuple[int, int], float]) -> list[dict[str, Any]]:
    """ospo_fast on CUDA for every (B, M), on the CPU's world and on the large GPU-only world."""
    import torch

    from ospo_fast import gpu
    from ospo_fast.retrieval import build_retriever

    print(f"\nGPU: {torch.cuda.get_device_name(0)}")
    advantages_fn = functools.partial(gpu.token_advantages_batch, backend="cuda")
    rows = []
    for n_products in [args.n_products] + ([args.gpu_products] if args.gpu_products else []):
        world = cached_world(n_products, max(steps) // args.group_size, args.seed, cache_dir)
        retriever = build_retriever("minilm", world.catalog["text"].tolist(), cache_dir=cache_dir, device="cuda")
        reward = DeviceNdcgReward(retriever, world.catalog["product_id"].tolist(), k=args.k, gain="binary")
        evaluator = CoalitionEvaluator(reward, encode_batch_size=args.gpu_batch)
        rows_of_world = world.queries.to_dict("records")
        for n_responses in args.responses:
            step = steps[n_responses] if n_products == args.n_products else make_step(
                rows_of_world, n_responses, args.group_size, args.repeat_rate,
                min_segments(max(args.coalitions), args.w_max), args.seed)
            for m in args.coalitions:
                timing, (_, result), stages = measure_fast(
                    "gpu", reward, evaluator, step, cfgs[m], args.group_size, args.seed, args.repeats, advantages_fn)
                torch.cuda.synchronize()
                base = loop_step_s.get((n_responses, m)) if n_products == args.n_products else None
                rows.append(step_row("ospo_fast GPU", n_products, n_responses, m, result, timing, base,
                                     evaluator.last_stats, stages, "measured on the whole step"))
    return rows


# ------------------------------------------------------------------ rows and main


def step_row(name: str, n_products: int, n_responses: int, m: int, result_or_k: Attribution | int, timing: Timing,
             loop_s: float | None, stats: Any, stages: dict[str, float], note: str) -> dict[str, Any]:
    n_coalitions = result_or_k if isinstance(result_or_k, int) else result_or_k.n_coalitions
    return {
        "implementation": name, "products": n_products, "B": n_responses, "M": m, "K": n_coalitions,
        "unique_texts": getattr(stats, "n_unique_texts", None), "encoder_path": getattr(stats, "encoder", None),
        "p20_s": timing.p20, "p50_s": timing.p50, "p80_s": timing.p80,
        "responses_per_s": n_responses / timing.p50, "coalitions_per_s": n_coalitions / timing.p50,
        "speedup_vs_loop": (loop_s / timing.p50) if loop_s else None, "note": note,
        **{f"stage_{stage}_s": stages.get(stage, 0.0) for stage in STAGES},
    }


def loop_row(n_products: int, n_responses: int, m: int, n_coalitions: int, loop: LoopResult) -> dict[str, Any]:
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
                   note)
    row["p20_s"] = row["p80_s"] = None
    return row


def check_against_loop(loop: LoopResult, result: Attribution, token_advantages: np.ndarray, step: Step) -> dict:
    n_timed = len(loop.advantages)
    fast_values = result.values[: len(loop.values)]
    advantage_diff = max(
        float(np.abs(np.array(a) - token_advantages[b][step.token_mask[b]]).max()) for b, a in enumerate(loop.advantages)
    )
    return {"responses": n_timed, "values_max_abs_diff": float(np.abs(loop.values - fast_values).max()),
            "token_advantages_max_abs_diff": advantage_diff}


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
    from ospo_fast.retrieval import build_retriever, default_cache_dir

    cache_dir = default_cache_dir() if args.cache_dir is None else args.cache_dir
    world = cached_world(args.n_products, max(args.responses) // args.group_size, args.seed, cache_dir)
    retriever = build_retriever("minilm", world.catalog["text"].tolist(), cache_dir=cache_dir)
    reward = RetrievalReward(retriever, world.catalog["product_id"].tolist(), k=args.k, gain="binary")
    rows = world.queries.to_dict("records")
    min_words = min_segments(max(args.coalitions), args.w_max)
    steps = {b: make_step(rows, b, args.group_size, args.repeat_rate, min_words, args.seed) for b in args.responses}
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
    token_advantages: np.ndarray
    result: Attribution
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
            loop = loop_step(model, segmenter, env.steps[smallest], env.cfgs[m], args.group_size, n_timed, args.seed)
        for b in args.responses:
            step = env.steps[b]
            run = None
            if "cpu" in args.implementations:
                set_torch_threads(threads.torch_batched)
                timing, (token_advantages, result), stages = measure_fast(
                    "cpu", env.reward, env.evaluator, step, env.cfgs[m], args.group_size, args.seed, args.repeats)
                run = fast[(b, m)] = FastRun(timing, token_advantages, result, env.evaluator.last_stats, stages)
            loop_s = None
            if loop is not None:
                n_coalitions = run.result.n_coalitions if run else int(ops.coalition_plan(
                    np.array([len(segmenter(a)) for a in step.answers]), args.w_max, m, seed=args.seed)[0][-1])
                rows.append(loop_row(args.n_products, b, m, n_coalitions, loop))
                loop_s = rows[-1]["p50_s"]
                if run:
                    checks[f"loop_vs_cpu_B{b}_M{m}"] = check_against_loop(loop, run.result, run.token_advantages,
                                                                          step)
            if run:
                rows.append(step_row("ospo_fast CPU", args.n_products, b, m, run.result, run.timing, loop_s,
                                     run.stats, run.stages, "measured on the whole step"))
            print(f"  B={b} M={m} done ({time.perf_counter() - started:.0f}s)", flush=True)
    return rows, checks, fast


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    if "loop" in args.implementations:
        try:
            import faiss  # noqa: F401
        except ImportError:
            raise SystemExit("the loop needs faiss (faiss-cpu); run with --implementations cpu gpu") from None
    env = setup(args)
    smallest = env.steps[min(args.responses)]
    print(f"world: {env.retriever.n_items} products, ready in {time.perf_counter() - started:.1f}s; native core: "
          f"{ops.native_available()}; answers of >= {env.min_words} words (segmenter {SEGMENTER!r}), "
          f"G = {args.group_size}: {len(set(smallest.answers))} distinct of {len(smallest.answers)}", flush=True)
    threads = choose_threads(args, env, smallest)
    print("threads: " + ", ".join(f"{name} {value}" for name, value in vars(threads).items() if name != "measured")
          + "".join(f"\n  {name}: " + ", ".join(f"{n} thread(s) {s * 1e3:.0f} ms" for n, s in seconds.items())
                    for name, seconds in (threads.measured or {}).items()), flush=True)

    rows, checks, fast = run_steps(args, env, threads)
    if "gpu" in args.implementations:
        import torch

        if torch.cuda.is_available():
            loop_s = {(r["B"], r["M"]): r["p50_s"] for r in rows if r["implementation"].startswith("loop")}
            rows += gpu_rows(args, env.cache_dir, env.steps, env.cfgs, loop_s)
        else:
            print("\nGPU: skipped (torch.cuda.is_available() is False)")

    headline = (min(args.responses), max(args.coalitions))
    ablation_rows: list[dict[str, Any]] = []
    kernel_table: list[dict[str, Any]] = []
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
        kernels = [
            input_kernel_rows(env.evaluator.encoder, step, run.result, args.repeats),
            owen_kernel_rows(env.reward, step, run.result, run.token_advantages, args.group_size, args.repeats),
        ]
        if env.faiss_index is not None:
            import faiss

            faiss.omp_set_num_threads(threads.faiss_batched)
            kernels.insert(0, ndcg_kernel_rows(env.reward, env.evaluator.encoder, env.faiss_index, step, run.result,
                                               args.repeats))
        for rows_of, kernel_checks in kernels:
            kernel_table += rows_of
            checks |= kernel_checks

    targets = target_report(rows, kernel_table, headline, args.n_products)
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
    offsets, coalitions = ops.coalition_plan(np.array([len(s) for s in spans]), cfg.w_max, cfg.max_coalitions,
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
        lambda: ops.pool_ndcg_dense(embeddings, env.retriever.corpus, pools.items, pools.relevance, owner, args.k),
        2, measured)
    return chosen


def target_report(e2e_rows: list[dict[str, Any]], kernel_table: list[dict[str, Any]], headline: tuple[int, int],
                  n_products: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cpu = [r for r in e2e_rows if r["implementation"] == "ospo_fast CPU" and (r["B"], r["M"]) == headline
           and r["products"] == n_products]
    if cpu and cpu[0]["speedup_vs_loop"] is not None:
        speedup = cpu[0]["speedup_vs_loop"]
        out["end_to_end_cpu_vs_loop"] = {"B": headline[0], "M": headline[1], "speedup": speedup, "target": 10.0,
                                         "met": speedup >= 10.0}
    fused = [r for r in kernel_table if r["kernel"].startswith("NDCG@pool: fused pool_ndcg_dense")]
    if fused:
        out["fused_ndcg_vs_faiss_numpy"] = {"speedup": fused[0]["ratio"], "target": 3.0, "met": fused[0]["ratio"] >= 3.0}
    return out


def report(args: argparse.Namespace, e2e_rows: list[dict[str, Any]], ablation_rows: list[dict[str, Any]],
           kernel_table: list[dict[str, Any]], checks: dict[str, Any], targets: dict[str, Any]) -> None:
    mode = "quick" if args.quick else "full"
    print_table(
        f"One RL step end to end ({mode}; p50 s of {args.repeats} repeats, speedup vs the loop)", e2e_rows,
        ["implementation", "products", "B", "M", "K", "unique_texts", "p50_s", "responses_per_s", "coalitions_per_s",
         "speedup_vs_loop", "note"],
    )
    print_table("Stage breakdown (median s per step; the loop's scaled from its timed responses)", e2e_rows,
                ["implementation", "B", "M", *(f"stage_{s}_s" for s in STAGES)])
    if ablation_rows:
        print_table(f"Ablation: v(S) of the B={min(args.responses)}, M={max(args.coalitions)} step (p50 s of "
                    f"{args.ablation_repeats}; each row adds one measure to the row above)",
                    ablation_rows, ["variant", "encoder_path", "texts_encoded", "p50_s", "speedup_vs_previous",
                                    "speedup_vs_batched_torch", "speedup_vs_loop_v"])
    if kernel_table:
        print_table("Kernels (p50 s)", kernel_table, ["kernel", "shape", "p50_s", "ratio", "ratio_to"])
    print("\nchecks: " + "; ".join(f"{name} = {value}" for name, value in checks.items()))
    for name, target in targets.items():
        print(f"target {name}: {target}")


if __name__ == "__main__":
    main()
