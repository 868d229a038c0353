#include "ospo/owen.h"

#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "ospo/math.h"
#include "ospo/parallel.h"

namespace ospo {

namespace {

[[noreturn]] void invalid_row(int64_t row, const std::string& why) {
  throw std::invalid_argument("coalitions row " + std::to_string(row) + ": " + why);
}

// Row index of each window, or -1: a dense [(n + 1) * (n + 1)] table keyed by
// start * (n + 1) + end, reused across responses by the caller.
void index_windows(int64_t n, const Window* windows, int64_t n_rows, std::vector<int64_t>& row_of) {
  row_of.assign(size_t((n + 1) * (n + 1)), -1);
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t start = windows[r].start, end = windows[r].end;
    if (start < 0 || start > end) invalid_row(r, "start must satisfy 0 <= start <= end");
    if (end > n) invalid_row(r, "end exceeds n_segments = " + std::to_string(n));
    if (start == end && start != 0) invalid_row(r, "the empty coalition must be written (0, 0)");
    int64_t& slot = row_of[size_t(start * (n + 1) + end)];
    if (slot >= 0) invalid_row(r, "repeats row " + std::to_string(slot));
    slot = r;
  }
}

void owen_windows_indexed(int64_t n, const Window* windows, const double* values, int64_t n_rows,
                          const std::vector<int64_t>& row_of, double* phi) {
  for (int64_t i = 0; i < n; ++i) phi[i] = 0.0;
  if (n == 0) return;
  const auto row = [&](int64_t start, int64_t end) { return row_of[size_t(start * (n + 1) + end)]; };
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t start = windows[r].start, end = windows[r].end;
    const double base = values[r];
    if (start == end) {  // the empty coalition grows into every singleton
      const double weight = shapley_weight(n, 0);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t grown = row(i, i + 1);
        if (grown >= 0) phi[i] += (values[grown] - base) * weight;
      }
      continue;
    }
    // A window stays contiguous only when it grows by its right or left neighbour.
    const double weight = shapley_weight(n, end - start);
    if (end < n) {
      const int64_t grown = row(start, end + 1);
      if (grown >= 0) phi[end] += (values[grown] - base) * weight;
    }
    if (start > 0) {
      const int64_t grown = row(start - 1, end);
      if (grown >= 0) phi[start - 1] += (values[grown] - base) * weight;
    }
  }
}

}  // namespace

void owen_values_windows(int64_t n_segments, const Window* windows, const double* values, int64_t n_rows,
                         double* phi) {
  std::vector<int64_t> row_of;
  index_windows(n_segments, windows, n_rows, row_of);
  owen_windows_indexed(n_segments, windows, values, n_rows, row_of, phi);
}

void owen_values_masks(int64_t n_segments, const uint8_t* masks, const double* values, int64_t n_rows, double* phi) {
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
  std::string grown;
  for (int64_t r = 0; r < n_rows; ++r) {
    grown.assign(reinterpret_cast<const char*>(masks + r * n), size_t(n));
    const double weight = shapley_weight(n, sizes[r]);
    for (int64_t i = 0; i < n; ++i) {
      if (grown[i]) continue;
      grown[i] = 1;
      const auto found = row_of.find(grown);
      if (found != row_of.end()) phi[i] += (values[found->second] - values[r]) * weight;
      grown[i] = 0;
    }
  }
}

void owen_values_batch(const int64_t* n_segments, int64_t n_responses, const int64_t* coalition_offsets,
                       const Window* windows, const double* values, const int64_t* phi_offsets, double* phi) {
  parallel_for(n_responses, 1024, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> row_of;
    for (int64_t b = begin; b < end; ++b) {
      const int64_t lo = coalition_offsets[b], n_rows = coalition_offsets[b + 1] - lo;
      try {
        index_windows(n_segments[b], windows + lo, n_rows, row_of);
      } catch (const std::invalid_argument& error) {
        throw std::invalid_argument("response " + std::to_string(b) + ", " + error.what());
      }
      owen_windows_indexed(n_segments[b], windows + lo, values + lo, n_rows, row_of, phi + phi_offsets[b]);
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
