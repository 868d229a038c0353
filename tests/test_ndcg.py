"""NDCG@k against pytrec_eval, and NDCG@pool (fused and from scores) against the reference."""

from __future__ import annotations

import numpy as np
import pytest

import ospo_fast as of
from ospo_fast.ops import reference as ref

pytrec_eval = pytest.importorskip("pytrec_eval")


def _doc_name(i: int, n_items: int) -> str:
    # trec_eval breaks score ties by document name, descending: a lower index must
    # sort later in the name order so that it comes first, as in ospo_fast.
    return f"d{n_items - i:07d}"


@pytest.mark.parametrize("k", [1, 3, 10, 20])
@pytest.mark.parametrize("with_ties", [False, True])
def test_ndcg_at_k_matches_trec_eval(k: int, with_ties: bool) -> None:
    rng = np.random.default_rng(k + 10 * with_ties)
    n_queries, n_items = 25, 40
    scores = rng.standard_normal((n_queries, n_items))
    if with_ties:
        scores = np.round(scores * 2) / 2  # many exact ties
    relevance = rng.integers(0, 4, (n_queries, n_items)).astype(np.float64)
    relevance[0] = 0  # IDCG 0
    ours = of.ndcg_at_k(scores, relevance, k)
    qrels = {
        f"q{q}": {_doc_name(i, n_items): int(relevance[q, i]) for i in range(n_items)} for q in range(n_queries)
    }
    run = {f"q{q}": {_doc_name(i, n_items): float(scores[q, i]) for i in range(n_items)} for q in range(n_queries)}
    measure = f"ndcg_cut_{k}"
    theirs = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{k}"}).evaluate(run)
    for q in range(n_queries):
        assert ours[q] == pytest.approx(theirs[f"q{q}"][measure], abs=1e-6)
    np.testing.assert_allclose(ours, ref.ndcg_at_k(scores, relevance, k), atol=1e-12)


def test_ndcg_exp_gain_and_hand_example() -> None:
    scores = np.array([[0.9, 0.5, 0.5, 0.1]])
    relevance = np.array([[0.0, 2.0, 3.0, 1.0]])
    # ranking: 0, 1 (tie with 2, lower index first), 2, 3
    dcg = 2 / np.log2(3) + 3 / np.log2(4) + 1 / np.log2(5)
    idcg = 3 + 2 / np.log2(3) + 1 / np.log2(4)
    assert of.ndcg_at_k(scores, relevance, 10)[0] == pytest.approx(dcg / idcg)
    dcg_exp = 3 / np.log2(3) + 7 / np.log2(4) + 1 / np.log2(5)
    idcg_exp = 7 + 3 / np.log2(3) + 1 / np.log2(4)
    assert of.ndcg_at_k(scores, relevance, 10, gain="exp")[0] == pytest.approx(dcg_exp / idcg_exp)


def _independent_pool_ndcg(scores: np.ndarray, pool: list[int], gains: dict[int, float], k: int) -> float:
    """Rank everything, keep the top k, filter to the pool, DCG; written without the core's tricks."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    kept = [i for i in order if i in set(pool)]
    dcg = sum(gains[i] / np.log2(p + 2) for p, i in enumerate(kept))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / np.log2(p + 2) for p, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


@pytest.mark.parametrize("k", [1, 4, 30, 1000])
@pytest.mark.parametrize("gain", ["linear", "exp"])
def test_pool_ndcg_matches_an_independent_computation(k: int, gain: str) -> None:
    rng = np.random.default_rng(k)
    n_queries, n_items, pool_size = 12, 300, 25
    scores = rng.standard_normal((n_queries, n_items)).astype(np.float32)
    pools = np.stack([rng.choice(n_items, pool_size, replace=False) for _ in range(n_queries)])
    pools[3, 20:] = -1
    relevance = rng.integers(0, 4, (n_queries, pool_size)).astype(np.float64)
    ours = of.pool_ndcg(scores, pools, relevance, k, gain)
    np.testing.assert_allclose(ours, ref.pool_ndcg(scores, pools, relevance, k, gain), atol=1e-12)
    for q in range(n_queries):
        valid = pools[q] >= 0
        gains = dict(zip(pools[q][valid].tolist(), ref.gain_of(relevance[q][valid], gain).tolist()))
        assert ours[q] == pytest.approx(_independent_pool_ndcg(scores[q], pools[q][valid].tolist(), gains, k), abs=1e-12)


def _dyadic(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Multiples of 1/4 in [-1, 1]: every dot product is exact in float32, so ties are real.
    return (rng.integers(-4, 5, shape) / 4).astype(np.float32)


@pytest.mark.parametrize(
    ("n_queries", "n_items", "dim", "pool_size", "n_pools"),
    [(1, 1, 1, 1, 1), (1, 5, 1, 1, 1), (7, 1030, 3, 9, 3), (40, 2500, 16, 100, 5), (3, 50, 8, 50, 2)],
)
@pytest.mark.parametrize("k", [1, 3, 17, 1000])
@pytest.mark.parametrize("cpu_kernel", ["auto", "tiled"])
def test_pool_ndcg_dense_matches_reference_with_ties(
    n_queries: int, n_items: int, dim: int, pool_size: int, n_pools: int, k: int, cpu_kernel: str
) -> None:
    rng = np.random.default_rng(n_items + k)
    corpus = _dyadic(rng, (n_items, dim))
    queries = _dyadic(rng, (n_queries, dim))
    pools = np.stack([rng.choice(n_items, pool_size, replace=False) for _ in range(n_pools)])
    if pool_size > 2:
        pools[0, -2:] = -1
    relevance = rng.integers(0, 4, pools.shape).astype(np.float64)
    owner = rng.integers(0, n_pools, n_queries)
    got = of.pool_ndcg_dense(queries, corpus, pools, relevance, owner, k, cpu_kernel=cpu_kernel)  # type: ignore[arg-type]
    np.testing.assert_allclose(got, ref.pool_ndcg_dense(queries, corpus, pools, relevance, owner, k), atol=1e-12)


def test_pool_ndcg_dense_random_embeddings_across_many_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    from ospo_fast.ops import ndcg as ndcg_module

    monkeypatch.setattr(ndcg_module, "_TILE_BYTES", 4096)  # force many corpus tiles
    rng = np.random.default_rng(5)
    corpus = rng.standard_normal((5000, 32)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = corpus[rng.choice(5000, 30)] + 0.3 * rng.standard_normal((30, 32)).astype(np.float32)
    pools = np.stack([rng.choice(5000, 100, replace=False) for _ in range(4)])
    relevance = (rng.random(pools.shape) < 0.1).astype(np.float64)
    owner = rng.integers(0, 4, 30)
    for k in (10, 1000):
        got = of.pool_ndcg_dense(queries, corpus, pools, relevance, owner, k, cpu_kernel="tiled")
        np.testing.assert_allclose(got, ref.pool_ndcg_dense(queries, corpus, pools, relevance, owner, k), atol=1e-12)


def test_pool_item_is_never_its_own_competitor() -> None:
    corpus = np.eye(3, dtype=np.float32)
    queries = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    pools = np.array([[0, 2]])
    relevance = np.array([[1.0, 0.0]])
    assert of.pool_ndcg_dense(queries, corpus, pools, relevance, [0], k=1)[0] == 1.0
    assert of.pool_ndcg_dense(queries, corpus, np.array([[2, 0]]), np.array([[0.0, 1.0]]), [0], k=1)[0] == 1.0


def test_empty_pool_and_zero_relevance_give_zero() -> None:
    corpus = np.eye(4, dtype=np.float32)
    queries = np.ones((2, 4), dtype=np.float32)
    pools = np.array([[-1, -1], [0, 1]])
    relevance = np.array([[1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(of.pool_ndcg_dense(queries, corpus, pools, relevance, [0, 1], 10), [0.0, 0.0])
