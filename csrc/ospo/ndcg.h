// Retrieval NDCG (spec §2) on the CPU. Ranking everywhere: score descending, then the
// lower catalog row first (math.h ranks_before). Twins: reference.py ndcg_at_k,
// pool_ndcg, pool_ndcg_dense.
#pragma once

#include <cstdint>
#include <vector>

#include "ospo/math.h"

namespace ospo {

// NDCG@k of each row of scores [Q, N] against relevance [Q, N].
void ndcg_at_k(const double* scores /*[Q, N]*/, const double* relevance /*[Q, N]*/, int64_t n_queries, int64_t n_items,
               int64_t k, Gain gain, double* out /*[Q]*/);

// A query's candidate pool sorted into ranking order, plus counts of how many
// catalog rows rank before each pool item. Built once per step, then fed corpus
// score tiles, so the [C, N] score matrix never exists.
//   sorted_items  [C, P] catalog rows in ranking order; -1 padding at the end
//   sorted_scores [C, P] their scores
//   sorted_gains  [C, P] their gains
//   n_valid       [C]    real pool items
//   n_alive       [C]    leading pool items with fewer than k rows before them so far;
//                        the others can never come back, so rows scoring below the
//                        last live item are skipped with one comparison
//   beaten_from   [C, P + 1] histogram: corpus rows whose first beaten position is j
struct PoolRanking {
  int64_t n_queries = 0, pool_size = 0, k = 1;
  double* sorted_scores = nullptr;
  int64_t* sorted_items = nullptr;
  double* sorted_gains = nullptr;
  int64_t* n_valid = nullptr;
  int64_t* n_alive = nullptr;
  int64_t* beaten_from = nullptr;
};

// Fills the sorted arrays of `ranking` from unsorted pools: pool_scores [C, P],
// pool_items [C, P] (-1 padding), pool_relevance [C, P]; zeroes the histogram.
void pool_ranking_init(const double* pool_scores, const int64_t* pool_items, const double* pool_relevance, Gain gain,
                       PoolRanking& ranking);

// pool_ranking_init for query c alone: scores, items, relevance [P]; `order` is scratch.
void pool_ranking_init_query(const double* scores, const int64_t* items, const double* relevance, Gain gain,
                             int64_t c, PoolRanking& ranking, std::vector<int64_t>& order);

// Adds one tile of corpus scores: tile_scores [C, L] (row stride `row_stride`) for
// catalog rows [tile_start, tile_start + L).
void pool_ranking_add_tile(const float* tile_scores, int64_t tile_length, int64_t row_stride, int64_t tile_start,
                           PoolRanking& ranking);
void pool_ranking_add_tile(const double* tile_scores, int64_t tile_length, int64_t row_stride, int64_t tile_start,
                           PoolRanking& ranking);

// First sorted position j that catalog row `item` with `score` ranks before: every
// position from there on is beaten by it (sorted order = ranking order).
inline int64_t first_beaten(double score, int64_t item, const double* sorted_scores, const int64_t* sorted_items,
                            int64_t n_searched) {
  int64_t lo = 0, hi = n_searched;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (ranks_before(score, item, sorted_scores[mid], sorted_items[mid]))
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

// NDCG@pool of every query once all tiles are in: pool items with fewer than k rows
// before them are kept, in ranking order; IDCG from the pool's gains cut at k.
void pool_ranking_ndcg(const PoolRanking& ranking, double* out /*[C]*/);

}  // namespace ospo
