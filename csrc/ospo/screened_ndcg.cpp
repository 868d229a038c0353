#include "ospo/screened_ndcg.h"

#include <cmath>
#include <limits>
#include <vector>

#include "ospo/bf16_screen.h"
#include "ospo/ndcg.h"
#include "ospo/parallel.h"

#if defined(OSPO_HAVE_AVX512BF16) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define OSPO_SCREEN_X86 1
#endif

namespace ospo {

#ifdef OSPO_SCREEN_X86
namespace {

// Screen rows per thread: the queries screened per corpus pass share that pass and
// their band rows (siblings overlap), so blocks are as large as this budget allows,
// while every thread still gets a block. At least 64 queries share a pass even when
// that takes more memory (64 x N floats): with fewer, a large corpus would stream
// from memory for every handful of queries.
constexpr int64_t kScreenBudgetBytes = int64_t(16) << 20;
constexpr int64_t kMinBlockQueries = 64, kMaxBlockQueries = 256;

int64_t block_queries(int64_t n_padded, int64_t n_queries) {
  const int64_t fit = kScreenBudgetBytes / (n_padded * int64_t(sizeof(float)));
  const int64_t per_thread = (n_queries + default_threads() - 1) / default_threads();
  const int64_t size = fit < per_thread ? fit : per_thread;
  const int64_t floor = per_thread < kMinBlockQueries ? per_thread : kMinBlockQueries;
  return size < floor ? floor : (size > kMaxBlockQueries ? kMaxBlockQueries : size);
}

// The one definition of a score on this path: float32 inputs, fp64 products (exact)
// summed in a fixed order, so a pool item and its own corpus row score identically.
__attribute__((target("avx512f"))) double exact_dot(const float* a, const float* b, int64_t dim) {
  __m512d low = _mm512_setzero_pd(), high = _mm512_setzero_pd();
  int64_t i = 0;
  // maskz conversions: the unmasked ones trip GCC's uninitialised-value warning.
  for (; i + 16 <= dim; i += 16) {
    low = _mm512_fmadd_pd(_mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(a + i)),
                          _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(b + i)), low);
    high = _mm512_fmadd_pd(_mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(a + i + 8)),
                           _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(b + i + 8)), high);
  }
  alignas(64) double lanes[8];
  _mm512_store_pd(lanes, _mm512_add_pd(low, high));
  double sum = 0.0;
  for (double lane : lanes) sum += lane;
  for (; i < dim; ++i) sum += double(a[i]) * double(b[i]);
  return sum;
}

// Largest float not above value, and smallest not below it.
float float_at_most(double value) {
  float rounded = float(value);
  if (double(rounded) > value) rounded = std::nextafter(rounded, -std::numeric_limits<float>::infinity());
  return rounded;
}

float float_at_least(double value) {
  float rounded = float(value);
  if (double(rounded) < value) rounded = std::nextafter(rounded, std::numeric_limits<float>::infinity());
  return rounded;
}

// Per-thread scratch, sized once per call.
struct CountScratch {
  std::vector<float> candidate_scores;  // [N + 16] screen scores of the rows that may matter
  std::vector<int32_t> candidate_rows;  // [N + 16] their catalog rows
  std::vector<double> pool_scores;      // [P]
  std::vector<int64_t> order;           // [P]
};

// Moves the rows whose screen score is >= level to the front of the scratch; returns how many.
__attribute__((target("avx512f"))) int64_t gather_candidates(const float* screen, int64_t n, float level,
                                                              CountScratch& scratch) {
  float* scores = scratch.candidate_scores.data();
  int32_t* rows = scratch.candidate_rows.data();
  const __m512 threshold = _mm512_set1_ps(level);
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  int64_t count = 0;
  for (int64_t start = 0; start < n; start += 16) {
    const __mmask16 in_range = __mmask16(n - start < 16 ? (1u << (n - start)) - 1u : 0xFFFFu);
    const __m512 block = _mm512_maskz_loadu_ps(in_range, screen + start);
    const __mmask16 hits = _mm512_mask_cmp_ps_mask(in_range, block, threshold, _CMP_GE_OQ);
    if (!hits) continue;
    // Compress in registers and store whole vectors: compress-to-memory is microcoded
    // and slow on some cores. The scratch has 16 entries of slack for the overhang.
    _mm512_storeu_ps(scores + count, _mm512_maskz_compress_ps(hits, block));
    _mm512_storeu_si512(rows + count,
                        _mm512_maskz_compress_epi32(hits, _mm512_add_epi32(lane, _mm512_set1_epi32(int32_t(start)))));
    count += __builtin_popcount(hits);
  }
  return count;
}

// Candidates scoring >= level (or > level when `strictly`).
__attribute__((target("avx512f"))) int64_t count_candidates(const float* scores, int64_t n, float level,
                                                             bool strictly) {
  const __m512 threshold = _mm512_set1_ps(level);
  int64_t count = 0;
  for (int64_t start = 0; start < n; start += 16) {
    const __mmask16 in_range = __mmask16(n - start < 16 ? (1u << (n - start)) - 1u : 0xFFFFu);
    const __m512 block = _mm512_maskz_loadu_ps(in_range, scores + start);
    count += __builtin_popcount(strictly ? _mm512_mask_cmp_ps_mask(in_range, block, threshold, _CMP_GT_OQ)
                                         : _mm512_mask_cmp_ps_mask(in_range, block, threshold, _CMP_GE_OQ));
  }
  return count;
}

// A level that at least k of the n >= k candidates reach, within 1/64 of k rows of
// the highest such level (the screen bound is far wider than what is left).
__attribute__((target("avx512f"))) float highest_level_reached(const float* scores, int64_t n, int64_t k) {
  __m512 lowest = _mm512_set1_ps(scores[0]), highest = lowest;
  for (int64_t start = 0; start < n; start += 16) {
    const __mmask16 in_range = __mmask16(n - start < 16 ? (1u << (n - start)) - 1u : 0xFFFFu);
    lowest = _mm512_mask_min_ps(lowest, in_range, lowest, _mm512_maskz_loadu_ps(in_range, scores + start));
    highest = _mm512_mask_max_ps(highest, in_range, highest, _mm512_maskz_loadu_ps(in_range, scores + start));
  }
  alignas(64) float lows[16], highs[16];
  _mm512_store_ps(lows, lowest);
  _mm512_store_ps(highs, highest);
  float low = lows[0], high = highs[0];
  for (int lane = 1; lane < 16; ++lane) {
    low = lows[lane] < low ? lows[lane] : low;
    high = highs[lane] > high ? highs[lane] : high;
  }
  for (int step = 0; step < 24; ++step) {
    const float middle = low + (high - low) * 0.5f;
    if (middle <= low || middle >= high) break;
    const int64_t reached = count_candidates(scores, n, middle, false);
    if (reached < k) {
      high = middle;
    } else {
      low = middle;
      if (reached <= k + k / 64) break;
    }
  }
  return low;
}

// First position j in [0, n) where rows_at(j) >= k, or n; rows_at never decreases.
template <typename RowsAt>
int64_t first_reaching(int64_t n, int64_t k, RowsAt rows_at) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t middle = (lo + hi) / 2;
    if (rows_at(middle) >= k)
      hi = middle;
    else
      lo = middle + 1;
  }
  return lo;
}

// A (query, catalog row) pair whose screen interval straddles an undecided pool item.
struct BandPair {
  int32_t row;    // catalog row
  int32_t query;  // query within the block
  float screen;   // its screen score
};

// What the screen settles for one query: pool items [0, first_undecided) are in the
// global top-k, [first_out, n_valid) are out, and the ones between need the exact
// scores of their band rows; `before` [P] holds their certain counts until then.
struct Verdict {
  int64_t first_undecided = 0, first_out = 0;
};

// Pool items are in ranking order and the rows before them only grow along it, so
// the items in the top-k are a prefix. Certain lower and upper counts from the
// screen bracket it; the rows that could still change it are appended to `band`.
// Where one query stands: its screen row and bound, its pool, and the block's scratch.
struct QueryInput {
  const float* screen;  // [n_items] screen scores
  double bound;         // certified |screen - exact|
  const float* query;   // [d]
  const int64_t* pool_items;
  const double* pool_relevance;  // [P]
};

// `guess` is a screen level the previous (sibling) query needed; it comes back as
// this query's, for the next.
__attribute__((target("avx512f"))) Verdict screen_query(const QueryInput& input, const float* corpus, int64_t n_items,
                                                         int64_t dim, Gain gain, int64_t c, int32_t local,
                                                         PoolRanking& ranking, float& guess, CountScratch& scratch,
                                                         int64_t* before, std::vector<BandPair>& band) {
  const int64_t P = ranking.pool_size, k = ranking.k;
  const float* screen = input.screen;
  const double bound = input.bound;
  float* scores = scratch.candidate_scores.data();
  const int32_t* rows = scratch.candidate_rows.data();
  // Rows below the guess are set aside at once; a guess that leaves fewer than k rows
  // (or too few for the items that stay live) is retried from nothing.
  float gathered_from = guess;
  int64_t n_candidates = gather_candidates(screen, n_items, gathered_from, scratch);
  if (n_candidates < k && n_candidates < n_items) {
    gathered_from = -std::numeric_limits<float>::infinity();
    n_candidates = gather_candidates(screen, n_items, gathered_from, scratch);
  }
  // k rows score at least `reached` - bound exactly: every pool item strictly below is out.
  double out_below = -std::numeric_limits<double>::infinity();
  if (n_items >= k) {
    out_below = double(highest_level_reached(scores, n_candidates, k)) - bound;
    guess = float_at_most(out_below - 2.0 * bound);
  }
  // Only pool items that may stay in need their exact score; the rest sort last.
  double* pool_scores = scratch.pool_scores.data();
  for (int64_t j = 0; j < P; ++j) {
    const int64_t item = input.pool_items[j];
    pool_scores[j] = item >= 0 && double(screen[item]) + bound >= out_below
                         ? exact_dot(input.query, corpus + item * dim, dim)
                         : -std::numeric_limits<double>::infinity();
  }
  pool_ranking_init_query(pool_scores, input.pool_items, input.pool_relevance, gain, c, ranking, scratch.order);
  const int64_t n_valid = ranking.n_valid[c];
  const double* sorted_scores = ranking.sorted_scores + c * P;
  int64_t n_alive = 0;
  while (n_alive < n_valid && sorted_scores[n_alive] >= out_below) ++n_alive;
  if (n_alive == 0) return {0, 0};

  // A row may rank before item j when screen >= S_j - bound, and surely does when
  // screen > S_j + bound; the float levels round outwards.
  const auto may_reach = [&](int64_t j) { return float_at_most(sorted_scores[j] - bound); };
  const auto surely_clears = [&](int64_t j) { return float_at_least(sorted_scores[j] + bound); };
  if (gathered_from > may_reach(n_alive - 1))
    n_candidates = gather_candidates(screen, n_items, may_reach(n_alive - 1), scratch);
  const int64_t first_undecided = first_reaching(
      n_alive, k, [&](int64_t j) { return count_candidates(scores, n_candidates, may_reach(j), false); });
  const int64_t first_out = first_reaching(
      n_alive, k, [&](int64_t j) { return count_candidates(scores, n_candidates, surely_clears(j), true); });
  if (first_undecided >= first_out) return {first_out, first_out};
  for (int64_t j = first_undecided; j < first_out; ++j)
    before[j] = count_candidates(scores, n_candidates, surely_clears(j), true);
  const float band_low = may_reach(first_out - 1), band_high = surely_clears(first_undecided);
  const __m512 low_v = _mm512_set1_ps(band_low), high_v = _mm512_set1_ps(band_high);
  for (int64_t start = 0; start < n_candidates; start += 16) {
    const __mmask16 in_range =
        __mmask16(n_candidates - start < 16 ? (1u << (n_candidates - start)) - 1u : 0xFFFFu);
    const __m512 block = _mm512_maskz_loadu_ps(in_range, scores + start);
    __mmask16 hits = _mm512_mask_cmp_ps_mask(in_range, block, low_v, _CMP_GE_OQ);
    hits = _mm512_mask_cmp_ps_mask(hits, block, high_v, _CMP_LE_OQ);
    while (hits) {
      const int64_t i = start + __builtin_ctz(hits);
      hits &= __mmask16(hits - 1);
      band.push_back({rows[i], local, scores[i]});
    }
  }
  return {first_undecided, first_out};
}

// Band pairs grouped by catalog row, so each row is read from memory once per block
// however many of the block's queries (siblings, mostly) need it.
void sort_by_row(std::vector<BandPair>& band, std::vector<BandPair>& sorted, std::vector<int64_t>& bucket_starts,
                 int64_t n_items) {
  int shift = 0;
  while ((n_items >> shift) > 4096) ++shift;  // buckets of 2^shift neighbouring rows
  bucket_starts.assign((n_items >> shift) + 2, 0);
  for (const BandPair& pair : band) ++bucket_starts[(pair.row >> shift) + 1];
  for (size_t b = 1; b < bucket_starts.size(); ++b) bucket_starts[b] += bucket_starts[b - 1];
  sorted.resize(band.size());
  for (const BandPair& pair : band) sorted[bucket_starts[pair.row >> shift]++] = pair;
}

// Rescores the block's band pairs exactly and adds, to each undecided item's count,
// the band rows that rank before it and were not counted as certain.
__attribute__((target("avx512f"))) void settle_band(const std::vector<BandPair>& pairs, const float* queries,
                                                     const float* corpus, int64_t dim, int64_t first_query,
                                                     const Verdict* verdicts, const double* bounds,
                                                     const PoolRanking& ranking, int64_t* before /*[block, P]*/) {
  const int64_t P = ranking.pool_size, n_pairs = int64_t(pairs.size());
  for (int64_t i = 0; i < n_pairs; ++i) {
    if (i + 8 < n_pairs && pairs[i + 8].row != pairs[i + 7].row) {
      const char* ahead = reinterpret_cast<const char*>(corpus + int64_t(pairs[i + 8].row) * dim);
      for (int64_t byte = 0; byte < dim * int64_t(sizeof(float)); byte += 64) _mm_prefetch(ahead + byte, _MM_HINT_T0);
    }
    const BandPair& pair = pairs[i];
    const int64_t c = first_query + pair.query;
    const double exact = exact_dot(queries + c * dim, corpus + int64_t(pair.row) * dim, dim);
    const double* sorted_scores = ranking.sorted_scores + c * P;
    const int64_t* sorted_items = ranking.sorted_items + c * P;
    const Verdict& verdict = verdicts[pair.query];
    for (int64_t j = verdict.first_undecided; j < verdict.first_out; ++j)
      if (!(pair.screen > float_at_least(sorted_scores[j] + bounds[pair.query])) &&
          ranks_before(exact, int64_t(pair.row), sorted_scores[j], sorted_items[j]))
        ++before[pair.query * P + j];
  }
}

}  // namespace
#endif

bool pool_ndcg_screened(const float* queries, int64_t n_queries, const float* corpus, const Bf16Corpus& packed_corpus,
                        const int64_t* pool_items, const double* pool_relevance, int64_t pool_size, int64_t k,
                        Gain gain, double* out) {
#ifdef OSPO_SCREEN_X86
  const int64_t n_items = packed_corpus.n_rows, dim = packed_corpus.dim;
  if (!bf16_screen_supported() || n_items == 0 || packed_corpus.pairs.empty()) return false;
  Bf16Queries packed_queries;
  if (!pack_bf16_queries(queries, n_queries, dim, packed_queries)) return false;
  const int64_t C = n_queries, P = pool_size;
  std::vector<double> sorted_scores(C * P), sorted_gains(C * P);
  std::vector<int64_t> sorted_items(C * P), n_valid(C), n_alive(C), beaten_from(C * (P + 1));
  PoolRanking ranking{C,
                      P,
                      k,
                      sorted_scores.data(),
                      sorted_items.data(),
                      sorted_gains.data(),
                      n_valid.data(),
                      n_alive.data(),
                      beaten_from.data()};
  const int64_t block_size = block_queries(packed_corpus.n_padded, C);
  const int64_t n_blocks = (C + block_size - 1) / block_size;
  parallel_for(n_blocks, 1, [&](int64_t first_block, int64_t end_block) {
    std::vector<float> screen(block_size * packed_corpus.n_padded);  // [block, N padded]
    CountScratch scratch{std::vector<float>(n_items + 16), std::vector<int32_t>(n_items + 16),
                         std::vector<double>(P), std::vector<int64_t>(P)};
    std::vector<int64_t> before(block_size * P), bucket_starts;  // [block, P]
    std::vector<double> bounds(block_size);
    std::vector<Verdict> verdicts(block_size);
    std::vector<BandPair> band, band_by_row;
    for (int64_t block = first_block; block < end_block; ++block) {
      const int64_t first = block * block_size;
      const int64_t count = C - first < block_size ? C - first : block_size;
      bf16_screen_scores(packed_queries, first, count, packed_corpus, screen.data());
      band.clear();
      float guess = -std::numeric_limits<float>::infinity();
      for (int64_t q = 0; q < count; ++q) {
        const int64_t c = first + q;
        bounds[q] = screen_bound(packed_queries, c, packed_corpus);
        const QueryInput input{screen.data() + q * packed_corpus.n_padded, bounds[q], queries + c * dim,
                               pool_items + c * P, pool_relevance + c * P};
        verdicts[q] = screen_query(input, corpus, n_items, dim, gain, c, int32_t(q), ranking, guess, scratch,
                                   before.data() + q * P, band);
      }
      sort_by_row(band, band_by_row, bucket_starts, n_items);
      settle_band(band_by_row, queries, corpus, dim, first, verdicts.data(), bounds.data(), ranking, before.data());
      for (int64_t q = 0; q < count; ++q) {
        int64_t n_in = verdicts[q].first_undecided;
        while (n_in < verdicts[q].first_out && before[q * P + n_in] < k) ++n_in;
        // The pool items after the first n_in have k rows before them: that is all
        // pool_ranking_ndcg needs to know.
        if (n_in < ranking.n_valid[first + q]) ranking.beaten_from[(first + q) * (P + 1) + n_in] = k;
      }
    }
  });
  pool_ranking_ndcg(ranking, out);
  return true;
#else
  (void)queries, (void)n_queries, (void)corpus, (void)packed_corpus, (void)pool_items, (void)pool_relevance;
  (void)pool_size, (void)k, (void)gain, (void)out;
  return false;
#endif
}

}  // namespace ospo
