// The CUDA launchers for ospo_fast.gpu. Buffers are device addresses (torch's
// data_ptr()) and the stream an address too; ospo_fast.gpu checks shapes, dtypes,
// devices and bounds on the tensors before calling, so only sizes are checked here.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings/checks.h"
#include "ospo/cuda_ops.h"

namespace ospo_bindings {

namespace {

void require_address(uintptr_t address, int64_t n_elements, const char* name) {
  if (n_elements > 0 && address == 0)
    throw py::value_error(std::string(name) + " is a null device address but " + std::to_string(n_elements) +
                          " elements are expected");
}

ospo::SpecialTokens checked_special(int64_t cls_id, int64_t sep_id, int64_t pad_id, int64_t max_length,
                                    int64_t width) {
  require_non_negative(cls_id, "cls_id");
  require_non_negative(sep_id, "sep_id");
  require_non_negative(pad_id, "pad_id");
  if (max_length < 2)
    throw py::value_error("max_length must be >= 2 ([CLS] and [SEP]), got " + std::to_string(max_length));
  require_non_negative(width, "width");
  return {cls_id, sep_id, pad_id};
}

}  // namespace

void bind_cuda(py::module_& m) {
  m.def("cuda_device_count", &ospo::cuda::device_count, "Visible CUDA devices (0 without a driver).");
  m.def(
      "owen_token_advantages_cuda",
      [](uintptr_t n_segments, uintptr_t coalition_offsets, uintptr_t coalitions, uintptr_t values,
         uintptr_t phi_offsets, uintptr_t segment_spans, uintptr_t token_offsets, uintptr_t token_mask,
         uintptr_t answer_mask, uintptr_t advantages, int64_t n_responses, int64_t n_tokens, const std::string& mode,
         double alpha, bool invert_negative, uintptr_t phi, uintptr_t scratch, uintptr_t out, uintptr_t stream,
         const std::string& estimator, uintptr_t credit_scales) {
        require_non_negative(n_responses, "n_responses");
        require_non_negative(n_tokens, "n_tokens");
        require_alpha(alpha);
        const ospo::Mode parsed = parse_mode(mode);
        const ospo::Estimator parsed_estimator = parse_estimator(estimator);
        if (parsed == ospo::Mode::Signed) require_address(credit_scales, n_responses, "credit_scales");
        if (parsed == ospo::Mode::Signed && invert_negative)
          throw py::value_error("invert_negative does not apply to mode 'signed'");
        const int64_t n_cells = multiply_sizes(n_responses, n_tokens, "n_responses * n_tokens");
        require_address(n_segments, n_responses, "n_segments");
        require_address(coalition_offsets, n_responses, "coalition_offsets");
        require_address(phi_offsets, n_responses, "phi_offsets");
        require_address(advantages, n_responses, "advantages");
        require_address(token_offsets, n_cells, "token_offsets");
        require_address(token_mask, n_cells, "token_mask");
        require_address(answer_mask, n_cells, "answer_mask");
        require_address(scratch, n_cells, "scratch");
        require_address(out, n_cells, "out");
        py::gil_scoped_release release;
        ospo::cuda::owen_token_advantages(n_segments, coalition_offsets, coalitions, values, phi_offsets,
                                          segment_spans, token_offsets, token_mask, answer_mask, advantages,
                                          credit_scales, n_responses, n_tokens, parsed_estimator, parsed, alpha,
                                          invert_negative, phi, scratch, out, stream);
      },
      py::arg("n_segments"), py::arg("coalition_offsets"), py::arg("coalitions"), py::arg("values"),
      py::arg("phi_offsets"), py::arg("segment_spans"), py::arg("token_offsets"), py::arg("token_mask"),
      py::arg("answer_mask"), py::arg("advantages"), py::kw_only(), py::arg("n_responses"), py::arg("n_tokens"),
      py::arg("mode"), py::arg("alpha"), py::arg("invert_negative"), py::arg("phi"), py::arg("scratch"),
      py::arg("out"), py::arg("stream"), py::arg("estimator") = "spec", py::arg("credit_scales") = uintptr_t{0},
      "Owen values -> token credit -> advantages for a CSR batch on the GPU (asynchronous on `stream`).");
  m.def(
      "pack_query_windows_cuda",
      [](uintptr_t token_ids, uintptr_t token_offsets, uintptr_t first_segment, uintptr_t windows, int64_t n_rows,
         int64_t cls_id, int64_t sep_id, int64_t pad_id, int64_t max_length, int64_t width, uintptr_t input_ids,
         uintptr_t attention_mask, uintptr_t stream) {
        require_non_negative(n_rows, "n_rows");
        const ospo::SpecialTokens special = checked_special(cls_id, sep_id, pad_id, max_length, width);
        require_address(first_segment, n_rows, "first_segment");
        require_address(windows, n_rows, "windows");
        const int64_t n_cells = multiply_sizes(n_rows, width, "n_rows * width");
        require_address(input_ids, n_cells, "input_ids");
        require_address(attention_mask, n_cells, "attention_mask");
        py::gil_scoped_release release;
        ospo::cuda::pack_windows(token_ids, token_offsets, first_segment, windows, n_rows, special, max_length, width,
                                 input_ids, attention_mask, stream);
      },
      py::arg("segment_token_ids"), py::arg("segment_token_offsets"), py::arg("first_segment"),
      py::arg("windows"), py::kw_only(), py::arg("n_rows"), py::arg("cls_id"), py::arg("sep_id"), py::arg("pad_id"),
      py::arg("max_length"), py::arg("width"), py::arg("input_ids"), py::arg("attention_mask"), py::arg("stream"),
      "ospo::pack_windows on the GPU; row k's segments are first_segment[k] + [start, end).");
  m.def(
      "pack_query_subsets_cuda",
      [](uintptr_t token_ids, uintptr_t token_offsets, uintptr_t first_segment, uintptr_t masks, int64_t mask_stride,
         int64_t n_rows, int64_t cls_id, int64_t sep_id, int64_t pad_id, int64_t max_length, int64_t width,
         uintptr_t input_ids, uintptr_t attention_mask, uintptr_t stream) {
        require_non_negative(n_rows, "n_rows");
        require_non_negative(mask_stride, "mask_stride");
        const ospo::SpecialTokens special = checked_special(cls_id, sep_id, pad_id, max_length, width);
        require_address(first_segment, n_rows, "first_segment");
        require_address(masks, multiply_sizes(n_rows, mask_stride, "n_rows * mask_stride"), "masks");
        const int64_t n_cells = multiply_sizes(n_rows, width, "n_rows * width");
        require_address(input_ids, n_cells, "input_ids");
        require_address(attention_mask, n_cells, "attention_mask");
        py::gil_scoped_release release;
        ospo::cuda::pack_subsets(token_ids, token_offsets, first_segment, masks, mask_stride, n_rows, special,
                                 max_length, width, input_ids, attention_mask, stream);
      },
      py::arg("segment_token_ids"), py::arg("segment_token_offsets"), py::arg("first_segment"), py::arg("masks"),
      py::kw_only(), py::arg("mask_stride"), py::arg("n_rows"), py::arg("cls_id"), py::arg("sep_id"),
      py::arg("pad_id"), py::arg("max_length"), py::arg("width"), py::arg("input_ids"), py::arg("attention_mask"),
      py::arg("stream"), "ospo::pack_subsets on the GPU; bit j of row k is segment first_segment[k] + j.");
}

}  // namespace ospo_bindings
