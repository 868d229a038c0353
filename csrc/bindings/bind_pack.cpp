#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <optional>
#include <string>

#include "bindings/checks.h"
#include "ospo/pack.h"

namespace ospo_bindings {

namespace {

using Int64Array = py::array_t<int64_t, py::array::c_style>;

// The CSR inputs, checked; the arrays are kept alive by the caller's locals.
struct CheckedBatch {
  py::array_t<int32_t, py::array::c_style> token_ids;
  Int64Array token_offsets, segment_offsets, coalition_offsets;

  ospo::SegmentTokenBatch view() const {
    return {token_ids.data(), token_offsets.data(), segment_offsets.data(), coalition_offsets.data(),
            coalition_offsets.size() - 1};
  }
  int64_t n_segments_of(int64_t b) const { return segment_offsets.data()[b + 1] - segment_offsets.data()[b]; }
};

CheckedBatch check_batch(const py::array& token_ids_in, const py::array& token_offsets_in,
                         const py::array& segment_offsets_in, const py::array& coalition_offsets_in, int64_t n_rows) {
  CheckedBatch batch{require<int32_t>(token_ids_in, "segment_token_ids", {-1}),
                     require<int64_t>(token_offsets_in, "segment_token_offsets", {-1}),
                     require<int64_t>(segment_offsets_in, "segment_offsets", {-1}),
                     Int64Array()};
  batch.coalition_offsets =
      require<int64_t>(coalition_offsets_in, "coalition_offsets", {int64_t(batch.segment_offsets.size())});
  require_offsets(batch.token_offsets, batch.token_ids.size(), "segment_token_offsets", "segment_token_ids");
  require_offsets(batch.segment_offsets, batch.token_offsets.size() - 1, "segment_offsets",
                  "the segments (len(segment_token_offsets) - 1)");
  require_offsets(batch.coalition_offsets, n_rows, "coalition_offsets", "the coalition rows");
  return batch;
}

void require_special(int64_t cls_id, int64_t sep_id, int64_t pad_id, int64_t max_length) {
  require_non_negative(cls_id, "cls_id");
  require_non_negative(sep_id, "sep_id");
  require_non_negative(pad_id, "pad_id");
  if (max_length < 2)
    throw py::value_error("max_length must be >= 2 ([CLS] and [SEP]), got " + std::to_string(max_length));
}

int64_t padded_width(const Int64Array& lengths, std::optional<int64_t> pad_to) {
  const int64_t longest =
      lengths.size() == 0 ? 0 : *std::max_element(lengths.data(), lengths.data() + lengths.size());
  if (!pad_to) return longest;
  require_non_negative(*pad_to, "pad_to");
  if (*pad_to < longest)
    throw py::value_error("pad_to must be >= the longest packed row (" + std::to_string(longest) + "), got " +
                          std::to_string(*pad_to));
  return *pad_to;
}

// input_ids and attention_mask [K, width]; `width` may come from pad_to.
py::tuple packed_arrays(int64_t n_rows, int64_t width) {
  const std::string what = "input_ids and attention_mask [" + std::to_string(n_rows) + ", " + std::to_string(width) +
                           "] (width from pad_to or the longest row)";
  require_allocatable(multiply_sizes(n_rows, width, what), 2 * sizeof(int64_t), what);
  return py::make_tuple(Int64Array({py::ssize_t(n_rows), py::ssize_t(width)}),
                        Int64Array({py::ssize_t(n_rows), py::ssize_t(width)}));
}

}  // namespace

void bind_pack(py::module_& m) {
  m.def(
      "pack_query_windows",
      [](const py::array& token_ids_in, const py::array& token_offsets_in, const py::array& segment_offsets_in,
         const py::array& coalition_offsets_in, const py::array& coalitions_in, int64_t cls_id, int64_t sep_id,
         int64_t pad_id, int64_t max_length, std::optional<int64_t> pad_to) {
        require_special(cls_id, sep_id, pad_id, max_length);
        const auto windows_array = require<int32_t>(coalitions_in, "coalitions", {-1, 2});
        const int64_t n_rows = windows_array.shape(0);
        const CheckedBatch batch =
            check_batch(token_ids_in, token_offsets_in, segment_offsets_in, coalition_offsets_in, n_rows);
        const auto* windows = reinterpret_cast<const ospo::Window*>(windows_array.data());
        const int64_t* row_offsets = batch.coalition_offsets.data();
        for (int64_t b = 0; b + 1 < batch.coalition_offsets.size(); ++b)
          for (int64_t row = row_offsets[b]; row < row_offsets[b + 1]; ++row)
            if (windows[row].start < 0 || windows[row].start > windows[row].end ||
                windows[row].end > batch.n_segments_of(b))
              throw py::value_error("coalitions row " + std::to_string(row) + " = (" +
                                    std::to_string(windows[row].start) + ", " + std::to_string(windows[row].end) +
                                    ") is not a window of response " + std::to_string(b) + "'s " +
                                    std::to_string(batch.n_segments_of(b)) + " segments");
        Int64Array lengths(n_rows);
        ospo::window_row_lengths(batch.view(), windows, max_length, lengths.mutable_data());
        const int64_t width = padded_width(lengths, pad_to);
        py::tuple out = packed_arrays(n_rows, width);
        auto input_ids = out[0].cast<Int64Array>();
        auto attention_mask = out[1].cast<Int64Array>();
        {
          py::gil_scoped_release release;
          ospo::pack_windows(batch.view(), windows, {cls_id, sep_id, pad_id}, max_length, width,
                             input_ids.mutable_data(), attention_mask.mutable_data());
        }
        return out;
      },
      py::arg("segment_token_ids"), py::arg("segment_token_offsets"), py::arg("segment_offsets"),
      py::arg("coalition_offsets"), py::arg("coalitions"), py::kw_only(), py::arg("cls_id"), py::arg("sep_id"),
      py::arg("pad_id"), py::arg("max_length"), py::arg("pad_to") = py::none(),
      "Encoder rows [CLS] + window's segment ids + [SEP] -> (input_ids, attention_mask) int64 [K, L].");
  m.def(
      "pack_query_subsets",
      [](const py::array& token_ids_in, const py::array& token_offsets_in, const py::array& segment_offsets_in,
         const py::array& coalition_offsets_in, const py::array& masks_in, int64_t cls_id, int64_t sep_id,
         int64_t pad_id, int64_t max_length, std::optional<int64_t> pad_to) {
        require_special(cls_id, sep_id, pad_id, max_length);
        const auto masks_array = require<bool>(masks_in, "masks", {-1, -1});
        const int64_t n_rows = masks_array.shape(0);
        const int64_t mask_stride = masks_array.shape(1);
        const CheckedBatch batch =
            check_batch(token_ids_in, token_offsets_in, segment_offsets_in, coalition_offsets_in, n_rows);
        const auto* masks = reinterpret_cast<const uint8_t*>(masks_array.data());
        const int64_t* row_offsets = batch.coalition_offsets.data();
        for (int64_t b = 0; b + 1 < batch.coalition_offsets.size(); ++b) {
          const int64_t n_segments = batch.n_segments_of(b);
          if (row_offsets[b + 1] > row_offsets[b] && n_segments > mask_stride)
            throw py::value_error("masks has " + std::to_string(mask_stride) + " columns, but response " +
                                  std::to_string(b) + " has " + std::to_string(n_segments) + " segments");
          for (int64_t row = row_offsets[b]; row < row_offsets[b + 1]; ++row)
            for (int64_t j = n_segments; j < mask_stride; ++j)
              if (masks[row * mask_stride + j])
                throw py::value_error("masks row " + std::to_string(row) + " sets column " + std::to_string(j) +
                                      ", past response " + std::to_string(b) + "'s " + std::to_string(n_segments) +
                                      " segments");
        }
        Int64Array lengths(n_rows);
        ospo::subset_row_lengths(batch.view(), masks, mask_stride, max_length, lengths.mutable_data());
        const int64_t width = padded_width(lengths, pad_to);
        py::tuple out = packed_arrays(n_rows, width);
        auto input_ids = out[0].cast<Int64Array>();
        auto attention_mask = out[1].cast<Int64Array>();
        {
          py::gil_scoped_release release;
          ospo::pack_subsets(batch.view(), masks, mask_stride, {cls_id, sep_id, pad_id}, max_length, width,
                             input_ids.mutable_data(), attention_mask.mutable_data());
        }
        return out;
      },
      py::arg("segment_token_ids"), py::arg("segment_token_offsets"), py::arg("segment_offsets"),
      py::arg("coalition_offsets"), py::arg("masks"), py::kw_only(), py::arg("cls_id"), py::arg("sep_id"),
      py::arg("pad_id"), py::arg("max_length"), py::arg("pad_to") = py::none(),
      "Encoder rows [CLS] + the masked segments' ids in order + [SEP] -> (input_ids, attention_mask) int64 [K, L].");
}

}  // namespace ospo_bindings
