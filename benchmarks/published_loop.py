"""The baseline: one RL step's attribution shaped like the published implementation.

Per response: the reward and every coalition value is one SentenceTransformer call on a
batch of one, a faiss ``IndexFlatIP`` top-1000 search, the pool filter and NDCG in
Python; then Owen values (a dict of coalitions scanned per segment), the token map,
min-max and PROP weights in Python loops. It scores the coalitions ospo_fast scores
(the rows with Â ≠ 0, the same plan), so the two can be compared value for value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from workload import Step

from ospo_fast.attribution.segment import Segmenter
from ospo_fast.ops.coalitions import coalition_plan

STAGES = ("segment", "plan", "reward", "grpo", "build", "dedupe", "pack", "encode", "search", "ndcg", "owen", "advantages")


def python_ndcg(ranked_ids: Sequence[int], catalog_ids: Sequence[str], gains: dict[str, float], ideal: float) -> float:
    """Spec §2 over a faiss top-k list: keep the pool's items in ranked order, DCG / IDCG."""
    kept = [gains[catalog_ids[i]] for i in ranked_ids if i >= 0 and catalog_ids[i] in gains]
    dcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(kept))
    return dcg / ideal if ideal > 0 else 0.0


def python_owen(n: int, windows: list[list[int]], values: list[float]) -> list[float]:
    """Spec §5 as the reference writes it: a dict of coalitions, scanned for each segment."""
    value_of = {frozenset(range(a, e)): v for (a, e), v in zip(windows, values)}
    phi = [0.0] * n
    for i in range(n):
        for coalition, value in value_of.items():
            if i in coalition:
                continue
            grown = coalition | {i}
            if grown in value_of:
                phi[i] += (value_of[grown] - value) / (n * math.comb(n - 1, len(coalition)))
    return phi


def python_prop_advantages(
    n: int, spans: list[list[int]], phi: list[float], tokens: list[list[int]], advantage: float
) -> list[float]:
    """Spec §6 PROP per token: character-overlap credit, min-max, weights, T · p_t · Â.

    PBRS's reward factor cancels in PROP's weights; like ospo_fast (spec §10), a zero
    reward keeps uniform weights, and <= 1 segment gives every token 1/T.
    """
    credit = []
    for token_start, token_end in tokens:
        shares = [max(0, min(e, token_end) - max(s, token_start)) / (token_end - token_start) for s, e in spans]
        total = sum(shares)
        credit.append(sum(share / total * p for share, p in zip(shares, phi)) if total > 0 and n > 1 else 0.0)
    low, high = min(credit), max(credit)
    scaled = [0.5] * len(credit) if high == low else [(c - low) / (high - low) for c in credit]
    total = sum(scaled)
    return [len(scaled) * s / total * advantage for s in scaled]


@dataclass(frozen=True)
class LoopResult:
    """The loop on the first responses of a step.

    values          [K_timed] coalition values in plan order
    rows            the timed responses it attributed (Â ≠ 0), ascending
    advantages      per attributed response, the token advantages of its real tokens
    stage_s         seconds per stage, summed over the timed responses
    response_s      [n] seconds spent on each attributed response
    n_coalitions    [n] coalitions of each attributed response
    """

    values: np.ndarray
    rows: list[int]
    advantages: list[list[float]]
    stage_s: dict[str, float]
    response_s: np.ndarray
    n_coalitions: np.ndarray


@dataclass(frozen=True)
class LoopModel:
    """What the loop needs: the torch model (batch of one), the faiss index, the catalog ids."""

    model: Any
    index: Any
    catalog_ids: list[str]
    k: int

    def value(self, text: str, gains: dict[str, float], ideal: float, seconds: dict[str, float]) -> float:
        """One retrieval NDCG@pool: encode, search, filter, score."""
        if not text.strip():
            return 0.0
        start = time.perf_counter()
        embedding = self.model.encode([text], convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        encoded = time.perf_counter()
        _, ids = self.index.search(embedding.astype(np.float32), self.k)
        searched = time.perf_counter()
        value = python_ndcg(ids[0].tolist(), self.catalog_ids, gains, ideal)
        seconds["encode"] += encoded - start
        seconds["search"] += searched - encoded
        seconds["ndcg"] += time.perf_counter() - searched
        return value


def binary_gains(sample: dict[str, Any], k: int) -> tuple[dict[str, float], float]:
    gains = {pid: float(label == 3) for pid, label in zip(sample["candidate_pool"], sample["pool_relevance"])}
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(gains.values(), reverse=True)[:k]))
    return gains, ideal


def loop_step(loop: LoopModel, segmenter: Segmenter, step: Step, w_max: int, max_coalitions: int, group_size: int,
              n_responses: int, seed: int) -> LoopResult:
    """The published shape on the first ``n_responses`` responses (whole groups), timed per stage.

    Rewards and Â come first; then the rows with Â ≠ 0 are segmented and planned
    together (``coalition_plan`` streams by their order), as ospo_fast's step does.
    """
    seconds = dict.fromkeys(STAGES, 0.0)
    response_s = np.zeros(n_responses)
    advantages_of: list[float] = []
    for first in range(0, n_responses, group_size):
        rewards = []
        for b in range(first, first + group_size):
            tick = time.perf_counter()
            gains, ideal = binary_gains(step.samples[b], loop.k)
            # The reward's encode, search and NDCG count once, as the reward stage.
            rewards.append(loop.value(step.answers[b], gains, ideal, dict.fromkeys(STAGES, 0.0)))
            seconds["reward"] += time.perf_counter() - tick
            response_s[b] += time.perf_counter() - tick
        tick = time.perf_counter()
        mean = sum(rewards) / len(rewards)
        std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1))  # unbiased, as torch.std
        advantages_of += [(r - mean) / (std + 1e-4) for r in rewards]
        seconds["grpo"] += time.perf_counter() - tick
    active = [b for b in range(n_responses) if advantages_of[b] != 0]
    start = time.perf_counter()
    spans = [[list(s) for s in segmenter(step.answers[b])] for b in active]
    seconds["segment"] = time.perf_counter() - start
    start = time.perf_counter()
    offsets, windows = coalition_plan(np.array([len(s) for s in spans]), w_max, max_coalitions, seed=seed)
    seconds["plan"] = time.perf_counter() - start
    response_s[active] += (seconds["segment"] + seconds["plan"]) / max(len(active), 1)
    values: list[float] = []
    advantages: list[list[float]] = []
    for i, b in enumerate(active):
        tick = time.perf_counter()
        gains, ideal = binary_gains(step.samples[b], loop.k)
        segments = [step.answers[b][s:e] for s, e in spans[i]]
        rows = windows[offsets[i] : offsets[i + 1]].tolist()
        response_values = []
        for a, e in rows:
            built = time.perf_counter()
            text = " ".join(segments[a:e])
            seconds["build"] += time.perf_counter() - built
            response_values.append(loop.value(text, gains, ideal, seconds))
        owen_start = time.perf_counter()
        phi = python_owen(len(segments), rows, response_values)
        owen_end = time.perf_counter()
        tokens = step.token_offsets[b][step.token_mask[b]].tolist()
        advantages.append(python_prop_advantages(len(segments), spans[i], phi, tokens, advantages_of[b]))
        seconds["owen"] += owen_end - owen_start
        seconds["advantages"] += time.perf_counter() - owen_end
        values += response_values
        response_s[b] += time.perf_counter() - tick
    return LoopResult(np.array(values), active, advantages, seconds, response_s[active], np.diff(offsets))
