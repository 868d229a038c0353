"""What compare_methods.py reads off its runs besides the final table: learning curves (as
PNGs), steps to a target reward, the step time split, and the share of harmful values named.

Everything here is read from the files each run leaves (``metrics.jsonl`` and the
per-query evaluation files), so the figures can be rebuilt without training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The step time split of the issue: generation, reward, attribution (the token advantages),
# log-probs (the policy's forward) and the update (backward and optimiser).
SPLIT = (
    ("generate", "time/generate"),
    ("reward", "time/reward"),
    ("attribution", "time/advantages"),
    ("log-probs", "time/logprobs"),
    ("update", "time/update"),
    ("step", "time/step"),
)
CURVE_PANELS = (
    ("held-out greedy NDCG@pool", "eval", None),
    ("train reward (sampled, NDCG@pool)", "train", "reward_mean"),
    ("train zero-reward rate", "train", "zero_reward_rate"),
    ("train answer length (words)", "train", "answer_words"),
)


def collect(directories: Mapping[str, Mapping[int, Path]]) -> dict[str, dict[int, dict[str, Any]]]:
    """method -> seed -> ``{"evals": [(step, metrics)], "train": [records]}`` from each run's metrics file.

    An RL run starts from its seed's SFT policy without evaluating it again, so the SFT
    run's final evaluation is its step 0.
    """
    from ospo_fast.train.records import METRICS_FILE, read_records, records_of

    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for method, by_seed in directories.items():
        for seed, directory in by_seed.items():
            records = read_records(Path(directory) / METRICS_FILE)
            evals = [(int(r["step"]), r) for r in records_of(records, "eval")]
            runs.setdefault(method, {})[seed] = {"evals": evals, "train": list(records_of(records, "train"))}
    for method, by_seed in runs.items():
        if method in ("sft", "zero-shot"):
            continue
        for seed, run in by_seed.items():
            start = runs.get("sft", {}).get(seed)
            if start and start["evals"] and (not run["evals"] or run["evals"][0][0] > 0):
                run["evals"] = [(0, start["evals"][-1][1]), *run["evals"]]
    return runs


def mean_curve(by_seed: Mapping[int, Mapping[str, Any]], key: str) -> tuple[list[int], np.ndarray]:
    """The eval steps every seed has and ``[S, steps]`` values of ``key`` there."""
    steps = sorted(set.intersection(*({s for s, e in run["evals"] if key in e} for run in by_seed.values())))
    values = np.array([[dict(run["evals"])[s][key] for s in steps] for run in by_seed.values()], dtype=np.float64)
    return steps, values.reshape(len(by_seed), len(steps))


def steps_to_target(runs: Mapping[str, Mapping[int, Mapping[str, Any]]], key: str, fraction: float) -> dict[str, Any]:
    """The first eval step at which each RL method's seed-mean ``key`` reaches ``fraction`` × the best final one
    (best among the methods run on the most seeds).

    Each seed's own first step is given too (against the same target), None where it was never reached.
    """
    curves = {m: mean_curve(by_seed, key) for m, by_seed in runs.items() if m not in ("sft", "zero-shot") and by_seed}
    curves = {m: c for m, c in curves.items() if c[0]}
    if not curves:
        return {}
    finals = {m: float(values[:, -1].mean()) for m, (_, values) in curves.items()}
    # Only a method run on every seed may set the target: a one-seed ablation's mean is not comparable.
    most_seeds = max(len(runs[m]) for m in curves)
    best = max((m for m in curves if len(runs[m]) == most_seeds), key=finals.get)
    target = fraction * finals[best]

    def first(steps: Sequence[int], values: np.ndarray) -> int | None:
        return next((s for s, v in zip(steps, values) if v >= target), None)

    return {
        "key": key, "fraction": fraction, "best_method": best, "best_final": finals[best], "target": target,
        "methods": {
            m: {"steps": first(steps, values.mean(axis=0)), "final": finals[m], "eval_steps": steps,
                "per_seed": dict(zip(runs[m], (first(steps, row) for row in values)))}
            for m, (steps, values) in curves.items()
        },
    }


def step_time_split(runs: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> dict[str, dict[str, float]]:
    """Mean seconds per RL step of each part of :data:`SPLIT`, per method (over its seeds' steps)."""
    split = {}
    for method, by_seed in runs.items():
        records = [r for run in by_seed.values() for r in run["train"]]
        if records:
            split[method] = {name: float(np.mean([r.get(key, 0.0) for r in records])) for name, key in SPLIT}
            split[method]["steps"] = float(len(records))
    return split


def harmful_value_shares(cfg: Any, final_files: Mapping[str, Mapping[int, Path]]) -> dict[str, dict[str, float | None]]:
    """Per method, over its seeds' final greedy answers: of the catalog values the answers
    name, the share that are wrong (a value the target product lacks: harmful) and gold (a
    value the shopper asked for), and the share of answers that name a wrong one.

    Read against the generated world's ground truth (:mod:`ospo_fast.data.truth`); empty for
    a world from ``world_dir``, which carries no vocabulary to judge by.
    """
    if cfg.world_dir:
        return {}
    import json

    from ospo_fast.data import generate_world
    from ospo_fast.data.truth import answer_value_classes
    from ospo_fast.train.trainer import generated_world_config

    world = generate_world(generated_world_config(cfg))
    rows = {row["query_id"]: row for row in world.test()}
    catalog = world.catalog.set_index("product_id", drop=False)
    shares: dict[str, dict[str, float | None]] = {}
    for method, by_seed in final_files.items():
        classes: list[list[str]] = []
        for path in by_seed.values():
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
            for record in payload.get("queries", []):
                row = rows[record["query_id"]]
                for answer in record["greedy_answers"]:
                    classes.append(answer_value_classes(answer, row, catalog.loc[row["target_item_id"]]))
        values = [c for answer in classes for c in answer]
        # None where there is nothing to share out (no answer, or none naming a value).
        shares[method] = {
            "answers": float(len(classes)),
            "wrong_value_share": values.count("wrong") / len(values) if values else None,
            "gold_value_share": values.count("gold") / len(values) if values else None,
            "answers_with_a_wrong_value": float(np.mean([("wrong" in a) for a in classes])) if classes else None,
            "values_per_answer": len(values) / len(classes) if classes else None,
        }
    return shares


def targets_table(targets: Mapping[str, Any], fraction: float) -> str:
    if not targets:
        return ""
    lines = [
        f"Steps to {fraction:.0%} of the best final {targets['key']} ({targets['best_method']}, "
        f"{targets['best_final']:.4f}; target {targets['target']:.4f}), at the evaluated steps; "
        "'—' = not reached:",
        "",
        "| method | steps (seed mean) | per seed | final | evaluated at |",
        "|---|---|---|---|---|",
    ]
    for method, row in targets["methods"].items():
        per_seed = ", ".join(f"{seed}: {'—' if s is None else s}" for seed, s in row["per_seed"].items())
        lines.append(f"| {method} | {'—' if row['steps'] is None else row['steps']} | {per_seed} | "
                     f"{row['final']:.4f} | {row['eval_steps']} |")
    return "\n".join(lines)


def split_table(split: Mapping[str, Mapping[str, float]]) -> str:
    if not split:
        return ""
    names = [name for name, _ in SPLIT]
    lines = ["Step time split (mean s per RL step):", "", "| method | " + " | ".join(names) + " | steps |",
             "|---|" + "---|" * (len(names) + 1)]
    for method, row in split.items():
        lines.append(f"| {method} | " + " | ".join(f"{row[n]:.2f}" for n in names) + f" | {row['steps']:.0f} |")
    return "\n".join(lines)


def harmful_table(shares: Mapping[str, Mapping[str, float | None]]) -> str:
    if not shares:
        return ""
    lines = ["Catalog values the final greedy answers name, against the world's ground truth (wrong = "
             "the target lacks it: harmful; gold = the shopper asked for it):", "",
             "| method | answers | wrong-value share | gold-value share | answers naming a wrong value | "
             "values per answer |",
             "|---|---|---|---|---|---|"]

    def cell(value: float | None, digits: int) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    for method, row in shares.items():
        lines.append(f"| {method} | {row['answers']:.0f} | {cell(row['wrong_value_share'], 3)} | "
                     f"{cell(row['gold_value_share'], 3)} | {cell(row['answers_with_a_wrong_value'], 3)} | "
                     f"{cell(row['values_per_answer'], 2)} |")
    return "\n".join(lines)


def _train_curve(by_seed: Mapping[int, Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and ``[S, steps]`` values of a train metric over the steps every seed logged."""
    per_seed = [{int(r["step"]): r[key] for r in run["train"] if key in r} for run in by_seed.values()]
    steps = np.array(sorted(set.intersection(*(set(s) for s in per_seed))), dtype=np.int64)
    return steps, np.array([[s[int(t)] for t in steps] for s in per_seed], dtype=np.float64).reshape(len(per_seed), -1)


def plot_suite(runs: Mapping[str, Mapping[int, Mapping[str, Any]]], out: Path, *, retriever: str,
               ablations: Sequence[str]) -> list[Path]:
    """``learning_curves.png`` (the methods) and ``learning_curves_ablations.png`` (the ablations,
    with OSPO-PROP for reference, over the seeds they share): the seed mean as a line, the
    seeds' range as a band."""
    from ospo_fast.train.plots import _pyplot

    key = f"greedy/{retriever}/ndcg@pool"
    groups = {
        "learning_curves.png": [m for m in runs if m not in ablations and m not in ("sft", "zero-shot")],
        "learning_curves_ablations.png": [m for m in runs if m in ablations or (m == "ospo-prop" and any(
            a in runs for a in ablations))],
    }
    if "ospo-prop/w8" in groups["learning_curves_ablations.png"]:
        groups["learning_curves_ablations.png"].remove("ospo-prop")  # the same runs when w_max = 8
    plt = _pyplot()
    written = []
    for name, methods in groups.items():
        methods = [m for m in methods if runs[m]]
        if not methods:
            continue
        if name == "learning_curves_ablations.png":
            # Ablations may run on fewer seeds: every line of this picture is over the seeds they share.
            shared = set.intersection(*(set(runs[m]) for m in methods))
            runs = {**runs, **{m: {seed: runs[m][seed] for seed in sorted(shared)} for m in methods}}
        fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(4.2 * len(CURVE_PANELS), 3.6))
        for ax, (title, kind, metric) in zip(axes, CURVE_PANELS):
            for method in methods:
                by_seed = runs[method]
                if kind == "eval":
                    steps, values = mean_curve(by_seed, key)
                    steps = np.asarray(steps)
                else:
                    steps, values = _train_curve(by_seed, metric)
                if not len(steps):
                    continue
                line = ax.plot(steps, values.mean(axis=0), marker="o" if kind == "eval" else None, ms=3,
                               label=f"{method} ({len(by_seed)} seed{'s' if len(by_seed) > 1 else ''})")[0]
                if len(by_seed) > 1:
                    ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.18)
            ax.set_title(title if kind != "eval" else f"{title} ({retriever})", fontsize=9)
            ax.set_xlabel("RL step")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle("mean over seeds; band: min to max over seeds", fontsize=9)
        fig.tight_layout()
        path = Path(out) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
