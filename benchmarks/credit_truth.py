"""Credit that is right: how faithful each estimator's segment credit is, against ground truth.

Question: when OSPO splits a response's advantage between its phrases, does the phrase
that helped get more, and does the phrase that hurt get less, than the one that did
nothing? At the same coalition budget, which estimator comes closest to exact Shapley?

Construction (on the generated world, with its real retriever and reward). For a held-out
query, the answer is a comma-separated list of phrases of known class, in random order:

* ``gold``: the target's product type, and each targeted attribute value;
* ``wrong``: a colour, material or style the target product does not have (one or two),
  and with chance 0.3 another product type;
* ``filler``: one or two pieces of shop talk ("good value", "for my new home").

At most 8 phrases, so every subset can be scored: v(S) is the NDCG@pool of the phrases in
S joined by spaces (the reference's partial query), and exact Shapley comes from all
2^n of them. Each estimator reads only the coalitions its plan scores:

* ``spec``: spec §5, the contiguous plan (∅, windows <= w_max, the full set);
* ``stratified``: the same windows, each size weighted alike (``OwenConfig.estimator``);
* ``leave-one-out``: v(N) − v(N \\ {i});
* ``subsets (p = ½)`` / ``subsets (kernel sizes)``: the non-contiguous ablation at the
  contiguous plan's budget, subsets drawn with each player in at ½, or with the Shapley
  kernel's size distribution;
* ``exact Shapley``: every subset.

Reported per estimator: the top-1 gold rate (and chance), gold-vs-rest AUC, mean credit
by class, how often a wrong phrase is ranked below a filler one, Spearman / Pearson and
RMSE against exact Shapley, Σφ / v(N) ("efficiency"), coalitions scored; for the main
figures a 95% bootstrap interval over answers, and the paired interval of the figure
minus exact Shapley's (the same resamples for every estimator).

Redistribution: each query also gets G = 4 responses (its answer and three answers made of
a random part of its phrases; their rewards are v of those phrases), so each has a GRPO Â.
Their token advantages come from the fused op, per mode: how much lower wrong phrases'
advantages are than filler ones, in good (Â > 0) and bad (Â < 0) responses, and the
correlation of A_t with the class (gold +1, filler 0, wrong −1).

Variance against M: answers of 16 phrases (windows <= 8 give 102 coalitions), repeated
coalition draws at M from 8 to 256 (from 102 on every window is scored, so the draws
agree); the spread of φ and the rank agreement with the full plan's φ, plotted.

    python benchmarks/credit_truth.py            # 150 answers, a 5,000-product world: about 10 minutes warm
    python benchmarks/credit_truth.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine_facts, print_table  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ospo_fast.attribution import CoalitionEvaluator, get_segmenter  # noqa: E402
from ospo_fast.data import WorldConfig, generate_world  # noqa: E402
from ospo_fast.data import vocabulary as vocab  # noqa: E402
from ospo_fast.ops.coalitions import (  # noqa: E402
    coalition_plan,
    contiguous_coalitions,
    sample_subset_coalitions,
    window_count,
)
from ospo_fast.ops.credit import token_advantages_batch  # noqa: E402
from ospo_fast.ops.grpo import group_advantage_scales, group_advantages  # noqa: E402
from ospo_fast.ops.owen import exact_shapley, owen_values  # noqa: E402
from ospo_fast.reward import RetrievalReward  # noqa: E402
from ospo_fast.reward.retrievers import build_retriever  # noqa: E402

# Shop talk that the phrase segmenter keeps whole (so each is one player).
FILLER = ("for my new home", "good value", "highly rated", "quick delivery", "best seller", "for everyday use",
          "no assembly needed", "great price", "free returns", "top quality", "in stock now", "popular choice",
          "fast shipping", "good reviews")
CLASSES = ("gold", "wrong", "filler")
CLASS_SCORE = {"gold": 1.0, "filler": 0.0, "wrong": -1.0}
MAX_PHRASES = 8
LONG = 16  # phrases of the variance study's answers
W_MAX = 8
GROUP = 4
MODES = (("prop", False), ("prop", True), ("rank", False), ("signed", False))
QUICK = {"answers": 16, "n_products": 1000, "variance_answers": 4, "variance_seeds": 4}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=150, help="answers of known phrases")
    parser.add_argument("--n-products", type=int, default=5000)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--variance-answers", type=int, default=40, help="16-phrase answers of the variance study")
    parser.add_argument("--variance-seeds", type=int, default=20, help="coalition draws per M")
    parser.add_argument("--ms", type=int, nargs="+", default=[8, 16, 24, 32, 48, 64, 96, 128, 256],
                        help="M values of the study (from 102 on, every window of a 16-phrase answer is scored)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None, help="corpus embeddings ($OSPO_CACHE_DIR)")
    parser.add_argument("--out", type=Path, default=Path("bench_results"))
    parser.add_argument("--name", default="credit_truth")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 16 answers, a 1,000-product world")
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**QUICK)
        args = parser.parse_args(argv)
    return args


# ------------------------------------------------------------------ answers of known phrases


@dataclass(frozen=True)
class Case:
    """An answer of known phrases, its sample, and every subset's value.

    spans    [n, 2] char spans of the phrases, in answer order
    classes  [n] the class of each phrase
    table    [2^n] v(S) for the bitmask S (bit i = phrase i)
    """

    answer: str
    spans: np.ndarray
    classes: list[str]
    sample: dict[str, Any]
    table: np.ndarray

    @property
    def n(self) -> int:
        return len(self.classes)


def phrases_of(row: dict[str, Any], rng: np.random.Generator, n_filler: tuple[int, int], n_wrong: tuple[int, int]
               ) -> list[tuple[str, str]]:
    """Gold, wrong and filler phrases for one query, shuffled."""
    target = json.loads(row["target_attributes"])
    phrases = [(value.lower(), "gold") for value in target.values()]
    domains = {"colour": vocab.COLOURS, "style": vocab.STYLES,
               "material": tuple(sorted({m for t in vocab.PRODUCT_TYPES for m in t.materials}))}
    for attribute in rng.choice(sorted(domains), size=int(rng.integers(*n_wrong)), replace=False):
        others = [v for v in domains[attribute] if v != target.get(attribute)]
        phrases.append((str(rng.choice(others)).lower(), "wrong"))
    if rng.random() < 0.3:
        types = [t.name for t in vocab.PRODUCT_TYPES if t.name != target["product_type"]]
        phrases.append((str(rng.choice(types)).lower(), "wrong"))
    for filler in rng.choice(FILLER, size=int(rng.integers(*n_filler)), replace=False):
        phrases.append((str(filler), "filler"))
    return [phrases[i] for i in rng.permutation(len(phrases))]


def build_answers(rows: Sequence[dict[str, Any]], count: int, max_phrases: int, rng: np.random.Generator,
                  n_filler: tuple[int, int], n_wrong: tuple[int, int]) -> list[tuple[str, np.ndarray, list[str], dict]]:
    """``(answer, spans, classes, sample)`` whose phrase segments are exactly the phrases."""
    segmenter = get_segmenter("phrase", cover_all_words=True)
    out = []
    for row in rows:
        phrases = phrases_of(row, rng, n_filler, n_wrong)[:max_phrases]
        answer = ", ".join(p for p, _ in phrases)
        spans = np.asarray(segmenter(answer), dtype=np.int64).reshape(-1, 2)
        if [answer[a:b] for a, b in spans] == [p for p, _ in phrases]:
            out.append((answer, spans, [c for _, c in phrases], row))
        if len(out) == count:
            break
    return out


def subset_masks(n: int) -> np.ndarray:
    """bool ``[2^n, n]``: every subset in bitmask order (bit i = phrase i)."""
    return ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1).astype(bool)


def score_tables(evaluator: CoalitionEvaluator, answers: Sequence[tuple[str, np.ndarray, list[str], dict]]
                 ) -> list[np.ndarray]:
    """Every subset's v(S) for each answer, in one batched evaluator pass."""
    n_max = max(len(spans) for _, spans, _, _ in answers)
    masks = [np.pad(subset_masks(len(spans)), ((0, 0), (0, n_max - len(spans)))) for _, spans, _, _ in answers]
    offsets = np.concatenate([[0], np.cumsum([len(m) for m in masks])])
    values = np.asarray(evaluator.evaluate(
        [a for a, _, _, _ in answers], [s for _, s, _, _ in answers], np.arange(len(answers)),
        [sample for _, _, _, sample in answers], offsets, np.concatenate(masks),
    ))
    return [values[lo:hi] for lo, hi in zip(offsets[:-1], offsets[1:])]


# ------------------------------------------------------------------ estimators


def window_bits(windows: np.ndarray) -> np.ndarray:
    """The bitmask of each window ``(start, end)``."""
    return np.array([((1 << int(e)) - 1) ^ ((1 << int(s)) - 1) for s, e in windows], dtype=np.int64)


def windows_estimator(estimator: str) -> Callable[[Case, int], tuple[np.ndarray, int]]:
    def run(case: Case, seed: int) -> tuple[np.ndarray, int]:
        windows = contiguous_coalitions(case.n, W_MAX)
        return owen_values(case.n, windows, case.table[window_bits(windows)], estimator=estimator), len(windows)

    return run


def leave_one_out(case: Case, seed: int) -> tuple[np.ndarray, int]:
    full = (1 << case.n) - 1
    return np.array([case.table[full] - case.table[full & ~(1 << i)] for i in range(case.n)]), case.n + 1


def subsets_estimator(sizes: str, estimator: str = "spec") -> Callable[[Case, int], tuple[np.ndarray, int]]:
    """The non-contiguous ablation at the contiguous plan's budget (``subset_budget="contiguous"``):
    for n <= 8 phrases that budget is below 2^n from n = 3 on, so the subsets are drawn."""
    def run(case: Case, seed: int) -> tuple[np.ndarray, int]:
        budget = window_count(case.n, W_MAX)
        masks = sample_subset_coalitions(case.n, budget, seed=seed, sizes=sizes)
        values = case.table[(masks * (1 << np.arange(case.n))).sum(axis=1)]
        return owen_values(case.n, masks, values, estimator=estimator), len(masks)

    return run


def exact(case: Case, seed: int) -> tuple[np.ndarray, int]:
    return exact_shapley(case.table), 1 << case.n


ESTIMATORS: dict[str, Callable[[Case, int], tuple[np.ndarray, int]]] = {
    "spec §5 (windows <= 8)": windows_estimator("spec"),
    "stratified (windows <= 8)": windows_estimator("stratified"),
    "leave-one-out": leave_one_out,
    "subsets, p = ½ (equal budget)": subsets_estimator("half"),
    "subsets, kernel sizes (equal budget)": subsets_estimator("kernel"),
    "subsets, kernel sizes, stratified": subsets_estimator("kernel", "stratified"),
    "exact Shapley (every subset)": exact,
}


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(a positive outranks a negative), ties counting half; NaN without both kinds."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    return float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties)."""
    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for value in np.unique(x):
            tied = x == value
            r[tied] = r[tied].mean()
        return r

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


@dataclass(frozen=True)
class CaseScore:
    """One estimator on one answer: what the table averages (NaN where undefined)."""

    top1_gold: float
    chance: float
    auc_gold: float
    spearman: float
    pearson: float
    rmse: float
    efficiency: float
    class_sums: dict[str, float]
    class_counts: dict[str, int]
    wrong_below_filler: int  # (wrong, filler) pairs with the wrong phrase credited lower
    wrong_filler_pairs: int
    coalitions: int


def score_case(phi: np.ndarray, truth: np.ndarray, case: Case, n_scored: int) -> CaseScore:
    classes = np.array(case.classes)
    gold = classes == "gold"
    defined = case.n > 2 and truth.std() > 0 and phi.std() > 0
    wrong, filler = phi[classes == "wrong"], phi[classes == "filler"]
    full = case.table[-1]
    return CaseScore(
        top1_gold=float(gold[np.argmax(phi)]), chance=float(gold.mean()), auc_gold=auc(phi, gold),
        spearman=rank_correlation(phi, truth) if defined else float("nan"),
        pearson=float(np.corrcoef(phi, truth)[0, 1]) if defined else float("nan"),
        rmse=float(np.sqrt(np.mean((phi - truth) ** 2))),
        efficiency=float(phi.sum() / full) if full > 0 else float("nan"),
        class_sums={c: float(phi[classes == c].sum()) for c in CLASSES},
        class_counts={c: int((classes == c).sum()) for c in CLASSES},
        wrong_below_filler=int((wrong[:, None] < filler[None, :]).sum()), wrong_filler_pairs=len(wrong) * len(filler),
        coalitions=n_scored,
    )


def summary(scores: Sequence[CaseScore], rows: np.ndarray) -> dict[str, float]:
    """The table's figures over the answers ``rows`` (indices into ``scores``, repeats allowed)."""
    picked = [scores[i] for i in rows]

    def mean(name: str) -> float:
        values = np.array([getattr(s, name) for s in picked], dtype=np.float64)
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    out = {name: mean(name) for name in ("top1_gold", "chance", "auc_gold", "spearman", "pearson", "rmse",
                                         "efficiency", "coalitions")}
    for c in CLASSES:
        count = sum(s.class_counts[c] for s in picked)
        out[f"mean_{c}"] = sum(s.class_sums[c] for s in picked) / count if count else float("nan")
    pairs = sum(s.wrong_filler_pairs for s in picked)
    out["wrong_below_filler"] = sum(s.wrong_below_filler for s in picked) / pairs if pairs else float("nan")
    return out


# Figures with a 95% interval: a bootstrap over answers, the same resamples for every
# estimator, so "minus exact" intervals are paired.
INTERVAL_FIGURES = ("top1_gold", "auc_gold", "mean_wrong", "wrong_below_filler", "spearman", "rmse")
BOOTSTRAP = 1000


def faithfulness(cases: Sequence[Case], seed: int) -> list[dict[str, Any]]:
    """One table row per estimator: means over the answers, 95% bootstrap intervals, and
    the paired interval of each figure minus exact Shapley's."""
    truths = [exact_shapley(case.table) for case in cases]
    scores = {}
    for name, run in ESTIMATORS.items():
        scores[name] = []
        for index, (case, truth) in enumerate(zip(cases, truths)):
            phi, n_scored = run(case, seed + index)
            scores[name].append(score_case(phi, truth, case, n_scored))
    resamples = np.random.default_rng(seed).integers(0, len(cases), size=(BOOTSTRAP, len(cases)))
    everyone = np.arange(len(cases))
    exact_name = "exact Shapley (every subset)"
    exact_boot = [summary(scores[exact_name], rows) for rows in resamples]
    table = []
    for name in ESTIMATORS:
        row: dict[str, Any] = {"estimator": name, **summary(scores[name], everyone)}
        boot = [summary(scores[name], rows) for rows in resamples]
        for figure in INTERVAL_FIGURES:
            values = np.array([b[figure] for b in boot])
            gaps = values - np.array([b[figure] for b in exact_boot])
            row[f"{figure}_ci"] = [float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5))]
            row[f"{figure}_minus_exact_ci"] = [float(np.nanpercentile(gaps, 2.5)), float(np.nanpercentile(gaps, 97.5))]
        table.append(row)
    return table


def with_interval(rows: Sequence[dict[str, Any]], figure: str) -> list[dict[str, Any]]:
    """``rows`` with ``figure`` printed as ``value [low, high]``."""
    return [row | {figure: f"{row[figure]:.3f} [{row[figure + '_ci'][0]:.3f}, {row[figure + '_ci'][1]:.3f}]"}
            for row in rows]


# ------------------------------------------------------------------ redistribution


def group_of(case: Case, rng: np.random.Generator) -> list[list[int]]:
    """G responses to the case's query: all its phrases, and G - 1 random parts of them (phrase indices)."""
    parts = [list(range(case.n))]
    while len(parts) < GROUP:
        keep = sorted(rng.choice(case.n, size=int(rng.integers(1, case.n)), replace=False).tolist())
        parts.append(keep)
    return parts


def sub_table(case: Case, phrases: list[int]) -> np.ndarray:
    """v of every subset of ``phrases`` (bit j = the j-th of them), read off the case's table."""
    masks = subset_masks(len(phrases))
    return case.table[(masks * (1 << np.array(phrases))).sum(axis=1)]


def redistribution(cases: Sequence[Case], estimator: str, seed: int) -> list[dict[str, Any]]:
    """Per mode: wrong minus filler advantage in good and bad responses, and corr(A_t, class)."""
    rng = np.random.default_rng(seed)
    groups = [(case, group_of(case, rng)) for case in cases]
    rows = []
    for mode, invert in MODES:
        gaps: dict[str, list[float]] = {"good": [], "bad": []}
        advantages_all, classes_all = [], []
        for case, parts in groups:
            tables = [sub_table(case, part) for part in parts]
            rewards = np.array([t[-1] for t in tables])
            adv = group_advantages(rewards, GROUP)
            scales = group_advantage_scales(rewards, GROUP)  # what GRPO divides reward differences by
            for part, table, a, scale in zip(parts, tables, adv, scales):
                if a == 0 or len(part) < 2:
                    continue
                phrase_adv = phrase_advantages(table, len(part), float(a), mode, invert, estimator, scale)
                classes = np.array([case.classes[i] for i in part])
                advantages_all += phrase_adv.tolist()
                classes_all += [CLASS_SCORE[c] for c in classes]
                wrong, filler = phrase_adv[classes == "wrong"], phrase_adv[classes == "filler"]
                if len(wrong) and len(filler):
                    gaps["good" if a > 0 else "bad"].append(float(wrong.mean() - filler.mean()))
        label = f"{mode}{' + invert_negative' if invert else ''}"
        rows.append({
            "mode": label, "estimator": estimator,
            "wrong_minus_filler_good": float(np.mean(gaps["good"])),
            "wrong_minus_filler_bad": float(np.mean(gaps["bad"])),
            "wrong_minus_filler_good_ci": mean_interval(gaps["good"], seed),
            "wrong_minus_filler_bad_ci": mean_interval(gaps["bad"], seed),
            "responses_good": len(gaps["good"]), "responses_bad": len(gaps["bad"]),
            "wrong_below_filler_good": float(np.mean(np.array(gaps["good"]) < 0)),
            "wrong_below_filler_bad": float(np.mean(np.array(gaps["bad"]) < 0)),
            "corr_advantage_class": float(np.corrcoef(advantages_all, classes_all)[0, 1]),
        })
    return rows


def mean_interval(values: Sequence[float], seed: int) -> list[float]:
    """95% bootstrap interval of the mean of ``values`` (resampled responses)."""
    data = np.asarray(values, dtype=np.float64)
    if not len(data):
        return [float("nan"), float("nan")]
    means = data[np.random.default_rng(seed).integers(0, len(data), size=(BOOTSTRAP, len(data)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def phrase_advantages(table: np.ndarray, n: int, advantage: float, mode: str, invert: bool, estimator: str,
                      scale: float) -> np.ndarray:
    """The fused op's token advantages with one token per phrase: ``[n]``."""
    windows = contiguous_coalitions(n, W_MAX)
    spans = np.stack([np.arange(n) * 2, np.arange(n) * 2 + 1], axis=1).astype(np.int64)  # phrase i = char 2i
    tokens = spans[None]  # [1, n, 2]: a token per phrase
    mask = np.ones((1, n), dtype=bool)
    out = token_advantages_batch(
        np.array([n]), np.array([0, len(windows)]), windows, table[window_bits(windows)], spans, tokens, mask, mask,
        np.array([advantage]), mode, invert_negative=invert, estimator=estimator,
        credit_scale=np.array([scale]) if mode == "signed" else None,
    )
    return np.asarray(out)[0]


# ------------------------------------------------------------------ variance against M


def variance_study(evaluator: CoalitionEvaluator, answers: Sequence[tuple[str, np.ndarray, list[str], dict]],
                   ms: Sequence[int], n_seeds: int) -> list[dict[str, Any]]:
    """Spread of φ over coalition draws at each M, and agreement with the full plan's φ."""
    n_segments = np.array([len(s) for _, s, _, _ in answers])
    full_offsets, full_windows = coalition_plan(n_segments, W_MAX, 10_000, seed=0)
    values = np.asarray(evaluator.evaluate(
        [a for a, _, _, _ in answers], [s for _, s, _, _ in answers], np.arange(len(answers)),
        [sample for _, _, _, sample in answers], full_offsets, full_windows,
    ))
    value_of = [dict(zip(map(tuple, full_windows[lo:hi].tolist()), values[lo:hi]))
                for lo, hi in zip(full_offsets[:-1], full_offsets[1:])]
    rows = []
    for estimator in ("spec", "stratified"):
        reference_phi = [owen_values(n, np.array(list(v)), np.array(list(v.values())), estimator=estimator)
                         for n, v in zip(n_segments, value_of)]
        for m in ms:
            draws = []
            for seed in range(n_seeds):
                offsets, windows = coalition_plan(n_segments, W_MAX, m, seed=seed)
                draws.append([owen_values(int(n), windows[lo:hi], np.array([v[tuple(w)] for w in windows[lo:hi].tolist()]),
                                          estimator=estimator)
                              for n, v, lo, hi in zip(n_segments, value_of, offsets[:-1], offsets[1:])])
            spread = [np.stack([d[b] for d in draws]).std(axis=0).mean() / (np.abs(reference_phi[b]).mean() + 1e-12)
                      for b in range(len(answers))]
            agree = [rank_correlation(d[b], reference_phi[b]) for d in draws for b in range(len(answers))
                     if d[b].std() > 0 and reference_phi[b].std() > 0]
            top1 = [np.argmax(d[b]) == np.argmax(reference_phi[b]) for d in draws for b in range(len(answers))]
            rows.append({"estimator": estimator, "M": m, "coalitions": float(np.diff(offsets).mean()),
                         "relative_spread": float(np.mean(spread)), "spearman_vs_full_plan": float(np.mean(agree)),
                         "top1_agrees": float(np.mean(top1))})
    return rows


def plot_variance(rows: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for estimator in dict.fromkeys(r["estimator"] for r in rows):
        mine = [r for r in rows if r["estimator"] == estimator]
        ms = [r["M"] for r in mine]
        left.plot(ms, [r["relative_spread"] for r in mine], marker="o", label=estimator)
        right.plot(ms, [r["spearman_vs_full_plan"] for r in mine], marker="o", label=f"{estimator}: Spearman")
        right.plot(ms, [r["top1_agrees"] for r in mine], marker="s", linestyle="--", label=f"{estimator}: top-1 agrees")
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("M (coalitions per response)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    left.set_ylabel("std of φ over draws / mean |φ|")
    right.set_ylabel("agreement with the full plan")
    right.set_ylim(0, 1.02)
    figure.suptitle(f"Owen estimator variance over coalition draws ({LONG}-phrase answers, windows ≤ {W_MAX}: "
                    f"{window_count(LONG, W_MAX)} in all)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    world = generate_world(WorldConfig(n_products=args.n_products, n_train=0, n_test=min(args.n_products // 2,
                                       4 * (args.answers + args.variance_answers)), seed=args.seed,
                                       direct_hint_rate=1.0))
    retriever = build_retriever("minilm", world.catalog["text"].tolist(), cache_dir=args.cache_dir)
    reward = RetrievalReward(retriever, world.catalog["product_id"].tolist(), k=args.k)
    evaluator = CoalitionEvaluator(reward)
    rng = np.random.default_rng(args.seed)
    rows = world.test()
    answers = build_answers(rows, args.answers, MAX_PHRASES, rng, (1, 3), (1, 3))
    tables = score_tables(evaluator, answers)
    cases = [Case(a, s, c, sample, t) for (a, s, c, sample), t in zip(answers, tables)]
    print(f"{len(cases)} answers of {np.mean([c.n for c in cases]):.1f} phrases; every subset scored "
          f"({sum(len(t) for t in tables)} coalitions) in {time.perf_counter() - started:.0f}s", flush=True)
    table = faithfulness(cases, args.seed)
    spread = [row for estimator in ("spec", "stratified") for row in redistribution(cases, estimator, args.seed)]
    long_answers = [a for a in build_answers(rows[len(answers) * 2:], 4 * args.variance_answers, LONG, rng, (8, 11),
                                             (3, 4)) if len(a[1]) == LONG][: args.variance_answers]
    variance = variance_study(evaluator, long_answers, args.ms, args.variance_seeds) if long_answers else []
    args.out.mkdir(parents=True, exist_ok=True)
    plot = args.out / f"{args.name}_variance.png"
    if variance:
        plot_variance(variance, plot)

    shown = table
    for figure in ("wrong_below_filler", "rmse"):
        shown = with_interval(shown, figure)
    print_table("Faithfulness of segment credit (mean over answers; [95% bootstrap interval over answers])", shown,
                ["estimator", "top1_gold", "chance", "auc_gold", "mean_gold", "mean_wrong", "mean_filler",
                 "wrong_below_filler", "spearman", "pearson", "rmse", "efficiency", "coalitions"])
    print_table("Redistribution: token advantages of wrong minus filler phrases", spread,
                ["estimator", "mode", "wrong_minus_filler_good", "wrong_minus_filler_bad", "wrong_below_filler_good",
                 "wrong_below_filler_bad", "corr_advantage_class"])
    if variance:
        print_table(f"Variance over {args.variance_seeds} coalition draws ({len(long_answers)} answers of 16 phrases)",
                    variance, ["estimator", "M", "coalitions", "relative_spread", "spearman_vs_full_plan",
                               "top1_agrees"])
    result = {
        "machine": machine_facts(), "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "answers": len(cases), "faithfulness": table, "redistribution": spread, "variance": variance,
        "wall_s": time.perf_counter() - started,
    }
    path = args.out / f"{args.name}.json"
    path.write_text(json.dumps(result, indent=2, default=float))
    print(f"\nwrote {path}{' and ' + str(plot) if variance else ''} in {result['wall_s']:.0f}s")
    return result


if __name__ == "__main__":
    main()
