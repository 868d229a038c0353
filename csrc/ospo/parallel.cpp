#include "ospo/parallel.h"

#include <atomic>

namespace ospo {

namespace {
std::atomic<int> configured_threads{0};
}

int default_threads() {
  const int configured = configured_threads.load();
  if (configured > 0) return configured;
  const unsigned hardware = std::thread::hardware_concurrency();
  return hardware == 0 ? 1 : static_cast<int>(hardware);
}

void set_default_threads(int n_threads) { configured_threads.store(n_threads > 0 ? n_threads : 0); }

}  // namespace ospo
