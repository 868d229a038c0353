#include "ospo/grpo.h"

#include <algorithm>
#include <cmath>

namespace ospo {

void group_advantages(const double* rewards, int64_t n_rewards, int64_t group_size, double eps, bool scale_by_std,
                      double* out) {
  for (int64_t start = 0; start < n_rewards; start += group_size) {
    const double* group = rewards + start;
    // Work in units of the power of two at or just below max |r| (scaled rewards lie in
    // (-2, 2)): dividing by it is exact, and no sum or square of the group can overflow
    // however large the rewards (a unit just above max |r| would be 2^1024 at DBL_MAX).
    double largest = 0.0;
    for (int64_t i = 0; i < group_size; ++i) largest = std::max(largest, std::fabs(group[i]));
    int exponent = 0;
    std::frexp(largest, &exponent);
    const double unit = std::ldexp(1.0, exponent - 1);
    // The mean is taken as an offset from the first reward, so equal rewards centre to
    // exactly 0 (a plain sum / G is off by an ulp, which eps = 0 would blow up).
    const double first = group[0] / unit;
    double offset = 0.0;
    for (int64_t i = 0; i < group_size; ++i) offset += group[i] / unit - first;
    const double mean = first + offset / double(group_size);
    double squares = 0.0;
    for (int64_t i = 0; i < group_size; ++i) squares += (group[i] / unit - mean) * (group[i] / unit - mean);
    const double denominator = std::sqrt(squares / double(group_size - 1)) + eps / unit;
    for (int64_t i = 0; i < group_size; ++i) {
      const double centred = group[i] / unit - mean;
      // A group without spread has nothing to prefer: 0 / 0 is 0.
      out[start + i] = !scale_by_std ? centred * unit : denominator > 0.0 ? centred / denominator : 0.0;
    }
  }
}

}  // namespace ospo
