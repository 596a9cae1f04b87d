// Thread-count handling and a reduction whose result does not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "errors.hpp"

namespace latentmf {

inline int available_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// 0 means "all available"; without OpenMP every request runs on one thread.
inline int resolve_threads(int requested) {
  require(requested >= 0, "threads must be >= 1 (or None for all cores), got ", requested);
  return requested == 0 ? available_threads() : requested;
}

// Splits [0, n) into chunks whose boundaries depend on n only, so that per-chunk partial sums
// added in chunk order give the same bits for any thread count.
struct FixedChunks {
  std::int64_t n;
  std::int64_t size;

  explicit FixedChunks(std::int64_t n_, std::int64_t min_size = 1024, std::int64_t max_chunks = 1024)
      : n(n_), size(std::max<std::int64_t>(min_size, (n_ + max_chunks - 1) / max_chunks)) {}
  std::int64_t count() const { return n == 0 ? 0 : (n + size - 1) / size; }
  std::int64_t begin(std::int64_t chunk) const { return chunk * size; }
  std::int64_t end(std::int64_t chunk) const { return std::min(n, (chunk + 1) * size); }
};

// Sums partial(begin, end) over the fixed chunks of [0, n), in parallel, deterministically.
// Sum is double or any type with += (a few doubles, say).
template <class Sum = double, class Partial>
Sum deterministic_sum(std::int64_t n, int threads, Partial&& partial) {
  const FixedChunks chunks(n);
  std::vector<Sum> sums(static_cast<std::size_t>(chunks.count()), Sum{});
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
  for (std::int64_t c = 0; c < chunks.count(); ++c) sums[c] = partial(chunks.begin(c), chunks.end(c));
  (void)threads;
  Sum total{};
  for (const Sum& s : sums) total += s;
  return total;
}

// Runs body(i) for i in [0, n) on `threads` threads; body must not throw.
template <class Body>
void parallel_for(std::int64_t n, int threads, Body&& body, std::int64_t grain = 64) {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, grain) num_threads(threads)
#endif
  for (std::int64_t i = 0; i < n; ++i) body(i);
  (void)threads;
  (void)grain;
}

}  // namespace latentmf
