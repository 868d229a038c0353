// One launch per RL step: Owen values (spec or stratified) -> token credit -> token
// advantages (prop, rank, hybrid or signed), one block per response. Twins: reference.token_advantages_batch (the oracle),
// kernels/triton/owen_advantages.py, ospo::token_advantages_batch (CPU).
//
// The formulas are ospo/math.h's, in float64: min-max scaling amplifies rounding
// when credits are close, and RANK must see the reference's ties, so the token
// credit follows the reference's order (overlap / length, then the column
// normalisation): a token inside one segment gets exactly that segment's phi.
// Coalitions follow the reference's set semantics: any empty window is the empty
// set, and a set listed twice is looked up at its last row.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "ospo/coalitions.h"
#include "ospo/cuda_ops.h"
#include "ospo/math.h"

namespace ospo::cuda {

namespace {

constexpr int kThreads = 256;  // a multiple of 32, at most 1024
constexpr int kWarps = kThreads / 32;

struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct MinOp {
  __device__ double operator()(double a, double b) const { return fmin(a, b); }
};
struct MaxOp {
  __device__ double operator()(double a, double b) const { return fmax(a, b); }
};

// Reduction over the block in a fixed order (deterministic); every thread gets the
// result. `partial` is shared scratch of kWarps entries.
template <typename T, typename Op>
__device__ T block_reduce(T value, T identity, Op op, T* partial) {
  for (int offset = 16; offset > 0; offset >>= 1) value = op(value, __shfl_down_sync(0xffffffffu, value, offset));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  value = threadIdx.x < kWarps ? partial[threadIdx.x] : identity;
  if (warp == 0)
    for (int offset = 16; offset > 0; offset >>= 1) value = op(value, __shfl_down_sync(0xffffffffu, value, offset));
  if (threadIdx.x == 0) partial[0] = value;
  __syncthreads();
  const T result = partial[0];
  __syncthreads();  // partial is reused by the next reduction
  return result;
}

__host__ __device__ bool same_set(const Window& a, int64_t start, int64_t end) {
  const bool empty = start == end;
  return empty ? a.start == a.end : (a.start == start && a.end == end);
}

// The last row holding the set [start, end), or -1.
__host__ __device__ int64_t last_row_of(const Window* rows, int64_t n_rows, int64_t start, int64_t end) {
  for (int64_t r = n_rows - 1; r >= 0; --r)
    if (same_set(rows[r], start, end)) return r;
  return -1;
}

// The rows of one response as math.h stratified_phi reads them, with the reference's
// set semantics (last_row_of).
struct DeviceWindows {
  const Window* rows;
  const float* values;
  int64_t n_rows;
  __host__ __device__ int64_t row(int64_t start, int64_t end) const { return last_row_of(rows, n_rows, start, end); }
  __host__ __device__ double value(int64_t r) const { return double(values[r]); }
};

// Spec §5 for segment i, accumulated over the rows in order as the reference does.
__device__ double owen_value(const Window* rows, const float* values, int64_t n_rows, int64_t n, int64_t i) {
  double phi = 0.0;
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t start = rows[r].start, end = rows[r].end;
    int64_t grown_start, grown_end;
    if (start == end) {
      grown_start = i;
      grown_end = i + 1;
    } else if (end == i) {
      grown_start = start;
      grown_end = end + 1;
    } else if (start == i + 1) {
      grown_start = i;
      grown_end = end;
    } else {
      continue;  // i is inside the window or not next to it: the union is not a window
    }
    const int64_t grown = last_row_of(rows, n_rows, grown_start, grown_end);
    if (grown < 0) continue;
    const double base = values[last_row_of(rows, n_rows, start, end)];
    phi += (double(values[grown]) - base) * shapley_weight(n, end - start);
  }
  return phi;
}

// Spec §6.1 W^T phi of one token, in the reference's order of operations.
__device__ double token_credit(const int64_t* spans, const double* phi, int64_t n, int64_t t0, int64_t t1) {
  if (t1 <= t0) return 0.0;
  const double length = double(t1 - t0);
  double column = 0.0;
  for (int64_t p = 0; p < n; ++p) column += double(span_overlap(spans[2 * p], spans[2 * p + 1], t0, t1)) / length;
  if (column <= 0.0) return 0.0;
  double credit = 0.0;
  for (int64_t p = 0; p < n; ++p)
    credit += double(span_overlap(spans[2 * p], spans[2 * p + 1], t0, t1)) / length / column * phi[p];
  return credit;
}

__global__ void __launch_bounds__(kThreads) owen_advantages_kernel(
    // inputs
    const int64_t* __restrict__ n_segments,         // [B]
    const int64_t* __restrict__ coalition_offsets,  // [B+1]
    const Window* __restrict__ windows,             // [K]
    const float* __restrict__ values,               // [K]
    const int64_t* __restrict__ phi_offsets,        // [B+1]
    const int64_t* __restrict__ segment_spans,      // [S, 2]
    const int64_t* __restrict__ token_offsets,      // [B, T, 2]
    const uint8_t* __restrict__ token_mask,         // [B, T]
    const uint8_t* __restrict__ answer_mask,        // [B, T]
    const float* __restrict__ advantages,           // [B]
    const float* __restrict__ credit_scales,        // [B] (Signed mode; null otherwise)
    int64_t n_tokens, Estimator estimator, Mode mode, double alpha, bool invert_negative,
    // outputs
    double* __restrict__ phi,      // [S]
    double* __restrict__ scratch,  // [B, T]
    float* __restrict__ out) {     // [B, T]
  __shared__ double partial_f64[kWarps];
  __shared__ long long partial_i64[kWarps];
  const int64_t b = blockIdx.x;
  const int64_t n = n_segments[b];
  const int64_t row_lo = coalition_offsets[b], n_rows = coalition_offsets[b + 1] - row_lo;
  double* phi_b = phi + phi_offsets[b];
  const int64_t* spans_b = segment_spans + 2 * phi_offsets[b];
  const double advantage = advantages[b];
  const int64_t row = b * n_tokens;

  const Window* rows_b = windows + row_lo;
  const float* values_b = values + row_lo;
  if (estimator == Estimator::Stratified) {
    int64_t widest = 0;  // the widest row that can still be joined
    for (int64_t r = 0; r < n_rows; ++r) {
      const int64_t width = rows_b[r].end - rows_b[r].start;
      if (width < n && width > widest) widest = width;
    }
    const DeviceWindows view{rows_b, values_b, n_rows};
    double share = 0.0;  // this thread's part of mean(phi)
    for (int64_t i = threadIdx.x; i < n; i += kThreads) {
      phi_b[i] = stratified_phi(view, i, n, widest);
      share += phi_b[i] / double(n);
    }
    const double mean = block_reduce(share, 0.0, SumOp(), partial_f64);
    // Efficiency, as ospo::shift_to_efficiency: sum phi = v(N) - v(∅) when N was scored.
    const int64_t full = n > 0 ? last_row_of(rows_b, n_rows, 0, n) : -1, empty = last_row_of(rows_b, n_rows, 0, 0);
    if (full >= 0) {
      const double empty_value = empty >= 0 ? double(values_b[empty]) : 0.0;
      const double shift = double(values_b[full]) / double(n) - empty_value / double(n) - mean;
      for (int64_t i = threadIdx.x; i < n; i += kThreads) phi_b[i] += shift;
    }
  } else {
    for (int64_t i = threadIdx.x; i < n; i += kThreads) phi_b[i] = owen_value(rows_b, values_b, n_rows, n, i);
  }
  __syncthreads();  // every token reads every phi of the response

  // scratch holds the answer's credit, then its min-max scaled credit; NaN elsewhere.
  const double off_answer = nan("");
  double lowest = INFINITY, highest = -INFINITY;
  long long n_answer = 0;
  for (int64_t t = threadIdx.x; t < n_tokens; t += kThreads) {
    const bool is_answer = token_mask[row + t] && answer_mask[row + t];
    double credit = 0.0;
    if (is_answer && n > 1) {
      credit = token_credit(spans_b, phi_b, n, token_offsets[2 * (row + t)], token_offsets[2 * (row + t) + 1]);
      if (invert_negative && advantage < 0.0) credit = -credit;
    }
    scratch[row + t] = is_answer ? credit : off_answer;
    if (is_answer) {
      lowest = fmin(lowest, credit);
      highest = fmax(highest, credit);
      ++n_answer;
    }
  }
  lowest = block_reduce(lowest, double(INFINITY), MinOp(), partial_f64);
  highest = block_reduce(highest, double(-INFINITY), MaxOp(), partial_f64);
  n_answer = block_reduce(n_answer, 0LL, SumOp(), partial_i64);

  // Signed mode keeps the raw credit and sums c / n_answer (its mean); the others
  // min-max scale it in place and sum the scaled credit.
  const bool is_signed = mode == Mode::Signed;
  double scaled_sum = 0.0;
  for (int64_t t = threadIdx.x; t < n_tokens; t += kThreads) {
    const double credit = scratch[row + t];
    if (isnan(credit)) continue;
    if (is_signed) {
      scaled_sum += credit / double(n_answer);
      continue;
    }
    const double scaled = min_max_scale(credit, lowest, highest);
    scratch[row + t] = scaled;
    scaled_sum += scaled;
  }
  // The reduction's barriers also order the scratch writes above before the reads below.
  scaled_sum = block_reduce(scaled_sum, 0.0, SumOp(), partial_f64);
  const double scale = is_signed ? double(credit_scales[b]) : 1.0;

  for (int64_t t = threadIdx.x; t < n_tokens; t += kThreads) {
    if (!token_mask[row + t]) {
      out[row + t] = 0.0f;
      continue;
    }
    const double scaled = scratch[row + t];
    if (isnan(scaled)) {
      out[row + t] = float(advantage);
      continue;
    }
    if (is_signed) {
      out[row + t] = float(signed_advantage(scaled, scaled_sum, advantage, scale));
      continue;
    }
    double rank = 0.0;
    if (mode == Mode::Rank) {
      long long less = 0, equal = 0;  // NaN (off the answer) compares false
      for (int64_t u = 0; u < n_tokens; ++u) {
        const double other = scratch[row + u];
        less += other < scaled;
        equal += other == scaled;
      }
      rank = double(less) + 0.5 * double(equal + 1);
    }
    const double weight = redistribution_weight(mode, scaled, scaled_sum, rank, n_answer, alpha);
    out[row + t] = float(double(n_answer) * weight * advantage);
  }
}

}  // namespace

void owen_token_advantages(uintptr_t n_segments, uintptr_t coalition_offsets, uintptr_t coalitions, uintptr_t values,
                           uintptr_t phi_offsets, uintptr_t segment_spans, uintptr_t token_offsets,
                           uintptr_t token_mask, uintptr_t answer_mask, uintptr_t advantages,
                           uintptr_t credit_scales, int64_t n_responses, int64_t n_tokens, Estimator estimator,
                           Mode mode, double alpha, bool invert_negative, uintptr_t phi, uintptr_t scratch,
                           uintptr_t out, uintptr_t stream) {
  if (n_responses == 0) return;
  owen_advantages_kernel<<<dim3(unsigned(n_responses)), kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<const int64_t*>(n_segments), reinterpret_cast<const int64_t*>(coalition_offsets),
      reinterpret_cast<const Window*>(coalitions), reinterpret_cast<const float*>(values),
      reinterpret_cast<const int64_t*>(phi_offsets), reinterpret_cast<const int64_t*>(segment_spans),
      reinterpret_cast<const int64_t*>(token_offsets), reinterpret_cast<const uint8_t*>(token_mask),
      reinterpret_cast<const uint8_t*>(answer_mask), reinterpret_cast<const float*>(advantages),
      reinterpret_cast<const float*>(credit_scales), n_tokens, estimator, mode, alpha, invert_negative,
      reinterpret_cast<double*>(phi), reinterpret_cast<double*>(scratch),
      reinterpret_cast<float*>(out));
  check_launch("owen_advantages_kernel");
}

}  // namespace ospo::cuda
