// Screening scores for the fused CPU NDCG: inner products of bf16-rounded vectors,
// computed with the AVX-512 BF16 dot instruction at twice the fp32 FMA rate, each
// with a certified bound on its distance to the exact score. They decide which
// corpus rows cannot matter; the rows that might are rescored exactly (screened_ndcg).
#pragma once

#include <cstdint>
#include <vector>

namespace ospo {

// Rows per panel group: one 512-bit register holds one bf16 pair of 16 rows.
constexpr int64_t kScreenLanes = 16;
// Queries scored together by the dot kernel (its register tile is 8 x 32).
constexpr int64_t kScreenQueries = 8;
// Corpus rows per kernel tile; the corpus is zero-padded to a multiple of it.
constexpr int64_t kScreenRows = 32;
// Corpus rows per panel (256 x 384 dims of bf16 = 192 KiB, well inside L2).
constexpr int64_t kScreenPanelRows = 256;

// True when this build targets x86-64 and the CPU has AVX512-BF16.
bool bf16_screen_supported();

// Corpus rows rounded to bf16 (round to nearest even) and interleaved for the kernel.
struct Bf16Corpus {
  int64_t n_rows = 0, n_padded = 0, dim = 0, n_pairs = 0;
  std::vector<uint32_t> pairs;  // [n_padded / 16, n_pairs, 16]: dims (2t, 2t+1) of 16 rows
  double max_norm = 0.0;          // max_n ||x_n||
  double max_rounded_norm = 0.0;  // max_n ||bf16(x_n)||
  double max_error_norm = 0.0;    // max_n ||x_n - bf16(x_n)||
};

// Queries rounded to bf16, one row of pairs each.
struct Bf16Queries {
  int64_t n_rows = 0, dim = 0, n_pairs = 0;
  std::vector<uint32_t> pairs;        // [n_rows, n_pairs]
  std::vector<double> rounded_norm;   // [n_rows] ||bf16(q)||
  std::vector<double> error_norm;     // [n_rows] ||q - bf16(q)||
};

// False (nothing packed) when a value is too large for bf16 to round finitely.
bool pack_bf16_corpus(const float* rows /*[N, d]*/, int64_t n_rows, int64_t dim, Bf16Corpus& out);
bool pack_bf16_queries(const float* rows /*[C, d]*/, int64_t n_rows, int64_t dim, Bf16Queries& out);

// Bound on |screen score - exact score| of query `q` against any corpus row:
// ||q̂|| ||x - x̂|| + ||q - q̂|| ||x|| (Cauchy-Schwarz on the rounding errors) plus the
// fp32 accumulation error of the dot instruction, with slack for the bound's own rounding.
double screen_bound(const Bf16Queries& queries, int64_t q, const Bf16Corpus& corpus);

// Screen scores of queries [first, first + count) against every padded corpus row:
// out [count, corpus.n_padded] float32. Needs AVX512-BF16.
void bf16_screen_scores(const Bf16Queries& queries, int64_t first, int64_t count, const Bf16Corpus& corpus,
                        float* out);

}  // namespace ospo
