"""Token offsets, the answer's tokens, GRPO broadcast, clipping and the PPO-clip loss, without a trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ospo_fast.attribution import broadcast_advantages, clip_to_batch_spread, token_char_offsets
from ospo_fast.reward import answer_token_mask, extract_answer
from ospo_fast.train.loss import ppo_clip_loss
from ospo_fast.train.tiny import save_tiny_policy

CORPUS = [
    "the shopper needs a black velvet sofa for four people",
    "a small oak side table with a drawer, mid-century style",
    "waterproof patio lounge chair in mustard yellow",
    "café crème ☕ naïve",
] * 20
COMPLETION = "<think>The shopper needs a sofa.</think><answer>black velvet sofa with four seats</answer>"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from ospo_fast.train.policy import load_tokenizer

    return load_tokenizer(str(save_tiny_policy(tmp_path_factory.mktemp("tiny"), CORPUS, hidden_size=16)))


def encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("text", [COMPLETION, "café crème ☕ naïve <answer>x</answer>", "a", ""])
def test_token_offsets_cover_the_text(tokenizer, text):
    ids = encode(tokenizer, text)
    offsets = token_char_offsets(tokenizer, ids, text)
    assert offsets.shape == (len(ids), 2)
    assert "".join(text[a:b] for a, b in offsets) == text
    assert np.all(offsets[:, 1] >= offsets[:, 0])


def test_answer_mask_skips_the_think_block(tokenizer):
    ids = encode(tokenizer, COMPLETION)
    offsets = token_char_offsets(tokenizer, ids, COMPLETION)
    mask = answer_token_mask(COMPLETION, offsets)
    answer, start = extract_answer(COMPLETION)
    covered = "".join(COMPLETION[a:b] for (a, b), m in zip(offsets, mask) if m)
    assert answer in covered and "think" not in covered and "shopper" not in covered
    assert offsets[mask][0, 0] <= start < offsets[mask][0, 1]


def test_clip_and_grpo_broadcast():
    mask = np.array([[True, True, False], [True, True, True]])
    offsets = np.zeros((2, 3, 2), dtype=np.int64)
    grpo = broadcast_advantages(["a", "b"], offsets, mask, np.array([2.0, -1.0]))
    assert grpo.path == "broadcast" and grpo.n_coalitions == 0
    assert np.array_equal(grpo.token_advantages, [[2.0, 2.0, 0.0], [-1.0, -1.0, -1.0]])
    bound = 0.5 * np.std([2.0, -1.0], ddof=1)
    assert np.allclose(clip_to_batch_spread(grpo.token_advantages, np.array([2.0, -1.0]), 0.5).max(), bound)
    assert clip_to_batch_spread(grpo.token_advantages, np.array([2.0, -1.0]), 0.0) is grpo.token_advantages
    clipped = clip_to_batch_spread(torch.from_numpy(grpo.token_advantages), np.array([2.0, -1.0]), 0.5)
    assert isinstance(clipped, torch.Tensor) and float(clipped.max()) == pytest.approx(bound)
    on_loss_device = broadcast_advantages(["a", "b"], offsets, mask, np.array([2.0, -1.0]), out_device="cpu")
    assert on_loss_device.token_advantages.dtype == torch.float32


# ------------------------------------------------------------------ loss


def test_loss_at_ratio_one_is_minus_the_mean_advantage():
    logp = torch.randn(3, 5, requires_grad=True)
    adv = torch.randn(3, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    loss, stats = ppo_clip_loss(logp, logp.detach(), adv, mask)
    assert loss.item() == pytest.approx(-(adv[mask]).mean().item(), rel=1e-6)
    assert stats["clip_fraction"].item() == 0.0 and stats["ratio"].item() == pytest.approx(1.0)
    seq, _ = ppo_clip_loss(logp, logp.detach(), adv, mask, aggregation="seq-mean")
    per_row = torch.stack([adv[b][mask[b]].mean() for b in range(3)])
    assert seq.item() == pytest.approx(-per_row.mean().item(), rel=1e-6)


def test_clipped_tokens_get_no_gradient():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.5, 1.1]])).requires_grad_(True)  # ratios 1.5 (clipped) and 1.1
    adv = torch.ones(1, 2)
    loss, stats = ppo_clip_loss(logp, old, adv, torch.ones(1, 2, dtype=torch.bool), epsilon_low=0.2, epsilon_high=0.2)
    loss.backward()
    assert logp.grad[0, 0].item() == 0.0 and logp.grad[0, 1].item() != 0.0
    assert stats["clip_fraction"].item() == pytest.approx(0.5)


def test_micro_batches_sum_to_the_full_loss():
    torch.manual_seed(0)
    logp, old, adv = torch.randn(4, 6), torch.randn(4, 6), torch.randn(4, 6)
    mask = torch.rand(4, 6) > 0.3
    for aggregation in ("token-mean", "seq-mean"):
        full, _ = ppo_clip_loss(logp, old, adv, mask, aggregation=aggregation)
        parts = sum(
            ppo_clip_loss(logp[s], old[s], adv[s], mask[s], aggregation=aggregation,
                          total_tokens=float(mask.sum()), total_sequences=4.0)[0]
            for s in (slice(0, 1), slice(1, 4))
        )
        assert parts.item() == pytest.approx(full.item(), rel=1e-6)


def test_kl_term():
    logp = torch.randn(2, 3)
    mask = torch.ones(2, 3, dtype=torch.bool)
    adv = torch.zeros(2, 3)
    same, stats = ppo_clip_loss(logp, logp, adv, mask, beta=0.1, ref_logprobs=logp)
    assert same.item() == pytest.approx(0.0, abs=1e-7) and stats["kl"].item() == pytest.approx(0.0, abs=1e-7)
    apart, stats = ppo_clip_loss(logp, logp, adv, mask, beta=0.1, ref_logprobs=logp - 1.0)
    assert apart.item() > 0 and stats["kl"].item() > 0
    with pytest.raises(ValueError, match="ref_logprobs is required"):
        ppo_clip_loss(logp, logp, adv, mask, beta=0.1)
    with pytest.raises(ValueError, match="share a shape"):
        ppo_clip_loss(logp, logp[:1], adv, mask)
