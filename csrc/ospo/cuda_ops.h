// Host launchers of the CUDA kernels (kernels/cuda/*.cu). Plain C++: device buffers
// are raw addresses (uintptr_t, e.g. torch's data_ptr()) and the stream is a
// cudaStream_t passed as uintptr_t (0 = the legacy default stream), so the CPU
// compiler includes this header without the CUDA toolkit. Every launcher is
// asynchronous on its stream and throws std::runtime_error when a launch fails.
// The callers (ospo_fast.gpu) check shapes, dtypes and bounds beforehand.
#pragma once

#include <cstdint>

#include "ospo/math.h"
#include "ospo/pack.h"

namespace ospo::cuda {

// Visible CUDA devices; 0 when there is no driver or no device.
int device_count();

// Throws std::runtime_error naming `kernel` if the last launch on this thread failed.
void check_launch(const char* kernel);

// reference.token_advantages_batch for a CSR batch, one block per response; the
// math is ospo/math.h's in float64.
//   n_segments [B] int64, coalition_offsets [B+1] int64, coalitions [K, 2] int32
//   windows, values [K] float32, phi_offsets [B+1] int64, segment_spans [S, 2] int64,
//   token_offsets [B, T, 2] int64, token_mask / answer_mask [B, T] uint8 (bool),
//   advantages [B] float32, credit_scales [B] float32 (Mode::Signed; 0 otherwise).
// Outputs: phi [S] float64, scratch [B, T] float64 (work space), out [B, T] float32.
void owen_token_advantages(uintptr_t n_segments, uintptr_t coalition_offsets, uintptr_t coalitions,
                           uintptr_t values, uintptr_t phi_offsets, uintptr_t segment_spans,
                           uintptr_t token_offsets, uintptr_t token_mask, uintptr_t answer_mask,
                           uintptr_t advantages, uintptr_t credit_scales, int64_t n_responses, int64_t n_tokens,
                           Estimator estimator, Mode mode, double alpha, bool invert_negative, uintptr_t phi,
                           uintptr_t scratch, uintptr_t out, uintptr_t stream);

// ospo::pack_windows on the GPU, one block per row. Row k's segments are
// first_segment[k] + [start, end) of windows[k]:
//   token_ids [total] int32, token_offsets [S+1] int64, first_segment [K] int64,
//   windows [K, 2] int32. Outputs input_ids / attention_mask [K, width] int64.
void pack_windows(uintptr_t token_ids, uintptr_t token_offsets, uintptr_t first_segment, uintptr_t windows,
                  int64_t n_rows, const SpecialTokens& special, int64_t max_length, int64_t width,
                  uintptr_t input_ids, uintptr_t attention_mask, uintptr_t stream);

// ospo::pack_subsets on the GPU: masks [K, mask_stride] uint8, bit j = segment
// first_segment[k] + j (bits past a response's segments must be 0).
void pack_subsets(uintptr_t token_ids, uintptr_t token_offsets, uintptr_t first_segment, uintptr_t masks,
                  int64_t mask_stride, int64_t n_rows, const SpecialTokens& special, int64_t max_length,
                  int64_t width, uintptr_t input_ids, uintptr_t attention_mask, uintptr_t stream);

}  // namespace ospo::cuda
