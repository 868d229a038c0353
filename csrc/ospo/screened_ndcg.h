// Fused NDCG@pool (spec §2) for inner-product retrieval on the CPU, without the [C, N]
// score matrix and without a full-precision pass over the corpus.
//
// Scores are the exact inner products of the float32 inputs, accumulated in fp64.
// bf16 screen scores with a certified error bound (bf16_screen.h) then settle almost
// every (query, catalog row) pair:
//   1. a level that at least k rows certainly reach: pool items scoring below it are
//      out of the global top-k, whatever the rest of the ranking;
//   2. rows whose bound interval lies above or below every live pool item count
//      directly; the few whose interval straddles one are rescored exactly.
// Ties follow math.h ranks_before. Twin: reference.py pool_ndcg_exact.
#pragma once

#include <cstdint>

#include "ospo/bf16_screen.h"
#include "ospo/math.h"

namespace ospo {

// NDCG@pool of queries [C, d] against corpus [N, d] (packed once by pack_bf16_corpus):
// query c is judged on pool row c of pool_items [C, P] (unique catalog rows, -1
// padding) with pool_relevance [C, P]. Returns false, writing nothing, when the CPU
// lacks AVX512-BF16 or a query is too large for bf16; callers then use the tiled
// fp32 path (pool_ranking_add_tile). Working memory per thread: 16 MiB of screen
// rows, or 64 x N floats when that is more.
bool pool_ndcg_screened(const float* queries /*[C, d]*/, int64_t n_queries, const float* corpus /*[N, d]*/,
                        const Bf16Corpus& packed_corpus, const int64_t* pool_items, const double* pool_relevance,
                        int64_t pool_size, int64_t k, Gain gain, double* out /*[C]*/);

}  // namespace ospo
