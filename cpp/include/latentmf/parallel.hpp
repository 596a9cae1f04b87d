// Thread counts, and parallel loops whose results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "errors.hpp"

namespace latentmf {

// The processors this process may run on (at least 1).
inline int processor_count() {
#ifdef _OPENMP
  return std::max(1, omp_get_num_procs());
#else
  return 1;
#endif
}

// The threads a parallel loop starts when none are asked for: OpenMP's default (OMP_NUM_THREADS,
// else one per processor), at most one per processor.
inline int available_threads() {
#ifdef _OPENMP
  return std::max(1, std::min(omp_get_max_threads(), processor_count()));
#else
  return 1;
#endif
}

// OMP_NUM_THREADS's value (a count, or "n,m,..." with one count per nesting level) with every count
// above `limit` lowered to it; no value when no count is above `limit` or the value is no such list
// (an OpenMP runtime then reads it as it is). The extension starts the OpenMP runtime with this
// value when there is one (cpp/bindings/openmp.cpp says why).
inline std::optional<std::string> bounded_thread_counts(const std::string& value, int limit) {
  std::vector<std::string> entries;
  std::size_t begin = 0;
  for (std::size_t comma; (comma = value.find(',', begin)) != std::string::npos; begin = comma + 1)
    entries.push_back(value.substr(begin, comma - begin));
  entries.push_back(value.substr(begin));
  std::string bounded;
  bool lowered = false;
  for (const std::string& entry : entries) {
    const std::size_t first = entry.find_first_not_of(" \t"), last = entry.find_last_not_of(" \t");
    if (first == std::string::npos) return std::nullopt;
    const std::string count = entry.substr(first, last + 1 - first);
    if (count.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    // Without its leading zeros, a count of more than 9 digits is above any limit an int holds.
    const std::string digits = count.substr(std::min(count.find_first_not_of('0'), count.size() - 1));
    const bool above = digits.size() > 9 || std::stoi(digits) > limit;
    lowered = lowered || above;
    bounded += (bounded.empty() ? "" : ",") + (above ? std::to_string(limit) : digits);
  }
  if (!lowered) return std::nullopt;
  return bounded;
}

// 0 means "all available"; without OpenMP every request runs on one thread. Requests beyond the
// processors are reduced to them: more threads would only take turns on the same processors
// (results never depend on the count), and the OpenMP runtime ends the whole process, with no
// error to catch, when it cannot start or allocate the threads of an absurd request.
inline int resolve_threads(int requested) {
  require(requested >= 0, "threads must be >= 1 (or None for all cores), got ", requested);
  return requested == 0 ? available_threads() : std::min(requested, processor_count());
}

// A split of [0, n) into consecutive chunks. The boundaries depend on the data only, so that
// partial results combined in chunk order give the same bits for any thread count.
struct Chunks {
  std::vector<std::int64_t> bounds;  // chunk c is [bounds[c], bounds[c + 1])

  std::int64_t count() const { return std::int64_t(bounds.size()) - 1; }
  std::int64_t begin(std::int64_t c) const { return bounds[c]; }
  std::int64_t end(std::int64_t c) const { return bounds[c + 1]; }
};

// Equal chunks of at least min_size elements, at most max_chunks of them.
inline Chunks even_chunks(std::int64_t n, std::int64_t min_size = 1024, std::int64_t max_chunks = 1024) {
  const std::int64_t size = std::max<std::int64_t>({1, min_size, (n + max_chunks - 1) / max_chunks});
  Chunks chunks;
  for (std::int64_t b = 0; b < n; b += size) chunks.bounds.push_back(b);
  chunks.bounds.push_back(n);
  return chunks;
}

// Chunks of rows holding about equal work, for rows r whose items are [offsets[r], offsets[r + 1]):
// the work of a row is its items plus one, so that long rows and many empty rows both count.
inline Chunks balanced_chunks(const std::vector<std::int64_t>& offsets, std::int64_t max_chunks = 512) {
  const std::int64_t rows = std::int64_t(offsets.size()) - 1;
  const double total = double(offsets.back() + rows);
  const double per_chunk = std::max(total / double(max_chunks), 2048.0);
  Chunks chunks;
  chunks.bounds.push_back(0);
  double next = per_chunk;
  for (std::int64_t r = 1; r < rows; ++r) {
    if (double(offsets[r] + r) >= next) {
      chunks.bounds.push_back(r);
      next = double(offsets[r] + r) + per_chunk;
    }
  }
  chunks.bounds.push_back(rows);
  return chunks;
}

// Runs body(i) for i in [0, n) on `threads` threads, `grain` consecutive indices at a time.
// body must not throw.
template <class Body>
void parallel_for(std::int64_t n, int threads, Body&& body, std::int64_t grain = 1) {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, grain) num_threads(threads)
#endif
  for (std::int64_t i = 0; i < n; ++i) body(i);
  (void)threads;
  (void)grain;
}

// The sum over chunks of partial(begin, end), computed in parallel and added in chunk order.
// Sum is double or any type with += (a few doubles, say).
template <class Sum = double, class Partial>
Sum deterministic_sum(const Chunks& chunks, int threads, Partial&& partial) {
  std::vector<Sum> sums(static_cast<std::size_t>(std::max<std::int64_t>(chunks.count(), 0)), Sum{});
  parallel_for(chunks.count(), threads, [&](std::int64_t c) { sums[c] = partial(chunks.begin(c), chunks.end(c)); });
  Sum total{};
  for (const Sum& s : sums) total += s;
  return total;
}

}  // namespace latentmf
