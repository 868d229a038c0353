"""PNG plots of a run's train and eval curves, from its ``metrics.jsonl`` (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
EVAL_METRIC = "ndcg@pool"


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot_train(records: list[dict[str, Any]], path: Path) -> Path:
    """One panel per train metric against the RL step (SFT loss in the first panel's title when present)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = list(records_of(records, "train"))
    sft = list(records_of(records, "sft"))
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    fig.subplots_adjust(left=0.05, right=0.98, top=0.94, bottom=0.08, hspace=0.35, wspace=0.3)
    for ax, (key, title) in zip(axes.flat, TRAIN_PANELS):
        steps, values = _series(train, key)
        ax.plot(steps, values, marker="." if len(steps) < 50 else None)
        ax.set_title(title)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    if sft:
        steps, values = _series(sft, "loss")
        inset = axes.flat[1].inset_axes((0.55, 0.55, 0.42, 0.4))
        inset.plot(steps, values, color="tab:gray")
        inset.set_title("SFT loss", fontsize=8)
        inset.tick_params(labelsize=6)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_eval(records: list[dict[str, Any]], path: Path) -> Path:
    """Held-out NDCG@pool against the RL step: one line per retriever and decoding."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = list(records_of(records, "eval"))
    keys = sorted({k for r in evals for k in r if k.endswith(f"/{EVAL_METRIC}")})
    fig, ax = plt.subplots(figsize=(8, 5))
    for key in keys:
        steps, values = _series(evals, key)
        ax.plot(steps, values, marker="o", label=key.removesuffix(f"/{EVAL_METRIC}"))
    ax.set_xlabel("RL step")
    ax.set_ylabel(f"held-out {EVAL_METRIC}")
    ax.grid(alpha=0.3)
    if keys:
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_run(directory: Path) -> list[Path]:
    """``train_curves.png`` and ``eval_curves.png`` beside the run's metrics file."""
    records = read_records(directory / METRICS_FILE)
    return [plot_train(records, directory / "train_curves.png"), plot_eval(records, directory / "eval_curves.png")]
