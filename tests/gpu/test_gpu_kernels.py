"""The CUDA and Triton kernels on a real GPU, against the reference and the CPU core.

Skipped without a CUDA device; benchmarks/gpu_check.sh runs them on a lent GPU after
building the package with its CUDA kernels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ospo_fast
from ospo_fast.ops import ndcg_gpu, owen_gpu, packing, reference

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

MODES = ("prop", "rank", "hybrid")


def _step(seed: int, n_responses: int = 64, n_tokens: int = 300, max_segments: int = 20):
    """A realistic step: ∅ + windows <= 8 sampled to 96, answers inside longer completions."""
    rng = np.random.default_rng(seed)
    n_segments = rng.integers(0, max_segments + 1, size=n_responses)
    offsets, coalitions = reference.coalition_plan(n_segments, 8, 96, seed=seed)
    values = rng.random(len(coalitions)).astype(np.float32)
    values[coalitions[:, 0] == coalitions[:, 1]] = 0.0
    spans, token_offsets = [], np.zeros((n_responses, n_tokens, 2), dtype=np.int64)
    token_mask = np.zeros((n_responses, n_tokens), dtype=bool)
    answer_mask = np.zeros((n_responses, n_tokens), dtype=bool)
    for b, n in enumerate(n_segments):
        spans.append(np.sort(rng.choice(np.arange(200, 1000), size=2 * n, replace=False)).reshape(-1, 2))
        length = int(rng.integers(1, n_tokens + 1))
        edges = np.sort(rng.integers(0, 1200, size=length + 1))
        token_offsets[b, :length] = np.stack([edges[:-1], edges[1:]], axis=1)
        token_mask[b, :length] = True
        answer_mask[b, :length] = (edges[:-1] >= 150) & (edges[1:] <= 1050)
    advantages = rng.normal(size=n_responses).astype(np.float32)
    return (n_segments, offsets, coalitions, values, np.concatenate(spans).astype(np.int64), token_offsets,
            token_mask, answer_mask, advantages)


def _cuda(args):
    return tuple(torch.from_numpy(np.asarray(a)).cuda() for a in args)


def _assert_close_to(got: torch.Tensor, want: np.ndarray, advantages: np.ndarray) -> None:
    assert got.is_cuda and got.dtype == torch.float32
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-5, atol=1e-6 * float(np.abs(advantages).max()))


@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("invert_negative", [False, True])
def test_owen_advantages_match_reference_and_cpu_core(backend, mode, invert_negative):
    args = _step(seed=MODES.index(mode) + 10 * invert_negative)
    want = reference.token_advantages_batch(*args, mode, invert_negative=invert_negative)
    with_core = ospo_fast.token_advantages_batch(*args, mode, invert_negative=invert_negative)
    got = ospo_fast.token_advantages_batch(*_cuda(args), mode, invert_negative=invert_negative, backend=backend)
    _assert_close_to(got, want, args[8])
    _assert_close_to(got, with_core, args[8])


def test_cuda_and_triton_owen_kernels_agree():
    args = _cuda(_step(seed=99))
    for mode in MODES:
        a, phi_a = ospo_fast.token_advantages_batch(*args, mode, backend="cuda", return_phi=True)
        b, phi_b = ospo_fast.token_advantages_batch(*args, mode, backend="triton", return_phi=True)
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(phi_a, phi_b, rtol=1e-9, atol=1e-12)


def test_owen_kernel_in_passes_matches_one_pass(monkeypatch):
    args = _cuda(_step(seed=5))
    whole = ospo_fast.token_advantages_batch(*args, "rank", backend="cuda")
    monkeypatch.setattr(owen_gpu, "free_memory", lambda device: 200_000)  # a few responses per pass
    torch.testing.assert_close(ospo_fast.token_advantages_batch(*args, "rank", backend="cuda"), whole, rtol=0, atol=0)


def _retrieval(seed: int, n_queries: int, n_corpus: int, dim: int, dyadic: bool):
    rng = np.random.default_rng(seed)
    if dyadic:  # multiples of 1/8: exact float32 dot products, many exact ties
        queries = rng.integers(-8, 9, size=(n_queries, dim)).astype(np.float32) / 8
        corpus = rng.integers(-8, 9, size=(n_corpus, dim)).astype(np.float32) / 8
    else:
        queries = rng.normal(size=(n_queries, dim)).astype(np.float32)
        corpus = rng.normal(size=(n_corpus, dim)).astype(np.float32)
    n_pools, pool_size = 16, 100
    items = np.stack([rng.choice(n_corpus, size=pool_size, replace=False) for _ in range(n_pools)]).astype(np.int64)
    items[:, 90:] = -1
    relevance = rng.integers(0, 4, size=(n_pools, pool_size)).astype(np.float64)
    query_pool = rng.integers(0, n_pools, size=n_queries)
    return queries, corpus, items, relevance, query_pool


@pytest.mark.parametrize("gain", ["linear", "exp"])
def test_fused_ndcg_matches_reference_with_exact_ties(gain):
    inputs = _retrieval(1, n_queries=777, n_corpus=20_011, dim=24, dyadic=True)
    want = reference.pool_ndcg_dense(*inputs, 500, gain)
    got = ospo_fast.pool_ndcg_dense(*_cuda(inputs), 500, gain, backend="triton", precision="ieee")
    assert got.is_cuda and got.dtype == torch.float32
    np.testing.assert_allclose(got.cpu().numpy(), want, atol=1e-6)


def test_fused_ndcg_matches_cpu_core_on_real_valued_embeddings():
    inputs = _retrieval(2, n_queries=512, n_corpus=30_000, dim=384, dyadic=False)
    with_core = ospo_fast.pool_ndcg_dense(*inputs, 1000, "linear")
    got = ospo_fast.pool_ndcg_dense(*_cuda(inputs), 1000, "linear", backend="triton", precision="ieee")
    # fp32 sums in another order may swap scores within ~1e-6 of each other
    assert np.mean(np.abs(got.cpu().numpy() - with_core) > 1e-5) < 0.01
    fast = ospo_fast.pool_ndcg_dense(*_cuda(inputs), 1000, "linear", backend="triton", precision="tf32x3")
    assert np.mean(np.abs(fast.cpu().numpy() - with_core) > 1e-5) < 0.01


def test_fused_ndcg_host_corpus_in_pieces_matches_resident(monkeypatch):
    queries, corpus, items, relevance, query_pool = _retrieval(3, 300, 10_000, 32, dyadic=True)
    on_device = _cuda((queries, items, relevance, query_pool))
    resident = ospo_fast.pool_ndcg_dense(on_device[0], torch.from_numpy(corpus).cuda(), *on_device[1:], 200, "exp",
                                   backend="triton")
    monkeypatch.setattr(ndcg_gpu, "free_memory", lambda device: 1_600_000)
    streamed = ospo_fast.pool_ndcg_dense(on_device[0], corpus, *on_device[1:], 200, "exp", backend="triton")
    torch.testing.assert_close(streamed, resident, rtol=0, atol=0)


def _token_batch(seed: int):
    rng = np.random.default_rng(seed)
    n_segments = rng.integers(0, 9, size=40)
    lengths = rng.integers(0, 12, size=int(n_segments.sum()))
    token_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = packing.SegmentTokens(
        rng.integers(999, 30_000, size=int(token_offsets[-1])).astype(np.int32),
        token_offsets,
        np.concatenate([[0], np.cumsum(n_segments)]).astype(np.int64),
    )
    return tokens, n_segments


@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("max_length", [512, 20])
def test_pack_windows_kernel_matches_cpu(max_length, backend):
    tokens, n_segments = _token_batch(4)
    offsets, windows = reference.coalition_plan(n_segments, 4, 30, seed=4)
    special = packing.SpecialIds(101, 102, 0)
    want = packing.pack_query_windows(tokens, offsets, windows, special, max_length=max_length, backend="cpu")
    on_device = packing.SegmentTokens(*_cuda((tokens.token_ids, tokens.token_offsets, tokens.segment_offsets)))
    got = packing.pack_query_windows(on_device, torch.from_numpy(offsets).cuda(), torch.from_numpy(windows).cuda(),
                                     special, max_length=max_length, backend=backend)
    for g, w in zip(got, want):
        assert g.is_cuda and g.dtype == torch.int64
        np.testing.assert_array_equal(g.cpu().numpy(), w)


@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_pack_subsets_kernel_matches_cpu(backend):
    tokens, n_segments = _token_batch(5)
    plans = [reference.sample_subset_coalitions(int(n), 12, seed=5, stream=b) for b, n in enumerate(n_segments)]
    width = int(n_segments.max())
    masks = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in plans])
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in plans])])
    special = packing.SpecialIds(101, 102, 0)
    want = packing.pack_query_subsets(tokens, offsets, masks, special, max_length=24, backend="cpu")
    got = packing.pack_query_subsets(tokens, offsets, masks, special, max_length=24, backend=backend)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
