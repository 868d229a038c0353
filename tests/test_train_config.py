"""TrainConfig: packaged configs load, overrides parse, bad values are rejected when built."""

from __future__ import annotations

import dataclasses

import pytest

from ospo_fast.train.cli import build_parser, overrides_from
from ospo_fast.train.config import TrainConfig, config_to_toml, field_help, load_config, read_toml


def test_packaged_configs_load():
    default = load_config("default")
    production = load_config("qwen2.5-7b-esci")
    assert default.model == "smollm2-135m" and default.sft_steps > 0 and default.algorithm == "ospo-prop"
    assert production.model == "Qwen/Qwen2.5-7B-Instruct"
    # spec §8 reference hyperparameters
    assert (production.lora_r, production.lora_alpha, production.lora_dropout) == (32, 16.0, 0.05)
    assert (production.lr, production.warmup_steps, production.weight_decay, production.steps) == (5e-6, 100, 0.05, 2000)
    assert (production.G, production.w_max, production.M, production.temperature) == (8, 32, 64, 1.0)
    assert (production.max_new_tokens, production.max_prompt_tokens, production.k) == (356, 256, 1000)


def test_every_field_is_documented():
    helps = field_help()
    assert set(helps) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert all(text for text in helps.values())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"G": 1, "algorithm": "grpo"}, "G must be >= 2"),
        ({"G": 1}, "G must be >= 2"),
        ({"w_max": 0}, "w_max must be >= 1"),
        ({"algorithm": "ppo"}, "algorithm must be one of"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"lr": -1e-5}, "lr must be > 0"),
        ({"M": 1}, "M must be >= 2"),
        ({"loss_aggregation": "sum"}, "loss_aggregation must be one of"),
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"alpha": 1.5}, "alpha must be in"),
        ({"epsilon_low": 1.0}, "epsilon_low must be in"),
        ({"gradient_accumulation_steps": 9, "prompts_per_step": 4}, "exceeds prompts_per_step"),
        ({"lora_target_modules": ()}, "lora_target_modules"),
        ({"G": "8"}, "G must be int"),
        ({"contiguous": "yes"}, "contiguous must be bool"),
        ({"world_direct_hint_rate": 1.5}, "world_direct_hint_rate must be in"),
    ],
)
def test_bad_values_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config("default", overrides)


def test_sft_only_run_may_use_g_one():
    cfg = load_config("default", {"G": 1, "steps": 0})
    assert cfg.G == 1


def test_an_evaluation_only_run_is_the_zero_shot_baseline():
    cfg = load_config("default", {"steps": 0, "sft_steps": 0})
    assert cfg.eval_at_start
    with pytest.raises(ValueError, match="nothing to train or evaluate"):
        load_config("default", {"steps": 0, "sft_steps": 0, "eval_at_start": False})


def test_unknown_key_names_the_source(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('algorithm = "grpo"\n[rollout]\ngroup = 4\n')
    with pytest.raises(ValueError, match=r"bad\.toml.*unknown key 'group'"):
        load_config(str(path))


def test_duplicate_key_across_tables_is_rejected(tmp_path):
    path = tmp_path / "dup.toml"
    path.write_text("G = 4\n[rollout]\nG = 8\n")
    with pytest.raises(ValueError, match="set twice"):
        read_toml(path)


def test_missing_config_file_is_named():
    with pytest.raises(ValueError, match="neither a file nor one of"):
        load_config("no/such/file.toml")


def test_string_overrides_parse_to_field_types():
    cfg = load_config(
        "default",
        ["algorithm=grpo", "G=4", "lr=3e-4", "contiguous=false", "eval_retrievers=bm25, paraphrase-minilm-l3"],
    )
    assert (cfg.algorithm, cfg.G, cfg.lr, cfg.contiguous) == ("grpo", 4, 3e-4, False)
    assert cfg.eval_retrievers == ("bm25", "paraphrase-minilm-l3")
    assert load_config("default", ["eval_retrievers="]).eval_retrievers == ()
    assert load_config("default", ["eval_retrievers=[]"]).eval_retrievers == ()
    assert load_config("default", ['eval_retrievers=["bm25", "minilm"]']).eval_retrievers == ("bm25", "minilm")
    with pytest.raises(ValueError, match="G takes an int"):
        load_config("default", ["G=four"])
    with pytest.raises(ValueError, match="key=value"):
        load_config("default", ["G"])


def test_cli_flags_and_set_both_override():
    args = build_parser().parse_args(["--set", "G=4", "--G", "6", "--algorithm", "ospo-rank", "--resume"])
    cfg = load_config(args.config, overrides_from(args))
    assert (cfg.G, cfg.algorithm, args.resume) == (6, "ospo-rank", True)


def test_toml_round_trip(tmp_path):
    cfg = load_config("default", {"algorithm": "ospo-hybrid", "alpha": 0.5, "invert_negative": True})
    path = tmp_path / "run.toml"
    path.write_text(config_to_toml(cfg))
    assert load_config(str(path)) == cfg


def test_redistribution_mode_follows_algorithm():
    assert load_config("default", {"algorithm": "ospo-rank"}).redistribution == "rank"
    with pytest.raises(ValueError, match="does not redistribute"):
        load_config("default", {"algorithm": "grpo"}).redistribution
