#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings/checks.h"
#include "ospo/owen.h"

namespace ospo_bindings {

namespace {

const ospo::Window* as_windows(const py::array_t<int32_t, py::array::c_style>& coalitions) {
  return reinterpret_cast<const ospo::Window*>(coalitions.data());
}

void require_coalition_values(const py::array_t<double, py::array::c_style>& values) {
  require_finite(values, "values");
  require_magnitude(values, kMaxCoalitionValue, "values", "differences of coalition values must stay finite");
}

// phi_offsets [B+1]: the running sum of n_segments [B], each >= 0, without overflow.
py::array_t<int64_t> segment_offsets(const py::array_t<int64_t, py::array::c_style>& n_segments) {
  const int64_t n_responses = n_segments.size();
  py::array_t<int64_t> offsets(n_responses + 1);
  int64_t* data = offsets.mutable_data();
  data[0] = 0;
  for (int64_t b = 0; b < n_responses; ++b) {
    const int64_t count = n_segments.data()[b];
    if (count < 0)
      throw py::value_error("n_segments must be >= 0, got " + std::to_string(count) + " at index " + std::to_string(b));
    data[b + 1] = add_sizes(data[b], count, "the sum of n_segments (at index " + std::to_string(b) + ")");
  }
  return offsets;
}

}  // namespace

void bind_owen(py::module_& m) {
  m.def(
      "owen_values",
      [](int64_t n_segments, const py::array& coalitions_in, const py::array& values_in, const std::string& estimator) {
        require_non_negative(n_segments, "n_segments");
        const ospo::Estimator parsed = parse_estimator(estimator);
        const auto values = require<double>(values_in, "values", {-1});
        require_coalition_values(values);
        const bool masks_given = has_dtype<bool>(coalitions_in);
        const auto masks = masks_given ? require<bool>(coalitions_in, "coalitions", {values.size(), n_segments})
                                       : py::array_t<bool, py::array::c_style>();
        const auto windows = masks_given ? py::array_t<int32_t, py::array::c_style>()
                                         : require<int32_t>(coalitions_in, "coalitions", {values.size(), 2});
        require_allocatable(n_segments, sizeof(double), "phi [n_segments = " + std::to_string(n_segments) + "]");
        py::array_t<double> phi(py::ssize_t{n_segments});
        if (masks_given)
          ospo::owen_values_masks(n_segments, reinterpret_cast<const uint8_t*>(masks.data()), values.data(),
                                  values.size(), parsed, phi.mutable_data());
        else
          ospo::owen_values_windows(n_segments, as_windows(windows), values.data(), values.size(), parsed,
                                    phi.mutable_data());
        return phi;
      },
      py::arg("n_segments"), py::arg("coalitions"), py::arg("values"), py::arg("estimator") = "spec");
  m.def(
      "owen_values_batch",
      [](const py::array& n_segments_in, const py::array& offsets_in, const py::array& coalitions_in,
         const py::array& values_in, const std::string& estimator) {
        const ospo::Estimator parsed = parse_estimator(estimator);
        const auto n_segments = require<int64_t>(n_segments_in, "n_segments", {-1});
        const int64_t n_responses = n_segments.size();
        const auto offsets = require<int64_t>(offsets_in, "coalition_offsets", {n_responses + 1});
        const auto values = require<double>(values_in, "values", {-1});
        const auto windows = require<int32_t>(coalitions_in, "coalitions", {values.size(), 2});
        require_offsets(offsets, values.size(), "coalition_offsets", "values");
        require_coalition_values(values);
        py::array_t<int64_t> phi_offsets = segment_offsets(n_segments);
        const int64_t total = phi_offsets.data()[n_responses];
        require_allocatable(total, sizeof(double), "phi [sum(n_segments) = " + std::to_string(total) + "]");
        py::array_t<double> phi(py::ssize_t{total});
        {
          py::gil_scoped_release release;
          ospo::owen_values_batch(n_segments.data(), n_responses, offsets.data(), as_windows(windows), values.data(),
                                  phi_offsets.data(), parsed, phi.mutable_data());
        }
        return py::make_tuple(phi, phi_offsets);
      },
      py::arg("n_segments"), py::arg("coalition_offsets"), py::arg("coalitions"), py::arg("values"),
      py::arg("estimator") = "spec");
  m.def(
      "exact_shapley",
      [](const py::array& values_in) {
        const auto values = require<double>(values_in, "values", {-1});
        require_coalition_values(values);
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
