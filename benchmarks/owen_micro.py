"""Owen reduction + token redistribution for one large RL step, three ways in one run.

  1. a per-response Python loop shaped like the published implementation: a dict
     from coalition to value, a scan over every coalition for each segment, then
     the token map, min-max, PBRS and PROP weights in Python lists;
  2. ``ospo_fast.ops.reference`` (plain numpy twins);
  3. the native core (``ospo_fast.token_advantages_batch``, one call per step).

Default: 4,096 responses x 96 coalitions (w_max = 8), 64 answer tokens each.
Prints p50 times and speedups against the loop; writes JSON and CSV.

    python benchmarks/owen_micro.py [--responses 4096] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from harness import measure, print_table, timing_row, write_results  # noqa: E402
from published_loop import python_owen  # noqa: E402

import ospo_fast as of  # noqa: E402
from ospo_fast.ops import reference  # noqa: E402
from ospo_fast.ops.native import core  # noqa: E402


def make_step(n_responses: int, n_tokens: int, max_coalitions: int, seed: int) -> dict[str, np.ndarray]:
    """A synthetic step: 10-24 segments tiling each answer, one coalition plan for all."""
    rng = np.random.default_rng(seed)
    n_segments = rng.integers(10, 25, n_responses)
    offsets, coalitions = of.coalition_plan(n_segments, 8, max_coalitions, seed=seed)
    values = rng.random(len(coalitions))
    values[offsets[:-1]] = 0.0  # v(∅) = 0
    chars_per_token = 4
    token_starts = np.arange(n_tokens) * chars_per_token
    token_offsets = np.broadcast_to(
        np.stack([token_starts, token_starts + chars_per_token], axis=-1), (n_responses, n_tokens, 2)
    ).copy()
    spans = []
    for n in n_segments:
        cuts = np.linspace(0, n_tokens * chars_per_token, int(n) + 1).astype(np.int64)
        spans.append(np.stack([cuts[:-1], cuts[1:]], axis=1))
    return {
        "n_segments": n_segments,
        "coalition_offsets": offsets,
        "coalitions": coalitions,
        "values": values,
        "segment_spans": np.concatenate(spans),
        "token_offsets": token_offsets,
        "token_mask": np.ones((n_responses, n_tokens), dtype=bool),
        "answer_mask": np.ones((n_responses, n_tokens), dtype=bool),
        "advantages": rng.standard_normal(n_responses),
    }


def published_style_loop(step: dict[str, np.ndarray], reward: float = 0.5) -> list[list[float]]:
    """Per response: dict of coalition values, a scan of it per segment, then PROP weights."""
    out = []
    segment_start = 0
    for b, n in enumerate(step["n_segments"].tolist()):
        lo, hi = step["coalition_offsets"][b], step["coalition_offsets"][b + 1]
        phi = python_owen(n, step["coalitions"][lo:hi].tolist(), step["values"][lo:hi].tolist())
        spans = step["segment_spans"][segment_start : segment_start + n].tolist()
        segment_start += n
        credit = []
        for token_start, token_end in step["token_offsets"][b].tolist():
            length = token_end - token_start
            shares = [max(0, min(end, token_end) - max(start, token_start)) / length for start, end in spans]
            total = sum(shares)
            credit.append(sum(s / total * p for s, p in zip(shares, phi)) if total > 0 else 0.0)
        low, high = min(credit), max(credit)
        scaled = [0.5] * len(credit) if high == low else [(c - low) / (high - low) for c in credit]
        pbrs = [s * reward / sum(scaled) for s in scaled]
        weights = [p / sum(pbrs) for p in pbrs]
        advantage = float(step["advantages"][b])
        out.append([len(weights) * w * advantage for w in weights])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--responses", type=int, default=4096)
    parser.add_argument("--coalitions", type=int, default=96)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--slow-repeats", type=int, default=3, help="repeats of the loop and the reference")
    parser.add_argument("--out", type=Path, default=Path("bench_results"))
    args = parser.parse_args()

    step = make_step(args.responses, args.tokens, args.coalitions, seed=0)
    n_rows = len(step["coalitions"])
    print(f"step: {args.responses} responses, {n_rows} coalitions, {args.tokens} tokens each; "
          f"native core: {of.native_available()}, threads: {core.num_threads() if core is not None else 1}")

    loop, loop_out = measure("published-style loop", lambda: published_style_loop(step), repeats=args.slow_repeats, warmup=0)
    numpy_ref, ref_out = measure(
        "reference.py", lambda: reference.token_advantages_batch(**step), repeats=args.slow_repeats, warmup=0
    )
    native, native_out = measure("native core", lambda: of.token_advantages_batch(**step), repeats=args.repeats)

    # The three must agree before their times mean anything.
    np.testing.assert_allclose(native_out, ref_out, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(native_out, np.array(loop_out), rtol=1e-9, atol=1e-12)

    rows = [
        timing_row(t, loop, responses=args.responses, coalitions=n_rows, responses_per_s=args.responses / t.p50)
        for t in (loop, numpy_ref, native)
    ]
    print_table(
        "Owen + redistribution, one step (p50 seconds; speedup vs the published-style loop)",
        rows,
        ["name", "repeats", "p20", "p50", "p80", "responses_per_s", "speedup_vs_baseline"],
    )
    json_path, _ = write_results("owen_micro", rows, {"args": {k: str(v) for k, v in vars(args).items()}}, args.out)
    print(f"\nnative vs loop: {loop.p50 / native.p50:.0f}x; native vs reference: {numpy_ref.p50 / native.p50:.0f}x "
          f"(results in {json_path})")


if __name__ == "__main__":
    main()
