"""RL methods and the paper's ablations at one budget, several seeds, paired per query.

One question: does OSPO's token credit beat GRPO's uniform advantage when both get the
same SFT start, the same prompts per step, the same G and the same number of steps? And
do the paper's ablations (contiguous coalitions against random subsets, the window width
w_max) go the way it says?

Per seed: the zero-shot policy is evaluated; SFT runs once; each RL method starts from
that SFT adapter. Every policy is scored on the same held-out queries with the training
retriever and with the retrievers it never saw (the retriever-shift test). Methods are
compared pairwise per query, pooled over seeds, with a bootstrap 95% CI over (seed,
query). The suite also writes learning curves (``learning_curves*.png``), the steps each
method took to reach a fraction of the best final reward, the step time split, and, on a
generated world, the share of harmful values (a value the target lacks) named in the
greedy answers.

The suite is resumable: a run whose summary exists is read, not trained again; a run with
checkpoints continues from its latest one. Methods whose configs coincide (``ospo-prop``
and ``ospo-prop/w8`` at w_max = 8) train once.

    python benchmarks/compare_methods.py                       # the default config, seeds 0 1 2
    python benchmarks/compare_methods.py --suite ablations --ablation-seeds 0 --out bench_results/ablations
    python benchmarks/compare_methods.py --seeds 0 --set steps=6 --out bench_results/quick
    python benchmarks/compare_methods.py --tables-only --out bench_results/quick   # tables again, no training
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see ospo_fast.train.cli

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning_curves  # noqa: E402


@dataclass(frozen=True)
class Method:
    """A policy of the comparison: what it overrides on the base config, and what it is paired against."""

    name: str
    overrides: Mapping[str, Any]
    against: tuple[str, ...] = ()

    @property
    def is_rl(self) -> bool:
        return self.name not in ("zero-shot", "sft")


def _ospo(name: str, against: tuple[str, ...] = ("sft", "grpo"), **overrides: Any) -> Method:
    return Method(name, {"algorithm": name.split("+")[0].split("/")[0]} | overrides, against)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("zero-shot", {"sft_steps": 0, "steps": 0}),
    Method("sft", {"steps": 0}),
    Method("grpo", {"algorithm": "grpo"}, ("sft",)),
    _ospo("ospo-prop"),
    _ospo("ospo-rank"),
    _ospo("ospo-hybrid"),
    _ospo("ospo-prop+invert", invert_negative=True),
    # The credit issue's findings: the stratified estimator is the most faithful, and signed credit blames.
    _ospo("ospo-signed", estimator="stratified"),
    # Non-contiguous coalitions at the budget the window plan spends, sizes drawn from the Shapley kernel.
    _ospo("ospo-prop/subsets", ("sft", "grpo", "ospo-prop"), contiguous=False, subset_budget="contiguous",
          subset_sizes="kernel"),
    *(_ospo(f"ospo-prop/w{w}", ("sft", "grpo", "ospo-prop"), w_max=w) for w in (1, 2, 4, 8)),
)}
SUITES = {
    "methods": ("zero-shot", "sft", "grpo", "ospo-prop", "ospo-rank"),
    "ablations": tuple(METHODS),
}
# Which methods of a suite are ablations: they may run on fewer seeds (--ablation-seeds).
ABLATIONS = ("ospo-prop/subsets", "ospo-prop/w1", "ospo-prop/w2", "ospo-prop/w4", "ospo-prop/w8")


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no commit)"


def run_dir(out: Path, seed: int, method: str) -> Path:
    """Where one method's run for one seed writes everything."""
    return out / f"seed{seed}" / method.replace("/", "@")


def method_overrides(method: Method, seed: int, base: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """The config overrides of one method's run for one seed."""
    from ospo_fast.train.trainer import SFT_ADAPTER_DIR

    overrides = dict(base) | {"seed": seed, "output_dir": str(run_dir(out, seed, method.name)), "progress": False}
    overrides |= dict(method.overrides)
    if method.is_rl:
        sft_adapter = run_dir(out, seed, "sft") / SFT_ADAPTER_DIR
        overrides |= {"sft_steps": 0, "sft_adapter": str(sft_adapter), "eval_at_start": False}
    return overrides


def config_key(cfg: Any) -> str:
    """What decides a run's result: its config without where it writes."""
    fields = dataclasses.asdict(cfg)
    for name in ("output_dir", "progress", "tensorboard"):
        fields.pop(name, None)
    return json.dumps(fields, sort_keys=True, default=str)


def run_method(cfg: Any) -> tuple[dict[str, Any], float, str]:
    """Train (or read, or resume) one run; returns its summary, wall seconds and how it was got."""
    from ospo_fast.train.trainer import SUMMARY_FILE, Trainer

    summary_path = Path(cfg.output_dir) / SUMMARY_FILE
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        return summary, float(summary.get("wall_time_s", 0.0)), "read"
    started = time.perf_counter()
    trainer = Trainer(cfg, resume=True)  # a killed suite continues this run from its latest checkpoint
    fresh = trainer.state.step == 0 and trainer.state.stage == ("sft" if cfg.sft_steps > 0 else "rl")
    how = "trained" if fresh else f"resumed at {trainer.state.stage} step {trainer.state.step}"
    summary = trainer.train()
    return summary, time.perf_counter() - started, how


def read_summary(out: Path, seed: int, method: str) -> dict[str, Any] | None:
    """A finished run's summary, or None (and a note) when that run has not finished."""
    from ospo_fast.train.trainer import SUMMARY_FILE

    path = run_dir(out, seed, method) / SUMMARY_FILE
    if not path.is_file():
        print(f"--tables-only: {path} is missing; seed {seed} {method} is left out", flush=True)
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def pairs_of(methods: Sequence[str]) -> list[tuple[str, str]]:
    """``(a, b)`` for each method ``a`` and each ``b`` it is paired against that also ran."""
    return [(a, b) for a in methods for b in METHODS[a].against if b in methods]


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
            if key not in per_query[a][seed] or key not in per_query[b][seed]:
                continue
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
        # scored to the end under the lenient format, spec §1): the format rate shows when a method does.
        ("greedy format rate", "greedy/format_rate"),
    ]
    return cols


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def markdown_table(results: Mapping[str, Mapping[int, dict[str, float]]], cols: list[tuple[str, str]]) -> str:
    lines = ["| method | seeds | " + " | ".join(h for h, _ in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for method, evals in results.items():
        cells = []
        for _, key in cols:
            values = [e[key] for e in evals.values() if e.get(key) is not None]
            if not values:
                cells.append("—")
                continue
            mean, spread = mean_spread(values)
            cells.append(f"{mean:.3f} ± {spread:.3f}")
        lines.append(f"| {method} | {len(evals)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as config overrides, each value as its key's type."""
    from ospo_fast.train.config import parse_value

    pairs = [item.partition("=") for item in items]
    return {key.strip(): parse_value(key.strip(), text) for key, _, text in pairs}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="default", help="a packaged config name or a TOML file")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--suite", choices=tuple(SUITES), default="methods",
                        help="'methods': zero-shot, SFT, GRPO, OSPO-PROP, OSPO-RANK; 'ablations': every method "
                             "and ablation (" + ", ".join(METHODS) + ")")
    parser.add_argument("--methods", nargs="+", choices=tuple(METHODS), help="instead of --suite")
    parser.add_argument("--ablation-seeds", type=int, nargs="+",
                        help="seeds of the ablations (" + ", ".join(ABLATIONS) + "); default: --seeds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every run")
    parser.add_argument("--target-fraction", type=float, default=0.95,
                        help="steps to target: the first evaluation at which a method's seed-mean greedy NDCG "
                             "reaches this fraction of the best method's final one")
    parser.add_argument("--out", type=Path, default=Path("bench_results/compare_methods"))
    parser.add_argument("--tables-only", action="store_true",
                        help="train nothing: rebuild the tables from the summaries already under --out")
    args = parser.parse_args(argv)
    if not 0 < args.target_fraction <= 1:
        parser.error(f"--target-fraction must be in (0, 1], got {args.target_fraction}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from ospo_fast.train.config import load_config
    from ospo_fast.train.paired import per_query_path

    base = parse_sets(args.set)
    cfg = load_config(args.config, base)
    chosen = args.methods or list(SUITES[args.suite])
    order = [m for m in METHODS if m in chosen]
    if any(METHODS[m].is_rl for m in order) and "sft" not in order:
        raise SystemExit("the RL methods start from the SFT run: keep 'sft' in --methods")
    ablation_seeds = args.ablation_seeds or args.seeds
    if not set(ablation_seeds) <= set(args.seeds):
        raise SystemExit("--ablation-seeds must be among --seeds (each ablation starts from that seed's SFT)")

    started = time.perf_counter()
    results: dict[str, dict[int, dict[str, float]]] = {m: {} for m in order}
    seconds: dict[str, dict[int, float | None]] = {m: {} for m in order}
    directories: dict[str, dict[int, Path]] = {m: {} for m in order}
    final_files: dict[str, dict[int, Path]] = {m: {} for m in order}
    trained: dict[str, tuple[str, Path, dict[str, Any]]] = {}  # config key -> (method, run dir, summary)
    done: list[int] = []
    payload: dict[str, Any] = {}
    for seed in args.seeds:
        for method in order:
            if method in ABLATIONS and seed not in ablation_seeds:
                continue
            run_cfg = load_config(args.config, method_overrides(METHODS[method], seed, base, args.out))
            key = config_key(run_cfg)
            if key in trained:
                twin, directory, summary = trained[key]
                wall, how = 0.0, f"the run of {twin}: same config"
            elif args.tables_only:
                directory = run_dir(args.out, seed, method)
                summary, wall, how = read_summary(args.out, seed, method), None, "read"
                if summary is None:
                    continue
            else:
                directory = Path(run_cfg.output_dir)
                summary, wall, how = run_method(run_cfg)
            trained.setdefault(key, (method, directory, summary))
            final = summary["final_eval"]
            results[method][seed] = final
            seconds[method][seed] = wall
            directories[method][seed] = directory
            final_files[method][seed] = per_query_path(directory, summary["after_step"])
            took = "" if wall is None else f" ({wall:.0f} s, {how})"
            print(f"seed {seed} {method}: greedy NDCG@pool {final[f'greedy/{cfg.retriever}/ndcg@pool']:.4f}{took}",
                  flush=True)
        done.append(seed)
        # Written after every seed, so a long comparison cut short still leaves its finished seeds.
        total = None if args.tables_only else time.perf_counter() - started
        payload = write_results(args, cfg, done, results, seconds, directories, final_files, total)
    print(f"\n{payload['text']}")
    return payload


def write_results(
    args: argparse.Namespace, cfg: Any, seeds: Sequence[int], results: Mapping[str, Mapping[int, dict[str, float]]],
    seconds: Mapping[str, Mapping[int, float | None]], directories: Mapping[str, Mapping[int, Path]],
    final_files: Mapping[str, Mapping[int, Path]], total: float | None,
) -> dict[str, Any]:
    """The tables and curves over the finished ``seeds``, as markdown, JSON and PNGs under ``args.out``.

    ``total`` is None when the tables are rebuilt from earlier runs: they go to
    ``compare_methods.tables.*`` and leave the timed run's files alone.
    """
    results = {m: evals for m, evals in results.items() if evals}  # a method no seed has finished is left out
    directories = {m: directories[m] for m in results}
    final_files = {m: final_files[m] for m in results}
    # Columns no run measured (the sampled pass when eval_samples = 0) are left out.
    cols = [(h, k) for h, k in columns(cfg.retriever, cfg.eval_retrievers)
            if any(e.get(k) is not None for evals in results.values() for e in evals.values())]
    table = markdown_table(results, cols)
    measured = {k for _, k in cols}
    keys = [k for k in (f"greedy/{cfg.retriever}/ndcg@pool", f"sampled/{cfg.retriever}/ndcg@pool",
                        *(f"greedy/{name}/ndcg@pool" for name in cfg.eval_retrievers)) if k in measured]
    from ospo_fast.train.paired import read_per_query

    per_query = {m: {seed: read_per_query(path) for seed, path in files.items()} for m, files in final_files.items()}
    pairs = pairs_of(list(results))
    paired = {key: paired_rows(per_query, key, pairs) for key in keys}
    pairs_md = "\n\n".join(
        f"Paired per query ({key}, pooled over seeds):\n\n{paired_table(rows)}" for key, rows in paired.items() if rows
    )
    runs = learning_curves.collect(directories)
    curve_key = f"greedy/{cfg.retriever}/ndcg@pool"
    targets = learning_curves.steps_to_target(runs, curve_key, args.target_fraction)
    split = learning_curves.step_time_split(runs)
    harmful = learning_curves.harmful_value_shares(cfg, final_files)
    pictures = learning_curves.plot_suite(runs, args.out, retriever=cfg.retriever, ablations=ABLATIONS)
    extra_md = "\n\n".join(part for part in (
        learning_curves.targets_table(targets, args.target_fraction),
        learning_curves.split_table(split),
        learning_curves.harmful_table(harmful),
    ) if part)
    if total is None:
        footer = f"mean ± sample std over seeds {list(seeds)}; tables rebuilt at commit {commit()} from earlier runs"
    else:
        footer = f"mean ± sample std over seeds {list(seeds)}; total wall time {total:.0f} s; commit {commit()}"
    text = f"{table}\n\n{footer}\n\n{pairs_md}\n\n{extra_md}\n"
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": args.config, "overrides": args.set, "seeds": list(seeds), "commit": commit(),
        "wall_seconds": total, "method_seconds": seconds, "final_eval": results, "table": table,
        "paired": paired, "paired_table": pairs_md, "steps_to_target": targets, "step_time_split": split,
        "harmful_values": harmful, "pictures": [str(p) for p in pictures], "text": text,
    }
    stem = "compare_methods" if total is not None else "compare_methods.tables"
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    (args.out / f"{stem}.md").write_text(text, encoding="utf-8")
    return payload


if __name__ == "__main__":
    main()
