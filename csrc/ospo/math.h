// Formulas shared by the CPU loops and the CUDA kernels, so both compute the same
// numbers by construction. Without nvcc, OSPO_HD is plain `inline`.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define OSPO_HD __host__ __device__ inline
#else
#define OSPO_HD inline
#endif

namespace ospo {

// splitmix64 finaliser; reference.py `_mix64` matches it bit for bit.
OSPO_HD uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// One independent stream per (seed, stream) pair, e.g. one per response.
struct SplitMix64 {
  uint64_t state;
  OSPO_HD SplitMix64(uint64_t seed, uint64_t stream) : state(mix64(seed ^ mix64(stream + 1))) {}
  OSPO_HD uint64_t next() {
    state += 0x9E3779B97F4A7C15ULL;
    return mix64(state);
  }
  // Lemire's multiply-shift without rejection: the bias is below 2^-40 for our
  // bounds, and it keeps the C++ and Python draws identical.
  OSPO_HD uint64_t below(uint64_t bound) {
#if defined(__CUDA_ARCH__)
    return __umul64hi(next(), bound);
#else
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * bound) >> 64);
#endif
  }
};

// Shapley kernel weight 1 / (n * C(n-1, s)) = s! (n-1-s)! / n!.
OSPO_HD double shapley_weight(int64_t n_players, int64_t coalition_size) {
  return exp(lgamma(double(coalition_size) + 1.0) + lgamma(double(n_players - coalition_size)) -
             lgamma(double(n_players) + 1.0));
}

// DCG discount of the 0-based position i: 1 / log2(i + 2).
OSPO_HD double dcg_discount(int64_t position) { return 1.0 / log2(double(position) + 2.0); }

enum class Gain : int { Linear = 0, Exp = 1 };

OSPO_HD double gain_value(double relevance, Gain gain) {
  return gain == Gain::Exp ? exp2(relevance) - 1.0 : relevance;
}

// Does catalog row `item` (score `score`) rank before row `other` (score `other_score`)?
// Score descending, then the lower row first: the one tie rule of the project.
template <typename T>
OSPO_HD bool ranks_before(T score, int64_t item, T other_score, int64_t other) {
  return score > other_score || (score == other_score && item < other);
}

// Characters shared by the half-open spans [a0, a1) and [b0, b1).
OSPO_HD int64_t span_overlap(int64_t a0, int64_t a1, int64_t b0, int64_t b1) {
  const int64_t lo = a0 > b0 ? a0 : b0;
  const int64_t hi = a1 < b1 ? a1 : b1;
  return hi > lo ? hi - lo : 0;
}

enum class Mode : int { Prop = 0, Rank = 1, Hybrid = 2, Signed = 3 };

// How the Owen values read the scored coalitions (python/ospo_fast/types.py OwenEstimator).
enum class Estimator : int { Spec = 0, Stratified = 1 };

// The stratified estimator over windows, for player i of n: the marginal contributions
// of i that the plan scored, grouped by the size s of the coalition it joins (∅ -> {i};
// the window ending at i - 1 or starting at i + 1, of width s, grown by i). Each group
// is averaged, then the groups alike: Shapley's own weighting of sizes, restricted to
// the sizes the plan reached. `windows` answers row(start, end) (-1: not scored) and
// value(row); `widest` bounds the coalitions that can join (the widest row narrower
// than n). The CPU loop and the CUDA kernel both call this.
template <typename Windows>
OSPO_HD double stratified_phi(const Windows& windows, int64_t i, int64_t n, int64_t widest) {
  double total = 0.0;
  int64_t n_sizes = 0;
  const int64_t empty = windows.row(0, 0), single = windows.row(i, i + 1);
  if (empty >= 0 && single >= 0) {
    total += windows.value(single) - windows.value(empty);
    n_sizes = 1;
  }
  const int64_t largest = widest < n - 1 ? widest : n - 1;
  for (int64_t s = 1; s <= largest; ++s) {
    double sum = 0.0;
    int64_t count = 0;
    if (i >= s) {  // the window [i - s, i) grown by i on its right
      const int64_t base = windows.row(i - s, i), grown = base >= 0 ? windows.row(i - s, i + 1) : -1;
      if (grown >= 0) {
        sum += windows.value(grown) - windows.value(base);
        ++count;
      }
    }
    if (i + 1 + s <= n) {  // the window [i + 1, i + 1 + s) grown by i on its left
      const int64_t base = windows.row(i + 1, i + 1 + s), grown = base >= 0 ? windows.row(i, i + 1 + s) : -1;
      if (grown >= 0) {
        sum += windows.value(grown) - windows.value(base);
        ++count;
      }
    }
    if (count > 0) {
      total += sum / double(count);
      ++n_sizes;
    }
  }
  return n_sizes > 0 ? total / double(n_sizes) : 0.0;
}

// Largest finite double (DBL_MAX), spelled out so device code needs no <cfloat>.
constexpr double kMaxDouble = 1.7976931348623157e308;

// Spec §6.2 min-max of one credit into [0, 1]; a constant sequence becomes 0.5.
// Credits of both signs near ±DBL_MAX have a spread past float64; halving every term
// is exact and keeps it finite (the order of the credits, which RANK reads, survives).
OSPO_HD double min_max_scale(double credit, double lowest, double highest) {
  const double spread = highest - lowest;
  if (spread == 0.0) return 0.5;
  if (spread > kMaxDouble) return (0.5 * credit - 0.5 * lowest) / (0.5 * highest - 0.5 * lowest);
  return (credit - lowest) / spread;
}

// Spec §6.4 weight p_t of one answer token. `scaled` is its min-max credit,
// `scaled_sum` the sum over the answer, `average_rank` its 1-based ascending rank
// (ties averaged; only read in Rank mode), `n_answer` the answer's token count.
OSPO_HD double redistribution_weight(Mode mode, double scaled, double scaled_sum, double average_rank,
                                     int64_t n_answer, double alpha) {
  const double prop = scaled / scaled_sum;
  if (mode == Mode::Rank) return average_rank / (0.5 * double(n_answer) * double(n_answer + 1));
  if (mode == Mode::Hybrid) return alpha * prop + (1.0 - alpha) / double(n_answer);
  return prop;
}

// Signed mode's advantage of one answer token: Â plus its credit's offset from the
// answer's mean credit, in advantage units (`scale`, e.g. 1 / the group's reward std).
// Halved terms keep the offset finite for credits of both signs near ±DBL_MAX.
OSPO_HD double signed_advantage(double credit, double mean_credit, double advantage, double scale) {
  return advantage + (2.0 * scale) * (0.5 * credit - 0.5 * mean_credit);
}

}  // namespace ospo
