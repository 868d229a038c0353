"""Game-theory properties of the exact oracle and the window estimator (spec §5)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import ospo_fast as of


def _game(n: int, v) -> np.ndarray:
    """values[m] = v(set of bitmask m)."""
    return np.array([v({i for i in range(n) if m >> i & 1}) for m in range(2**n)], dtype=np.float64)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 12])
def test_exact_shapley_is_efficient(n: int) -> None:
    values = np.random.default_rng(n).standard_normal(2**n)
    assert of.exact_shapley(values).sum() == pytest.approx(values[-1] - values[0], abs=1e-10)


def test_exact_shapley_symmetric_players_get_equal_shares() -> None:
    weights = [1.0, 2.0, 2.0, 0.5]
    values = _game(4, lambda s: sum(weights[i] for i in s) ** 2)  # players 1 and 2 are interchangeable
    phi = of.exact_shapley(values)
    assert phi[1] == pytest.approx(phi[2], abs=1e-12)


def test_exact_shapley_null_player_gets_zero() -> None:
    values = _game(5, lambda s: float(len(s - {3}) ** 2) + (3.0 if {0, 1} <= s else 0.0))
    assert of.exact_shapley(values)[3] == pytest.approx(0.0, abs=1e-12)


def test_exact_shapley_additive_game_returns_own_values() -> None:
    own = np.array([0.3, -1.2, 2.5, 0.0, 4.1])
    values = _game(5, lambda s: sum(own[i] for i in s) + 7.0)  # v(∅) = 7 is a constant offset
    np.testing.assert_allclose(of.exact_shapley(values), own, atol=1e-12)


def test_exact_shapley_twenty_players() -> None:
    own = np.random.default_rng(0).standard_normal(20)
    masks = np.arange(2**20)
    values = ((masks[:, None] >> np.arange(20)) & 1) @ own
    np.testing.assert_allclose(of.exact_shapley(values), own, atol=1e-9)


def _brute_force_spec_formula(n: int, rows: list[frozenset[int]], v: dict[frozenset[int], float]) -> np.ndarray:
    """Spec §5 written out literally: a sum over every (S, i) pair that was evaluated."""
    phi = np.zeros(n)
    available = set(rows)
    for i in range(n):
        for s in rows:
            if i not in s and (s | {i}) in available:
                phi[i] += (v[s | {i}] - v[s]) / (n * math.comb(n - 1, len(s)))
    return phi


@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_window_estimator_matches_brute_force_with_every_subset_available(n: int) -> None:
    rng = np.random.default_rng(n)
    subsets = [frozenset(c) for k in range(n + 1) for c in itertools.combinations(range(n), k)]
    v = {s: (0.0 if not s else float(rng.standard_normal())) for s in subsets}
    windows = of.contiguous_coalitions(n, n)
    window_sets = [frozenset(range(a, b)) for a, b in windows.tolist()]
    phi = of.owen_values(n, windows, np.array([v[s] for s in window_sets]))
    np.testing.assert_allclose(phi, _brute_force_spec_formula(n, window_sets, v), atol=1e-12)
    # With every subset evaluated, the same estimator is the exact Shapley value.
    masks = np.array([[i in s for i in range(n)] for s in subsets])
    values = np.array([v[s] for s in subsets])
    bitmask_values = np.zeros(2**n)
    for s, value in zip(subsets, values):
        bitmask_values[sum(1 << i for i in s)] = value
    np.testing.assert_allclose(of.owen_values(n, masks, values), of.exact_shapley(bitmask_values), atol=1e-12)


def test_window_estimator_uses_only_neighbouring_windows() -> None:
    # Player 2 of 5 gains from ∅, windows ending at 1 and windows starting at 3.
    windows = of.contiguous_coalitions(5, 5)
    sets = [frozenset(range(a, b)) for a, b in windows.tolist()]
    v = {s: float(len(s) ** 2) for s in sets}
    phi = of.owen_values(5, windows, np.array([v[s] for s in sets]))
    np.testing.assert_allclose(phi, _brute_force_spec_formula(5, sets, v), atol=1e-12)


def test_sampled_windows_match_brute_force() -> None:
    rng = np.random.default_rng(9)
    n = 12
    windows = of.sample_coalitions(n, 4, 20, seed=3)
    sets = [frozenset(range(a, b)) for a, b in windows.tolist()]
    v = {s: float(rng.random()) if s else 0.0 for s in sets}
    phi = of.owen_values(n, windows, np.array([v[s] for s in sets]))
    np.testing.assert_allclose(phi, _brute_force_spec_formula(n, sets, v), atol=1e-12)
