"""benchmarks/compare_methods.py at a toy size: 2 RL methods, 1 seed, 2 steps, on a tiny random Llama."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import compare_methods  # noqa: E402

from ospo_fast.data import WorldConfig, generate_world  # noqa: E402
from ospo_fast.train.records import METRICS_FILE, read_records, records_of  # noqa: E402
from ospo_fast.train.tiny import save_tiny_policy  # noqa: E402

TOY = {
    "retriever": "bm25", "eval_retrievers": "[]", "prompts_per_step": "2", "G": "4", "max_new_tokens": "12",
    "lora_r": "4", "lora_layers": "0", "lr": "5e-3", "warmup_steps": "0", "sft_steps": "2", "sft_batch_size": "4",
    "steps": "2", "eval_queries": "4", "eval_samples": "0", "eval_every": "1", "save_every": "1",
    "tensorboard": "false", "world_products": "1000", "world_train": "24", "world_test": "4", "world_seed": "3",
    "M": "16", "w_max": "8", "answer_format": "lenient", "world_imperfect_distractor_rate": "0.5",
}


@pytest.fixture(scope="module")
def toy_args(tmp_path_factory) -> list[str]:
    world = generate_world(WorldConfig(n_products=1_000, n_train=24, n_test=4, seed=3))
    corpus = [r["prompt"] for r in world.train()] + world.catalog["text"].tolist()[:300]
    model = save_tiny_policy(tmp_path_factory.mktemp("tiny_policy"), corpus)
    sets = [f"{k}={v}" for k, v in (TOY | {"model": str(model), "cache_dir": str(tmp_path_factory.mktemp("c"))}).items()]
    return [arg for item in sets for arg in ("--set", item)]


def train_steps(directory: Path) -> list[int]:
    return [int(r["step"]) for r in records_of(read_records(directory / METRICS_FILE), "train")]


def test_toy_suite_tables_curves_and_resume(toy_args, tmp_path):
    out = tmp_path / "suite"
    methods = ["--methods", "sft", "grpo", "ospo-signed", "--seeds", "0", "--out", str(out)]
    # A suite killed in the middle of a run: GRPO has a checkpoint at step 1 and no summary.
    from ospo_fast.train.config import load_config
    from ospo_fast.train.trainer import Trainer

    compare_methods.main(["--methods", "sft", "--seeds", "0", "--out", str(out), *toy_args])
    grpo = compare_methods.METHODS["grpo"]
    overrides = compare_methods.parse_sets(toy_args[1::2])
    grpo_cfg = load_config("default", compare_methods.method_overrides(grpo, 0, overrides, out))
    Trainer(grpo_cfg).train(max_steps=1)
    assert train_steps(Path(grpo_cfg.output_dir)) == [1]

    payload = compare_methods.main([*methods, *toy_args])
    assert train_steps(Path(grpo_cfg.output_dir)) == [1, 2]  # continued, not started again
    assert set(payload["final_eval"]) == {"sft", "grpo", "ospo-signed"}
    paired = payload["paired"]["greedy/bm25/ndcg@pool"]
    assert {"grpo − sft", "ospo-signed − sft", "ospo-signed − grpo"} <= set(paired)
    targets = payload["steps_to_target"]
    assert set(targets["methods"]) == {"grpo", "ospo-signed"}
    assert targets["methods"][targets["best_method"]]["steps"] is not None  # the best reaches its own final
    assert targets["methods"]["grpo"]["eval_steps"] == [0, 1, 2]  # the SFT start is step 0
    split = payload["step_time_split"]
    assert split["grpo"]["steps"] == 2 and split["ospo-signed"]["attribution"] > 0
    assert split["grpo"]["log-probs"] > 0 and split["grpo"]["step"] >= split["grpo"]["generate"]
    harmful = payload["harmful_values"]
    assert set(harmful) == {"sft", "grpo", "ospo-signed"}
    assert all(row["answers"] == 4 for row in harmful.values())  # a random policy writes no answer to judge
    assert (out / "learning_curves.png").stat().st_size > 10_000
    saved = json.loads((out / "compare_methods.json").read_text())
    assert saved["seeds"] == [0] and "Steps to 95%" in (out / "compare_methods.md").read_text()

    # Run again: everything is read, nothing trains; a method whose config coincides trains nothing.
    before = {p: p.stat().st_mtime_ns for p in out.rglob(METRICS_FILE)}
    again = compare_methods.main(["--methods", "sft", "grpo", "ospo-signed", "ospo-prop", "ospo-prop/w8", "--seeds", "0",
                                  "--out", str(out), *toy_args])
    assert {p: p.stat().st_mtime_ns for p in out.rglob(METRICS_FILE) if p in before} == before
    assert again["final_eval"]["ospo-prop/w8"] == again["final_eval"]["ospo-prop"]
    assert not (out / "seed0" / "ospo-prop@w8").exists()
    assert (out / "learning_curves_ablations.png").is_file()


def test_the_suite_refuses_what_it_cannot_run(tmp_path):
    with pytest.raises(SystemExit, match="keep 'sft'"):
        compare_methods.main(["--methods", "grpo", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="ablation-seeds"):
        compare_methods.main(["--suite", "ablations", "--seeds", "0", "--ablation-seeds", "1", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        compare_methods.parse_args(["--target-fraction", "1.5"])


def test_every_method_is_a_valid_config():
    from ospo_fast.train.config import load_config

    for method in compare_methods.METHODS.values():
        load_config("default", compare_methods.method_overrides(method, 0, {}, Path("/nonexistent")))
    assert compare_methods.pairs_of(["sft", "grpo", "ospo-prop/w2"]) == [
        ("grpo", "sft"), ("ospo-prop/w2", "sft"), ("ospo-prop/w2", "grpo")]


def test_harmful_value_shares_read_the_world_truth(tmp_path):
    import learning_curves

    from ospo_fast.train.config import load_config
    from ospo_fast.train.paired import write_per_query

    cfg = load_config("default", {"world_products": 1000, "world_train": 24, "world_test": 4, "world_seed": 3})
    from ospo_fast.data import vocabulary
    from ospo_fast.train.trainer import generated_world_config

    world = generate_world(generated_world_config(cfg))
    row = world.test()[0]
    product = world.catalog.set_index("product_id").loc[row["target_item_id"]]
    wrong_colour = next(c for c in vocabulary.COLOURS if c != product["colour"])
    answers = {"gold": row["gold_query"], "harmful": f"{wrong_colour.lower()} {row['gold_query']}"}
    files = {}
    for name, answer in answers.items():
        path = tmp_path / f"{name}.json"
        write_per_query(path, [row["query_id"]], {"greedy/bm25/ndcg@pool": [0.0]},
                        queries=[{"query_id": row["query_id"], "greedy_answers": [answer]}])
        files[name] = {0: path}
    shares = learning_curves.harmful_value_shares(cfg, files)
    assert shares["gold"]["wrong_value_share"] == 0 and shares["gold"]["gold_value_share"] > 0
    assert shares["harmful"]["answers_with_a_wrong_value"] == 1
    assert 0 < shares["harmful"]["wrong_value_share"] < 1
    assert shares["harmful"]["values_per_answer"] == shares["gold"]["values_per_answer"] + 1
