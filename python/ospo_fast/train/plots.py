"""PNG plots of a run (matplotlib, Agg): its train curves from ``metrics.jsonl`` and its
held-out curves, with intervals, from the per-query evaluation files."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ospo_fast.train.paired import paired_difference, per_query_path, read_per_query
from ospo_fast.train.records import METRICS_FILE, read_records, records_of

TRAIN_PANELS = (
    ("reward_mean", "reward (NDCG@pool)"),
    ("loss", "policy loss"),
    ("zero_reward_rate", "zero-reward rate"),
    ("answer_words", "answer length (words)"),
    ("reasoning_words", "reasoning length (words)"),
    ("kl", "KL to base"),
    ("clip_fraction", "PPO clip fraction"),
    ("grad_norm", "gradient norm"),
)
SFT_PANEL = "SFT loss"
PANEL_COLUMNS = 4
EVAL_METRIC = "ndcg@pool"
# Normal 95% interval of a mean over queries: ± 1.96 standard errors.
Z95 = 1.96


def flat_panels(*, beta: float, mu: int) -> tuple[str, ...]:
    """Train metrics that are zero by construction, so not worth a panel: the KL term is
    never computed at β = 0, and with μ = 1 the ratio is exactly 1, so nothing is clipped."""
    return (("kl",) if beta == 0 else ()) + (("clip_fraction",) if mu == 1 else ())


def train_panels(hidden: Collection[str] = ()) -> list[tuple[str, str]]:
    """``(metric, title)`` of each RL panel of ``train_curves.png``, leaving out ``hidden``."""
    unknown = set(hidden) - {key for key, _ in TRAIN_PANELS}
    if unknown:
        raise ValueError(f"hidden: no train panel named {sorted(unknown)[0]!r}")
    return [(key, title) for key, title in TRAIN_PANELS if key not in hidden]


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_train(records: list[dict[str, Any]], path: Path, *, hidden: Collection[str] = ()) -> Path:
    """One panel per train metric against the RL step, leaving out ``hidden`` keys, and
    the SFT loss against the SFT step in a panel of its own when the run had SFT."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    train = list(records_of(records, "train"))
    sft = list(records_of(records, "sft"))
    panels = train_panels(hidden)
    n_panels = len(panels) + (1 if sft else 0)
    n_rows = math.ceil(n_panels / PANEL_COLUMNS)
    fig, axes = plt.subplots(n_rows, PANEL_COLUMNS, figsize=(16, 3.6 * n_rows), squeeze=False)
    fig.subplots_adjust(left=0.05, right=0.98, top=0.93, bottom=0.12, hspace=0.45, wspace=0.3)
    flat = list(axes.flat)
    for ax, (key, title) in zip(flat, panels):
        steps, values = _series(train, key)
        ax.plot(steps, values, marker="." if len(steps) < 50 else None)
        ax.set_title(title)
        ax.set_xlabel("RL step")
    if sft:
        ax = flat[len(panels)]
        steps, values = _series(sft, "loss")
        ax.plot(steps, values, color="tab:gray", marker="." if len(steps) < 50 else None)
        ax.set_title(SFT_PANEL)
        ax.set_xlabel("SFT step")
    for ax in flat[:n_panels]:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in flat[n_panels:]:
        ax.remove()
    if hidden:
        fig.text(0.01, 0.01, f"not drawn, zero by construction in this run: {', '.join(sorted(hidden))}",
                 fontsize=9, color="#555")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, half-width)`` of a normal 95% interval of the mean (half-width 0 below 2 values)."""
    x = np.asarray(values, dtype=np.float64)  # [Q]
    if x.size == 0:
        raise ValueError("values must hold at least one value")
    half = Z95 * x.std(ddof=1) / math.sqrt(x.size) if x.size > 1 else 0.0
    return float(x.mean()), float(half)


def eval_series(run_dir: Path, steps: Sequence[int], key: str) -> dict[str, list[float]]:
    """Per evaluation step of ``key``: the mean with its 95% half-width, and the paired
    change from the first step with its bootstrap 95% CI (as in the summary).

    Steps without a per-query file are left out. Returns lists keyed ``step, mean, half,
    change, low, high``.
    """
    series: dict[str, list[float]] = {name: [] for name in ("step", "mean", "half", "change", "low", "high")}
    first: dict[str, float] | None = None
    for step in steps:
        path = per_query_path(run_dir, step)
        if not path.is_file():
            continue
        values = read_per_query(path).get(key)
        if not values:
            continue
        first = values if first is None else first
        common = sorted(first.keys() & values.keys())
        mean, half = mean_interval(list(values.values()))
        if len(common) >= 2:
            paired = paired_difference(np.array([first[q] for q in common]), np.array([values[q] for q in common]))
            change, low, high = paired["mean_diff"], paired["ci95_low"], paired["ci95_high"]
        else:
            change = low = high = 0.0
        for name, value in zip(series, (step, mean, half, change, low, high)):
            series[name].append(float(value))
    return series


def dodge(index: int, count: int, spacing: float) -> float:
    """x offset of line ``index`` of ``count``, so error bars at the same step stay apart."""
    return (index - (count - 1) / 2) * 0.04 * spacing


def plot_eval(records: list[dict[str, Any]], path: Path, run_dir: Path, *, trained_on: str = "") -> Path:
    """Held-out NDCG@pool at each evaluation: one row of panels per decoding (greedy,
    sampled), one colour per retriever (``trained_on`` is marked as the training one).

    Left: the mean over the held-out queries with its 95% interval (± 1.96 SE). Right: the
    change from the first evaluation, paired per query, with its bootstrap 95% CI, the
    comparison the summary reports. Without per-query files, the means alone.
    """
    plt = _pyplot()
    evals = list(records_of(records, "eval"))
    steps = [int(r["step"]) for r in evals]
    keys = sorted({k for r in evals for k in r if k.endswith(f"/{EVAL_METRIC}")})
    decodings = sorted({key.split("/")[0] for key in keys}, key=lambda d: (d != "greedy", d)) or ["greedy"]
    retrievers = sorted({key.split("/")[1] for key in keys}, key=lambda r: (r != trained_on, r))
    spacing = float(min(np.diff(sorted(set(steps))), default=1))
    fig, axes = plt.subplots(len(decodings), 2, figsize=(14, 4.4 * len(decodings)), squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.93, bottom=0.08, hspace=0.4, wspace=0.22)
    for (level, change), decoding in zip(axes, decodings):
        for j, retriever in enumerate(retrievers):
            key = f"{decoding}/{retriever}/{EVAL_METRIC}"
            if key not in keys:
                continue
            label = f"{retriever} (trained on)" if retriever == trained_on else retriever
            style = {"color": plt.get_cmap("tab10")(j % 10), "marker": "o", "capsize": 4, "label": label}
            series = eval_series(run_dir, steps, key)
            if not series["step"]:
                level.plot(*_series(evals, key), marker="o", color=style["color"], label=label)
                continue
            x = np.array(series["step"]) + dodge(j, len(retrievers), spacing)
            level.errorbar(x, series["mean"], yerr=series["half"], **style)
            diff = np.array(series["change"])
            change.errorbar(x, diff, yerr=[diff - np.array(series["low"]), np.array(series["high"]) - diff], **style)
        level.set_title(f"{decoding}: held-out {EVAL_METRIC}, mean and 95% interval (± 1.96 SE)")
        change.set_title(f"{decoding}: change from RL step {steps[0] if steps else 0}, paired per query (95% CI)")
        change.axhline(0.0, color="black", linewidth=0.8)
        for ax in (level, change):
            ax.set_xlabel("RL step")
            ax.grid(alpha=0.3)
            if steps:
                ax.set_xticks(sorted(set(steps)))
        if retrievers:
            level.legend(fontsize=8, title="retriever", title_fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_run(directory: Path, *, hidden: Collection[str] = (), trained_on: str = "") -> list[Path]:
    """``train_curves.png`` and ``eval_curves.png`` beside the run's metrics file.

    ``hidden``: train metrics left out (:func:`flat_panels`); ``trained_on``: the training retriever.
    """
    records = read_records(directory / METRICS_FILE)
    return [
        plot_train(records, directory / "train_curves.png", hidden=hidden),
        plot_eval(records, directory / "eval_curves.png", directory, trained_on=trained_on),
    ]
