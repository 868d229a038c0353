// Coalition plans: which contiguous windows (or random subsets) of a response's
// segments are evaluated. Windows are half-open [start, end); the empty coalition
// is (0, 0). Twins: reference.py contiguous_coalitions / sample_coalitions /
// sample_subset_coalitions / coalition_plan.
#pragma once

#include <cstdint>
#include <vector>

namespace ospo {

struct Window {
  int32_t start;
  int32_t end;
};

// Rows of contiguous_coalitions(n_segments, w_max, include_empty, include_full), without
// building them; n_segments <= kMaxWindowSegments (checked.h), so the count fits int64.
int64_t window_count(int64_t n_segments, int64_t w_max, bool include_empty, bool include_full);

// Spec §4 order: empty, widths ascending left to right, then the full set when it
// is not already a window. Throws std::invalid_argument past kMaxWindowSegments segments.
std::vector<Window> contiguous_coalitions(int64_t n_segments, int64_t w_max, bool include_empty, bool include_full);

// Keeps empty and full and draws max_coalitions - 2 of the rest without replacement
// (partial Fisher-Yates on SplitMix64(seed, stream)); kept rows stay in order.
std::vector<Window> sample_coalitions(int64_t n_segments, int64_t w_max, int64_t max_coalitions, uint64_t seed,
                                      uint64_t stream);

// How the ablation's subsets are drawn (python/ospo_fast/types.py SubsetSizes): each
// segment in with chance 1/2, or a size s in [1, n) with chance proportional to
// 1 / (s (n - s)) (the Shapley kernel's mass per size), then s segments uniformly.
enum class SubsetSizes : int { Half = 0, Kernel = 1 };

// Non-contiguous ablation: bool rows [K, n] flattened; row 0 empty, last row full, the
// max_coalitions - 2 between distinct proper non-empty subsets (repeats redrawn); every
// subset in bitmask order when 2**n fits the budget.
std::vector<uint8_t> sample_subset_coalitions(int64_t n_segments, int64_t max_coalitions, uint64_t seed,
                                              uint64_t stream, SubsetSizes sizes);

// A whole step in CSR: response b uses sample_coalitions(..., stream = b).
struct CoalitionPlan {
  std::vector<int64_t> offsets;  // [B+1]
  std::vector<Window> windows;   // [K]
};
CoalitionPlan coalition_plan(const int64_t* n_segments /*[B]*/, int64_t n_responses, int64_t w_max,
                             int64_t max_coalitions, uint64_t seed);

}  // namespace ospo
