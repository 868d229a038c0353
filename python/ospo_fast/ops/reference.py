"""Plain numpy twins of every native op.

Each function here is written for clarity, not speed. It is three things at once:
the oracle the native core is tested against, the fallback when ``ospo_fast._core``
is not built, and the baseline the benchmarks divide by. Each docstring names its
C++ twin in ``csrc/``.

Conventions shared with the core (see ``docs/interfaces.md``):

* Coalitions are half-open segment windows ``(start, end)``; ∅ is ``(0, 0)``.
* Ranking is by score descending; equal scores go to the lower item index first.
* Random sampling uses splitmix64 with the bounded draw ``(x * range) >> 64``, so the
  native core and this file draw the same coalitions for the same seed.
"""

from __future__ import annotations

import math

import numpy as np

from ospo_fast.types import AdvantageScale, GainMode, OwenEstimator, RedistributionMode, SubsetSizes, check_choice

_MASK64 = (1 << 64) - 1
_MAX_DOUBLE = float(np.finfo(np.float64).max)
# Bounds that keep every sum an op forms finite (the core checks the same ones,
# csrc/bindings/checks.h): coalition values enter differences and weighted sums of
# differences, phi convex combinations, an advantage A_t = T p_t Â.
MAX_COALITION_VALUE = _MAX_DOUBLE / 4.0
MAX_PHI = 0.75 * _MAX_DOUBLE


def require_magnitude(name: str, values: np.ndarray, limit: float, why: str) -> None:
    """ValueError naming ``name`` unless every ``|x| <= limit``."""
    flat = np.abs(np.asarray(values, dtype=np.float64)).reshape(-1)
    bad = np.flatnonzero(~(flat <= limit))
    if bad.size:
        raise ValueError(
            f"{name} must satisfy |x| <= {limit:.6g} ({why}), got {np.asarray(values).reshape(-1)[bad[0]]:.6g} "
            f"at flat index {bad[0]}"
        )


def advantage_limit(n_tokens: int) -> float:
    """Largest |Â| of a row of ``n_tokens`` tokens: A_t = T p_t Â with p_t <= 1 stays finite."""
    return _MAX_DOUBLE / max(n_tokens, 1)


def require_gains_fit(name: str, relevance: np.ndarray, gain: GainMode, items: np.ndarray | None = None) -> None:
    """ValueError naming ``name`` when a row's gains reach DBL_MAX / (2 · row length):
    its DCG could overflow. Entries with ``items`` -1 are padding and not checked."""
    relevance = np.asarray(relevance, dtype=np.float64)
    if relevance.size == 0:
        return
    rows = relevance.reshape(-1, relevance.shape[-1])
    limit = _MAX_DOUBLE / (2.0 * max(rows.shape[1], 1))
    with np.errstate(over="ignore"):
        too_large = ~(np.abs(gain_of(rows, gain)) <= limit)
    if items is not None:
        too_large &= np.asarray(items).reshape(rows.shape) >= 0
    if too_large.any():
        row, column = np.argwhere(too_large)[0]
        raise ValueError(
            f"{name} row {row} holds {rows[row, column]:.6g}, whose gain is past {limit:.6g} "
            f"(DBL_MAX / (2 * {rows.shape[1]}), so that its DCG stays finite)"
        )


# ----------------------------------------------------------------------------- RNG

def _mix64(z: int) -> int:
    """splitmix64 finaliser (``ospo::mix64`` in csrc/ospo/math.h)."""
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & _MASK64
    return z ^ (z >> 31)


class SplitMix64:
    """The stream ``ospo::SplitMix64`` of csrc/ospo/math.h, bit for bit."""

    def __init__(self, seed: int, stream: int) -> None:
        self.state = _mix64((seed & _MASK64) ^ _mix64((stream + 1) & _MASK64))

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        return _mix64(self.state)

    def below(self, bound: int) -> int:
        """A draw in ``[0, bound)`` (Lemire's multiply-shift, no rejection)."""
        return (self.next() * bound) >> 64


# ----------------------------------------------------------------------- coalitions

def contiguous_coalitions(
    n_segments: int, w_max: int, *, include_empty: bool = True, include_full: bool = True
) -> np.ndarray:
    """Every contiguous window of at most ``w_max`` segments (``ospo::contiguous_coalitions``).

    Order as in spec §4: ∅, then widths ascending and left to right, then the full set
    if it is not already a window. With no segments the only coalition is ∅.
    Returns int32 ``[K, 2]``.
    """
    rows: list[tuple[int, int]] = []
    if include_empty or (include_full and n_segments == 0):
        rows.append((0, 0))
    for width in range(1, min(w_max, n_segments) + 1):
        rows.extend((start, start + width) for start in range(n_segments - width + 1))
    if include_full and n_segments > 0 and w_max < n_segments:
        rows.append((0, n_segments))
    return np.array(rows, dtype=np.int32).reshape(-1, 2)


def sample_coalitions(
    n_segments: int, w_max: int, max_coalitions: int, *, seed: int, stream: int = 0
) -> np.ndarray:
    """At most ``max_coalitions`` windows (``ospo::sample_coalitions``).

    When the candidates of :func:`contiguous_coalitions` exceed the budget, ∅ and the
    full set are kept and ``max_coalitions - 2`` others are drawn uniformly without
    replacement (a partial Fisher-Yates shuffle); the kept rows stay in candidate order.
    ``stream`` selects an independent draw for the same seed (one per response).
    """
    candidates = contiguous_coalitions(n_segments, w_max)
    if len(candidates) <= max_coalitions:
        return candidates
    middle = list(range(1, len(candidates) - 1))
    rng = SplitMix64(seed, stream)
    n_draw = max_coalitions - 2
    for i in range(n_draw):
        j = i + rng.below(len(middle) - i)
        middle[i], middle[j] = middle[j], middle[i]
    keep = [0, *sorted(middle[:n_draw]), len(candidates) - 1]
    return candidates[keep]


def _draw_half(rng: SplitMix64, n: int) -> np.ndarray:
    """Each of ``n`` segments in with chance 1/2: one bit of a 64-bit draw each."""
    bits = np.zeros(n, dtype=bool)
    for word_start in range(0, n, 64):
        word = rng.next()
        for bit in range(min(64, n - word_start)):
            bits[word_start + bit] = bool((word >> bit) & 1)
    return bits


def _kernel_size_cdf(n: int) -> list[float]:
    """Cumulative ``1 / (s (n − s))`` over sizes ``s = 1 .. n − 1``, summed left to right."""
    cumulative, total = [], 0.0
    for size in range(1, n):
        total += 1.0 / (float(size) * float(n - size))
        cumulative.append(total)
    return cumulative


def _draw_kernel(rng: SplitMix64, n: int, cumulative: list[float]) -> np.ndarray:
    """A size by inverse CDF, then that many of ``n`` segments by a partial Fisher-Yates shuffle."""
    target = float(rng.next() >> 11) * 2.0**-53 * cumulative[-1]
    size = next((s for s in range(1, n) if target < cumulative[s - 1]), n - 1)
    order = list(range(n))
    bits = np.zeros(n, dtype=bool)
    for k in range(size):
        j = k + rng.below(n - k)
        order[k], order[j] = order[j], order[k]
        bits[order[k]] = True
    return bits


def sample_subset_coalitions(
    n_segments: int, max_coalitions: int, *, seed: int, stream: int = 0, sizes: SubsetSizes = "half"
) -> np.ndarray:
    """Random non-contiguous coalitions for the ablation (``ospo::sample_subset_coalitions``).

    Row 0 is ∅ and the last row the full set. When every subset fits in the budget all
    ``2**n`` subsets are returned in bitmask order; otherwise ``max_coalitions - 2``
    distinct proper non-empty subsets are drawn, rejecting repeats: with ``sizes="half"``
    each segment is in with probability 1/2; with ``"kernel"`` a size ``s`` is drawn with
    probability ∝ ``1 / (s (n − s))`` (the Shapley kernel's mass per size, so small and
    large coalitions, where marginal contributions live, are not starved), then ``s``
    segments uniformly. Returns bool ``[K, n]``.
    """
    check_choice("sizes", sizes, SubsetSizes)
    n = n_segments
    if n == 0:
        return np.zeros((1, 0), dtype=bool)
    if n < 62 and (1 << n) <= max_coalitions:
        masks = np.arange(1 << n, dtype=np.int64)
        return ((masks[:, None] >> np.arange(n)) & 1).astype(bool)
    rng = SplitMix64(seed, stream)
    cumulative = _kernel_size_cdf(n) if sizes == "kernel" and max_coalitions > 2 else []
    seen: set[bytes] = set()
    drawn: list[np.ndarray] = []
    while len(drawn) < max_coalitions - 2:
        bits = _draw_kernel(rng, n, cumulative) if sizes == "kernel" else _draw_half(rng, n)
        if not bits.any() or bits.all() or bits.tobytes() in seen:
            continue
        seen.add(bits.tobytes())
        drawn.append(bits)
    rows = [np.zeros(n, dtype=bool), *drawn, np.ones(n, dtype=bool)]
    return np.stack(rows)


def coalition_plan(
    n_segments: np.ndarray, w_max: int, max_coalitions: int, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The windows of a whole step in CSR form (``ospo::coalition_plan``).

    Response ``b`` uses ``sample_coalitions(n_segments[b], ..., stream=b)``.
    Returns ``(coalition_offsets [B+1] int64, coalitions [K, 2] int32)``.
    """
    plans = [
        sample_coalitions(int(n), w_max, max_coalitions, seed=seed, stream=b)
        for b, n in enumerate(n_segments)
    ]
    offsets = np.zeros(len(plans) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in plans])
    coalitions = np.concatenate(plans) if plans else np.zeros((0, 2), dtype=np.int32)
    return offsets, coalitions.astype(np.int32)


# ------------------------------------------------------------------ Owen / Shapley

def shapley_weight(n_players: int, coalition_size: int) -> float:
    """``1 / (n · C(n-1, s))`` (``ospo::shapley_weight``)."""
    return 1.0 / (n_players * math.comb(n_players - 1, coalition_size))


def _window_masks(n_segments: int, coalitions: np.ndarray) -> np.ndarray:
    """bool ``[K, n]`` members of each window."""
    idx = np.arange(n_segments)
    return (idx >= coalitions[:, :1]) & (idx < coalitions[:, 1:2])


def _stratified_owen(n: int, masks: np.ndarray, value_of: dict[bytes, float]) -> np.ndarray:
    """Size-stratified Owen values (``ospo::stratified_phi`` and its masks twin).

    Each player's marginal contributions ``v(S ∪ {i}) − v(S)`` over the scored pairs,
    averaged per size ``|S|`` (in the order the sets first appear), then over the sizes
    reached; then every φ moves by ``(v(N) − v(∅)) / n − mean(φ)`` when N was scored,
    so ``Σφ = v(N) − v(∅)`` (v(∅) = 0 when ∅ was not scored).
    """
    unique = {m.tobytes(): m for m in masks}  # each set once, first appearance first
    groups: dict[tuple[int, int], list[float]] = {}
    for key, mask in unique.items():
        size = int(mask.sum())
        for i in np.flatnonzero(~mask):
            grown = mask.copy()
            grown[i] = True
            grown_value = value_of.get(grown.tobytes())
            if grown_value is not None:
                groups.setdefault((int(i), size), []).append(grown_value - value_of[key])
    phi = np.zeros(n, dtype=np.float64)
    for i in range(n):
        sizes = sorted(size for player, size in groups if player == i)
        total = 0.0
        for size in sizes:
            deltas = groups[(i, size)]
            acc = 0.0
            for delta in deltas:
                acc += delta
            total += acc / len(deltas)
        phi[i] = total / len(sizes) if sizes else 0.0
    full = value_of.get(np.ones(n, dtype=bool).tobytes())
    if n > 0 and full is not None:
        empty = value_of.get(np.zeros(n, dtype=bool).tobytes(), 0.0)
        mean = 0.0
        for value in phi:
            mean += value / n
        phi += full / n - empty / n - mean
    return phi


def owen_values(
    n_segments: int, coalitions: np.ndarray, values: np.ndarray, estimator: OwenEstimator = "spec"
) -> np.ndarray:
    """Owen values from the scored coalitions (``ospo::owen_values``).

    ``estimator="spec"`` is spec §5: ``φ_i = Σ (v(S ∪ {i}) − v(S)) / (n · C(n − 1, |S|))``
    over the rows ``S`` with ``i ∉ S`` whose union with ``i`` is also a row, without
    renormalisation, so a plan that scores few pairs shrinks φ towards 0.
    ``"stratified"`` averages those contributions per size instead (:func:`_stratified_owen`).
    ``coalitions`` is ``[K, 2]`` windows or a bool mask ``[K, n]``; ``values`` is ``[K]``.
    Returns float64 ``[n]``.
    """
    check_choice("estimator", estimator, OwenEstimator)
    require_magnitude("values", values, MAX_COALITION_VALUE, "differences of coalition values must stay finite")
    coalitions = np.asarray(coalitions)
    masks = coalitions.astype(bool) if coalitions.dtype == bool else _window_masks(n_segments, coalitions)
    value_of = {m.tobytes(): float(v) for m, v in zip(masks, np.asarray(values, dtype=np.float64))}
    if estimator == "stratified":
        return _stratified_owen(n_segments, masks, value_of)
    phi = np.zeros(n_segments, dtype=np.float64)
    for mask in masks:
        size = int(mask.sum())
        base = value_of[mask.tobytes()]
        for i in np.flatnonzero(~mask):
            grown = mask.copy()
            grown[i] = True
            grown_value = value_of.get(grown.tobytes())
            if grown_value is not None:
                phi[i] += (grown_value - base) * shapley_weight(n_segments, size)
    return phi


def owen_values_batch(
    n_segments: np.ndarray,
    coalition_offsets: np.ndarray,
    coalitions: np.ndarray,
    values: np.ndarray,
    estimator: OwenEstimator = "spec",
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`owen_values` for every response of a CSR batch (``ospo::owen_values_batch``).

    Returns ``(phi [sum n] float64, phi_offsets [B+1] int64)``.
    """
    phi_offsets = np.zeros(len(n_segments) + 1, dtype=np.int64)
    phi_offsets[1:] = np.cumsum(n_segments)
    parts = [
        owen_values(int(n), coalitions[lo:hi], values[lo:hi], estimator)
        for n, lo, hi in zip(n_segments, coalition_offsets[:-1], coalition_offsets[1:])
    ]
    phi = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)
    return phi, phi_offsets


def exact_shapley(values: np.ndarray) -> np.ndarray:
    """Exact Shapley values from all ``2**n`` coalition values (``ospo::exact_shapley``).

    ``values[m]`` is v(S) for the bitmask ``m`` (bit i = player i). Returns ``[n]``.
    """
    values = np.asarray(values, dtype=np.float64)
    require_magnitude("values", values, MAX_COALITION_VALUE, "differences of coalition values must stay finite")
    n = int(round(math.log2(len(values))))
    masks = np.arange(len(values))
    sizes = np.array([bin(m).count("1") for m in masks])
    phi = np.zeros(n, dtype=np.float64)
    for i in range(n):
        without_i = masks[(masks >> i) & 1 == 0]
        weights = np.array([shapley_weight(n, s) for s in sizes[without_i]])
        phi[i] = np.sum(weights * (values[without_i | (1 << i)] - values[without_i]))
    return phi


# ------------------------------------------------------------------ token credit

def token_credit(segment_spans: np.ndarray, token_offsets: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Spec §6.1 character-overlap projection ``Wᵀφ`` (``ospo::token_credit``).

    ``W[p, t]`` is the characters token t shares with segment p over the token's
    length, each token's column normalised to sum 1. Tokens that overlap no segment
    get 0. ``segment_spans [n, 2]`` and ``token_offsets [T, 2]`` are half-open char
    spans. Returns float64 ``[T]``.
    """
    require_magnitude("phi", phi, MAX_PHI, "token credit averages phi")
    spans = np.asarray(segment_spans, dtype=np.int64).reshape(-1, 2)
    tokens = np.asarray(token_offsets, dtype=np.int64).reshape(-1, 2)
    overlap = np.clip(
        np.minimum(spans[:, None, 1], tokens[None, :, 1]) - np.maximum(spans[:, None, 0], tokens[None, :, 0]),
        0,
        None,
    ).astype(np.float64)  # [n, T]
    token_length = np.maximum(tokens[:, 1] - tokens[:, 0], 0).astype(np.float64)  # [T]
    weights = np.divide(overlap, token_length, out=np.zeros_like(overlap), where=token_length > 0)
    column_sum = weights.sum(axis=0)  # [T]
    weights = np.divide(weights, column_sum, out=np.zeros_like(weights), where=column_sum > 0)
    # Summed segment by segment (not a BLAS matvec) so the core can match it bit for
    # bit: RANK mode is sensitive to ties in the credit.
    credit = (weights * np.asarray(phi, dtype=np.float64).reshape(-1, 1)).sum(axis=0)
    return credit if len(spans) else np.zeros(len(tokens), dtype=np.float64)


def min_max_scale(credit: np.ndarray) -> np.ndarray:
    """Spec §6.2: credit into [0, 1], a constant sequence to 0.5 (``ospo::min_max_scale``).

    Credits of both signs near ±DBL_MAX have a spread past float64; halving every term
    is exact and keeps it finite, so their order (which RANK reads) survives.
    """
    lowest, highest = credit.min(), credit.max()
    with np.errstate(over="ignore"):
        spread = highest - lowest
    if spread == 0:
        return np.full(len(credit), 0.5)
    if np.isinf(spread):
        return (0.5 * credit - 0.5 * lowest) / (0.5 * highest - 0.5 * lowest)
    return (credit - lowest) / spread


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks ascending; ties share the average of their ranks."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def redistribute(
    credit: np.ndarray,
    advantage: float,
    mode: RedistributionMode = "prop",
    *,
    answer_mask: np.ndarray | None = None,
    alpha: float = 0.7,
    credit_scale: float | None = None,
) -> np.ndarray:
    """Spec §6.2–6.4: token advantages from token credit (``ospo::redistribute``).

    Over the answer tokens: min-max to [0, 1] (a constant becomes 0.5), then
    ``p`` from prop (``o / Σo``), rank (average ranks, the highest credit ranked
    highest) or hybrid (``α·prop + (1 − α)/T_ans``), and ``A_t = T_ans · p_t · Â``.
    Mode ``signed`` instead gives ``A_t = Â + credit_scale · (c_t − mean c)``: a token
    whose phrase hurt gets less than one whose phrase did nothing, whatever the sign of
    Â (``credit_scale`` turns NDCG units into advantage units, e.g. ``1 / (σ + ε)``).
    Tokens outside ``answer_mask`` get ``Â``, so the mean is always ``Â``. PROP does not
    pass through the reward, so a zero reward keeps its gradient (spec §10).
    """
    check_choice("mode", mode, RedistributionMode)
    scale = _credit_scale(mode, credit_scale)
    credit = np.asarray(credit, dtype=np.float64)
    require_magnitude("advantage", np.float64(advantage), advantage_limit(len(credit)),
                      f"A_t = T p_t Â over T = {len(credit)} tokens must stay finite")
    answer = np.ones(len(credit), dtype=bool) if answer_mask is None else np.asarray(answer_mask, dtype=bool)
    result = np.full(len(credit), float(advantage), dtype=np.float64)
    n_answer = int(answer.sum())
    if n_answer == 0:
        return result
    if mode == "signed":
        mean = float(np.cumsum(credit[answer] / n_answer)[-1])  # left to right, as the core
        result[answer] = advantage + (2.0 * scale) * (0.5 * credit[answer] - 0.5 * mean)
        return _finite_signed(result)
    scaled = min_max_scale(credit[answer])
    prop = scaled / scaled.sum()
    if mode == "prop":
        weights = prop
    elif mode == "rank":
        ranks = _average_ranks(scaled)
        weights = ranks / ranks.sum()
    else:
        weights = alpha * prop + (1.0 - alpha) / n_answer
    result[answer] = n_answer * weights * advantage
    return result


def redistribute_batch(
    credit: np.ndarray,
    advantages: np.ndarray,
    mode: RedistributionMode = "prop",
    *,
    token_mask: np.ndarray,
    answer_mask: np.ndarray | None = None,
    alpha: float = 0.7,
    credit_scale: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`redistribute` for each row of ``[B, T]`` (``ospo::redistribute_batch``).

    Row b uses the positions where ``token_mask`` is true; padding gets 0.
    ``answer_mask`` defaults to ``token_mask``; ``credit_scale [B]`` is mode signed's.
    """
    check_choice("mode", mode, RedistributionMode)
    _credit_scale(mode, credit_scale)
    credit = np.asarray(credit, dtype=np.float64)
    if credit_scale is not None and np.asarray(credit_scale).size != credit.shape[0]:
        raise ValueError(f"credit_scale must have shape ({credit.shape[0]},), got {np.asarray(credit_scale).shape}")
    require_magnitude("advantages", advantages, advantage_limit(credit.shape[1]),
                      "A_t = T p_t Â over a row of T tokens must stay finite")
    token_mask = np.asarray(token_mask, dtype=bool)
    answer_mask = token_mask if answer_mask is None else np.asarray(answer_mask, dtype=bool)
    out = np.zeros_like(credit)
    for b in range(credit.shape[0]):
        real = token_mask[b]
        scale = None if credit_scale is None else float(np.asarray(credit_scale).reshape(-1)[b])
        out[b, real] = redistribute(
            credit[b, real], float(advantages[b]), mode, answer_mask=answer_mask[b, real], alpha=alpha,
            credit_scale=scale,
        )
    return out


def _credit_scale(mode: RedistributionMode, credit_scale: float | np.ndarray | None) -> float:
    """Mode signed's scale(s), checked: required there, refused elsewhere; 1.0 when unused."""
    if mode != "signed":
        if credit_scale is not None:
            raise ValueError("credit_scale only applies to mode 'signed'")
        return 1.0
    if credit_scale is None:
        raise ValueError("mode 'signed' needs credit_scale (advantage units per unit of credit)")
    scales = np.asarray(credit_scale, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~(np.isfinite(scales) & (scales >= 0)))
    if bad.size:
        raise ValueError(f"credit_scale must be finite and >= 0, got {scales[bad[0]]:.6g}")
    return float(scales[0]) if scales.size == 1 else 1.0


def _finite_signed(result: np.ndarray) -> np.ndarray:
    """Mode signed's advantages, or ValueError where scaled credit left float64."""
    bad = np.flatnonzero(~np.isfinite(result))
    if bad.size:
        raise ValueError(
            f"mode 'signed' gave a non-finite advantage at flat index {bad[0]}: lower credit_scale or the advantages"
        )
    return result


# ------------------------------------------------------------------ GRPO

def group_advantages(
    rewards: np.ndarray, group_size: int, eps: float = 1e-4, scale: AdvantageScale = "std"
) -> np.ndarray:
    """GRPO ``Â = (r − mean_group) / (std_group + eps)`` (``ospo::group_advantages``).

    The std is unbiased, as ``torch.std``; a group of equal rewards gets 0, even with
    ``eps = 0``. ``scale="none"`` leaves out the division (Dr. GRPO). ``rewards`` is
    ``[B]`` with consecutive groups of ``group_size``. The same operations in the same
    order as the core: each group in units of the power of two at or just below its
    max |r| (exact, and nothing overflows), the mean as an offset from the group's first reward
    (so equal rewards centre to exactly 0), sums left to right (``cumsum``).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if scale == "none":
        require_magnitude("rewards", rewards, _MAX_DOUBLE / 2.0, "centred rewards must stay finite")
    if rewards.size == 0:  # no groups (numpy cannot shape [0, group_size] for a group_size near int64)
        return rewards.copy()
    grouped = rewards.reshape(-1, group_size)
    _, exponent = np.frexp(np.abs(grouped).max(axis=1, keepdims=True))
    unit = np.ldexp(1.0, exponent - 1)  # [G, 1] the power of two at or just below max |r|
    scaled = grouped / unit
    first = scaled[:, :1]
    mean = first + np.cumsum(scaled - first, axis=1)[:, -1:] / group_size
    centred = scaled - mean
    if scale == "none":
        return (centred * unit).reshape(-1)
    with np.errstate(all="ignore"):  # eps / unit may overflow to inf: then Â is 0, as in the core
        denominator = np.sqrt(np.cumsum(centred * centred, axis=1)[:, -1:] / (group_size - 1)) + eps / unit
        return np.where(denominator > 0, centred / denominator, 0.0).reshape(-1)


# ------------------------------------------------------------------ NDCG

def gain_of(relevance: np.ndarray, gain: GainMode) -> np.ndarray:
    """``linear``: rel; ``exp``: 2^rel − 1 (``ospo::gain``)."""
    relevance = np.asarray(relevance, dtype=np.float64)
    return np.exp2(relevance) - 1.0 if gain == "exp" else relevance


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(n, dtype=np.float64) + 2.0)


def _ideal_dcg(gains: np.ndarray, k: int) -> float:
    ideal = np.sort(gains)[::-1][:k]
    return float(np.sum(ideal * _discounts(len(ideal))))


def ndcg_at_k(scores: np.ndarray, relevance: np.ndarray, k: int, gain: GainMode = "linear") -> np.ndarray:
    """NDCG@k of each row of ``scores [Q, N]`` against ``relevance [Q, N]`` (``ospo::ndcg_at_k``).

    Ranked by score descending, ties to the lower item index; IDCG from the relevance
    sorted descending and cut at k; IDCG 0 gives 0.
    """
    scores = np.asarray(scores)
    require_gains_fit("relevance", relevance, gain)
    out = np.zeros(scores.shape[0], dtype=np.float64)
    for q in range(scores.shape[0]):
        gains = gain_of(relevance[q], gain)
        order = np.lexsort((np.arange(scores.shape[1]), -scores[q].astype(np.float64)))[:k]
        ideal = _ideal_dcg(gains, k)
        if ideal > 0:
            out[q] = float(np.sum(gains[order] * _discounts(len(order)))) / ideal
    return out


def global_ranks(score_row: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Rank of each item in the whole row: ``#{i: s_i > s_j} + #{i < j: s_i == s_j}``."""
    s = score_row[items]
    above = (score_row[None, :] > s[:, None]).sum(axis=1)
    tied_before = ((score_row[None, :] == s[:, None]) & (np.arange(len(score_row))[None, :] < items[:, None])).sum(axis=1)
    return above + tied_before


def pool_ndcg(
    scores: np.ndarray, pool_items: np.ndarray, pool_relevance: np.ndarray, k: int, gain: GainMode = "linear"
) -> np.ndarray:
    """Spec §2 NDCG@pool with the global top-k rule (``ospo::pool_ndcg``).

    For query q, the pool items (``pool_items [Q, P]`` catalog rows, -1 = padding) are
    kept when their global rank in ``scores[q]`` is below k, in ranked order; DCG over
    that filtered list; IDCG from the pool's relevances sorted descending, cut at k.
    """
    scores = np.asarray(scores)
    pool_items = np.asarray(pool_items, dtype=np.int64)
    require_gains_fit("pool_relevance", pool_relevance, gain, pool_items)
    out = np.zeros(scores.shape[0], dtype=np.float64)
    for q in range(scores.shape[0]):
        valid = pool_items[q] >= 0
        items = pool_items[q][valid]
        gains = gain_of(np.asarray(pool_relevance[q])[valid], gain)
        ideal = _ideal_dcg(gains, k)
        if ideal <= 0:  # no positive ideal gain (as ndcg_at_k and the core)
            continue
        ranks = global_ranks(scores[q], items)
        kept = np.flatnonzero(ranks < k)
        kept = kept[np.argsort(ranks[kept], kind="stable")]
        out[q] = float(np.sum(gains[kept] * _discounts(len(kept)))) / ideal
    return out


def pool_ndcg_dense(
    queries: np.ndarray,
    corpus: np.ndarray,
    pool_items: np.ndarray,
    pool_relevance: np.ndarray,
    query_pool: np.ndarray,
    k: int,
    gain: GainMode = "linear",
) -> np.ndarray:
    """:func:`pool_ndcg` with inner-product scores (``ospo::pool_ndcg_dense``).

    ``queries [C, d]`` are scored against ``corpus [N, d]``; query c is judged on pool
    row ``query_pool[c]`` of ``pool_items [S, P]`` / ``pool_relevance [S, P]``. Scores
    are the float32 inputs' inner products in float64 (what the screened native kernel
    computes exactly). This twin builds the ``[C, N]`` score matrix the native version avoids.
    """
    query_pool = np.asarray(query_pool, dtype=np.int64)
    queries64 = np.asarray(queries, dtype=np.float32).astype(np.float64)
    scores = queries64 @ np.asarray(corpus, dtype=np.float32).astype(np.float64).T  # [C, N]
    return pool_ndcg(scores, np.asarray(pool_items)[query_pool], np.asarray(pool_relevance)[query_pool], k, gain)


# ------------------------------------------------------------------ fused step

def token_credit_batch(
    segment_spans: np.ndarray, phi_offsets: np.ndarray, phi: np.ndarray, token_offsets: np.ndarray, token_mask: np.ndarray
) -> np.ndarray:
    """:func:`token_credit` per row (``ospo::token_credit_batch``).

    ``segment_spans [sum n, 2]`` and ``phi [sum n]`` are CSR by ``phi_offsets [B+1]``;
    ``token_offsets [B, T, 2]``; padding (``token_mask [B, T]`` false) gets 0.
    """
    token_mask = np.asarray(token_mask, dtype=bool)
    out = np.zeros(token_mask.shape, dtype=np.float64)
    for b in range(token_mask.shape[0]):
        lo, hi = int(phi_offsets[b]), int(phi_offsets[b + 1])
        real = token_mask[b]
        out[b, real] = token_credit(segment_spans[lo:hi], token_offsets[b][real], phi[lo:hi])
    return out


def token_advantages_batch(
    n_segments: np.ndarray,
    coalition_offsets: np.ndarray,
    coalitions: np.ndarray,
    values: np.ndarray,
    segment_spans: np.ndarray,
    token_offsets: np.ndarray,
    token_mask: np.ndarray,
    answer_mask: np.ndarray,
    advantages: np.ndarray,
    mode: RedistributionMode = "prop",
    *,
    alpha: float = 0.7,
    invert_negative: bool = False,
    return_phi: bool = False,
    estimator: OwenEstimator = "spec",
    credit_scale: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """One RL step's OSPO advantages from coalition values (``ospo::token_advantages_batch``).

    Owen values (:func:`owen_values_batch` with ``estimator``) → token credit
    (:func:`token_credit_batch`) → :func:`redistribute_batch`. A response with at most
    one segment gets uniform weights (spec §6.2). With ``invert_negative``, rows with
    ``Â < 0`` redistribute the negated credit, so the tokens that helped least are pushed
    down hardest (not with mode signed, whose credit already does). ``credit_scale [B]``
    is mode signed's. Returns float64 ``[B, T]``, and with ``return_phi`` also the Owen
    values ``[sum n]``.
    """
    if mode == "signed" and invert_negative:
        raise ValueError("invert_negative does not apply to mode 'signed' (its credit already pushes down what hurt)")
    phi, phi_offsets = owen_values_batch(n_segments, coalition_offsets, coalitions, values, estimator)
    credit = token_credit_batch(segment_spans, phi_offsets, phi, token_offsets, token_mask)
    credit[np.asarray(n_segments) <= 1] = 0.0
    if invert_negative:
        credit[np.asarray(advantages) < 0] *= -1.0
    out = redistribute_batch(
        credit, advantages, mode, token_mask=token_mask, answer_mask=answer_mask, alpha=alpha, credit_scale=credit_scale
    )
    return (out, phi) if return_phi else out
