// Ratings as COO triples (user index, item index, value) viewed in the caller's memory, and the
// checks every native routine runs before it reads them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "errors.hpp"
#include "parallel.hpp"

namespace latentmf {

// users[k], items[k], values[k] for k in [0, size); indices in [0, n_users) x [0, n_items).
template <class Index, class Value>
struct Coo {
  const Index* users;
  const Index* items;
  const Value* values;
  std::int64_t size;
  std::int64_t n_users;
  std::int64_t n_items;
};

// The first k in [begin, end) whose rating is unusable, or r.size when there is none.
template <class Index, class Value>
std::int64_t first_bad_rating(const Coo<Index, Value>& r, std::int64_t begin, std::int64_t end) {
  for (std::int64_t k = begin; k < end; ++k) {
    const bool ok = r.users[k] >= 0 && r.users[k] < r.n_users && r.items[k] >= 0 &&
                    r.items[k] < r.n_items && std::isfinite(r.values[k]);
    if (!ok) return k;
  }
  return r.size;
}

// Throws for the first (lowest k) out-of-range index or non-finite value, naming it.
template <class Index, class Value>
void check_ratings(const Coo<Index, Value>& r, int threads) {
  require(r.n_users >= 1, "n_users must be >= 1, got ", r.n_users);
  require(r.n_items >= 1, "n_items must be >= 1, got ", r.n_items);
  const Chunks chunks = even_chunks(r.size, 1 << 16);
  // The first bad rating of each chunk, then the lowest of them (a min reduction would need
  // OpenMP 3.1, which MSVC's /openmp lacks).
  std::vector<std::int64_t> first_in_chunk(static_cast<std::size_t>(chunks.count()), r.size);
  parallel_for(chunks.count(), threads,
               [&](std::int64_t c) { first_in_chunk[c] = first_bad_rating(r, chunks.begin(c), chunks.end(c)); });
  std::int64_t first = r.size;
  for (std::int64_t k : first_in_chunk) first = std::min(first, k);
  if (first == r.size) return;
  const auto k = first;
  require(r.users[k] >= 0 && r.users[k] < r.n_users, "users[", k, "] = ", +r.users[k],
          " is outside [0, n_users=", r.n_users, ")");
  require(r.items[k] >= 0 && r.items[k] < r.n_items, "items[", k, "] = ", +r.items[k],
          " is outside [0, n_items=", r.n_items, ")");
  fail("values[", k, "] = ", r.values[k], " is not a finite number");
}

// Compact internal indices are 32-bit: larger shapes are refused rather than truncated.
inline void check_index_range(std::int64_t n_users, std::int64_t n_items) {
  constexpr std::int64_t max = std::numeric_limits<std::int32_t>::max();
  require(n_users <= max, "n_users = ", n_users, " exceeds the supported maximum ", max);
  require(n_items <= max, "n_items = ", n_items, " exceeds the supported maximum ", max);
}

}  // namespace latentmf
