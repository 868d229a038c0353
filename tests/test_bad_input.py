"""Bad input raises ValueError/TypeError naming the argument, and never crashes the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays, scalar_dtypes

import ospo_fast as of
from ospo_fast.ops.native import core


def test_owen_values_rejects_invalid_rows() -> None:
    values = np.zeros(3)
    with pytest.raises(ValueError, match="coalitions row 1: start"):
        of.owen_values(3, [[0, 0], [2, 1], [0, 3]], values)
    with pytest.raises(ValueError, match="end exceeds n_segments"):
        of.owen_values(3, [[0, 0], [0, 4], [0, 3]], values)
    with pytest.raises(ValueError, match="repeats row 0"):
        of.owen_values(3, [[0, 0], [0, 0], [0, 3]], values)
    with pytest.raises(ValueError, match=r"must be written \(0, 0\)"):
        of.owen_values(3, [[0, 0], [2, 2], [0, 3]], values)
    with pytest.raises(ValueError, match="repeats row"):
        of.owen_values(2, np.array([[0, 0], [1, 0], [1, 0]], dtype=bool), values)


def test_owen_values_names_shape_dtype_and_nan() -> None:
    with pytest.raises(ValueError, match=r"coalitions must have shape \(2, 2\), got \(3, 2\)"):
        of.owen_values(3, np.zeros((3, 2), dtype=np.int32), np.zeros(2))
    with pytest.raises(TypeError, match="coalitions must be an integer array"):
        of.owen_values(3, np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="values must be finite"):
        of.owen_values(1, [[0, 0], [0, 1]], [0.0, np.nan])
    with pytest.raises(ValueError, match="n_segments must be >= 0"):
        of.owen_values(-1, [[0, 0]], [0.0])
    with pytest.raises(TypeError, match="values must be a real-valued array"):
        of.owen_values(1, [[0, 0], [0, 1]], ["a", "b"])


def test_batch_offsets_must_add_up() -> None:
    rows = np.array([[0, 0], [0, 1], [0, 0], [0, 1]], dtype=np.int32)
    with pytest.raises(ValueError, match="coalition_offsets must end at the length of values"):
        of.owen_values_batch([1, 1], [0, 2, 3], rows, np.zeros(4))
    with pytest.raises(ValueError, match="coalition_offsets must not decrease"):
        of.owen_values_batch([1, 1], [0, 3, 2], rows[:2].repeat(1, 0), np.zeros(2))
    with pytest.raises(ValueError, match=r"coalition_offsets must have shape \(3,\)"):
        of.owen_values_batch([1, 1], [0, 4], rows, np.zeros(4))
    with pytest.raises(ValueError, match="response 1, coalitions row 1: end exceeds"):
        of.owen_values_batch([1, 0], [0, 2, 4], rows, np.zeros(4))


def test_coalition_arguments() -> None:
    with pytest.raises(ValueError, match="w_max must be >= 1"):
        of.contiguous_coalitions(3, 0)
    with pytest.raises(ValueError, match="max_coalitions must be >= 2"):
        of.sample_coalitions(3, 2, 1, seed=0)
    with pytest.raises(ValueError, match="n_segments must be >= 0"):
        of.sample_coalitions(-2, 2, 5, seed=0)
    with pytest.raises(TypeError, match="n_segments must be an int"):
        of.contiguous_coalitions(2.5, 2)
    with pytest.raises(ValueError, match="n_segments must be >= 0, got -1 at index 1"):
        of.coalition_plan([3, -1], 2, 5, seed=0)


def test_redistribution_arguments() -> None:
    with pytest.raises(ValueError, match="mode must be 'prop', 'rank', 'hybrid' or 'signed'"):
        of.redistribute([1.0, 2.0], 1.0, "proportional")
    with pytest.raises(ValueError, match="credit must be finite"):
        of.redistribute([1.0, np.inf], 1.0)
    with pytest.raises(ValueError, match="advantage must be finite"):
        of.redistribute([1.0], float("nan"))
    with pytest.raises(ValueError, match=r"answer_mask must have shape \(2,\)"):
        of.redistribute([1.0, 2.0], 1.0, answer_mask=[True])
    with pytest.raises(ValueError, match="alpha must be in"):
        of.redistribute([1.0, 2.0], 1.0, "hybrid", alpha=1.5)
    with pytest.raises(ValueError, match=r"token_mask must have shape \(2, 3\)"):
        of.redistribute_batch(np.zeros((2, 3)), np.zeros(2), token_mask=np.ones((2, 2), dtype=bool))
    with pytest.raises(TypeError, match="token_mask must be a bool mask"):
        of.redistribute_batch(np.zeros((2, 3)), np.zeros(2), token_mask=np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match=r"advantages must have shape \(2,\)"):
        of.redistribute_batch(np.zeros((2, 3)), np.zeros(3), token_mask=np.ones((2, 3), dtype=bool))


def test_token_credit_arguments() -> None:
    with pytest.raises(ValueError, match=r"segment_spans must have shape \(1, 2\)"):
        of.token_credit([[0, 1], [1, 2]], [[0, 1]], [1.0])
    with pytest.raises(ValueError, match="token_offsets row 0 must satisfy 0 <= start <= end"):
        of.token_credit([[0, 1]], [[3, 1]], [1.0])
    with pytest.raises(ValueError, match="segment_spans row 0 must satisfy"):
        of.token_credit([[-1, 1]], [[0, 1]], [1.0])


def test_group_advantages_arguments() -> None:
    with pytest.raises(ValueError, match="not a multiple of group_size"):
        of.group_advantages(np.zeros(5), 2)
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        of.group_advantages(np.zeros(4), 1)
    with pytest.raises(ValueError, match="rewards must be finite"):
        of.group_advantages([0.0, np.nan], 2)
    with pytest.raises(ValueError, match="scale must be 'std' or 'none'"):
        of.group_advantages([0.0, 1.0], 2, scale="max")
    np.testing.assert_array_equal(of.group_advantages([0.0, 1.0], 1, scale="none"), [0.0, 0.0])


def test_ndcg_arguments() -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        of.ndcg_at_k(np.zeros((1, 2)), np.zeros((1, 2)), 0)
    with pytest.raises(ValueError, match=r"relevance must have shape \(1, 2\)"):
        of.ndcg_at_k(np.zeros((1, 2)), np.zeros((2, 2)), 1)
    with pytest.raises(ValueError, match="scores must be finite"):
        of.ndcg_at_k(np.array([[np.nan, 1.0]]), np.zeros((1, 2)), 1)
    with pytest.raises(ValueError, match="gain must be 'linear' or 'exp'"):
        of.ndcg_at_k(np.zeros((1, 2)), np.zeros((1, 2)), 1, gain="log")
    with pytest.raises(ValueError, match="pool_items row 0 repeats catalog row 1"):
        of.pool_ndcg(np.zeros((1, 3)), [[1, 1]], [[1.0, 0.0]], 5)
    with pytest.raises(ValueError, match="outside \\[0, 3\\)"):
        of.pool_ndcg(np.zeros((1, 3)), [[1, 3]], [[1.0, 0.0]], 5)
    with pytest.raises(ValueError, match="query_pool entries must be in"):
        of.pool_ndcg_dense(np.zeros((1, 2)), np.zeros((3, 2)), [[0, 1]], [[1.0, 0.0]], [1], 5)
    with pytest.raises(ValueError, match="must share d"):
        of.pool_ndcg_dense(np.zeros((1, 2)), np.zeros((3, 4)), [[0, 1]], [[1.0, 0.0]], [0], 5)


def test_exact_shapley_arguments() -> None:
    with pytest.raises(ValueError, match="values must have 2\\*\\*n entries"):
        of.exact_shapley(np.zeros(6))


any_array = arrays(
    dtype=st.one_of(scalar_dtypes(), st.just(np.dtype(bool))),
    shape=array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=any_array, b=any_array, c=any_array, d=any_array, n=st.integers(-3, 6))
def test_fuzzed_bindings_raise_clean_errors(a, b, c, d, n) -> None:
    """Random arrays of any dtype and shape into every binding: only clean Python errors."""
    calls = [
        lambda: core.owen_values(n, a, b),
        lambda: core.owen_values_batch(a, b, c, d),
        lambda: core.exact_shapley(a),
        lambda: core.token_credit(a, b, c),
        lambda: core.redistribute(a, 0.5, "rank", b, 0.5),
        lambda: core.redistribute_batch(a, b, "prop", c, d, 0.7),
        lambda: core.token_credit_batch(a, b, c, d, a),
        lambda: core.group_advantages(a, n, 1e-4, "std"),
        lambda: core.ndcg_at_k(a, b, max(n, 1), "linear"),
        lambda: core.coalition_plan(a, 2, 5, 0),
        lambda: core.PoolRanking(a, b, c, "linear", max(n, 0), max(n, 1)),
        lambda: core.token_advantages_batch(a, b, c, d, a, b, c, d, a, "prop", 0.7, False),
    ]
    for call in calls:
        try:
            call()
        except (ValueError, TypeError):
            pass


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 6),
    rows=arrays(np.int32, st.tuples(st.integers(0, 8), st.just(2)), elements=st.integers(-2, 8)),
)
def test_fuzzed_windows_never_crash(n: int, rows: np.ndarray) -> None:
    values = np.zeros(len(rows))
    try:
        phi = of.owen_values(n, rows, values)
    except ValueError:
        return
    assert phi.shape == (n,)
