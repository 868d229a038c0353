"""Subprocess smoke test of ``python -m ospo_fast.train`` with a tiny model and world."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ospo_fast
from ospo_fast.data import WorldConfig, generate_world
from ospo_fast.train.tiny import save_tiny_policy

PACKAGE_ROOT = Path(ospo_fast.__file__).resolve().parent.parent


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "ospo_fast.train", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_cli_trains_and_writes_records(tmp_path):
    world = generate_world(WorldConfig(n_products=1_000, n_train=16, n_test=4, seed=5))
    model = save_tiny_policy(tmp_path / "tiny", [r["prompt"] for r in world.train()] + world.catalog["text"].tolist()[:200])
    out = tmp_path / "run"
    result = run_cli(
        [
            "--config", "default", "--model", str(model), "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"),
            "--set", "retriever=bm25", "--eval_retrievers", "paraphrase-minilm-l3",
            "--world_products", "1000", "--world_train", "16", "--world_test", "4", "--world_seed", "5",
            "--steps", "2", "--sft_steps", "1", "--prompts_per_step", "2", "--G", "2", "--max_new_tokens", "8",
            "--eval_queries", "2", "--eval_samples", "1", "--lora_layers", "0", "--progress", "false", "--M", "8",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "held-out ndcg@pool" in result.stdout + result.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2]
    assert [r["step"] for r in records if r["kind"] == "sft"] == [1]
    final_eval = [r for r in records if r["kind"] == "eval"][-1]
    for key in ("greedy/bm25/ndcg@pool", "greedy/paraphrase-minilm-l3/ndcg@pool", "sampled/bm25/mrr@pool",
                "greedy/answer_words", "greedy/reasoning_words", "greedy/bm25/zero_reward_rate"):
        assert key in final_eval
    assert (out / "train_curves.png").stat().st_size > 0 and (out / "eval_curves.png").stat().st_size > 0
    assert (out / "checkpoints" / "rl-000002" / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "sft_adapter" / "adapter_config.json").is_file()
    assert list((out / "credit_view").glob("step_*.html"))
    assert json.loads((out / "summary.json").read_text())["after_step"] == 2


def test_cli_rejects_bad_config_with_a_message(tmp_path):
    result = run_cli(["--config", "default", "--G", "1"], cwd=tmp_path)
    assert result.returncode == 2
    assert "G must be >= 2" in result.stderr


def test_cli_prints_the_resolved_config(tmp_path):
    result = run_cli(["--config", "qwen2.5-7b-esci", "--set", "steps=7", "--print-config"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'model = "Qwen/Qwen2.5-7B-Instruct"' in result.stdout and "steps = 7" in result.stdout
