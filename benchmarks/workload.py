"""The RL step every benchmark runs on: a generated world and one step's responses.

Responses: the gold or the imperfect query of a world train row plus shopper add-ons,
G samples per prompt, with repeats inside a group as sampling at temperature 1 gives,
and long enough that the ``word`` segmenter reaches M coalitions. Token offsets come
from a subword-like split of each answer (a stand-in for the policy's tokens). The
world is generated once per config and cached.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ospo_fast.data import World, WorldConfig, generate_world, load_world, save_world
from ospo_fast.ops.coalitions import contiguous_coalitions

ADD_ONS = (
    "for a small apartment", "easy to clean", "under $200", "with free shipping", "highly rated",
    "pet friendly", "for everyday use", "durable and sturdy", "that matches a grey sofa", "good value",
    "modern look", "quick delivery", "best seller", "for my new home", "no assembly needed",
    "in a neutral colour", "that lasts for years", "kid friendly", "space saving design", "gift for my sister",
)
# Subword-like pieces with their leading space, as a BPE policy tokenizer cuts an answer.
TOKEN_PIECE = re.compile(r"\s?[^\W\d_]{1,4}|\s?\d+|\s?[^\w\s]")
SEGMENTER = "word"


def cached_world(n_products: int, n_prompts: int, seed: int, cache_dir: Path) -> World:
    """The world of this config, generated once; keyed by the config and the generator's source."""
    from ospo_fast.data import vocabulary
    from ospo_fast.data import world as world_module

    config = WorldConfig(n_products=n_products, n_train=max(64, n_prompts), n_test=0, seed=seed)
    digest = hashlib.sha256(repr(config).encode())
    for module in (world_module, vocabulary):
        digest.update(Path(module.__file__).read_bytes())
    directory = cache_dir / "worlds" / f"products{n_products}-{digest.hexdigest()[:16]}"
    try:
        return load_world(directory)
    except FileNotFoundError:
        world = generate_world(config)
        save_world(world, directory)
        return world


def min_segments(max_coalitions: int, w_max: int) -> int:
    """Fewest segments whose candidate set (∅, windows <= w_max, full) holds ``max_coalitions``."""
    n = 1
    while len(contiguous_coalitions(n, w_max)) < max_coalitions:
        n += 1
    return n


def group_answers(row: dict[str, Any], group_size: int, repeat_rate: float, min_words: int, seed: int) -> list[str]:
    """G answers to one prompt: its gold or imperfect query plus add-ons, some repeated."""
    rng = np.random.default_rng(seed)
    group: list[str] = []
    for _ in range(group_size):
        if group and rng.random() < repeat_rate:
            group.append(group[int(rng.integers(len(group)))])
            continue
        words = str(row["gold_query"] if rng.random() < 0.5 else row["imperfect_query"]).split()
        extras = [ADD_ONS[i] for i in rng.permutation(len(ADD_ONS))]
        while extras and (len(words) < min_words or rng.random() < 0.3):
            words += extras.pop().split()
        group.append(" ".join(words))
    return group


def token_spans(answer: str) -> np.ndarray:
    """int64 ``[T, 2]`` char spans of the answer's subword-like tokens."""
    return np.array([m.span() for m in TOKEN_PIECE.finditer(answer)], dtype=np.int64).reshape(-1, 2)


@dataclass(frozen=True)
class Step:
    """One RL step's responses.

    answers       [B] answer texts, G consecutive per prompt
    samples       [B] the world row each answer is judged on
    token_offsets [B, T, 2] int64 answer char span of each token, 0 beyond the answer's tokens
    token_mask    [B, T] bool real tokens
    """

    answers: list[str]
    samples: list[dict[str, Any]]
    token_offsets: np.ndarray
    token_mask: np.ndarray


def make_step(rows: list[dict[str, Any]], n_responses: int, group_size: int, repeat_rate: float, min_words: int,
              seed: int) -> Step:
    """Prompt p always gets the same answers, so a smaller step is a prefix of a larger one."""
    prompts = rows[: n_responses // group_size]
    if len(prompts) * group_size != n_responses:
        raise ValueError(f"the world has {len(rows)} prompts, too few for {n_responses} responses")
    answers = [a for p, row in enumerate(prompts) for a in group_answers(row, group_size, repeat_rate, min_words,
                                                                          seed * 100_003 + p)]
    spans = [token_spans(a) for a in answers]
    width = max(len(s) for s in spans)
    token_offsets = np.zeros((len(answers), width, 2), dtype=np.int64)  # [B, T, 2]
    token_mask = np.zeros((len(answers), width), dtype=bool)  # [B, T]
    for b, s in enumerate(spans):
        token_offsets[b, : len(s)] = s
        token_mask[b, : len(s)] = True
    return Step(answers, [row for row in prompts for _ in range(group_size)], token_offsets, token_mask)
