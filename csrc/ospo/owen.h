// Owen-Shapley values of spec §5 and the exact Shapley oracle.
// Twins: reference.py owen_values / owen_values_batch / exact_shapley.
#pragma once

#include <cstdint>

#include "ospo/coalitions.h"
#include "ospo/math.h"

namespace ospo {

// Estimator::Spec: phi[i] = sum over rows S with i not in S and S + {i} also a row of
// (v(S + {i}) - v(S)) / (n * C(n - 1, |S|)). Estimator::Stratified: those marginal
// contributions averaged per size of S, the sizes averaged alike, then every phi shifted
// by (v(N) - sum phi) / n when the full set is a row (math.h stratified_phi). Throws
// std::invalid_argument on rows that are not valid coalitions (start > end, end > n,
// empty but not (0, 0), repeats).
void owen_values_windows(int64_t n_segments, const Window* windows /*[K]*/, const double* values /*[K]*/,
                         int64_t n_rows, Estimator estimator, double* phi /*[n]*/);

// The same estimators for arbitrary subsets given as bool rows [K, n].
void owen_values_masks(int64_t n_segments, const uint8_t* masks /*[K, n]*/, const double* values /*[K]*/,
                       int64_t n_rows, Estimator estimator, double* phi /*[n]*/);

// Every response of a CSR batch; phi_offsets [B+1] is the prefix sum of n_segments.
void owen_values_batch(const int64_t* n_segments /*[B]*/, int64_t n_responses, const int64_t* coalition_offsets /*[B+1]*/,
                       const Window* windows /*[K]*/, const double* values /*[K]*/, const int64_t* phi_offsets /*[B+1]*/,
                       Estimator estimator, double* phi /*[sum n]*/);

// values[m] = v(S) for bitmask m over n players; phi [n].
void exact_shapley(const double* values /*[2^n]*/, int64_t n_players, double* phi /*[n]*/);

}  // namespace ospo
