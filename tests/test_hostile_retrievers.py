"""Junk queries for every retriever (issue 13): a query that matches nothing, or whose
embedding ties every catalog row, scores as the empty query does (0); any other junk
scores its from-scratch NDCG@pool; nothing junk can say fails the reward batch."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st

from hostile_fuzz import budgets, fuzz
from ospo_fast.data import World, WorldConfig, generate_world
from ospo_fast.reward import RetrievalReward
from ospo_fast.reward.retrievers import BM25Retriever, build_retriever

K = 100  # small enough that the top-k cut matters in a 1,000-item catalog


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(WorldConfig(n_products=1000, n_train=20, n_test=5, seed=0))


@pytest.fixture(scope="module")
def samples(world: World) -> list[dict]:
    return world.queries.to_dict("records")


@pytest.fixture(scope="module")
def rewards(world: World) -> Iterator[dict[str, RetrievalReward]]:
    import torch

    texts, ids = world.catalog["text"].tolist(), world.catalog["product_id"].tolist()
    built = {name: RetrievalReward(build_retriever(name, texts), ids, k=K, gain="graded")
             for name in ("bm25", "minilm", "paraphrase-minilm-l3")}
    # One intra-op thread for the small query batches here: on a 2-core runner they run faster so.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield built
    torch.set_num_threads(threads)


def from_scratch(scores: np.ndarray, sample: dict, row_of: dict[str, int]) -> float:
    """Spec §2 on a full score row, with the tie rule; a row tied everywhere ranks nothing."""
    if scores.max() == scores.min():
        return 0.0
    ranked = sorted(range(len(scores)), key=lambda row: (-float(scores[row]), row))[:K]
    gain_of = {row_of[p]: float(g) for p, g in zip(sample["candidate_pool"], sample["pool_relevance"])}
    kept = [gain_of[row] for row in ranked if row in gain_of]
    dcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(kept))
    ideal = sum(g / math.log2(rank + 2) for rank, g in enumerate(sorted(gain_of.values(), reverse=True)[:K]))
    return dcg / ideal if ideal > 0 else 0.0


def score_rows(reward: RetrievalReward, texts: Sequence[str]) -> np.ndarray:
    """float64 [Q, N] scores from scratch: BM25's own, or exact inner products of the embeddings."""
    retriever = reward.retriever
    if isinstance(retriever, BM25Retriever):
        return retriever.score(texts).astype(np.float64)
    return retriever.embed_queries(texts).astype(np.float64) @ retriever.corpus.astype(np.float64).T


STOPWORDS = ("the", "and", "of", "a", "to", "is", "it", "with")
SPECIAL_TOKENS = ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]", "<answer>", "</think>", "<|endoftext|>")
junk_fragments = st.one_of(
    st.text(st.characters(categories=["P", "S"]), min_size=1, max_size=8),  # punctuation, symbols, emoji
    st.text(st.characters(categories=["Cc", "Cf", "Zs", "Mn"]), min_size=1, max_size=4),  # control, zero-width
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2),  # lone surrogates
    st.text(st.characters(categories=["Lo"]), min_size=1, max_size=6),  # CJK and other scripts
    st.text(st.sampled_from("qxzjvkw"), min_size=3, max_size=9),  # made-up words
    st.sampled_from(STOPWORDS), st.sampled_from(SPECIAL_TOKENS),
    st.integers(0, 9).map(lambda n: "zzz " * 300 if n == 0 else "zzz"),  # now and then past every max length
)
junk_queries = st.lists(junk_fragments, min_size=1, max_size=4).flatmap(
    lambda parts: st.sampled_from([" ", "", "\n", "\t"]).map(lambda sep: sep.join(parts)))


def junk_problem(rewards: dict[str, RetrievalReward], samples: list[dict], junk: list[str]) -> str | None:
    rows = [samples[i % len(samples)] for i in range(len(junk))]
    completions = [f"<think>hmm</think><answer>{text}</answer>" for text in junk]
    for name, reward in rewards.items():
        got = reward(completions, rows)
        if got.dtype != np.float64 or not np.isfinite(got).all() or ((got < 0) | (got > 1)).any():
            return f"{name}: rewards {got} for {junk!r}"
        answers = [text.strip() for text in junk]
        real = [i for i, a in enumerate(answers) if a]
        scores = score_rows(reward, [answers[i] for i in real]) if real else np.zeros((0, 1))
        want = np.zeros(len(junk))
        for row, i in enumerate(real):
            want[i] = from_scratch(scores[row], rows[i], reward.row_of)
        if not np.allclose(got, want, atol=1e-9):
            return f"{name}: rewards {got} for {junk!r}, from scratch {want}"
        if name in METRICS_CHECKED:
            metrics = reward.metrics(completions, rows)
            tied = [i for row, i in enumerate(real) if scores[row].max() == scores[row].min()]
            if any(not np.isfinite(v).all() or (v[tied] != 0).any() for v in metrics.values()):
                return f"{name}: metrics of {junk!r} are not finite, or not 0 for the tied queries {tied}"
    return None


# metrics() embeds again; the torch MiniLM's share of that would double this suite's time.
METRICS_CHECKED = ("bm25", "paraphrase-minilm-l3")


@pytest.mark.parametrize("examples", budgets(25))
def test_junk_queries_score_from_scratch_and_ties_score_zero(
    rewards: dict[str, RetrievalReward], samples: list[dict], examples: int
) -> None:
    fuzz(st.lists(junk_queries, min_size=1, max_size=4), lambda junk: junk_problem(rewards, samples, junk), examples)


def test_bm25_junk_that_matches_no_catalog_word_scores_zero(rewards: dict[str, RetrievalReward],
                                                              samples: list[dict]) -> None:
    """The issue's reward hack: junk tied every BM25 score and scored up to 0.79 on the lowest rows."""
    junk = ["qzxv", "!!! ???", "the of and", "🛋️🛋️", "\ud800 \udfff", "qzxv " * 50]
    bm25 = rewards["bm25"]
    assert (bm25.score_answers(junk, samples[: len(junk)]) == 0).all()
    at_every_k = RetrievalReward(bm25.retriever, list(bm25.row_of), k=len(bm25.row_of), gain="graded")
    assert (at_every_k.score_answers(junk, samples[: len(junk)]) == 0).all()


class FixedRetriever:
    """A dense retriever over given corpus rows, embedding queries by a given table."""

    def __init__(self, corpus: np.ndarray, embeddings: dict[str, np.ndarray]) -> None:
        self.name, self.corpus, self.embeddings = "fixed", corpus.astype(np.float32), embeddings
        self.n_items = len(corpus)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.embeddings[t] for t in texts]).astype(np.float32).reshape(len(texts), -1)


@st.composite
def degenerate_catalogs(draw: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """(corpus [N, d], a query [d], whether it ties every row): catalogs whose rows differ in
    only some directions, queries along or across them, and zero queries."""
    n_items, dim = draw(st.integers(2, 8)), draw(st.integers(1, 5))
    rank = draw(st.integers(0, min(dim, n_items - 1)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]  # orthonormal columns
    spread, across = basis[:, :rank], basis[:, rank:]
    corpus = rng.normal(size=dim) + rng.normal(size=(n_items, rank)) @ spread.T
    kind = draw(st.sampled_from(["zero", "across", "along"]))
    if kind == "zero" or (kind == "across" and across.shape[1] == 0):
        return corpus, np.zeros(dim), True
    if kind == "across":
        return corpus, across @ rng.normal(size=across.shape[1]), True
    if rank == 0:
        return corpus, rng.normal(size=dim), True  # every row is the same vector
    return corpus, spread @ rng.normal(size=rank) + 0.1 * (across @ np.ones(across.shape[1])), False


def degenerate_problem(case: tuple[np.ndarray, np.ndarray, bool]) -> str | None:
    corpus, query, ties = case
    ids = [f"p{i}" for i in range(len(corpus))]
    sample = {"candidate_pool": ids[: max(1, len(ids) // 2)], "pool_relevance": [3] * max(1, len(ids) // 2)}
    reward = RetrievalReward(FixedRetriever(corpus, {"q": query}), ids, k=len(ids))
    got = float(reward.score_answers(["q"], [sample])[0])
    if ties:
        return None if got == 0.0 else f"a query tying every row scored {got}"
    scores = query.astype(np.float32).astype(np.float64) @ corpus.astype(np.float32).astype(np.float64).T
    want = from_scratch(scores, sample, reward.row_of) if len(ids) <= K else got
    return None if abs(got - want) < 1e-9 else f"a query along the catalog scored {got}, from scratch {want}"


@pytest.mark.parametrize("examples", budgets(60))
def test_dense_queries_that_tie_every_row_score_zero(examples: int) -> None:
    fuzz(degenerate_catalogs(), degenerate_problem, examples)


def test_metrics_of_an_empty_pool(rewards: dict[str, RetrievalReward], samples: list[dict]) -> None:
    """@pool metrics of an empty pool are 0 (@k metrics judge the sample's answers, which it still has)."""
    empty = dict(samples[0], candidate_pool=[], pool_relevance=[])
    completions = ["<answer>oak desk</answer>", "<answer>qzxv</answer>"]
    for name, reward in rewards.items():
        metrics = reward.metrics(completions, [empty, samples[1]])
        assert all(np.isfinite(v).all() for v in metrics.values()), name
        assert all(v[0] == 0 for key, v in metrics.items() if key.endswith("@pool")), name
