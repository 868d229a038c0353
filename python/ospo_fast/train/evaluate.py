"""Held-out evaluation: greedy and sampled completions, scored by every retriever.

Scoring each completion with the training retriever and with retrievers the policy never
saw (another dense encoder, and BM25) is the paper's retriever-shift test: a policy that
learnt to write good queries should not lose them when the retriever changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ospo_fast.reward.answer import extract_answer
from ospo_fast.types import AnswerFormat
from ospo_fast.train.rollout import Decoding, generate_passes

EVAL_METRICS = ("ndcg@pool", "ndcg@10", "ndcg@100", "recall@10", "recall@100", "mrr@pool", "mrr@100")
_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_ANSWER_TAG = re.compile(r"<answer>.*?</answer>", re.DOTALL | re.IGNORECASE)


def word_count(text: str) -> int:
    return len(text.split())


def text_statistics(completions: Sequence[str]) -> dict[str, np.ndarray]:
    """Per completion: answer words, reasoning words and whether a closed ``<answer>`` tag is present."""
    answers = [extract_answer(c)[0] for c in completions]
    reasoning = [m.group(1) if (m := _THINK.search(c)) else "" for c in completions]
    return {
        "answer_words": np.array([word_count(a) for a in answers], dtype=np.float64),
        "reasoning_words": np.array([word_count(r) for r in reasoning], dtype=np.float64),
        "format_rate": np.array([bool(_ANSWER_TAG.search(c)) for c in completions], dtype=np.float64),
    }


def score_completions(
    completions: Sequence[str], samples: Sequence[Mapping[str, Any]], rewards: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """``<retriever>/<metric>`` per completion for each reward, plus its zero-reward rate."""
    out: dict[str, np.ndarray] = {}
    for name, reward in rewards.items():
        metrics = reward.metrics(list(completions), list(samples))
        for metric in EVAL_METRICS:
            out[f"{name}/{metric}"] = np.asarray(metrics[metric], dtype=np.float64)
        out[f"{name}/zero_reward_rate"] = (np.asarray(metrics["ndcg@pool"]) == 0).astype(np.float64)
    return out


def per_query_records(
    rows: Sequence[Mapping[str, Any]], texts: Mapping[str, Sequence[str]], answer_format: AnswerFormat = "lenient"
) -> list[dict[str, Any]]:
    """What each held-out query was and what the policy wrote for it.

    Per row: ``query_id``, ``context`` (the shopper's message), ``gold_query``, and for
    each decoding ``<mode>_completions`` and ``<mode>_answers`` (the queries the reward
    scored, in ``answer_format``). ``texts``: per decoding, its completions query-major
    (``[Q * n]``, n per query).
    """
    n_rows = len(rows)
    per_row = {}
    for mode, completions in texts.items():
        if n_rows == 0 or len(completions) % n_rows:
            raise ValueError(f"texts[{mode!r}]: {len(completions)} completions do not split into {n_rows} queries")
        per_row[mode] = len(completions) // n_rows
    records = []
    for i, row in enumerate(rows):
        record: dict[str, Any] = {
            "query_id": str(row["query_id"]), "context": str(row.get("question", "")),
            "gold_query": str(row.get("gold_query", "")),
        }
        for mode, n in per_row.items():
            completions = list(texts[mode][i * n : (i + 1) * n])
            record[f"{mode}_completions"] = completions
            record[f"{mode}_answers"] = [extract_answer(c, answer_format)[0] for c in completions]
        records.append(record)
    return records


def evaluate_policy(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    rewards: Mapping[str, Any],
    *,
    n_samples: int,
    temperature: float,
    max_new_tokens: int,
    max_prompt_tokens: int,
    batch_size: int,
    seed: int,
    on_prompts_done: Callable[[int], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Per-completion metrics ``greedy/…`` and ``sampled/…``, and the completions themselves.

    The sampled pass runs inside a forked RNG seeded by ``seed``: evaluation neither
    depends on nor disturbs the training random stream (so resumed runs match).
    ``on_prompts_done(n)`` is called as each chunk of ``n`` prompts is decoded (a progress bar).
    """
    values: dict[str, np.ndarray] = {}
    texts: dict[str, list[str]] = {}
    passes = {"greedy": Decoding(1, do_sample=False)}
    if n_samples > 0:
        passes["sampled"] = Decoding(n_samples, do_sample=True, temperature=temperature)
    # The chunks generate_passes would cut itself, one call each so progress shows between
    # them: the sampled pass draws in the same order, and the left padding (now per chunk)
    # is masked; the default run's 100 held-out completions came out identical both ways.
    prompts_per_call = max(1, batch_size // max(d.n_per_prompt for d in passes.values()))
    decoded: dict[str, list[str]] = {mode: [] for mode in passes}
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for first in range(0, len(prompts), prompts_per_call):
            chunk = list(prompts[first : first + prompts_per_call])
            rollouts = generate_passes(
                model, tokenizer, chunk, list(passes.values()),
                max_new_tokens=max_new_tokens, max_prompt_tokens=max_prompt_tokens, batch_size=batch_size,
            )
            for mode, rollout in zip(passes, rollouts, strict=True):
                decoded[mode].extend(rollout.texts)
            if on_prompts_done is not None:
                on_prompts_done(len(chunk))
    for mode, completions in decoded.items():
        samples = [r for r in rows for _ in range(passes[mode].n_per_prompt)]
        metrics = score_completions(completions, samples, rewards) | text_statistics(completions)
        values |= {f"{mode}/{k}": v for k, v in metrics.items()}
        texts[mode] = completions
    return values, texts
