"""attribute(): segment -> plan -> v(S) -> Owen values, glued without losing a response."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import ospo_fast
from ospo_fast.attribution import OwenConfig, attribute, subset_plan
from ospo_fast.reward import extract_answer
from ospo_fast.attribution.coalition_values import CoalitionEvaluator
from ospo_fast.data import World, WorldConfig, generate_world
from ospo_fast.reward.retrievers import build_retriever
from ospo_fast.reward import RetrievalReward
from ospo_fast.attribution.segment import get_segmenter

Batch = tuple[list[str], list[dict]]


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(WorldConfig(n_products=1000, n_train=20, n_test=5, seed=0))


@pytest.fixture(scope="module")
def reward(world: World) -> Iterator[RetrievalReward]:
    import torch

    # One intra-op thread: faster than two for these small batches on a 2-core runner.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    retriever = build_retriever("minilm", world.catalog["text"].tolist())
    yield RetrievalReward(retriever, world.catalog["product_id"].tolist())
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def batch(world: World) -> Batch:
    rows = world.queries.to_dict("records")[:4]
    answers = [
        rows[0]["gold_query"],
        rows[1]["imperfect_query"] + ", with free delivery and easy assembly for a small flat",
        "",
        rows[3]["gold_query"] + " — café style",
    ]
    return answers, rows


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"w_max": 0}, ValueError),
        ({"max_coalitions": 1}, ValueError),
        ({"w_max": 2.5}, ValueError),
        ({"join": "comma"}, ValueError),
        ({"segmenter": "clauses"}, ValueError),
        ({"contiguous": "yes"}, TypeError),
        ({"cover_all_words": 1}, TypeError),
    ],
)
def test_config_rejects_bad_values(change: dict, error: type) -> None:
    with pytest.raises(error):
        OwenConfig(**change)


def test_config_defaults_are_the_papers_best() -> None:
    cfg = OwenConfig()
    assert (cfg.w_max, cfg.max_coalitions, cfg.contiguous, cfg.join) == (8, 96, True, "space")
    assert (cfg.segmenter, cfg.cover_all_words) == ("phrase", True)


@pytest.mark.parametrize("contiguous", [True, False])
def test_attribute_glues_the_pipeline(reward: RetrievalReward, batch: Batch, contiguous: bool) -> None:
    answers, samples = batch
    cfg = OwenConfig(w_max=3, max_coalitions=12, contiguous=contiguous)
    evaluator = CoalitionEvaluator(reward)
    result = attribute(answers, samples, evaluator, cfg, seed=7)

    segmenter = get_segmenter("phrase", cover_all_words=True)
    assert [s.tolist() for s in result.spans] == [[list(span) for span in segmenter(a)] for a in answers]
    n_segments = np.array([len(s) for s in result.spans])
    assert [len(p) for p in result.phi] == n_segments.tolist() and n_segments[2] == 0
    assert all(p.dtype == np.float64 for p in result.phi) and all(s.dtype == np.int64 for s in result.spans)
    if contiguous:
        offsets, coalitions = ospo_fast.coalition_plan(n_segments, 3, 12, seed=7)
    else:
        offsets, coalitions = subset_plan(n_segments, 12, seed=7)
    np.testing.assert_array_equal(result.coalition_offsets, offsets)
    np.testing.assert_array_equal(result.coalitions, coalitions)
    assert result.n_coalitions == len(result.values) == offsets[-1]
    values = evaluator.evaluate(answers, result.spans, np.arange(4), samples, offsets, coalitions)
    np.testing.assert_allclose(result.values, values, atol=1e-12)
    for b, n in enumerate(n_segments):
        lo, hi = offsets[b], offsets[b + 1]
        rows = coalitions[lo:hi, :n] if not contiguous else coalitions[lo:hi]
        np.testing.assert_allclose(result.phi[b], ospo_fast.owen_values(int(n), rows, values[lo:hi]), atol=1e-12)
    assert {"segment", "plan", "evaluate", "build", "dedupe", "encode", "ndcg", "owen"} <= set(result.timings)


def test_all_subsets_give_exact_shapley(reward: RetrievalReward, batch: Batch) -> None:
    """With every subset in budget the spec §5 estimator is exact Shapley, which is efficient."""
    answers, samples = batch
    cfg = OwenConfig(max_coalitions=64, contiguous=False)
    result = attribute(answers[:1], samples[:1], CoalitionEvaluator(reward), cfg, seed=0)
    n = len(result.spans[0])
    assert 2 <= n <= 6 and result.n_coalitions == 2**n
    np.testing.assert_allclose(result.phi[0], ospo_fast.exact_shapley(result.values), atol=1e-12)
    assert result.phi[0].sum() == pytest.approx(result.values[-1] - result.values[0], abs=1e-12)
    assert result.values[-1] > 0


def test_spans_shift_to_completion_coordinates(reward: RetrievalReward, batch: Batch) -> None:
    answers, samples = batch
    completions = [f"<think>the shopper needs é {i}</think>\n<answer>  {a}</answer>" for i, a in enumerate(answers)]
    extracted = [extract_answer(c) for c in completions]
    assert [text for text, _ in extracted] == answers
    result = attribute([t for t, _ in extracted], samples, CoalitionEvaluator(reward), OwenConfig(), seed=0)
    for (text, offset), spans, completion in zip(extracted, result.spans, completions):
        for start, end in spans:
            assert completion[offset + start : offset + end] == text[start:end]


def test_same_seed_same_plan_and_join_must_match(reward: RetrievalReward, batch: Batch) -> None:
    answers, samples = batch
    cfg = OwenConfig(w_max=8, max_coalitions=5)
    first = attribute(answers, samples, CoalitionEvaluator(reward), cfg, seed=1)
    again = attribute(answers, samples, CoalitionEvaluator(reward), cfg, seed=1)
    other = attribute(answers, samples, CoalitionEvaluator(reward), cfg, seed=2)
    np.testing.assert_array_equal(first.coalitions, again.coalitions)
    assert not np.array_equal(first.coalitions, other.coalitions)
    with pytest.raises(ValueError, match="join"):
        attribute(answers, samples, CoalitionEvaluator(reward, join="slice"), cfg, seed=1)
    with pytest.raises(ValueError, match="samples"):
        attribute(answers, samples[:2], CoalitionEvaluator(reward), cfg, seed=1)
