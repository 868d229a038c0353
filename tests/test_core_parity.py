"""Every native op against its plain twin in reference.py, on random and awkward inputs."""

from __future__ import annotations

import numpy as np
import pytest

import ospo_fast as of
from ospo_fast.ops import reference as ref


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 20])
@pytest.mark.parametrize("w_max", [1, 2, 8, 50])
@pytest.mark.parametrize("include_empty", [True, False])
@pytest.mark.parametrize("include_full", [True, False])
def test_contiguous_coalitions_match(n: int, w_max: int, include_empty: bool, include_full: bool) -> None:
    got = of.contiguous_coalitions(n, w_max, include_empty=include_empty, include_full=include_full)
    want = ref.contiguous_coalitions(n, w_max, include_empty=include_empty, include_full=include_full)
    assert got.dtype == np.int32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_contiguous_order_is_spec_order() -> None:
    got = of.contiguous_coalitions(4, 2).tolist()
    assert got == [[0, 0], [0, 1], [1, 2], [2, 3], [3, 4], [0, 2], [1, 3], [2, 4], [0, 4]]
    assert of.contiguous_coalitions(3, 8).tolist()[-1] == [0, 3]  # full set already a window, not repeated


@pytest.mark.parametrize("n", [0, 1, 2, 5, 13, 40])
@pytest.mark.parametrize("budget", [2, 3, 5, 32, 96, 10_000])
@pytest.mark.parametrize("seed", [0, 7, 2**63 + 5])
def test_sample_coalitions_match(n: int, budget: int, seed: int) -> None:
    got = of.sample_coalitions(n, 8, budget, seed=seed, stream=3)
    want = ref.sample_coalitions(n, 8, budget, seed=seed, stream=3)
    np.testing.assert_array_equal(got, want)
    candidates = of.contiguous_coalitions(n, 8)
    assert len(got) == min(budget, len(candidates))
    assert got[0].tolist() == [0, 0] and got[-1].tolist() == candidates[-1].tolist()
    assert len({tuple(r) for r in got.tolist()}) == len(got)


def test_sample_coalitions_deterministic_and_seed_dependent() -> None:
    a = of.sample_coalitions(30, 8, 20, seed=1)
    np.testing.assert_array_equal(a, of.sample_coalitions(30, 8, 20, seed=1))
    assert not np.array_equal(a, of.sample_coalitions(30, 8, 20, seed=2))


def test_sample_coalitions_is_uniform_over_the_middle() -> None:
    counts: dict[tuple[int, int], int] = {}
    n_draws = 4000
    for seed in range(n_draws):
        for row in of.sample_coalitions(6, 3, 7, seed=seed)[1:-1].tolist():
            counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    middle = len(of.contiguous_coalitions(6, 3)) - 2  # 15 windows compete for 5 places
    expected = n_draws * 5 / middle
    assert len(counts) == middle
    assert all(abs(c - expected) < 0.12 * expected for c in counts.values())


@pytest.mark.parametrize("n", [0, 1, 2, 3, 6, 10, 70])
@pytest.mark.parametrize("budget", [2, 3, 5, 64])
@pytest.mark.parametrize("sizes", ["half", "kernel"])
def test_sample_subset_coalitions_match(n: int, budget: int, sizes: str) -> None:
    got = of.sample_subset_coalitions(n, budget, seed=11, stream=2, sizes=sizes)
    want = ref.sample_subset_coalitions(n, budget, seed=11, stream=2, sizes=sizes)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, want)
    if n:
        assert not got[0].any() and got[-1].all()
        assert len({r.tobytes() for r in got}) == len(got)


@pytest.mark.parametrize("n_responses", [1, 7, 600])
def test_coalition_plan_matches_per_response_sampling(n_responses: int) -> None:
    rng = np.random.default_rng(n_responses)
    counts = rng.integers(0, 25, n_responses)
    offsets, rows = of.coalition_plan(counts, 8, 32, seed=5)
    want_offsets, want_rows = ref.coalition_plan(counts, 8, 32, seed=5)
    np.testing.assert_array_equal(offsets, want_offsets)
    np.testing.assert_array_equal(rows, want_rows)


def test_kernel_subset_sizes_follow_the_shapley_kernel() -> None:
    """Sizes s of proper subsets land with chance ∝ 1 / (s (n − s)): a Kolmogorov-Smirnov
    check against that law (n large, so redrawn repeats are too rare to bend it)."""
    n = 1000
    rows = np.concatenate([of.sample_subset_coalitions(n, 402, seed=3, stream=b, sizes="kernel")[1:-1]
                           for b in range(25)])
    sizes = np.sort(rows.sum(axis=1))
    mass = 1.0 / (np.arange(1, n) * (n - np.arange(1, n)))
    law = np.cumsum(mass) / mass.sum()  # P(|S| <= s) for s = 1 .. n - 1
    empirical = np.searchsorted(sizes, np.arange(1, n), side="right") / len(sizes)
    assert np.abs(empirical - law).max() < 1.63 / np.sqrt(len(sizes))  # p = 0.01
    assert ((sizes == 1) | (sizes == n - 1)).mean() > 0.1  # the extremes, which the ½ rule never reaches
    half = np.concatenate([of.sample_subset_coalitions(n, 402, seed=3, stream=b)[1:-1] for b in range(5)])
    assert abs(half.sum(axis=1).mean() - n / 2) < 2


def _random_game(rng: np.random.Generator, rows: np.ndarray) -> np.ndarray:
    values = rng.standard_normal(len(rows))
    values[0] = 0.0
    return values


@pytest.mark.parametrize("n", [0, 1, 2, 3, 9, 24])
@pytest.mark.parametrize("w_max", [1, 2, 8, 30])
@pytest.mark.parametrize("budget", [2, 3, 32, 1000])
def test_owen_values_windows_match(n: int, w_max: int, budget: int) -> None:
    rng = np.random.default_rng(n * 100 + w_max)
    rows = of.sample_coalitions(n, w_max, budget, seed=n)
    values = _random_game(rng, rows)
    np.testing.assert_allclose(of.owen_values(n, rows, values), ref.owen_values(n, rows, values), rtol=1e-12, atol=1e-14)
    # The stratified estimator is summed in the same order on both sides: equal to the bit.
    np.testing.assert_array_equal(of.owen_values(n, rows, values, "stratified"),
                                  ref.owen_values(n, rows, values, "stratified"))


@pytest.mark.parametrize("n", [1, 2, 5, 9])
@pytest.mark.parametrize("sizes", ["half", "kernel"])
def test_owen_values_masks_match(n: int, sizes: str) -> None:
    rng = np.random.default_rng(n)
    rows = of.sample_subset_coalitions(n, 40, seed=n, sizes=sizes)
    values = _random_game(rng, rows)
    np.testing.assert_allclose(of.owen_values(n, rows, values), ref.owen_values(n, rows, values), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(of.owen_values(n, rows, values, "stratified"),
                                  ref.owen_values(n, rows, values, "stratified"))


@pytest.mark.parametrize("estimator", ["spec", "stratified"])
def test_owen_values_masks_and_windows_agree_on_windows(estimator: str) -> None:
    rng = np.random.default_rng(3)
    windows = of.contiguous_coalitions(6, 3)
    masks = (np.arange(6) >= windows[:, :1]) & (np.arange(6) < windows[:, 1:])
    values = _random_game(rng, windows)
    np.testing.assert_allclose(of.owen_values(6, windows, values, estimator),
                               of.owen_values(6, masks, values, estimator), rtol=1e-13)


@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_stratified_owen_is_exact_shapley_on_every_subset(n: int) -> None:
    """With every subset scored each size stratum is complete, so the stratified mean of
    each size is the exact one and the estimator is the Shapley value."""
    rng = np.random.default_rng(n)
    masks = of.sample_subset_coalitions(n, 2**n, seed=0)  # all 2**n in bitmask order
    values = rng.standard_normal(2**n)
    np.testing.assert_allclose(of.owen_values(n, masks, values, "stratified"), of.exact_shapley(values),
                               rtol=1e-12, atol=1e-13)


def test_stratified_owen_sums_to_the_full_value_on_a_sparse_plan() -> None:
    rng = np.random.default_rng(8)
    rows = of.sample_coalitions(12, 3, 20, seed=8)
    values = _random_game(rng, rows)
    values[0] = 0.3  # v(∅) ≠ 0
    phi = of.owen_values(12, rows, values, "stratified")
    assert phi.sum() == pytest.approx(values[-1] - 0.3, abs=1e-12)
    spec = of.owen_values(12, rows, values)
    assert abs(spec.sum() - (values[-1] - 0.3)) > 1e-3  # the spec estimator is not efficient here


@pytest.mark.parametrize("n_responses", [1, 5, 10_000])
@pytest.mark.parametrize("estimator", ["spec", "stratified"])
def test_owen_values_batch_match(n_responses: int, estimator: str) -> None:
    rng = np.random.default_rng(n_responses)
    counts = rng.integers(0, 14, n_responses)
    offsets, rows = of.coalition_plan(counts, 8, 24, seed=1)
    values = rng.random(len(rows))
    phi, phi_offsets = of.owen_values_batch(counts, offsets, rows, values, estimator)
    assert phi.dtype == np.float64 and phi_offsets.tolist() == [0, *np.cumsum(counts).tolist()]
    check = range(n_responses) if n_responses < 100 else rng.choice(n_responses, 50, replace=False)
    for b in check:
        lo, hi = offsets[b], offsets[b + 1]
        want = ref.owen_values(int(counts[b]), rows[lo:hi], values[lo:hi], estimator)
        np.testing.assert_allclose(phi[phi_offsets[b] : phi_offsets[b + 1]], want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", [0, 1, 2, 5, 10])
def test_exact_shapley_match(n: int) -> None:
    values = np.random.default_rng(n).standard_normal(2**n)
    np.testing.assert_allclose(of.exact_shapley(values), ref.exact_shapley(values), rtol=1e-11, atol=1e-12)


def _random_spans(rng: np.random.Generator, text_length: int, count: int) -> np.ndarray:
    cuts = np.sort(rng.choice(np.arange(text_length + 1), size=2 * count, replace=True))
    return cuts.reshape(-1, 2)


@pytest.mark.parametrize("n_tokens", [1, 2, 17, 300])
@pytest.mark.parametrize("n_segments", [0, 1, 4])
def test_token_credit_match(n_tokens: int, n_segments: int) -> None:
    rng = np.random.default_rng(n_tokens + n_segments)
    spans = _random_spans(rng, 200, n_segments)
    tokens = _random_spans(rng, 220, n_tokens)
    phi = rng.standard_normal(n_segments)
    got = of.token_credit(spans, tokens, phi)
    np.testing.assert_allclose(got, ref.token_credit(spans, tokens, phi), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", ["prop", "rank", "hybrid", "signed"])
@pytest.mark.parametrize("n_tokens", [1, 2, 31])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_redistribute_match(mode: str, n_tokens: int, dtype: type) -> None:
    rng = np.random.default_rng(n_tokens)
    credit = rng.standard_normal(n_tokens).astype(dtype)
    credit[: n_tokens // 3] = credit[0]  # ties
    answer = rng.random(n_tokens) < 0.7
    scale = 2.5 if mode == "signed" else None
    for advantage in (-1.3, 0.0, 0.8):
        got = of.redistribute(credit, advantage, mode, answer_mask=answer, alpha=0.6, credit_scale=scale)
        want = ref.redistribute(credit.astype(np.float64), advantage, mode, answer_mask=answer, alpha=0.6,
                                credit_scale=scale)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", ["prop", "rank", "hybrid", "signed"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (10_000, 5)])
def test_redistribute_batch_match(mode: str, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    credit = rng.standard_normal(shape)
    lengths = rng.integers(0, shape[1] + 1, shape[0])
    token_mask = np.arange(shape[1])[None, :] < lengths[:, None]
    answer_mask = token_mask & (rng.random(shape) < 0.8)
    advantages = rng.standard_normal(shape[0])
    scales = rng.uniform(0.0, 4.0, shape[0]) if mode == "signed" else None
    got = of.redistribute_batch(credit, advantages, mode, token_mask=token_mask, answer_mask=answer_mask,
                                credit_scale=scales)
    if shape[0] > 100:
        rows = rng.choice(shape[0], 40, replace=False)
        credit, advantages, token_mask, answer_mask, got = (
            credit[rows], advantages[rows], token_mask[rows], answer_mask[rows], got[rows]
        )
        scales = None if scales is None else scales[rows]
    want = ref.redistribute_batch(credit, advantages, mode, token_mask=token_mask, answer_mask=answer_mask,
                                  credit_scale=scales)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    assert (got[~token_mask] == 0).all()


def _step_inputs(rng: np.random.Generator, n_responses: int, n_cols: int) -> dict:
    counts = rng.integers(0, 7, n_responses)
    offsets, rows = of.coalition_plan(counts, 3, 10, seed=4)
    spans = np.concatenate(
        [np.sort(rng.choice(60, 2 * int(c), replace=False)).reshape(-1, 2) for c in counts] + [np.zeros((0, 2), int)]
    )
    starts = np.sort(rng.integers(0, 70, (n_responses, n_cols)), axis=1)
    tokens = np.stack([starts, starts + rng.integers(1, 6, (n_responses, n_cols))], axis=-1)
    lengths = rng.integers(1, n_cols + 1, n_responses)
    token_mask = np.arange(n_cols)[None, :] < lengths[:, None]
    return dict(
        n_segments=counts,
        coalition_offsets=offsets,
        coalitions=rows,
        values=rng.random(len(rows)),
        segment_spans=spans,
        token_offsets=tokens,
        token_mask=token_mask,
        answer_mask=token_mask & (rng.random((n_responses, n_cols)) < 0.8),
        advantages=rng.standard_normal(n_responses),
    )


# Mode signed refuses invert_negative (tests/test_redistribution.py).
@pytest.mark.parametrize(("mode", "invert_negative"), [(m, i) for m in ("prop", "rank", "hybrid") for i in (False, True)]
                         + [("signed", False)])
@pytest.mark.parametrize("estimator", ["spec", "stratified"])
def test_token_advantages_batch_match(mode: str, invert_negative: bool, estimator: str) -> None:
    rng = np.random.default_rng(1)
    inputs = _step_inputs(rng, 40, 23)
    scales = rng.uniform(0.5, 3.0, 40) if mode == "signed" else None
    options = dict(mode=mode, invert_negative=invert_negative, estimator=estimator, credit_scale=scales)
    got, phi = of.token_advantages_batch(**inputs, **options, return_phi=True)
    want, want_phi = ref.token_advantages_batch(**inputs, **options, return_phi=True)
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(phi, want_phi, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("group_size", [2, 3, 8])
@pytest.mark.parametrize("scale", ["std", "none"])
def test_group_advantages_match_torch(group_size: int, scale: str) -> None:
    torch = pytest.importorskip("torch")
    rewards = np.random.default_rng(group_size).random(group_size * 5)
    rewards[:group_size] = 0.25  # a constant group gives zeros, not NaN
    got = of.group_advantages(rewards, group_size, scale=scale)
    grouped = torch.tensor(rewards).view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    want = centred / (grouped.std(dim=1, keepdim=True) + 1e-4) if scale == "std" else centred
    np.testing.assert_allclose(got, want.reshape(-1).numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got, ref.group_advantages(rewards, group_size, scale=scale), rtol=1e-12, atol=1e-14)
    assert np.all(got[:group_size] == 0)
