// Argument checks for the bindings: every error names the argument and shows what it
// got, and nothing malformed ever reaches the core.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "ospo/checked.h"
#include "ospo/math.h"

namespace ospo_bindings {

namespace py = pybind11;

// A double as Python prints it at six significant digits (std::to_string writes every
// digit of 1e308).
inline std::string format_number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

inline std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int unit = 0;
  while (bytes >= 1024.0 && unit < 6) bytes /= 1024.0, ++unit;
  return format_number(bytes) + " " + units[unit];
}

[[noreturn]] inline void raise_memory_error(const std::string& message) {
  PyErr_SetString(PyExc_MemoryError, message.c_str());
  throw py::error_already_set();
}

// Bytes this process may still allocate: the kernel's MemAvailable (else the physical
// memory), capped by an address-space limit when one is set.
inline double allocatable_bytes() {
  double bytes = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kib = 0.0;
  while (meminfo >> key >> kib) {
    if (key == "MemAvailable:") {
      bytes = kib * 1024.0;
      break;
    }
    meminfo.ignore(256, '\n');
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
    bytes = std::min(bytes, double(limit.rlim_cur));
  return bytes;
}

// MemoryError naming `what` (the argument the size comes from, and its value) when
// `n_elements` of `element_bytes` cannot be allocated here. Sizes below 256 MiB pass
// without a look at the system. Such a request would otherwise fail deep inside the
// core as "std::bad_alloc", or succeed on paper and summon the OOM killer.
inline void require_allocatable(int64_t n_elements, int64_t element_bytes, const std::string& what) {
  const double bytes = double(n_elements) * double(element_bytes);
  if (bytes <= double(int64_t(256) << 20)) return;
  const double available = allocatable_bytes();
  if (bytes > available)
    raise_memory_error(what + " needs " + format_bytes(bytes) + ", more than the " + format_bytes(available) +
                       " this process can allocate");
}

// Runs `call`, turning an allocation failure inside it into a MemoryError naming `what`.
template <typename Call>
auto naming_allocation_failure(const std::string& what, Call call) -> decltype(call()) {
  try {
    return call();
  } catch (const std::bad_alloc&) {
    raise_memory_error(what + ": out of memory");
  } catch (const std::length_error&) {
    raise_memory_error(what + ": more elements than a vector holds");
  }
}

// a + b for sizes derived from argument `name`, or ValueError naming it.
inline int64_t add_sizes(int64_t a, int64_t b, const std::string& name) {
  int64_t sum;
  if (__builtin_add_overflow(a, b, &sum))
    throw py::value_error(name + " overflows int64 (" + std::to_string(a) + " + " + std::to_string(b) + ")");
  return sum;
}

inline int64_t multiply_sizes(int64_t a, int64_t b, const std::string& name) {
  int64_t product;
  if (__builtin_mul_overflow(a, b, &product))
    throw py::value_error(name + " overflows int64 (" + std::to_string(a) + " * " + std::to_string(b) + ")");
  return product;
}

inline std::string shape_of(const py::array& array) {
  std::string text = "(";
  for (py::ssize_t d = 0; d < array.ndim(); ++d) text += (d ? ", " : "") + std::to_string(array.shape(d));
  return text + (array.ndim() == 1 ? ",)" : ")");
}

// Same kind and size as T. dtype objects are not compared by identity: an array that
// went through pickle (multiprocessing, DataLoader workers, Ray) carries an equal but
// distinct dtype object, and int64 has two spellings ('l' and 'q'). A non-native byte
// order has the same kind and size; `require` converts it.
template <typename T>
bool has_dtype(const py::array& array) {
  const py::dtype wanted = py::dtype::of<T>(), got = array.dtype();
  return got.kind() == wanted.kind() && got.itemsize() == wanted.itemsize();
}

// The array as C-contiguous native T after checking its dtype and shape; -1 in
// `shape` accepts any length on that axis.
template <typename T>
py::array_t<T, py::array::c_style> require(const py::array& array, const char* name, std::vector<int64_t> shape) {
  if (!has_dtype<T>(array))
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

// |x| <= limit everywhere, so the sums the core forms from these values stay finite;
// `why` says which sums.
template <typename T>
void require_magnitude(const py::array_t<T, py::array::c_style>& array, double limit, const char* name,
                       const char* why) {
  const T* data = array.data();
  for (py::ssize_t i = 0; i < array.size(); ++i)
    if (!(std::fabs(double(data[i])) <= limit))
      throw py::value_error(std::string(name) + " must satisfy |x| <= " + format_number(limit) + " (" + why +
                            "), got " + format_number(double(data[i])) + " at flat index " + std::to_string(i));
}

// Largest |coalition value| the Owen and Shapley sums take: a difference of two values
// and a weighted sum of differences (the weights sum to at most 1) then stay finite.
constexpr double kMaxCoalitionValue = ospo::kMaxDouble / 4.0;

// Largest |advantage| of a row of `n_tokens` tokens: A_t = T p_t Â with p_t <= 1.
inline double advantage_limit(int64_t n_tokens) {
  return ospo::kMaxDouble / double(n_tokens > 1 ? n_tokens : 1);
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
  if (mode == "signed") return ospo::Mode::Signed;
  throw py::value_error("mode must be 'prop', 'rank', 'hybrid' or 'signed', got '" + mode + "'");
}

inline ospo::Estimator parse_estimator(const std::string& estimator) {
  if (estimator == "spec") return ospo::Estimator::Spec;
  if (estimator == "stratified") return ospo::Estimator::Stratified;
  throw py::value_error("estimator must be 'spec' or 'stratified', got '" + estimator + "'");
}

// Signed mode's credit scales [B]: finite and >= 0 (they turn NDCG units into advantage units).
inline void require_credit_scales(const double* scales, int64_t n, const char* name = "credit_scale") {
  for (int64_t b = 0; b < n; ++b)
    if (!(std::isfinite(scales[b]) && scales[b] >= 0.0))
      throw py::value_error(std::string(name) + " must be finite and >= 0, got " + format_number(scales[b]) +
                            (n > 1 ? " at index " + std::to_string(b) : std::string()));
}

// Signed mode adds scaled credit to Â, which no input bound keeps finite for every scale:
// the result is checked instead, naming what to lower.
template <typename T>
inline void require_finite_result(const T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(double(out[i])))
      throw py::value_error("mode 'signed' gave a non-finite advantage at flat index " + std::to_string(i) +
                            ": lower credit_scale or the advantages");
}

// A segment count of windows, which hold int32 bounds; `where` locates it ("at index 3").
inline void require_window_segments(int64_t n_segments, const std::string& name, const std::string& where = "") {
  const std::string got = ", got " + std::to_string(n_segments) + (where.empty() ? "" : " " + where);
  if (n_segments < 0) throw py::value_error(name + " must be >= 0" + got);
  if (n_segments > ospo::kMaxWindowSegments)
    throw py::value_error(name + " must be < 2**31 (windows hold int32 bounds)" + got);
}

// Every row of relevance [rows, length] keeps its gains below DBL_MAX / (2 length), so
// no DCG or ideal DCG of the row overflows (discounts are at most 1). Entries whose
// `items` [rows, length] is -1 are padding and never scored; `items` may be null.
inline void require_gains_fit(const double* relevance, const int64_t* items, int64_t n_rows, int64_t length,
                              ospo::Gain gain, const char* name) {
  const double limit = ospo::kMaxDouble / (2.0 * double(length > 1 ? length : 1));
  for (int64_t i = 0; i < n_rows * length; ++i) {
    if (items != nullptr && items[i] < 0) continue;
    const double value = ospo::gain_value(relevance[i], gain);
    if (!(std::fabs(value) <= limit))
      throw py::value_error(std::string(name) + " row " + std::to_string(i / length) + " holds " +
                            format_number(relevance[i]) + ", whose gain " +
                            (gain == ospo::Gain::Exp ? "2**rel - 1" : "rel") + " is past " + format_number(limit) +
                            " (DBL_MAX / (2 * " + std::to_string(length) + "), so that its DCG stays finite)");
  }
}

inline void require_alpha(double alpha) {
  if (!(alpha >= 0.0 && alpha <= 1.0)) throw py::value_error("alpha must be in [0, 1], got " + std::to_string(alpha));
}

}  // namespace ospo_bindings
