"""OSPO against verl's real code (verl 0.9.1 installed with --no-deps; scripts/install.sh).

What runs here is verl's own: its Hydra config (``ppo_trainer.yaml``, composed under
examples/verl/config/ospo_grpo.yaml), its reward-function loader, its plugin loading at
``import verl``, its V1 ``get_trainer_cls`` registry, ``PPOTrainer.__init__``, and its
advantage step ``PPOTrainer._compute_advantage`` (KL, rollout correction, GRPO through
``compute_advantage_for_multi_trajectories``, the TransferQueue reads and writes) on a
local Ray with a real TransferQueue. What cannot run on a CPU is the rest of a step:
rollouts (vLLM/SGLang servers), the FSDP workers' log-probs and the actor update.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomllib
import torch

pytest.importorskip("verl", reason="verl is not installed (scripts/install.sh installs it with --no-deps)")
pytest.importorskip("transfer_queue", reason="TransferQueue (verl's V1 trainer store) is not installed")

from omegaconf import DictConfig, OmegaConf, open_dict  # noqa: E402
from ospo_fast.integrations.verl import (  # noqa: E402
    OSPOSettings,
    evaluator_of,
    reward_of,
    verl_dataset_rows,
    verl_token_advantages,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "examples" / "verl" / "config"
MODES = ("prop", "rank", "hybrid")
G = 4  # responses per prompt
# What a policy might answer to each of two prompts; tags missing, empty answers and duplicates included.
ANSWERS = (
    ["<think>a sofa</think><answer>{gold}</answer>", "<answer>blue sofa for the living room</answer>", "{gold}",
     "<answer></answer>"],
    ["<think>x</think><answer>{gold}</answer>", "<answer>red wool rug</answer>", "<answer>{gold} cheap</answer>",
     "<answer>{gold}</answer>"],
)


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small world, a tiny policy whose tokenizer knows its words, and verl dataset rows."""
    from ospo_fast.data import WorldConfig, generate_world, save_world
    from ospo_fast.train.tiny import save_tiny_policy

    root = tmp_path_factory.mktemp("verl_assets")
    world = generate_world(WorldConfig(n_products=1000, n_train=8, n_test=2, seed=0))
    save_world(world, root / "world")
    train = world.train()[:2]
    policy = save_tiny_policy(root / "policy", world.catalog["text"].tolist()[:300] + [r["prompt"] for r in train])
    return {"root": root, "rows": verl_dataset_rows(train, "train"), "gold": [r["gold_query"] for r in train],
            "policy": policy}


def compose_config(assets: dict[str, Any], *overrides: str) -> DictConfig:
    """The example config on verl's own defaults, pointed at the test's world, policy and a BM25 reward."""
    from hydra import compose, initialize_config_dir

    root = assets["root"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name="ospo_grpo", overrides=[
            f"ospo.world_dir={root / 'world'}", "ospo.retriever=bm25", f"ospo.cache_dir={root / 'cache'}",
            "ospo.owen.segmenter=word", "ospo.owen.w_max=4", "ospo.owen.max_coalitions=16",
            f"data.train_files={root / 'train.parquet'}", f"data.val_files={root / 'train.parquet'}",
            f"actor_rollout_ref.model.path={assets['policy']}", "data.train_batch_size=2",
            f"actor_rollout_ref.rollout.n={G}", *overrides,
        ])


@pytest.fixture(scope="module")
def config(assets: dict[str, Any]) -> DictConfig:
    return compose_config(assets)


@pytest.fixture(scope="module")
def tokenizer(assets: dict[str, Any]) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(assets["policy"])


def responses_of(assets: dict[str, Any], tokenizer: Any) -> list[dict[str, Any]]:
    """One sample per response as verl's agent loop stores it: ids ending in EOS, a mask of ones, the row's columns."""
    samples = []
    for p, (row, gold) in enumerate(zip(assets["rows"], assets["gold"])):
        for s, template in enumerate(ANSWERS[p]):
            text = template.format(gold=gold)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            samples.append({"key": f"uid{p}_{s}_0", "uid": f"uid{p}", "text": text, "ids": ids, **row})
    return samples


def rewards_of(samples: list[dict[str, Any]], config: DictConfig) -> list[float]:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    compute_score = get_custom_reward_fn(config)
    return [compute_score(data_source=s["data_source"], solution_str=s["text"], ground_truth=s["reward_model"]
                          ["ground_truth"], extra_info=dict(s["extra_info"])) for s in samples]


def padded_batch(samples: list[dict[str, Any]], rewards: list[float]) -> dict[str, torch.Tensor]:
    """``responses``, ``response_mask`` and ``rm_scores`` [B, T] as V1's ``to_padded_tensor`` gives them."""
    width = max(len(s["ids"]) for s in samples) + 2  # every row ends in padding
    responses = torch.zeros((len(samples), width), dtype=torch.int64)  # [B, T]
    response_mask = torch.zeros((len(samples), width), dtype=torch.int64)  # [B, T]
    rm_scores = torch.zeros((len(samples), width))  # [B, T] the reward on the last response token
    for b, (sample, r) in enumerate(zip(samples, rewards)):
        n = len(sample["ids"])
        responses[b, :n], response_mask[b, :n], rm_scores[b, n - 1] = torch.tensor(sample["ids"]), 1, r
    return {"responses": responses, "response_mask": response_mask, "rm_scores": rm_scores}


def verl_grpo_advantages(samples: list[dict[str, Any]], batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """verl's own GRPO advantages [B, T], through the function V1's ``_compute_advantage`` calls."""
    from verl import DataProto
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    data = DataProto.from_dict(
        tensors={"response_mask": batch["response_mask"], "token_level_scores": batch["rm_scores"],
                 "token_level_rewards": batch["rm_scores"]},
        non_tensors={"uid": np.array([s["uid"] for s in samples], dtype=object)},
    )
    data = compute_advantage_for_multi_trajectories(
        data, batch_keys=[s["key"] for s in samples], adv_estimator="grpo", num_repeat=G, config=AlgoConfig()
    )
    return data.batch["advantages"]


def row_means(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.double()
    return (values.double() * m).sum(1) / m.sum(1)


def test_example_config_composes_on_verls_defaults(config):
    from verl.trainer.config import AlgoConfig
    from verl.utils.config import omega_conf_to_dataclass

    assert config.trainer.use_v1 is True and config.trainer.v1.trainer_mode == "ospo_sync"
    assert isinstance(omega_conf_to_dataclass(config.algorithm), AlgoConfig)
    kwargs = OmegaConf.to_container(config.reward.custom_reward_function.reward_kwargs, resolve=True)
    assert kwargs["verl_trainer"] == {"use_v1": True, "trainer_mode": "ospo_sync"}
    assert OSPOSettings.from_config(kwargs["ospo"]) == OSPOSettings.from_config(config.ospo)


def test_verls_reward_loader_runs_compute_score(assets, config, tokenizer):
    samples = responses_of(assets, tokenizer)
    rewards = rewards_of(samples, config)
    reward = reward_of(OSPOSettings.from_config(config.ospo))
    want = reward([s["text"] for s in samples], [dict(s["extra_info"]) for s in samples])
    np.testing.assert_array_equal(rewards, want)
    assert rewards[0] > rewards[1] and rewards[3] == 0.0  # the gold query beats a vague one; an empty answer scores 0


@pytest.mark.parametrize(("override", "match"), [
    ("trainer.v1.trainer_mode=sync", "trainer_mode is 'sync'"),
    ("trainer.v1.trainer_mode=colocate_async", "async modes are not supported"),
    ("trainer.use_v1=false", "trainer.use_v1 is False"),
])
def test_compute_score_refuses_runs_without_ospo_advantages(assets, tokenizer, override, match):
    sample = responses_of(assets, tokenizer)[0]
    with pytest.raises(ValueError, match=match):
        rewards_of([sample], compose_config(assets, override))


@pytest.mark.parametrize("mode", MODES)
def test_verls_grpo_advantages_become_per_token(assets, config, tokenizer, mode):
    samples = responses_of(assets, tokenizer)
    batch = padded_batch(samples, rewards_of(samples, config))
    grpo = verl_grpo_advantages(samples, batch)  # [B, T]
    settings = replace(OSPOSettings.from_config(config.ospo), mode=mode)
    evaluator = evaluator_of(settings)

    def ospo(seed: int) -> torch.Tensor:
        return verl_token_advantages(
            batch["responses"], batch["response_mask"], grpo, [s["extra_info"] for s in samples], tokenizer,
            [tokenizer.eos_token_id], evaluator, settings, seed=seed,
        ).token_advantages

    advantages, mask = ospo(seed=7), batch["response_mask"].bool()
    assert advantages.shape == mask.shape and advantages.dtype == torch.float32  # [B, T]
    torch.testing.assert_close(row_means(advantages, mask), grpo[:, 0].double(), atol=1e-5, rtol=0)
    assert (advantages[~mask] == 0).all()
    assert torch.equal(advantages, ospo(seed=7))
    varied = [b for b in range(len(samples)) if grpo[b, 0] != 0 and advantages[b, mask[b]].std() > 1e-6]
    assert varied, "OSPO spread no row's advantage over its tokens"


def test_prepared_data_reaches_verls_dataset_and_reward(tmp_path, tokenizer, monkeypatch):
    """examples/verl/prepare_data.py as written, read back by verl's RLHFDataset; its rows score in verl's loader."""
    import datasets
    from hydra import compose, initialize_config_dir
    from ospo_fast.data import load_world
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.utils.dataset.rl_dataset import RLHFDataset

    script = ROOT / "examples" / "verl" / "prepare_data.py"
    command = [sys.executable, str(script), "--out", str(tmp_path), "--products", "1000", "--train", "6", "--test", "2"]
    subprocess.run(command, check=True, capture_output=True, text=True)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        config = compose(config_name="ospo_grpo", overrides=[
            f"ospo.world_dir={tmp_path / 'world'}", "ospo.retriever=bm25",
            f"data.train_files={tmp_path / 'train.parquet'}", f"data.val_files={tmp_path / 'test.parquet'}",
            "actor_rollout_ref.model.path=unused",
            "data.max_prompt_length=4096",  # the tiny policy's 600-word vocabulary makes long prompts
        ])
    with open_dict(config):
        config.data.cache_dir = str(tmp_path / "verl_cache")  # RLHFDataset's copies, ~/.cache/verl by default
    # RLHFDataset's load_dataset caches Arrow files in ~/.cache/huggingface unless told otherwise.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")
    dataset = RLHFDataset(str(tmp_path / "train.parquet"), tokenizer, config.data)
    world_rows = load_world(tmp_path / "world").train()
    assert len(dataset) == len(world_rows) == 6
    item = dataset[1]
    assert item["extra_info"]["candidate_pool"] == list(world_rows[1]["candidate_pool"])
    assert item["raw_prompt"] == [{"role": "user", "content": world_rows[1]["prompt"]}]
    compute_score = get_custom_reward_fn(config)
    answer = f"<answer>{world_rows[1]['gold_query']}</answer>"
    score = compute_score(data_source=item["data_source"], solution_str=answer,
                          ground_truth=item["reward_model"]["ground_truth"], extra_info=item["extra_info"])
    assert 0 < score <= 1


def test_plugin_registers_ospo_sync_through_verls_entry_points(tmp_path):
    """verl's own ``import verl`` loads the entry point pyproject.toml declares, in a fresh process."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["verl.plugins"]
    dist = tmp_path / "ospo_entry_point-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ospo-entry-point\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[verl.plugins]\n" + "".join(f"{k} = {v}\n" for k, v in declared.items()))
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
                        "VERL_USE_EXTERNAL_PLUGINS": "auto"}
    code = ("import verl\nfrom verl.trainer.ppo.v1 import get_trainer_cls\n"
            "cls = get_trainer_cls('ospo_sync')\nprint(cls.__module__, cls.__mro__[1].__name__)")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ["ospo_fast.integrations.verl.plugin", "PPOTrainerSync"]


def test_trainer_refuses_unsupported_configs(assets):
    from ospo_fast.integrations.verl.plugin import OSPOTrainerSync

    with pytest.raises(ValueError, match="'gae'.*outcome estimator"):
        OSPOTrainerSync(compose_config(assets, "algorithm.adv_estimator=gae"))
    without = compose_config(assets)
    with open_dict(without):
        del without["ospo"]
    with pytest.raises(ValueError, match="needs an 'ospo' block"):
        OSPOTrainerSync(without)


@pytest.fixture(scope="module")
def transfer_queue() -> Iterator[Any]:
    """A local Ray (its files in a short temporary folder, no token in ~/.ray) and a TransferQueue on it."""
    import ray
    import transfer_queue as tq

    ray_dir = tempfile.mkdtemp(prefix="ospo-ray-")  # Ray's socket paths must stay under 108 characters
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")
        # The controller and two storage units ask for one CPU each.
        ray.init(num_cpus=4, include_dashboard=False, _temp_dir=ray_dir, log_to_driver=False)
        try:
            tq.init()
            yield tq
        finally:
            tq.close()
            ray.shutdown()
            shutil.rmtree(ray_dir, ignore_errors=True)


def put_samples(tq: Any, samples: list[dict[str, Any]], rewards: list[float], prefix: str) -> Any:
    """Write samples into TransferQueue as verl's agent loop does (list_of_dict_to_tensordict, kv_batch_put)."""
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    fields = []
    for sample, r in zip(samples, rewards):
        n = len(sample["ids"])
        rm_scores = torch.zeros(n)  # [T] the reward on the last token, as AgentLoopOutput.as_dict puts it
        rm_scores[-1] = r
        fields.append({"prompts": torch.tensor([1, 2, 3]), "responses": torch.tensor(sample["ids"]),
                       "response_mask": torch.ones(n, dtype=torch.int64), "rm_scores": rm_scores,
                       "old_log_probs": torch.zeros(n), "uid": sample["uid"],
                       **{k: sample[k] for k in ("data_source", "reward_model", "extra_info")}})
    keys = [f"{prefix}{s['key']}" for s in samples]
    return tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(fields),
                           tags=[{"status": "success"}] * len(keys))


def test_trainer_replaces_verls_advantages_in_transfer_queue(assets, config, tokenizer, transfer_queue):
    import ospo_fast.integrations.verl.plugin  # noqa: F401  (what the verl.plugins entry point loads)
    from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

    run_config = copy.deepcopy(config)
    OmegaConf.resolve(run_config)  # as TaskRunnerV1.run does before building the trainer
    trainer = get_trainer_cls("ospo_sync")(run_config)
    assert trainer.trainer_mode == "sync" and type(trainer.replay_buffer) is ReplayBuffer  # verl's sync paths
    trainer._init_tokenizer()  # verl's own, from actor_rollout_ref.model.path
    trainer.global_steps = 3
    samples = responses_of(assets, tokenizer)
    rewards = rewards_of(samples, config)

    def advantages_of(batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        got = transfer_queue.kv_batch_get(keys=batch.keys, partition_id="train",
                                          select_fields=["advantages", "returns", "response_mask"])
        return tuple(got[name].to_padded_tensor(0) for name in ("advantages", "returns", "response_mask"))

    metrics: dict[str, float] = {}
    ours = advantages_of(trainer._compute_advantage(put_samples(transfer_queue, samples, rewards, "a"), metrics))
    base = advantages_of(PPOTrainerSync._compute_advantage(trainer, put_samples(transfer_queue, samples, rewards, "b"),
                                                          {}))
    again = advantages_of(trainer._compute_advantage(put_samples(transfer_queue, samples, rewards, "c"), {}))
    advantages, returns, mask = ours[0], ours[1], ours[2].bool()
    grpo = base[0]  # verl's own GRPO advantages [B, T]
    assert advantages.shape == mask.shape == (len(samples), max(len(s["ids"]) for s in samples))
    torch.testing.assert_close(row_means(advantages, mask), row_means(grpo, mask), atol=1e-5, rtol=0)
    torch.testing.assert_close(returns, advantages)
    assert (advantages[~mask] == 0).all()
    assert torch.equal(advantages, again[0])  # same step, same seed
    assert not torch.allclose(advantages, grpo)  # the tokens of some answers got unequal shares
    assert set(metrics) >= {"ospo/within_row_adv_std", "ospo/answer_token_share", "ospo/coalitions"}
    assert 0 < metrics["ospo/answer_token_share"] < 1 and metrics["ospo/coalitions"] > 0
