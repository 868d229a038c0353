#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings/checks.h"
#include "ospo/owen.h"

namespace ospo_bindings {

namespace {

const ospo::Window* as_windows(const py::array_t<int32_t, py::array::c_style>& coalitions) {
  return reinterpret_cast<const ospo::Window*>(coalitions.data());
}

}  // namespace

void bind_owen(py::module_& m) {
  m.def(
      "owen_values",
      [](int64_t n_segments, const py::array& coalitions_in, const py::array& values_in) {
        require_non_negative(n_segments, "n_segments");
        const auto values = require<double>(values_in, "values", {-1});
        require_finite(values, "values");
        py::array_t<double> phi(py::ssize_t{n_segments});
        if (coalitions_in.dtype().is(py::dtype::of<bool>())) {
          const auto masks = require<bool>(coalitions_in, "coalitions", {values.size(), n_segments});
          ospo::owen_values_masks(n_segments, reinterpret_cast<const uint8_t*>(masks.data()), values.data(),
                                  values.size(), phi.mutable_data());
        } else {
          const auto windows = require<int32_t>(coalitions_in, "coalitions", {values.size(), 2});
          ospo::owen_values_windows(n_segments, as_windows(windows), values.data(), values.size(), phi.mutable_data());
        }
        return phi;
      },
      py::arg("n_segments"), py::arg("coalitions"), py::arg("values"));
  m.def(
      "owen_values_batch",
      [](const py::array& n_segments_in, const py::array& offsets_in, const py::array& coalitions_in,
         const py::array& values_in) {
        const auto n_segments = require<int64_t>(n_segments_in, "n_segments", {-1});
        const int64_t n_responses = n_segments.size();
        const auto offsets = require<int64_t>(offsets_in, "coalition_offsets", {n_responses + 1});
        const auto values = require<double>(values_in, "values", {-1});
        const auto windows = require<int32_t>(coalitions_in, "coalitions", {values.size(), 2});
        require_offsets(offsets, values.size(), "coalition_offsets", "values");
        require_finite(values, "values");
        py::array_t<int64_t> phi_offsets(n_responses + 1);
        int64_t* phi_offsets_data = phi_offsets.mutable_data();
        phi_offsets_data[0] = 0;
        for (int64_t b = 0; b < n_responses; ++b) {
          if (n_segments.data()[b] < 0)
            throw py::value_error("n_segments must be >= 0, got " + std::to_string(n_segments.data()[b]) +
                                  " at index " + std::to_string(b));
          phi_offsets_data[b + 1] = phi_offsets_data[b] + n_segments.data()[b];
        }
        py::array_t<double> phi(py::ssize_t{phi_offsets_data[n_responses]});
        {
          py::gil_scoped_release release;
          ospo::owen_values_batch(n_segments.data(), n_responses, offsets.data(), as_windows(windows), values.data(),
                                  phi_offsets_data, phi.mutable_data());
        }
        return py::make_tuple(phi, phi_offsets);
      },
      py::arg("n_segments"), py::arg("coalition_offsets"), py::arg("coalitions"), py::arg("values"));
  m.def(
      "exact_shapley",
      [](const py::array& values_in) {
        const auto values = require<double>(values_in, "values", {-1});
        require_finite(values, "values");
        const int64_t n_masks = values.size();
        int64_t n_players = 0;
        while ((int64_t(1) << n_players) < n_masks) ++n_players;
        if ((int64_t(1) << n_players) != n_masks)
          throw py::value_error("values must have 2**n entries, got " + std::to_string(n_masks));
        if (n_players > 26) throw py::value_error("exact_shapley supports at most 26 players, got " +
                                                  std::to_string(n_players));
        py::array_t<double> phi(py::ssize_t{n_players});
        {
          py::gil_scoped_release release;
          ospo::exact_shapley(values.data(), n_players, phi.mutable_data());
        }
        return phi;
      },
      py::arg("values"));
}

}  // namespace ospo_bindings
