"""TRL and verl adapters: per-token OSPO advantages on trainer-shaped batches.

Neither TRL nor verl is installed here. The adapters' maths runs on batches shaped as
TRL's ``_generate_and_score_completions`` output and verl's DataProto fields; the
trainer class and the registry call run against small stand-ins of TRL's
``GRPOTrainer`` and verl's ``register_adv_est`` (named as test doubles below).
"""

from __future__ import annotations

import sys
import types
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ospo_fast.attribution import OwenConfig, decode_completions, step_seed, step_token_advantages
from ospo_fast.attribution.coalition_values import CoalitionEvaluator
from ospo_fast.integrations import check_ospo_setup
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
    return ((advantages.double() * m).sum(1) / m.sum(1)).numpy()


# ------------------------------------------------------------------ shared maths


@pytest.mark.parametrize("mode", MODES)
def test_trl_batch_advantages_keep_each_rows_mean(tokenizer, mode):
    output = trl_output(tokenizer)
    adv = trl_adapter.trl_token_advantages(
        output, rows(), tokenizer, [tokenizer.eos_token_id], KeywordEvaluator(), OWEN, mode, seed=0
    )
    assert adv.shape == output["completion_ids"].shape and adv.dtype == torch.float32
    np.testing.assert_allclose(row_means(adv, output["completion_mask"]), GROUP_ADVANTAGES, atol=1e-6)
    assert (adv[output["completion_mask"] == 0] == 0).all()


@pytest.mark.parametrize("mode", MODES)
def test_tokens_outside_the_answer_get_the_group_advantage(tokenizer, mode):
    output = trl_output(tokenizer)
    adv = trl_adapter.trl_token_advantages(
        output, rows(), tokenizer, [tokenizer.eos_token_id], KeywordEvaluator(), OWEN, mode, seed=0
    ).numpy()
    texts, offsets = token_spans(tokenizer, output)
    for b, text in enumerate(texts):
        answer, start = extract_answer(text)
        outside = output["completion_mask"][b].bool().numpy() & ~overlapping(offsets[b], start, start + len(answer))
        assert outside.any()
        np.testing.assert_array_equal(adv[b, outside], np.float32(GROUP_ADVANTAGES[b]))


def test_keyword_tokens_carry_the_credit(tokenizer):
    output = trl_output(tokenizer)
    adv = trl_adapter.trl_token_advantages(
        output, rows(), tokenizer, [tokenizer.eos_token_id], KeywordEvaluator(), OWEN, "prop", seed=0
    ).numpy()
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
    adv = trl_adapter.trl_token_advantages(output, rows(), tokenizer, [tokenizer.eos_token_id], evaluator, OWEN, seed=0)
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


def stand_in_trl(version: str, output: dict) -> types.ModuleType:
    """Test double of the ``trl`` module: a GRPOTrainer with only what OSPOGRPOTrainer touches."""

    class GRPOTrainer:
        def __init__(self, model=None, reward_funcs=None, *, processing_class=None, **kwargs):  # noqa: ANN001
            self.processing_class = processing_class
            self.model = torch.nn.Linear(1, 1)  # .train() / .eval() switch the mode, as in TRL
            self.args = SimpleNamespace(seed=3)
            self.state = SimpleNamespace(global_step=5)
            self.accelerator = SimpleNamespace(process_index=1, num_processes=2)

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


def test_trainer_replaces_training_advantages_only(tokenizer, monkeypatch, fresh_trainer_class):
    output = trl_output(tokenizer)
    monkeypatch.setitem(sys.modules, "trl", stand_in_trl("1.16.0", output))
    trainer = trl_adapter.OSPOGRPOTrainer(
        "tiny-model", [], processing_class=tokenizer, evaluator=KeywordEvaluator(), owen_config=OWEN, mode="rank"
    )
    train = trainer._generate_and_score_completions(rows())
    want = trl_adapter.trl_token_advantages(
        output, rows(), tokenizer, [tokenizer.eos_token_id], KeywordEvaluator(), OWEN, "rank",
        seed=step_seed(3, 5, 1, 2),
    )
    torch.testing.assert_close(train["advantages"], want)
    trainer.model.eval()
    assert trainer._generate_and_score_completions(rows())["advantages"].shape == (len(COMPLETIONS),)


def test_trainer_rejects_bad_settings(tokenizer, monkeypatch, fresh_trainer_class):
    monkeypatch.setitem(sys.modules, "trl", stand_in_trl("1.16.0", trl_output(tokenizer)))
    with pytest.raises(ValueError, match="mode"):
        trl_adapter.OSPOGRPOTrainer("m", [], processing_class=tokenizer, evaluator=KeywordEvaluator(), mode="bad")
    with pytest.raises(ValueError, match="tool"):
        trl_adapter.OSPOGRPOTrainer("m", [], processing_class=tokenizer, evaluator=KeywordEvaluator(), tools=[print])


def test_trainer_needs_a_recent_trl(tokenizer, monkeypatch, fresh_trainer_class):
    monkeypatch.setitem(sys.modules, "trl", stand_in_trl("0.25.1", trl_output(tokenizer)))
    with pytest.raises(ImportError, match="found 0.25.1"):
        trl_adapter.OSPOGRPOTrainer  # noqa: B018
    monkeypatch.setitem(sys.modules, "trl", None)
    with pytest.raises(ImportError, match="pip install 'trl>=0.26'"):
        trl_adapter.OSPOGRPOTrainer  # noqa: B018
    with pytest.raises(AttributeError, match="NoSuchTrainer"):
        trl_adapter.NoSuchTrainer  # noqa: B018


# ------------------------------------------------------------------ verl


def verl_grpo_scores(scores: np.ndarray, index: np.ndarray, epsilon: float, norm: bool) -> np.ndarray:
    """verl's compute_grpo_outcome_advantage, as its loop reads (torch mean and unbiased std)."""
    by_uid = defaultdict(list)
    for s, uid in zip(scores, index):
        by_uid[uid].append(torch.tensor(s, dtype=torch.float64))
    one = torch.tensor(1.0, dtype=torch.float64)
    stats = {uid: (0.0 * one, one) if len(v) == 1 else (torch.stack(v).mean(), torch.stack(v).std())
             for uid, v in by_uid.items()}
    out = [(s - stats[u][0]) / (stats[u][1] + epsilon) if norm else s - stats[u][0] for s, u in zip(scores, index)]
    return np.array([float(x) for x in out])


@pytest.mark.parametrize("norm", [True, False])
def test_uid_groups_match_verl_grpo(norm):
    rng = np.random.default_rng(0)
    index = np.array(["b", "a", "b", "c", "a", "b", "a"], dtype=object)  # interleaved, sizes 3/3/1
    scores = rng.random(len(index))
    got = verl_adapter.uid_group_advantages(scores, index, epsilon=1e-6, norm_by_std=norm)
    np.testing.assert_allclose(got, verl_grpo_scores(scores, index, 1e-6, norm), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="index"):
        verl_adapter.uid_group_advantages(scores, index[:3])


def verl_data(tokenizer, rewards=(0.9, 0.2, 0.5, 0.0), uids=("u0", "u1", "u0", "u1")):  # noqa: ANN001, ANN201
    """``(batch, non_tensor_batch, adv_kwargs)`` as verl's DataProto and compute_advantage hold them."""
    output = trl_output(tokenizer)
    prompts, responses = output["prompt_ids"], output["completion_ids"]
    response_mask = output["completion_mask"]  # [B, T]
    token_level_rewards = torch.zeros(response_mask.shape)  # [B, T] score on the last response token
    token_level_rewards[torch.arange(len(rewards)), response_mask.sum(1) - 1] = torch.tensor(rewards)
    batch = {"prompts": prompts, "responses": responses,
             "attention_mask": torch.cat([output["prompt_mask"], response_mask], dim=1)}
    infos = np.array([{k: v for k, v in r.items() if k != "prompt"} for r in rows()], dtype=object)
    non_tensor_batch = {"uid": np.array(uids, dtype=object), "extra_info": infos}
    adv_kwargs = {"token_level_rewards": token_level_rewards, "response_mask": response_mask, "config": None,
                  "index": non_tensor_batch["uid"], "non_tensor_batch": non_tensor_batch, "batch": batch}
    return batch, non_tensor_batch, adv_kwargs


@pytest.mark.parametrize("mode", MODES)
def test_verl_estimator_spreads_grpo_advantages_over_tokens(tokenizer, mode):
    batch, non_tensor_batch, adv_kwargs = verl_data(tokenizer)
    estimator = verl_adapter.OSPOAdvantageEstimator(KeywordEvaluator(), OWEN, mode, tokenizer=tokenizer, seed=4)
    advantages, returns = estimator(**adv_kwargs)
    mask = adv_kwargs["response_mask"]
    assert advantages.shape == mask.shape and advantages.dtype == torch.float32 and returns is advantages
    assert (advantages[mask == 0] == 0).all()
    scores = adv_kwargs["token_level_rewards"].sum(-1).double().numpy()
    group_adv = verl_grpo_scores(scores, non_tensor_batch["uid"], 1e-6, True)
    np.testing.assert_allclose(row_means(advantages, mask), group_adv, atol=1e-5)
    texts, offsets = token_spans(tokenizer, trl_output(tokenizer))
    answer, start = extract_answer(texts[0])
    outside = mask[0].bool().numpy() & ~overlapping(offsets[0], start, start + len(answer))
    np.testing.assert_array_equal(advantages[0].numpy()[outside], np.float32(group_adv[0]))


def test_verl_estimator_equals_the_pure_function_and_reads_config(tokenizer):
    batch, non_tensor_batch, adv_kwargs = verl_data(tokenizer)
    estimator = verl_adapter.OSPOAdvantageEstimator(KeywordEvaluator(), OWEN, tokenizer=tokenizer, seed=4)
    got, _ = estimator(**(adv_kwargs | {"config": {"norm_adv_by_std_in_grpo": False}}))
    texts, offsets = token_spans(tokenizer, trl_output(tokenizer))
    want, _ = verl_adapter.compute_ospo_token_advantages(
        adv_kwargs["token_level_rewards"], adv_kwargs["response_mask"], non_tensor_batch["uid"],
        texts=texts, token_offsets=offsets, samples=list(non_tensor_batch["extra_info"]),
        evaluator=KeywordEvaluator(), owen_config=OWEN, seed=step_seed(4, 0), norm_adv_by_std_in_grpo=False,
    )
    torch.testing.assert_close(got, want)
    assert estimator.calls == 1


def test_verl_estimator_bad_inputs(tokenizer):
    _, non_tensor_batch, adv_kwargs = verl_data(tokenizer)
    estimator = verl_adapter.OSPOAdvantageEstimator(KeywordEvaluator(), OWEN, tokenizer=tokenizer)
    stock_call = {k: adv_kwargs[k] for k in ("token_level_rewards", "response_mask", "config", "index")}
    with pytest.raises(ValueError, match="'gdpo' only"):
        estimator(**stock_call)
    with pytest.raises(ValueError, match="needs index"):
        estimator(**(adv_kwargs | {"index": None}))
    with pytest.raises(ValueError, match="'responses'"):
        estimator(**(adv_kwargs | {"batch": {k: v for k, v in adv_kwargs["batch"].items() if k != "responses"}}))
    with pytest.raises(ValueError, match="'extra_info'"):
        estimator(**(adv_kwargs | {"non_tensor_batch": {"uid": non_tensor_batch["uid"]}}))
    infos = non_tensor_batch["extra_info"].copy()
    infos[2] = {"candidate_pool": ["p0"]}
    with pytest.raises(ValueError, match="row 2 has no 'pool_relevance'"):
        estimator(**(adv_kwargs | {"non_tensor_batch": non_tensor_batch | {"extra_info": infos}}))
    holed = adv_kwargs["response_mask"].clone()
    holed[1, 2] = 0  # a tool turn masked inside the response
    with pytest.raises(ValueError, match=r"rows \[1\] have masked tokens inside"):
        estimator(**(adv_kwargs | {"response_mask": holed}))
    with pytest.raises(ValueError, match=r"must all be \[B, T\]"):
        estimator(**(adv_kwargs | {"response_mask": adv_kwargs["response_mask"][:, :-1]}))
    with pytest.raises(ValueError, match="mode"):
        verl_adapter.OSPOAdvantageEstimator(KeywordEvaluator(), OWEN, "top", tokenizer=tokenizer)


def test_verl_compute_score_reads_extra_info(reward):
    compute_score = verl_adapter.make_compute_score(reward)
    samples = rows()
    got = [compute_score("ospo-world", c, s["answer"], {k: v for k, v in s.items() if k != "answer"})
           for c, s in zip(COMPLETIONS, samples)]
    assert all(isinstance(r, float) for r in got)
    np.testing.assert_array_equal(got, reward(COMPLETIONS, samples))
    with pytest.raises(ValueError, match="has no 'candidate_pool'"):
        compute_score("ospo-world", "red coat", ["p0"], {"pool_relevance": [3]})
    with pytest.raises(ValueError, match="must be a dict"):
        compute_score("ospo-world", "red coat", ["p0"], None)


def stand_in_verl(monkeypatch) -> dict:  # noqa: ANN001
    """Test double of verl's core_algos registry (``register_adv_est`` refuses a second function under a name)."""
    registry: dict = {}

    def register_adv_est(name):  # noqa: ANN001, ANN202
        def decorator(fn):  # noqa: ANN001, ANN202
            if name in registry and registry[name] is not fn:
                raise ValueError(f"Adv estimator {name} has already been registered")
            registry[name] = fn
            return fn

        return decorator

    core_algos = types.ModuleType("verl.trainer.ppo.core_algos")
    core_algos.register_adv_est = register_adv_est
    packages = {name: types.ModuleType(name) for name in ("verl", "verl.trainer", "verl.trainer.ppo")}
    packages["verl.trainer.ppo"].core_algos = core_algos
    for name, module in (packages | {"verl.trainer.ppo.core_algos": core_algos}).items():
        monkeypatch.setitem(sys.modules, name, module)
    return registry


def test_register_puts_the_estimator_in_verls_registry(tokenizer, monkeypatch):
    registry = stand_in_verl(monkeypatch)
    estimator = verl_adapter.OSPOAdvantageEstimator(KeywordEvaluator(), OWEN, tokenizer=tokenizer)
    assert verl_adapter.register_ospo_estimator(estimator) is estimator
    assert registry == {"ospo": estimator}
    with pytest.raises(TypeError, match="OSPOAdvantageEstimator"):
        verl_adapter.register_ospo_estimator(print)


def test_register_without_verl_says_how_to_get_it(tokenizer, monkeypatch):
    monkeypatch.setitem(sys.modules, "verl", None)
    estimator = verl_adapter.OSPOAdvantageEstimator(KeywordEvaluator(), OWEN, tokenizer=tokenizer)
    with pytest.raises(ImportError, match="pip install verl"):
        verl_adapter.register_ospo_estimator(estimator)
