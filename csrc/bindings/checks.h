// Argument checks for the bindings: every error names the argument and shows what it
// got, and nothing malformed ever reaches the core.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ospo/math.h"

namespace ospo_bindings {

namespace py = pybind11;

inline std::string shape_of(const py::array& array) {
  std::string text = "(";
  for (py::ssize_t d = 0; d < array.ndim(); ++d) text += (d ? ", " : "") + std::to_string(array.shape(d));
  return text + (array.ndim() == 1 ? ",)" : ")");
}

// The array as C-contiguous T after checking its dtype and shape; -1 in `shape`
// accepts any length on that axis.
template <typename T>
py::array_t<T, py::array::c_style> require(const py::array& array, const char* name, std::vector<int64_t> shape) {
  if (!array.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + " must have dtype " + std::string(py::str(py::dtype::of<T>())) +
                         ", got " + std::string(py::str(array.dtype())));
  bool matches = array.ndim() == py::ssize_t(shape.size());
  for (size_t d = 0; matches && d < shape.size(); ++d) matches = shape[d] < 0 || array.shape(d) == shape[d];
  if (!matches) {
    std::string wanted = "(";
    for (size_t d = 0; d < shape.size(); ++d)
      wanted += (d ? ", " : "") + (shape[d] < 0 ? std::string("*") : std::to_string(shape[d]));
    wanted += shape.size() == 1 ? ",)" : ")";
    throw py::value_error(std::string(name) + " must have shape " + wanted + ", got " + shape_of(array));
  }
  return py::array_t<T, py::array::c_style>::ensure(array);
}

template <typename T>
void require_finite(const py::array_t<T, py::array::c_style>& array, const char* name) {
  const T* data = array.data();
  for (py::ssize_t i = 0; i < array.size(); ++i)
    if (!std::isfinite(double(data[i])))
      throw py::value_error(std::string(name) + " must be finite, got " + std::to_string(double(data[i])) +
                            " at flat index " + std::to_string(i));
}

inline void require_non_negative(int64_t value, const char* name) {
  if (value < 0) throw py::value_error(std::string(name) + " must be >= 0, got " + std::to_string(value));
}

inline void require_positive(int64_t value, const char* name) {
  if (value < 1) throw py::value_error(std::string(name) + " must be >= 1, got " + std::to_string(value));
}

// offsets [B+1] must start at 0, never decrease and end at `total`.
inline void require_offsets(const py::array_t<int64_t, py::array::c_style>& offsets, int64_t total, const char* name,
                            const char* total_name) {
  const int64_t* data = offsets.data();
  const py::ssize_t n = offsets.size();
  if (n == 0 || data[0] != 0)
    throw py::value_error(std::string(name) + " must start at 0 and have B + 1 entries");
  for (py::ssize_t i = 1; i < n; ++i)
    if (data[i] < data[i - 1])
      throw py::value_error(std::string(name) + " must not decrease, but entry " + std::to_string(i) + " (" +
                            std::to_string(data[i]) + ") < entry " + std::to_string(i - 1) + " (" +
                            std::to_string(data[i - 1]) + ")");
  if (data[n - 1] != total)
    throw py::value_error(std::string(name) + " must end at the length of " + total_name + " (" +
                          std::to_string(total) + "), got " + std::to_string(data[n - 1]));
}

inline ospo::Gain parse_gain(const std::string& gain) {
  if (gain == "linear") return ospo::Gain::Linear;
  if (gain == "exp") return ospo::Gain::Exp;
  throw py::value_error("gain must be 'linear' or 'exp', got '" + gain + "'");
}

inline ospo::Mode parse_mode(const std::string& mode) {
  if (mode == "prop") return ospo::Mode::Prop;
  if (mode == "rank") return ospo::Mode::Rank;
  if (mode == "hybrid") return ospo::Mode::Hybrid;
  throw py::value_error("mode must be 'prop', 'rank' or 'hybrid', got '" + mode + "'");
}

inline void require_alpha(double alpha) {
  if (!(alpha >= 0.0 && alpha <= 1.0)) throw py::value_error("alpha must be in [0, 1], got " + std::to_string(alpha));
}

}  // namespace ospo_bindings
