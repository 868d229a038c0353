// Size arithmetic on counts that come from callers (segment counts, widths, budgets).
// A wrapped sum or product would turn a bad count into a small allocation and a write
// past its end, so each of these throws std::overflow_error instead of wrapping.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace ospo {

// Windows store int32 bounds, so a response may have at most this many segments.
constexpr int64_t kMaxWindowSegments = INT32_MAX;

inline int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t sum;
  if (__builtin_add_overflow(a, b, &sum))
    throw std::overflow_error(std::string(what) + " overflows int64 (" + std::to_string(a) + " + " +
                              std::to_string(b) + ")");
  return sum;
}

inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t product;
  if (__builtin_mul_overflow(a, b, &product))
    throw std::overflow_error(std::string(what) + " overflows int64 (" + std::to_string(a) + " * " +
                              std::to_string(b) + ")");
  return product;
}

}  // namespace ospo
