"""CoalitionEvaluator: one batched pass equals a per-coalition loop, and really deduplicates."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from test_reward import CountingRetriever, naive_pool_ndcg

import ospo_fast
from ospo_fast.attribution import subset_plan
from ospo_fast.attribution.coalition_values import CoalitionEvaluator, encode_rows_length_sorted, pack_unique_queries
from ospo_fast.attribution.partial_queries import build_queries
from ospo_fast.data import World, WorldConfig, generate_world
from ospo_fast.reward.retrievers import DenseRetriever, build_retriever
from ospo_fast.reward import RetrievalReward, plan_queries
from ospo_fast.attribution.segment import get_segmenter

K_TOP = 50  # small enough that the global top-k rule drops pool items
Step = tuple[list[str], list[dict], np.ndarray]


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(WorldConfig(n_products=1000, n_train=20, n_test=5, seed=0))


@pytest.fixture(scope="module")
def catalog_ids(world: World) -> list[str]:
    return world.catalog["product_id"].tolist()


@pytest.fixture(scope="module")
def dense(world: World) -> Iterator[DenseRetriever]:
    import torch

    # Intra-op threads cost more than they give on one-query batches (the naive loops
    # below): on a 2-core runner a tiny matmul takes ~80x longer with 2 threads than 1.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_retriever("minilm", world.catalog["text"].tolist())
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def step(world: World) -> Step:
    """Two prompts x three samples: a repeat within a prompt and across prompts, an empty answer, unicode."""
    rows = world.queries.to_dict("records")
    gold_a, gold_b = rows[0]["gold_query"], rows[1]["gold_query"]
    answers = [
        f"{gold_a}, with soft cushions for a small apartment",
        f"{gold_a}, with soft cushions for a small apartment",
        f"cheap {gold_a.split()[-1]} and {gold_b.split()[-1]} — café style",
        f"{gold_b} under $300; easy to clean",
        "",
        f"{gold_a}, with soft cushions for a small apartment",
    ]
    return answers, [rows[0]] * 3 + [rows[1]] * 3, np.arange(6)


def segment_all(answers: Sequence[str]) -> list[np.ndarray]:
    segmenter = get_segmenter("phrase", cover_all_words=True)
    return [np.asarray(segmenter(a), dtype=np.int64).reshape(-1, 2) for a in answers]


def naive_query(answer: str, spans: np.ndarray, members: np.ndarray, join: str) -> str:
    """y_S written out one coalition at a time."""
    if join == "space":
        return " ".join(answer[spans[i, 0] : spans[i, 1]] for i in members)
    runs: list[list[int]] = []
    for i in members:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return " ".join(answer[spans[run[0], 0] : spans[run[-1], 1]] for run in runs)


def naive_values(
    dense: DenseRetriever,
    reward: RetrievalReward,
    answers: list[str],
    spans: list[np.ndarray],
    samples: list[dict],
    offsets: np.ndarray,
    coalitions: np.ndarray,
    join: str,
) -> np.ndarray:
    """The published shape: one encoder call and one full ranking per coalition."""
    out = []
    for b, (answer, s) in enumerate(zip(answers, spans)):
        sample = samples[b]
        pool = [reward.row_of[p] for p in sample["candidate_pool"]]
        gains = [float(g) for g in sample["pool_relevance"]]
        for row in coalitions[offsets[b] : offsets[b + 1]]:
            members = np.flatnonzero(row[: len(s)]) if row.dtype == bool else np.arange(row[0], row[1])
            text = naive_query(answer, s, members, join)
            if not text.strip():
                out.append(0.0)
                continue
            scores = dense.embed_queries([text])[0] @ dense.corpus.T  # [N]
            out.append(naive_pool_ndcg(scores, pool, gains, K_TOP))
    return np.array(out)


@pytest.mark.parametrize("join", ["space", "slice"])
@pytest.mark.parametrize("contiguous", [True, False])
def test_batched_values_equal_a_per_coalition_loop(
    dense: DenseRetriever, catalog_ids: list[str], step: Step, join: str, contiguous: bool
) -> None:
    answers, samples, sample_index = step
    spans = segment_all(answers)
    n_segments = np.array([len(s) for s in spans])
    assert n_segments.max() >= 4 and n_segments.min() == 0
    if contiguous:
        offsets, coalitions = ospo_fast.coalition_plan(n_segments, 3, 8, seed=3)
    else:
        offsets, coalitions = subset_plan(n_segments, 8, seed=3)
    reward = RetrievalReward(dense, catalog_ids, k=K_TOP, gain="graded")
    got = CoalitionEvaluator(reward, join=join).evaluate(answers, spans, sample_index, samples, offsets, coalitions)
    want = naive_values(dense, reward, answers, spans, samples, offsets, coalitions, join)
    assert got.shape == (offsets[-1],) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert 0 < got.max() and len(np.unique(np.round(got, 6))) > 3, "the values must vary for the check to bite"


def test_empty_coalition_is_zero(dense: DenseRetriever, catalog_ids: list[str], step: Step) -> None:
    answers, samples, sample_index = step
    spans = segment_all(answers)
    offsets, coalitions = ospo_fast.coalition_plan(np.array([len(s) for s in spans]), 8, 96, seed=0)
    values = CoalitionEvaluator(RetrievalReward(dense, catalog_ids)).evaluate(
        answers, spans, sample_index, samples, offsets, coalitions
    )
    empty = coalitions[:, 0] == coalitions[:, 1]
    assert empty.sum() == len(answers)
    np.testing.assert_array_equal(values[empty], 0.0)


def test_identical_texts_are_encoded_once_in_one_call(
    dense: DenseRetriever, catalog_ids: list[str], step: Step
) -> None:
    answers, samples, sample_index = step
    spans = segment_all(answers)
    offsets, coalitions = ospo_fast.coalition_plan(np.array([len(s) for s in spans]), 8, 96, seed=0)
    counting = CountingRetriever(dense)
    evaluator = CoalitionEvaluator(RetrievalReward(counting, catalog_ids))
    evaluator.evaluate(answers, spans, sample_index, samples, offsets, coalitions)
    queries = build_queries(answers, spans, offsets, coalitions, "space")
    unique = {q for q in queries if q.strip()}
    assert len(counting.batches) == 1
    assert sorted(counting.batches[0]) == sorted(unique)
    # Answers 0 and 1 are equal and share a prompt: their coalitions are scored once.
    assert len(unique) < sum(bool(q.strip()) for q in queries)
    stats = evaluator.last_stats
    assert stats is not None and stats.n_unique_texts == len(unique) and stats.n_coalitions == len(queries)
    assert stats.encoder == "retriever" and stats.pack_s == 0.0
    # A text shared by the two prompts is one encoder input but two scored pairs.
    prompt_of = np.repeat(np.arange(len(answers)) // 3, np.diff(offsets))
    pairs = {(q, int(p)) for q, p in zip(queries, prompt_of) if q.strip()}
    assert stats.n_unique_pairs == len(pairs) > stats.n_unique_texts
    assert min(stats.build_s, stats.dedupe_s, stats.encode_s, stats.ndcg_s) >= 0


def test_same_text_on_two_pools_gets_each_pools_value(
    dense: DenseRetriever, catalog_ids: list[str], step: Step
) -> None:
    _, samples, _ = step
    answers = ["oak desk", "oak desk"]
    spans = segment_all(answers)
    reward = RetrievalReward(dense, catalog_ids, gain="graded")
    offsets, coalitions = ospo_fast.coalition_plan(np.array([1, 1]), 8, 96, seed=0)
    values = CoalitionEvaluator(reward).evaluate(answers, spans, np.array([0, 3]), samples, offsets, coalitions)
    np.testing.assert_allclose(values[[1, 3]], reward.score_answers(answers, [samples[0], samples[3]]))


@pytest.mark.parametrize(
    ("offsets", "coalitions", "spans", "match"),
    [
        ([0, 2], [[0, 0], [0, 3]], [[0, 3], [4, 8]], "window coalitions"),
        ([0, 1], [[0, 0], [0, 1]], [[0, 3], [4, 8]], "coalition_offsets"),
        ([0, 2], [[1, 0], [0, 1]], [[0, 3], [4, 8]], "window coalitions"),
        ([0, 2], [[False, False, True], [True, True, False]], [[0, 3], [4, 8]], "beyond"),
        ([0, 2], [[0, 0], [0, 1]], [[0, 5], [4, 8]], "spans"),
        ([0, 2], [[0, 0], [0, 1]], [[0, 3], [4, 80]], "spans"),
    ],
)
def test_bad_plans_raise(
    dense: DenseRetriever, catalog_ids: list[str], step: Step, offsets: list, coalitions: list, spans: list, match: str
) -> None:
    _, samples, _ = step
    evaluator = CoalitionEvaluator(RetrievalReward(dense, catalog_ids))
    with pytest.raises(ValueError, match=match):
        evaluator.evaluate(
            ["oak desk"], [np.array(spans)], np.array([0]), samples, np.array(offsets), np.array(coalitions)
        )


def test_bad_join_and_sample_index_raise(dense: DenseRetriever, catalog_ids: list[str], step: Step) -> None:
    _, samples, _ = step
    reward = RetrievalReward(dense, catalog_ids)
    with pytest.raises(ValueError, match="join"):
        CoalitionEvaluator(reward, join="comma")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sample_index"):
        CoalitionEvaluator(reward).evaluate(
            ["desk"], [np.array([[0, 4]])], np.array([len(samples)]), samples, np.array([0, 1]), np.array([[0, 1]])
        )


@pytest.mark.parametrize(
    ("join", "pack_segments", "onnx_on_cpu", "path"),
    [
        ("space", True, True, "packed ids, onnxruntime"),
        ("space", True, False, "packed ids, torch on cpu"),
        ("space", False, True, "text batches, onnxruntime"),
        ("space", False, False, "text batches, torch on cpu"),
        ("slice", True, True, "text batches, onnxruntime"),
    ],
)
@pytest.mark.parametrize("contiguous", [True, False])
def test_every_encoder_path_gives_the_same_values(
    dense: DenseRetriever,
    catalog_ids: list[str],
    step: Step,
    join: str,
    pack_segments: bool,
    onnx_on_cpu: bool,
    path: str,
    contiguous: bool,
) -> None:
    answers, samples, sample_index = step
    spans = segment_all(answers)
    n_segments = np.array([len(s) for s in spans])
    if contiguous:
        offsets, coalitions = ospo_fast.coalition_plan(n_segments, 8, 96, seed=1)
    else:
        offsets, coalitions = subset_plan(n_segments, 24, seed=1)
    reward = RetrievalReward(dense, catalog_ids, k=K_TOP, gain="graded")
    plain = CoalitionEvaluator(reward, join=join, pack_segments=False, onnx_on_cpu=False)
    fast = CoalitionEvaluator(reward, join=join, pack_segments=pack_segments, onnx_on_cpu=onnx_on_cpu)
    want = plain.evaluate(answers, spans, sample_index, samples, offsets, coalitions)
    got = fast.evaluate(answers, spans, sample_index, samples, offsets, coalitions)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert fast.last_stats is not None and fast.last_stats.encoder == path
    assert (fast.last_stats.pack_s > 0) == path.startswith("packed")


def test_packed_rows_are_the_tokenizer_rows_of_the_unique_queries(
    dense: DenseRetriever, catalog_ids: list[str], step: Step
) -> None:
    answers, _, _ = step
    spans = segment_all(answers)
    offsets, coalitions = ospo_fast.coalition_plan(np.array([len(s) for s in spans]), 8, 96, seed=0)
    queries = build_queries(answers, spans, offsets, coalitions, "space")
    plan = plan_queries(queries, np.zeros(len(queries), dtype=np.int64), 1)
    encoder = dense.encoder
    input_ids, attention_mask = pack_unique_queries(
        encoder.tokenizer, encoder.max_length, answers, spans, offsets, coalitions, plan.text_query
    )
    want = encoder.tokenizer(plan.texts, truncation=True, max_length=encoder.max_length)["input_ids"]
    assert input_ids.shape[0] == len(plan.texts) == len(want)
    for row, mask, ids in zip(input_ids, attention_mask, want):
        assert row[: mask.sum()].tolist() == ids and not mask[mask.sum() :].any()
    got = encode_rows_length_sorted(encoder, input_ids, attention_mask, batch_size=5)
    np.testing.assert_allclose(got, encoder.encode(plan.texts), atol=1e-5)


def test_bad_evaluator_options_raise(dense: DenseRetriever, catalog_ids: list[str]) -> None:
    reward = RetrievalReward(dense, catalog_ids)
    with pytest.raises(TypeError, match="pack_segments"):
        CoalitionEvaluator(reward, pack_segments=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="onnx_on_cpu"):
        CoalitionEvaluator(reward, onnx_on_cpu="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="encode_batch_size"):
        CoalitionEvaluator(reward, encode_batch_size=0)
