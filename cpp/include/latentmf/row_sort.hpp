// The sort that builds the block grid (blocks.hpp): the ratings, in any order, into block order,
// each block's ratings grouped by user in increasing user index into rows, each user's ratings in
// their input order.
//
// In two stages, so that neither scatters ratings over the whole output. First a stable counting
// sort by bucket: a bucket is a run of 2^user_shift consecutive users (in member order) of one
// block, and a block holds ceil(users per group / 2^user_shift) buckets; there are few enough
// buckets for the writes into all of them to stay in cache. Then each bucket, small enough to
// stay in cache, is sorted by user on its own. Between the two stages a rating is known by a
// 32-bit word in the item array: its user's place in its run (the high bits) and its item's member
// number in its group (the low item_bits), so that no temporary array as long as the ratings is
// needed. (One counting sort straight into rows, by a key per user and block, read the input in
// order but wrote every rating to a random place: 90M ratings took 1.9 s on 2 threads.)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "memory.hpp"
#include "parallel.hpp"
#include "prefetch.hpp"
#include "random.hpp"
#include "ratings.hpp"

namespace latentmf {

// The group of each of n objects: group p holds the objects whose position in a seeded permutation
// falls in [p n / B, (p + 1) n / B), so groups differ in size by one at most. `member` numbers
// each group's objects in increasing index order; members[begin[p] + m] is member m of group p.
struct Grouping {
  std::vector<std::int32_t> group;
  std::vector<std::int32_t> member;
  std::vector<std::int64_t> size;
  std::vector<std::int64_t> begin;
  std::vector<std::int32_t> members;

  Grouping(std::int64_t n, int blocks, std::uint64_t seed)
      : group(allocate<std::int32_t>(n, "group assignments")),
        member(allocate<std::int32_t>(n, "group members")),
        size(static_cast<std::size_t>(blocks), 0),
        begin(static_cast<std::size_t>(blocks) + 1, 0),
        members(allocate<std::int32_t>(n, "group members")) {
    const auto perm = random_permutation<std::int32_t>(n, seed);
    int p = 0;
    for (std::int64_t position = 0; position < n; ++position) {
      while (position >= n * (p + 1) / blocks) ++p;
      group[perm[position]] = p;
    }
    for (std::int64_t i = 0; i < n; ++i) member[i] = static_cast<std::int32_t>(size[group[i]]++);
    for (int g = 0; g < blocks; ++g) begin[g + 1] = begin[g] + size[g];
    for (std::int64_t i = 0; i < n; ++i) members[begin[group[i]] + member[i]] = static_cast<std::int32_t>(i);
  }

  std::int64_t largest() const { return *std::max_element(size.begin(), size.end()); }
};

// The sort's output; see BlockGrid for what each holds.
template <class Scalar>
struct SortedRows {
  Buffer<std::int32_t> items;
  Buffer<Scalar> values;
  Buffer<std::int64_t> positions;
  std::vector<std::int32_t> row_user;
  std::vector<std::int64_t> row_begin;
  std::vector<std::int64_t> block_begin, block_rows;
  std::vector<std::int64_t> item_counts;  // ratings per item
};

// Ratings per bucket that the sort aims at. Smaller buckets stay in the second-level cache while
// they are sorted, but more buckets are written at once when the ratings are put into them: on
// 90M ratings 2^15 (3776 buckets) spent twice as long placing them as 2^17 (960), which sorted
// them in about the same time.
constexpr std::int64_t bucket_ratings = std::int64_t(1) << 17;

// Bits of the numbers in [0, n): 0 for n <= 1.
inline int bits_below(std::int64_t n) {
  int bits = 0;
  while (bits < 62 && (std::int64_t(1) << bits) < n) ++bits;
  return bits;
}

// How the ratings are split into buckets: see the top of this file.
struct BucketLayout {
  std::int64_t blocks;       // B
  int item_bits;             // bits of an item's member number
  int user_shift;            // a bucket holds 2^user_shift users of its block
  std::int64_t runs;         // buckets per block
  std::int64_t largest_run;  // users in the fullest bucket: min(2^user_shift, users per group)

  BucketLayout(std::int64_t size, int blocks_per_side, std::int64_t users_per_group, std::int64_t items_per_group)
      : blocks(blocks_per_side), item_bits(bits_below(items_per_group)) {
    // Users per bucket for bucket_ratings ratings in a bucket of average block, as a power of two,
    // at most a whole group, and leaving item_bits of the word to the item.
    const double wanted = double(users_per_group) * double(bucket_ratings) * double(blocks) * double(blocks) /
                          std::max(1.0, double(size));
    const int fitting = int(std::floor(std::log2(std::max(1.0, wanted))));
    user_shift = std::min({fitting, bits_below(users_per_group), 32 - item_bits});
    runs = users_per_group > 0 ? ((users_per_group - 1) >> user_shift) + 1 : 1;
    largest_run = std::min(std::int64_t(1) << user_shift, std::max<std::int64_t>(users_per_group, 1));
  }

  std::int64_t buckets() const { return blocks * blocks * runs; }
};

// The sort of the ratings r into the rows of the grid of `users` and `items` (B groups each).
template <class Scalar>
class RowSort {
 public:
  template <class Index, class Value>
  static SortedRows<Scalar> run(const Coo<Index, Value>& r, const Grouping& users, const Grouping& items, int blocks,
                                bool keep_positions, int threads) {
    return RowSort(r.size, users, items, blocks, threads).sort(r, keep_positions);
  }

  // Bytes the sort needs at most besides its output and the groupings, for `size` ratings.
  static double footprint(std::int64_t size, std::int64_t n_users, std::int64_t n_items, int blocks, int threads) {
    const BucketLayout layout(size, blocks, (n_users + blocks - 1) / blocks, (n_items + blocks - 1) / blocks);
    const double rows = std::min(double(size), double(blocks) * double(n_users)), parts = 4.0 * std::max(threads, 1);
    return 8.0 * double(n_users + n_items) + 4.0 * parts * double(layout.buckets() + n_items) + 12.0 * rows +
           16.0 * std::max(threads, 1) * double(4 * bucket_ratings + layout.largest_run);
  }

 private:
  RowSort(std::int64_t size, const Grouping& users, const Grouping& items, int blocks, int threads)
      : users_(users), items_(items), layout_(size, blocks, users.largest(), items.largest()), threads_(threads) {}

  template <class Index, class Value>
  SortedRows<Scalar> sort(const Coo<Index, Value>& r, bool keep_positions) {
    make_codes();
    const Chunks parts = even_chunks(r.size, 1 << 16, parts_for(r.size, r.n_items));
    SortedRows<Scalar> out;
    auto next = count_buckets(r, parts, out.item_counts);
    out.items = Buffer<std::int32_t>(r.size, "the ratings in block order", false);
    out.values = Buffer<Scalar>(r.size, "the ratings in block order", false);
    if (keep_positions) out.positions = Buffer<std::int64_t>(r.size, "the input positions", false);
    lay_out_buckets(next, parts.count());
    place_in_buckets(r, parts, next, out);
    sort_buckets(out);
    lay_out_rows(out);
    return out;
  }

  // Parts of the input that the first passes run in parallel: several per thread, so that a thread
  // held up (on a busy machine) leaves parts to the others, as long as the parts' counters per item
  // stay small beside the ratings. The parts are written in input order: their number changes
  // nothing in the result.
  std::int64_t parts_for(std::int64_t size, std::int64_t n_items) const {
    const std::int64_t threads = std::max(threads_, 1);
    return std::max(threads, std::min(4 * threads, size / std::max<std::int64_t>(1, 8 * n_items)));
  }

  // A rating's 64-bit code is the sum of its user's and its item's: its bucket in the high 32 bits,
  // its word in the low 32 (the two parts add without carries).
  void make_codes() {
    const BucketLayout& l = layout_;
    const std::uint64_t low_mask = (std::uint64_t(1) << l.user_shift) - 1;
    user_code_ = allocate<std::uint64_t>(std::int64_t(users_.group.size()), "the sort's user codes");
    for (std::size_t n = 0; n < user_code_.size(); ++n) {
      const std::uint64_t p = std::uint64_t(users_.group[n]), m = std::uint64_t(users_.member[n]);
      user_code_[n] = ((p * l.blocks * l.runs + (m >> l.user_shift)) << 32) | ((m & low_mask) << l.item_bits);
    }
    item_code_ = allocate<std::uint64_t>(std::int64_t(items_.group.size()), "the sort's item codes");
    for (std::size_t i = 0; i < item_code_.size(); ++i)
      item_code_[i] = ((std::uint64_t(items_.group[i]) * l.runs) << 32) | std::uint64_t(items_.member[i]);
  }

  // Ratings ahead of the one at hand whose user code is prefetched: the user codes are read at
  // random (3.8 MB for 480k users) and would otherwise miss the cache on every rating.
  static constexpr std::int64_t lookahead = 64;

  // Rating k's code, of the ratings [.., end); asks for the user code of rating k + lookahead. (A
  // function that only prefetched was taken by GCC for one without effects, and its calls dropped.)
  template <class Index, class Value>
  std::uint64_t code(const Coo<Index, Value>& r, std::int64_t k, std::int64_t end) const {
    if (k + lookahead < end && std::uint64_t(r.users[k + lookahead]) < std::uint64_t(r.n_users))
      LATENTMF_PREFETCH(user_code_.data() + r.users[k + lookahead]);
    return user_code_[std::size_t(r.users[k])] + item_code_[std::size_t(r.items[k])];
  }

  // next[c * buckets + b]: the ratings of part c in bucket b; and the ratings of each item (the
  // pass has the items at hand). The same pass checks the ratings (before any of the grid is
  // written), throwing check_ratings' error for the first bad one.
  template <class Index, class Value>
  std::vector<std::uint32_t> count_buckets(const Coo<Index, Value>& r, const Chunks& parts,
                                           std::vector<std::int64_t>& item_counts) const {
    const std::int64_t buckets = layout_.buckets(), n_items = r.n_items;
    auto next = allocate<std::uint32_t>(parts.count() * buckets, "the bucket counts");
    auto per_part = allocate<std::uint32_t>(parts.count() * n_items, "the rating counts");
    std::vector<char> bad(static_cast<std::size_t>(parts.count()), 0);
    parallel_for(parts.count(), threads_, [&](std::int64_t c) {
      std::uint32_t* counts = next.data() + c * buckets;
      std::uint32_t* of_item = per_part.data() + c * n_items;
      for (std::int64_t k = parts.begin(c); k < parts.end(c); ++k) {
        if (first_bad_rating(r, k, k + 1) == k) {
          bad[c] = 1;
          return;
        }
        ++counts[code(r, k, parts.end(c)) >> 32];
        ++of_item[r.items[k]];
      }
    });
    if (std::find(bad.begin(), bad.end(), 1) != bad.end()) check_ratings(r, threads_);
    item_counts = allocate<std::int64_t>(n_items, "rating counts");
    for (std::int64_t c = 0; c < parts.count(); ++c)
      for (std::int64_t i = 0; i < n_items; ++i) item_counts[i] += per_part[c * n_items + i];
    return next;
  }

  // From the counts: each bucket's place (bucket_begin_), and in `next` where each part writes its
  // first rating of each bucket (the parts in order, so that the sort is stable).
  void lay_out_buckets(std::vector<std::uint32_t>& next, std::int64_t parts) {
    const std::int64_t buckets = layout_.buckets();
    bucket_begin_.assign(static_cast<std::size_t>(buckets) + 1, 0);
    std::int64_t position = 0;
    for (std::int64_t b = 0; b < buckets; ++b) {
      bucket_begin_[b] = position;
      for (std::int64_t c = 0; c < parts; ++c) {
        const std::uint32_t count = next[c * buckets + b];
        next[c * buckets + b] = static_cast<std::uint32_t>(position);
        position += count;
      }
    }
    bucket_begin_[buckets] = position;
  }

  // Each rating's word and value (and input position) into its bucket, in input order.
  template <class Index, class Value>
  void place_in_buckets(const Coo<Index, Value>& r, const Chunks& parts, std::vector<std::uint32_t>& next,
                        SortedRows<Scalar>& out) const {
    const std::int64_t buckets = layout_.buckets();
    const bool keep_positions = !out.positions.empty();
    parallel_for(parts.count(), threads_, [&](std::int64_t c) {
      std::uint32_t* place = next.data() + c * buckets;
      for (std::int64_t k = parts.begin(c); k < parts.end(c); ++k) {
        const std::uint64_t x = code(r, k, parts.end(c));
        const std::uint32_t i = place[x >> 32]++;
        out.items.data()[i] = static_cast<std::int32_t>(static_cast<std::uint32_t>(x));
        out.values.data()[i] = static_cast<Scalar>(r.values[k]);
        if (keep_positions) out.positions.data()[i] = k;
      }
    });
  }

  // Each bucket sorted by user (stably), its words replaced by item indices, and its rows written
  // at its share of the row arrays: rows_in_bucket_[b] rows from row_slot_[b].
  void sort_buckets(SortedRows<Scalar>& out) {
    const std::int64_t buckets = layout_.buckets();
    row_slot_.assign(static_cast<std::size_t>(buckets) + 1, 0);
    for (std::int64_t b = 0; b < buckets; ++b)
      row_slot_[b + 1] = row_slot_[b] + std::min(bucket_begin_[b + 1] - bucket_begin_[b], users_in_bucket(b));
    rows_in_bucket_.assign(static_cast<std::size_t>(buckets), 0);
    out.row_user = allocate<std::int32_t>(row_slot_.back(), "the rows of the block grid");
    out.row_begin = allocate<std::int64_t>(row_slot_.back() + 1, "the rows of the block grid");
    // Contiguous runs of buckets of about equal ratings, each with its own scratch space, as large
    // as its largest bucket (with few users and blocks, a bucket may hold most of the ratings).
    const Chunks chunks = balanced_chunks(bucket_begin_, 8 * std::int64_t(std::max(threads_, 1)));
    std::int64_t largest = 0;
    for (std::int64_t b = 0; b < buckets; ++b) largest = std::max(largest, bucket_begin_[b + 1] - bucket_begin_[b]);
    check_available(double(std::max(threads_, 1)) * double(largest) *
                        (sizeof(std::int32_t) + sizeof(Scalar) + (out.positions.empty() ? 0 : sizeof(std::int64_t))),
                    "the sort's scratch space");
    parallel_for(chunks.count(), threads_, [&](std::int64_t c) {
      std::int64_t largest = 0;
      for (std::int64_t b = chunks.begin(c); b < chunks.end(c); ++b)
        largest = std::max(largest, bucket_begin_[b + 1] - bucket_begin_[b]);
      Scratch scratch(largest, layout_.largest_run, !out.positions.empty());
      for (std::int64_t b = chunks.begin(c); b < chunks.end(c); ++b) sort_bucket(b, scratch, out);
    });
  }

  // Space for sorting one bucket of up to `ratings` ratings of up to `users` users.
  struct Scratch {
    std::vector<std::int32_t> items;
    std::vector<Scalar> values;
    std::vector<std::int64_t> positions;
    std::vector<std::uint32_t> counts;

    Scratch(std::int64_t ratings, std::int64_t users, bool keep_positions)
        : items(static_cast<std::size_t>(ratings)), values(static_cast<std::size_t>(ratings)),
          positions(keep_positions ? static_cast<std::size_t>(ratings) : 0), counts(static_cast<std::size_t>(users)) {}
  };

  std::int64_t users_in_bucket(std::int64_t b) const {
    const std::int64_t p = b / layout_.runs / layout_.blocks, first = (b % layout_.runs) << layout_.user_shift;
    return std::max<std::int64_t>(0, std::min(users_.size[p] - first, std::int64_t(1) << layout_.user_shift));
  }

  // One bucket: a counting sort by the user part of the words into the scratch space and back.
  void sort_bucket(std::int64_t b, Scratch& s, SortedRows<Scalar>& out) {
    const std::int64_t lo = bucket_begin_[b], hi = bucket_begin_[b + 1];
    if (lo == hi) return;
    const std::int64_t block = b / layout_.runs, p = block / layout_.blocks, q = block % layout_.blocks;
    const std::int64_t users = users_in_bucket(b), first = (b % layout_.runs) << layout_.user_shift;
    const int item_bits = layout_.item_bits;
    const std::uint32_t item_mask = std::uint32_t((std::uint64_t(1) << item_bits) - 1);
    const auto* words = reinterpret_cast<const std::uint32_t*>(out.items.data());
    std::fill(s.counts.begin(), s.counts.begin() + users, 0u);
    for (std::int64_t k = lo; k < hi; ++k) ++s.counts[words[k] >> item_bits];
    // Rows in user order; counts become where each user's next rating goes in the scratch space.
    std::int64_t row = row_slot_[b], offset = 0;
    const std::int32_t* user_of = users_.members.data() + users_.begin[p] + first;
    for (std::int64_t u = 0; u < users; ++u) {
      const std::uint32_t count = s.counts[u];
      if (count == 0) continue;
      out.row_user[row] = user_of[u];
      out.row_begin[row] = lo + offset;
      ++row;
      s.counts[u] = static_cast<std::uint32_t>(offset);
      offset += count;
    }
    rows_in_bucket_[b] = row - row_slot_[b];
    const std::int32_t* item_of = items_.members.data() + items_.begin[q];
    const bool keep_positions = !out.positions.empty();
    for (std::int64_t k = lo; k < hi; ++k) {
      const std::uint32_t word = words[k], t = s.counts[word >> item_bits]++;
      s.items[t] = item_of[word & item_mask];
      s.values[t] = out.values.data()[k];
      if (keep_positions) s.positions[t] = out.positions.data()[k];
    }
    const std::size_t n = std::size_t(hi - lo);
    std::memcpy(out.items.data() + lo, s.items.data(), n * sizeof(std::int32_t));
    std::memcpy(out.values.data() + lo, s.values.data(), n * sizeof(Scalar));
    if (keep_positions) std::memcpy(out.positions.data() + lo, s.positions.data(), n * sizeof(std::int64_t));
  }

  // The buckets' rows moved together (each bucket's share of the row arrays is as large as its
  // rows could be), and the blocks' first ratings and rows.
  void lay_out_rows(SortedRows<Scalar>& out) const {
    const std::int64_t B = layout_.blocks, runs = layout_.runs, buckets = layout_.buckets();
    out.block_begin.assign(static_cast<std::size_t>(B * B) + 1, 0);
    out.block_rows.assign(static_cast<std::size_t>(B * B) + 1, 0);
    std::int64_t rows = 0;
    for (std::int64_t b = 0; b < buckets; ++b) {
      if (b % runs == 0) {
        out.block_begin[b / runs] = bucket_begin_[b];
        out.block_rows[b / runs] = rows;
      }
      // Rows only move towards the front, so moving them in order overwrites none still to move.
      for (std::int64_t i = 0; i < rows_in_bucket_[b]; ++i) {
        out.row_user[rows + i] = out.row_user[row_slot_[b] + i];
        out.row_begin[rows + i] = out.row_begin[row_slot_[b] + i];
      }
      rows += rows_in_bucket_[b];
    }
    out.block_begin.back() = bucket_begin_.back();
    out.block_rows.back() = rows;
    out.row_user.resize(static_cast<std::size_t>(rows));
    out.row_begin.resize(static_cast<std::size_t>(rows) + 1);
    out.row_begin.back() = bucket_begin_.back();
  }

  const Grouping& users_;
  const Grouping& items_;
  BucketLayout layout_;
  int threads_;
  std::vector<std::uint64_t> user_code_, item_code_;
  std::vector<std::int64_t> bucket_begin_, row_slot_, rows_in_bucket_;
};

}  // namespace latentmf
