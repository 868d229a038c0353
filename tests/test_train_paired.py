"""The paired before/after comparison of the trainer's summary."""

from __future__ import annotations

import numpy as np
import pytest

from ospo_fast.train.paired import paired_difference, paired_report, per_query_means, write_per_query


def test_a_constant_gain_has_a_tight_interval_at_the_gain():
    before = np.linspace(0.0, 0.8, 50)  # [Q] easy and hard queries: a wide spread between queries
    stats = paired_difference(before, before + 0.05)
    assert stats["mean_diff"] == pytest.approx(0.05)
    assert stats["paired_se"] == pytest.approx(0.0, abs=1e-12)
    assert stats["ci95_low"] == pytest.approx(0.05) and stats["ci95_high"] == pytest.approx(0.05)
    assert stats["improved"] == 1.0 and stats["worsened"] == 0.0


def test_the_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(0)
    before = rng.uniform(0, 1, 400)  # [Q]
    diff = rng.normal(0.02, 0.1, 400)  # [Q]
    stats = paired_difference(before, before + diff, seed=1)
    se = diff.std(ddof=1) / np.sqrt(400)
    assert stats["paired_se"] == pytest.approx(se)
    assert stats["ci95_low"] == pytest.approx(diff.mean() - 1.96 * se, abs=0.25 * se)
    assert stats["ci95_high"] == pytest.approx(diff.mean() + 1.96 * se, abs=0.25 * se)


def test_pure_noise_straddles_zero_and_is_reproducible():
    rng = np.random.default_rng(2)
    before, after = rng.uniform(0, 1, 200), rng.uniform(0, 1, 200)
    stats = paired_difference(before, after, seed=3)
    assert stats["ci95_low"] < 0 < stats["ci95_high"]
    assert paired_difference(before, after, seed=3) == stats


@pytest.mark.parametrize(("before", "after"), [(np.zeros(3), np.zeros(4)), (np.zeros(1), np.zeros(1))])
def test_misaligned_or_too_few_queries_are_refused(before, after):
    with pytest.raises(ValueError, match="before and after|at least 2"):
        paired_difference(before, after)


def test_sampled_values_average_per_query():
    values = np.array([0.0, 1.0, 0.5, 0.5, 1.0, 1.0])  # [Q * n] query-major, Q = 3, n = 2
    assert per_query_means(values, 3).tolist() == [0.5, 0.5, 1.0]
    with pytest.raises(ValueError, match="do not split"):
        per_query_means(values, 4)


def test_report_pairs_by_query_id_whatever_the_order(tmp_path):
    write_per_query(tmp_path / "a.json", ["q1", "q2", "q3"], {"greedy/x/ndcg@pool": [0.1, 0.2, 0.3]})
    write_per_query(tmp_path / "b.json", ["q3", "q1", "q2", "q9"], {"greedy/x/ndcg@pool": [0.4, 0.1, 0.3, 1.0]})
    stats = paired_report(tmp_path / "a.json", tmp_path / "b.json")["greedy/x/ndcg@pool"]
    assert stats["n_queries"] == 3
    assert stats["mean_diff"] == pytest.approx((0.0 + 0.1 + 0.1) / 3)
