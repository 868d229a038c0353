"""Smoke tests of benchmarks/owen_throughput.py --quick on a tiny world: it runs end to end,
the published-shape loop and ospo_fast agree, the result files are written, and its device
implementation runs the trainer's step function on the Triton backend (interpreted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import owen_throughput  # noqa: E402
import perf_table  # noqa: E402
import published_loop  # noqa: E402
import workload  # noqa: E402

import ospo_fast  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench")
    argv = [
        "--quick", "--n-products", "1000", "--responses", "16", "--coalitions", "12", "--w-max", "4",
        "--loop-responses", "8", "--repeats", "1", "--threads", "1", "--implementations", "loop", "cpu",
        "--out", str(out), "--name", "smoke", "--cache-dir", str(tmp_path_factory.mktemp("cache")),
    ]
    return owen_throughput.main(argv), out


def test_quick_run_compares_the_loop_and_ospo_fast(quick_run: tuple[dict, Path]) -> None:
    result, _ = quick_run
    by_name = {row["implementation"]: row for row in result["rows"]}
    loop, cpu = by_name["loop (published shape)"], by_name["ospo_fast CPU"]
    assert loop["K"] == cpu["K"] == 16 * 12
    assert cpu["speedup_vs_loop"] == pytest.approx(loop["p50_s"] / cpu["p50_s"])
    assert "extrapolated" in loop["note"] and cpu["unique_texts"] < cpu["K"]
    assert cpu["encoder_path"] == "packed ids, onnxruntime"
    agreement = result["checks"]["loop_vs_cpu_B16_M12"]
    assert agreement["responses"] >= 7  # the timed group's rows with Â ≠ 0
    assert agreement["values_max_abs_diff"] <= 1e-5
    assert agreement["token_advantages_max_abs_diff"] <= 1e-9


def test_quick_run_checks_kernels_and_ablation(quick_run: tuple[dict, Path]) -> None:
    result, _ = quick_run
    checks = result["checks"]
    assert checks["fused_vs_faiss_pairs_over_1e-6"] == 0
    assert checks["packed_ids_equal_tokenizer"] is True
    assert checks["pad_share_batches_of_64_length_sorted"] <= checks["pad_share_batches_of_64_unsorted"]
    assert checks["native_vs_reference_advantages_max_abs_diff"] <= 1e-9
    assert checks["ablation_values_max_abs_diff"] <= 1e-5
    assert [row["variant"][:8] for row in result["ablation"]] == ["batched ", "+ dedup", "+ packed", "+ onnxru"]
    assert result["ablation"][0]["texts_encoded"] > result["ablation"][1]["texts_encoded"]
    assert {"end_to_end_cpu_vs_loop", "fused_ndcg_vs_faiss_numpy"} <= set(result["targets"])


def test_quick_run_writes_json_and_csv(quick_run: tuple[dict, Path]) -> None:
    _, out = quick_run
    saved = json.loads((out / "smoke.json").read_text())
    assert saved["machine"]["git_commit"] and saved["machine"]["versions"]["numpy"] == np.__version__
    assert saved["config"]["quick"] is True and saved["config"]["responses"] == [16]
    assert len(saved["rows"]) == 2
    header = (out / "smoke.csv").read_text().splitlines()[0].split(",")
    assert {"implementation", "p50_s", "responses_per_s", "coalitions_per_s", "stage_encode_s"} <= set(header)


def test_results_carry_what_the_readme_table_quotes(quick_run: tuple[dict, Path]) -> None:
    # Threads of each side, the CPU model and flags, the commit: the table is rebuilt from them.
    _, out = quick_run
    result = json.loads((out / "smoke.json").read_text())
    machine = result["machine"]
    assert machine["cpu_count"] and "avx512_bf16" in machine["cpu_flags"] and machine["git_commit"]
    assert isinstance(machine["screened_ndcg_kernel"], bool)
    assert all(row["threads"] for row in result["rows"] + result["kernels"])
    block = perf_table.table([result] * perf_table.MIN_RUNS)
    assert "3 separate runs" in block and machine["git_commit"] in block
    assert block.count("\n| ") == len(perf_table.FIGURES) + 1  # a header, then one line per figure
    readme = f"intro\n{perf_table.START}\nold\n{perf_table.END}\nrest"
    assert perf_table.with_table(readme, block) == f"intro\n{perf_table.START}\n{block}\n{perf_table.END}\nrest"


def test_min_segments_reaches_the_budget() -> None:
    for m, w_max in ((12, 4), (32, 8), (96, 8)):
        n = workload.min_segments(m, w_max)
        assert len(ospo_fast.contiguous_coalitions(n, w_max)) >= m > len(ospo_fast.contiguous_coalitions(n - 1, w_max))


def test_python_owen_matches_the_core() -> None:
    windows = ospo_fast.contiguous_coalitions(6, 3)
    values = np.random.default_rng(0).random(len(windows))
    values[0] = 0.0
    got = published_loop.python_owen(6, windows.tolist(), values.tolist())
    np.testing.assert_allclose(got, ospo_fast.owen_values(6, windows, values), rtol=1e-12)


def test_padded_fraction() -> None:
    lengths = np.array([2, 8, 2, 8])
    import kernel_timings

    assert kernel_timings.padded_fraction(lengths, 2, sort=False) == pytest.approx(1 - 20 / 32)
    assert kernel_timings.padded_fraction(lengths, 2, sort=True) == 0.0


def test_device_implementation_runs_the_step_function_on_triton(tmp_path: Path) -> None:
    # The GPU branch of the benchmark, on the CPU: the Triton interpreter runs its kernels.
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    argv = [
        sys.executable, str(BENCHMARKS / "owen_throughput.py"), "--quick", "--n-products", "1000", "--responses",
        "8", "--coalitions", "12", "--w-max", "4", "--repeats", "1", "--threads", "1", "--implementations", "cpu",
        "device", "--device", "cpu", "--backend", "triton", "--out", str(tmp_path), "--name", "device",
        "--cache-dir", str(tmp_path / "cache"),
    ]
    child = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert child.returncode == 0, child.stderr[-4000:]
    saved = json.loads((tmp_path / "device.json").read_text())
    names = {row["implementation"] for row in saved["rows"]}
    assert names == {"ospo_fast CPU", "ospo_fast cpu (triton)"}
    check = saved["checks"]["device_vs_cpu_B8_M12"]
    assert check["values_max_abs_diff"] <= 1e-6  # float32 kernels against the float64 core
    assert check["rows_within_1e-3"] == 1.0
