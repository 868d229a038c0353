#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "bindings/checks.h"
#include "ospo/coalitions.h"

namespace ospo_bindings {

namespace {

py::array_t<int32_t> windows_to_array(const std::vector<ospo::Window>& windows) {
  py::array_t<int32_t> out({py::ssize_t(windows.size()), py::ssize_t(2)});
  if (!windows.empty()) std::memcpy(out.mutable_data(), windows.data(), windows.size() * sizeof(ospo::Window));
  return out;
}

void require_budget(int64_t max_coalitions) {
  if (max_coalitions < 2)
    throw py::value_error("max_coalitions must be >= 2 (the empty and the full coalition are always kept), got " +
                          std::to_string(max_coalitions));
}

// The candidate windows of one response (all of them are built before sampling), named
// by the arguments they come from.
void require_candidates_fit(int64_t n_segments, int64_t w_max, const std::string& context) {
  require_window_segments(n_segments, "n_segments");
  const int64_t candidates = ospo::window_count(n_segments, w_max, true, true);
  // a window, plus its index in the sampler's shuffle
  require_allocatable(candidates, sizeof(ospo::Window) + sizeof(int64_t),
                      "the " + std::to_string(candidates) + " candidate windows of " + context);
}

std::string window_arguments(int64_t n_segments, int64_t w_max) {
  return "n_segments = " + std::to_string(n_segments) + ", w_max = " + std::to_string(w_max);
}

}  // namespace

void bind_coalitions(py::module_& m) {
  static_assert(sizeof(ospo::Window) == 2 * sizeof(int32_t), "Window must be two packed int32");
  m.def(
      "contiguous_coalitions",
      [](int64_t n_segments, int64_t w_max, bool include_empty, bool include_full) {
        require_window_segments(n_segments, "n_segments");
        require_positive(w_max, "w_max");
        const std::string context = window_arguments(n_segments, w_max);
        require_candidates_fit(n_segments, w_max, context);
        return windows_to_array(naming_allocation_failure(
            context, [&] { return ospo::contiguous_coalitions(n_segments, w_max, include_empty, include_full); }));
      },
      py::arg("n_segments"), py::arg("w_max"), py::arg("include_empty"), py::arg("include_full"));
  m.def(
      "sample_coalitions",
      [](int64_t n_segments, int64_t w_max, int64_t max_coalitions, uint64_t seed, uint64_t stream) {
        require_window_segments(n_segments, "n_segments");
        require_positive(w_max, "w_max");
        require_budget(max_coalitions);
        const std::string context = window_arguments(n_segments, w_max);
        require_candidates_fit(n_segments, w_max, context);
        return windows_to_array(naming_allocation_failure(
            context, [&] { return ospo::sample_coalitions(n_segments, w_max, max_coalitions, seed, stream); }));
      },
      py::arg("n_segments"), py::arg("w_max"), py::arg("max_coalitions"), py::arg("seed"), py::arg("stream"));
  m.def(
      "sample_subset_coalitions",
      [](int64_t n_segments, int64_t max_coalitions, uint64_t seed, uint64_t stream, const std::string& sizes) {
        require_non_negative(n_segments, "n_segments");
        if (sizes != "half" && sizes != "kernel")
          throw py::value_error("sizes must be 'half' or 'kernel', got '" + sizes + "'");
        const ospo::SubsetSizes parsed = sizes == "kernel" ? ospo::SubsetSizes::Kernel : ospo::SubsetSizes::Half;
        require_budget(max_coalitions);
        // Every subset when 2**n fits the budget, else the budget's worth of rows.
        const int64_t n_rows = n_segments < 62 ? std::min(int64_t(1) << n_segments, max_coalitions) : max_coalitions;
        const std::string context = "n_segments = " + std::to_string(n_segments) +
                                    ", max_coalitions = " + std::to_string(max_coalitions);
        // a row of n flags, plus its copy in the sampler's set of rows already drawn
        require_allocatable(n_rows, multiply_sizes(2, std::max<int64_t>(n_segments, 1), "the mask rows of " + context),
                            "the " + std::to_string(n_rows) + " mask rows of " + context);
        if (parsed == ospo::SubsetSizes::Kernel && n_rows > 2)  // the sizes' CDF and a shuffle order
          require_allocatable(n_segments, 16, "the kernel sampler's " + std::to_string(n_segments) + " sizes");
        const std::vector<uint8_t> rows = naming_allocation_failure(
            context, [&] { return ospo::sample_subset_coalitions(n_segments, max_coalitions, seed, stream, parsed); });
        const py::ssize_t out_rows = n_segments == 0 ? 1 : py::ssize_t(rows.size()) / n_segments;
        py::array_t<bool> out({out_rows, py::ssize_t(n_segments)});
        if (!rows.empty()) std::memcpy(out.mutable_data(), rows.data(), rows.size());
        return out;
      },
      py::arg("n_segments"), py::arg("max_coalitions"), py::arg("seed"), py::arg("stream"),
      py::arg("sizes") = "half");
  m.def(
      "coalition_plan",
      [](const py::array& n_segments_in, int64_t w_max, int64_t max_coalitions, uint64_t seed) {
        const auto n_segments = require<int64_t>(n_segments_in, "n_segments", {-1});
        require_positive(w_max, "w_max");
        require_budget(max_coalitions);
        int64_t kept_rows = 0;
        for (py::ssize_t b = 0; b < n_segments.size(); ++b) {
          const int64_t count = n_segments.data()[b];
          require_window_segments(count, "n_segments", "at index " + std::to_string(b));
          require_candidates_fit(count, w_max, window_arguments(count, w_max) + " (index " + std::to_string(b) + ")");
          kept_rows = add_sizes(kept_rows, std::min(ospo::window_count(count, w_max, true, true), max_coalitions),
                                "the coalition rows of n_segments");
        }
        require_allocatable(kept_rows, 2 * sizeof(ospo::Window), "the " + std::to_string(kept_rows) + " plan rows");
        ospo::CoalitionPlan plan;
        naming_allocation_failure("coalition_plan of " + std::to_string(n_segments.size()) + " responses", [&] {
          py::gil_scoped_release release;
          plan = ospo::coalition_plan(n_segments.data(), n_segments.size(), w_max, max_coalitions, seed);
        });
        py::array_t<int64_t> offsets(py::ssize_t(plan.offsets.size()));
        std::memcpy(offsets.mutable_data(), plan.offsets.data(), plan.offsets.size() * sizeof(int64_t));
        return py::make_tuple(offsets, windows_to_array(plan.windows));
      },
      py::arg("n_segments"), py::arg("w_max"), py::arg("max_coalitions"), py::arg("seed"));
}

}  // namespace ospo_bindings
