"""World queries as rows of verl's RL dataset (``verl/utils/dataset/rl_dataset.py``).

verl reads a parquet file whose rows hold ``data_source``, ``prompt`` (chat messages,
templated by verl with the policy's chat template), ``reward_model.ground_truth`` and
``extra_info``. The agent loop stores each row's columns beside its responses in
TransferQueue, so ``extra_info`` reaches both the reward (``compute_score``) and the
OSPO trainer: it carries the sample's pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

DATA_SOURCE = "ospo-world"


def verl_dataset_rows(rows: Sequence[Mapping[str, Any]], split: str) -> list[dict[str, Any]]:
    """One verl dataset row per world query (``World.rows(split)``)."""
    out = []
    for index, row in enumerate(rows):
        missing = [k for k in ("prompt", "query_id", "answer", "candidate_pool", "pool_relevance") if k not in row]
        if missing:
            raise ValueError(f"rows[{index}] has no {missing[0]!r}: pass World.rows(split) of an ospo_fast world")
        out.append({
            "data_source": DATA_SOURCE,
            "prompt": [{"role": "user", "content": str(row["prompt"])}],
            "ability": "product-search",
            "reward_model": {"style": "rule", "ground_truth": [str(p) for p in row["answer"]]},
            "extra_info": {
                "split": split,
                "index": index,
                "query_id": str(row["query_id"]),
                "candidate_pool": [str(p) for p in row["candidate_pool"]],
                "pool_relevance": [int(r) for r in row["pool_relevance"]],
            },
        })
    return out
