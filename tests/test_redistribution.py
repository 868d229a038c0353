"""The redistribution invariant (mean = Â) and the fixed flaws of spec §10."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import ospo_fast as of

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    credit=arrays(np.float64, st.integers(1, 60), elements=finite),
    advantage=finite,
    mode=st.sampled_from(["prop", "rank", "hybrid"]),
    alpha=st.floats(0.0, 1.0),
    data=st.data(),
)
def test_mean_is_the_advantage(credit, advantage, mode, alpha, data) -> None:
    answer = data.draw(arrays(bool, len(credit)))
    out = of.redistribute(credit, advantage, mode, answer_mask=answer, alpha=alpha)
    assert np.isfinite(out).all()
    assert out.mean() == pytest.approx(advantage, rel=1e-9, abs=1e-9 * (1 + abs(advantage)))
    np.testing.assert_array_equal(out[~answer], advantage)


@settings(max_examples=100, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 12), st.integers(1, 30)),
    mode=st.sampled_from(["prop", "rank", "hybrid"]),
    data=st.data(),
)
def test_batch_rows_keep_their_mean(shape, mode, data) -> None:
    credit = data.draw(arrays(np.float64, shape, elements=finite))
    token_mask = data.draw(arrays(bool, shape))
    answer_mask = data.draw(arrays(bool, shape))
    advantages = data.draw(arrays(np.float64, shape[0], elements=finite))
    out = of.redistribute_batch(credit, advantages, mode, token_mask=token_mask, answer_mask=answer_mask)
    for b in range(shape[0]):
        real = token_mask[b]
        if real.any():
            assert out[b, real].mean() == pytest.approx(advantages[b], rel=1e-9, abs=1e-9 * (1 + abs(advantages[b])))
        np.testing.assert_array_equal(out[b, ~real], 0.0)


def test_zero_reward_sequence_still_gets_its_negative_advantage() -> None:
    # The reference multiplies by the reward (PBRS), so r = 0 gave A_t = 0 everywhere.
    out = of.redistribute(np.array([0.0, 0.0, 0.0]), -1.5, "prop")
    np.testing.assert_allclose(out, -1.5)
    out = of.redistribute(np.array([0.0, 1.0, 2.0]), -1.5, "prop")
    assert out.mean() == pytest.approx(-1.5) and (out <= 0).all()


def test_rank_gives_the_highest_credit_the_highest_weight() -> None:
    credit = np.array([0.1, 0.9, 0.5, 0.3])
    out = of.redistribute(credit, 1.0, "rank")
    assert np.argmax(out) == 1 and np.argmin(out) == 0
    np.testing.assert_allclose(out, 4 * np.array([1, 4, 3, 2]) / 10)


def test_rank_ties_share_the_average_rank() -> None:
    out = of.redistribute(np.array([0.2, 0.7, 0.7, 0.1]), 2.0, "rank")
    np.testing.assert_allclose(out, 4 * np.array([2, 3.5, 3.5, 1]) / 10 * 2.0)


def test_constant_credit_is_uniform_and_hybrid_mixes() -> None:
    np.testing.assert_allclose(of.redistribute(np.full(5, 3.0), 0.7, "prop"), 0.7)
    credit = np.array([0.0, 1.0])
    prop = of.redistribute(credit, 1.0, "prop")
    hybrid = of.redistribute(credit, 1.0, "hybrid", alpha=0.7)
    np.testing.assert_allclose(hybrid, 0.7 * prop + 0.3 * 1.0)


def test_no_answer_tokens_gives_every_token_the_advantage() -> None:
    out = of.redistribute(np.array([1.0, 5.0]), 0.4, "rank", answer_mask=np.array([False, False]))
    np.testing.assert_array_equal(out, 0.4)


def test_single_token() -> None:
    for mode in ("prop", "rank", "hybrid"):
        np.testing.assert_allclose(of.redistribute(np.array([3.0]), -0.2, mode), [-0.2])


def test_step_with_a_think_block_credits_only_answer_tokens() -> None:
    # Completion "<think>xx</think><answer>red sofa cheap</answer>": tokens 0-3 are the
    # think block, 4-6 the answer's three words, 7 the closing tag.
    tokens = np.array([[[0, 7], [7, 9], [9, 17], [17, 25], [25, 28], [29, 33], [34, 39], [39, 48]]])
    segments = np.array([[25, 28], [29, 33], [34, 39]])  # one phrase per word
    rows = of.contiguous_coalitions(3, 3)
    values = np.array([0.0, 0.5, 0.1, 0.0, 0.6, 0.1, 0.6])
    token_mask = np.ones((1, 8), dtype=bool)
    answer_mask = np.zeros((1, 8), dtype=bool)
    answer_mask[0, 4:7] = True
    out = of.token_advantages_batch(
        [3], [0, len(rows)], rows, values, segments, tokens, token_mask, answer_mask, [1.0], "prop"
    )[0]
    np.testing.assert_array_equal(out[[0, 1, 2, 3, 7]], 1.0)
    assert out.mean() == pytest.approx(1.0)
    assert out[4] > out[5] > out[6]  # "red" carried the reward, "cheap" nothing


# ------------------------------------------------------------------ mode signed

@settings(max_examples=200, deadline=None)
@given(
    credit=arrays(np.float64, st.integers(1, 60), elements=finite),
    advantage=finite,
    scale=st.floats(0.0, 50.0),
    data=st.data(),
)
def test_signed_mean_is_the_advantage(credit, advantage, scale, data) -> None:
    answer = data.draw(arrays(bool, len(credit)))
    out = of.redistribute(credit, advantage, "signed", answer_mask=answer, credit_scale=scale)
    rounding = 1e-12 * len(credit) * (1 + abs(advantage) + scale * np.abs(credit).max())
    assert out.mean() == pytest.approx(advantage, abs=rounding)
    np.testing.assert_array_equal(out[~answer], advantage)
    if answer.any():
        offsets = out[answer] - advantage
        np.testing.assert_allclose(offsets, scale * (credit[answer] - credit[answer].mean()), atol=rounding)


@pytest.mark.parametrize("advantage", [-0.9, 0.0, 1.4])
def test_signed_ranks_harm_below_nothing_below_help_whatever_the_sign_of_the_advantage(advantage: float) -> None:
    credit = np.array([-0.2, 0.0, 0.0, 0.3])  # a phrase that hurt, two that did nothing, one that helped
    out = of.redistribute(credit, advantage, "signed", credit_scale=2.0)
    assert out[0] < out[1] == out[2] < out[3]
    prop = of.redistribute(credit, advantage, "prop")
    if advantage < 0:  # min-max weights push the helpful phrase down hardest in a bad response
        assert prop[3] < prop[0]


def test_signed_batch_reads_one_scale_per_row() -> None:
    credit = np.array([[0.0, 1.0], [0.0, 1.0]])
    mask = np.ones((2, 2), dtype=bool)
    out = of.redistribute_batch(credit, np.zeros(2), "signed", token_mask=mask, credit_scale=np.array([1.0, 3.0]))
    np.testing.assert_allclose(out, [[-0.5, 0.5], [-1.5, 1.5]])


def _one_step(mode: str, **options):
    counts = np.array([2])
    offsets, rows = of.coalition_plan(counts, 2, 8, seed=0)
    values = np.array([0.0, 0.4, 0.1, 0.5])
    spans = np.array([[0, 3], [4, 7]])
    tokens = np.array([[[0, 3], [4, 7]]])
    mask = np.ones((1, 2), dtype=bool)
    return of.token_advantages_batch(counts, offsets, rows, values, spans, tokens, mask, mask, np.array([-1.0]),
                                     mode, **options)


def test_signed_asks_for_its_scale_and_nothing_else() -> None:
    with pytest.raises(ValueError, match="needs credit_scale"):
        of.redistribute(np.zeros(3), 1.0, "signed")
    with pytest.raises(ValueError, match="only applies to mode 'signed'"):
        of.redistribute(np.zeros(3), 1.0, "prop", credit_scale=1.0)
    with pytest.raises(ValueError, match="credit_scale must be finite and >= 0"):
        of.redistribute(np.zeros(3), 1.0, "signed", credit_scale=-1.0)
    with pytest.raises(ValueError, match="credit_scale must be finite and >= 0"):
        of.redistribute_batch(np.zeros((2, 2)), np.zeros(2), "signed", token_mask=np.ones((2, 2), bool),
                              credit_scale=np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="credit_scale"):
        of.redistribute_batch(np.zeros((2, 2)), np.zeros(2), "signed", token_mask=np.ones((2, 2), bool),
                              credit_scale=np.ones(3))
    with pytest.raises(ValueError, match="invert_negative does not apply"):
        _one_step("signed", credit_scale=np.ones(1), invert_negative=True)
    with pytest.raises(ValueError, match="needs credit_scale"):
        _one_step("signed")
    with pytest.raises(ValueError, match="non-finite advantage"):
        of.redistribute(np.array([-1e300, 1e300]), 0.0, "signed", credit_scale=1e10)


def test_signed_step_pushes_down_the_phrase_that_hurt_in_a_bad_response() -> None:
    # v(∅) = 0, v({0}) = 0.4, v({1}) = 0.1, v(N) = 0.5: segment 0 helped more than 1.
    out = _one_step("signed", credit_scale=np.ones(1), estimator="stratified")
    assert out.mean() == pytest.approx(-1.0)
    assert out[0, 0] > out[0, 1]
    prop = _one_step("prop")
    assert prop[0, 0] < prop[0, 1]  # min-max prop with Â < 0 blames the better segment
