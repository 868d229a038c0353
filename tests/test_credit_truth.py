"""A small run of benchmarks/credit_truth.py on a real world and retriever: every table is
filled, the rows that are exact by construction are exact, and the plot is written."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import credit_truth  # noqa: E402


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("credit")
    argv = ["--answers", "10", "--n-products", "1000", "--variance-answers", "2", "--variance-seeds", "3",
            "--ms", "8", "32", "128", "--out", str(out), "--cache-dir", str(tmp_path_factory.mktemp("cache"))]
    return credit_truth.main(argv), out


def test_every_estimator_has_a_row(small_run: tuple[dict, Path]) -> None:
    result, _ = small_run
    rows = {row["estimator"]: row for row in result["faithfulness"]}
    assert list(rows) == list(credit_truth.ESTIMATORS)
    assert result["answers"] >= 8
    exact = rows["exact Shapley (every subset)"]
    assert exact["spearman"] == pytest.approx(1.0) and exact["rmse"] == pytest.approx(0.0, abs=1e-12)
    assert exact["rmse_minus_exact_ci"] == pytest.approx([0.0, 0.0], abs=1e-12)
    # Efficient by construction: exact Shapley and the stratified estimator sum to v(N) − v(∅) = v(N)
    # (an empty query scores 0); the spec estimator does not renormalise.
    assert exact["efficiency"] == pytest.approx(1.0)
    assert rows["stratified (windows <= 8)"]["efficiency"] == pytest.approx(1.0)
    assert rows["spec §5 (windows <= 8)"]["efficiency"] < 0.95
    # Equal budget: the subset rows score what the window plan scores.
    spec = rows["spec §5 (windows <= 8)"]["coalitions"]
    for name in ("subsets, p = ½ (equal budget)", "subsets, kernel sizes (equal budget)"):
        assert rows[name]["coalitions"] == pytest.approx(spec)
    for row in rows.values():
        assert 0.0 <= row["top1_gold"] <= 1.0 and 0.0 < row["chance"] < 1.0
        low, high = row["wrong_below_filler_ci"]
        assert low <= row["wrong_below_filler"] <= high


def test_redistribution_rows_cover_the_modes(small_run: tuple[dict, Path]) -> None:
    result, _ = small_run
    labels = {(row["estimator"], row["mode"]) for row in result["redistribution"]}
    assert ("stratified", "signed") in labels and ("spec", "prop + invert_negative") in labels
    for row in result["redistribution"]:
        assert -1.0 <= row["corr_advantage_class"] <= 1.0


def test_variance_study_and_its_plot(small_run: tuple[dict, Path]) -> None:
    result, out = small_run
    variance = result["variance"]
    assert {row["M"] for row in variance} == {8, 32, 128}
    by_m = {(row["estimator"], row["M"]): row for row in variance}
    # From 102 coalitions on, every window of a 16-phrase answer is scored: every draw is the full plan.
    for estimator in ("spec", "stratified"):
        assert by_m[(estimator, 128)]["relative_spread"] == pytest.approx(0.0, abs=1e-12)
        assert by_m[(estimator, 128)]["top1_agrees"] == 1.0
        assert by_m[(estimator, 8)]["relative_spread"] > 0
        assert by_m[(estimator, 8)]["coalitions"] == 8
    assert (out / "credit_truth_variance.png").stat().st_size > 10_000
    assert np.isfinite([row["spearman_vs_full_plan"] for row in variance]).all()
