"""Child process of test_step_advantages.py: one RL step's attribution on the Triton backend.

Run with ``TRITON_INTERPRET=1`` (set before triton is imported), so the Triton kernels
run on CPU tensors. The step runs twice on the same world, encoder and coalitions: the
C++ core on numpy (the reference result) and ``device="cpu", backend="triton"``, where
packing, the fused NDCG and the Owen reduction are Triton kernels. Prints one JSON line.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np


CATALOG_SIZE = 300


def catalog_of(world, rows: list[dict], size: int) -> tuple[list[str], list[str]]:  # noqa: ANN001
    """A ``size``-item catalog holding every pool of ``rows``: (texts, product ids), in catalog order."""
    pooled = {pid for row in rows for pid in row["candidate_pool"]}
    catalog = world.catalog
    keep = catalog["product_id"].isin(pooled).to_numpy().copy()
    keep[np.flatnonzero(~keep)[: size - int(keep.sum())]] = True
    kept = catalog[keep]
    return kept["text"].tolist(), kept["product_id"].tolist()


def spy_on_kernels(calls: Counter) -> None:
    """Count the Triton launchers the pipeline reaches (the launchers import them on use)."""
    from ospo_fast.kernels import fused_ndcg, owen_advantages, pack_queries

    for module, name in ((pack_queries, "pack_windows"), (fused_ndcg, "count_beaters"),
                         (owen_advantages, "owen_token_advantages")):
        original = getattr(module, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        setattr(module, name, counted)


def main() -> dict:
    assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
    from ospo_fast.attribution import CoalitionEvaluator, OwenConfig, score_coalitions, step_token_advantages
    from ospo_fast.data import WorldConfig, generate_world
    from ospo_fast.reward import RetrievalReward, extract_answer
    from ospo_fast.reward.retrievers import build_retriever

    world = generate_world(WorldConfig(n_products=1000, n_train=8, n_test=0, seed=4))
    rows = world.train()[:2]
    texts, ids = catalog_of(world, rows, CATALOG_SIZE)
    retriever = build_retriever("minilm", texts, cache_dir=Path(os.environ["OSPO_CACHE_DIR"]))
    completions, samples = [], []
    for p, row in enumerate(rows):
        words = (row["gold_query"] + " in a warm colour for my flat").split()
        for g in range(3):
            completions.append(f"<think>try {p}.{g}</think><answer>{' '.join(words[g:][: 4 + 2 * g])}</answer>")
            samples.append(row)
    width = max(len(c) for c in completions) // 3 + 2
    offsets = np.zeros((len(completions), width, 2), dtype=np.int64)
    mask = np.zeros((len(completions), width), dtype=bool)
    for b, text in enumerate(completions):
        spans = [(i, min(i + 3, len(text))) for i in range(0, len(text), 3)]
        offsets[b, : len(spans)], mask[b, : len(spans)] = spans, True
    advantages = np.array([0.9, -0.4, 0.3, -1.1, 0.0, 0.6])
    owen = OwenConfig(segmenter="word", w_max=4, max_coalitions=20)
    answers = [extract_answer(c)[0] for c in completions]

    calls: Counter = Counter()
    spy_on_kernels(calls)
    core = CoalitionEvaluator(RetrievalReward(retriever, ids, k=50))
    triton = CoalitionEvaluator(RetrievalReward(retriever, ids, k=50, device="cpu", backend="triton"))
    core_values = score_coalitions(answers, samples, core, owen, seed=3).values
    triton_values = score_coalitions(answers, samples, triton, owen, seed=3).values.double().numpy()
    report = {
        "kernel_calls": calls,
        "values_max_abs_diff": float(np.abs(triton_values - core_values).max()),
    }
    # The paper's setting, then the stratified estimator with signed credit.
    for label, mode, estimator in (("spec-prop", "prop", "spec"), ("stratified-signed", "signed", "stratified")):
        config = dataclasses.replace(owen, estimator=estimator)
        scales = np.full(len(advantages), 2.0) if mode == "signed" else None
        steps = [
            step_token_advantages(completions, offsets, mask, advantages, samples, evaluator, config, seed=3,
                                  mode=mode, out_device=None if evaluator is core else "cpu", credit_scale=scales)
            for evaluator in (core, triton)
        ]
        want, got = steps[0].token_advantages, steps[1].token_advantages
        report[label] = {
            "n_coalitions": steps[1].n_coalitions,
            "advantages_max_abs_diff_over_max_adv": float(np.abs(got.double().numpy() - want).max()
                                                          / np.abs(want).max()),
            "phi_max_abs_diff": float(np.abs(np.concatenate(steps[1].phi) - np.concatenate(steps[0].phi)).max()),
            "result_device": str(got.device),
            "result_dtype": str(got.dtype),
        }
    report["kernel_calls"] = dict(calls)
    return report


if __name__ == "__main__":
    print(json.dumps(main()))
