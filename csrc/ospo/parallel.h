// A minimal parallel-for over independent work items (responses, queries). The core
// has no thread pool: each call starts at most `max_threads` std::threads, which
// pays off only for large batches, hence the `min_items_per_thread` gate.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace ospo {

int default_threads();
void set_default_threads(int n_threads);

// Calls body(begin, end) over disjoint contiguous ranges covering [0, n_items).
// The first exception thrown by any range is rethrown on the calling thread.
template <typename Body>
void parallel_for(int64_t n_items, int64_t min_items_per_thread, Body body) {
  const int64_t wanted = min_items_per_thread > 0 ? n_items / min_items_per_thread : n_items;
  const int64_t n_threads = std::max<int64_t>(1, std::min<int64_t>(default_threads(), wanted));
  if (n_threads == 1) {
    body(int64_t(0), n_items);
    return;
  }
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(n_threads);
  const int64_t chunk = (n_items + n_threads - 1) / n_threads;
  for (int64_t t = 0; t < n_threads; ++t) {
    const int64_t begin = t * chunk;
    const int64_t end = std::min(n_items, begin + chunk);
    if (begin >= end) break;
    threads.emplace_back([&, t, begin, end] {
      try {
        body(begin, end);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (auto& error : errors)
    if (error) std::rethrow_exception(error);
}

}  // namespace ospo
