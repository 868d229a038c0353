"""Paired before/after comparison on the same held-out queries.

Greedy decoding is deterministic, so the policy before RL and the policy after it answer
the very same queries; the per-query difference removes the (large) spread between easy
and hard queries. Its uncertainty is given two ways: the paired standard error and a
percentile bootstrap over queries. "Measurably better" means the interval excludes zero.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PER_QUERY_DIR = "eval_per_query"
BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95


def per_query_means(values: np.ndarray, n_queries: int) -> np.ndarray:
    """Per-completion values ``[Q * n]`` (query-major) as per-query means ``[Q]``."""
    values = np.asarray(values, dtype=np.float64)
    if n_queries < 1 or values.size % n_queries:
        raise ValueError(f"values: {values.size} entries do not split into {n_queries} queries")
    return values.reshape(n_queries, -1).mean(axis=1)


def paired_difference(
    before: np.ndarray, after: np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> dict[str, float]:
    """Mean of ``after − before`` over queries with its paired SE and bootstrap 95% CI.

    ``before`` and ``after`` are ``[Q]`` float arrays, aligned by query.
    """
    before = np.asarray(before, dtype=np.float64)  # [Q]
    after = np.asarray(after, dtype=np.float64)  # [Q]
    if before.shape != after.shape or before.ndim != 1:
        raise ValueError(f"before and after must be aligned 1-D arrays, got shapes {before.shape} and {after.shape}")
    if before.size < 2:
        raise ValueError(f"a paired interval needs at least 2 queries, got {before.size}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    diff = after - before  # [Q]
    n = diff.size
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))  # [R, Q] query indices
    boot = diff[draws].mean(axis=1)  # [R]
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    return {
        "n_queries": float(n),
        "before": float(before.mean()),
        "after": float(after.mean()),
        "mean_diff": float(diff.mean()),
        "paired_se": float(diff.std(ddof=1) / np.sqrt(n)),
        "ci95_low": float(low),
        "ci95_high": float(high),
        "improved": float(np.mean(diff > 0)),
        "worsened": float(np.mean(diff < 0)),
    }


def write_per_query(
    path: Path,
    query_ids: Sequence[str],
    values: Mapping[str, Sequence[float]],
    *,
    queries: Sequence[Mapping[str, Any]] = (),
) -> None:
    """One evaluation's per-query values: ``{"query_ids": [...], "values": {key: [...]}}``.

    ``queries``: one record per query, in ``query_ids`` order (the shopper's context, the
    gold query, the policy's completions and answers), stored under ``"queries"`` so a
    reader can see what each value scored.
    """
    for key, column in values.items():
        if len(column) != len(query_ids):
            raise ValueError(f"{key}: {len(column)} values for {len(query_ids)} queries")
    if queries and len(queries) != len(query_ids):
        raise ValueError(f"queries: {len(queries)} records for {len(query_ids)} queries")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "query_ids": list(query_ids), "values": {k: [float(v) for v in col] for k, col in values.items()}
    }
    if queries:
        payload["queries"] = [dict(record) for record in queries]
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")


def read_per_query(path: Path) -> dict[str, dict[str, float]]:
    """``key -> {query_id: value}`` of a file written by :func:`write_per_query`."""
    payload: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    ids = payload["query_ids"]
    return {key: dict(zip(ids, column)) for key, column in payload["values"].items()}


def per_query_path(run_dir: Path, step: int) -> Path:
    """Where a run keeps the per-query values of its evaluation at RL ``step``."""
    return Path(run_dir) / PER_QUERY_DIR / f"step_{step:06d}.json"


def aligned(before: Mapping[str, float], after: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The values of the queries both maps hold, in query-id order: ``(before [Q], after [Q])``."""
    common = sorted(before.keys() & after.keys())
    return np.array([before[q] for q in common], dtype=np.float64), np.array([after[q] for q in common], dtype=np.float64)


def paired_report(before: Path, after: Path, *, seed: int = 0) -> dict[str, dict[str, float]]:
    """:func:`paired_difference` for every key the two files share, on their common queries."""
    first, last = read_per_query(before), read_per_query(after)
    report = {}
    for key in sorted(first.keys() & last.keys()):
        x, y = aligned(first[key], last[key])
        if x.size >= 2:
            report[key] = paired_difference(x, y, seed=seed)
    return report
