"""step_token_advantages: the one function every trainer calls, on every path it can take.

* The fused op and the composed path (φ, token_credit_batch, redistribute_batch) agree in
  every mode, with and without ``invert_negative``.
* The step function runs the fused op for window plans and the composed path only for
  subset plans; credit lands on the answer's tokens and each row keeps its mean.
* The device pipeline on torch CPU tensors equals the numpy pipeline bit for bit.
* The whole pipeline on the Triton backend (interpreter, a child process) equals the C++
  result within float32 tolerance (``test_triton_pipeline.py`` is that child's script).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ospo_fast.attribution import (
    CoalitionEvaluator,
    OwenConfig,
    composed_token_advantages,
    step_token_advantages,
)
from ospo_fast.data import WorldConfig, generate_world
from ospo_fast.ops import coalition_plan, owen_values_batch, token_advantages_batch
from ospo_fast.ops.coalitions import window_count
from ospo_fast.types import RedistributionMode, choices_of
from ospo_fast.reward import RetrievalReward, extract_answer
from ospo_fast.reward.retrievers import BM25Retriever, build_retriever

MODES = choices_of(RedistributionMode)
# (mode, invert_negative): mode signed refuses invert_negative.
MODE_OPTIONS = [(m, i) for m in MODES for i in (False, True) if not (m == "signed" and i)]


def scale_of(mode: str, n_rows: int):
    """Mode signed's credit scale (any fixed one: these tests compare paths, not its value)."""
    return np.full(n_rows, 1.5) if mode == "signed" else None
ROOT = Path(__file__).resolve().parents[1]


def random_step(seed: int, n_responses: int = 9, n_tokens: int = 23):
    """A CSR batch with windows: rows of 0 to 7 segments, tokens overlapping them unevenly."""
    rng = np.random.default_rng(seed)
    n_segments = rng.integers(0, 8, size=n_responses)
    offsets, coalitions = coalition_plan(n_segments, 3, 12, seed=seed)
    values = rng.random(len(coalitions))
    values[coalitions[:, 0] == coalitions[:, 1]] = 0.0
    spans = np.concatenate(
        [np.zeros((0, 2), np.int64)] + [np.sort(rng.choice(90, size=2 * n, replace=False)).reshape(-1, 2)
                                        for n in n_segments]
    ).astype(np.int64)
    edges = np.sort(rng.integers(0, 92, size=(n_responses, n_tokens + 1)), axis=1)
    token_offsets = np.stack([edges[:, :-1], edges[:, 1:]], axis=2)  # [B, T, 2]
    token_mask = np.arange(n_tokens)[None, :] < rng.integers(1, n_tokens + 1, size=(n_responses, 1))
    answer_mask = token_mask & (rng.random((n_responses, n_tokens)) < 0.7)
    advantages = rng.normal(size=n_responses)
    return n_segments, offsets, coalitions, values, spans, token_offsets, token_mask, answer_mask, advantages


@pytest.mark.parametrize(("mode", "invert_negative"), MODE_OPTIONS)
@pytest.mark.parametrize("estimator", ["spec", "stratified"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_and_composed_paths_agree(mode, invert_negative, estimator, seed):
    n_segments, offsets, coalitions, values, spans, token_offsets, token_mask, answer_mask, adv = random_step(seed)
    scales = scale_of(mode, len(adv))
    fused, fused_phi = token_advantages_batch(
        n_segments, offsets, coalitions, values, spans, token_offsets, token_mask, answer_mask, adv, mode,
        alpha=0.6, invert_negative=invert_negative, return_phi=True, estimator=estimator, credit_scale=scales,
    )
    phi, _ = owen_values_batch(n_segments, offsets, coalitions, values, estimator)
    composed = composed_token_advantages(
        phi, n_segments, spans, token_offsets, token_mask, answer_mask, adv, mode, alpha=0.6,
        invert_negative=invert_negative, credit_scale=scales,
    )
    np.testing.assert_array_equal(fused_phi, phi)
    # Both run the core's credit and redistribution loops; only the order of a few float64
    # operations may differ, so the tolerance is float64 round-off on the advantages' scale.
    np.testing.assert_allclose(fused, composed, rtol=0, atol=1e-12 * np.abs(adv).max())


# ------------------------------------------------------------------ the step function on a real reward

CATALOG = {
    "p0": "red wool winter coat", "p1": "blue cotton slim shirt", "p2": "black leather ankle boots",
    "p3": "green linen summer dress", "p4": "red cotton t-shirt", "p5": "grey wool scarf",
}
SAMPLE = {"candidate_pool": ["p0", "p2", "p4", "p5"], "pool_relevance": [3, 0, 1, 2], "query_id": "q0"}
COMPLETIONS = [
    "<think>she wants a warm coat</think><answer>red wool winter coat</answer>",
    "<think>maybe boots</think><answer>black boots in red wool</answer>",
    "grey scarf, wool",
    "<think>no idea</think><answer></answer>",
]


def char_tokens(texts: list[str], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-character tokens of each text plus an empty EOS span: offsets [B, T, 2], mask [B, T]."""
    offsets = np.zeros((len(texts), width, 2), dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=bool)
    for b, text in enumerate(texts):
        spans = [(i, min(i + 2, len(text))) for i in range(0, len(text), 2)] + [(len(text), len(text))]
        offsets[b, : len(spans)] = spans
        mask[b, : len(spans)] = True
    return offsets, mask


@pytest.fixture(scope="module")
def bm25_evaluator() -> CoalitionEvaluator:
    return CoalitionEvaluator(RetrievalReward(BM25Retriever(list(CATALOG.values())), list(CATALOG), k=10))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("estimator", ["spec", "stratified"])
def test_step_runs_the_fused_op_and_credits_the_answer(bm25_evaluator, mode, estimator):
    offsets, mask = char_tokens(COMPLETIONS, 40)
    advantages = np.array([1.1, -0.6, 0.0, -0.5])
    step = step_token_advantages(
        COMPLETIONS, offsets, mask, advantages, [SAMPLE] * 4, bm25_evaluator,
        OwenConfig(segmenter="word", estimator=estimator), seed=5, mode=mode, credit_scale=scale_of(mode, 4),
    )
    assert step.path == "fused" and step.n_coalitions > 0
    values = step.token_advantages
    for b, completion in enumerate(COMPLETIONS):
        real = mask[b]
        assert values[b, real].mean() == pytest.approx(advantages[b], abs=1e-12)
        assert np.all(values[b, ~real] == 0)
        outside = real & ~step.answer_mask[b]
        np.testing.assert_array_equal(values[b, outside], advantages[b])
        answer, start = extract_answer(completion)
        assert all(start <= a and e <= start + len(answer) for a, e in step.segment_spans[b])
    assert len(step.segment_spans[2]) == 0  # Â = 0: never scored
    assert values[0, step.answer_mask[0]].std() > 0  # the answer's words did not all help alike
    # the Owen values it reports are the ones the advantages came from
    recomposed = composed_token_advantages(
        np.concatenate(step.phi), np.array([len(p) for p in step.phi]), np.concatenate(step.segment_spans),
        offsets, mask, step.answer_mask, advantages, mode, credit_scale=scale_of(mode, 4),
    )
    np.testing.assert_allclose(values, recomposed, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("mode", "estimator", "sizes", "budget"), [
    ("hybrid", "spec", "half", "max_coalitions"),
    ("signed", "stratified", "kernel", "contiguous"),
])
def test_subset_plans_take_the_composed_path(bm25_evaluator, mode, estimator, sizes, budget):
    offsets, mask = char_tokens(COMPLETIONS, 40)
    advantages = np.array([1.1, -0.6, 0.4, -0.5])
    owen = OwenConfig(segmenter="word", contiguous=False, max_coalitions=10, w_max=2, estimator=estimator,
                      subset_sizes=sizes, subset_budget=budget)
    step = step_token_advantages(
        COMPLETIONS, offsets, mask, advantages, [SAMPLE] * 4, bm25_evaluator, owen, seed=5, mode=mode,
        credit_scale=scale_of(mode, 4),
    )
    assert step.path == "composed"
    means = (step.token_advantages * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(means, advantages, atol=1e-12)
    per_response = np.diff(step.scored.coalition_offsets)
    if budget == "contiguous":  # as many as the window plan of w_max = 2 would score, at most M
        assert per_response.tolist() == [min(window_count(int(n), 2), 10) for n in step.scored.n_segments]
    else:
        assert per_response.max() <= 10


def test_no_scored_row_gives_zeros_and_out_device_gives_float32(bm25_evaluator):
    offsets, mask = char_tokens(COMPLETIONS, 40)
    step = step_token_advantages(
        COMPLETIONS, offsets, mask, np.zeros(4), [SAMPLE] * 4, bm25_evaluator, OwenConfig(), seed=0,
        out_device="cpu",
    )
    assert step.n_coalitions == 0 and step.token_advantages.dtype == torch.float32
    assert not step.token_advantages.any()
    stats = step.statistics(mask)
    assert stats["within_row_adv_std"] == 0.0 and 0 < stats["answer_token_share"] < 1


def test_bad_arguments_name_themselves(bm25_evaluator):
    offsets, mask = char_tokens(COMPLETIONS, 40)
    args = (COMPLETIONS, offsets, mask, np.ones(4), [SAMPLE] * 4, bm25_evaluator)
    with pytest.raises(ValueError, match="mode"):
        step_token_advantages(*args, OwenConfig(), seed=0, mode="proportional")
    with pytest.raises(TypeError, match="owen_config"):
        step_token_advantages(*args, {"w_max": 8}, seed=0)
    with pytest.raises(ValueError, match="clip"):
        step_token_advantages(*args, OwenConfig(), seed=0, clip=float("nan"))
    with pytest.raises(ValueError, match="samples"):
        step_token_advantages(*args[:4], [SAMPLE] * 3, bm25_evaluator, OwenConfig(), seed=0)
    with pytest.raises(ValueError, match="needs credit_scale"):
        step_token_advantages(*args, OwenConfig(), seed=0, mode="signed")
    with pytest.raises(ValueError, match=r"credit_scale must be \[B\] = \[4\]"):
        step_token_advantages(*args, OwenConfig(), seed=0, mode="signed", credit_scale=np.ones(3))
    with pytest.raises(ValueError, match="only applies to mode 'signed'"):
        step_token_advantages(*args, OwenConfig(), seed=0, credit_scale=np.ones(4))
    with pytest.raises(ValueError, match="invert_negative does not apply"):
        step_token_advantages(*args, OwenConfig(), seed=0, mode="signed", credit_scale=np.ones(4),
                              invert_negative=True)
    with pytest.raises(ValueError, match="estimator"):
        OwenConfig(estimator="wls")


# ------------------------------------------------------------------ the device pipeline on CPU tensors


@pytest.fixture(scope="module")
def dense_world(tmp_path_factory):
    """A 1,000-product world cut to a 300-item catalog that holds the pools of the step's prompts."""
    from triton_pipeline import CATALOG_SIZE, catalog_of

    world = generate_world(WorldConfig(n_products=1000, n_train=6, n_test=0, seed=4))
    texts, ids = catalog_of(world, world.train()[:3], CATALOG_SIZE)
    retriever = build_retriever("minilm", texts, cache_dir=tmp_path_factory.mktemp("cache"))
    return world, retriever, ids


def world_step(world, n_prompts: int = 3, group: int = 4):
    rows = world.train()[:n_prompts]
    completions, samples = [], []
    for p, row in enumerate(rows):
        words = row["gold_query"].split() + ["for", "my", "new", "flat"]
        for g in range(group):
            answer = " ".join(words[g % 2 :][: 3 + g])
            completions.append(f"<think>try {p}.{g}</think><answer>{answer}</answer>")
            samples.append(row)
    width = max(len(c) for c in completions) // 2 + 2
    offsets, mask = char_tokens(completions, width)
    advantages = np.random.default_rng(1).normal(size=len(completions))
    return completions, offsets, mask, advantages, samples


@pytest.mark.parametrize("mode", MODES)
def test_device_pipeline_on_cpu_tensors_equals_numpy(dense_world, mode):
    world, retriever, ids = dense_world
    completions, offsets, mask, advantages, samples = world_step(world)
    owen = OwenConfig(segmenter="word", w_max=4, max_coalitions=12, estimator="stratified" if mode == "rank" else "spec")
    results = {}
    for device in (None, "cpu"):
        evaluator = CoalitionEvaluator(RetrievalReward(retriever, ids, k=50, device=device))
        results[device] = step_token_advantages(
            completions, offsets, mask, advantages, samples, evaluator, owen, seed=2, mode=mode,
            invert_negative=mode != "signed", credit_scale=scale_of(mode, len(advantages)),
        )
    host, tensors = results[None], results["cpu"]
    assert isinstance(tensors.token_advantages, torch.Tensor) and tensors.token_advantages.dtype == torch.float64
    # The same encoder, the same C++ kernels on the same float32 embeddings: bit for bit.
    np.testing.assert_array_equal(tensors.token_advantages.numpy(), host.token_advantages)
    np.testing.assert_array_equal(np.concatenate(tensors.phi), np.concatenate(host.phi))
    assert host.n_coalitions == tensors.n_coalitions > 0


# ------------------------------------------------------------------ the Triton backend, interpreted


@pytest.fixture(scope="module")
def triton_report(tmp_path_factory):
    env = {**os.environ, "TRITON_INTERPRET": "1", "OSPO_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    child = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "triton_pipeline.py")], env=env, capture_output=True, text=True,
        timeout=900, cwd=tmp_path_factory.mktemp("cwd"),
    )
    assert child.returncode == 0, child.stderr[-4000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


def test_triton_pipeline_ran_every_triton_kernel(triton_report):
    calls = triton_report["kernel_calls"]
    assert calls["pack_windows"] >= 1 and calls["count_beaters"] >= 1 and calls["owen_token_advantages"] >= 2
    assert triton_report["spec-prop"]["n_coalitions"] > 50


@pytest.mark.parametrize("setting", ["spec-prop", "stratified-signed"])
def test_triton_pipeline_equals_the_core(triton_report, setting):
    # The Triton kernels score in float32 (the C++ core in float64 from the same float32
    # embeddings): v(S) agrees to float32 round-off and so do the advantages, scaled by max |A|.
    assert triton_report["values_max_abs_diff"] <= 1e-6
    report = triton_report[setting]
    assert report["advantages_max_abs_diff_over_max_adv"] <= 1e-5
    assert report["phi_max_abs_diff"] <= 1e-6
    assert report["result_device"] == "cpu" and report["result_dtype"] == "torch.float32"
