// GRPO group-relative advantages (spec §7). Twin: reference.py group_advantages.
#pragma once

#include <cstdint>

namespace ospo {

// rewards [B] in consecutive groups of group_size; the std is unbiased (as torch.std).
// A group of equal rewards gets 0 even with eps = 0. scale_by_std = false gives Dr.
// GRPO's centred rewards, finite for |r| <= DBL_MAX / 2.
void group_advantages(const double* rewards /*[B]*/, int64_t n_rewards, int64_t group_size, double eps,
                      bool scale_by_std, double* out /*[B]*/);

}  // namespace ospo
