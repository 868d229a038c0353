#include "ospo/bf16_screen.h"

#include <cmath>
#include <cstring>

#include "ospo/parallel.h"

#if defined(OSPO_HAVE_AVX512BF16) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define OSPO_SCREEN_X86 1
#endif

namespace ospo {

namespace {

// Round to nearest even; callers reject inputs that round to infinity.
uint16_t to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float from_bf16(uint16_t half) {
  const uint32_t bits = uint32_t(half) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// One row's bf16 pairs and its norms; false when a value rounds to infinity.
struct RowNorms {
  double norm = 0.0, rounded_norm = 0.0, error_norm = 0.0;
};

bool round_row(const float* row, int64_t dim, uint32_t* pairs, int64_t pair_stride, RowNorms& norms) {
  double norm = 0.0, rounded = 0.0, error = 0.0;
  for (int64_t t = 0; 2 * t < dim; ++t) {
    uint32_t pair = 0;
    for (int64_t half = 0; half < 2 && 2 * t + half < dim; ++half) {
      const float value = row[2 * t + half];
      const uint16_t bf = to_bf16(value);
      const double approx = double(from_bf16(bf));
      if (!std::isfinite(approx)) return false;
      norm += double(value) * double(value);
      rounded += approx * approx;
      error += (double(value) - approx) * (double(value) - approx);
      pair |= uint32_t(bf) << (16 * half);
    }
    pairs[t * pair_stride] = pair;
  }
  norms = {std::sqrt(norm), std::sqrt(rounded), std::sqrt(error)};
  return true;
}

#ifdef OSPO_SCREEN_X86
// Q queries x 32 corpus rows (two 16-row groups): acc[q][g] lane i = screen score of
// query q and row 16 g + i. Pairs of dims go through one dot instruction.
template <int Q>
__attribute__((target("avx512f,avx512bf16"))) void screen_tile(const uint32_t* query_pairs /*[Q, n_pairs]*/,
                                                                int64_t n_pairs, const uint32_t* group0,
                                                                const uint32_t* group1 /*[n_pairs, 16]*/,
                                                                float* out, int64_t out_stride) {
  __m512 acc[Q][2];
  for (int q = 0; q < Q; ++q) acc[q][0] = acc[q][1] = _mm512_setzero_ps();
  for (int64_t t = 0; t < n_pairs; ++t) {
    const __m512bh rows0 = (__m512bh)_mm512_loadu_si512(group0 + t * kScreenLanes);
    const __m512bh rows1 = (__m512bh)_mm512_loadu_si512(group1 + t * kScreenLanes);
    for (int q = 0; q < Q; ++q) {
      const __m512bh query = (__m512bh)_mm512_set1_epi32(int(query_pairs[q * n_pairs + t]));
      acc[q][0] = _mm512_dpbf16_ps(acc[q][0], query, rows0);
      acc[q][1] = _mm512_dpbf16_ps(acc[q][1], query, rows1);
    }
  }
  for (int q = 0; q < Q; ++q) {
    _mm512_storeu_ps(out + q * out_stride, acc[q][0]);
    _mm512_storeu_ps(out + q * out_stride + kScreenLanes, acc[q][1]);
  }
}

// Queries x the rows [row_begin, row_end) of one cache-sized panel.
template <int Q>
void screen_panel(const uint32_t* query_pairs, const Bf16Corpus& corpus, int64_t row_begin, int64_t row_end,
                  float* out) {
  const int64_t group_size = corpus.n_pairs * kScreenLanes;
  for (int64_t row = row_begin; row < row_end; row += kScreenRows) {
    const uint32_t* group0 = corpus.pairs.data() + (row / kScreenLanes) * group_size;
    screen_tile<Q>(query_pairs, corpus.n_pairs, group0, group0 + group_size, out + row, corpus.n_padded);
  }
}

void screen_panel_any(const uint32_t* query_pairs, int64_t count, const Bf16Corpus& corpus, int64_t row_begin,
                      int64_t row_end, float* out) {
  switch (count) {
    case 1: return screen_panel<1>(query_pairs, corpus, row_begin, row_end, out);
    case 2: return screen_panel<2>(query_pairs, corpus, row_begin, row_end, out);
    case 3: return screen_panel<3>(query_pairs, corpus, row_begin, row_end, out);
    case 4: return screen_panel<4>(query_pairs, corpus, row_begin, row_end, out);
    case 5: return screen_panel<5>(query_pairs, corpus, row_begin, row_end, out);
    case 6: return screen_panel<6>(query_pairs, corpus, row_begin, row_end, out);
    case 7: return screen_panel<7>(query_pairs, corpus, row_begin, row_end, out);
    default: return screen_panel<8>(query_pairs, corpus, row_begin, row_end, out);
  }
}
#endif

}  // namespace

bool bf16_screen_supported() {
#ifdef OSPO_SCREEN_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

bool pack_bf16_corpus(const float* rows, int64_t n_rows, int64_t dim, Bf16Corpus& out) {
  out.n_rows = n_rows;
  out.dim = dim;
  out.n_pairs = (dim + 1) / 2;
  out.n_padded = (n_rows + kScreenRows - 1) / kScreenRows * kScreenRows;
  out.pairs.assign(out.n_padded * out.n_pairs, 0u);  // padding rows stay zero
  std::vector<RowNorms> norms(n_rows);
  std::vector<char> finite(n_rows, 1);
  parallel_for(n_rows, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      uint32_t* first = out.pairs.data() + (n / kScreenLanes) * out.n_pairs * kScreenLanes + n % kScreenLanes;
      finite[n] = round_row(rows + n * dim, dim, first, kScreenLanes, norms[n]);
    }
  });
  out.max_norm = out.max_rounded_norm = out.max_error_norm = 0.0;
  for (int64_t n = 0; n < n_rows; ++n) {
    if (!finite[n]) {
      out.pairs.clear();
      return false;
    }
    out.max_norm = std::fmax(out.max_norm, norms[n].norm);
    out.max_rounded_norm = std::fmax(out.max_rounded_norm, norms[n].rounded_norm);
    out.max_error_norm = std::fmax(out.max_error_norm, norms[n].error_norm);
  }
  return true;
}

bool pack_bf16_queries(const float* rows, int64_t n_rows, int64_t dim, Bf16Queries& out) {
  out.n_rows = n_rows;
  out.dim = dim;
  out.n_pairs = (dim + 1) / 2;
  out.pairs.assign(n_rows * out.n_pairs, 0u);
  out.rounded_norm.assign(n_rows, 0.0);
  out.error_norm.assign(n_rows, 0.0);
  for (int64_t q = 0; q < n_rows; ++q) {
    RowNorms norms;
    if (!round_row(rows + q * dim, dim, out.pairs.data() + q * out.n_pairs, 1, norms)) {
      out.pairs.clear();
      return false;
    }
    out.rounded_norm[q] = norms.rounded_norm;
    out.error_norm[q] = norms.error_norm;
  }
  return true;
}

double screen_bound(const Bf16Queries& queries, int64_t q, const Bf16Corpus& corpus) {
  // bf16 products are exact in fp32; each of the <= dim fp32 additions rounds by at
  // most 2^-24 of a partial sum bounded by ||q̂|| ||x̂||. Twice that covers the
  // fp64 rescoring's own error; the final factor covers this expression's rounding.
  const double accumulation = double(corpus.dim + 2) * std::ldexp(1.0, -23);
  const double rounding = queries.rounded_norm[q] * corpus.max_error_norm + queries.error_norm[q] * corpus.max_norm;
  const double bound = rounding + accumulation * queries.rounded_norm[q] * corpus.max_rounded_norm + 1e-30;
  return bound * (1.0 + std::ldexp(1.0, -20));
}

void bf16_screen_scores(const Bf16Queries& queries, int64_t first, int64_t count, const Bf16Corpus& corpus,
                        float* out) {
#ifdef OSPO_SCREEN_X86
  // A panel of corpus rows stays in L2 while every query of the block passes over it,
  // so the corpus streams from memory once per block, not once per 8 queries.
  for (int64_t row = 0; row < corpus.n_padded; row += kScreenPanelRows) {
    const int64_t row_end = row + kScreenPanelRows < corpus.n_padded ? row + kScreenPanelRows : corpus.n_padded;
    for (int64_t q = 0; q < count; q += kScreenQueries) {
      const int64_t group = count - q < kScreenQueries ? count - q : kScreenQueries;
      screen_panel_any(queries.pairs.data() + (first + q) * queries.n_pairs, group, corpus, row, row_end,
                       out + q * corpus.n_padded);
    }
  }
#else
  (void)queries, (void)first, (void)count, (void)corpus, (void)out;
#endif
}

}  // namespace ospo
