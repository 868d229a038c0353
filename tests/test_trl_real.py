"""OSPOGRPOTrainer inside the real TRL GRPOTrainer (trl and datasets are in the test extra).

Two training steps of a tiny random Llama on conversational prompts (TRL applies the
chat template), with the NDCG@pool reward over a BM25 catalog. Last run against TRL
1.16.0 and datasets 5.2.0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("trl", reason="TRL is not installed (pip install '.[test]')")
pytest.importorskip("datasets", reason="datasets is not installed (pip install '.[test]')")

CATALOG = {
    "p0": "red wool winter coat",
    "p1": "blue cotton slim shirt",
    "p2": "black leather ankle boots",
    "p3": "green linen summer dress",
    "p4": "red cotton t-shirt",
    "p5": "grey wool scarf",
}
OSPO_METRICS = ("ospo/within_row_adv_std", "ospo/answer_token_adv_std", "ospo/answer_token_share", "ospo/coalitions")


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from datasets import Dataset
    from ospo_fast.attribution import OwenConfig
    from ospo_fast.attribution.coalition_values import CoalitionEvaluator
    from ospo_fast.integrations.trl import make_trl_reward
    from ospo_fast.reward import RetrievalReward
    from ospo_fast.reward.retrievers import BM25Retriever
    from ospo_fast.train.tiny import save_tiny_policy

    policy = save_tiny_policy(tmp_path_factory.mktemp("policy"), list(CATALOG.values()) * 20)
    reward = RetrievalReward(BM25Retriever(list(CATALOG.values())), list(CATALOG), k=10)
    rows = [
        {"prompt": [{"role": "user", "content": f"find me a {want}"}], "candidate_pool": ["p0", "p2", "p4", "p5"],
         "pool_relevance": [3, 0, 1, 2]}
        for want in ("warm coat", "scarf", "shirt", "dress")
    ]
    return {"policy": policy, "reward_funcs": make_trl_reward(reward), "train_dataset": Dataset.from_list(rows),
            "evaluator": CoalitionEvaluator(reward), "owen_config": OwenConfig(segmenter="word", w_max=4,
                                                                               max_coalitions=16)}


def grpo_args(tmp_path: Path, **overrides: Any) -> Any:
    from trl import GRPOConfig

    settings = dict(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=4, max_completion_length=12,
        max_steps=2, learning_rate=1e-3, report_to=[], use_cpu=True, save_strategy="no", bf16=False, seed=0,
        logging_steps=1,
    )
    return GRPOConfig(**(settings | overrides))


def trainer_of(cls: type, parts: dict[str, Any], args: Any, **kwargs: Any) -> Any:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return cls(
        model=AutoModelForCausalLM.from_pretrained(parts["policy"]), args=args,
        processing_class=AutoTokenizer.from_pretrained(parts["policy"]),
        **{k: parts[k] for k in ("reward_funcs", "train_dataset", "evaluator", "owen_config")}, **kwargs,
    )


def test_two_real_grpo_steps_carry_per_token_advantages_with_trls_row_means(parts, tmp_path):
    import trl
    from ospo_fast.integrations.trl import TABLE_COLUMNS, OSPOGRPOTrainer

    seen: list[dict[str, torch.Tensor]] = []

    class RecordTRL(trl.GRPOTrainer):
        # Sits between OSPOGRPOTrainer and TRL in the MRO, so it sees TRL's own [B] advantages.
        def _generate_and_score_completions(self, inputs):  # noqa: ANN001, ANN202
            output = super()._generate_and_score_completions(inputs)
            seen.append({"trl": output["advantages"].detach().clone()})
            return output

    class Recording(OSPOGRPOTrainer, RecordTRL):  # type: ignore[misc, valid-type]
        def _generate_and_score_completions(self, inputs):  # noqa: ANN001, ANN202
            output = super()._generate_and_score_completions(inputs)
            seen[-1] |= {"ospo": output["advantages"].detach().clone(), "mask": output["completion_mask"].bool()}
            return output

    trainer = trainer_of(Recording, parts, grpo_args(tmp_path))
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.state.global_step == 2
    assert any(not torch.equal(before[name], p.detach()) for name, p in trainer.model.named_parameters())
    assert len(seen) == 2
    for batch in seen:
        ospo, mask, group = batch["ospo"], batch["mask"], batch["trl"]
        assert ospo.shape == mask.shape and group.shape == (mask.shape[0],)  # [B, T], TRL's [B]
        assert (ospo[~mask] == 0).all()
        row_means = (ospo.double() * mask).sum(1) / mask.sum(1)
        torch.testing.assert_close(row_means, group.double(), atol=1e-5, rtol=0)
    logged = [entry for entry in trainer.state.log_history if "ospo/answer_token_share" in entry]
    assert len(logged) == 2 and all(set(OSPO_METRICS) <= set(entry) for entry in logged)
    assert all(0 < entry["ospo/answer_token_share"] <= 1 for entry in logged)
    for column in TABLE_COLUMNS:
        assert len(trainer._logs["extra"][column]) == len(trainer._logs["prompt"])


def test_settings_that_break_the_row_mean_are_refused(parts, tmp_path):
    from ospo_fast.integrations.trl import OSPOGRPOTrainer

    with pytest.raises(ValueError, match="top_entropy_quantile"):
        trainer_of(OSPOGRPOTrainer, parts, grpo_args(tmp_path, top_entropy_quantile=0.5))

    def rollout_with_env_mask(prompts: list[Any], trainer: Any) -> dict[str, list[list[Any]]]:
        completion = trainer.processing_class("red wool coat", add_special_tokens=False)["input_ids"]
        n = len(prompts)
        return {"prompt_ids": [[1, 2, 3]] * n, "completion_ids": [completion] * n,
                "logprobs": [[0.0] * len(completion)] * n, "env_mask": [[1] * len(completion)] * n}

    trainer = trainer_of(OSPOGRPOTrainer, parts, grpo_args(tmp_path, max_steps=1), rollout_func=rollout_with_env_mask)
    with pytest.raises(ValueError, match="rollout_func returned env_mask"):
        trainer.train()
