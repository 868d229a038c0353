"""OSPOGRPOTrainer inside the real TRL GRPOTrainer: two training steps of a tiny policy.

TRL is not a dependency of the test run (it pulls `datasets` and pins its own
transformers range), so this runs where TRL is installed, e.g. in a venv made with
``--system-site-packages`` plus ``pip install --no-deps trl datasets`` and the
`datasets` requirements. Last run against TRL 1.16.0.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("trl", reason="TRL is not installed")
pytest.importorskip("datasets", reason="TRL's datasets is not installed")

CATALOG = {
    "p0": "red wool winter coat",
    "p1": "blue cotton slim shirt",
    "p2": "black leather ankle boots",
    "p3": "green linen summer dress",
    "p4": "red cotton t-shirt",
    "p5": "grey wool scarf",
}


@pytest.mark.slow
def test_two_real_grpo_steps_carry_per_token_advantages(tmp_path: Path) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from ospo_fast.attribution import OwenConfig
    from ospo_fast.attribution.coalition_values import CoalitionEvaluator
    from ospo_fast.integrations.trl import OSPOGRPOTrainer, make_trl_reward
    from ospo_fast.reward.retrievers import BM25Retriever
    from ospo_fast.reward import RetrievalReward
    from ospo_fast.train.tiny import save_tiny_policy

    save_tiny_policy(tmp_path / "policy", list(CATALOG.values()) * 20)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "policy")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "policy")
    reward = RetrievalReward(BM25Retriever(list(CATALOG.values())), list(CATALOG), k=10)
    rows = [
        {"prompt": [{"role": "user", "content": f"find me a {want}"}], "candidate_pool": ["p0", "p2", "p4", "p5"],
         "pool_relevance": [3, 0, 1, 2]}
        for want in ("warm coat", "scarf", "shirt", "dress")
    ]
    batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    class Recording(OSPOGRPOTrainer):  # type: ignore[misc, valid-type]
        def _generate_and_score_completions(self, inputs):  # noqa: ANN001, ANN202
            output = super()._generate_and_score_completions(inputs)
            batches.append((output["advantages"].detach().clone(), output["completion_mask"].detach().bool()))
            return output

    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=4, max_completion_length=12,
        max_steps=2, learning_rate=1e-3, report_to=[], use_cpu=True, save_strategy="no", bf16=False, seed=0,
    )
    trainer = Recording(
        model=model, reward_funcs=make_trl_reward(reward), args=args, train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer, evaluator=CoalitionEvaluator(reward),
        owen_config=OwenConfig(segmenter="word", w_max=4, max_coalitions=16),
    )
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer.train()
    assert trainer.state.global_step == 2
    assert any(not torch.equal(before[name], p.detach()) for name, p in model.named_parameters())
    assert len(batches) == 2
    for advantages, mask in batches:
        assert advantages.shape == mask.shape  # [B, T], not TRL's [B]
        assert torch.isfinite(advantages).all()
