"""Rollout generation on a tiny random Llama: a shared prefill decodes like a plain one."""

from __future__ import annotations

import pytest
import torch

from ospo_fast.train.policy import load_base_model, load_tokenizer
from ospo_fast.train.rollout import Decoding, generate, generate_passes
from ospo_fast.train.tiny import save_tiny_policy

PROMPTS = ["a blue sofa for the den", "lamp", "something soft and round to sit on, in grey wool please"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = save_tiny_policy(tmp_path_factory.mktemp("tiny_rollout"), PROMPTS * 20 + ["sofa lamp chair rug"] * 20)
    tokenizer = load_tokenizer(str(path))
    model = load_base_model(str(path), torch.float64)  # float64: prefix-cached and plain logits tie-break alike
    return model, tokenizer


def plain_greedy(model, tokenizer, prompts, max_new_tokens):
    """Reference: every prompt decoded on its own, no padding and no cache handed in."""
    rows = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        rows.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    return rows


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_greedy_and_sampled_passes_share_the_prefill(tiny, batch_size):
    model, tokenizer = tiny
    torch.manual_seed(5)
    greedy, sampled = generate_passes(
        model, tokenizer, PROMPTS, [Decoding(1, do_sample=False), Decoding(3, do_sample=True, temperature=1.0)],
        max_new_tokens=8, max_prompt_tokens=64, batch_size=batch_size,
    )
    assert len(greedy) == len(PROMPTS) and len(sampled) == 3 * len(PROMPTS)
    expected = plain_greedy(model, tokenizer, PROMPTS, 8)
    assert [t.replace(tokenizer.eos_token, "") for t in greedy.texts] == expected
    assert torch.equal(sampled.prompt_ids, greedy.prompt_ids.repeat_interleave(3, dim=0))
    alone = generate(model, tokenizer, PROMPTS, n_per_prompt=1, max_new_tokens=8, max_prompt_tokens=64,
                     do_sample=False, batch_size=batch_size)
    assert alone.texts == greedy.texts


def test_sampled_pass_repeats_under_a_seed(tiny):
    model, tokenizer = tiny
    runs = []
    for _ in range(2):
        torch.manual_seed(11)
        runs.append(generate_passes(model, tokenizer, PROMPTS, [Decoding(1, False), Decoding(4, True)],
                                    max_new_tokens=6, max_prompt_tokens=64)[1].texts)
    assert runs[0] == runs[1]


def test_passes_must_not_be_empty(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="passes"):
        generate_passes(model, tokenizer, PROMPTS, [], max_new_tokens=4, max_prompt_tokens=64)
