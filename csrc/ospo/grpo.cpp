#include "ospo/grpo.h"

#include <cmath>

namespace ospo {

void group_advantages(const double* rewards, int64_t n_rewards, int64_t group_size, double eps, bool scale_by_std,
                      double* out) {
  for (int64_t start = 0; start < n_rewards; start += group_size) {
    double mean = 0.0;
    for (int64_t i = 0; i < group_size; ++i) mean += rewards[start + i];
    mean /= double(group_size);
    double squares = 0.0;
    for (int64_t i = 0; i < group_size; ++i) squares += (rewards[start + i] - mean) * (rewards[start + i] - mean);
    const double scale = scale_by_std ? 1.0 / (std::sqrt(squares / double(group_size - 1)) + eps) : 1.0;
    for (int64_t i = 0; i < group_size; ++i) out[start + i] = (rewards[start + i] - mean) * scale;
  }
}

}  // namespace ospo
