// From segment credit to token advantages (spec §6). Twins: reference.py
// token_credit / redistribute / redistribute_batch / token_credit_batch /
// token_advantages_batch.
#pragma once

#include <cstdint>

#include "ospo/coalitions.h"
#include "ospo/math.h"

namespace ospo {

// credit[t] = sum_p W[p, t] phi[p]; W = char overlap / token length, each token's
// column normalised to sum 1. Spans are half-open [start, end) pairs.
void token_credit(const int64_t* segment_spans /*[n, 2]*/, const double* phi /*[n]*/, int64_t n_segments,
                  const int64_t* token_offsets /*[T, 2]*/, int64_t n_tokens, double* credit /*[T]*/);

// Answer tokens get n_answer * p_t * advantage (Prop, Rank, Hybrid) or
// signed_advantage(credit, mean answer credit, advantage, scale) (Signed), the others
// advantage, so the mean is the advantage. `answer_mask` may be null (every token is an
// answer token); `scale` is only read in Signed mode.
void redistribute(const double* credit /*[T]*/, const uint8_t* answer_mask /*[T] or null*/, int64_t n_tokens,
                  double advantage, Mode mode, double alpha, double scale, double* out /*[T]*/);

// Row b over its positions with token_mask set; padding gets 0. `scales` [B] is only
// read in Signed mode and may be null otherwise.
void redistribute_batch(const double* credit /*[B, T]*/, const double* advantages /*[B]*/,
                        const uint8_t* token_mask /*[B, T]*/, const uint8_t* answer_mask /*[B, T]*/, int64_t n_rows,
                        int64_t n_cols, Mode mode, double alpha, const double* scales /*[B] or null*/,
                        double* out /*[B, T]*/);

// token_credit per row; segment spans and phi are CSR by phi_offsets [B+1].
void token_credit_batch(const int64_t* segment_spans /*[S, 2]*/, const int64_t* phi_offsets /*[B+1]*/,
                        const double* phi /*[S]*/, const int64_t* token_offsets /*[B, T, 2]*/,
                        const uint8_t* token_mask /*[B, T]*/, int64_t n_rows, int64_t n_cols, double* credit /*[B, T]*/);

// One step: Owen values (`estimator`) -> token credit -> redistribution. Rows with at
// most one segment get uniform weights; with invert_negative, rows with advantage < 0
// use the negated credit. The Owen values are written to phi, CSR by the cumulative
// n_segments, so callers can show each segment's credit without a second pass.
void token_advantages_batch(const int64_t* n_segments /*[B]*/, const int64_t* coalition_offsets /*[B+1]*/,
                            const Window* windows /*[K]*/, const double* values /*[K]*/,
                            const int64_t* segment_spans /*[S, 2]*/, const int64_t* token_offsets /*[B, T, 2]*/,
                            const uint8_t* token_mask /*[B, T]*/, const uint8_t* answer_mask /*[B, T]*/,
                            const double* advantages /*[B]*/, int64_t n_rows, int64_t n_cols, Estimator estimator,
                            Mode mode, double alpha, bool invert_negative, const double* scales /*[B] or null*/,
                            double* out /*[B, T]*/, double* phi /*[S]*/);

}  // namespace ospo
