"""The trainer's step function on a real GPU against the C++ core on the same step.

Skipped without a CUDA device. The reward's corpus, the encoder, the packing, the fused
NDCG and the Owen reduction all run on the GPU; the advantages come back as a float32
CUDA tensor and equal the CPU core's within float32 tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ospo_fast.attribution import CoalitionEvaluator, OwenConfig, score_coalitions, step_token_advantages
from ospo_fast.data import WorldConfig, generate_world
from ospo_fast.reward import RetrievalReward, extract_answer
from ospo_fast.reward.retrievers import build_retriever

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def step(tmp_path_factory):
    world = generate_world(WorldConfig(n_products=2000, n_train=16, n_test=0, seed=7))
    texts, ids = world.catalog["text"].tolist(), world.catalog["product_id"].tolist()
    cache = tmp_path_factory.mktemp("cache")
    host = build_retriever("minilm", texts, cache_dir=cache)
    cuda = build_retriever("minilm", texts, cache_dir=cache, device="cuda")
    completions, samples = [], []
    for p, row in enumerate(world.train()[:8]):
        words = (row["gold_query"] + " for a small flat in a warm colour").split()
        for g in range(4):
            completions.append(f"<think>try {p}.{g}</think><answer>{' '.join(words[g:][: 3 + 2 * g])}</answer>")
            samples.append(row)
    width = max(len(c) for c in completions) // 3 + 2
    offsets = np.zeros((len(completions), width, 2), dtype=np.int64)
    mask = np.zeros((len(completions), width), dtype=bool)
    for b, text in enumerate(completions):
        spans = [(i, min(i + 3, len(text))) for i in range(0, len(text), 3)]
        offsets[b, : len(spans)], mask[b, : len(spans)] = spans, True
    advantages = np.random.default_rng(0).normal(size=len(completions))
    return host, cuda, ids, completions, samples, offsets, mask, advantages


@pytest.mark.parametrize("mode", ["prop", "hybrid"])
def test_step_on_cuda_matches_the_cpu_core(step, mode):
    host, cuda, ids, completions, samples, offsets, mask, advantages = step
    owen = OwenConfig(segmenter="word", w_max=8, max_coalitions=96)
    core = CoalitionEvaluator(RetrievalReward(host, ids, k=1000))
    gpu = CoalitionEvaluator(RetrievalReward(cuda, ids, k=1000, device="cuda"))
    answers = [extract_answer(c)[0] for c in completions]
    want_values = score_coalitions(answers, samples, core, owen, seed=1).values
    got_values = score_coalitions(answers, samples, gpu, owen, seed=1).values
    assert got_values.is_cuda
    # torch and onnxruntime embed to 1e-5; near-tied catalog rows may swap, so compare most coalitions tightly
    diff = np.abs(got_values.double().cpu().numpy() - want_values)
    assert np.mean(diff > 1e-4) < 0.02
    want = step_token_advantages(completions, offsets, mask, advantages, samples, core, owen, seed=1, mode=mode)
    got = step_token_advantages(completions, offsets, mask, advantages, samples, gpu, owen, seed=1, mode=mode)
    assert got.token_advantages.is_cuda and got.token_advantages.dtype == torch.float32
    rows_close = np.isclose(got.token_advantages.cpu().numpy(), want.token_advantages, rtol=1e-3, atol=1e-4).all(1)
    assert rows_close.mean() > 0.9
    means = (got.token_advantages.double().cpu().numpy() * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(means, advantages, atol=1e-5)
