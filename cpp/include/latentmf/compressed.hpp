// Ratings grouped by user (CSR) and by item (CSC): the orderings that let E V and E^T U be
// computed one output row at a time, in parallel, with no atomics.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "memory.hpp"
#include "parallel.hpp"
#include "ratings.hpp"

namespace latentmf {

// The ratings of row r are cols[offsets[r] .. offsets[r + 1]) with values alike, in input order.
template <class Scalar>
struct CompressedRatings {
  std::int64_t n_rows = 0;
  std::vector<std::int64_t> offsets;
  std::vector<std::int32_t> cols;
  std::vector<Scalar> values;

  std::int64_t count(std::int64_t row) const { return offsets[row + 1] - offsets[row]; }
  // The ratings of every row.
  std::vector<std::int64_t> counts() const {
    std::vector<std::int64_t> out(static_cast<std::size_t>(n_rows));
    for (std::int64_t r = 0; r < n_rows; ++r) out[r] = count(r);
    return out;
  }
};

// Stable counting sort of the triples by row; indices must already be checked. With values null
// only the pattern (offsets and cols) is built.
template <class Scalar, class Index, class Value>
CompressedRatings<Scalar> compress(const Index* rows, const Index* cols, const Value* values,
                                   std::int64_t size, std::int64_t n_rows) {
  check_available(8.0 * (double(n_rows) + 1) + double(size) * (4.0 + (values ? sizeof(Scalar) : 0)),
                  "the ratings grouped by row");
  CompressedRatings<Scalar> out;
  out.n_rows = n_rows;
  out.offsets = allocate<std::int64_t>(n_rows + 1, "row offsets");
  out.cols = allocate<std::int32_t>(size, "compressed indices");
  if (values) out.values = allocate<Scalar>(size, "compressed values");
  for (std::int64_t k = 0; k < size; ++k) ++out.offsets[rows[k] + 1];
  for (std::int64_t r = 0; r < n_rows; ++r) out.offsets[r + 1] += out.offsets[r];
  std::vector<std::int64_t> next(out.offsets.begin(), out.offsets.end() - 1);
  for (std::int64_t k = 0; k < size; ++k) {
    const std::int64_t slot = next[rows[k]]++;
    out.cols[slot] = static_cast<std::int32_t>(cols[k]);
    if (values) out.values[slot] = static_cast<Scalar>(values[k]);
  }
  return out;
}

// Sorts the cols of every row (a pattern built without values), so that each row can be merged
// against other sorted sequences.
template <class Scalar>
void sort_rows(CompressedRatings<Scalar>& pattern, int threads) {
  parallel_for(pattern.n_rows, threads, [&](std::int64_t r) {
    std::sort(pattern.cols.begin() + pattern.offsets[r], pattern.cols.begin() + pattern.offsets[r + 1]);
  }, 256);
}

// Both orderings of one set of ratings, built once and reused by every loss and gradient call.
template <class Scalar>
struct RatingsIndex {
  std::int64_t size = 0;
  std::int64_t n_users = 0;
  std::int64_t n_items = 0;
  CompressedRatings<Scalar> by_user;
  CompressedRatings<Scalar> by_item;

  RatingsIndex() = default;

  template <class Index, class Value>
  RatingsIndex(const Coo<Index, Value>& r, int threads) : size(r.size), n_users(r.n_users), n_items(r.n_items) {
    check_ratings(r, threads);
    check_index_range(r.n_users, r.n_items);
    // Both orderings: offsets per user and per item, and an index and a value per rating on each side.
    check_available(8.0 * (double(r.n_users) + double(r.n_items) + 2) + 2.0 * double(r.size) * (4 + sizeof(Scalar)),
                    "the by-user and by-item orderings of the ratings");
    by_user = compress<Scalar>(r.users, r.items, r.values, r.size, r.n_users);
    by_item = compress<Scalar>(r.items, r.users, r.values, r.size, r.n_items);
  }
};

}  // namespace latentmf
