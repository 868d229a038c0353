"""Zero-shot vs SFT vs GRPO vs OSPO-PROP vs OSPO-RANK, same budget, several seeds.

One question: does OSPO's token credit beat GRPO's uniform advantage when both get the
same SFT start, the same prompts per step, the same G and the same number of steps?

Per seed: the zero-shot policy is evaluated; SFT runs once; each RL method starts from
that SFT adapter. Every policy is scored on the same held-out queries with the training
retriever and with the retrievers it never saw (the retriever-shift test). Prints a
markdown table (mean ± sample std over seeds) and writes JSON and the table as markdown.

Because every policy answers the same held-out queries, methods are also compared
pairwise per query (greedy and sampled, training retriever): each RL method against the SFT start
and OSPO against GRPO, pooled over seeds, with a bootstrap 95% CI over (seed, query).

    python benchmarks/compare_methods.py                       # the default config, seeds 0 1 2
    python benchmarks/compare_methods.py --seeds 0 --set steps=6 --out bench_results/quick
    python benchmarks/compare_methods.py --tables-only --out bench_results/quick   # tables again, no training
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see ospo_fast.train.cli

METHODS = ("zero-shot", "sft", "grpo", "ospo-prop", "ospo-rank")
RL_METHODS = ("grpo", "ospo-prop", "ospo-rank")


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no commit)"


PAIRS = (("grpo", "sft"), ("ospo-prop", "sft"), ("ospo-rank", "sft"), ("ospo-prop", "grpo"), ("ospo-rank", "grpo"))


def run_dir(out: Path, seed: int, method: str) -> Path:
    """Where one method's run for one seed writes everything."""
    return out / f"seed{seed}" / method


def run_method(method: str, seed: int, base: Mapping[str, Any], config: str, out: Path) -> tuple[dict[str, Any], float]:
    """Train (or not) one method for one seed; returns its summary and wall seconds."""
    from ospo_fast.train.config import load_config
    from ospo_fast.train.trainer import SFT_ADAPTER_DIR, Trainer

    overrides = dict(base) | {"seed": seed, "output_dir": str(run_dir(out, seed, method)), "progress": False}
    if method == "zero-shot":
        overrides |= {"sft_steps": 0, "steps": 0}
    elif method == "sft":
        overrides |= {"steps": 0}
    else:
        sft_adapter = run_dir(out, seed, "sft") / SFT_ADAPTER_DIR
        overrides |= {"algorithm": method, "sft_steps": 0, "sft_adapter": str(sft_adapter), "eval_at_start": False}
    cfg = load_config(config, overrides)
    started = time.perf_counter()
    summary = Trainer(cfg).train()
    return summary, time.perf_counter() - started


def read_summary(out: Path, seed: int, method: str) -> dict[str, Any]:
    from ospo_fast.train.trainer import SUMMARY_FILE

    path = run_dir(out, seed, method) / SUMMARY_FILE
    if not path.is_file():
        raise SystemExit(f"--tables-only: {path} is missing; run that method and seed first")
    return json.loads(path.read_text(encoding="utf-8"))


def paired_rows(
    per_query: Mapping[str, Mapping[int, Mapping[str, Mapping[str, float]]]], key: str, pairs: Sequence[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """``a − b`` per (seed, query) for each pair of methods that both ran: pooled stats and per-seed means.

    ``per_query``: method -> seed -> the final evaluation's ``key -> {query_id: value}``.
    """
    import numpy as np

    from ospo_fast.train.paired import aligned, paired_difference

    report = {}
    for a, b in pairs:
        if a not in per_query or b not in per_query:
            continue
        firsts, seconds, seed_means = [], [], []
        for seed in sorted(per_query[a].keys() & per_query[b].keys()):
            vb, va = aligned(per_query[b][seed][key], per_query[a][seed][key])
            firsts.append(vb)
            seconds.append(va)
            seed_means.append(float(np.mean(va - vb)))
        before, after = (np.concatenate(v) if v else np.zeros(0) for v in (firsts, seconds))
        if before.size < 2:
            continue
        report[f"{a} − {b}"] = paired_difference(before, after) | {"per_seed_mean_diff": seed_means}
    return report


def paired_table(report: Mapping[str, Mapping[str, Any]]) -> str:
    lines = [
        "| comparison | mean diff | paired SE | 95% CI (bootstrap) | per-seed mean diff | queries better / worse |",
        "|---|---|---|---|---|---|",
    ]
    for name, stats in report.items():
        seeds = ", ".join(f"{d:+.3f}" for d in stats["per_seed_mean_diff"])
        lines.append(
            f"| {name} | {stats['mean_diff']:+.4f} | {stats['paired_se']:.4f} | "
            f"[{stats['ci95_low']:+.4f}, {stats['ci95_high']:+.4f}] | {seeds} | "
            f"{stats['improved']:.0%} / {stats['worsened']:.0%} |"
        )
    return "\n".join(lines)


def columns(retriever: str, eval_retrievers: Sequence[str]) -> list[tuple[str, str]]:
    """(header, eval key) of the table."""
    cols = [
        (f"greedy NDCG@pool ({retriever})", f"greedy/{retriever}/ndcg@pool"),
        (f"sampled NDCG@pool ({retriever})", f"sampled/{retriever}/ndcg@pool"),
    ]
    cols += [(f"greedy NDCG@pool ({name}, unseen)", f"greedy/{name}/ndcg@pool") for name in eval_retrievers]
    cols += [
        (f"greedy NDCG@10 ({retriever})", f"greedy/{retriever}/ndcg@10"),
        ("greedy zero-reward rate", f"greedy/{retriever}/zero_reward_rate"),
        ("greedy answer words", "greedy/answer_words"),
        # A policy can buy NDCG with run-on answers that never close </answer> (they are
        # scored to the end, spec §1): the format rate shows when a method does.
        ("greedy format rate", "greedy/format_rate"),
    ]
    return cols


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def markdown_table(results: Mapping[str, list[dict[str, float]]], cols: list[tuple[str, str]]) -> str:
    lines = ["| method | " + " | ".join(h for h, _ in cols) + " |", "|---|" + "---|" * len(cols)]
    for method, evals in results.items():
        cells = []
        for _, key in cols:
            mean, spread = mean_spread([e[key] for e in evals if e.get(key) is not None])
            cells.append(f"{mean:.3f} ± {spread:.3f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="default", help="a packaged config name or a TOML file")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every run")
    parser.add_argument("--out", type=Path, default=Path("bench_results/compare_methods"))
    parser.add_argument("--tables-only", action="store_true",
                        help="train nothing: rebuild the tables from the summaries already under --out")
    args = parser.parse_args()

    from ospo_fast.train.config import load_config, parse_value
    from ospo_fast.train.paired import per_query_path

    base = {}
    for item in args.set:
        key, _, text = item.partition("=")
        base[key.strip()] = parse_value(key.strip(), text)
    cfg = load_config(args.config, base)
    if any(m in RL_METHODS for m in args.methods) and "sft" not in args.methods:
        raise SystemExit("the RL methods start from the SFT run: keep 'sft' in --methods")

    started = time.perf_counter()
    results: dict[str, list[dict[str, float]]] = {m: [] for m in args.methods}
    seconds: dict[str, list[float | None]] = {m: [] for m in args.methods}
    final_files: dict[str, dict[int, Path]] = {m: {} for m in args.methods}
    order = [m for m in METHODS if m in args.methods]
    done: list[int] = []
    for seed in args.seeds:
        for method in order:
            if args.tables_only:
                summary, wall = read_summary(args.out, seed, method), None
            else:
                summary, wall = run_method(method, seed, base, args.config, args.out)
            final = summary["final_eval"]
            results[method].append(final)
            seconds[method].append(wall)
            final_files[method][seed] = per_query_path(run_dir(args.out, seed, method), summary["after_step"])
            took = "" if wall is None else f" ({wall:.0f} s)"
            print(f"seed {seed} {method}: greedy NDCG@pool {final[f'greedy/{cfg.retriever}/ndcg@pool']:.4f}{took}",
                  flush=True)
        done.append(seed)
        # Written after every seed, so a long comparison cut short still leaves its finished seeds.
        total = None if args.tables_only else time.perf_counter() - started
        text = write_results(args, cfg, done, results, seconds, final_files, total)
    print(f"\n{text}")


def write_results(
    args: argparse.Namespace, cfg: Any, seeds: Sequence[int], results: Mapping[str, list[dict[str, float]]],
    seconds: Mapping[str, list[float | None]], final_files: Mapping[str, Mapping[int, Path]], total: float | None,
) -> str:
    """The table over the finished ``seeds`` as markdown and JSON under ``args.out``; returns the markdown.

    ``total`` is None when the tables are rebuilt from earlier runs: they go to
    ``compare_methods.tables.*`` and leave the timed run's files alone.
    """
    # Columns no run measured (the sampled pass when eval_samples = 0) are left out.
    cols = [(h, k) for h, k in columns(cfg.retriever, cfg.eval_retrievers)
            if any(e.get(k) is not None for evals in results.values() for e in evals)]
    table = markdown_table(results, cols)
    measured = {k for _, k in cols}
    keys = [k for k in (f"greedy/{cfg.retriever}/ndcg@pool", f"sampled/{cfg.retriever}/ndcg@pool") if k in measured]
    from ospo_fast.train.paired import read_per_query

    per_query = {m: {seed: read_per_query(path) for seed, path in files.items()} for m, files in final_files.items()}
    paired = {key: paired_rows(per_query, key, PAIRS) for key in keys}
    pairs_md = "\n\n".join(
        f"Paired per query ({key}, pooled over seeds):\n\n{paired_table(rows)}" for key, rows in paired.items()
    )
    if total is None:
        footer = f"mean ± sample std over seeds {list(seeds)}; tables rebuilt at commit {commit()} from earlier runs"
    else:
        footer = f"mean ± sample std over seeds {list(seeds)}; total wall time {total:.0f} s; commit {commit()}"
    text = f"{table}\n\n{footer}\n\n{pairs_md}\n"
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": args.config, "overrides": args.set, "seeds": list(seeds), "commit": commit(),
        "wall_seconds": total, "method_seconds": seconds, "final_eval": results, "table": table,
        "paired": paired, "paired_table": pairs_md,
    }
    stem = "compare_methods" if total is not None else "compare_methods.tables"
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    (args.out / f"{stem}.md").write_text(text, encoding="utf-8")
    return text

if __name__ == "__main__":
    main()
