"""RetrievalReward: NDCG@pool against a from-scratch computation, metrics against trec_eval."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from ospo_fast.data import World, WorldConfig, generate_world
from ospo_fast.reward.retrievers import BM25Retriever, DenseRetriever, build_retriever
from ospo_fast.reward import METRIC_CUTOFFS, RetrievalReward, extract_answer, lookup_rows, plan_queries

ESCI_GAIN = {
    "binary": lambda label: float(label == 3),
    "graded": lambda label: float(label),
    "exp": lambda label: 2.0**label - 1.0,
}


def naive_pool_ndcg(scores: np.ndarray, pool: Sequence[int], gains: Sequence[float], k: int) -> float:
    """Spec §2 written out: rank the whole catalog, keep the top k, filter to the pool, DCG."""
    ranked = sorted(range(len(scores)), key=lambda row: (-float(scores[row]), row))[:k]
    gain_of = dict(zip(pool, gains))
    kept = [gain_of[row] for row in ranked if row in gain_of]
    dcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(kept))
    ideal = sum(g / math.log2(rank + 2) for rank, g in enumerate(sorted(gains, reverse=True)[:k]))
    return dcg / ideal if ideal > 0 else 0.0


def naive_reward(scores: np.ndarray, sample: dict, row_of: dict[str, int], k: int, gain: str) -> float:
    pool = [row_of[p] for p in sample["candidate_pool"]]
    return naive_pool_ndcg(scores, pool, [ESCI_GAIN[gain](g) for g in sample["pool_relevance"]], k)


def query_variants(samples: list[dict]) -> list[str]:
    """Gold queries and model-like imperfect ones: words dropped, words added, one word."""
    out = []
    for i, s in enumerate(samples):
        words = s["gold_query"].split()
        variants = [s["gold_query"], s["imperfect_query"], " ".join(words[1:]) + " cheap durable", words[-1]]
        out.append(variants[i % 4])
    return out


class CountingRetriever:
    """A dense retriever that records every batch of texts it embeds."""

    def __init__(self, inner: DenseRetriever) -> None:
        self.inner = inner
        self.name, self.n_items, self.corpus = inner.name, inner.n_items, inner.corpus
        self.batches: list[list[str]] = []

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return self.inner.embed_queries(texts)


class RoundedRetriever:
    """Lexical-style retriever (no embeddings exposed) with coarse scores, so ties abound."""

    def __init__(self, inner: DenseRetriever) -> None:
        self.inner = inner
        self.name, self.n_items = "rounded", inner.n_items

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return np.round(self.inner.score(texts), 1).astype(np.float32)


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(WorldConfig(n_products=1000, n_train=20, n_test=5, seed=0))


@pytest.fixture(scope="module")
def samples(world: World) -> list[dict]:
    return world.queries.to_dict("records")


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
def texts(samples: list[dict]) -> list[str]:
    return query_variants(samples)


@pytest.mark.parametrize("gain", ["binary", "graded", "exp"])
def test_reward_equals_from_scratch_ndcg_with_and_without_top_k(
    dense: DenseRetriever, samples: list[dict], catalog_ids: list[str], texts: list[str], gain: str
) -> None:
    scores = dense.embed_queries(texts) @ dense.corpus.T  # [B, N]
    row_of = {pid: i for i, pid in enumerate(catalog_ids)}
    by_k = {}
    for k in (3, 20, len(catalog_ids)):
        got = RetrievalReward(dense, catalog_ids, k=k, gain=gain).score_answers(texts, samples)
        want = [naive_reward(scores[b], s, row_of, k, gain) for b, s in enumerate(samples)]
        np.testing.assert_allclose(got, want, atol=1e-9)
        by_k[k] = got
    # The small k really pushed pool items out, so the top-k rule was exercised.
    assert (np.abs(by_k[3] - by_k[len(catalog_ids)]) > 1e-6).any()


def test_bm25_reward_equals_from_scratch_ndcg(
    world: World, samples: list[dict], catalog_ids: list[str], texts: list[str]
) -> None:
    bm25 = BM25Retriever(world.catalog["text"].tolist())
    scores = bm25.score(texts)  # [B, N]
    row_of = {pid: i for i, pid in enumerate(catalog_ids)}
    for k in (5, 1000):
        got = RetrievalReward(bm25, catalog_ids, k=k, gain="graded").score_answers(texts, samples)
        want = [naive_reward(scores[b], s, row_of, k, "graded") for b, s in enumerate(samples)]
        np.testing.assert_allclose(got, want, atol=1e-9)


def test_completions_are_scored_on_their_answer(
    dense: DenseRetriever, samples: list[dict], catalog_ids: list[str], texts: list[str]
) -> None:
    reward = RetrievalReward(dense, catalog_ids)
    completions = [f"<think>the shopper wants {t[::-1]}</think>\n<answer> {t} </answer>" for t in texts]
    np.testing.assert_allclose(reward(completions, samples), reward.score_answers(texts, samples), atol=1e-12)


def test_blank_answers_score_zero_without_encoding(
    dense: DenseRetriever, samples: list[dict], catalog_ids: list[str], texts: list[str]
) -> None:
    counting = CountingRetriever(dense)
    reward = RetrievalReward(counting, catalog_ids)
    blank = ["", "   ", "<think>still thinking", "<answer> \n </answer>", "<think>a</think>  "]
    completions = blank + texts[len(blank) :]
    rewards = reward(completions, samples)
    assert rewards.dtype == np.float64 and rewards.shape == (len(samples),)
    np.testing.assert_array_equal(rewards[: len(blank)], 0.0)
    assert len(counting.batches) == 1
    assert sorted(counting.batches[0]) == sorted(set(texts[len(blank) :]))


def test_identical_queries_are_encoded_once(dense: DenseRetriever, samples: list[dict], catalog_ids: list[str]) -> None:
    counting = CountingRetriever(dense)
    reward = RetrievalReward(counting, catalog_ids)
    group = [samples[0]] * 8 + [samples[1]] * 8  # G = 8 samples of two prompts
    texts = ["walnut desk"] * 5 + ["oak chair"] * 3 + ["walnut desk"] * 8
    rewards = reward.score_answers(texts, group)
    assert counting.batches == [["walnut desk", "oak chair"]]
    np.testing.assert_array_equal(rewards[:5], rewards[0])
    np.testing.assert_array_equal(rewards[8:], rewards[8])


def test_unknown_pool_id_raises_when_pools_are_loaded(
    dense: DenseRetriever, samples: list[dict], catalog_ids: list[str]
) -> None:
    reward = RetrievalReward(dense, catalog_ids)
    broken = dict(samples[3], candidate_pool=[*samples[3]["candidate_pool"][:-1], "NOT-A-PRODUCT"])
    with pytest.raises(ValueError, match=r"NOT-A-PRODUCT.*|.*NOT-A-PRODUCT") as err:
        reward.load_pools([samples[0], broken])
    assert str(samples[3]["query_id"]) in str(err.value) and "sample 1" in str(err.value)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"pool_relevance": [3, 1]}, "pool_relevance"),
        ({"pool_relevance": None}, "pool_relevance"),
        ({"candidate_pool": "P1"}, "must be a list"),
    ],
)
def test_malformed_pool_raises(
    dense: DenseRetriever, samples: list[dict], catalog_ids: list[str], change: dict, match: str
) -> None:
    reward = RetrievalReward(dense, catalog_ids)
    sample = {key: value for key, value in {**samples[0], **change}.items() if value is not None}
    with pytest.raises(ValueError, match=match):
        reward.load_pools([sample])


def test_constructor_rejects_bad_arguments(dense: DenseRetriever, catalog_ids: list[str]) -> None:
    with pytest.raises(ValueError, match="gain"):
        RetrievalReward(dense, catalog_ids, gain="linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        RetrievalReward(dense, catalog_ids, k=0)
    with pytest.raises(ValueError, match="catalog_ids has"):
        RetrievalReward(dense, catalog_ids[:-1])
    with pytest.raises(ValueError, match="unique"):
        RetrievalReward(dense, [*catalog_ids[:-1], catalog_ids[0]])


def test_plan_keeps_the_first_query_of_each_text() -> None:
    plan = plan_queries(["oak desk", "", "lamp", "oak desk", " ", "lamp", "rug"], np.array([0, 0, 0, 1, 0, 0, 1]), 2)
    assert plan.texts == ["oak desk", "lamp", "rug"]
    assert plan.text_query.tolist() == [0, 2, 6]
    assert plan.query_pair.tolist()[1] == plan.query_pair.tolist()[4] == -1
    assert len(plan.pair_text) == 4  # "oak desk" is judged on two pools


def test_score_embedded_equals_score_pairs(dense: DenseRetriever, samples: list[dict], catalog_ids: list[str]) -> None:
    reward = RetrievalReward(dense, catalog_ids, k=20, gain="graded")
    texts = query_variants(samples)
    pools = reward.load_pools(samples)
    plan = plan_queries(texts, pools.of_sample, len(pools.items))
    want, _ = reward.score_pairs(plan, pools)
    np.testing.assert_array_equal(reward.score_embedded(dense.embed_queries(plan.texts), plan, pools), want)
    with pytest.raises(ValueError, match="embeddings"):
        reward.score_embedded(dense.embed_queries(plan.texts[:-1]), plan, pools)


def test_score_embedded_needs_a_dense_retriever(world: World, samples: list[dict], catalog_ids: list[str]) -> None:
    reward = RetrievalReward(BM25Retriever(world.catalog["text"].tolist()), catalog_ids)
    pools = reward.load_pools(samples[:1])
    plan = plan_queries(["oak desk"], pools.of_sample, len(pools.items))
    with pytest.raises(TypeError, match="dense"):
        reward.score_embedded(np.zeros((1, 384), dtype=np.float32), plan, pools)


def test_non_finite_scores_never_reach_the_trainer(
    dense: DenseRetriever, samples: list[dict], catalog_ids: list[str]
) -> None:
    class NanRetriever(CountingRetriever):
        def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
            return np.full((len(texts), self.corpus.shape[1]), np.nan, dtype=np.float32)

    with pytest.raises((FloatingPointError, ValueError)):
        RetrievalReward(NanRetriever(dense), catalog_ids).score_answers(["desk"], samples[:1])


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("<think>x</think><answer>oak desk</answer>", "oak desk"),
        ("<think>say <answer>no</answer></think>\n<answer>\n oak desk \n</answer>", "oak desk"),
        ("<answer>oak desk", "oak desk"),
        ("<ANSWER>oak desk</ANSWER> trailing", "oak desk"),
        ("<think>plan</think>  oak desk  ", "oak desk"),
        ("  oak desk", "oak desk"),
        ("<think>never closed oak desk", ""),
        ("<answer></answer>", ""),
        ("", ""),
        ("<think>été</think><answer>café crème ☕</answer>", "café crème ☕"),
    ],
)
def test_extract_answer(completion: str, answer: str) -> None:
    text, offset = extract_answer(completion)
    assert text == answer
    assert 0 <= offset <= len(completion)
    assert completion[offset : offset + len(text)] == text


def test_lookup_rows_finds_values_per_query() -> None:
    ranked = np.array([[4, 2, -1], [2, 9, 4]])
    keys = np.array([[2, 4, -1], [9, -1, -1]])
    values = np.array([[1.5, 2.5, 7.0], [3.0, 7.0, 7.0]])
    np.testing.assert_array_equal(lookup_rows(ranked, keys, values), [[2.5, 1.5, 0.0], [0.0, 3.0, 0.0]])


def trec_docno(row: int, n_items: int) -> str:
    # trec_eval breaks score ties by docno descending; ours go to the lower row first.
    return f"d{n_items - 1 - row:07d}"


def pytrec_metrics(scores: np.ndarray, samples: list[dict], row_of: dict[str, int], gain: str) -> dict[str, np.ndarray]:
    import pytrec_eval

    n_items = scores.shape[1]
    depth = max(METRIC_CUTOFFS)
    ranked = np.lexsort((np.broadcast_to(np.arange(n_items), scores.shape), -scores), axis=1)[:, :depth]
    qrels_targets, qrels_gains, runs = {}, {}, {}
    for b, s in enumerate(samples):
        q = f"q{b}"
        qrels_targets[q] = {trec_docno(row_of[p], n_items): 1 for p in s["answer"]}
        qrels_gains[q] = {
            trec_docno(row_of[p], n_items): int(ESCI_GAIN[gain](g))
            for p, g in zip(s["candidate_pool"], s["pool_relevance"])
        }
        runs[q] = [(trec_docno(int(r), n_items), float(scores[b, r])) for r in ranked[b]]
    cuts = ",".join(map(str, METRIC_CUTOFFS))
    full_runs = {q: dict(run) for q, run in runs.items()}
    at_k = pytrec_eval.RelevanceEvaluator(qrels_targets, {f"recall.{cuts}", f"map_cut.{cuts}"}).evaluate(full_runs)
    ndcg = pytrec_eval.RelevanceEvaluator(qrels_gains, {f"ndcg_cut.{cuts}"}).evaluate(full_runs)
    out = {}
    for k in METRIC_CUTOFFS:
        rr = pytrec_eval.RelevanceEvaluator(qrels_targets, {"recip_rank"}).evaluate(
            {q: dict(run[:k]) for q, run in runs.items()}
        )
        out[f"mrr@{k}"] = np.array([rr[f"q{b}"]["recip_rank"] for b in range(len(samples))])
        out[f"recall@{k}"] = np.array([at_k[f"q{b}"][f"recall_{k}"] for b in range(len(samples))])
        out[f"ap@{k}"] = np.array([at_k[f"q{b}"][f"map_cut_{k}"] for b in range(len(samples))])
        out[f"ndcg@{k}"] = np.array([ndcg[f"q{b}"][f"ndcg_cut_{k}"] for b in range(len(samples))])
    return out


@pytest.mark.parametrize(("kind", "gain"), [("dense", "binary"), ("dense", "graded"), ("rounded", "exp")])
def test_metrics_match_pytrec_eval(
    dense: DenseRetriever, samples: list[dict], catalog_ids: list[str], texts: list[str], kind: str, gain: str
) -> None:
    retriever = dense if kind == "dense" else RoundedRetriever(dense)
    scores = retriever.score(texts)  # [B, N] float32
    if kind == "rounded":
        assert len(np.unique(scores[0])) < scores.shape[1] // 10, "the rounded scores must tie often"
    got = RetrievalReward(retriever, catalog_ids, gain=gain).metrics(texts, samples)
    want = pytrec_metrics(scores, samples, {pid: i for i, pid in enumerate(catalog_ids)}, gain)
    for name, values in want.items():
        np.testing.assert_allclose(got[name], values, atol=1e-6, err_msg=name)


def test_pool_metrics_follow_the_filtered_ranking(
    dense: DenseRetriever, samples: list[dict], catalog_ids: list[str], texts: list[str]
) -> None:
    reward = RetrievalReward(dense, catalog_ids, k=20, gain="graded")
    got = reward.metrics(texts, samples)
    np.testing.assert_allclose(got["ndcg@pool"], reward.score_answers(texts, samples), atol=1e-9)
    scores = dense.score(texts)
    row_of = {pid: i for i, pid in enumerate(catalog_ids)}
    for b, s in enumerate(samples):
        pool = {row_of[p] for p in s["candidate_pool"]}
        top = sorted(range(len(catalog_ids)), key=lambda row: (-float(scores[b, row]), row))[:20]
        kept = [row for row in top if row in pool]
        targets = {row_of[p] for p in s["answer"]}
        hit_ranks = [i + 1 for i, row in enumerate(kept) if row in targets]
        assert got["recall@pool"][b] == pytest.approx(len(hit_ranks) / len(targets))
        assert got["mrr@pool"][b] == pytest.approx(1 / hit_ranks[0] if hit_ranks else 0.0)
        ap = sum((n + 1) / rank for n, rank in enumerate(hit_ranks)) / len(targets)
        assert got["ap@pool"][b] == pytest.approx(ap)


def test_metrics_of_blank_answers_are_zero(
    dense: DenseRetriever, samples: list[dict], catalog_ids: list[str], texts: list[str]
) -> None:
    got = RetrievalReward(dense, catalog_ids).metrics(["", *texts[1:]], samples)
    assert all(values[0] == 0.0 and values.shape == (len(samples),) for values in got.values())
    assert got["ndcg@1000"][1:].max() > 0
