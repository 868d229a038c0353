#include "ospo/pack.h"

#include <algorithm>

namespace ospo {

namespace {

int64_t segment_length(const SegmentTokenBatch& batch, int64_t segment) {
  return batch.token_offsets[segment + 1] - batch.token_offsets[segment];
}

int64_t window_content_length(const SegmentTokenBatch& batch, int64_t first_segment, const Window& window) {
  return batch.token_offsets[first_segment + window.end] - batch.token_offsets[first_segment + window.start];
}

int64_t subset_content_length(const SegmentTokenBatch& batch, int64_t first_segment, int64_t n_segments,
                              const uint8_t* mask /*[n]*/) {
  int64_t total = 0;
  for (int64_t j = 0; j < n_segments; ++j)
    if (mask[j]) total += segment_length(batch, first_segment + j);
  return total;
}

// Calls body(row, first_segment, n_segments) for every coalition row of the batch.
template <typename Body>
void for_each_row(const SegmentTokenBatch& batch, Body body) {
  for (int64_t b = 0; b < batch.n_responses; ++b) {
    const int64_t first_segment = batch.segment_offsets[b];
    const int64_t n_segments = batch.segment_offsets[b + 1] - first_segment;
    for (int64_t row = batch.coalition_offsets[b]; row < batch.coalition_offsets[b + 1]; ++row)
      body(row, first_segment, n_segments);
  }
}

// [CLS] at 0, then `kept` content ids already written at 1..kept, then [SEP] and padding.
void close_row(int64_t kept, const SpecialTokens& special, int64_t width, int64_t* ids /*[width]*/,
               int64_t* mask /*[width]*/) {
  const int64_t row_length = kept + 2;
  ids[0] = special.cls_id;
  ids[row_length - 1] = special.sep_id;
  std::fill(ids + row_length, ids + width, special.pad_id);
  std::fill(mask, mask + row_length, int64_t(1));
  std::fill(mask + row_length, mask + width, int64_t(0));
}

}  // namespace

void window_row_lengths(const SegmentTokenBatch& batch, const Window* windows, int64_t max_length, int64_t* lengths) {
  for_each_row(batch, [&](int64_t row, int64_t first_segment, int64_t) {
    lengths[row] = packed_row_length(window_content_length(batch, first_segment, windows[row]), max_length);
  });
}

void subset_row_lengths(const SegmentTokenBatch& batch, const uint8_t* masks, int64_t mask_stride, int64_t max_length,
                        int64_t* lengths) {
  for_each_row(batch, [&](int64_t row, int64_t first_segment, int64_t n_segments) {
    const uint8_t* mask = masks + row * mask_stride;
    lengths[row] = packed_row_length(subset_content_length(batch, first_segment, n_segments, mask), max_length);
  });
}

void pack_windows(const SegmentTokenBatch& batch, const Window* windows, const SpecialTokens& special,
                  int64_t max_length, int64_t width, int64_t* input_ids, int64_t* attention_mask) {
  for_each_row(batch, [&](int64_t row, int64_t first_segment, int64_t) {
    // A window's segments are adjacent in token_ids, so its content is one slice.
    const int32_t* content = batch.token_ids + batch.token_offsets[first_segment + windows[row].start];
    const int64_t kept =
        packed_row_length(window_content_length(batch, first_segment, windows[row]), max_length) - 2;
    int64_t* ids = input_ids + row * width;
    std::copy(content, content + kept, ids + 1);
    close_row(kept, special, width, ids, attention_mask + row * width);
  });
}

void pack_subsets(const SegmentTokenBatch& batch, const uint8_t* masks, int64_t mask_stride,
                  const SpecialTokens& special, int64_t max_length, int64_t width, int64_t* input_ids,
                  int64_t* attention_mask) {
  for_each_row(batch, [&](int64_t row, int64_t first_segment, int64_t n_segments) {
    const uint8_t* mask = masks + row * mask_stride;
    const int64_t room = max_length - 2;
    int64_t* ids = input_ids + row * width;
    int64_t kept = 0;
    for (int64_t j = 0; j < n_segments && kept < room; ++j) {
      if (!mask[j]) continue;
      const int64_t segment = first_segment + j;
      const int64_t take = std::min(segment_length(batch, segment), room - kept);
      const int32_t* content = batch.token_ids + batch.token_offsets[segment];
      std::copy(content, content + take, ids + 1 + kept);
      kept += take;
    }
    close_row(kept, special, width, ids, attention_mask + row * width);
  });
}

}  // namespace ospo
