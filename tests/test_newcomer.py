"""What a newcomer meets first, piece by piece: the test cache, ``--help``, the job clock,
the evaluation's progress, the credit view, the plots, the per-query files, the adapter
cards and the recorded commit (the whole run is in test_train_cli.py)."""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ospo_fast.reward.retrieval_reward import RetrievalReward
from ospo_fast.reward.retrievers import BM25Retriever
from ospo_fast.reward.retrievers.cache import default_cache_dir
from ospo_fast.train import cli
from ospo_fast.train.config import ALGORITHMS, field_help, load_config
from ospo_fast.train.credit_view import (
    INDEX_FILE,
    CreditSample,
    pick_credit_rows,
    render_page,
    segment_starts,
    shade,
    signed,
    write_credit_view,
)
from ospo_fast.train.evaluate import evaluate_policy, per_query_records
from ospo_fast.train.paired import write_per_query
from ospo_fast.train.plots import eval_series, flat_panels, mean_interval, plot_run, train_panels
from ospo_fast.train.policy import PEFT_ALIAS_WARNING, add_lora, describe_adapter, load_base_model, load_tokenizer
from ospo_fast.train.progress import JobClock, evaluations_left, format_duration, is_evaluation_step, seconds_left
from ospo_fast.train.records import code_version
from ospo_fast.train.rollout import Decoding, generate_passes
from ospo_fast.train.tiny import save_tiny_policy

# ------------------------------------------------------------------ the test cache


def test_tests_use_a_temporary_cache():
    cache = default_cache_dir().resolve()
    assert not cache.is_relative_to((Path.home() / ".cache" / "ospo_fast").resolve())
    assert cache.is_relative_to(Path(tempfile.gettempdir()).resolve())


# ------------------------------------------------------------------ --help


HELP = cli.build_parser().format_help()


def test_help_shows_each_key_once_with_the_default_configs_value():
    defaults = dataclasses.asdict(load_config("default"))
    flattened = " ".join(HELP.split())  # argparse wraps lines
    for name in field_help():
        assert len(re.findall(rf"^\s+--{re.escape(name)}\b", HELP, flags=re.MULTILINE)) == 1, name
        assert f"[default: {cli.shown_value(defaults[name])}]" in flattened, name
    assert "(default: None)" not in HELP and "built-in default" not in HELP
    assert "[default: runs/default]" in flattened


def test_help_lists_the_choices_of_every_enum_key():
    flattened = " ".join(HELP.split())
    assert "{" + ", ".join(ALGORITHMS) + "}" in flattened
    assert "{grpo, ospo-prop, ospo-rank, ospo-hybrid, ospo-signed}" in flattened
    for name, choices in (("segmenter", ("phrase", "sentence", "spacy", "word")), ("reward_gain", ("binary", "graded", "exp")),
                          ("loss_aggregation", ("token-mean", "seq-mean")), ("tensorboard", ("true", "false"))):
        assert cli.key_choices(name) == choices
        assert "{" + ", ".join(choices) + "}" in flattened, name
    assert cli.key_choices("lr") == ()


# ------------------------------------------------------------------ the job clock


def test_evaluation_steps_follow_the_trainers_rule():
    assert [s for s in range(1, 21) if is_evaluation_step(s, 20, 10)] == [10, 20]
    assert [s for s in range(1, 8) if is_evaluation_step(s, 7, 3)] == [3, 6, 7]
    assert evaluations_left(0, 20, 10, evaluate_at_start=True) == 3
    assert evaluations_left(10, 20, 10, evaluate_at_start=False) == 1
    assert evaluations_left(0, 0, 10, evaluate_at_start=True) == 1  # an evaluation-only run
    with pytest.raises(ValueError, match="eval_every"):
        is_evaluation_step(1, 2, 0)


def test_job_clock_knows_the_time_left_once_every_kind_has_a_pace():
    clock = JobClock({"sft": 3, "eval": 2, "rl": 3})
    assert clock.left() == "?"
    clock.finished("sft", 4.0)
    assert clock.left() == "≥8s"  # two SFT steps at 4 s, then evaluations and RL steps of unknown pace
    clock.finished("sft", 6.0)
    clock.finished("sft", 5.0)
    clock.finished("eval", 30.0)
    assert clock.left() == "≥30s"  # no RL step measured yet
    clock.finished("rl", 20.0)
    assert seconds_left(clock.remaining, clock.spent, clock.done) == (pytest.approx(30.0 + 2 * 20.0), True)
    assert clock.left() == "1m10s"
    assert seconds_left({"sft": 0, "rl": 1}, {"rl": 10.0}, {"rl": 2}) == (pytest.approx(5.0), True)
    assert [format_duration(s) for s in (None, 42.4, 425, 3720)] == ["?", "42s", "7m05s", "1h02m"]


# ------------------------------------------------------------------ evaluation


CATALOG = {"p0": "red wool winter coat", "p1": "blue cotton shirt", "p2": "black leather boots"}
ROWS = [
    {"query_id": f"q{i}", "question": f"shopper {i} wants a warm coat", "gold_query": "red wool coat",
     "answer": ["p0"], "candidate_pool": ["p0", "p1", "p2"], "pool_relevance": [3, 0, 0]}
    for i in range(5)
]


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    path = save_tiny_policy(tmp_path_factory.mktemp("tiny_eval"), [r["question"] for r in ROWS] * 20 + list(CATALOG.values()) * 20)
    return load_base_model(str(path), torch.float64), load_tokenizer(str(path))  # float64: no tie-break drift


def test_evaluation_reports_progress_per_chunk_and_decodes_as_one_call(tiny_policy):
    model, tokenizer = tiny_policy
    prompts = [r["question"] for r in ROWS]
    rewards = {"bm25": RetrievalReward(BM25Retriever(list(CATALOG.values())), list(CATALOG), k=10)}
    done: list[int] = []
    values, texts = evaluate_policy(
        model, tokenizer, prompts, ROWS, rewards, n_samples=2, temperature=1.0, max_new_tokens=6,
        max_prompt_tokens=32, batch_size=4, seed=3, on_prompts_done=done.append,
    )
    assert done == [2, 2, 1]  # 4 // 2 samples per prompt = 2 prompts per call
    with torch.random.fork_rng():
        torch.manual_seed(3)
        greedy, sampled = generate_passes(
            model, tokenizer, prompts, [Decoding(1, do_sample=False), Decoding(2, do_sample=True)],
            max_new_tokens=6, max_prompt_tokens=32, batch_size=4,
        )
    assert texts["greedy"] == greedy.texts and texts["sampled"] == sampled.texts
    assert values["greedy/bm25/ndcg@pool"].shape == (5,) and values["sampled/bm25/ndcg@pool"].shape == (10,)


def test_per_query_records_split_the_completions_by_query():
    texts = {"greedy": ["<answer>a</answer>", "b"], "sampled": ["<answer>c</answer>", "d", "e", "f"]}
    records = per_query_records(ROWS[:2], texts)
    assert records[1] == {
        "query_id": "q1", "context": ROWS[1]["question"], "gold_query": "red wool coat",
        "greedy_completions": ["b"], "greedy_answers": ["b"], "sampled_completions": ["e", "f"],
        "sampled_answers": ["e", "f"],
    }
    assert records[0]["sampled_answers"] == ["c", "d"]
    with pytest.raises(ValueError, match="do not split"):
        per_query_records(ROWS[:2], {"greedy": ["a", "b", "c"]})


# ------------------------------------------------------------------ the credit view


def sample(completion: str, advantages: list[float], *, prompt: str = "shopper", phi=(0.4, -0.1)) -> CreditSample:
    n = len(advantages)
    offsets = np.array([(i, i + 1) for i in range(len(completion))][:n] + [(len(completion),) * 2] * (n - len(completion)))
    return CreditSample(
        prompt=prompt, completion=completion, token_offsets=offsets, advantages=np.array(advantages),
        answer_mask=np.ones(n, dtype=bool), segment_spans=np.array([[0, 1], [1, 2]])[: len(phi)],
        phi=np.array(phi, dtype=np.float64), reward=0.5, group_advantage=float(np.mean(advantages)),
    )


def test_credit_rows_take_the_best_and_worst_of_each_prompt_in_turn():
    advantages = np.array([0.5, -1.0, 1.5, 0.0, 0.0, 0.0, 0.0, 0.0, -0.2, 0.9, 0.1, -0.8])  # 3 groups of 4
    assert pick_credit_rows(advantages, 4, 4) == [2, 9, 1, 11]  # group 1 (all Â = 0) is passed over
    assert pick_credit_rows(advantages, 4, 1) == [2]
    assert pick_credit_rows(np.zeros(4), 2, 3) == [0, 2, 1]  # nothing informative: rows from every group
    with pytest.raises(ValueError, match="group_size"):
        pick_credit_rows(advantages, 5, 2)


def test_zero_is_never_printed_negative_nor_shaded():
    assert signed(-0.00001) == "0.0000" and signed(0.0) == "0.0000" and signed(-0.25) == "-0.2500"
    assert shade(-0.00001, 1.0) == "transparent" and shade(0.3, 0.0) == "transparent"
    assert shade(0.5, 1.0).startswith("rgba(0, 150, 60") and shade(-2.0, 1.0).endswith(", 0.800)")


def test_segment_boundaries_land_on_the_token_holding_each_start():
    offsets = np.array([[0, 3], [3, 8], [8, 12], [12, 12]])  # "red| wool| coat|" + EOS
    assert segment_starts(offsets, np.array([[0, 3], [4, 8], [9, 12]])) == {0: 0, 1: 1, 2: 2}


def test_credit_page_explains_its_marks_and_groups_by_prompt(tmp_path):
    samples = [sample("ab", [0.2, -0.00001, 0.1], prompt="first shopper"), sample("ab", [-0.3, 0.1, 0.0], prompt="other"),
               sample("ab", [0.0, 0.0, 0.0], prompt="other", phi=())]
    page = " ".join(render_page(samples, title="t").split())
    assert page.count('class="prompt"') == 2 and "first shopper" in page
    assert "∅</b> marks a token with no characters of its own" in page and ">∅</span>" in page
    assert 'class="scale"' in page and "φ +0.4000" in page and "segment 2 starts here (φ = -0.1000)" in page
    assert "-0.0000" not in page
    assert "not attributed" in page  # the row with no segments says why
    write_credit_view(tmp_path / "step_000010.html", samples, title="t")
    write_credit_view(tmp_path / "step_000002.html", samples, title="t")
    index = (tmp_path / INDEX_FILE).read_text()
    assert index.index("step_000002.html") < index.index("step_000010.html")


# ------------------------------------------------------------------ plots


def test_panels_zero_by_construction_are_left_out():
    assert flat_panels(beta=0.0, mu=1) == ("kl", "clip_fraction")
    assert flat_panels(beta=0.04, mu=2) == ()
    titles = [key for key, _ in train_panels(flat_panels(beta=0.0, mu=1))]
    assert "kl" not in titles and "clip_fraction" not in titles and "loss" in titles
    with pytest.raises(ValueError, match="hidden"):
        train_panels(("klx",))


def test_eval_series_pairs_each_step_with_the_first(tmp_path):
    key = "greedy/bm25/ndcg@pool"
    write_per_query(tmp_path / "eval_per_query" / "step_000000.json", ["a", "b", "c"], {key: [0.1, 0.2, 0.3]})
    write_per_query(tmp_path / "eval_per_query" / "step_000005.json", ["a", "b", "c"], {key: [0.2, 0.4, 0.3]})
    series = eval_series(tmp_path, [0, 3, 5], key)  # step 3 has no file
    assert series["step"] == [0.0, 5.0]
    assert series["change"][0] == 0.0 and series["change"][1] == pytest.approx(0.1)
    assert series["low"][1] <= 0.1 <= series["high"][1]
    mean, half = mean_interval([0.2, 0.4, 0.3])
    assert mean == pytest.approx(0.3) and half == pytest.approx(1.96 * 0.1 / np.sqrt(3))
    records = [{"kind": "eval", "step": s, key: 0.2} for s in (0, 5)] + [{"kind": "train", "step": 1, "loss": 0.1}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    for path in plot_run(tmp_path, hidden=("kl",), trained_on="bm25"):
        assert path.stat().st_size > 0


# ------------------------------------------------------------------ adapters and provenance


def test_peft_wrapping_no_longer_warns_about_the_checkpointing_alias(tiny_policy):
    model, _ = tiny_policy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        add_lora(model, r=2, alpha=4.0, dropout=0.0, target_modules=("q_proj",))
    assert not [w for w in caught if re.search(PEFT_ALIAS_WARNING, str(w.message))]


def test_adapter_card_replaces_the_template_and_the_cache_path(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": "/home/u/.cache/ospo_fast/policies/SmolLM2", "r": 8, "lora_alpha": 16,
         "target_modules": ["v_proj", "q_proj"], "layers_to_transform": [28, 29]}))
    (tmp_path / "README.md").write_text("[More Information Needed]")
    describe_adapter(tmp_path, base_model="smollm2-135m", about="The SFT warm start.")
    assert json.loads((tmp_path / "adapter_config.json").read_text())["base_model_name_or_path"] == "smollm2-135m"
    card = (tmp_path / "README.md").read_text()
    assert "The SFT warm start." in card and "q_proj, v_proj" in card and "layers 28, 29" in card
    assert "More Information Needed" not in card
    with pytest.raises(ValueError, match="adapter_config.json"):
        describe_adapter(tmp_path / "missing", base_model="m", about="")


def test_code_version_names_this_checkout_and_nothing_else(tmp_path):
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / ".git").exists():
        pytest.skip("the tests do not run from a git checkout")
    here = code_version(working_dir=checkout)
    assert here["ospo_fast_version"] and here["git_commit_of"] in ("package", "working directory")
    assert re.fullmatch(r"[0-9a-f]{40}", here["git_commit"]) and isinstance(here["git_dirty"], bool)
    elsewhere = code_version(tmp_path, working_dir=tmp_path)
    assert elsewhere["git_commit"] is None and elsewhere["git_commit_of"] is None
