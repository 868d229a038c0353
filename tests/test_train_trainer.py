"""The trainer end to end on a tiny random Llama and a tiny world (BM25 reward, CPU)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ospo_fast.attribution import step_seed, step_token_advantages
from ospo_fast.data import WorldConfig, generate_world
from ospo_fast.ops.grpo import group_advantage_scales
from ospo_fast.reward import answer_token_masks
from ospo_fast.train import trainer as trainer_module
from ospo_fast.train.config import load_config
from ospo_fast.train.policy import chat_prompt
from ospo_fast.train.rollout import finish_rollout
from ospo_fast.train.tiny import save_tiny_policy
from ospo_fast.train.trainer import Trainer


@pytest.fixture(scope="module")
def world():
    return generate_world(WorldConfig(n_products=1_000, n_train=24, n_test=4, seed=3))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, world):
    corpus = [r["prompt"] for r in world.train()] + world.catalog["text"].tolist()[:300]
    return str(save_tiny_policy(tmp_path_factory.mktemp("tiny_policy"), corpus))


def tiny_config(tiny_model, output_dir, **overrides):
    values = {
        "model": tiny_model, "output_dir": str(output_dir), "retriever": "bm25", "eval_retrievers": (),
        "prompts_per_step": 2, "G": 4, "max_new_tokens": 12, "lora_r": 4, "lora_layers": 0, "lr": 5e-3,
        "warmup_steps": 0, "sft_steps": 0, "steps": 2, "eval_queries": 2, "eval_samples": 0, "eval_every": 100,
        "save_every": 0, "progress": False, "tensorboard": False, "gradient_accumulation_steps": 2,
        "world_products": 1_000, "world_train": 24, "world_test": 4, "world_seed": 3, "M": 16,
    }
    return load_config("default", values | overrides)


def parameters(trainer):
    return {name: p.detach().clone() for name, p in trainer.policy.named_parameters()}


@pytest.mark.parametrize("algorithm", ["grpo", "ospo-prop"])
def test_steps_train_lora_and_leave_the_base(tiny_model, world, tmp_path, algorithm):
    cfg = tiny_config(tiny_model, tmp_path / algorithm, algorithm=algorithm)
    trainer = Trainer(cfg, world=world)
    before = parameters(trainer)
    summary = trainer.train()
    after = parameters(trainer)
    lora_b = [n for n in before if "lora_B" in n]
    base = [n for n in before if "lora_" not in n]
    assert lora_b and base
    assert any(not torch.equal(before[n], after[n]) for n in lora_b)
    assert all(torch.equal(before[n], after[n]) for n in base)
    records = [json.loads(line) for line in (tmp_path / algorithm / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["grad_norm"]) for r in train)
    assert {r["step"] for r in records if r["kind"] == "eval"} == {0, 2}
    assert summary["after_step"] == 2 and "greedy/bm25/ndcg@pool" in summary["after"]
    paired = summary["paired"]["greedy/bm25/ndcg@pool"]  # the same held-out queries before and after RL
    assert paired["n_queries"] == cfg.eval_queries
    assert paired["mean_diff"] == pytest.approx(summary["after"]["greedy/bm25/ndcg@pool"]
                                                - summary["before"]["greedy/bm25/ndcg@pool"])
    assert paired["ci95_low"] <= paired["mean_diff"] <= paired["ci95_high"]


def test_lora_init_ignores_random_draws_of_the_setup(tiny_model, world, tmp_path, monkeypatch):
    # A cold cache converts the policy and embeds the corpus, which draw from the global RNGs;
    # the first run on a machine must start from the same LoRA weights as every later one.
    warm = parameters(Trainer(tiny_config(tiny_model, tmp_path / "warm"), world=world))
    resolve = trainer_module.resolve_model

    def resolve_drawing(*args, **kwargs):
        torch.rand(1_000)
        np.random.rand(1_000)
        return resolve(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "resolve_model", resolve_drawing)
    cold = parameters(Trainer(tiny_config(tiny_model, tmp_path / "cold"), world=world))
    lora_a = [n for n in warm if "lora_A" in n]
    assert lora_a and all(torch.equal(warm[n], cold[n]) for n in warm)


def handmade_rollout(trainer, completions, row):
    tokenizer = trainer.tokenizer
    prompt = tokenizer([chat_prompt(tokenizer, row, trainer.cfg.prompt_style)], return_tensors="pt")
    ids = [tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for c in completions]
    width = max(len(r) for r in ids)
    completion_ids = torch.full((len(ids), width), tokenizer.pad_token_id)
    completion_mask = torch.zeros((len(ids), width), dtype=torch.bool)
    for b, r in enumerate(ids):
        completion_ids[b, : len(r)] = torch.tensor(r)
        completion_mask[b, : len(r)] = True
    n = len(completions)
    return finish_rollout(
        tokenizer, prompt["input_ids"].repeat(n, 1), prompt["attention_mask"].repeat(n, 1),
        completion_ids, completion_mask, [tokenizer.eos_token_id],
    )


def test_advantages_reaching_the_loss_sit_on_the_answer(tiny_model, world, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_model, tmp_path, algorithm="ospo-prop", G=2, prompts_per_step=1,
                      gradient_accumulation_steps=1, segmenter="word")
    trainer = Trainer(cfg, world=world)
    row = world.train()[0]
    completions = [
        f"<think>the shopper wants something nice</think><answer>{row['gold_query']} zebra</answer>",
        "<think>no idea</think><answer></answer>",
    ]
    rollout = handmade_rollout(trainer, completions, row)
    monkeypatch.setattr(trainer, "rollout_batch", lambda step: (rollout, [row, row], ["q", "q"]))
    seen = []

    def spy(logprobs, old, advantages, mask, **kwargs):
        seen.append((advantages.detach().clone(), mask.detach().clone()))
        return original(logprobs, old, advantages, mask, **kwargs)

    original = trainer_module.ppo_clip_loss
    monkeypatch.setattr(trainer_module, "ppo_clip_loss", spy)
    trainer.rl_step()

    advantages, mask = seen[0]
    rewards = trainer.reward(completions, [row, row])
    assert rewards[0] > 0 and rewards[1] == 0
    group_adv = 1.0 / np.sqrt(2.0)  # two samples, one scored, one not: Â = ±1/√2 (up to eps)
    adv0, mask0 = advantages[0].double().numpy(), mask[0].numpy()
    answer0 = answer_token_masks(completions, rollout.token_offsets, rollout.completion_mask.numpy())[0]
    answer0 = answer0[: len(mask0)]
    assert adv0[mask0].mean() == pytest.approx(group_adv, rel=1e-3)
    assert np.allclose(adv0[mask0 & ~answer0], adv0[mask0 & ~answer0][0])  # outside the answer: Â
    assert adv0[mask0 & ~answer0][0] == pytest.approx(group_adv, rel=1e-3)
    assert adv0[answer0].std() > 1e-3  # non-uniform on the answer
    adv1 = advantages[1].double().numpy()[mask[1].numpy()]
    assert np.allclose(adv1, -group_adv, rtol=1e-3)  # an empty answer: A_t = Â everywhere


@pytest.mark.parametrize(("algorithm", "estimator"), [("ospo-prop", "spec"), ("ospo-rank", "spec"),
                                                     ("ospo-signed", "stratified")])
def test_trainer_advantages_are_the_library_step_function(tiny_model, world, tmp_path, monkeypatch, algorithm,
                                                          estimator):
    # The loss must receive exactly what ospo_fast.attribution.step_token_advantages returns for the
    # step's rollout, so the trainer cannot drift onto a path of its own.
    signed = algorithm == "ospo-signed"
    cfg = tiny_config(tiny_model, tmp_path, algorithm=algorithm, advantage_clip=1.5, invert_negative=not signed,
                      G=4, prompts_per_step=1, gradient_accumulation_steps=1, estimator=estimator)
    trainer = Trainer(cfg, world=world)
    row = world.train()[1]
    completions = [
        f"<think>a guess</think><answer>{row['gold_query']}</answer>",
        f"<answer>{row['imperfect_query']} with a zebra print</answer>",
        f"<think>hmm</think><answer>{row['gold_query'].split()[-1]} for my mother, red</answer>",
        "<answer>something nice</answer>",
    ]
    rollout = handmade_rollout(trainer, completions, row)
    monkeypatch.setattr(trainer, "rollout_batch", lambda step: (rollout, [row] * 4, ["q"] * 4))
    received = []
    policy_update = trainer.policy_update
    monkeypatch.setattr(trainer, "policy_update",
                        lambda rollout, token_adv: received.append(token_adv.clone()) or policy_update(rollout, token_adv))
    trainer.rl_step()

    rewards = trainer.reward(completions, [row] * 4)
    advantages = trainer_module.group_advantages(rewards, cfg.G, cfg.advantage_eps, cfg.advantage_scale)
    assert np.count_nonzero(advantages) >= 2
    library = step_token_advantages(
        rollout.texts, rollout.token_offsets, rollout.completion_mask.numpy(), advantages, [row] * 4,
        trainer.evaluator, trainer_module.owen_config_of(cfg), seed=step_seed(cfg.seed, 0), mode=cfg.redistribution,
        alpha=cfg.alpha, invert_negative=not signed, clip=1.5, out_device="cpu",
        credit_scale=group_advantage_scales(rewards, cfg.G, cfg.advantage_eps) if signed else None,
    )
    assert library.path == "fused" and library.n_coalitions > 0
    torch.testing.assert_close(received[0], library.token_advantages, rtol=0, atol=0)


def adapter_weights(run_dir, step):
    return load_file(str(run_dir / "checkpoints" / f"rl-{step:06d}" / "adapter" / "adapter_model.safetensors"))


def test_resume_continues_exactly(tiny_model, world, tmp_path):
    common = {"algorithm": "ospo-prop", "sft_steps": 1, "steps": 4, "lora_dropout": 0.1, "eval_at_start": False}
    straight_dir, split_dir = tmp_path / "straight", tmp_path / "split"
    Trainer(tiny_config(tiny_model, straight_dir, **common), world=world).train()

    stopped = Trainer(tiny_config(tiny_model, split_dir, **common), world=world).train(max_steps=3)
    assert stopped["stopped_at"] == "rl-000002"
    with pytest.raises(ValueError, match="already holds checkpoints"):
        Trainer(tiny_config(tiny_model, split_dir, **common), world=world)
    Trainer(tiny_config(tiny_model, split_dir, **common), world=world, resume=True).train()

    straight, split = adapter_weights(straight_dir, 4), adapter_weights(split_dir, 4)
    assert straight.keys() == split.keys()
    assert all(torch.equal(straight[k], split[k]) for k in straight)
    steps = [json.loads(line)["step"] for line in (split_dir / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == [1, 2, 3, 4]


def test_ctrl_c_saves_a_checkpoint(tiny_model, world, tmp_path, monkeypatch):
    trainer = Trainer(tiny_config(tiny_model, tmp_path, steps=5), world=world)
    original = trainer.rl_step

    def step_then_interrupt():
        metrics = original()
        os.kill(os.getpid(), signal.SIGINT)
        return metrics

    monkeypatch.setattr(trainer, "rl_step", step_then_interrupt)
    summary = trainer.train()
    assert summary["stopped_at"] == "rl-000001"
    assert (tmp_path / "checkpoints" / "rl-000001" / "optimizer.pt").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_generated_world_follows_the_config():
    cfg = load_config("default", {"world_products": 1_000, "world_train": 8, "world_test": 4,
                                  "world_seed": 9, "world_direct_hint_rate": 1.0})
    assert trainer_module.generated_world_config(cfg) == WorldConfig(
        n_products=1_000, n_train=8, n_test=4, seed=9, direct_hint_rate=1.0
    )
    riddles = generate_world(dataclasses.replace(trainer_module.generated_world_config(cfg), direct_hint_rate=0.0))
    named = generate_world(trainer_module.generated_world_config(cfg))
    assert [r["gold_query"] for r in riddles.test()] == [r["gold_query"] for r in named.test()]
    assert [r["question"] for r in riddles.test()] != [r["question"] for r in named.test()]
