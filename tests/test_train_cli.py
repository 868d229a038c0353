"""Subprocess tests of ``python -m ospo_fast.train``: one tiny run end to end, as a newcomer
would start it (HOME, the working folder and TMPDIR all fresh), and what it leaves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import ospo_fast
from ospo_fast.data import WorldConfig, generate_world
from ospo_fast.train.tiny import save_tiny_policy

PACKAGE_ROOT = Path(ospo_fast.__file__).resolve().parent.parent
STEPS = 2


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "ospo_fast.train", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@dataclass(frozen=True)
class CliRun:
    result: subprocess.CompletedProcess
    out: Path
    cache: Path
    args: list[str]
    sandbox: dict[str, Path]  # HOME, the working folder, TMPDIR
    written: set[Path]  # every file the run created under tmp_path


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    root = tmp_path_factory.mktemp("cli")
    world = generate_world(WorldConfig(n_products=1_000, n_train=16, n_test=4, seed=5))
    model = save_tiny_policy(root / "tiny", [r["prompt"] for r in world.train()] + world.catalog["text"].tolist()[:200])
    sandbox = {"HOME": root / "home", "cwd": root / "work", "TMPDIR": root / "tmp"}
    for folder in sandbox.values():
        folder.mkdir()
    out, cache = root / "run", root / "cache"
    args = [
        "--config", "default", "--model", str(model), "--output_dir", str(out), "--cache_dir", str(cache),
        "--set", "retriever=bm25", "--eval_retrievers", "paraphrase-minilm-l3",
        "--world_products", "1000", "--world_train", "16", "--world_test", "4", "--world_seed", "5",
        "--steps", str(STEPS), "--sft_steps", "1", "--prompts_per_step", "2", "--G", "2", "--max_new_tokens", "8",
        "--eval_queries", "2", "--eval_samples", "1", "--eval_every", "1", "--lora_layers", "0", "--progress", "false",
        "--M", "8",
    ]
    before = files_under(root)
    # Without the test session's cache and telemetry settings (conftest.py): the run itself
    # must keep to the folders it was given.
    env = {k: v for k, v in os.environ.items() if k not in ("OSPO_CACHE_DIR", "MPLCONFIGDIR", "ORT_DISABLE_TELEMETRY")}
    result = run_cli(args, sandbox["cwd"], env | {"HOME": str(sandbox["HOME"]), "TMPDIR": str(sandbox["TMPDIR"])})
    assert result.returncode == 0, result.stderr[-3000:]
    return CliRun(result, out, cache, args, sandbox, files_under(root) - before)


def test_cli_trains_and_writes_records(cli_run: CliRun):
    out = cli_run.out
    assert "held-out ndcg@pool" in cli_run.result.stdout + cli_run.result.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2]
    assert [r["step"] for r in records if r["kind"] == "sft"] == [1]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [0, 1, 2]
    final_eval = [r for r in records if r["kind"] == "eval"][-1]
    for key in ("greedy/bm25/ndcg@pool", "greedy/paraphrase-minilm-l3/ndcg@pool", "sampled/bm25/mrr@pool",
                "greedy/answer_words", "greedy/reasoning_words", "greedy/bm25/zero_reward_rate"):
        assert key in final_eval
    assert (out / "train_curves.png").stat().st_size > 0 and (out / "eval_curves.png").stat().st_size > 0
    assert (out / "checkpoints" / "rl-000002" / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "sft_adapter" / "adapter_config.json").is_file()


def test_the_run_writes_only_into_its_output_and_cache_folders(cli_run: CliRun):
    outside = sorted(p for p in cli_run.written if not p.is_relative_to(cli_run.out) and not p.is_relative_to(cli_run.cache))
    assert outside == []
    assert cli_run.cache.is_dir()  # it used the cache it was given (the shift-test encoder's ONNX export)
    for folder in cli_run.sandbox.values():
        assert list(folder.iterdir()) == [], folder


def test_the_run_says_where_its_results_are(cli_run: CliRun):
    printed = cli_run.result.stdout + cli_run.result.stderr
    assert f"results go to {cli_run.out.resolve()}" in printed
    tail = printed[printed.index(f"results in {cli_run.out.resolve()}"):]
    for name in ("summary.json", "metrics.jsonl", "train_curves.png", "eval_curves.png", "credit_view/index.html",
                 "eval_per_query/", "sft_adapter/", "checkpoints/"):
        assert f"  {name}" in tail, name


def test_summary_records_wall_time_and_code(cli_run: CliRun):
    summary = json.loads((cli_run.out / "summary.json").read_text())
    assert summary["after_step"] == STEPS
    assert 0 < summary["wall_time_s"] < 600
    assert summary["ospo_fast_version"] == ospo_fast.__version__
    assert "git_commit" in summary and "git_dirty" in summary


def test_per_query_files_hold_the_texts(cli_run: CliRun):
    payload = json.loads((cli_run.out / "eval_per_query" / f"step_{STEPS:06d}.json").read_text())
    assert len(payload["queries"]) == len(payload["query_ids"]) == 2
    record = payload["queries"][0]
    assert record["query_id"] == payload["query_ids"][0]
    assert record["context"] and record["gold_query"]
    assert len(record["greedy_completions"]) == len(record["greedy_answers"]) == 1
    assert len(record["sampled_completions"]) == 1


def test_a_credit_view_per_evaluation_after_rl(cli_run: CliRun):
    views = cli_run.out / "credit_view"
    assert sorted(p.name for p in views.glob("step_*.html")) == ["step_000001.html", "step_000002.html"]
    index = (views / "index.html").read_text()
    assert 'href="step_000001.html"' in index and 'href="step_000002.html"' in index
    page = (views / "step_000002.html").read_text()
    assert 'class="scale"' in page and "∅" in page


def test_adapters_describe_themselves_without_cache_paths(cli_run: CliRun):
    for adapter in (cli_run.out / "sft_adapter", cli_run.out / "checkpoints" / "rl-000002" / "adapter"):
        config = json.loads((adapter / "adapter_config.json").read_text())
        model_arg = cli_run.args[cli_run.args.index("--model") + 1]
        assert config["base_model_name_or_path"] == model_arg
        card = (adapter / "README.md").read_text()
        assert "More Information Needed" not in card and "ospo-train" in card


def test_a_second_run_into_the_same_folder_refuses_in_one_line(cli_run: CliRun, tmp_path: Path):
    result = run_cli([*cli_run.args, "--steps", "3"], cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ospo-train: error:") and "--resume" in lines[0], result.stderr


def test_cli_rejects_bad_config_with_a_message(tmp_path):
    result = run_cli(["--config", "default", "--G", "1"], cwd=tmp_path)
    assert result.returncode == 2
    assert "G must be >= 2" in result.stderr


def test_cli_prints_the_resolved_config(tmp_path):
    result = run_cli(["--config", "qwen2.5-7b-esci", "--set", "steps=7", "--print-config"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'model = "Qwen/Qwen2.5-7B-Instruct"' in result.stdout and "steps = 7" in result.stdout
