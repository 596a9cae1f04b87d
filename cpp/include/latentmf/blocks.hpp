// The stratified block grid of DESIGN.md. Users and items are each split into B groups by a
// seeded permutation (group p holds the users whose position in the permutation falls in
// [p N / B, (p + 1) N / B)). Block (p, q) holds the ratings of user group p on item group q,
// grouped by user in increasing user index into "rows"; each user's ratings keep their input order. An epoch
// runs B sub-epochs; sub-epoch s runs the blocks (p, (p + shift_s) mod B), which share no row of
// U or V. Inside a block, SGD works on `sgd_lanes` rows at a time (see visit_in_lane_order).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "memory.hpp"
#include "parallel.hpp"
#include "prefetch.hpp"
#include "random.hpp"
#include "ratings.hpp"

namespace latentmf {

constexpr int max_blocks = 1024;

// Rows of a block that SGD interleaves. Consecutive updates then belong to different users, so
// the processor overlaps them instead of waiting for one update to finish before the next
// (each depends on the previous one of its own row).
constexpr int sgd_lanes = 4;

// Calls visit(k) for the ratings of a block, in the order the SGD kernel updates them. The rows
// are [row_begin[r], row_begin[r + 1]) for r in [first_row, last_row). Each of the sgd_lanes lanes
// holds one row; in every round each open lane in turn takes the next rating of its row, and a
// lane whose row is finished opens the block's next unopened row (used from the next round on).
template <class Visit>
void visit_in_lane_order(const std::int64_t* row_begin, std::int64_t first_row, std::int64_t last_row,
                         Visit&& visit) {
  std::int64_t next[sgd_lanes] = {}, end[sgd_lanes] = {};
  bool open[sgd_lanes] = {};
  std::int64_t unopened = first_row;
  auto open_row = [&](int lane) {
    open[lane] = unopened < last_row;
    if (open[lane]) {
      next[lane] = row_begin[unopened];
      end[lane] = row_begin[unopened + 1];
      ++unopened;
    }
  };
  for (int lane = 0; lane < sgd_lanes; ++lane) open_row(lane);
  for (bool any_open = true; any_open;) {
    any_open = false;
    for (int lane = 0; lane < sgd_lanes; ++lane) {
      if (!open[lane]) continue;
      any_open = true;
      visit(next[lane]++);
      if (next[lane] == end[lane]) open_row(lane);
    }
  }
}

// Seed streams: one for the user permutation, one for the items, one per epoch after those.
constexpr std::uint64_t user_stream = 0, item_stream = 1, first_epoch_stream = 2;

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
};

inline void check_grid_arguments(std::int64_t size, int blocks) {
  require(blocks >= 1 && blocks <= max_blocks, "blocks must be in [1, ", max_blocks, "], got ", blocks);
  require(size >= 1, "the ratings are empty: at least one rating is needed");
  require(size <= std::int64_t(std::numeric_limits<std::uint32_t>::max()),
          "at most 4294967295 ratings are supported, got ", size);
}

// The sub-epoch shifts of one epoch: a seeded permutation of [0, B).
inline std::vector<int> sub_epoch_shifts(int blocks, std::uint64_t seed, std::int64_t epoch) {
  require(epoch >= 0, "epoch must be >= 0, got ", epoch);
  return random_permutation<int>(blocks, stream_seed(seed, first_epoch_stream + std::uint64_t(epoch)));
}

// The grid itself: ratings copied into block order as compact (item, value) pairs, with the
// user of each run ("row") of one user's ratings inside a block stored once per row.
//
// Built by one stable counting sort of the ratings by row, in parallel over a few contiguous parts
// of the input: each part counts its ratings per row, then writes them after the earlier parts'.
// Rows, blocks and their offsets fall out of the counts, and the input is read in order (a version
// that gathered the input through a permutation spent most of its time on cache misses; one that
// sorted into blocks and then each block by user needed a temporary user per rating, 360 MB for
// 90M ratings).
template <class Scalar>
class BlockGrid {
 public:
  // With keep_positions, the grid also keeps each stored rating's input position, for
  // visiting_order().
  template <class Index, class Value>
  BlockGrid(const Coo<Index, Value>& r, int blocks, std::uint64_t seed, int threads, bool keep_positions = false)
      : blocks_(blocks), seed_(seed), n_users_(r.n_users), n_items_(r.n_items), size_(r.size),
        users_(checked_n_users(r, blocks, threads, keep_positions), blocks, stream_seed(seed, user_stream)),
        items_grouping_(r.n_items, blocks, stream_seed(seed, item_stream)) {
    check_ratings(r, threads);
    sort_into_rows(r, keep_positions, threads);
    count_ratings(threads);
  }

  // One user group's share of the grid (its row of blocks), for training on a cluster where each
  // worker holds some user groups. `r` holds the ratings of user group `user_group` only (global
  // indices, in the global input order); the blocks (user_group, q) then hold exactly the rows
  // and ratings of the full grid's blocks, in the same order, but with local indices: row_user()
  // numbers the user within its group and items() the item within its group (both in increasing
  // index order, as Grouping::member does). sgd_block() on such a block, with U and V holding
  // just those groups' rows, performs the same operations as on the full grid.
  template <class Index, class Value>
  static BlockGrid user_group_shard(const Coo<Index, Value>& r, int blocks, std::uint64_t seed, int user_group,
                                    int threads) {
    return BlockGrid(r, blocks, seed, user_group, threads, ShardTag{});
  }

  int blocks() const { return blocks_; }
  std::uint64_t seed() const { return seed_; }
  // The user group of a shard (see user_group_shard), -1 for a full grid.
  int user_group() const { return user_group_; }
  // Users and items per group.
  const std::vector<std::int64_t>& user_group_sizes() const { return users_.size; }
  const std::vector<std::int64_t>& item_group_sizes() const { return items_grouping_.size; }
  std::int64_t n_users() const { return n_users_; }
  std::int64_t n_items() const { return n_items_; }
  std::int64_t size() const { return size_; }
  std::int64_t block_id(int p, int q) const { return std::int64_t(p) * blocks_ + q; }
  std::int64_t block_size(int p, int q) const {
    const auto b = block_id(p, q);
    return block_begin_[b + 1] - block_begin_[b];
  }
  const std::vector<std::int32_t>& user_groups() const { return users_.group; }
  const std::vector<std::int32_t>& item_groups() const { return items_grouping_.group; }
  // Ratings per user and per item (c and d of DESIGN.md).
  const std::vector<std::int64_t>& user_counts() const { return user_count_; }
  const std::vector<std::int64_t>& item_counts() const { return item_count_; }

  // Rows of block b are [block_rows_[b], block_rows_[b + 1]); row i is the ratings
  // [row_begin_[i], row_begin_[i + 1]) of user row_user_[i].
  const std::vector<std::int64_t>& block_rows() const { return block_rows_; }
  const std::vector<std::int32_t>& row_user() const { return row_user_; }
  const std::vector<std::int64_t>& row_begin() const { return row_begin_; }
  const std::vector<std::int32_t>& items() const { return items_; }
  const std::vector<Scalar>& values() const { return values_; }

  // The input positions of the ratings in the order one epoch visits them: sub-epoch by
  // sub-epoch, blocks p = 0, 1, ... within each, and inside a block the lane order of
  // visit_in_lane_order. Running them one at a time in this order gives the parallel epoch's
  // result. Needs a grid built with keep_positions.
  std::vector<std::int64_t> visiting_order(std::int64_t epoch) const {
    require(!positions_.empty(), "the grid was built without its input positions");
    auto visiting = allocate<std::int64_t>(size_, "the visiting order");
    std::int64_t next = 0;
    for (int shift : sub_epoch_shifts(blocks_, seed_, epoch))
      for (int p = 0; p < blocks_; ++p) {
        const std::int64_t b = block_id(p, (p + shift) % blocks_);
        visit_in_lane_order(row_begin_.data(), block_rows_[b], block_rows_[b + 1],
                            [&](std::int64_t i) { visiting[next++] = positions_[i]; });
      }
    return visiting;
  }

 private:
  struct ShardTag {};

  template <class Index, class Value>
  BlockGrid(const Coo<Index, Value>& r, int blocks, std::uint64_t seed, int user_group, int threads, ShardTag)
      : blocks_(blocks), seed_(seed), n_users_(r.n_users), n_items_(r.n_items), size_(r.size),
        users_(checked_shard_n_users(r, blocks, threads), blocks, stream_seed(seed, user_stream)),
        items_grouping_(r.n_items, blocks, stream_seed(seed, item_stream)), user_group_(user_group) {
    require(user_group >= 0 && user_group < blocks, "user_group must be in [0, blocks=", blocks, "), got ",
            user_group);
    check_ratings(r, threads);
    for (std::int64_t k = 0; k < r.size; ++k)
      require(users_.group[r.users[k]] == user_group, "users[", k, "] = ", +r.users[k], " is in user group ",
              users_.group[r.users[k]], ", not in group ", user_group);
    sort_into_rows(r, false, threads);
    count_ratings(threads);
    for (auto& user : row_user_) user = users_.member[user];
    for (auto& item : items_) item = items_grouping_.member[item];
  }

  // The same for a shard, which may hold no rating (a user group without ratings).
  template <class Index, class Value>
  static std::int64_t checked_shard_n_users(const Coo<Index, Value>& r, int blocks, int threads) {
    if (r.size > 0) return checked_n_users(r, blocks, threads, false);
    require(blocks >= 1 && blocks <= max_blocks, "blocks must be in [1, ", max_blocks, "], got ", blocks);
    check_index_range(r.n_users, r.n_items);
    return r.n_users;
  }

  // n_users, once the arguments are known to be usable and the grid to fit in memory (before the
  // groups are allocated).
  template <class Index, class Value>
  static std::int64_t checked_n_users(const Coo<Index, Value>& r, int blocks, int threads, bool keep_positions) {
    check_grid_arguments(r.size, blocks);
    check_index_range(r.n_users, r.n_items);
    check_available(footprint(r.size, r.n_users, r.n_items, blocks, threads, keep_positions),
                    "the block grid of the ratings");
    return r.n_users;
  }

  // Bytes the grid needs at most while it is built: per user and per item its group, member
  // number, place among the members and the permutation that drew them, and a count (8 bytes);
  // per part of the counting sort a 4-byte position per row key; per rating an item index and
  // a value (and an input position with keep_positions), and at most one row of 12 bytes.
  static double footprint(std::int64_t size, std::int64_t n_users, std::int64_t n_items, int blocks, int threads,
                          bool keep_positions) {
    const double keys = double(blocks) * double(n_users);
    const double parts = std::max(1.0, std::min({double(std::max(threads, 1)), 4.0, std::floor(double(size) / keys)}));
    return 24.0 * (double(n_users) + double(n_items)) + 4.0 * parts * keys +
           double(size) * (4.0 + sizeof(Scalar) + (keep_positions ? 8.0 : 0.0) + 12.0) +
           16.0 * (double(blocks) * blocks + 1);
  }

  // The row of every rating, as a sort key: block (p, q), then the user's member number m in
  // group p, so that increasing keys give the blocks in order and, inside a block, the users in
  // increasing index. Group p's keys are B begin[p] + q size[p] + m.
  template <class Index, class Value>
  std::int64_t row_key(const Coo<Index, Value>& r, std::int64_t k) const {
    const std::int64_t n = r.users[k], p = users_.group[n];
    return blocks_ * users_.begin[p] + items_grouping_.group[r.items[k]] * users_.size[p] + users_.member[n];
  }

  // The sort's pipeline (see sort_into_rows): how far ahead it looks, and its ring of row keys
  // (a power of two >= lookahead).
  static constexpr std::int64_t lookahead = 16, window = 32;

  // The first stages for rating j of [.., end): the group tables of rating j + lookahead's user
  // are asked for, and rating j's key is computed into key[j % window] and its counter asked for.
  template <class Index, class Value>
  void look_ahead(const Coo<Index, Value>& r, std::int64_t j, std::int64_t end, const std::uint32_t* counters,
                  std::int64_t (&key)[window]) const {
    if (j + lookahead < end) {
      LATENTMF_PREFETCH(users_.group.data() + r.users[j + lookahead]);
      LATENTMF_PREFETCH(users_.member.data() + r.users[j + lookahead]);
    }
    if (j < end) {
      key[j % window] = row_key(r, j);
      LATENTMF_PREFETCH(counters + key[j % window]);
    }
  }

  // A counting sort of the ratings by row key, in two passes over the input (count, then place).
  // The input comes in any order, so nearly every access of both passes (a user's group tables,
  // the row's counter, the rating's new place) misses the cache. Each pass is therefore a
  // pipeline over a window of ratings: rating k + 2 lookahead has its user's tables prefetched,
  // k + lookahead its key computed and its counter prefetched, and (placing) k + lookahead / 2
  // its counter advanced and its new place prefetched, while rating k is counted or written. Every
  // counter still advances in input order, so the result is that of the plain loop.
  template <class Index, class Value>
  void sort_into_rows(const Coo<Index, Value>& r, bool keep_positions, int threads) {
    const std::int64_t B = blocks_, keys = B * n_users_;
    // Each part counts over all keys, so the parts are few: the result is the same for any number.
    const std::int64_t parts = std::max<std::int64_t>(1, std::min<std::int64_t>({threads, 4, size_ / keys}));
    const Chunks chunks = even_chunks(size_, 1, parts);
    // next[c * keys + key]: where part c writes its next rating of that row.
    auto next = allocate<std::uint32_t>(chunks.count() * keys, "the row counts");
    parallel_for(chunks.count(), threads, [&](std::int64_t c) {
      std::uint32_t* counts = next.data() + c * keys;
      std::int64_t key[window];
      const std::int64_t begin = chunks.begin(c), end = chunks.end(c);
      for (std::int64_t j = begin; j < end + lookahead; ++j) {
        look_ahead(r, j, end, counts, key);
        if (j - lookahead >= begin) ++counts[key[(j - lookahead) % window]];
      }
    });
    lay_out_rows(next, chunks.count());
    items_ = allocate<std::int32_t>(size_, "the ratings in block order");
    values_ = allocate<Scalar>(size_, "the ratings in block order");
    if (keep_positions) positions_ = allocate<std::int64_t>(size_, "the input positions");
    parallel_for(chunks.count(), threads, [&](std::int64_t c) {
      std::uint32_t* positions = next.data() + c * keys;
      std::int64_t key[window];
      std::uint32_t place[window];
      const std::int64_t begin = chunks.begin(c), end = chunks.end(c);
      for (std::int64_t j = begin; j < end + lookahead; ++j) {
        look_ahead(r, j, end, positions, key);
        const std::int64_t advance = j - lookahead / 2, write = j - lookahead;
        if (advance >= begin && advance < end) {
          const std::uint32_t i = positions[key[advance % window]]++;
          place[advance % window] = i;
          LATENTMF_PREFETCH_WRITE(items_.data() + i);
          LATENTMF_PREFETCH_WRITE(values_.data() + i);
        }
        if (write >= begin) {
          const std::uint32_t i = place[write % window];
          items_[i] = static_cast<std::int32_t>(r.items[write]);
          values_[i] = static_cast<Scalar>(r.values[write]);
          if (keep_positions) positions_[i] = write;
        }
      }
    });
  }

  // From the per-part counts of every row key: the blocks' and rows' offsets, each row's user,
  // and in `next` where each part writes its first rating of each row.
  void lay_out_rows(std::vector<std::uint32_t>& next, std::int64_t parts) {
    const std::int64_t B = blocks_, keys = B * n_users_;
    block_begin_.assign(static_cast<std::size_t>(B * B) + 1, 0);
    block_rows_.assign(static_cast<std::size_t>(B * B) + 1, 0);
    std::int64_t position = 0;
    for (std::int64_t p = 0; p < B; ++p)
      for (std::int64_t q = 0; q < B; ++q) {
        block_begin_[p * B + q] = position;
        block_rows_[p * B + q] = std::int64_t(row_user_.size());
        for (std::int64_t m = 0; m < users_.size[p]; ++m) {
          const std::int64_t key = B * users_.begin[p] + q * users_.size[p] + m;
          const std::int64_t row_start = position;
          for (std::int64_t c = 0; c < parts; ++c) {
            const std::uint32_t count = next[c * keys + key];
            next[c * keys + key] = static_cast<std::uint32_t>(position);
            position += count;
          }
          if (position > row_start) {
            row_user_.push_back(users_.members[users_.begin[p] + m]);
            row_begin_.push_back(row_start);
          }
        }
      }
    block_begin_.back() = position;
    block_rows_.back() = std::int64_t(row_user_.size());
    row_begin_.push_back(position);
  }

  // Ratings per user and per item, from the grid itself: a user's ratings are all in its group's
  // row of blocks, an item's in its group's column, so each group is counted by one thread.
  void count_ratings(int threads) {
    const int B = blocks_;
    user_count_ = allocate<std::int64_t>(n_users_, "rating counts");
    item_count_ = allocate<std::int64_t>(n_items_, "rating counts");
    parallel_for(B, threads, [&](std::int64_t p) {
      for (int q = 0; q < B; ++q)
        for (std::int64_t row = block_rows_[block_id(int(p), q)]; row < block_rows_[block_id(int(p), q) + 1]; ++row)
          user_count_[row_user_[row]] += row_begin_[row + 1] - row_begin_[row];
    });
    parallel_for(B, threads, [&](std::int64_t q) {
      for (int p = 0; p < B; ++p) {
        const std::int64_t b = block_id(p, int(q));
        for (std::int64_t k = block_begin_[b]; k < block_begin_[b + 1]; ++k) ++item_count_[items_[k]];
      }
    });
  }

  int blocks_;
  std::uint64_t seed_;
  std::int64_t n_users_, n_items_, size_;
  Grouping users_, items_grouping_;
  int user_group_ = -1;
  std::vector<std::int64_t> user_count_, item_count_, block_begin_, block_rows_;
  std::vector<std::int32_t> row_user_;
  std::vector<std::int64_t> row_begin_;
  std::vector<std::int32_t> items_;
  std::vector<Scalar> values_;
  std::vector<std::int64_t> positions_;
};

// The visiting order of one epoch of the grid the ratings would get (see BlockGrid::visiting_order).
template <class Index, class Value>
std::vector<std::int64_t> grid_visiting_order(const Coo<Index, Value>& r, int blocks, std::uint64_t seed,
                                              std::int64_t epoch, int threads) {
  require(epoch >= 0, "epoch must be >= 0, got ", epoch);
  return BlockGrid<float>(r, blocks, seed, threads, true).visiting_order(epoch);
}

}  // namespace latentmf
