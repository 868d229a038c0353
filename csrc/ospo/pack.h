// Partial-query packing: the encoder batch of a step's coalitions, built from each
// segment's token ids so that no coalition is ever tokenized again. Row k is
//   [CLS] ids(segment s) for s in the coalition, in order [SEP] [PAD]...
// truncated to max_length with [SEP] kept last, as a WordPiece tokenizer does on the
// space-joined text. Twin: python/ospo_fast/packing.py (numpy) and
// kernels/cuda/pack_queries.cu (the same rows on the GPU).
#pragma once

#include <cstdint>

#include "ospo/coalitions.h"
#include "ospo/math.h"

namespace ospo {

struct SpecialTokens {
  int64_t cls_id;
  int64_t sep_id;
  int64_t pad_id;
};

// Length of a packed row with `n_content` ids before truncation; max_length >= 2.
OSPO_HD int64_t packed_row_length(int64_t n_content, int64_t max_length) {
  return (n_content < max_length - 2 ? n_content : max_length - 2) + 2;
}

// What sits at `position` of a row of `row_length` tokens (from packed_row_length).
enum class Slot : int { Cls = 0, Content = 1, Sep = 2, Pad = 3 };

OSPO_HD Slot slot_at(int64_t position, int64_t row_length) {
  if (position == 0) return Slot::Cls;
  if (position < row_length - 1) return Slot::Content;
  if (position == row_length - 1) return Slot::Sep;
  return Slot::Pad;
}

// The CSR inputs shared by both coalition layouts.
//   token_ids         [total]  every segment's ids, segment after segment
//   token_offsets     [S+1]    segment s owns token_ids[token_offsets[s] : token_offsets[s+1]]
//   segment_offsets   [B+1]    response b owns segments [segment_offsets[b], segment_offsets[b+1])
//   coalition_offsets [B+1]    response b owns coalition rows [coalition_offsets[b], coalition_offsets[b+1])
struct SegmentTokenBatch {
  const int32_t* token_ids;
  const int64_t* token_offsets;
  const int64_t* segment_offsets;
  const int64_t* coalition_offsets;
  int64_t n_responses;
};

// Row lengths [K] (special tokens included, truncation applied) of window rows:
// windows [K] are relative to their response's first segment.
void window_row_lengths(const SegmentTokenBatch& batch, const Window* windows /*[K]*/, int64_t max_length,
                        int64_t* lengths /*[K]*/);

// Row lengths [K] of subset rows: masks [K, mask_stride], bit j = the response's
// segment j is in the coalition.
void subset_row_lengths(const SegmentTokenBatch& batch, const uint8_t* masks /*[K, mask_stride]*/,
                        int64_t mask_stride, int64_t max_length, int64_t* lengths /*[K]*/);

// Writes input_ids and attention_mask [K, width]; width >= every row length.
void pack_windows(const SegmentTokenBatch& batch, const Window* windows /*[K]*/, const SpecialTokens& special,
                  int64_t max_length, int64_t width, int64_t* input_ids /*[K, width]*/,
                  int64_t* attention_mask /*[K, width]*/);

void pack_subsets(const SegmentTokenBatch& batch, const uint8_t* masks /*[K, mask_stride]*/, int64_t mask_stride,
                  const SpecialTokens& special, int64_t max_length, int64_t width, int64_t* input_ids /*[K, width]*/,
                  int64_t* attention_mask /*[K, width]*/);

}  // namespace ospo
