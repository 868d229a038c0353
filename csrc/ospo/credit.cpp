#include "ospo/credit.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "ospo/checked.h"
#include "ospo/owen.h"
#include "ospo/parallel.h"

namespace ospo {

void token_credit(const int64_t* segment_spans, const double* phi, int64_t n_segments, const int64_t* token_offsets,
                  int64_t n_tokens, double* credit) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t t0 = token_offsets[2 * t], t1 = token_offsets[2 * t + 1];
    credit[t] = 0.0;
    if (t1 <= t0) continue;
    // Same operations in the same order as reference.token_credit, so equal credits
    // stay equal across the two (RANK mode is sensitive to ties).
    const double length = double(t1 - t0);
    double column_sum = 0.0;
    for (int64_t p = 0; p < n_segments; ++p)
      column_sum += double(span_overlap(segment_spans[2 * p], segment_spans[2 * p + 1], t0, t1)) / length;
    if (column_sum <= 0.0) continue;
    double total = 0.0;
    for (int64_t p = 0; p < n_segments; ++p) {
      const double weight = double(span_overlap(segment_spans[2 * p], segment_spans[2 * p + 1], t0, t1)) / length;
      total += (weight / column_sum) * phi[p];
    }
    credit[t] = total;
  }
}

namespace {

// 1-based ascending ranks of values[positions], ties averaged, written to ranks.
void average_ranks(const std::vector<double>& values, std::vector<double>& ranks, std::vector<int64_t>& order) {
  const int64_t n = int64_t(values.size());
  order.resize(n);
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return values[a] < values[b]; });
  ranks.resize(n);
  for (int64_t start = 0; start < n;) {
    int64_t end = start;
    while (end + 1 < n && values[order[end + 1]] == values[order[start]]) ++end;
    const double shared = 0.5 * double(start + end) + 1.0;
    for (int64_t i = start; i <= end; ++i) ranks[order[i]] = shared;
    start = end + 1;
  }
}

struct RedistributionScratch {
  std::vector<int64_t> answer_positions;
  std::vector<double> scaled, ranks;
  std::vector<int64_t> order;
};

// Redistributes over the positions of one row given as (credit, answer?) pairs.
template <typename CreditAt, typename IsAnswer, typename Write>
void redistribute_positions(int64_t n_positions, CreditAt credit_at, IsAnswer is_answer, double advantage, Mode mode,
                            double alpha, double scale, Write write, RedistributionScratch& scratch) {
  auto& answer = scratch.answer_positions;
  answer.clear();
  for (int64_t i = 0; i < n_positions; ++i) {
    if (is_answer(i))
      answer.push_back(i);
    else
      write(i, advantage);
  }
  const int64_t n_answer = int64_t(answer.size());
  if (n_answer == 0) return;
  if (mode == Mode::Signed) {
    double mean = 0.0;  // a sum of c / n, so that no partial sum overflows
    for (const int64_t i : answer) mean += credit_at(i) / double(n_answer);
    for (const int64_t i : answer) write(i, signed_advantage(credit_at(i), mean, advantage, scale));
    return;
  }
  double lowest = credit_at(answer[0]), highest = lowest;
  for (const int64_t i : answer) {
    lowest = std::min(lowest, credit_at(i));
    highest = std::max(highest, credit_at(i));
  }
  auto& scaled = scratch.scaled;
  scaled.resize(n_answer);
  double scaled_sum = 0.0;
  for (int64_t a = 0; a < n_answer; ++a) {
    scaled[a] = min_max_scale(credit_at(answer[a]), lowest, highest);
    scaled_sum += scaled[a];
  }
  if (mode == Mode::Rank) average_ranks(scaled, scratch.ranks, scratch.order);
  for (int64_t a = 0; a < n_answer; ++a) {
    const double rank = mode == Mode::Rank ? scratch.ranks[a] : 0.0;
    const double weight = redistribution_weight(mode, scaled[a], scaled_sum, rank, n_answer, alpha);
    write(answer[a], double(n_answer) * weight * advantage);
  }
}

}  // namespace

void redistribute(const double* credit, const uint8_t* answer_mask, int64_t n_tokens, double advantage, Mode mode,
                  double alpha, double scale, double* out) {
  RedistributionScratch scratch;
  redistribute_positions(
      n_tokens, [&](int64_t i) { return credit[i]; }, [&](int64_t i) { return answer_mask == nullptr || answer_mask[i]; },
      advantage, mode, alpha, scale, [&](int64_t i, double value) { out[i] = value; }, scratch);
}

void redistribute_batch(const double* credit, const double* advantages, const uint8_t* token_mask,
                        const uint8_t* answer_mask, int64_t n_rows, int64_t n_cols, Mode mode, double alpha,
                        const double* scales, double* out) {
  parallel_for(n_rows, 2048, [&](int64_t begin, int64_t end) {
    RedistributionScratch scratch;
    std::vector<int64_t> real;
    for (int64_t b = begin; b < end; ++b) {
      const int64_t row = b * n_cols;
      real.clear();
      for (int64_t t = 0; t < n_cols; ++t) {
        out[row + t] = 0.0;
        if (token_mask[row + t]) real.push_back(row + t);
      }
      redistribute_positions(
          int64_t(real.size()), [&](int64_t i) { return credit[real[i]]; },
          [&](int64_t i) { return answer_mask == nullptr || answer_mask[real[i]]; }, advantages[b], mode, alpha,
          scales == nullptr ? 1.0 : scales[b], [&](int64_t i, double value) { out[real[i]] = value; }, scratch);
    }
  });
}

void token_credit_batch(const int64_t* segment_spans, const int64_t* phi_offsets, const double* phi,
                        const int64_t* token_offsets, const uint8_t* token_mask, int64_t n_rows, int64_t n_cols,
                        double* credit) {
  parallel_for(n_rows, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t lo = phi_offsets[b], n_segments = phi_offsets[b + 1] - lo;
      token_credit(segment_spans + 2 * lo, phi + lo, n_segments, token_offsets + 2 * b * n_cols, n_cols,
                   credit + b * n_cols);
      for (int64_t t = 0; t < n_cols; ++t)
        if (!token_mask[b * n_cols + t]) credit[b * n_cols + t] = 0.0;
    }
  });
}

void token_advantages_batch(const int64_t* n_segments, const int64_t* coalition_offsets, const Window* windows,
                            const double* values, const int64_t* segment_spans, const int64_t* token_offsets,
                            const uint8_t* token_mask, const uint8_t* answer_mask, const double* advantages,
                            int64_t n_rows, int64_t n_cols, Estimator estimator, Mode mode, double alpha,
                            bool invert_negative, const double* scales, double* out, double* phi) {
  std::vector<int64_t> phi_offsets(n_rows + 1, 0);
  for (int64_t b = 0; b < n_rows; ++b)
    phi_offsets[b + 1] = checked_add(phi_offsets[b], n_segments[b], "the sum of n_segments");
  owen_values_batch(n_segments, n_rows, coalition_offsets, windows, values, phi_offsets.data(), estimator, phi);
  std::vector<double> credit(size_t(n_rows * n_cols));
  token_credit_batch(segment_spans, phi_offsets.data(), phi, token_offsets, token_mask, n_rows, n_cols,
                     credit.data());
  for (int64_t b = 0; b < n_rows; ++b) {
    double* row = credit.data() + b * n_cols;
    if (n_segments[b] <= 1) std::fill(row, row + n_cols, 0.0);
    if (invert_negative && advantages[b] < 0.0)
      for (int64_t t = 0; t < n_cols; ++t) row[t] = -row[t];
  }
  redistribute_batch(credit.data(), advantages, token_mask, answer_mask, n_rows, n_cols, mode, alpha, scales, out);
}

}  // namespace ospo
