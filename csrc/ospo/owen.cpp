#include "ospo/owen.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ospo/math.h"
#include "ospo/parallel.h"

namespace ospo {

namespace {

[[noreturn]] void invalid_row(int64_t row, const std::string& why) {
  throw std::invalid_argument("coalitions row " + std::to_string(row) + ": " + why);
}

// Row index of each window of one response, or -1. A dense [(n + 1)^2] table keyed by
// start * (n + 1) + end while that table is small next to the rows; past that, the rows'
// keys sorted for binary search, so memory follows the rows, never n^2 (a response
// with many segments and few windows, or an n near the int64 limit). Reused across
// responses by the caller.
class WindowIndex {
 public:
  // Validates the rows (throws std::invalid_argument naming the row) and indexes them.
  void build(int64_t n, const Window* windows, int64_t n_rows) {
    n_ = n;
    singletons_.clear();
    for (int64_t r = 0; r < n_rows; ++r) {
      const int64_t start = windows[r].start, end = windows[r].end;
      if (start < 0 || start > end) invalid_row(r, "start must satisfy 0 <= start <= end");
      if (end > n) invalid_row(r, "end exceeds n_segments = " + std::to_string(n));
      if (start == end && start != 0) invalid_row(r, "the empty coalition must be written (0, 0)");
    }
    // n < 2**16 keeps (n + 1)^2 far inside int64.
    dense_ = n < (int64_t(1) << 16) && (n + 1) * (n + 1) / kDenseEntriesPerRow <= n_rows + kDenseSlack;
    if (dense_) {
      table_.assign(size_t((n + 1) * (n + 1)), -1);
      for (int64_t r = 0; r < n_rows; ++r) {
        int64_t& slot = table_[size_t(windows[r].start * (n + 1) + windows[r].end)];
        if (slot >= 0) invalid_row(r, "repeats row " + std::to_string(slot));
        slot = r;
      }
    } else {
      keys_.resize(size_t(n_rows));
      for (int64_t r = 0; r < n_rows; ++r) keys_[r] = {key(windows[r].start, windows[r].end), r};
      std::sort(keys_.begin(), keys_.end());
      for (int64_t i = 1; i < n_rows; ++i)
        if (keys_[i].first == keys_[i - 1].first)
          invalid_row(keys_[i].second, "repeats row " + std::to_string(keys_[i - 1].second));
    }
    for (int64_t r = 0; r < n_rows; ++r)
      if (windows[r].end - windows[r].start == 1) singletons_.push_back({windows[r].start, r});
  }

  int64_t row(int64_t start, int64_t end) const {
    if (dense_) return table_[size_t(start * (n_ + 1) + end)];
    const auto found = std::lower_bound(keys_.begin(), keys_.end(), std::pair<uint64_t, int64_t>{key(start, end), -1});
    return found != keys_.end() && found->first == key(start, end) ? found->second : -1;
  }

  // (segment i, row of the window (i, i + 1)) for every singleton row, in row order.
  const std::vector<std::pair<int64_t, int64_t>>& singletons() const { return singletons_; }

 private:
  // Dense while the table holds at most this many entries per row (plus slack for tiny plans).
  static constexpr int64_t kDenseEntriesPerRow = 64, kDenseSlack = 16;
  static uint64_t key(int64_t start, int64_t end) { return (uint64_t(start) << 32) | uint64_t(end); }

  int64_t n_ = 0;
  bool dense_ = true;
  std::vector<int64_t> table_;                      // dense: [(n + 1)^2]
  std::vector<std::pair<uint64_t, int64_t>> keys_;  // sparse: (start << 32 | end, row), ascending
  std::vector<std::pair<int64_t, int64_t>> singletons_;
};

void owen_windows_indexed(int64_t n, const Window* windows, const double* values, int64_t n_rows,
                          const WindowIndex& index, double* phi) {
  for (int64_t i = 0; i < n; ++i) phi[i] = 0.0;
  if (n == 0) return;
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t start = windows[r].start, end = windows[r].end;
    const double base = values[r];
    if (start == end) {  // the empty coalition grows into every singleton
      const double weight = shapley_weight(n, 0);
      for (const auto& [i, grown] : index.singletons()) phi[i] += (values[grown] - base) * weight;
      continue;
    }
    // A window stays contiguous only when it grows by its right or left neighbour.
    const double weight = shapley_weight(n, end - start);
    if (end < n) {
      const int64_t grown = index.row(start, end + 1);
      if (grown >= 0) phi[end] += (values[grown] - base) * weight;
    }
    if (start > 0) {
      const int64_t grown = index.row(start - 1, end);
      if (grown >= 0) phi[start - 1] += (values[grown] - base) * weight;
    }
  }
}

// The scored windows of one response as stratified_phi (math.h) reads them.
struct IndexedWindows {
  const WindowIndex& index;
  const double* values;
  int64_t row(int64_t start, int64_t end) const { return index.row(start, end); }
  double value(int64_t r) const { return values[r]; }
};

// phi += (v(N) - v(∅)) / n - mean(phi), so sum(phi) = v(N) - v(∅), Shapley's
// efficiency; v(∅) counts as 0 when ∅ was not scored (an empty query scores 0), and
// nothing moves when N was not scored. Means, not sums, so that nothing overflows.
void shift_to_efficiency(int64_t n, int64_t full_row, int64_t empty_row, const double* values, double* phi) {
  if (n == 0 || full_row < 0) return;
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i) mean += phi[i] / double(n);
  const double empty = empty_row >= 0 ? values[empty_row] : 0.0;
  const double shift = values[full_row] / double(n) - empty / double(n) - mean;
  for (int64_t i = 0; i < n; ++i) phi[i] += shift;
}

void stratified_windows_indexed(int64_t n, const Window* windows, const double* values, int64_t n_rows,
                                const WindowIndex& index, double* phi) {
  int64_t widest = 0;  // the widest window that can still be joined
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t width = windows[r].end - windows[r].start;
    if (width < n && width > widest) widest = width;
  }
  const IndexedWindows view{index, values};
  for (int64_t i = 0; i < n; ++i) phi[i] = stratified_phi(view, i, n, widest);
  shift_to_efficiency(n, n > 0 ? index.row(0, n) : -1, index.row(0, 0), values, phi);
}

void windows_indexed(int64_t n, const Window* windows, const double* values, int64_t n_rows, const WindowIndex& index,
                     Estimator estimator, double* phi) {
  if (estimator == Estimator::Stratified)
    stratified_windows_indexed(n, windows, values, n_rows, index, phi);
  else
    owen_windows_indexed(n, windows, values, n_rows, index, phi);
}

}  // namespace

void owen_values_windows(int64_t n_segments, const Window* windows, const double* values, int64_t n_rows,
                         Estimator estimator, double* phi) {
  WindowIndex index;
  index.build(n_segments, windows, n_rows);
  windows_indexed(n_segments, windows, values, n_rows, index, estimator, phi);
}

void owen_values_masks(int64_t n_segments, const uint8_t* masks, const double* values, int64_t n_rows,
                       Estimator estimator, double* phi) {
  const int64_t n = n_segments;
  std::unordered_map<std::string, int64_t> row_of;
  row_of.reserve(size_t(n_rows) * 2);
  std::vector<int64_t> sizes(n_rows);
  for (int64_t r = 0; r < n_rows; ++r) {
    std::string key(reinterpret_cast<const char*>(masks + r * n), size_t(n));
    int64_t members = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (key[i] > 1) invalid_row(r, "mask entries must be 0 or 1");
      members += key[i];
    }
    sizes[r] = members;
    const auto inserted = row_of.emplace(std::move(key), r);
    if (!inserted.second) invalid_row(r, "repeats row " + std::to_string(inserted.first->second));
  }
  for (int64_t i = 0; i < n; ++i) phi[i] = 0.0;
  // Stratified: each marginal contribution as (player, size of S, row order) -> delta,
  // grouped by player and size in the order the rows give them.
  struct Contribution {
    int64_t player, size, order;
    double delta;
  };
  std::vector<Contribution> contributions;
  std::string grown;
  for (int64_t r = 0; r < n_rows; ++r) {
    grown.assign(reinterpret_cast<const char*>(masks + r * n), size_t(n));
    const double weight = shapley_weight(n, sizes[r]);
    for (int64_t i = 0; i < n; ++i) {
      if (grown[i]) continue;
      grown[i] = 1;
      const auto found = row_of.find(grown);
      if (found != row_of.end()) {
        if (estimator == Estimator::Stratified)
          contributions.push_back({i, sizes[r], int64_t(contributions.size()), values[found->second] - values[r]});
        else
          phi[i] += (values[found->second] - values[r]) * weight;
      }
      grown[i] = 0;
    }
  }
  if (estimator != Estimator::Stratified) return;
  std::sort(contributions.begin(), contributions.end(), [](const Contribution& a, const Contribution& b) {
    return a.player != b.player ? a.player < b.player : a.size != b.size ? a.size < b.size : a.order < b.order;
  });
  for (size_t first = 0; first < contributions.size();) {
    const int64_t player = contributions[first].player;
    double total = 0.0;
    int64_t n_sizes = 0;
    while (first < contributions.size() && contributions[first].player == player) {
      const int64_t size = contributions[first].size;
      double sum = 0.0;
      int64_t count = 0;
      for (; first < contributions.size() && contributions[first].player == player &&
             contributions[first].size == size;
           ++first, ++count)
        sum += contributions[first].delta;
      total += sum / double(count);
      ++n_sizes;
    }
    phi[player] = total / double(n_sizes);
  }
  const auto found_full = row_of.find(std::string(size_t(n), char(1)));
  const auto found_empty = row_of.find(std::string(size_t(n), char(0)));
  shift_to_efficiency(n, found_full == row_of.end() ? -1 : found_full->second,
                      found_empty == row_of.end() ? -1 : found_empty->second, values, phi);
}

void owen_values_batch(const int64_t* n_segments, int64_t n_responses, const int64_t* coalition_offsets,
                       const Window* windows, const double* values, const int64_t* phi_offsets, Estimator estimator,
                       double* phi) {
  parallel_for(n_responses, 1024, [&](int64_t begin, int64_t end) {
    WindowIndex index;
    for (int64_t b = begin; b < end; ++b) {
      const int64_t lo = coalition_offsets[b], n_rows = coalition_offsets[b + 1] - lo;
      try {
        index.build(n_segments[b], windows + lo, n_rows);
      } catch (const std::invalid_argument& error) {
        throw std::invalid_argument("response " + std::to_string(b) + ", " + error.what());
      }
      windows_indexed(n_segments[b], windows + lo, values + lo, n_rows, index, estimator, phi + phi_offsets[b]);
    }
  });
}

void exact_shapley(const double* values, int64_t n_players, double* phi) {
  const int64_t n = n_players;
  std::vector<double> weight_of_size(size_t(n > 0 ? n : 1));
  for (int64_t s = 0; s < n; ++s) weight_of_size[s] = shapley_weight(n, s);
  const uint64_t n_masks = uint64_t(1) << n;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t bit = uint64_t(1) << i;
    double total = 0.0;
    for (uint64_t mask = 0; mask < n_masks; ++mask) {
      if (mask & bit) continue;
      total += weight_of_size[__builtin_popcountll(mask)] * (values[mask | bit] - values[mask]);
    }
    phi[i] = total;
  }
}

}  // namespace ospo
