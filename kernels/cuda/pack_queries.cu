// Partial-query packing on the GPU: the rows of ospo::pack_windows / pack_subsets
// (csrc/ospo/pack.cpp), one block per coalition row, the slot rule shared through
// ospo/pack.h.
#include <cuda_runtime.h>

#include <cstdint>

#include "ospo/coalitions.h"
#include "ospo/cuda_ops.h"
#include "ospo/pack.h"

namespace ospo::cuda {

namespace {

constexpr int kThreads = 128;

__device__ void write_slot(int64_t position, int64_t row_length, int64_t content_id, const SpecialTokens& special,
                           int64_t* ids, int64_t* mask) {
  const Slot slot = slot_at(position, row_length);
  ids[position] = slot == Slot::Cls       ? special.cls_id
                  : slot == Slot::Content ? content_id
                  : slot == Slot::Sep     ? special.sep_id
                                          : special.pad_id;
  mask[position] = slot == Slot::Pad ? 0 : 1;
}

__global__ void __launch_bounds__(kThreads) pack_windows_kernel(
    const int32_t* __restrict__ token_ids,      // [total]
    const int64_t* __restrict__ token_offsets,  // [S+1]
    const int64_t* __restrict__ first_segment,  // [K]
    const Window* __restrict__ windows,         // [K]
    SpecialTokens special, int64_t max_length, int64_t width,
    int64_t* __restrict__ input_ids,            // [K, width]
    int64_t* __restrict__ attention_mask) {     // [K, width]
  const int64_t k = blockIdx.x;
  const int64_t first = first_segment[k];
  // A window's segments are adjacent in token_ids, so its content is one slice.
  const int64_t lo = token_offsets[first + windows[k].start];
  const int64_t row_length = packed_row_length(token_offsets[first + windows[k].end] - lo, max_length);
  for (int64_t p = threadIdx.x; p < width; p += kThreads) {
    const int64_t content = slot_at(p, row_length) == Slot::Content ? int64_t(token_ids[lo + p - 1]) : 0;
    write_slot(p, row_length, content, special, input_ids + k * width, attention_mask + k * width);
  }
}

__global__ void __launch_bounds__(kThreads) pack_subsets_kernel(
    const int32_t* __restrict__ token_ids,      // [total]
    const int64_t* __restrict__ token_offsets,  // [S+1]
    const int64_t* __restrict__ first_segment,  // [K]
    const uint8_t* __restrict__ masks,          // [K, mask_stride]
    int64_t mask_stride, SpecialTokens special, int64_t max_length, int64_t width,
    int64_t* __restrict__ input_ids,            // [K, width]
    int64_t* __restrict__ attention_mask) {     // [K, width]
  const int64_t k = blockIdx.x;
  const int64_t first = first_segment[k];
  const uint8_t* mask = masks + k * mask_stride;
  int64_t n_content = 0;
  for (int64_t j = 0; j < mask_stride; ++j)
    if (mask[j]) n_content += token_offsets[first + j + 1] - token_offsets[first + j];
  const int64_t row_length = packed_row_length(n_content, max_length);
  for (int64_t p = threadIdx.x; p < width; p += kThreads) {
    int64_t content = 0;
    if (slot_at(p, row_length) == Slot::Content) {
      // Walk the member segments to the one holding content position p - 1.
      int64_t remaining = p - 1;
      for (int64_t j = 0; j < mask_stride; ++j) {
        if (!mask[j]) continue;
        const int64_t lo = token_offsets[first + j], length = token_offsets[first + j + 1] - lo;
        if (remaining < length) {
          content = token_ids[lo + remaining];
          break;
        }
        remaining -= length;
      }
    }
    write_slot(p, row_length, content, special, input_ids + k * width, attention_mask + k * width);
  }
}

}  // namespace

void pack_windows(uintptr_t token_ids, uintptr_t token_offsets, uintptr_t first_segment, uintptr_t windows,
                  int64_t n_rows, const SpecialTokens& special, int64_t max_length, int64_t width,
                  uintptr_t input_ids, uintptr_t attention_mask, uintptr_t stream) {
  if (n_rows == 0 || width == 0) return;
  pack_windows_kernel<<<dim3(unsigned(n_rows)), kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<const int32_t*>(token_ids), reinterpret_cast<const int64_t*>(token_offsets),
      reinterpret_cast<const int64_t*>(first_segment), reinterpret_cast<const Window*>(windows), special, max_length,
      width, reinterpret_cast<int64_t*>(input_ids), reinterpret_cast<int64_t*>(attention_mask));
  check_launch("pack_windows_kernel");
}

void pack_subsets(uintptr_t token_ids, uintptr_t token_offsets, uintptr_t first_segment, uintptr_t masks,
                  int64_t mask_stride, int64_t n_rows, const SpecialTokens& special, int64_t max_length,
                  int64_t width, uintptr_t input_ids, uintptr_t attention_mask, uintptr_t stream) {
  if (n_rows == 0 || width == 0) return;
  pack_subsets_kernel<<<dim3(unsigned(n_rows)), kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<const int32_t*>(token_ids), reinterpret_cast<const int64_t*>(token_offsets),
      reinterpret_cast<const int64_t*>(first_segment), reinterpret_cast<const uint8_t*>(masks), mask_stride, special,
      max_length, width, reinterpret_cast<int64_t*>(input_ids), reinterpret_cast<int64_t*>(attention_mask));
  check_launch("pack_subsets_kernel");
}

}  // namespace ospo::cuda
