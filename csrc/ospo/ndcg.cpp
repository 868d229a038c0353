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

void pool_ranking_init_query(const double* scores, const int64_t* items, const double* relevance, Gain gain,
                             int64_t c, PoolRanking& ranking, std::vector<int64_t>& order) {
  const int64_t P = ranking.pool_size;
  order.resize(P);
  int64_t n_valid = 0;
  for (int64_t j = 0; j < P; ++j)
    if (items[j] >= 0) order[n_valid++] = j;
  std::sort(order.begin(), order.begin() + n_valid,
            [&](int64_t a, int64_t b) { return ranks_before(scores[a], items[a], scores[b], items[b]); });
  for (int64_t j = 0; j < P; ++j) {
    const bool real = j < n_valid;
    ranking.sorted_items[c * P + j] = real ? items[order[j]] : -1;
    ranking.sorted_scores[c * P + j] = real ? scores[order[j]] : -std::numeric_limits<double>::infinity();
    ranking.sorted_gains[c * P + j] = real ? gain_value(relevance[order[j]], gain) : 0.0;
  }
  ranking.n_valid[c] = n_valid;
  ranking.n_alive[c] = n_valid;
  std::fill(ranking.beaten_from + c * (P + 1), ranking.beaten_from + (c + 1) * (P + 1), int64_t(0));
}

void pool_ranking_init(const double* pool_scores, const int64_t* pool_items, const double* pool_relevance, Gain gain,
                       PoolRanking& ranking) {
  const int64_t P = ranking.pool_size;
  parallel_for(ranking.n_queries, 256, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> order(P);
    for (int64_t c = begin; c < end; ++c)
      pool_ranking_init_query(pool_scores + c * P, pool_items + c * P, pool_relevance + c * P, gain, c, ranking, order);
  });
}

namespace {

// Columns scanned between updates of the live prefix.
constexpr int64_t kBlock = 256;

// Shrinks n_alive to the pool items that still have fewer than k rows before them.
int64_t live_prefix(const int64_t* beaten_from, int64_t n_alive, int64_t k) {
  int64_t rows_before = 0;
  for (int64_t j = 0; j < n_alive; ++j) {
    rows_before += beaten_from[j];
    if (rows_before >= k) return j;
  }
  return n_alive;
}

template <typename T>
void add_tile(const T* tile_scores, int64_t tile_length, int64_t row_stride, int64_t tile_start, PoolRanking& ranking) {
  const int64_t P = ranking.pool_size;
  parallel_for(ranking.n_queries, 8, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int64_t n_valid = ranking.n_valid[c];
      const T* row = tile_scores + c * row_stride;
      const double* sorted_scores = ranking.sorted_scores + c * P;
      const int64_t* sorted_items = ranking.sorted_items + c * P;
      int64_t* beaten_from = ranking.beaten_from + c * (P + 1);
      int64_t& n_alive = ranking.n_alive[c];
      for (int64_t block = 0; block < tile_length && n_alive > 0; block += kBlock) {
        const int64_t block_end = std::min(tile_length, block + kBlock);
        const double threshold = sorted_scores[n_alive - 1];
        for (int64_t l = block; l < block_end; ++l) {
          const double score = double(row[l]);
          if (score < threshold) continue;  // ranks before no live pool item
          ++beaten_from[first_beaten(score, tile_start + l, sorted_scores, sorted_items, n_alive)];
        }
        // A pool item is scored twice (gathered, and again in its tile) and the two
        // may differ in the last bit. As a corpus row it must beat exactly the
        // positions after its own, never itself, so its contribution moves there.
        for (int64_t j = 0; j < n_valid; ++j) {
          const int64_t column = sorted_items[j] - tile_start;
          if (column < block || column >= block_end) continue;
          const double own_score = double(row[column]);
          if (own_score >= threshold)
            --beaten_from[first_beaten(own_score, sorted_items[j], sorted_scores, sorted_items, n_alive)];
          ++beaten_from[j + 1];
        }
        n_alive = live_prefix(beaten_from, n_alive, ranking.k);
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

void pool_ranking_ndcg(const PoolRanking& ranking, double* out) {
  const int64_t k = ranking.k;
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
