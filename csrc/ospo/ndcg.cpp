#include "ospo/ndcg.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <vector>

#include "ospo/parallel.h"

namespace ospo {

namespace {

double ideal_dcg(std::vector<double>& gains, int64_t k) {
  const int64_t cut = std::min<int64_t>(k, int64_t(gains.size()));
  std::partial_sort(gains.begin(), gains.begin() + cut, gains.end(), std::greater<double>());
  double ideal = 0.0;
  for (int64_t i = 0; i < cut; ++i) ideal += gains[i] * dcg_discount(i);
  return ideal;
}

}  // namespace

void ndcg_at_k(const double* scores, const double* relevance, int64_t n_queries, int64_t n_items, int64_t k, Gain gain,
               double* out) {
  parallel_for(n_queries, 64, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> order(n_items);
    std::vector<double> gains(n_items);
    for (int64_t q = begin; q < end; ++q) {
      const double* row = scores + q * n_items;
      for (int64_t i = 0; i < n_items; ++i) gains[i] = gain_value(relevance[q * n_items + i], gain);
      std::iota(order.begin(), order.end(), int64_t(0));
      const int64_t cut = std::min(k, n_items);
      std::partial_sort(order.begin(), order.begin() + cut, order.end(),
                        [&](int64_t a, int64_t b) { return ranks_before(row[a], a, row[b], b); });
      double dcg = 0.0;
      for (int64_t i = 0; i < cut; ++i) dcg += gains[order[i]] * dcg_discount(i);
      const double ideal = ideal_dcg(gains, k);
      out[q] = ideal > 0.0 ? dcg / ideal : 0.0;
    }
  });
}

void pool_ranking_init(const double* pool_scores, const int64_t* pool_items, const double* pool_relevance, Gain gain,
                       PoolRanking& ranking) {
  const int64_t P = ranking.pool_size;
  parallel_for(ranking.n_queries, 256, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> order(P);
    for (int64_t c = begin; c < end; ++c) {
      const double* scores = pool_scores + c * P;
      const int64_t* items = pool_items + c * P;
      int64_t n_valid = 0;
      for (int64_t j = 0; j < P; ++j)
        if (items[j] >= 0) order[n_valid++] = j;
      std::sort(order.begin(), order.begin() + n_valid,
                [&](int64_t a, int64_t b) { return ranks_before(scores[a], items[a], scores[b], items[b]); });
      for (int64_t j = 0; j < P; ++j) {
        const bool real = j < n_valid;
        ranking.sorted_items[c * P + j] = real ? items[order[j]] : -1;
        ranking.sorted_scores[c * P + j] = real ? scores[order[j]] : -std::numeric_limits<double>::infinity();
        ranking.sorted_gains[c * P + j] = real ? gain_value(pool_relevance[c * P + order[j]], gain) : 0.0;
      }
      ranking.n_valid[c] = n_valid;
      std::fill(ranking.beaten_from + c * (P + 1), ranking.beaten_from + (c + 1) * (P + 1), int64_t(0));
    }
  });
}

namespace {

// First sorted position j that catalog row `item` with `score` ranks before:
// every position from there on is beaten by it (sorted order = ranking order).
inline int64_t first_beaten(double score, int64_t item, const double* sorted_scores, const int64_t* sorted_items,
                            int64_t n_valid) {
  int64_t lo = 0, hi = n_valid;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (ranks_before(score, item, sorted_scores[mid], sorted_items[mid]))
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

template <typename T>
void add_tile(const T* tile_scores, int64_t tile_length, int64_t row_stride, int64_t tile_start, PoolRanking& ranking) {
  const int64_t P = ranking.pool_size;
  parallel_for(ranking.n_queries, 8, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int64_t n_valid = ranking.n_valid[c];
      if (n_valid == 0) continue;
      const T* row = tile_scores + c * row_stride;
      const double* sorted_scores = ranking.sorted_scores + c * P;
      const int64_t* sorted_items = ranking.sorted_items + c * P;
      int64_t* beaten_from = ranking.beaten_from + c * (P + 1);
      const double lowest = sorted_scores[n_valid - 1];
      for (int64_t l = 0; l < tile_length; ++l) {
        const double score = double(row[l]);
        if (score < lowest) continue;  // ranks before no pool item
        ++beaten_from[first_beaten(score, tile_start + l, sorted_scores, sorted_items, n_valid)];
      }
      // A pool item is scored twice (gathered, and again in its tile) and the two may
      // differ in the last bit. As a corpus row it must beat exactly the positions
      // after its own, never itself, so its tile contribution is moved there.
      for (int64_t j = 0; j < n_valid; ++j) {
        const int64_t item = sorted_items[j];
        if (item < tile_start || item >= tile_start + tile_length) continue;
        const double own_score = double(row[item - tile_start]);
        if (own_score < lowest) {
          ++beaten_from[j + 1];
          continue;
        }
        const int64_t from = first_beaten(own_score, item, sorted_scores, sorted_items, n_valid);
        --beaten_from[from];
        ++beaten_from[j + 1];
      }
    }
  });
}

}  // namespace

void pool_ranking_add_tile(const float* tile_scores, int64_t tile_length, int64_t row_stride, int64_t tile_start,
                           PoolRanking& ranking) {
  add_tile(tile_scores, tile_length, row_stride, tile_start, ranking);
}

void pool_ranking_add_tile(const double* tile_scores, int64_t tile_length, int64_t row_stride, int64_t tile_start,
                           PoolRanking& ranking) {
  add_tile(tile_scores, tile_length, row_stride, tile_start, ranking);
}

void pool_ranking_ndcg(const PoolRanking& ranking, int64_t k, double* out) {
  const int64_t P = ranking.pool_size;
  parallel_for(ranking.n_queries, 256, [&](int64_t begin, int64_t end) {
    std::vector<double> gains;
    for (int64_t c = begin; c < end; ++c) {
      const int64_t n_valid = ranking.n_valid[c];
      const double* sorted_gains = ranking.sorted_gains + c * P;
      const int64_t* beaten_from = ranking.beaten_from + c * (P + 1);
      gains.assign(sorted_gains, sorted_gains + n_valid);
      const double ideal = ideal_dcg(gains, k);
      if (ideal <= 0.0) {
        out[c] = 0.0;
        continue;
      }
      double dcg = 0.0;
      int64_t rows_before = 0, position = 0;
      for (int64_t j = 0; j < n_valid; ++j) {
        rows_before += beaten_from[j];
        if (rows_before < k) dcg += sorted_gains[j] * dcg_discount(position++);
      }
      out[c] = dcg / ideal;
    }
  });
}

}  // namespace ospo
