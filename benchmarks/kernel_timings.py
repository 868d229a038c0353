"""The kernels of one RL step, each against its baseline, on the step's own data.

CPU: the fused NDCG against faiss top-1000 + numpy NDCG and a bare fp32 matmul; the
encoder inputs packed from segment ids against the tokenizer; Owen + redistribution
native against reference.py. GPU: the fused NDCG (Triton) against a bare matmul of the
same queries and corpus on the device. Each function returns table rows and checks.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from harness import measure
from workload import Step

from ospo_fast.attribution.advantages import StepAdvantages
from ospo_fast.attribution.coalition_values import pack_unique_queries
from ospo_fast.attribution.partial_queries import build_queries
from ospo_fast.ops import reference
from ospo_fast.ops.credit import token_advantages_batch
from ospo_fast.ops.ndcg import pool_ndcg_dense, prepare_corpus
from ospo_fast.reward.query_plan import QueryPlan, plan_queries
from ospo_fast.reward.retrieval_reward import Pools, RetrievalReward, lookup_rows


def scored_rows(step: Step, result: StepAdvantages) -> np.ndarray:
    """The responses the step scored (Â ≠ 0), in the order of ``result.scored``."""
    return np.flatnonzero(result.advantages != 0)


def unique_pairs(reward: RetrievalReward, step: Step, result: StepAdvantages) -> tuple[QueryPlan, Pools]:
    """The step's partial queries deduplicated as (text, pool) pairs, as the evaluator scores them."""
    scored, rows = result.scored, scored_rows(step, result)
    answers = [step.answers[b] for b in rows]
    queries = build_queries(answers, scored.spans, scored.coalition_offsets, scored.coalitions, "space")
    pools = reward.load_pools([step.samples[b] for b in rows])
    plan = plan_queries(queries, np.repeat(pools.of_sample, np.diff(scored.coalition_offsets)), len(pools.items))
    return plan, pools


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


def ndcg_kernel_rows(reward: RetrievalReward, encoder: Any, faiss_index: Any, step: Step, result: StepAdvantages,
                     repeats: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Fused NDCG vs faiss top-k + numpy NDCG vs a bare matmul, on the step's unique (text, pool) pairs."""
    plan, pools = unique_pairs(reward, step, result)
    embeddings = encoder.encode(plan.texts)[plan.pair_text]  # [C, d]
    corpus = reward.retriever.corpus  # [N, d]
    n_pairs, (n_items, dim) = len(embeddings), corpus.shape
    shape = f"C={n_pairs}, N={n_items}, d={dim}, k={reward.k}"

    # Packed once per corpus, as faiss adds the corpus to its index once (neither is timed below).
    started = time.perf_counter()
    prepared = prepare_corpus(corpus)
    prepare_s = time.perf_counter() - started
    kernel = "screened" if prepared.screened is not None else "tiled"

    def fused_ndcg() -> np.ndarray:
        return pool_ndcg_dense(embeddings, prepared, pools.items, pools.relevance, plan.pair_pool, reward.k)

    def tiled_ndcg() -> np.ndarray:
        return pool_ndcg_dense(embeddings, corpus, pools.items, pools.relevance, plan.pair_pool, reward.k,
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


def input_kernel_rows(encoder: Any, step: Step, result: StepAdvantages, repeats: int
                      ) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Encoder inputs of the unique partial queries: the tokenizer on their texts vs packing segment ids."""
    scored, rows = result.scored, scored_rows(step, result)
    answers = [step.answers[b] for b in rows]
    queries = build_queries(answers, scored.spans, scored.coalition_offsets, scored.coalitions, "space")
    plan = plan_queries(queries, np.zeros(len(queries), dtype=np.int64), 1)
    tokenizer = encoder.tokenizer

    def tokenized() -> list[list[int]]:
        return tokenizer(plan.texts, truncation=True, max_length=encoder.max_length)["input_ids"]

    def packed() -> tuple[np.ndarray, np.ndarray]:
        return pack_unique_queries(tokenizer, encoder.max_length, answers, scored.spans, scored.coalition_offsets,
                                   scored.coalitions, plan.text_query)

    tokenize_t, token_rows = measure("tokenize", tokenized, repeats=repeats)
    pack_t, (input_ids, attention_mask) = measure("pack", packed, repeats=repeats)
    lengths = attention_mask.sum(axis=1)  # [U]
    same = all(list(input_ids[u, : lengths[u]]) == list(row) for u, row in enumerate(token_rows))
    shape = f"U={len(plan.texts)} queries, mean {lengths.mean():.1f} tokens"
    table = [
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
    return table, checks


def owen_kernel_rows(step: Step, result: StepAdvantages, repeats: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Owen + redistribution of the step's real values: reference.py vs the native core."""
    scored = result.scored
    n_segments = np.zeros(len(step.answers), dtype=np.int64)
    n_segments[scored_rows(step, result)] = scored.n_segments
    counts = np.zeros(len(step.answers), dtype=np.int64)
    counts[scored_rows(step, result)] = np.diff(scored.coalition_offsets)
    args = dict(
        n_segments=n_segments, coalition_offsets=np.concatenate([[0], np.cumsum(counts)]),
        coalitions=scored.coalitions, values=np.asarray(scored.values, dtype=np.float64),
        segment_spans=np.concatenate(scored.spans), token_offsets=step.token_offsets, token_mask=step.token_mask,
        answer_mask=result.answer_mask, advantages=result.advantages,
    )
    reference_t, via_reference = measure("reference", lambda: reference.token_advantages_batch(**args),
                                         repeats=repeats, warmup=0)
    native_t, via_native = measure("native", lambda: token_advantages_batch(**args), repeats=repeats)
    shape = f"B={len(step.answers)}, K={scored.n_coalitions}, T={step.token_mask.shape[1]}"
    rows = [
        {"kernel": "Owen + redistribution: reference.py", "shape": shape, "p50_s": reference_t.p50, "ratio": 1.0,
         "ratio_to": "itself"},
        {"kernel": "Owen + redistribution: native token_advantages_batch", "shape": shape, "p50_s": native_t.p50,
         "ratio": reference_t.p50 / native_t.p50, "ratio_to": "speedup over reference.py"},
    ]
    checks = {
        "native_vs_reference_advantages_max_abs_diff": float(np.abs(via_native - via_reference).max()),
        "native_vs_step_advantages_max_abs_diff": float(np.abs(via_native - result.token_advantages).max()),
    }
    return rows, checks


def gpu_ndcg_kernel_rows(reward: RetrievalReward, step: Step, result: StepAdvantages, repeats: int
                         ) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """On the reward's device: the fused NDCG (Triton) of the step's unique pairs vs a bare matmul."""
    import torch

    plan, pools = unique_pairs(reward, step, result)
    device = reward.device
    embeddings = reward.embed(plan.texts)[torch.from_numpy(plan.pair_text).to(device)]  # [C, d]
    corpus = reward.prepared_corpus.scored  # [N, d] resident
    items, relevance, owner = (torch.from_numpy(a).to(device) for a in (pools.items, pools.relevance, plan.pair_pool))
    n_pairs, (n_items, dim) = embeddings.shape[0], corpus.shape
    shape = f"C={n_pairs}, N={n_items}, d={dim}, k={reward.k}"

    def synced(fn: Any) -> Any:
        def run() -> Any:
            out = fn()
            torch.cuda.synchronize(device)
            return out

        return run

    fused_t, fused = measure("gpu fused", synced(lambda: pool_ndcg_dense(
        embeddings, reward.prepared_corpus, items, relevance, owner, reward.k, reward.core_gain)), repeats=repeats)
    rows_per_piece = max(1, (2 << 30) // (4 * n_items))  # [rows, N] float32 pieces of at most 2 GiB

    def matmul() -> None:
        for start in range(0, n_pairs, rows_per_piece):
            embeddings[start : start + rows_per_piece] @ corpus.T

    matmul_t, _ = measure("gpu matmul", synced(matmul), repeats=repeats)
    host = pool_ndcg_dense(embeddings.cpu().numpy(), reward.retriever.corpus, pools.items, pools.relevance,
                           plan.pair_pool, reward.k, reward.core_gain, backend="cpu")
    rows = [
        {"kernel": "GPU bare matmul [C, d] @ [d, N] (fp32)", "shape": shape, "p50_s": matmul_t.p50, "ratio": 1.0,
         "ratio_to": "itself"},
        {"kernel": "GPU fused pool_ndcg_dense (Triton)", "shape": shape, "p50_s": fused_t.p50,
         "ratio": fused_t.p50 / matmul_t.p50, "ratio_to": "fused / matmul (target <= 2)"},
    ]
    differs = np.abs(fused.double().cpu().numpy() - host)
    checks = {"gpu_fused_vs_cpu_core_max_abs_diff": float(differs.max()),
              "gpu_fused_vs_cpu_core_pairs_over_1e-5": int((differs > 1e-5).sum()),
              "gpu_fused_over_matmul": fused_t.p50 / matmul_t.p50}
    return rows, checks
