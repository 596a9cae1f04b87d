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
#include <utility>
#include <vector>

#include "memory.hpp"
#include "parallel.hpp"
#include "prefetch.hpp"
#include "random.hpp"
#include "ratings.hpp"
#include "row_sort.hpp"

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
// user of each run ("row") of one user's ratings inside a block stored once per row. Built by
// RowSort (row_sort.hpp).
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
    sort_into_rows(r, keep_positions, threads);  // which checks the ratings first
    count_user_ratings(threads);
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
  const Buffer<std::int32_t>& items() const { return items_; }
  const Buffer<Scalar>& values() const { return values_; }

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
                            [&](std::int64_t i) { visiting[next++] = positions_.data()[i]; });
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
    count_user_ratings(threads);
    for (auto& user : row_user_) user = users_.member[user];
    for (std::int64_t k = 0; k < items_.size(); ++k) items_.data()[k] = items_grouping_.member[items_.data()[k]];
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
  // number, place among the members and the permutation that drew them, and a count (24 bytes);
  // per rating an item index and a value (and an input position with keep_positions); the sort's
  // own; and the blocks' offsets.
  static double footprint(std::int64_t size, std::int64_t n_users, std::int64_t n_items, int blocks, int threads,
                          bool keep_positions) {
    return 24.0 * (double(n_users) + double(n_items)) +
           double(size) * (4.0 + sizeof(Scalar) + (keep_positions ? 8.0 : 0.0)) +
           RowSort<Scalar>::footprint(size, n_users, n_items, blocks, threads) + 16.0 * (double(blocks) * blocks + 1);
  }

  template <class Index, class Value>
  void sort_into_rows(const Coo<Index, Value>& r, bool keep_positions, int threads) {
    SortedRows<Scalar> sorted = RowSort<Scalar>::run(r, users_, items_grouping_, blocks_, keep_positions, threads);
    items_ = std::move(sorted.items);
    values_ = std::move(sorted.values);
    positions_ = std::move(sorted.positions);
    row_user_ = std::move(sorted.row_user);
    row_begin_ = std::move(sorted.row_begin);
    block_begin_ = std::move(sorted.block_begin);
    block_rows_ = std::move(sorted.block_rows);
    item_count_ = std::move(sorted.item_counts);
  }

  // Ratings per user, from the rows: a user's rows are all in its group's row of blocks, so each
  // group is counted by one thread. (The sort counted the items.)
  void count_user_ratings(int threads) {
    const int B = blocks_;
    user_count_ = allocate<std::int64_t>(n_users_, "rating counts");
    parallel_for(B, threads, [&](std::int64_t p) {
      for (int q = 0; q < B; ++q)
        for (std::int64_t row = block_rows_[block_id(int(p), q)]; row < block_rows_[block_id(int(p), q) + 1]; ++row)
          user_count_[row_user_[row]] += row_begin_[row + 1] - row_begin_[row];
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
  Buffer<std::int32_t> items_;
  Buffer<Scalar> values_;
  Buffer<std::int64_t> positions_;
};

// The visiting order of one epoch of the grid the ratings would get (see BlockGrid::visiting_order).
template <class Index, class Value>
std::vector<std::int64_t> grid_visiting_order(const Coo<Index, Value>& r, int blocks, std::uint64_t seed,
                                              std::int64_t epoch, int threads) {
  require(epoch >= 0, "epoch must be >= 0, got ", epoch);
  return BlockGrid<float>(r, blocks, seed, threads, true).visiting_order(epoch);
}

}  // namespace latentmf
