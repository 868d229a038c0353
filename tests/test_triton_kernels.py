"""The Triton kernels against ``ospo_fast.ops.reference`` and the C++ core, run by the Triton interpreter.

``TRITON_INTERPRET=1`` must be set before triton is imported and would change every
later import of it, so the kernels run in one child process (this file run as a
script) and the tests here read its JSON report. Sizes are small and awkward on
purpose: non-multiples of every block, C = P = d = 1, padded pools, empty responses,
T = 1, and exact score ties from dyadic-rational embeddings (multiples of 1/4, whose
float32 dot products are exact, so the tie rule is tested, not rounding).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# name: (B, T, max segments, w_max, max coalitions, mode, invert_negative, estimator, seed)
OWEN_CASES: dict[str, tuple] = {
    "one-response-one-token": (1, 1, 3, 2, 4, "prop", False, "spec", 0),
    "prop": (5, 13, 5, 3, 6, "prop", False, "spec", 1),
    "prop-inverted": (6, 7, 6, 2, 9, "prop", True, "spec", 2),
    "rank": (5, 33, 7, 3, 12, "rank", False, "spec", 3),
    "rank-inverted": (4, 9, 4, 4, 30, "rank", True, "spec", 4),
    "hybrid": (3, 17, 7, 8, 96, "hybrid", False, "spec", 5),
    "hybrid-inverted-sampled": (6, 5, 7, 3, 3, "hybrid", True, "spec", 6),
    "stratified-prop": (5, 13, 6, 3, 8, "prop", False, "stratified", 7),
    "stratified-rank-sampled": (6, 9, 7, 2, 5, "rank", True, "stratified", 8),
    "stratified-full-plan": (4, 12, 6, 8, 64, "hybrid", False, "stratified", 9),
    "signed": (5, 11, 6, 3, 10, "signed", False, "spec", 10),
    "signed-stratified": (6, 17, 7, 4, 30, "signed", False, "stratified", 11),
    "signed-stratified-one-token": (1, 1, 3, 2, 4, "signed", False, "stratified", 12),
}
# name: (C, N, d, S, P, k, gain, n_splits, seed)
NDCG_CASES: dict[str, tuple] = {
    "single": (1, 1, 1, 1, 1, 1, "linear", 1, 0),
    "d1-small-k": (5, 9, 1, 2, 4, 2, "linear", 1, 1),
    "exp-gain": (7, 131, 5, 3, 11, 20, "exp", 1, 2),
    "split-corpus-atomics": (33, 200, 3, 4, 17, 50, "linear", 3, 3),
    "wide-d-padding": (40, 150, 37, 2, 9, 7, "exp", 2, 4),
    "k-beyond-corpus": (3, 70, 2, 2, 5, 1000, "linear", 1, 5),
}
# name: (B, max segments, max tokens per segment, w_max, budget, max_length, subsets, seed)
PACK_CASES: dict[str, tuple] = {
    "windows": (7, 6, 5, 3, 12, 512, False, 0),
    "windows-truncated": (5, 9, 9, 8, 40, 9, False, 1),
    "windows-one-response": (1, 3, 2, 2, 4, 512, False, 2),
    "subsets": (6, 7, 4, 0, 10, 512, True, 3),
    "subsets-truncated": (6, 8, 7, 0, 20, 7, True, 4),
}
OWEN_TOLERANCE = 1e-5  # relative, plus 1e-6 of max |Â|: the kernel's output is float32
NDCG_TOLERANCE = 1e-6  # NDCG is in [0, 1]; the kernel sums DCG in float32
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ child process side

def _owen_batch(B, T, max_segments, w_max, max_coalitions, seed):
    """A CSR batch: response 0 has no segment, the last one one segment (when B > 2), the
    others 2..max_segments; response 1 has Â = 0 (when B > 3)."""
    import numpy as np

    from ospo_fast.ops import reference

    rng = np.random.default_rng(seed)
    n_segments = rng.integers(2, max_segments + 1, size=B)
    if B > 2:
        n_segments[0], n_segments[-1] = 0, 1
    offsets, coalitions = reference.coalition_plan(n_segments, w_max, max_coalitions, seed=seed)
    values = rng.random(len(coalitions)).astype(np.float32)
    values[coalitions[:, 0] == coalitions[:, 1]] = 0.0
    spans, token_offsets = [], np.zeros((B, T, 2), dtype=np.int64)
    token_mask, answer_mask = np.zeros((B, T), dtype=bool), np.zeros((B, T), dtype=bool)
    for b in range(B):
        cuts = np.sort(rng.choice(np.arange(1, 80), size=2 * n_segments[b], replace=False))
        spans.append(cuts.reshape(-1, 2))
        length = int(rng.integers(1, T + 1))
        edges = np.sort(rng.integers(0, 82, size=length + 1))  # includes empty tokens
        token_offsets[b, :length] = np.stack([edges[:-1], edges[1:]], axis=1)
        token_mask[b, :length] = True
        answer_mask[b, :length] = rng.random(length) < 0.8
    advantages = rng.normal(size=B).astype(np.float32)
    if B > 3:
        advantages[1] = 0.0
    return (n_segments, offsets, coalitions, values, np.concatenate(spans).astype(np.int64), token_offsets,
            token_mask, answer_mask, advantages)


def _duplicate_rows_batch():
    """Reference set semantics: (2, 2) is ∅, and a repeated window is read at its last row."""
    import numpy as np

    coalitions = np.array([[0, 0], [0, 1], [1, 2], [2, 3], [0, 2], [2, 2], [0, 1], [1, 3], [0, 3]], dtype=np.int32)
    values = np.array([0.0, 0.2, 0.5, 0.1, 0.6, 0.05, 0.3, 0.7, 0.9], dtype=np.float32)
    spans = np.array([[0, 4], [5, 9], [10, 14]], dtype=np.int64)
    token_offsets = np.array([[[0, 2], [2, 4], [5, 9], [10, 12], [12, 14], [14, 15]]], dtype=np.int64)
    mask = np.ones((1, 6), dtype=bool)
    return (np.array([3]), np.array([0, 9]), coalitions, values, spans, token_offsets, mask, mask,
            np.array([-0.7], dtype=np.float32))


def _owen_error(args, mode, invert_negative, estimator="spec") -> tuple[float, float]:
    """(advantage error over tolerance scale, phi max abs error) of one batch; mode signed
    draws a credit scale per response (dyadic, so float32 holds it exactly)."""
    import numpy as np
    import torch

    from ospo_fast.ops import reference
    from ospo_fast.kernels.owen_advantages import owen_token_advantages

    scales = None
    if mode == "signed":
        scales = np.random.default_rng(len(args[0])).integers(1, 13, size=len(args[0])).astype(np.float32) / 4
    out, phi = owen_token_advantages(*(torch.from_numpy(np.asarray(a)) for a in args), mode,
                                     invert_negative=invert_negative, estimator=estimator,
                                     credit_scales=None if scales is None else torch.from_numpy(scales))
    want = reference.token_advantages_batch(*args, mode, invert_negative=invert_negative, estimator=estimator,
                                            credit_scale=scales)
    want_phi, _ = reference.owen_values_batch(args[0], args[1], args[2], args[3].astype(np.float64), estimator)
    scale = OWEN_TOLERANCE * np.abs(want) + 1e-6 * max(float(np.abs(args[8]).max()), 1e-30)
    return float((np.abs(out.numpy() - want) / scale).max()), float(np.abs(phi.numpy() - want_phi).max(initial=0.0))


def _ndcg_inputs(C, N, d, S, P, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    queries = rng.integers(-4, 5, size=(C, d)).astype(np.float32) / 4
    corpus = rng.integers(-4, 5, size=(N, d)).astype(np.float32) / 4
    items = np.stack([rng.permutation(max(N, P))[:P] for _ in range(S)]).astype(np.int64)
    items[(items >= N) | (rng.random((S, P)) < 0.2)] = -1
    items[-1] = -1 if S > 1 else items[-1]  # an all-padding pool
    relevance = rng.integers(0, 4, size=(S, P)).astype(np.float64)
    query_pool = rng.integers(0, S, size=C)
    return queries, corpus, items, relevance, query_pool


def _ndcg_error(inputs, k, gain, n_splits) -> float:
    import numpy as np
    import torch

    from ospo_fast.ops import reference
    from ospo_fast.kernels.fused_ndcg import fused_pool_ndcg

    got = fused_pool_ndcg(*(torch.from_numpy(a) for a in inputs), k, gain, n_splits=n_splits).numpy()
    want = reference.pool_ndcg_dense(*inputs, k, gain)
    return float(np.abs(got - want).max())


def _dispatch_in_passes() -> dict[str, float]:
    """The public ops on the Triton backend end to end, with free memory for a few rows only."""
    import numpy as np
    import torch

    from ospo_fast.kernels import fused_ndcg
    from ospo_fast.ops import credit, ndcg, ndcg_gpu, owen_gpu, reference

    calls = {"count_beaters": 0, "owen_pass": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    fused_ndcg.count_beaters = counted("count_beaters", fused_ndcg.count_beaters)
    owen_gpu.launch_pass = counted("owen_pass", owen_gpu.launch_pass)
    queries, corpus, items, relevance, query_pool = _ndcg_inputs(23, 90, 6, 3, 7, seed=11)
    # 10 KB free: passes of two queries, and a host corpus in two pieces.
    ndcg_gpu.free_memory = lambda device: 10 * 1024
    want = reference.pool_ndcg_dense(queries, corpus, items, relevance, query_pool, 30, "exp")
    tensors = [torch.from_numpy(a) for a in (queries, corpus, items, relevance, query_pool)]
    tensor_corpus = ndcg.pool_ndcg_dense(*tensors, 30, "exp", backend="triton")
    resident = ndcg_gpu.is_resident
    ndcg_gpu.is_resident = lambda corpus, device: False  # as a host corpus beside a GPU: streamed in pieces
    host_corpus = ndcg.pool_ndcg_dense(tensors[0], corpus, *tensors[2:], 30, "exp", backend="triton")
    ndcg_gpu.is_resident = resident
    args = _owen_batch(9, 11, 5, 3, 8, seed=12)
    owen_gpu.free_memory = lambda device: 2 * 3 * (11 * 30 + 8 * 12 + 5 * 24 + 48)  # three responses a pass
    owen, phi = credit.token_advantages_batch(*(torch.from_numpy(np.asarray(a)) for a in args), "rank",
                                              backend="triton", return_phi=True)
    owen_want, phi_want = reference.token_advantages_batch(*args, "rank", return_phi=True)
    return {
        "host-corpus": float(np.abs(host_corpus.numpy() - want).max()),
        "tensor-corpus": float(np.abs(tensor_corpus.numpy() - want).max()),
        "count-beaters-calls": float(calls["count_beaters"]),
        "owen-passes": float(calls["owen_pass"]),
        "owen": float(np.abs(owen.numpy() - owen_want).max() / np.abs(args[8]).max()),
        "owen-phi": float(np.abs(phi.numpy() - phi_want).max()),
    }


def _token_batch(n_responses, max_segments, max_tokens, seed):
    """Every segment's ids in CSR form; some segments are empty, some responses have none."""
    import numpy as np

    from ospo_fast.ops.packing import SegmentTokens

    rng = np.random.default_rng(seed)
    n_segments = rng.integers(0, max_segments + 1, size=n_responses)
    lengths = rng.integers(0, max_tokens + 1, size=int(n_segments.sum()))
    token_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = SegmentTokens(rng.integers(999, 30_000, size=int(token_offsets[-1])).astype(np.int32), token_offsets,
                           np.concatenate([[0], np.cumsum(n_segments)]).astype(np.int64))
    return tokens, n_segments


def _pack_error(n_responses, max_segments, max_tokens, w_max, budget, max_length, subsets, seed) -> float:
    """Mismatching entries between the Triton rows and the C++ core's rows (0 when equal)."""
    import numpy as np
    import torch

    from ospo_fast.ops import packing, reference

    tokens, n_segments = _token_batch(n_responses, max_segments, max_tokens, seed)
    special = packing.SpecialIds(101, 102, 0)
    if subsets:
        plans = [reference.sample_subset_coalitions(int(n), budget, seed=seed, stream=b) for b, n in enumerate(n_segments)]
        width = int(n_segments.max(initial=0))
        rows = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in plans])
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in plans])])
        pack = packing.pack_query_subsets
    else:
        offsets, rows = reference.coalition_plan(n_segments, w_max, budget, seed=seed)
        pack = packing.pack_query_windows
    want = pack(tokens, offsets, rows, special, max_length=max_length, backend="cpu")
    on_tensors = packing.SegmentTokens(*(torch.from_numpy(a) for a in (tokens.token_ids, tokens.token_offsets,
                                                                         tokens.segment_offsets)))
    got = pack(on_tensors, torch.from_numpy(offsets), torch.from_numpy(rows), special, max_length=max_length,
               backend="triton")
    return float(sum(int((g.numpy() != w).sum()) + abs(g.numel() - w.size) for g, w in zip(got, want)))


def run_cases() -> dict[str, object]:
    report: dict[str, object] = {}
    for name, (B, T, n, w_max, m, mode, invert, estimator, seed) in OWEN_CASES.items():
        report[f"owen/{name}"] = _owen_error(_owen_batch(B, T, n, w_max, m, seed), mode, invert, estimator)
    for mode in ("prop", "rank", "hybrid"):
        report[f"owen/duplicate-rows-{mode}"] = _owen_error(_duplicate_rows_batch(), mode, True)
    report["owen/duplicate-rows-signed-stratified"] = _owen_error(_duplicate_rows_batch(), "signed", False, "stratified")
    for name, (C, N, d, S, P, k, gain, splits, seed) in NDCG_CASES.items():
        report[f"ndcg/{name}"] = _ndcg_error(_ndcg_inputs(C, N, d, S, P, seed), k, gain, splits)
    ties = _ndcg_inputs(6, 40, 3, 2, 8, seed=9)
    ties[1][:] = 0.25  # every catalog row scores the same: the ranking is by row alone
    report["ndcg/all-scores-tied"] = _ndcg_error(ties, 5, "linear", 2)
    report["dispatch"] = _dispatch_in_passes()
    for name, case in PACK_CASES.items():
        report[f"pack/{name}"] = _pack_error(*case)
    return report


# ------------------------------------------------------------------ pytest side

@pytest.fixture(scope="module")
def interpreted() -> dict[str, object]:
    import ospo_fast

    package_root = str(Path(ospo_fast.__file__).resolve().parents[1])
    env = {**os.environ, "TRITON_INTERPRET": "1",
           "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600,
                           cwd=ROOT)
    assert child.returncode == 0, child.stderr[-4000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", [*OWEN_CASES, "duplicate-rows-prop", "duplicate-rows-rank", "duplicate-rows-hybrid",
                                  "duplicate-rows-signed-stratified"])
def test_owen_advantages_kernel_matches_reference(interpreted, name):
    scaled_error, phi_error = interpreted[f"owen/{name}"]
    assert scaled_error <= 1.0
    assert phi_error <= 1e-12


@pytest.mark.parametrize("name", [*NDCG_CASES, "all-scores-tied"])
def test_fused_ndcg_kernel_matches_reference(interpreted, name):
    assert interpreted[f"ndcg/{name}"] <= NDCG_TOLERANCE


def test_gpu_dispatch_in_passes_matches_reference(interpreted):
    report = interpreted["dispatch"]
    assert report["host-corpus"] <= NDCG_TOLERANCE
    assert report["tensor-corpus"] <= NDCG_TOLERANCE
    assert report["count-beaters-calls"] > 4  # several query passes, and corpus pieces
    assert report["owen"] <= 1e-6
    assert report["owen-phi"] <= 1e-6
    assert report["owen-passes"] > 1


@pytest.mark.parametrize("name", PACK_CASES)
def test_pack_kernels_match_the_core(interpreted, name):
    assert interpreted[f"pack/{name}"] == 0


if __name__ == "__main__":
    print(json.dumps(run_cases()))
