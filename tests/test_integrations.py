"""TRL and verl adapters on trainer-shaped batches, with neither trainer imported.

The adapters' maths runs on batches shaped as TRL's ``_generate_and_score_completions``
output and as verl's padded TransferQueue fields; the TRL subclass also runs on a small
stand-in of ``GRPOTrainer`` (named as a test double below), for the branches the real
two-step run (tests/test_trl_real.py) does not reach: evaluation batches, ``env_mask``,
old TRL versions. The real verl code paths are in tests/test_verl_real.py.
"""

from __future__ import annotations

import sys
import types
from collections import defaultdict
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ospo_fast.attribution import OwenConfig, decode_completions, step_seed, step_token_advantages
from ospo_fast.attribution.coalition_values import CoalitionEvaluator
from ospo_fast.integrations import advantage_metrics, check_ospo_setup
from ospo_fast.integrations import trl as trl_adapter
from ospo_fast.integrations import verl as verl_adapter
from ospo_fast.reward import RetrievalReward, extract_answer
from ospo_fast.reward.retrievers import BM25Retriever

CATALOG = {
    "p0": "red wool winter coat",
    "p1": "blue cotton slim shirt",
    "p2": "black leather ankle boots",
    "p3": "green linen summer dress",
    "p4": "red cotton t-shirt",
    "p5": "grey wool scarf",
}
COMPLETIONS = [
    "<think>she wants a warm red coat</think><answer>red wool winter coat</answer>",
    "<answer>blue cotton slim shirt</answer>",
    "grey wool scarf",  # no tags: the whole completion is the answer
    "<think>no idea at all</think><answer></answer>",  # empty answer: nothing to credit
]
KEYWORDS = [["red", "coat"], ["shirt"], ["scarf"], ["coat"]]
POOLS = [["p0", "p2", "p4", "p5"], ["p1", "p4", "p3", "p0"], ["p5", "p0", "p2", "p1"], ["p0", "p2", "p4", "p5"]]
RELEVANCE = [[3, 0, 1, 2], [3, 2, 0, 0], [3, 1, 0, 0], [3, 0, 1, 2]]
GROUP_ADVANTAGES = [1.0, -0.5, 0.7, -1.2]
OWEN = OwenConfig(segmenter="word", w_max=4, max_coalitions=16)
MODES = ("prop", "rank", "hybrid")


class KeywordEvaluator:
    """Test double of CoalitionEvaluator with a known game: v(S) = |keywords among S's segments| / |keywords|.

    The game is additive, so every keyword segment has positive credit and every other
    segment none. ``seen`` records the answers of each ``evaluate`` call.
    """

    join = "space"
    last_stats = None
    device = None  # v(S) as numpy, like an evaluator over a host reward
    backend = "auto"

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def evaluate(self, answers, spans, sample_index, samples, coalition_offsets, coalitions):  # noqa: ANN001, ANN201
        self.seen.append(list(answers))
        values = np.zeros(len(coalitions), dtype=np.float64)  # [K]
        for r, (answer, s) in enumerate(zip(answers, spans)):
            keywords = set(samples[sample_index[r]]["keywords"])
            words = [answer[a:b] for a, b in s.tolist()]
            for k in range(coalition_offsets[r], coalition_offsets[r + 1]):
                lo, hi = coalitions[k]
                values[k] = sum(w in keywords for w in words[lo:hi]) / len(keywords)
        return values


def rows() -> list[dict]:
    return [
        {"prompt": f"request {i}", "query_id": f"q{i}", "candidate_pool": pool, "pool_relevance": rel,
         "answer": [pool[0]], "keywords": kw}
        for i, (pool, rel, kw) in enumerate(zip(POOLS, RELEVANCE, KEYWORDS))
    ]


@pytest.fixture(scope="module")
def tokenizer():
    """A tiny byte-level BPE tokenizer trained here, Llama-like: leading spaces live inside tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>", "<pad>"], show_progress=False)
    backend.train_from_iterator((COMPLETIONS + list(CATALOG.values())) * 3, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


@pytest.fixture(scope="module")
def reward() -> RetrievalReward:
    return RetrievalReward(BM25Retriever(list(CATALOG.values())), list(CATALOG), k=10)


def trl_output(tokenizer, completions=COMPLETIONS, advantages=GROUP_ADVANTAGES) -> dict:  # noqa: ANN001
    """What GRPOTrainer._generate_and_score_completions returns: left-padded prompts, right-padded completions."""
    ids = [tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for c in completions]
    width = max(len(x) for x in ids) + 2  # every row ends in padding
    completion_ids = torch.full((len(ids), width), tokenizer.pad_token_id)  # [B, T]
    completion_mask = torch.zeros((len(ids), width), dtype=torch.long)  # [B, T]
    prompt_ids = torch.full((len(ids), 4), tokenizer.pad_token_id)  # [B, P]
    prompt_mask = torch.zeros((len(ids), 4), dtype=torch.long)
    for b, x in enumerate(ids):
        completion_ids[b, : len(x)], completion_mask[b, : len(x)] = torch.tensor(x), 1
        prompt_ids[b, b % 2 :], prompt_mask[b, b % 2 :] = 5, 1
    return {
        "prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
        "completion_mask": completion_mask, "advantages": torch.tensor(advantages, dtype=torch.float32),
        "num_items_in_batch": completion_mask.sum(),
    }


def token_spans(tokenizer, output: dict) -> tuple[list[str], np.ndarray]:  # noqa: ANN001
    return decode_completions(
        tokenizer, output["completion_ids"].numpy(), output["completion_mask"].bool().numpy(), [tokenizer.eos_token_id]
    )


def overlapping(offsets: np.ndarray, start: int, end: int) -> np.ndarray:
    """bool [T]: tokens sharing a character with [start, end)."""
    return (offsets[:, 0] < end) & (offsets[:, 1] > start) & (offsets[:, 1] > offsets[:, 0])


def row_means(advantages: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    m = mask.double()
    return ((torch.as_tensor(advantages).double() * m).sum(1) / m.sum(1)).numpy()


def trl_step(tokenizer, output: dict, mode: str = "prop", evaluator=None, seed: int = 0):  # noqa: ANN001, ANN201
    return trl_adapter.trl_token_advantages(
        output, rows(), tokenizer, [tokenizer.eos_token_id], evaluator or KeywordEvaluator(), OWEN, mode, seed=seed
    )


# ------------------------------------------------------------------ shared maths


@pytest.mark.parametrize("mode", MODES)
def test_trl_batch_advantages_keep_each_rows_mean(tokenizer, mode):
    output = trl_output(tokenizer)
    adv = trl_step(tokenizer, output, mode).token_advantages
    assert adv.shape == output["completion_ids"].shape and adv.dtype == torch.float32
    np.testing.assert_allclose(row_means(adv, output["completion_mask"]), GROUP_ADVANTAGES, atol=1e-6)
    assert (adv[output["completion_mask"] == 0] == 0).all()


@pytest.mark.parametrize("mode", MODES)
def test_tokens_outside_the_answer_get_the_group_advantage(tokenizer, mode):
    output = trl_output(tokenizer)
    adv = trl_step(tokenizer, output, mode).token_advantages.numpy()
    texts, offsets = token_spans(tokenizer, output)
    for b, text in enumerate(texts):
        answer, start = extract_answer(text)
        outside = output["completion_mask"][b].bool().numpy() & ~overlapping(offsets[b], start, start + len(answer))
        assert outside.any()
        np.testing.assert_array_equal(adv[b, outside], np.float32(GROUP_ADVANTAGES[b]))


def test_keyword_tokens_carry_the_credit(tokenizer):
    output = trl_output(tokenizer)
    adv = trl_step(tokenizer, output).token_advantages.numpy()
    texts, offsets = token_spans(tokenizer, output)
    answer, start = extract_answer(texts[0])
    assert answer == "red wool winter coat"
    word_start = {w: start + answer.index(w) for w in answer.split()}
    for word, at in word_start.items():
        tokens = overlapping(offsets[0], at, at + len(word))
        if word in KEYWORDS[0]:
            assert (adv[0, tokens] > GROUP_ADVANTAGES[0]).all()
        else:  # PROP: min-max puts the least credited answer tokens at 0
            np.testing.assert_array_equal(adv[0, tokens], 0.0)


def test_rows_with_zero_advantage_are_not_attributed(tokenizer):
    output = trl_output(tokenizer, advantages=[1.0, 0.0, 0.0, -1.0])
    evaluator = KeywordEvaluator()
    adv = trl_step(tokenizer, output, evaluator=evaluator).token_advantages
    assert evaluator.seen == [["red wool winter coat", ""]]
    assert (adv[1:3] == 0).all()


def test_real_retrieval_evaluator_keeps_the_mean(tokenizer, reward):
    output = trl_output(tokenizer)
    texts, offsets = token_spans(tokenizer, output)
    mask = output["completion_mask"].bool().numpy()
    adv = step_token_advantages(
        texts, offsets, mask, GROUP_ADVANTAGES, rows(), CoalitionEvaluator(reward), OWEN, seed=3
    ).token_advantages
    means = row_means(torch.from_numpy(adv), output["completion_mask"])
    np.testing.assert_allclose(means, GROUP_ADVANTAGES, atol=1e-12)
    assert not np.allclose(adv[0][mask[0]], GROUP_ADVANTAGES[0])  # the answer's words did not all help alike


def test_advantage_metrics_name_the_spread_and_the_answer_share(tokenizer):
    output = trl_output(tokenizer)
    step = trl_step(tokenizer, output)
    metrics = advantage_metrics(step, output["completion_mask"])
    assert set(metrics) == {"ospo/within_row_adv_std", "ospo/answer_token_adv_std", "ospo/answer_token_share",
                            "ospo/coalitions"}
    mask = output["completion_mask"].bool().numpy()
    assert metrics["ospo/answer_token_share"] == pytest.approx(step.answer_mask[mask].mean())
    assert metrics["ospo/within_row_adv_std"] > 0 and metrics["ospo/coalitions"] == step.n_coalitions > 0
    flat = advantage_metrics(trl_step(tokenizer, trl_output(tokenizer, advantages=[0.0] * 4)), mask)
    assert flat["ospo/within_row_adv_std"] == 0.0 and flat["ospo/coalitions"] == 0.0


def test_step_seed_differs_by_step_and_rank_and_repeats():
    seeds = {step_seed(7, step, rank, 2) for step in range(4) for rank in range(2)}
    assert len(seeds) == 8 and step_seed(7, 2, 1, 2) == step_seed(7, 2, 1, 2)
    assert all(0 <= s < 2**63 for s in seeds)
    with pytest.raises(ValueError, match="rank"):
        step_seed(7, 2, 1)


def test_bad_setups_are_rejected_when_built():
    with pytest.raises(ValueError, match="mode"):
        check_ospo_setup(KeywordEvaluator(), OWEN, "proportional", 0.7)
    with pytest.raises(ValueError, match="alpha"):
        check_ospo_setup(KeywordEvaluator(), OWEN, "hybrid", 1.5)
    with pytest.raises(ValueError, match="join"):
        check_ospo_setup(KeywordEvaluator(), OwenConfig(join="slice"), "prop", 0.7)
    with pytest.raises(TypeError, match="owen_config"):
        check_ospo_setup(KeywordEvaluator(), {"w_max": 8}, "prop", 0.7)
    with pytest.raises(TypeError, match="evaluate"):
        check_ospo_setup(object(), OWEN, "prop", 0.7)


def test_step_advantages_reject_mismatched_rows(tokenizer):
    output = trl_output(tokenizer)
    texts, offsets = token_spans(tokenizer, output)
    mask = output["completion_mask"].bool().numpy()

    def call(*args):  # noqa: ANN002, ANN202
        return step_token_advantages(*args, rows(), KeywordEvaluator(), OWEN, seed=0)

    with pytest.raises(ValueError, match="one row per token_mask row"):
        call(texts[:3], offsets, mask, GROUP_ADVANTAGES)
    with pytest.raises(ValueError, match=r"token_offsets \[B, T, 2\]"):
        call(texts, offsets[:, :-1], mask, GROUP_ADVANTAGES)
    with pytest.raises(ValueError, match="non-finite"):
        call(texts, offsets, mask, [1.0, np.nan, 0.0, 0.0])


# ------------------------------------------------------------------ TRL


def test_trl_reward_reads_the_dataset_columns(reward):
    samples = rows()
    columns = {name: [s[name] for s in samples] for name in samples[0] if name != "prompt"}
    reward_func = trl_adapter.make_trl_reward(reward)
    state = SimpleNamespace(global_step=0)
    got = reward_func(prompts=[s["prompt"] for s in samples], completions=COMPLETIONS, completion_ids=None,
                      trainer_state=state, log_extra=print, log_metric=print, **columns)
    assert reward_func.__name__ == "ospo_ndcg"
    assert isinstance(got, list) and all(isinstance(r, float) for r in got)
    np.testing.assert_array_equal(got, reward(COMPLETIONS, samples))
    assert got[0] == 1.0 and got[3] == 0.0  # the exact target ranks first; an empty answer scores 0
    chat = [[{"role": "assistant", "content": c}] for c in COMPLETIONS]
    assert reward_func(prompts=[""] * 4, completions=chat, completion_ids=None, **columns) == got


def test_trl_reward_names_a_missing_column(reward):
    reward_func = trl_adapter.make_trl_reward(reward)
    with pytest.raises(ValueError, match="pool_relevance"):
        reward_func(prompts=["x"], completions=["red coat"], candidate_pool=[["p0"]])
    with pytest.raises(ValueError, match="'candidate_pool' has 2 values"):
        reward_func(prompts=["x"], completions=["red coat"], candidate_pool=[["p0"], ["p1"]], pool_relevance=[[3]])
    with pytest.raises(TypeError, match="completions"):
        reward_func(prompts=["x"], completions=[42], candidate_pool=[["p0"]], pool_relevance=[[3]])


def test_trl_batch_bad_inputs(tokenizer):
    def call(output, inputs=None):  # noqa: ANN001, ANN202
        return trl_adapter.trl_token_advantages(
            output, rows() if inputs is None else inputs, tokenizer, [tokenizer.eos_token_id], KeywordEvaluator(),
            OWEN, seed=0,
        )

    output = trl_output(tokenizer)
    with pytest.raises(ValueError, match=r"advantages must be \[B\]"):
        call(output | {"advantages": torch.ones(output["completion_ids"].shape)})
    with pytest.raises(ValueError, match="completion_mask"):
        call({k: v for k, v in output.items() if k != "completion_mask"})
    with pytest.raises(ValueError, match="3 inputs"):
        call(output, rows()[:3])
    with pytest.raises(ValueError, match="pool_relevance"):
        call(output, [{k: v for k, v in r.items() if k != "pool_relevance"} for r in rows()])


def test_row_statistics_give_each_completion_its_spread_and_answer_share(tokenizer):
    output = trl_output(tokenizer)
    step = trl_step(tokenizer, output)
    stats = trl_adapter.row_statistics(step, output["completion_mask"])
    assert tuple(stats) == trl_adapter.TABLE_COLUMNS
    mask = output["completion_mask"].bool().numpy()
    adv = step.token_advantages.double().numpy()
    for b in range(len(COMPLETIONS)):
        assert stats["ospo_adv_std"][b] == pytest.approx(adv[b, mask[b]].std())
        assert stats["ospo_answer_share"][b] == pytest.approx(step.answer_mask[b, mask[b]].mean())


def test_trl_settings_that_break_the_row_mean_are_refused():
    with pytest.raises(ValueError, match="top_entropy_quantile = 1.0, got 0.2"):
        trl_adapter.check_trl_settings({"args": SimpleNamespace(top_entropy_quantile=0.2)})
    with pytest.raises(ValueError, match="tool calls"):
        trl_adapter.check_trl_settings({"tools": [print]})
    with pytest.raises(ValueError, match="tool calls"):
        trl_adapter.check_trl_settings({"environment_factory": object})
    trl_adapter.check_trl_settings({"args": None})
    trl_adapter.check_trl_settings({"args": SimpleNamespace(top_entropy_quantile=1.0), "rollout_func": print})


def stand_in_trl(version: str, output: dict) -> types.ModuleType:
    """Test double of the ``trl`` module: a GRPOTrainer with only what OSPOGRPOTrainer touches."""

    class GRPOTrainer:
        # TRL 1.16's parameters, by name and order (OSPOGRPOTrainer binds its arguments to them).
        def __init__(self, model, reward_funcs, args=None, train_dataset=None, eval_dataset=None,  # noqa: ANN001
                     processing_class=None, reward_processing_classes=None, callbacks=None, optimizers=(None, None),
                     quantization_config=None, peft_config=None, tools=None, rollout_func=None,
                     environment_factory=None):
            self.processing_class = processing_class
            self.model = torch.nn.Linear(1, 1)  # .train() / .eval() switch the mode, as in TRL
            self.args = SimpleNamespace(seed=3)
            self.state = SimpleNamespace(global_step=5)
            # One process that pretends to be rank 1 of 2: gather returns its own values.
            self.accelerator = SimpleNamespace(process_index=1, num_processes=2, gather=lambda t: t)
            self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
            self._logs = {"extra": defaultdict(list)}

        def _generate_and_score_completions(self, inputs):  # noqa: ANN001, ANN202
            return dict(output)

    module = types.ModuleType("trl")
    module.__version__ = version
    module.GRPOTrainer = GRPOTrainer
    return module


@pytest.fixture
def fresh_trainer_class():
    trl_adapter.trainer_class.cache_clear()
    yield
    trl_adapter.trainer_class.cache_clear()


def test_trainer_replaces_training_advantages_and_logs_them(tokenizer, monkeypatch, fresh_trainer_class):
    output = trl_output(tokenizer)
    monkeypatch.setitem(sys.modules, "trl", stand_in_trl("1.16.0", output))
    trainer = trl_adapter.OSPOGRPOTrainer(
        "tiny-model", [], processing_class=tokenizer, evaluator=KeywordEvaluator(), owen_config=OWEN, mode="rank"
    )
    train = trainer._generate_and_score_completions(rows())
    want = trl_step(tokenizer, output, "rank", seed=step_seed(3, 5, 1, 2))
    torch.testing.assert_close(train["advantages"], want.token_advantages)
    metrics = advantage_metrics(want, output["completion_mask"])
    assert {name: values[0] for name, values in trainer._metrics["train"].items()} == pytest.approx(metrics)
    assert dict(trainer._logs["extra"]) == pytest.approx(trl_adapter.row_statistics(want, output["completion_mask"]))
    trainer.model.eval()
    assert trainer._generate_and_score_completions(rows())["advantages"].shape == (len(COMPLETIONS),)
    n = len(COMPLETIONS)
    assert all(list(column)[n:] == [None] * n for column in trainer._logs["extra"].values())


def test_trainer_rejects_bad_settings(tokenizer, monkeypatch, fresh_trainer_class):
    output = trl_output(tokenizer)
    monkeypatch.setitem(sys.modules, "trl", stand_in_trl("1.16.0", output))
    with pytest.raises(ValueError, match="mode"):
        trl_adapter.OSPOGRPOTrainer("m", [], processing_class=tokenizer, evaluator=KeywordEvaluator(), mode="bad")
    with pytest.raises(ValueError, match="tool"):
        trl_adapter.OSPOGRPOTrainer("m", [], processing_class=tokenizer, evaluator=KeywordEvaluator(), tools=[print])
    with pytest.raises(ValueError, match="top_entropy_quantile"):  # GRPOConfig passed by position, as TRL allows
        trl_adapter.OSPOGRPOTrainer("m", [], SimpleNamespace(top_entropy_quantile=0.5), processing_class=tokenizer,
                                    evaluator=KeywordEvaluator())
    monkeypatch.setitem(sys.modules, "trl", stand_in_trl("1.16.0", output | {"tool_mask": output["completion_mask"]}))
    trl_adapter.trainer_class.cache_clear()
    trainer = trl_adapter.OSPOGRPOTrainer("m", [], processing_class=tokenizer, evaluator=KeywordEvaluator())
    with pytest.raises(ValueError, match="env_mask"):
        trainer._generate_and_score_completions(rows())


def test_trainer_needs_a_recent_trl(tokenizer, monkeypatch, fresh_trainer_class):
    monkeypatch.setitem(sys.modules, "trl", stand_in_trl("0.25.1", trl_output(tokenizer)))
    with pytest.raises(ImportError, match="found 0.25.1"):
        trl_adapter.OSPOGRPOTrainer  # noqa: B018
    monkeypatch.setitem(sys.modules, "trl", None)
    with pytest.raises(ImportError, match="pip install 'trl>=0.26'"):
        trl_adapter.OSPOGRPOTrainer  # noqa: B018
    with pytest.raises(AttributeError, match="NoSuchTrainer"):
        trl_adapter.NoSuchTrainer  # noqa: B018


# ------------------------------------------------------------------ verl (no verl imported)

VERL_SETTINGS = verl_adapter.OSPOSettings(world_dir="unused", owen=OWEN)


def verl_fields(tokenizer, advantages=GROUP_ADVANTAGES) -> dict:  # noqa: ANN001
    """Padded TransferQueue fields after verl's outcome estimator: one Â per row over its response mask."""
    output = trl_output(tokenizer)
    mask = output["completion_mask"]  # [B, T]
    extra_infos = [{k: v for k, v in r.items() if k != "prompt"} | {"index": i} for i, r in enumerate(rows())]
    return {"responses": output["completion_ids"], "response_mask": mask,
            "advantages": torch.tensor(advantages, dtype=torch.float32)[:, None] * mask, "extra_info": extra_infos}


def verl_step(tokenizer, fields: dict, settings=VERL_SETTINGS, seed: int = 0):  # noqa: ANN001, ANN201
    return verl_adapter.verl_token_advantages(
        fields["responses"], fields["response_mask"], fields["advantages"], fields["extra_info"], tokenizer,
        [tokenizer.eos_token_id], KeywordEvaluator(), settings, seed=seed,
    )


@pytest.mark.parametrize("mode", MODES)
def test_verl_fields_get_per_token_advantages_with_verls_row_means(tokenizer, mode):
    fields = verl_fields(tokenizer)
    step = verl_step(tokenizer, fields, replace(VERL_SETTINGS, mode=mode))
    adv, mask = step.token_advantages, fields["response_mask"]
    assert adv.shape == mask.shape and adv.dtype == torch.float32
    np.testing.assert_allclose(row_means(adv, mask), GROUP_ADVANTAGES, atol=1e-6)
    assert (adv[mask == 0] == 0).all()
    torch.testing.assert_close(adv, trl_step(tokenizer, trl_output(tokenizer), mode).token_advantages)


def test_verl_row_advantages_read_one_value_per_row():
    mask = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 1, 1]])
    adv = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]])
    np.testing.assert_array_equal(verl_adapter.row_advantages(adv, mask), [0.5, 0.0, -1.0])
    with pytest.raises(ValueError, match=r"vary along rows \[2\].*outcome estimator"):
        verl_adapter.row_advantages(adv + torch.tensor([[0.0, 0, 0], [0, 0, 0], [0, 0.5, 0]]), mask)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        verl_adapter.row_advantages(adv[:, :2], mask)


def test_verl_fields_bad_inputs(tokenizer):
    fields = verl_fields(tokenizer)
    with pytest.raises(ValueError, match="4 extra_info rows for 3"):
        verl_step(tokenizer, fields | {name: fields[name][:3] for name in ("responses", "response_mask", "advantages")})
    infos = list(fields["extra_info"])
    infos[2] = {"candidate_pool": ["p0"]}
    with pytest.raises(ValueError, match="extra_info of row 2 has no 'pool_relevance'"):
        verl_step(tokenizer, fields | {"extra_info": infos})
    with pytest.raises(ValueError, match="row 1 must be a dict"):
        verl_step(tokenizer, fields | {"extra_info": [infos[0], None, infos[2], infos[3]]})
    holed = fields["response_mask"].clone()
    holed[1, 2] = 0  # a tool turn masked inside the response
    with pytest.raises(ValueError, match=r"rows \[1\] have masked tokens inside"):
        verl_step(tokenizer, fields | {"response_mask": holed, "advantages": fields["advantages"] * holed})


def test_verl_settings_read_the_ospo_block():
    settings = verl_adapter.OSPOSettings.from_config(
        {"world_dir": "/data/world", "retriever": "bm25", "mode": "hybrid", "owen": {"w_max": 4, "segmenter": "word"}}
    )
    assert settings == verl_adapter.OSPOSettings(
        world_dir="/data/world", retriever="bm25", mode="hybrid", owen=OwenConfig(w_max=4, segmenter="word")
    )
    hash(settings)  # one reward per settings and process (functools.cache)
    with pytest.raises(ValueError, match="needs an 'ospo' block"):
        verl_adapter.OSPOSettings.from_config(None)
    with pytest.raises(ValueError, match=r"ospo\.w_max is not a setting"):
        verl_adapter.OSPOSettings.from_config({"world_dir": "w", "w_max": 4})
    with pytest.raises(ValueError, match=r"ospo\.owen\.width is not an OwenConfig field"):
        verl_adapter.OSPOSettings.from_config({"world_dir": "w", "owen": {"width": 4}})
    for bad, match in (({"world_dir": ""}, "world_dir"), ({"world_dir": "w", "k": 0}, "ospo.k"),
                       ({"world_dir": "w", "mode": "top"}, "ospo.mode"), ({"world_dir": "w", "alpha": 2}, "alpha"),
                       ({"world_dir": "w", "clip": -1}, "clip"), ({"world_dir": "w", "gain": "ndcg"}, "ospo.gain")):
        with pytest.raises(ValueError, match=match):
            verl_adapter.OSPOSettings.from_config(bad)


def test_verl_support_names_versions_modes_and_estimators():
    for version in ("0.9.0", "0.9.1", "0.10.0.dev"):
        verl_adapter.check_verl_version(version)
    for version in ("0.8.0", "0.7.1", "0.11.0", "1.0.0"):
        with pytest.raises(RuntimeError, match=f"supports verl 0.9.x, 0.10.x.*found verl {version}"):
            verl_adapter.check_verl_version(version)
    verl_adapter.check_trainer_mode(True, "ospo_sync")
    with pytest.raises(ValueError, match="trainer.use_v1 is False"):
        verl_adapter.check_trainer_mode(False, "ospo_sync")
    for mode in ("sync", "colocate_async", "separate_async"):
        with pytest.raises(ValueError, match=f"trainer_mode is '{mode}'.*trainer_mode=ospo_sync"):
            verl_adapter.check_trainer_mode(True, mode)
    for estimator in verl_adapter.OUTCOME_ESTIMATORS:
        verl_adapter.check_estimator(estimator)
    with pytest.raises(ValueError, match="'gae'.*outcome estimator"):
        verl_adapter.check_estimator("gae")


def test_verl_dataset_rows_carry_the_pools_in_extra_info():
    world_rows = [r | {"query_id": f"q{i}"} for i, r in enumerate(rows())]
    got = verl_adapter.verl_dataset_rows(world_rows, "train")
    assert [r["data_source"] for r in got] == [verl_adapter.DATA_SOURCE] * 4
    assert got[1]["prompt"] == [{"role": "user", "content": "request 1"}]
    assert got[1]["reward_model"] == {"style": "rule", "ground_truth": [POOLS[1][0]]}
    assert got[1]["extra_info"] == {"split": "train", "index": 1, "query_id": "q1", "candidate_pool": POOLS[1],
                                    "pool_relevance": RELEVANCE[1]}
    assert verl_adapter.sample_of(got[1]["extra_info"])["candidate_pool"] == POOLS[1]
    with pytest.raises(ValueError, match=r"rows\[0\] has no 'answer'"):
        verl_adapter.verl_dataset_rows([{"prompt": "x", "query_id": "q"}], "train")
