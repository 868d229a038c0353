#include "ospo/coalitions.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <unordered_set>

#include "ospo/checked.h"
#include "ospo/math.h"
#include "ospo/parallel.h"

namespace ospo {

namespace {

void require_window_segments(int64_t n_segments) {
  if (n_segments < 0 || n_segments > kMaxWindowSegments)
    throw std::invalid_argument("n_segments must be in [0, 2**31) (windows hold int32 bounds), got " +
                                std::to_string(n_segments));
}

}  // namespace

int64_t window_count(int64_t n_segments, int64_t w_max, bool include_empty, bool include_full) {
  require_window_segments(n_segments);
  const int64_t widest = std::max<int64_t>(0, std::min(w_max, n_segments));
  // sum over widths w = 1..widest of (n - w + 1); each factor is below 2**31.
  const int64_t windows = widest * (n_segments + 1) - widest * (widest + 1) / 2;
  const bool empty = include_empty || (include_full && n_segments == 0);
  const bool full = include_full && n_segments > 0 && w_max < n_segments;
  return windows + int64_t(empty) + int64_t(full);
}

std::vector<Window> contiguous_coalitions(int64_t n_segments, int64_t w_max, bool include_empty, bool include_full) {
  std::vector<Window> rows;
  const int64_t widest = std::min(w_max, n_segments);
  rows.reserve(size_t(window_count(n_segments, w_max, include_empty, include_full)));
  if (include_empty || (include_full && n_segments == 0)) rows.push_back({0, 0});
  for (int64_t width = 1; width <= widest; ++width)
    for (int64_t start = 0; start + width <= n_segments; ++start)
      rows.push_back({int32_t(start), int32_t(start + width)});
  if (include_full && n_segments > 0 && w_max < n_segments) rows.push_back({0, int32_t(n_segments)});
  return rows;
}

std::vector<Window> sample_coalitions(int64_t n_segments, int64_t w_max, int64_t max_coalitions, uint64_t seed,
                                      uint64_t stream) {
  std::vector<Window> candidates = contiguous_coalitions(n_segments, w_max, true, true);
  const int64_t n_candidates = int64_t(candidates.size());
  if (n_candidates <= max_coalitions) return candidates;
  std::vector<int64_t> middle(n_candidates - 2);  // candidate indices other than empty and full
  std::iota(middle.begin(), middle.end(), int64_t(1));
  SplitMix64 rng(seed, stream);
  const int64_t n_draw = max_coalitions - 2;
  for (int64_t i = 0; i < n_draw; ++i) {
    const int64_t j = i + int64_t(rng.below(uint64_t(middle.size() - i)));
    std::swap(middle[i], middle[j]);
  }
  std::sort(middle.begin(), middle.begin() + n_draw);
  std::vector<Window> kept;
  kept.reserve(max_coalitions);
  kept.push_back(candidates.front());
  for (int64_t i = 0; i < n_draw; ++i) kept.push_back(candidates[middle[i]]);
  kept.push_back(candidates.back());
  return kept;
}

namespace {

// Each segment in with chance 1/2: one bit of a 64-bit draw per segment.
void draw_half(SplitMix64& rng, std::vector<uint8_t>& bits) {
  const int64_t n = int64_t(bits.size());
  for (int64_t word_start = 0; word_start < n; word_start += 64) {
    const uint64_t word = rng.next();
    for (int64_t bit = 0; bit < std::min<int64_t>(64, n - word_start); ++bit)
      bits[word_start + bit] = uint8_t((word >> bit) & 1);
  }
}

// A size by inverse CDF over `cumulative` [n - 1] (sizes 1 .. n - 1), then that many
// segments by a partial Fisher-Yates shuffle of `order` [n].
void draw_kernel(SplitMix64& rng, const std::vector<double>& cumulative, std::vector<int64_t>& order,
                 std::vector<uint8_t>& bits) {
  const int64_t n = int64_t(bits.size());
  const double target = double(rng.next() >> 11) * 0x1.0p-53 * cumulative.back();
  int64_t size = n - 1;
  for (int64_t s = 1; s < n; ++s)
    if (target < cumulative[s - 1]) {
      size = s;
      break;
    }
  std::iota(order.begin(), order.end(), int64_t(0));
  std::fill(bits.begin(), bits.end(), uint8_t(0));
  for (int64_t k = 0; k < size; ++k) {
    const int64_t j = k + int64_t(rng.below(uint64_t(n - k)));
    std::swap(order[k], order[j]);
    bits[order[k]] = 1;
  }
}

}  // namespace

std::vector<uint8_t> sample_subset_coalitions(int64_t n_segments, int64_t max_coalitions, uint64_t seed,
                                              uint64_t stream, SubsetSizes sizes) {
  const int64_t n = n_segments;
  if (n == 0) return {};
  if (n < 62 && (int64_t(1) << n) <= max_coalitions) {
    const int64_t n_rows = int64_t(1) << n;
    std::vector<uint8_t> rows(n_rows * n);
    for (int64_t mask = 0; mask < n_rows; ++mask)
      for (int64_t bit = 0; bit < n; ++bit) rows[mask * n + bit] = uint8_t((mask >> bit) & 1);
    return rows;
  }
  SplitMix64 rng(seed, stream);
  std::vector<uint8_t> rows(n, 0);  // row 0: empty
  std::unordered_set<std::string> seen;
  std::vector<uint8_t> bits(n);
  std::vector<double> cumulative;  // [n - 1] kernel mass of sizes 1 .. s, summed left to right
  std::vector<int64_t> order;      // [n]
  if (sizes == SubsetSizes::Kernel && max_coalitions > 2) {
    cumulative.resize(size_t(n - 1));
    double total = 0.0;
    for (int64_t s = 1; s < n; ++s) cumulative[s - 1] = total += 1.0 / (double(s) * double(n - s));
    order.resize(size_t(n));
  }
  while (int64_t(seen.size()) < max_coalitions - 2) {
    if (sizes == SubsetSizes::Kernel)
      draw_kernel(rng, cumulative, order, bits);
    else
      draw_half(rng, bits);
    const int64_t members = std::count(bits.begin(), bits.end(), uint8_t(1));
    if (members == 0 || members == n) continue;
    if (!seen.emplace(reinterpret_cast<const char*>(bits.data()), size_t(n)).second) continue;
    rows.insert(rows.end(), bits.begin(), bits.end());
  }
  rows.insert(rows.end(), size_t(n), uint8_t(1));  // last row: full
  return rows;
}

CoalitionPlan coalition_plan(const int64_t* n_segments, int64_t n_responses, int64_t w_max, int64_t max_coalitions,
                             uint64_t seed) {
  std::vector<std::vector<Window>> per_response(n_responses);
  parallel_for(n_responses, 512, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      per_response[b] = sample_coalitions(n_segments[b], w_max, max_coalitions, seed, uint64_t(b));
  });
  CoalitionPlan plan;
  plan.offsets.assign(n_responses + 1, 0);
  for (int64_t b = 0; b < n_responses; ++b)
    plan.offsets[b + 1] = checked_add(plan.offsets[b], int64_t(per_response[b].size()), "coalition rows of the plan");
  plan.windows.reserve(plan.offsets.back());
  for (auto& rows : per_response) plan.windows.insert(plan.windows.end(), rows.begin(), rows.end());
  return plan;
}

}  // namespace ospo
