"""Kernel dispatch (ospo_fast.ops.dispatch) and the GPU launchers on a CPU-only machine:
path choice, fallbacks, checks and passes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from ospo_fast.ops import credit, device, dispatch, ndcg, owen_gpu, packing, reference


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test starts with no op warned about yet, and outside the Triton interpreter."""
    monkeypatch.setattr(dispatch, "_warned_ops", set())
    monkeypatch.setattr(dispatch, "triton_interpreted", lambda: False)


class FakeCudaTensor:
    """Stands in for a CUDA tensor in the path choice."""


@pytest.fixture
def gpu_machine(monkeypatch):
    """A machine with a CUDA device but, unless a test adds them, no kernels."""
    monkeypatch.setattr(dispatch, "is_cuda_tensor", lambda value: isinstance(value, FakeCudaTensor))
    monkeypatch.setattr(dispatch, "cuda_device_available", lambda: True)
    monkeypatch.setattr(dispatch, "cuda_kernels_built", lambda: False)
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)
    return monkeypatch


def _step(seed: int = 0, n_responses: int = 7, n_tokens: int = 12):
    rng = np.random.default_rng(seed)
    n_segments = rng.integers(0, 6, size=n_responses)
    offsets, coalitions = reference.coalition_plan(n_segments, 3, 7, seed=seed)
    values = rng.random(len(coalitions))
    spans = np.concatenate(
        [np.sort(rng.choice(60, size=2 * n, replace=False)).reshape(-1, 2) for n in n_segments]
    ).astype(np.int64)
    edges = np.sort(rng.integers(0, 62, size=(n_responses, n_tokens + 1)), axis=1)
    token_offsets = np.stack([edges[:, :-1], edges[:, 1:]], axis=2)  # [B, T, 2]
    token_mask = np.arange(n_tokens)[None, :] < rng.integers(1, n_tokens + 1, size=(n_responses, 1))
    answer_mask = token_mask & (rng.random((n_responses, n_tokens)) < 0.7)
    advantages = rng.normal(size=n_responses)
    return n_segments, offsets, coalitions, values, spans, token_offsets, token_mask, answer_mask, advantages


def test_numpy_and_cpu_tensors_take_the_cpu_path():
    arrays = (np.zeros(3), torch.zeros(3))
    for op in ("owen", "ndcg", "pack"):
        assert dispatch.resolve_backend(op, "auto", *arrays) == "cpu"
        assert dispatch.resolve_backend(op, "cpu", *arrays) == "cpu"


def test_unknown_backend_raises():
    with pytest.raises(ValueError, match="backend"):
        dispatch.resolve_backend("owen", "metal", np.zeros(1))


def test_cuda_tensors_pick_the_preferred_available_kernel(gpu_machine):
    tensor = FakeCudaTensor()
    gpu_machine.setattr(dispatch, "triton_available", lambda: True)
    assert dispatch.resolve_backend("owen", "auto", tensor) == "triton"
    assert dispatch.resolve_backend("ndcg", "auto", np.zeros(1), tensor) == "triton"
    gpu_machine.setattr(dispatch, "cuda_kernels_built", lambda: True)
    kernels = {"owen_token_advantages_cuda": None, "pack_query_windows_cuda": None}
    gpu_machine.setattr(dispatch, "core", type("Core", (), kernels))
    assert dispatch.resolve_backend("owen", "auto", tensor) == "cuda"
    assert dispatch.resolve_backend("owen", "triton", tensor) == "triton"
    assert dispatch.resolve_backend("pack", "auto", tensor) == "cuda"
    assert dispatch.resolve_backend("pack", "cuda", np.zeros(1)) == "cuda"


def test_missing_kernel_falls_back_with_one_warning_per_op(gpu_machine):
    tensor = FakeCudaTensor()
    reasons = "owen runs on the CPU core.*built without its CUDA kernels.*triton is not installed"
    with pytest.warns(RuntimeWarning, match=reasons):
        assert dispatch.resolve_backend("owen", "auto", tensor) == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dispatch.resolve_backend("owen", "auto", tensor) == "cpu"
    with pytest.warns(RuntimeWarning, match="ndcg has no cuda kernel"):
        assert dispatch.resolve_backend("ndcg", "cuda", tensor) == "cpu"


def test_forced_gpu_backend_without_a_device_runs_on_the_cpu(monkeypatch):
    monkeypatch.setattr(dispatch, "cuda_device_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="no CUDA device"):
        assert dispatch.resolve_backend("ndcg", "triton", np.zeros(1)) == "cpu"


def test_the_triton_interpreter_runs_triton_on_cpu_data(monkeypatch):
    monkeypatch.setattr(dispatch, "cuda_device_available", lambda: False)
    monkeypatch.setattr(dispatch, "triton_interpreted", lambda: True)
    for op in ("owen", "ndcg", "pack"):
        assert dispatch.resolve_backend(op, "triton", torch.zeros(1)) == "triton"
        assert dispatch.resolve_backend(op, "auto", torch.zeros(1)) == "cpu"  # auto follows the data
    assert dispatch.work_device("triton", torch.zeros(1)) == torch.device("cpu")


def test_cpu_path_matches_reference_and_follows_the_input_kind():
    args = _step()
    want = reference.token_advantages_batch(*args, "rank", invert_negative=True)
    got = credit.token_advantages_batch(*args, "rank", invert_negative=True)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
    as_tensors = credit.token_advantages_batch(*(torch.from_numpy(np.asarray(a)) for a in args), "rank",
                                               invert_negative=True)
    assert isinstance(as_tensors, torch.Tensor) and as_tensors.dtype == torch.float64
    np.testing.assert_array_equal(as_tensors.numpy(), want)


def test_pool_ndcg_dense_cpu_path_matches_reference():
    rng = np.random.default_rng(3)
    queries, corpus = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(30, 4)).astype(np.float32)
    items = np.array([[3, 7, -1, 12], [0, 1, 2, 29]])
    relevance = np.array([[1, 0, 0, 3], [0, 2, 1, 1]])
    query_pool = np.array([0, 1, 1, 0, 1])
    want = reference.pool_ndcg_dense(queries, corpus, items, relevance, query_pool, 10, "exp")
    np.testing.assert_array_equal(ndcg.pool_ndcg_dense(queries, corpus, items, relevance, query_pool, 10, "exp"), want)


def test_rows_per_pass_fits_the_budget():
    assert device.rows_per_pass(1000, 100, 0, 10_000) == 50  # half of the free memory
    assert device.rows_per_pass(10, 100, 0, 10_000) == 10
    assert device.rows_per_pass(1000, 100, 4_000, 10_000) == 10
    with pytest.raises(MemoryError, match="one row needs 100 bytes"):
        device.rows_per_pass(5, 100, 4_950, 10_000)
    assert list(device.passes(7, 3)) == [(0, 3), (3, 6), (6, 7)]


def _reference_owen_pass(kernel, part, mode, alpha, invert, estimator):
    """The reference standing in for a kernel, on one pass's slice of the batch."""
    arrays = [part[name].numpy() for name in ("n_segments", "coalition_offsets", "coalitions", "values",
                                              "segment_spans", "token_offsets", "token_mask", "answer_mask",
                                              "advantages")]
    scales = part["credit_scales"].numpy() if "credit_scales" in part else None
    out, phi = reference.token_advantages_batch(*arrays, mode, alpha=alpha, invert_negative=invert, return_phi=True,
                                                estimator=estimator, credit_scale=scales)
    return torch.from_numpy(out).float(), torch.from_numpy(phi)


@pytest.mark.parametrize(("mode", "estimator"), [("hybrid", "spec"), ("signed", "stratified")])
def test_a_batch_too_large_for_memory_runs_in_passes(monkeypatch, mode, estimator):
    args = _step(seed=4, n_responses=11)
    scales = np.linspace(0.5, 3.0, 11) if mode == "signed" else None  # a different scale per row
    passes = []
    monkeypatch.setattr(credit, "resolve_backend", lambda op, backend, *arrays: "triton")
    monkeypatch.setattr(credit, "work_device", lambda kernel, *arrays: torch.device("cpu"))
    monkeypatch.setattr(owen_gpu, "free_memory", lambda device: 2_400)  # a few responses per pass

    def recorded_pass(kernel, part, mode, alpha, invert, estimator):
        passes.append(part["advantages"].numel())
        return _reference_owen_pass(kernel, part, mode, alpha, invert, estimator)

    monkeypatch.setattr(owen_gpu, "launch_pass", recorded_pass)
    options = dict(alpha=0.4, estimator=estimator, credit_scale=scales)
    got, phi = credit.token_advantages_batch(*(torch.from_numpy(np.asarray(a)) for a in args), mode,
                                             return_phi=True, **options)
    want, want_phi = reference.token_advantages_batch(*args, mode, return_phi=True, **options)
    assert len(passes) > 2 and sum(passes) == 11
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(phi.numpy(), want_phi, rtol=1e-6, atol=1e-7)


def test_a_row_that_cannot_fit_raises_memory_error(monkeypatch):
    monkeypatch.setattr(credit, "resolve_backend", lambda op, backend, *arrays: "triton")
    monkeypatch.setattr(credit, "work_device", lambda kernel, *arrays: torch.device("cpu"))
    monkeypatch.setattr(owen_gpu, "free_memory", lambda device: 100)
    with pytest.raises(MemoryError):
        credit.token_advantages_batch(*(torch.from_numpy(np.asarray(a)) for a in _step()), "prop")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda a: a.__setitem__(2, a[2] + np.array([0, 9], dtype=np.int32)), "windows"),
        (lambda a: a.__setitem__(1, a[1][:-1]), "coalition_offsets"),
        (lambda a: a.__setitem__(3, a[3][:-1]), "values"),
        (lambda a: a.__setitem__(7, a[7][:, :-1]), "answer_mask"),
        (lambda a: a.__setitem__(4, a[4][:-1]), "segment_spans"),
    ],
)
def test_gpu_path_checks_its_inputs(edit, message):
    args = list(_step(seed=2))
    edit(args)
    with pytest.raises(ValueError, match=message):
        owen_gpu.checked_batch(torch.device("cpu"), *args)


def test_packing_forced_onto_a_missing_cuda_kernel_falls_back(gpu_machine):
    tokens = packing.SegmentTokens(
        np.array([5, 6, 7], dtype=np.int32), np.array([0, 2, 3], dtype=np.int64), np.array([0, 2], dtype=np.int64)
    )
    with pytest.warns(RuntimeWarning, match="pack runs on the CPU core"):
        ids, mask = packing.pack_query_windows(
            tokens, np.array([0, 2]), np.array([[0, 1], [0, 2]], dtype=np.int32), packing.SpecialIds(1, 2, 0),
            max_length=8, backend="cuda",
        )
    np.testing.assert_array_equal(ids, [[1, 5, 6, 2, 0], [1, 5, 6, 7, 2]])
    np.testing.assert_array_equal(mask, ids > 0)
