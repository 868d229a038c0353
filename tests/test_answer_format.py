"""The strict answer format: only a closed <answer>…</answer> is scored, in rewards and in credit."""

from __future__ import annotations

import numpy as np
import pytest

from ospo_fast.attribution import CoalitionEvaluator, OwenConfig, step_token_advantages
from ospo_fast.reward import RetrievalReward, answer_token_masks, extract_answer
from ospo_fast.reward.retrievers import BM25Retriever
from ospo_fast.train.config import load_config

CATALOG = {"p0": "red wool winter coat", "p1": "blue cotton shirt", "p2": "black leather boots"}
SAMPLE = {"candidate_pool": ["p0", "p1", "p2"], "pool_relevance": [3, 0, 0]}


@pytest.mark.parametrize(("completion", "lenient", "strict"), [
    ("<think>hm</think><answer> red coat </answer>", "red coat", "red coat"),
    ("<answer>red coat and then it runs on", "red coat and then it runs on", ""),
    ("red coat", "red coat", ""),
    ("<think>a <answer>x</answer></think><answer>red coat</answer>", "red coat", "red coat"),
    ("<think>never closed", "", ""),
    ("<answer>red</answer> trailing <answer>blue</answer>", "red", "red"),
])
def test_strict_scores_only_a_closed_answer(completion, lenient, strict):
    assert extract_answer(completion)[0] == lenient
    text, start = extract_answer(completion, "strict")
    assert text == strict
    if text:
        assert completion[start : start + len(text)] == text


def test_the_format_is_checked():
    with pytest.raises(ValueError, match="answer_format"):
        extract_answer("x", "loose")
    with pytest.raises(ValueError, match="answer_format"):
        RetrievalReward(BM25Retriever(list(CATALOG.values())), list(CATALOG), answer_format="loose")
    with pytest.raises(ValueError, match="answer_format"):
        load_config("default", {"answer_format": "loose"})


def test_a_strict_reward_pays_nothing_for_a_run_on_answer_and_credits_no_token_of_it():
    completions = ["<answer>red wool coat please</answer>", "<answer>red wool coat and more", "red wool coat"]
    samples = [SAMPLE] * 3
    lenient = RetrievalReward(BM25Retriever(list(CATALOG.values())), list(CATALOG), k=10)
    strict = RetrievalReward(BM25Retriever(list(CATALOG.values())), list(CATALOG), k=10, answer_format="strict")
    assert np.all(lenient(completions, samples) == 1.0)
    np.testing.assert_array_equal(strict(completions, samples), [1.0, 0.0, 0.0])

    offsets = np.array([[(i, min(i + 3, len(c))) if i < len(c) else (0, 0) for i in range(0, 39, 3)]
                        for c in completions])
    mask = offsets[:, :, 1] > offsets[:, :, 0]
    advantages = np.array([1.2, -0.6, -0.6])
    step = step_token_advantages(completions, offsets, mask, advantages, samples, CoalitionEvaluator(strict),
                                 OwenConfig(segmenter="word"), seed=0)
    np.testing.assert_array_equal(step.answer_mask, answer_token_masks(completions, offsets, mask, "strict"))
    assert step.answer_mask[0].any() and not step.answer_mask[1:].any()
    np.testing.assert_array_equal(step.token_advantages[1:][mask[1:]], -0.6)  # nothing scored: Â on every token
    assert step.token_advantages[0][step.answer_mask[0]].std() > 0
