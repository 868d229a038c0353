#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>

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

}  // namespace

void bind_coalitions(py::module_& m) {
  static_assert(sizeof(ospo::Window) == 2 * sizeof(int32_t), "Window must be two packed int32");
  m.def(
      "contiguous_coalitions",
      [](int64_t n_segments, int64_t w_max, bool include_empty, bool include_full) {
        require_non_negative(n_segments, "n_segments");
        require_positive(w_max, "w_max");
        return windows_to_array(ospo::contiguous_coalitions(n_segments, w_max, include_empty, include_full));
      },
      py::arg("n_segments"), py::arg("w_max"), py::arg("include_empty"), py::arg("include_full"));
  m.def(
      "sample_coalitions",
      [](int64_t n_segments, int64_t w_max, int64_t max_coalitions, uint64_t seed, uint64_t stream) {
        require_non_negative(n_segments, "n_segments");
        require_positive(w_max, "w_max");
        require_budget(max_coalitions);
        return windows_to_array(ospo::sample_coalitions(n_segments, w_max, max_coalitions, seed, stream));
      },
      py::arg("n_segments"), py::arg("w_max"), py::arg("max_coalitions"), py::arg("seed"), py::arg("stream"));
  m.def(
      "sample_subset_coalitions",
      [](int64_t n_segments, int64_t max_coalitions, uint64_t seed, uint64_t stream) {
        require_non_negative(n_segments, "n_segments");
        require_budget(max_coalitions);
        const std::vector<uint8_t> rows = ospo::sample_subset_coalitions(n_segments, max_coalitions, seed, stream);
        const py::ssize_t n_rows = n_segments == 0 ? 1 : py::ssize_t(rows.size()) / n_segments;
        py::array_t<bool> out({n_rows, py::ssize_t(n_segments)});
        if (!rows.empty()) std::memcpy(out.mutable_data(), rows.data(), rows.size());
        return out;
      },
      py::arg("n_segments"), py::arg("max_coalitions"), py::arg("seed"), py::arg("stream"));
  m.def(
      "coalition_plan",
      [](const py::array& n_segments_in, int64_t w_max, int64_t max_coalitions, uint64_t seed) {
        const auto n_segments = require<int64_t>(n_segments_in, "n_segments", {-1});
        for (py::ssize_t b = 0; b < n_segments.size(); ++b)
          if (n_segments.data()[b] < 0)
            throw py::value_error("n_segments must be >= 0, got " + std::to_string(n_segments.data()[b]) +
                                  " at index " + std::to_string(b));
        require_positive(w_max, "w_max");
        require_budget(max_coalitions);
        ospo::CoalitionPlan plan;
        {
          py::gil_scoped_release release;
          plan = ospo::coalition_plan(n_segments.data(), n_segments.size(), w_max, max_coalitions, seed);
        }
        py::array_t<int64_t> offsets(py::ssize_t(plan.offsets.size()));
        std::memcpy(offsets.mutable_data(), plan.offsets.data(), plan.offsets.size() * sizeof(int64_t));
        return py::make_tuple(offsets, windows_to_array(plan.windows));
      },
      py::arg("n_segments"), py::arg("w_max"), py::arg("max_coalitions"), py::arg("seed"));
}

}  // namespace ospo_bindings
