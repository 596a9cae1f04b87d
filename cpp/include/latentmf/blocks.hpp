// The stratified block grid of DESIGN.md. Users and items are each split into B groups by a
// seeded permutation (group p holds the users whose position in the permutation falls in
// [p N / B, (p + 1) N / B)). Block (p, q) holds the ratings of user group p on item group q,
// grouped by user in increasing user index into "rows"; each user's ratings keep their input order. An epoch
// runs B sub-epochs; sub-epoch s runs the blocks (p, (p + shift_s) mod B), which share no row of
// U or V. Inside a block, SGD works on `sgd_lanes` rows at a time (see visit_in_lane_order).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "memory.hpp"
#include "parallel.hpp"
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
// each group's objects in increasing index order.
struct Grouping {
  std::vector<std::int32_t> group;
  std::vector<std::int32_t> member;
  std::vector<std::int64_t> size;

  Grouping(std::int64_t n, int blocks, std::uint64_t seed)
      : group(allocate<std::int32_t>(n, "group assignments")),
        member(allocate<std::int32_t>(n, "group members")),
        size(static_cast<std::size_t>(blocks), 0) {
    const auto perm = random_permutation<std::int32_t>(n, seed);
    int p = 0;
    for (std::int64_t position = 0; position < n; ++position) {
      while (position >= n * (p + 1) / blocks) ++p;
      group[perm[position]] = p;
    }
    for (std::int64_t i = 0; i < n; ++i) member[i] = static_cast<std::int32_t>(size[group[i]]++);
  }
};

inline void check_grid_arguments(std::int64_t size, int blocks) {
  require(blocks >= 1 && blocks <= max_blocks, "blocks must be in [1, ", max_blocks, "], got ", blocks);
  require(size >= 1, "the ratings are empty: at least one rating is needed");
  require(size <= std::int64_t(std::numeric_limits<std::uint32_t>::max()),
          "at most 4294967295 ratings are supported, got ", size);
}

// The grid's visiting order without the copies: ratings (as input positions) sorted by block,
// and inside each block by user index, stably. block_begin has B * B + 1 offsets.
struct BlockOrder {
  Grouping users;
  Grouping items;
  std::vector<std::int64_t> block_begin;
  std::vector<std::uint32_t> order;

  template <class Index, class Value>
  BlockOrder(const Coo<Index, Value>& r, int blocks, std::uint64_t seed, int threads)
      : users(r.n_users, blocks, stream_seed(seed, user_stream)),
        items(r.n_items, blocks, stream_seed(seed, item_stream)),
        block_begin(static_cast<std::size_t>(blocks) * blocks + 1, 0),
        order(allocate<std::uint32_t>(r.size, "the block order")) {
    const int B = blocks;
    auto block_of = [&](std::int64_t k) {
      return std::int64_t(users.group[r.users[k]]) * B + items.group[r.items[k]];
    };
    for (std::int64_t k = 0; k < r.size; ++k) ++block_begin[block_of(k) + 1];
    for (std::int64_t b = 0; b < std::int64_t(B) * B; ++b) block_begin[b + 1] += block_begin[b];
    std::vector<std::int64_t> next(block_begin.begin(), block_begin.end() - 1);
    for (std::int64_t k = 0; k < r.size; ++k) order[next[block_of(k)]++] = static_cast<std::uint32_t>(k);
    sort_blocks_by_user(r, threads);
  }

  int blocks() const { return static_cast<int>(users.size.size()); }
  std::int64_t block_id(int p, int q) const { return std::int64_t(p) * blocks() + q; }

  // The positions in `order` where block b's rows (runs of one user) begin, then the block's end.
  template <class Index, class Value>
  std::vector<std::int64_t> row_begins(const Coo<Index, Value>& r, std::int64_t b) const {
    std::vector<std::int64_t> begins;
    for (std::int64_t i = block_begin[b]; i < block_begin[b + 1]; ++i)
      if (i == block_begin[b] || r.users[order[i]] != r.users[order[i - 1]]) begins.push_back(i);
    begins.push_back(block_begin[b + 1]);
    return begins;
  }

 private:
  // Stable counting sort of each block's segment by user index. Rows then come in increasing
  // user order, so that SGD walks U forwards, which caches and prefetchers handle best.
  template <class Index, class Value>
  void sort_blocks_by_user(const Coo<Index, Value>& r, int threads) {
    const int B = blocks();
    parallel_for(std::int64_t(B) * B, threads, [&](std::int64_t b) {
      const std::int64_t begin = block_begin[b], end = block_begin[b + 1];
      if (end - begin < 2) return;
      std::vector<std::int64_t> slot(static_cast<std::size_t>(users.size[b / B]) + 1, 0);
      auto member = [&](std::uint32_t k) { return users.member[r.users[k]]; };
      for (std::int64_t i = begin; i < end; ++i) ++slot[member(order[i]) + 1];
      for (std::size_t i = 1; i < slot.size(); ++i) slot[i] += slot[i - 1];
      std::vector<std::uint32_t> sorted(static_cast<std::size_t>(end - begin));
      for (std::int64_t i = begin; i < end; ++i) sorted[slot[member(order[i])]++] = order[i];
      std::copy(sorted.begin(), sorted.end(), order.begin() + begin);
    });
  }
};

// The sub-epoch shifts of one epoch: a seeded permutation of [0, B).
inline std::vector<int> sub_epoch_shifts(int blocks, std::uint64_t seed, std::int64_t epoch) {
  require(epoch >= 0, "epoch must be >= 0, got ", epoch);
  return random_permutation<int>(blocks, stream_seed(seed, first_epoch_stream + std::uint64_t(epoch)));
}

// The grid itself: ratings copied into block order as compact (item, value) pairs, with the
// user of each run ("row") of one user's ratings inside a block stored once per row.
template <class Scalar>
class BlockGrid {
 public:
  template <class Index, class Value>
  BlockGrid(const Coo<Index, Value>& r, int blocks, std::uint64_t seed, int threads)
      : blocks_(blocks), seed_(seed), n_users_(r.n_users), n_items_(r.n_items), size_(r.size) {
    check_grid_arguments(r.size, blocks);
    check_ratings(r, threads);
    check_index_range(r.n_users, r.n_items);
    BlockOrder block_order(r, blocks, seed, threads);
    block_begin_ = block_order.block_begin;
    copy_in_block_order(r, block_order, threads);
    user_group_ = std::move(block_order.users.group);
    item_group_ = std::move(block_order.items.group);
    user_count_ = allocate<std::int64_t>(n_users_, "rating counts");
    item_count_ = allocate<std::int64_t>(n_items_, "rating counts");
    for (std::int64_t k = 0; k < size_; ++k) {
      ++user_count_[r.users[k]];
      ++item_count_[r.items[k]];
    }
  }

  int blocks() const { return blocks_; }
  std::uint64_t seed() const { return seed_; }
  std::int64_t n_users() const { return n_users_; }
  std::int64_t n_items() const { return n_items_; }
  std::int64_t size() const { return size_; }
  std::int64_t block_id(int p, int q) const { return std::int64_t(p) * blocks_ + q; }
  std::int64_t block_size(int p, int q) const {
    const auto b = block_id(p, q);
    return block_begin_[b + 1] - block_begin_[b];
  }
  const std::vector<std::int32_t>& user_groups() const { return user_group_; }
  const std::vector<std::int32_t>& item_groups() const { return item_group_; }
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

 private:
  template <class Index, class Value>
  void copy_in_block_order(const Coo<Index, Value>& r, const BlockOrder& order, int threads) {
    const std::int64_t n_blocks = std::int64_t(blocks_) * blocks_;
    std::vector<std::vector<std::int64_t>> rows(static_cast<std::size_t>(n_blocks));
    parallel_for(n_blocks, threads, [&](std::int64_t b) { rows[b] = order.row_begins(r, b); });
    block_rows_.assign(static_cast<std::size_t>(n_blocks) + 1, 0);
    for (std::int64_t b = 0; b < n_blocks; ++b)
      block_rows_[b + 1] = block_rows_[b] + std::int64_t(rows[b].size()) - 1;
    row_user_ = allocate<std::int32_t>(block_rows_.back(), "grid rows");
    row_begin_ = allocate<std::int64_t>(block_rows_.back() + 1, "grid rows");
    items_ = allocate<std::int32_t>(size_, "the ratings in block order");
    values_ = allocate<Scalar>(size_, "the ratings in block order");
    row_begin_.back() = size_;
    parallel_for(n_blocks, threads, [&](std::int64_t b) {
      for (std::size_t i = 0; i + 1 < rows[b].size(); ++i) {
        row_begin_[block_rows_[b] + i] = rows[b][i];
        row_user_[block_rows_[b] + i] = static_cast<std::int32_t>(r.users[order.order[rows[b][i]]]);
      }
      for (std::int64_t i = order.block_begin[b]; i < order.block_begin[b + 1]; ++i) {
        items_[i] = static_cast<std::int32_t>(r.items[order.order[i]]);
        values_[i] = static_cast<Scalar>(r.values[order.order[i]]);
      }
    });
  }

  int blocks_;
  std::uint64_t seed_;
  std::int64_t n_users_, n_items_, size_;
  std::vector<std::int32_t> user_group_, item_group_;
  std::vector<std::int64_t> user_count_, item_count_, block_begin_, block_rows_;
  std::vector<std::int32_t> row_user_;
  std::vector<std::int64_t> row_begin_;
  std::vector<std::int32_t> items_;
  std::vector<Scalar> values_;
};

// The input positions of the ratings in the order one epoch of the grid visits them: sub-epoch
// by sub-epoch, blocks p = 0, 1, ... within each, and inside a block the lane order of
// visit_in_lane_order. Running them one at a time in this order gives the parallel epoch's result.
template <class Index, class Value>
std::vector<std::int64_t> grid_visiting_order(const Coo<Index, Value>& r, int blocks, std::uint64_t seed,
                                              std::int64_t epoch, int threads) {
  check_grid_arguments(r.size, blocks);
  check_ratings(r, threads);
  check_index_range(r.n_users, r.n_items);
  const auto shifts = sub_epoch_shifts(blocks, seed, epoch);
  const BlockOrder block_order(r, blocks, seed, threads);
  auto visiting = allocate<std::int64_t>(r.size, "the visiting order");
  std::int64_t next = 0;
  for (int shift : shifts)
    for (int p = 0; p < blocks; ++p) {
      const auto rows = block_order.row_begins(r, block_order.block_id(p, (p + shift) % blocks));
      visit_in_lane_order(rows.data(), 0, std::int64_t(rows.size()) - 1,
                          [&](std::int64_t i) { visiting[next++] = block_order.order[i]; });
    }
  return visiting;
}

}  // namespace latentmf
