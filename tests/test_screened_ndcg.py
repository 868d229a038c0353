"""The screened CPU kernel of pool_ndcg_dense (bf16 screen, exact fp64 rescoring) against its twin."""

from __future__ import annotations

import numpy as np
import pytest

import ospo_fast as of
from ospo_fast.ops import ndcg
from ospo_fast.ops import reference as ref

needs_screen = pytest.mark.skipif(not of.screen_supported(), reason="this CPU lacks AVX512-BF16")


def _pools(rng: np.random.Generator, n_items: int, pool_size: int, n_pools: int) -> tuple[np.ndarray, np.ndarray]:
    pools = np.stack([rng.choice(n_items, min(pool_size, n_items), replace=False) for _ in range(n_pools)])
    if pools.shape[1] > 2:
        pools[0, -2:] = -1
    relevance = rng.integers(0, 4, pools.shape).astype(np.float64)
    return pools, relevance


def _check(queries: np.ndarray, corpus: np.ndarray, pools: np.ndarray, relevance: np.ndarray, owner: np.ndarray,
           k: int, gain: str = "linear") -> np.ndarray:
    got = of.pool_ndcg_dense(queries, corpus, pools, relevance, owner, k, gain, cpu_kernel="screened")
    want = ref.pool_ndcg_dense(queries, corpus, pools, relevance, owner, k, gain)
    np.testing.assert_allclose(got, want, atol=1e-12)
    return got


@needs_screen
@pytest.mark.parametrize(
    ("n_queries", "n_items", "dim", "pool_size"),
    # C = 1, N = 1, d = 1, odd d, N off the 32-row tile, C across several 64-query blocks
    [(1, 1, 1, 1), (1, 5, 1, 1), (3, 33, 3, 9), (65, 1030, 7, 40), (130, 2500, 16, 100), (9, 70, 385, 20)],
)
@pytest.mark.parametrize("k", [1, 3, 17, 1000])
def test_matches_reference_on_awkward_shapes(n_queries: int, n_items: int, dim: int, pool_size: int, k: int) -> None:
    rng = np.random.default_rng(n_items * 7 + k)
    corpus = rng.standard_normal((n_items, dim)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = corpus[rng.integers(0, n_items, n_queries)] + 0.3 * rng.standard_normal((n_queries, dim)).astype(
        np.float32
    )
    pools, relevance = _pools(rng, n_items, pool_size, 3)
    _check(queries, corpus, pools, relevance, rng.integers(0, 3, n_queries), k, "exp" if k == 17 else "linear")


@needs_screen
def test_queries_spanning_several_screen_blocks() -> None:
    # 20,000 rows: a block screens ~200 queries, so 450 queries take three, and the
    # level guessed from one block's last query never leaks into the next.
    rng = np.random.default_rng(8)
    corpus = rng.standard_normal((20_000, 8)).astype(np.float32)
    queries = rng.standard_normal((450, 8)).astype(np.float32) * rng.uniform(0.1, 3.0, (450, 1)).astype(np.float32)
    pools, relevance = _pools(rng, 20_000, 100, 6)
    _check(queries, corpus, pools, relevance, rng.integers(0, 6, 450), 1000)


@needs_screen
@pytest.mark.parametrize("k", [1, 5, 40, 400])
def test_exact_ties_follow_the_lower_row_first(k: int) -> None:
    # Multiples of 1/4: every dot product is exact, and duplicated rows tie exactly.
    rng = np.random.default_rng(k)
    base = (rng.integers(-4, 5, (300, 6)) / 4).astype(np.float32)
    corpus = np.concatenate([base, base[::-1], base[:50]])  # every row has twins elsewhere
    queries = (rng.integers(-4, 5, (70, 6)) / 4).astype(np.float32)
    pools, relevance = _pools(rng, len(corpus), 60, 4)
    _check(queries, corpus, pools, relevance, rng.integers(0, 4, 70), k)


@needs_screen
def test_scores_crowded_inside_the_screen_bound_are_rescored_exactly() -> None:
    # 3,000 near-copies of one direction: their scores differ by far less than the
    # bf16 bound, so almost every row is settled by exact rescoring.
    rng = np.random.default_rng(3)
    direction = rng.standard_normal(64).astype(np.float32)
    corpus = direction + 1e-4 * rng.standard_normal((3000, 64)).astype(np.float32)
    queries = direction + 1e-3 * rng.standard_normal((20, 64)).astype(np.float32)
    pools, relevance = _pools(rng, 3000, 100, 2)
    for k in (10, 500, 2999):
        _check(queries, corpus, pools, relevance, rng.integers(0, 2, 20), k)


@needs_screen
def test_pool_item_is_never_its_own_competitor() -> None:
    corpus = np.eye(3, dtype=np.float32)
    queries = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    assert _check(queries, corpus, np.array([[0, 2]]), np.array([[1.0, 0.0]]), np.array([0]), 1)[0] == 1.0
    assert _check(queries, corpus, np.array([[2, 0]]), np.array([[0.0, 1.0]]), np.array([0]), 1)[0] == 1.0


@needs_screen
def test_screened_and_tiled_kernels_agree_and_prepared_corpus_is_reused() -> None:
    rng = np.random.default_rng(11)
    corpus = rng.standard_normal((4000, 48)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = corpus[rng.choice(4000, 90)] + 0.5 * rng.standard_normal((90, 48)).astype(np.float32)
    pools, relevance = _pools(rng, 4000, 100, 5)
    owner = rng.integers(0, 5, 90)
    prepared = of.prepare_corpus(corpus)
    assert prepared.screened is not None and not prepared.rows.flags.writeable
    screened = of.pool_ndcg_dense(queries, prepared, pools, relevance, owner, 200)
    again = of.pool_ndcg_dense(queries, prepared, pools, relevance, owner, 200, cpu_kernel="screened")
    tiled = of.pool_ndcg_dense(queries, corpus, pools, relevance, owner, 200, cpu_kernel="tiled")
    np.testing.assert_array_equal(screened, again)
    np.testing.assert_allclose(screened, tiled, atol=1e-12)


def test_bad_cpu_kernel_and_unsupported_screen_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = np.eye(3, dtype=np.float32)
    args = (corpus[:1], corpus, np.array([[0, 1]]), np.array([[1.0, 0.0]]), np.array([0]), 1)
    with pytest.raises(ValueError, match="cpu_kernel"):
        of.pool_ndcg_dense(*args, cpu_kernel="fast")  # type: ignore[arg-type]
    monkeypatch.setattr(ndcg, "screen_supported", lambda: False)
    with pytest.raises(RuntimeError, match="AVX512-BF16"):
        of.pool_ndcg_dense(*args, cpu_kernel="screened")
    np.testing.assert_array_equal(of.pool_ndcg_dense(*args), [1.0])  # "auto" falls back to the tiled kernel


@needs_screen
def test_screened_corpus_rejects_bad_input() -> None:
    from ospo_fast.ops.native import core

    with pytest.raises(ValueError, match="corpus must be finite"):
        core.ScreenedCorpus(np.array([[np.nan, 1.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="too large for bf16"):
        core.ScreenedCorpus(np.array([[3.4e38, 1.0]], dtype=np.float32))
    screened = core.ScreenedCorpus(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="queries must have shape"):
        screened.pool_ndcg(np.zeros((1, 2), np.float32), np.array([[0]]), np.array([[1.0]]), 1, "linear")
    with pytest.raises(ValueError, match="pool_items row 0 holds 3"):
        screened.pool_ndcg(np.zeros((1, 3), np.float32), np.array([[3]]), np.array([[1.0]]), 1, "linear")
