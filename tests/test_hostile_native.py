"""Hostile input to the native ops (issue 13: sizes near the int64 limits, arrays that crossed
a process boundary, extreme values and corner shapes, errors that name no argument).

Every call runs in a child process (:mod:`hostile_isolation`), so a crash is a failed
case and not an aborted run, and is judged by :func:`hostile_fuzz.judge`: it equals the
plain twin in ``ospo_fast.ops.reference``, or raises a clean error naming an argument.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays, scalar_dtypes

from hostile_fuzz import ANY_FINITE, RAISES, Case, budgets, fuzz, judge_in_child, reference_outcome
from hostile_isolation import IsolatedCalls
from ospo_fast.ops import reference as ref
from ospo_fast.ops.packing import SegmentTokens, SpecialIds, _pack_members, _subset_members, _window_members

CORE = "ospo_fast.ops.native:core."
OPS = "ospo_fast:"
PACKING = "ospo_fast.ops.packing:"
I64_MAX = 2**63 - 1
# Counts past what any allocation holds, up to the int64 limit, and past it.
HUGE = (2**31 - 1, 2**31, 2**32, 2**40, 2**62, I64_MAX)
NEGATIVE = (-1, -(2**31), -(2**63))
BEYOND_INT64 = (2**63, 2**64, 2**100)

small_counts = st.integers(0, 5)
huge_counts = st.sampled_from(HUGE) | st.integers(2**62, I64_MAX)
signed_counts = small_counts | huge_counts | st.sampled_from(NEGATIVE)
# Segment counts whose int64 sum wraps to a small or a negative number.
wrapping_counts = st.sampled_from([[2**62] * 4, [2**62] * 4 + [3], [I64_MAX, 1, 2], [I64_MAX, I64_MAX, 2]])
unit_floats = st.floats(-1.0, 1.0, allow_nan=False)


@pytest.fixture(scope="module")
def calls() -> Iterator[IsolatedCalls]:
    child = IsolatedCalls()
    yield child
    child.close()


def is_small(*counts: int) -> bool:
    return all(0 <= c <= 5 for c in counts)


def plan_of(n: int) -> np.ndarray:
    """Valid windows int32 [K, 2] of n segments: sampled for a small n, two rows for a huge
    one (∅ and the first segment), ∅ alone for a negative one."""
    if is_small(n):
        return ref.sample_coalitions(n, 2, 5, seed=n)
    return np.array([[0, 0], [0, 1]] if n > 0 else [[0, 0]], dtype=np.int32)


def spans_of(draw: Any, count: int, text_length: int = 40) -> np.ndarray:
    """int64 [count, 2] half-open spans inside a text."""
    cuts = np.sort(np.array(draw(st.lists(st.integers(0, text_length), min_size=2 * count, max_size=2 * count))))
    return cuts.reshape(-1, 2).astype(np.int64)


def token_batch(draw: Any, n_responses: int) -> dict[str, np.ndarray]:
    """token_offsets [B, T, 2], token_mask and answer_mask [B, T] of a small step."""
    n_tokens = draw(st.integers(1, 4))
    offsets = np.stack([spans_of(draw, n_tokens, 45) for _ in range(n_responses)]).reshape(n_responses, n_tokens, 2)
    size = n_responses * n_tokens
    token_mask = np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size)), dtype=bool)
    token_mask = token_mask.reshape(n_responses, n_tokens)
    answer = np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size)), dtype=bool)
    return {"token_offsets": offsets, "token_mask": token_mask, "answer_mask": token_mask & answer.reshape(token_mask.shape)}


# ------------------------------------------------------------------ sizes near the int64 limits


@st.composite
def owen_batch_sizes(draw: Any) -> Case:
    counts = draw(st.lists(signed_counts, min_size=1, max_size=4) | wrapping_counts)
    plans = [plan_of(c) for c in counts]
    offsets = np.cumsum([0] + [len(p) for p in plans]).astype(np.int64)
    rows = np.concatenate(plans).astype(np.int32)
    values = np.array(draw(st.lists(unit_floats, min_size=len(rows), max_size=len(rows))))
    n = np.array(counts, dtype=np.int64)
    expected = ref.owen_values_batch(n, offsets, rows, values) if is_small(*counts) else RAISES
    target = draw(st.sampled_from([CORE + "owen_values_batch", OPS + "owen_values_batch"]))
    return Case("sum of n_segments near int64", target, (n, offsets, rows, values), expected=expected)


@st.composite
def token_advantage_sizes(draw: Any) -> Case:
    counts = draw(st.lists(signed_counts, min_size=1, max_size=3) | wrapping_counts)
    plans = [plan_of(c) for c in counts]
    offsets = np.cumsum([0] + [len(p) for p in plans]).astype(np.int64)
    rows = np.concatenate(plans).astype(np.int32)
    values = np.array(draw(st.lists(unit_floats, min_size=len(rows), max_size=len(rows))))
    spans = spans_of(draw, sum(counts) if is_small(*counts) else draw(st.integers(0, 3)))
    tokens = token_batch(draw, len(counts))
    advantages = np.array(draw(st.lists(unit_floats, min_size=len(counts), max_size=len(counts))))
    inputs = dict(n_segments=np.array(counts, dtype=np.int64), coalition_offsets=offsets, coalitions=rows,
                  values=values, segment_spans=spans, **tokens, advantages=advantages)
    on_core = draw(st.booleans())  # the binding also returns the Owen values
    target = (CORE if on_core else OPS) + "token_advantages_batch"
    kwargs = {"mode": "rank", "alpha": 0.7, "invert_negative": False} if on_core else {"mode": "rank"}
    expected = ref.token_advantages_batch(**inputs, mode="rank", return_phi=on_core) if is_small(*counts) else RAISES
    return Case("sum of n_segments near int64", target, kwargs=inputs | kwargs, expected=expected)


@st.composite
def owen_values_sizes(draw: Any) -> Case:
    n = draw(signed_counts)
    rows = plan_of(n)
    values = np.array(draw(st.lists(unit_floats, min_size=len(rows), max_size=len(rows))))
    expected = ref.owen_values(n, rows, values) if is_small(n) else RAISES
    target = draw(st.sampled_from([CORE + "owen_values", OPS + "owen_values"]))
    return Case("n_segments near int64", target, (n, rows, values), expected=expected)


@st.composite
def coalition_sizes(draw: Any) -> Case:
    """The public coalition ops, whose counts may even pass int64."""
    n = draw(signed_counts | st.sampled_from(BEYOND_INT64))
    w_max = draw(st.integers(0, 4) | huge_counts | st.sampled_from(BEYOND_INT64))
    budget = draw(st.integers(1, 6) | huge_counts | st.sampled_from(BEYOND_INT64))
    seed = draw(st.sampled_from([0, 7, 2**63, 2**64 - 1, 2**64]))
    valid_w, valid_budget, valid_seed = 1 <= w_max <= I64_MAX, 2 <= budget <= I64_MAX, seed < 2**64
    op = draw(st.sampled_from(["contiguous_coalitions", "sample_coalitions", "sample_subset_coalitions", "coalition_plan"]))
    if op == "contiguous_coalitions":
        args, kwargs, valid = (n, w_max), {}, is_small(n) and valid_w
        want = lambda: ref.contiguous_coalitions(n, w_max)
    elif op == "sample_coalitions":
        args, kwargs, valid = (n, w_max, budget), {"seed": seed}, is_small(n) and valid_w and valid_budget and valid_seed
        want = lambda: ref.sample_coalitions(n, w_max, budget, seed=seed)
    elif op == "sample_subset_coalitions":
        args, kwargs, valid = (n, budget), {"seed": seed}, is_small(n) and valid_budget and valid_seed
        want = lambda: ref.sample_subset_coalitions(n, budget, seed=seed)
    else:
        counts = draw(st.lists(signed_counts, min_size=0, max_size=3))
        args, kwargs = (np.array(counts, dtype=np.int64), w_max, budget), {"seed": seed}
        valid = is_small(*counts) and valid_w and valid_budget and valid_seed
        want = lambda: ref.coalition_plan(np.array(counts), w_max, budget, seed=seed)
    return Case("coalition counts near int64", OPS + op, args, kwargs, want() if valid else RAISES)


@st.composite
def pool_ranking_sizes(draw: Any) -> Case:
    """A PoolRanking of n_items catalog rows fed one tile of L rows at tile_start."""
    n_items = draw(small_counts | huge_counts | st.sampled_from(NEGATIVE))
    k = draw(st.integers(1, 5) | huge_counts)
    tile_start = draw(st.just(0) | huge_counts | st.sampled_from(NEGATIVE))
    length = draw(st.integers(1, 4))
    tile = np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=length, max_size=length)))[None, :]
    local = np.array(draw(st.lists(st.integers(-1, length - 1), min_size=1, max_size=3, unique=True)))
    items = np.where(local >= 0, local + max(tile_start, 0), -1).astype(np.int64)[None, :]
    relevance = np.array(draw(st.lists(st.sampled_from([0.0, 1.0, 3.0]), min_size=local.size, max_size=local.size)))
    pool_scores = np.where(local >= 0, tile[0, np.maximum(local, 0)], 0.0)[None, :]
    in_range = 0 <= tile_start <= n_items - length
    expected = ref.pool_ndcg(tile, local[None, :], relevance[None, :], k) if in_range else RAISES
    args = (pool_scores, items, relevance[None, :], "linear", n_items, k, tile, tile_start)
    names = ("pool_items", "n_items", "k", "tile_start", "tile_scores")
    return Case("PoolRanking tiles near int64", "hostile_calls:pool_ranking_ndcg", args, expected=expected, names=names)


@st.composite
def packing_sizes(draw: Any) -> Case:
    n_segments = draw(st.integers(0, 3))
    lengths = draw(st.lists(st.integers(0, 3), min_size=n_segments, max_size=n_segments))
    token_offsets = np.cumsum([0, *lengths]).astype(np.int64)
    token_ids = np.arange(token_offsets[-1], dtype=np.int32) + 5
    tokens = SegmentTokens(token_ids, token_offsets, np.array([0, n_segments], dtype=np.int64))
    windows = ref.contiguous_coalitions(n_segments, 3)
    offsets = np.array([0, len(windows)], dtype=np.int64)
    max_length = draw(st.integers(2, 6) | huge_counts | st.sampled_from(NEGATIVE))
    special = SpecialIds(*draw(st.tuples(*[st.integers(0, 4) | huge_counts] * 3)))
    longest = 2 + min(max(lengths, default=0) * n_segments, max(max_length - 2, 0)) if max_length >= 2 else 0
    pad_to = draw(st.none() | st.integers(max(longest - 1, 0), longest + 2) | huge_counts | st.sampled_from(NEGATIVE))
    valid = max_length >= 2 and (pad_to is None or 0 <= pad_to < 2**20)
    members = _window_members(tokens, offsets, windows)
    expected = reference_outcome(lambda: _pack_members(tokens, members, special, max_length, pad_to)) if valid else RAISES
    args = (token_ids, token_offsets, tokens.segment_offsets, offsets, windows)
    kwargs = {"cls_id": special.cls_id, "sep_id": special.sep_id, "pad_id": special.pad_id,
              "max_length": max_length, "pad_to": pad_to}
    return Case("pad_to and max_length near int64", CORE + "pack_query_windows", args, kwargs, expected)


@st.composite
def scalar_sizes(draw: Any) -> Case:
    """group_size, k and character offsets near the int64 limit."""
    op = draw(st.sampled_from(["group_advantages", "ndcg_at_k", "token_credit"]))
    if op == "group_advantages":
        size = draw(st.integers(1, 4) | huge_counts)
        rewards = np.array(draw(st.lists(unit_floats, max_size=6)))
        args = (rewards, size)
        want = lambda: ref.group_advantages(rewards, size)
        valid = size >= 2 and len(rewards) % size == 0
    elif op == "ndcg_at_k":
        k = draw(st.integers(1, 4) | huge_counts)
        scores = np.array(draw(st.lists(unit_floats, min_size=3, max_size=3)))[None, :]
        relevance = np.array([[1.0, 0.0, 2.0]])
        args, valid = (scores, relevance, k), True
        want = lambda: ref.ndcg_at_k(scores, relevance, k)
    else:
        edge = draw(st.sampled_from([I64_MAX, I64_MAX - 1, 2**62]))
        cuts = sorted(draw(st.lists(st.integers(edge - 8, edge), min_size=4, max_size=4)))
        spans, tokens = np.array([cuts[:2]]), np.array([cuts[1:3], cuts[2:4]])
        phi = np.array([draw(unit_floats)])
        args, valid = (spans, tokens, phi), True
        want = lambda: ref.token_credit(spans, tokens, phi)
    return Case("counts and offsets near int64", OPS + op, args, expected=want() if valid else RAISES)


@st.composite
def extreme_offsets(draw: Any) -> Case:
    """CSR offsets holding values near the int64 limits, or negative ones."""
    bad = draw(huge_counts | st.sampled_from(NEGATIVE))
    op = draw(st.sampled_from(["owen_values_batch", "token_credit_batch", "pack_query_windows"]))
    if op == "owen_values_batch":
        rows = np.array([[0, 0], [0, 1]] * 2, dtype=np.int32)
        offsets = np.array(draw(st.sampled_from([[0, bad, 4], [bad, 2, 4], [0, 2, bad]])), dtype=np.int64)
        args = (np.array([1, 1]), offsets, rows, np.zeros(4))
    elif op == "token_credit_batch":
        phi_offsets = np.array(draw(st.sampled_from([[0, bad, 2], [bad, 1, 2]])), dtype=np.int64)
        args = (np.array([[0, 2], [2, 4]]), phi_offsets, np.ones(2), np.zeros((2, 1, 2), dtype=np.int64),
                np.ones((2, 1), dtype=bool))
    else:
        which = draw(st.integers(0, 2))
        arrays_ = [np.array([0, 1, 2], dtype=np.int64), np.array([0, 2], dtype=np.int64), np.array([0, 1], dtype=np.int64)]
        arrays_[which] = arrays_[which].copy()
        arrays_[which][draw(st.integers(0, len(arrays_[which]) - 1))] = bad
        args = (np.array([5, 6], dtype=np.int32), *arrays_, np.array([[0, 1]], dtype=np.int32))
        return Case("offsets near int64", CORE + op, args,
                    {"cls_id": 1, "sep_id": 2, "pad_id": 0, "max_length": 8})
    return Case("offsets near int64", OPS + op, args)


SIZE_CASES = st.one_of(owen_batch_sizes(), token_advantage_sizes(), owen_values_sizes(), coalition_sizes(),
                       pool_ranking_sizes(), packing_sizes(), scalar_sizes(), extreme_offsets())


@pytest.mark.parametrize("examples", budgets(250))
def test_sizes_near_int64_limits(calls: IsolatedCalls, examples: int) -> None:
    fuzz(SIZE_CASES, lambda case: judge_in_child(calls, case), examples)


# ------------------------------------------------------------------ arrays that crossed a process boundary

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.longlong, np.uint8, np.uint16, np.uint32, np.uint64,
              np.ulonglong]
SIGNED_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.longlong]
REAL_DTYPES = [*INT_DTYPES, np.float16, np.float32, np.float64, np.longdouble]
# What each kind of argument takes: counts and offsets (>= 0), signed rows (-1 padding),
# real values, bool masks (or 0/1 integers), and masks that must be bool (a 0/1 integer
# array is read as windows there).
ACCEPTED = {"count": INT_DTYPES, "signed": SIGNED_DTYPES, "real": REAL_DTYPES, "mask": [np.bool_, *INT_DTYPES],
            "bool": [np.bool_]}


def dtypes_of(kind: str) -> st.SearchStrategy[np.dtype]:
    """A dtype ``kind`` accepts, in native or swapped byte order."""
    def orders(dtype: type) -> st.SearchStrategy[np.dtype]:
        native = np.dtype(dtype)
        return st.sampled_from([native, native.newbyteorder(">")]) if native.itemsize > 1 else st.just(native)

    return st.sampled_from(ACCEPTED[kind]).flatmap(orders)


def through_pickle(array: np.ndarray) -> np.ndarray:
    return pickle.loads(pickle.dumps(array))


def small_step(draw: Any) -> dict[str, np.ndarray]:
    """Inputs of token_advantages_batch for a small step (also feeding its parts)."""
    counts = draw(st.lists(small_counts, min_size=1, max_size=3))
    offsets, rows = ref.coalition_plan(np.array(counts), 2, 5, seed=1)
    values = np.array(draw(st.lists(unit_floats, min_size=len(rows), max_size=len(rows))))
    advantages = np.array(draw(st.lists(unit_floats, min_size=len(counts), max_size=len(counts))))
    return dict(n_segments=np.array(counts, dtype=np.int64), coalition_offsets=offsets, coalitions=rows, values=values,
                segment_spans=spans_of(draw, sum(counts)), **token_batch(draw, len(counts)), advantages=advantages)


# op -> (target, {argument: kind}, builder of (canonical kwargs, reference of kwargs))
def _owen_values(draw: Any) -> tuple[dict, Callable]:
    n = draw(small_counts)
    masks = draw(st.booleans())
    rows = ref.sample_subset_coalitions(n, 6, seed=n) if masks else ref.sample_coalitions(n, 3, 6, seed=n)
    values = np.array(draw(st.lists(unit_floats, min_size=len(rows), max_size=len(rows))))
    return {"n_segments": n, "coalitions": rows, "values": values}, lambda a: ref.owen_values(**a)


def _owen_values_batch(draw: Any) -> tuple[dict, Callable]:
    step = small_step(draw)
    keys = ("n_segments", "coalition_offsets", "coalitions", "values")
    return {k: step[k] for k in keys}, lambda a: ref.owen_values_batch(**a)


def _token_advantages(draw: Any) -> tuple[dict, Callable]:
    step = small_step(draw) | {"mode": draw(st.sampled_from(["prop", "rank", "hybrid", "signed"])),
                               "estimator": draw(st.sampled_from(["spec", "stratified"]))}
    if step["mode"] == "signed":
        step["credit_scale"] = np.full(len(step["advantages"]), 1.5)
    return step, lambda a: ref.token_advantages_batch(**a)


def _token_credit_batch(draw: Any) -> tuple[dict, Callable]:
    step = small_step(draw)
    phi_offsets = np.cumsum([0, *step["n_segments"]]).astype(np.int64)
    phi = np.array(draw(st.lists(unit_floats, min_size=int(phi_offsets[-1]), max_size=int(phi_offsets[-1]))))
    inputs = {"segment_spans": step["segment_spans"], "phi_offsets": phi_offsets, "phi": phi,
              "token_offsets": step["token_offsets"], "token_mask": step["token_mask"]}
    return inputs, lambda a: ref.token_credit_batch(**a)


def _redistribute_batch(draw: Any) -> tuple[dict, Callable]:
    step = small_step(draw)
    credit = np.array(draw(st.lists(unit_floats, min_size=step["token_mask"].size, max_size=step["token_mask"].size)))
    inputs = {"credit": credit.reshape(step["token_mask"].shape), "advantages": step["advantages"],
              "mode": draw(st.sampled_from(["prop", "rank", "hybrid"])), "token_mask": step["token_mask"],
              "answer_mask": step["answer_mask"]}
    return inputs, lambda a: ref.redistribute_batch(**a)


def _redistribute(draw: Any) -> tuple[dict, Callable]:
    n = draw(st.integers(1, 5))
    credit = np.array(draw(st.lists(st.sampled_from([-1.0, 0.0, 0.5, 2.0]), min_size=n, max_size=n)))
    answer = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    inputs = {"credit": credit, "advantage": 0.8, "mode": draw(st.sampled_from(["prop", "rank", "hybrid"])),
              "answer_mask": answer}
    return inputs, lambda a: ref.redistribute(**a)


def _token_credit(draw: Any) -> tuple[dict, Callable]:
    n = draw(st.integers(0, 3))
    inputs = {"segment_spans": spans_of(draw, n), "token_offsets": spans_of(draw, draw(st.integers(1, 4))),
              "phi": np.array(draw(st.lists(unit_floats, min_size=n, max_size=n)))}
    return inputs, lambda a: ref.token_credit(**a)


def _ndcg_at_k(draw: Any) -> tuple[dict, Callable]:
    scores = np.array(draw(st.lists(st.sampled_from([0.0, 0.25, 1.0, 3.0]), min_size=6, max_size=6))).reshape(2, 3)
    relevance = np.array(draw(st.lists(st.sampled_from([0.0, 1.0, 2.0]), min_size=6, max_size=6))).reshape(2, 3)
    return {"scores": scores, "relevance": relevance, "k": 2}, lambda a: ref.ndcg_at_k(**a)


def _pool_rows(draw: Any, n_items: int, n_pools: int) -> tuple[np.ndarray, np.ndarray]:
    """pool_items [S, P] (unique rows, -1 padding) and pool_relevance [S, P]."""
    size = draw(st.integers(1, 3))
    items = np.full((n_pools, size), -1, dtype=np.int64)
    for row in items:
        chosen = draw(st.lists(st.integers(0, n_items - 1), min_size=1, max_size=size, unique=True))
        row[: len(chosen)] = chosen
    relevance = np.array(draw(st.lists(st.sampled_from([0.0, 1.0, 3.0]), min_size=items.size, max_size=items.size)))
    return items, relevance.reshape(items.shape)


def _pool_ndcg(draw: Any) -> tuple[dict, Callable]:
    scores = np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=8, max_size=8))).reshape(2, 4)
    items, relevance = _pool_rows(draw, 4, 2)
    return {"scores": scores, "pool_items": items, "pool_relevance": relevance, "k": 3}, lambda a: ref.pool_ndcg(**a)


def _pool_ndcg_dense(draw: Any) -> tuple[dict, Callable]:
    corpus = np.array(draw(st.lists(st.sampled_from([-1.0, 0.0, 0.5, 1.0]), min_size=10, max_size=10))).reshape(5, 2)
    queries = np.array(draw(st.lists(st.sampled_from([-0.5, 0.0, 1.0]), min_size=6, max_size=6))).reshape(3, 2)
    items, relevance = _pool_rows(draw, 5, 2)
    owner = np.array(draw(st.lists(st.integers(0, 1), min_size=3, max_size=3)), dtype=np.int64)
    inputs = {"queries": queries, "corpus": corpus, "pool_items": items, "pool_relevance": relevance,
              "query_pool": owner, "k": 4}
    return inputs, lambda a: ref.pool_ndcg_dense(**a)


def _group_advantages(draw: Any) -> tuple[dict, Callable]:
    rewards = np.array(draw(st.lists(st.sampled_from([0.0, 0.25, 1.0, 3.0]), min_size=6, max_size=6)))
    return {"rewards": rewards, "group_size": 3}, lambda a: ref.group_advantages(**a)


def _exact_shapley(draw: Any) -> tuple[dict, Callable]:
    n = draw(st.integers(0, 3))
    return {"values": np.array(draw(st.lists(unit_floats, min_size=2**n, max_size=2**n)))}, \
        lambda a: ref.exact_shapley(**a)


def _coalition_plan(draw: Any) -> tuple[dict, Callable]:
    counts = np.array(draw(st.lists(small_counts, max_size=3)), dtype=np.int64)
    return {"n_segments": counts, "w_max": 2, "max_coalitions": 4, "seed": 3}, lambda a: ref.coalition_plan(**a)


def _packed(draw: Any, subsets: bool) -> tuple[dict, Callable]:
    counts = draw(st.lists(st.integers(0, 3), min_size=1, max_size=2))
    lengths = draw(st.lists(st.integers(0, 2), min_size=sum(counts), max_size=sum(counts)))
    token_offsets = np.cumsum([0, *lengths]).astype(np.int64)
    segment_offsets = np.cumsum([0, *counts]).astype(np.int64)
    if subsets:
        plans = [ref.sample_subset_coalitions(c, 4, seed=c) for c in counts]
        width = max(counts)
        coalitions = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in plans])
    else:
        plans = [ref.contiguous_coalitions(c, 2) for c in counts]
        coalitions = np.concatenate(plans)
    inputs = {"token_ids": np.arange(token_offsets[-1], dtype=np.int32) + 1, "token_offsets": token_offsets,
              "segment_offsets": segment_offsets, "coalition_offsets": np.cumsum([0, *map(len, plans)]).astype(np.int64),
              "coalitions": coalitions}
    special = SpecialIds(101, 102, 0)
    members = _subset_members if subsets else _window_members

    def reference(a: dict) -> tuple:
        tokens = SegmentTokens(a["token_ids"].astype(np.int32), a["token_offsets"].astype(np.int64),
                               a["segment_offsets"].astype(np.int64))
        offsets = a["coalition_offsets"].astype(np.int64)
        return _pack_members(tokens, members(tokens, offsets, a["coalitions"]), special, 5, None)

    return inputs, reference


KINDS: dict[str, tuple[str, dict[str, str], Callable]] = {
    "owen_values": (OPS + "owen_values", {"coalitions": "count", "values": "real"}, _owen_values),
    "owen_values_batch": (OPS + "owen_values_batch", {"n_segments": "count", "coalition_offsets": "count",
                                                      "coalitions": "count", "values": "real"}, _owen_values_batch),
    "token_advantages_batch": (OPS + "token_advantages_batch", {
        "n_segments": "count", "coalition_offsets": "count", "coalitions": "count", "values": "real",
        "segment_spans": "count", "token_offsets": "count", "token_mask": "mask", "answer_mask": "mask",
        "advantages": "real"}, _token_advantages),
    "token_credit_batch": (OPS + "token_credit_batch", {"segment_spans": "count", "phi_offsets": "count",
                                                        "phi": "real", "token_offsets": "count",
                                                        "token_mask": "mask"}, _token_credit_batch),
    "redistribute_batch": (OPS + "redistribute_batch", {"credit": "real", "advantages": "real",
                                                        "token_mask": "mask", "answer_mask": "mask"},
                           _redistribute_batch),
    "redistribute": (OPS + "redistribute", {"credit": "real", "answer_mask": "mask"}, _redistribute),
    "token_credit": (OPS + "token_credit", {"segment_spans": "count", "token_offsets": "count", "phi": "real"},
                     _token_credit),
    "ndcg_at_k": (OPS + "ndcg_at_k", {"scores": "real", "relevance": "real"}, _ndcg_at_k),
    "pool_ndcg": (OPS + "pool_ndcg", {"scores": "real", "pool_items": "signed", "pool_relevance": "real"}, _pool_ndcg),
    "pool_ndcg_dense": (OPS + "pool_ndcg_dense", {"queries": "real", "corpus": "real", "pool_items": "signed",
                                                  "pool_relevance": "real", "query_pool": "count"}, _pool_ndcg_dense),
    "group_advantages": (OPS + "group_advantages", {"rewards": "real"}, _group_advantages),
    "exact_shapley": (OPS + "exact_shapley", {"values": "real"}, _exact_shapley),
    "coalition_plan": (OPS + "coalition_plan", {"n_segments": "count"}, _coalition_plan),
    "pack_query_windows": ("hostile_calls:pack", {
        "token_ids": "count", "token_offsets": "count", "segment_offsets": "count", "coalition_offsets": "count",
        "coalitions": "count"}, lambda draw: _packed(draw, False)),
    "pack_query_subsets": ("hostile_calls:pack", {
        "token_ids": "count", "token_offsets": "count", "segment_offsets": "count", "coalition_offsets": "count",
        "coalitions": "mask"}, lambda draw: _packed(draw, True)),
}


@st.composite
def pickled_inputs(draw: Any) -> Case:
    """A public op on small valid inputs, each array in a dtype it accepts, sent pickled."""
    op = draw(st.sampled_from(sorted(KINDS)))
    target, kinds, build = KINDS[op]
    inputs, reference = build(draw)
    if op == "owen_values" and inputs["coalitions"].dtype == bool:
        kinds = kinds | {"coalitions": "bool"}
    sent = dict(inputs)
    for name, kind in kinds.items():
        sent[name] = inputs[name].astype(draw(dtypes_of(kind)))
    # The reference sees exactly the values that were sent (float16 rounds them).
    seen = {name: np.asarray(value).astype(inputs[name].dtype) if name in kinds else value
            for name, value in sent.items()}
    extra = {"subsets": op == "pack_query_subsets"} if op.startswith("pack") else {}
    return Case(f"pickled {op}", target, kwargs=sent | extra, expected=reference_outcome(lambda: reference(seen)),
                names=tuple(kinds), fresh_dtypes=False)


@st.composite
def pickled_bindings(draw: Any) -> Case:
    """The bindings themselves, on arrays of exactly their dtypes after a pickle round trip:
    dtype objects are compared by kind and size, not identity."""
    which = draw(st.sampled_from(["owen_values", "redistribute_batch", "pool_ranking", "screened"]))
    if which == "owen_values":
        inputs, reference = _owen_values(draw)
        rows = inputs["coalitions"] if inputs["coalitions"].dtype == bool else inputs["coalitions"].astype(np.int32)
        args = (inputs["n_segments"], through_pickle(rows), through_pickle(inputs["values"]))
        return Case("pickled binding owen_values", CORE + "owen_values", args, expected=reference(inputs),
                    fresh_dtypes=False)
    if which == "redistribute_batch":
        inputs, reference = _redistribute_batch(draw)
        args = (inputs["credit"], inputs["advantages"], inputs["mode"], inputs["token_mask"], inputs["answer_mask"], 0.7)
        return Case("pickled binding redistribute_batch", CORE + "redistribute_batch",
                    tuple(through_pickle(a) if isinstance(a, np.ndarray) else a for a in args),
                    expected=reference(inputs), fresh_dtypes=False)
    inputs, reference = _pool_ndcg_dense(draw)
    items, relevance = inputs["pool_items"][inputs["query_pool"]], inputs["pool_relevance"][inputs["query_pool"]]
    queries, corpus = inputs["queries"].astype(np.float32), inputs["corpus"].astype(np.float32)
    expected = reference(inputs)
    if which == "pool_ranking":
        scores = queries.astype(np.float64) @ corpus.astype(np.float64).T  # [C, N]
        tile = scores.astype(draw(st.sampled_from([np.float32, np.float64])))
        pool_scores = np.take_along_axis(scores, np.maximum(items, 0), axis=1)
        args = (pool_scores, items, relevance, "linear", corpus.shape[0], inputs["k"], tile, 0)
        return Case("pickled binding PoolRanking", "hostile_calls:pool_ranking_ndcg",
                    tuple(through_pickle(a) if isinstance(a, np.ndarray) else a for a in args),
                    expected=ref.pool_ndcg(tile.astype(np.float64), items, relevance, inputs["k"]), fresh_dtypes=False,
                    names=("pool_scores", "pool_items", "pool_relevance", "tile_scores"))
    args = (corpus, queries, items, relevance, inputs["k"], "linear")
    return Case("pickled binding ScreenedCorpus", "hostile_calls:screened_ndcg",
                tuple(through_pickle(a) if isinstance(a, np.ndarray) else a for a in args), expected=expected,
                fresh_dtypes=False, names=("corpus", "queries", "pool_items", "pool_relevance"))


@pytest.mark.parametrize("examples", budgets(250))
def test_pickled_arrays_of_every_accepted_dtype(calls: IsolatedCalls, examples: int) -> None:
    fuzz(st.one_of(pickled_inputs(), pickled_bindings()), lambda case: judge_in_child(calls, case), examples)


# ------------------------------------------------------------------ extreme values and corner shapes

MAX = float(np.finfo(np.float64).max)
EDGE_FLOATS = (0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-300, 1.0, -1.0, 0.5, 1e300, -1e300, 1.7e308,
               -1.7e308, MAX, -MAX, MAX / 4, -MAX / 4)
extreme_floats = st.sampled_from(EDGE_FLOATS) | st.floats(allow_nan=False, allow_infinity=False)
hostile_floats = extreme_floats | st.sampled_from([float("nan"), float("inf"), float("-inf")])


def float_array(draw: Any, size: int, elements: st.SearchStrategy = hostile_floats) -> np.ndarray:
    return np.array(draw(st.lists(elements, min_size=size, max_size=size)), dtype=np.float64)


def finite(*arrays_: Any) -> bool:
    return all(np.isfinite(np.asarray(a, dtype=np.float64)).all() for a in arrays_)


def expected_if(valid: bool, reference: Callable[[], Any]) -> Any:
    """The reference's outcome for valid inputs; RAISES for invalid ones (NaN, inf, a
    negative eps), which the reference is not even run on."""
    return reference_outcome(reference) if valid else RAISES


# Mode signed's credit scales: ordinary, tiny, huge (the result may leave float64), invalid.
hostile_scales = st.sampled_from([0.0, 1.0, 2.5, 1e-300, 1e300, MAX]) | st.sampled_from([float("nan"), -1.0])


@st.composite
def extreme_redistribution(draw: Any) -> Case:
    mode = draw(st.sampled_from(["prop", "rank", "hybrid", "signed"]))
    alpha = draw(st.sampled_from([0.0, 0.3, 1.0]))
    scale = draw(hostile_scales) if mode == "signed" else None
    scale_ok = scale is None or (np.isfinite(scale) and scale >= 0)
    if draw(st.booleans()):
        n = draw(st.integers(0, 5))
        credit = float_array(draw, n)
        if n > 2 and draw(st.booleans()):
            credit[: n // 2] = credit[0]  # ties
        advantage = draw(hostile_floats)
        answer = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
        want = expected_if(finite(credit, advantage) and scale_ok,
                           lambda: ref.redistribute(credit, advantage, mode, answer_mask=answer, alpha=alpha,
                                                    credit_scale=scale))
        return Case("extreme credit and advantage", OPS + "redistribute", (credit, advantage, mode),
                    {"answer_mask": answer, "alpha": alpha, "credit_scale": scale}, want)
    rows, cols = draw(st.integers(0, 3)), draw(st.integers(0, 4))
    credit = float_array(draw, rows * cols).reshape(rows, cols)
    advantages = float_array(draw, rows)
    token_mask = np.array(draw(st.lists(st.booleans(), min_size=rows * cols, max_size=rows * cols)), dtype=bool)
    token_mask = token_mask.reshape(rows, cols)
    scales = None if scale is None else np.full(rows, scale)
    want = expected_if(finite(credit, advantages) and (scale_ok or rows == 0),
                       lambda: ref.redistribute_batch(credit, advantages, mode, token_mask=token_mask, alpha=alpha,
                                                      credit_scale=scales))
    return Case("extreme credit and advantages", OPS + "redistribute_batch", (credit, advantages, mode),
                {"token_mask": token_mask, "alpha": alpha, "credit_scale": scales}, want)


@st.composite
def extreme_group_advantages(draw: Any) -> Case:
    size = draw(st.integers(1, 4))
    groups = draw(st.integers(0, 3))
    scale = draw(st.sampled_from(["std", "none"]))
    eps = draw(st.sampled_from([0.0, 5e-324, 1e-300, 1e-4, 1.0, 1e300, MAX]) | st.sampled_from([float("nan"), -1.0]))
    if draw(st.booleans()):  # constant groups, of any value
        rewards = np.repeat(float_array(draw, groups, extreme_floats), size)
    else:
        rewards = float_array(draw, groups * size)
    valid = finite(rewards) and eps >= 0 and np.isfinite(eps) and (scale == "none" or size >= 2)
    want = expected_if(valid, lambda: ref.group_advantages(rewards, size, eps, scale))
    return Case("extreme rewards, eps = 0, constant groups", OPS + "group_advantages", (rewards, size, eps, scale),
                expected=want)


@st.composite
def extreme_coalition_values(draw: Any) -> Case:
    op = draw(st.sampled_from(["owen_values", "exact_shapley", "token_advantages_batch"]))
    if op == "exact_shapley":
        values = float_array(draw, 2 ** draw(st.integers(0, 3)))
        want = expected_if(finite(values), lambda: ref.exact_shapley(values))
        return Case("extreme coalition values", OPS + op, (values,), expected=want)
    if op == "owen_values":
        n = draw(st.integers(0, 4))
        rows = ref.sample_coalitions(n, 2, 8, seed=n)
        values = float_array(draw, len(rows))
        want = expected_if(finite(values), lambda: ref.owen_values(n, rows, values))
        return Case("extreme coalition values", OPS + op, (n, rows, values), expected=want)
    step = small_step(draw)
    step["values"] = float_array(draw, len(step["values"]))
    step["advantages"] = float_array(draw, len(step["advantages"]))
    step["estimator"] = draw(st.sampled_from(["spec", "stratified"]))
    mode = draw(st.sampled_from(["prop", "rank", "hybrid", "signed"]))
    if mode == "signed":
        step["credit_scale"] = np.full(len(step["advantages"]), draw(st.sampled_from([0.0, 1.0, 1e300])))
    want = expected_if(finite(step["values"], step["advantages"]), lambda: ref.token_advantages_batch(**step, mode=mode))
    return Case("extreme coalition values and advantages", OPS + op, kwargs=step | {"mode": mode}, expected=want)


@st.composite
def extreme_gains(draw: Any) -> Case:
    gain = draw(st.sampled_from(["linear", "exp"]))
    relevance_values = st.sampled_from([0.0, 1.0, 3.0, 500.0, 1020.0, 1023.9, 1024.0, 1100.0, 1e300, MAX, -1.0])
    relevance = float_array(draw, 6, relevance_values).reshape(2, 3)
    scores = float_array(draw, 6, extreme_floats).reshape(2, 3)
    if draw(st.booleans()):
        want = reference_outcome(lambda: ref.ndcg_at_k(scores, relevance, 3, gain))
        return Case("large relevance", OPS + "ndcg_at_k", (scores, relevance, 3, gain), expected=want)
    items = np.array([[0, 2, -1], [1, -1, -1]], dtype=np.int64)
    want = reference_outcome(lambda: ref.pool_ndcg(scores, items, relevance, 2, gain))
    return Case("large relevance", OPS + "pool_ndcg", (scores, items, relevance, 2, gain), expected=want)


@st.composite
def dense_corner_shapes(draw: Any) -> Case:
    """pool_ndcg_dense on empty corpora, queries and pools, and on embeddings of any size."""
    n_items, n_queries, dim = draw(st.integers(0, 3)), draw(st.integers(0, 2)), draw(st.integers(0, 3))
    # Powers of two keep float32 products exact, so the tiled kernel's ranking is the reference's.
    magnitude = draw(st.sampled_from([1.0, 2.0**-100, 2.0**64, 2.0**100, 2.0**127]))
    corpus = (float_array(draw, n_items * dim, st.sampled_from([-1.0, 0.0, 0.5, 1.0])) * magnitude).reshape(n_items, dim)
    queries = float_array(draw, n_queries * dim, st.sampled_from([-1.0, 0.0, 1.0])).reshape(n_queries, dim)
    pool_size = draw(st.integers(0, 3))
    items = np.full((1, pool_size), -1, dtype=np.int64)
    chosen = draw(st.lists(st.integers(0, n_items - 1), max_size=min(pool_size, n_items), unique=True)) if n_items else []
    items[0, : len(chosen)] = chosen
    relevance = float_array(draw, pool_size, st.sampled_from([0.0, 1.0, 3.0])).reshape(1, pool_size)
    owner = np.zeros(n_queries, dtype=np.int64)
    kernel = draw(st.sampled_from(["auto", "tiled"]))
    corpus32, queries32 = corpus.astype(np.float32), queries.astype(np.float32)
    want = reference_outcome(lambda: ref.pool_ndcg_dense(queries32, corpus32, items, relevance, owner, 2))
    return Case("empty corpus, queries or pools; large embeddings", OPS + "pool_ndcg_dense",
                (queries32, corpus32, items, relevance, owner, 2), {"cpu_kernel": kernel}, want,
                may_raise=magnitude > 2.0**120)


EXTREME_CASES = st.one_of(extreme_redistribution(), extreme_group_advantages(), extreme_coalition_values(),
                          extreme_gains(), dense_corner_shapes())


@pytest.mark.parametrize("examples", budgets(300))
def test_extreme_values_and_corner_shapes(calls: IsolatedCalls, examples: int) -> None:
    fuzz(EXTREME_CASES, lambda case: judge_in_child(calls, case), examples)


# ------------------------------------------------------------------ garbage: errors must name an argument

any_array = arrays(dtype=st.one_of(scalar_dtypes(), st.just(np.dtype(bool))),
                   shape=array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
# target -> how many garbage arrays it takes, and the rest of its arguments
GARBAGE_TARGETS: dict[str, Callable[[Any], tuple[tuple, dict]]] = {
    OPS + "owen_values": lambda draw: ((draw(st.integers(-3, 6) | huge_counts), draw(any_array), draw(any_array)), {}),
    OPS + "owen_values_batch": lambda draw: (tuple(draw(any_array) for _ in range(4)), {}),
    OPS + "exact_shapley": lambda draw: ((draw(any_array),), {}),
    OPS + "token_credit": lambda draw: (tuple(draw(any_array) for _ in range(3)), {}),
    OPS + "redistribute": lambda draw: ((draw(any_array), draw(hostile_floats)), {"answer_mask": draw(any_array)}),
    OPS + "redistribute_batch": lambda draw: ((draw(any_array), draw(any_array)), {"token_mask": draw(any_array)}),
    OPS + "token_credit_batch": lambda draw: (tuple(draw(any_array) for _ in range(5)), {}),
    OPS + "group_advantages": lambda draw: ((draw(any_array), draw(st.integers(-3, 6) | huge_counts)), {}),
    OPS + "ndcg_at_k": lambda draw: ((draw(any_array), draw(any_array), draw(st.integers(1, 6) | huge_counts)), {}),
    OPS + "pool_ndcg": lambda draw: ((*[draw(any_array) for _ in range(3)], draw(st.integers(1, 6) | huge_counts)), {}),
    OPS + "pool_ndcg_dense": lambda draw: ((*[draw(any_array) for _ in range(5)], draw(st.integers(1, 6))), {}),
    OPS + "coalition_plan": lambda draw: ((draw(any_array), draw(st.integers(1, 4)), draw(st.integers(2, 6))),
                                          {"seed": 0}),
    OPS + "token_advantages_batch": lambda draw: (tuple(draw(any_array) for _ in range(9)), {}),
    CORE + "owen_values_batch": lambda draw: (tuple(draw(any_array) for _ in range(4)), {}),
    CORE + "token_credit_batch": lambda draw: (tuple(draw(any_array) for _ in range(5)), {}),
    CORE + "token_advantages_batch": lambda draw: ((*[draw(any_array) for _ in range(9)], "prop", 0.7, False), {}),
    CORE + "redistribute_batch": lambda draw: ((draw(any_array), draw(any_array), "prop", draw(any_array),
                                                draw(any_array), 0.7), {}),
}


@st.composite
def garbage_calls(draw: Any) -> Case:
    target = draw(st.sampled_from(sorted(GARBAGE_TARGETS)))
    args, kwargs = GARBAGE_TARGETS[target](draw)
    return Case("garbage arrays", target, args, kwargs, ANY_FINITE)


@pytest.mark.parametrize("examples", budgets(300))
def test_garbage_raises_errors_that_name_an_argument(calls: IsolatedCalls, examples: int) -> None:
    fuzz(garbage_calls(), lambda case: judge_in_child(calls, case), examples)


# ------------------------------------------------------------------ the GPU launchers' float32


@pytest.fixture(scope="module")
def interpreted() -> Iterator[IsolatedCalls]:
    """A child whose Triton kernels run in the interpreter, on CPU tensors."""
    child = IsolatedCalls(env={"TRITON_INTERPRET": "1"})
    yield child
    child.close()


@pytest.mark.parametrize(("values", "advantage", "expected"), [
    ([0.0, 1e300, 2.0], 1.0, RAISES),  # a coalition value float32 cannot hold
    ([0.0, 1.0, 2.0], 3e38, RAISES),  # T p_t Â past float32 over T = 2 tokens
    ([0.0, 1.0, 2.0], 0.5, "reference"),
])
def test_gpu_launcher_keeps_to_float32(interpreted: IsolatedCalls, values: list[float], advantage: float,
                                       expected: Any) -> None:
    """The Triton launcher (run by the Triton interpreter on the CPU) checks what its float32 holds."""
    inputs = dict(n_segments=np.array([2]), coalition_offsets=np.array([0, 3]),
                  coalitions=np.array([[0, 0], [0, 1], [1, 2]], dtype=np.int32), values=np.array(values),
                  segment_spans=np.array([[0, 2], [3, 5]]), token_offsets=np.array([[[0, 2], [3, 5]]]),
                  token_mask=np.ones((1, 2), dtype=bool), answer_mask=np.ones((1, 2), dtype=bool),
                  advantages=np.array([advantage]))
    outcome = interpreted.run(OPS + "token_advantages_batch", **inputs, backend="triton")
    if expected is RAISES:
        assert outcome.error_type == "ValueError" and ("values" in outcome.message or "advantages" in outcome.message)
    else:
        assert not outcome.raised and not outcome.crashed, outcome
        np.testing.assert_allclose(outcome.value, ref.token_advantages_batch(**inputs), rtol=1e-6)


# ------------------------------------------------------------------ the issue's own cases, every run

_masks = np.array([[False, False], [True, False], [False, True], [True, True]])
_steps = {"n_segments": np.array([2**62] * 4), "coalition_offsets": np.arange(5),
          "coalitions": np.zeros((4, 2), dtype=np.int32), "values": np.zeros(4)}
ISSUE_CASES = [
    Case("sum of n_segments wraps to 0", CORE + "owen_values_batch", tuple(_steps.values())),
    Case("sum of n_segments wraps to 0", CORE + "token_advantages_batch", tuple(_steps.values()) + (
        np.zeros((0, 2), dtype=np.int64), np.zeros((4, 1, 2), dtype=np.int64), np.ones((4, 1), dtype=bool),
        np.ones((4, 1), dtype=bool), np.zeros(4), "prop", 0.7, False)),
    Case("sum of n_segments goes negative", OPS + "owen_values_batch",
         (np.array([I64_MAX, 2]), np.array([0, 1, 2]), np.zeros((2, 2), dtype=np.int32), np.zeros(2))),
    Case("(n + 1)^2 wraps", CORE + "owen_values", (2**32 - 1, np.array([[0, 0], [0, 1]], dtype=np.int32), np.zeros(2))),
    Case("pickled bool masks are masks", CORE + "owen_values", (2, through_pickle(_masks), through_pickle(
        np.array([0.0, 1.0, 2.0, 4.0]))), expected=ref.owen_values(2, _masks, np.array([0.0, 1.0, 2.0, 4.0])),
        fresh_dtypes=False),
    Case("rank keeps the top token on top at ±1.7e308", OPS + "redistribute", (np.array([1.7e308, -1.7e308, 0.0]), 1.0,
         "rank"), expected=np.array([1.5, 0.5, 1.0])),
    Case("prop at ±1.7e308", OPS + "redistribute", (np.array([1.7e308, -1.7e308, 0.0]), 1.0, "prop"),
         expected=np.array([2.0, 0.0, 1.0])),
    Case("eps = 0 on constant groups", OPS + "group_advantages", (np.array([0.1, 0.1, 0.1, 0.5, 0.5, 0.5]), 3, 0.0),
         expected=np.zeros(6)),
    Case("exp gain of a large relevance", OPS + "ndcg_at_k", (np.array([[1.0, 0.0]]), np.array([[2000.0, 1.0]]), 2,
                                                              "exp")),
    Case("empty corpus", OPS + "pool_ndcg_dense", (np.zeros((1, 2), dtype=np.float32), np.zeros((0, 2), dtype=np.float32),
         np.array([[-1]]), np.array([[0.0]]), np.array([0]), 5), expected=np.zeros(1)),
    Case("pad_to near int64", CORE + "pack_query_windows", (np.zeros(1, dtype=np.int32), np.array([0, 1]),
         np.array([0, 1]), np.array([0, 1]), np.array([[0, 1]], dtype=np.int32)),
         {"cls_id": 1, "sep_id": 2, "pad_id": 0, "max_length": 8, "pad_to": 2**62}),
]


@pytest.mark.parametrize("case", ISSUE_CASES, ids=lambda case: f"{case.label} ({case.target.split('.')[-1]})")
def test_the_issue_cases(calls: IsolatedCalls, case: Case) -> None:
    problem = judge_in_child(calls, case)
    assert problem is None, problem
