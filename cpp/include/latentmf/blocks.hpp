// The stratified block grid of DESIGN.md. Users and items are each split into B groups by a
// seeded permutation (group p holds the users whose rank in the permutation falls in
// [p N / B, (p + 1) N / B)). Block (p, q) holds the ratings of user group p on item group q,
// grouped by user in rank order; each user's ratings keep their input order. An epoch runs B
// sub-epochs; sub-epoch s runs the blocks (p, (p + shift_s) mod B), which share no row of U or V.
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

// Seed streams: one for the user permutation, one for the items, one per epoch after those.
constexpr std::uint64_t user_stream = 0, item_stream = 1, first_epoch_stream = 2;

// The group of each of n objects under a seeded permutation, and each object's rank in it.
struct Grouping {
  std::vector<std::int32_t> group;
  std::vector<std::int32_t> rank;
  std::vector<std::int64_t> group_begin;  // ranks of group p are [group_begin[p], group_begin[p+1])

  Grouping(std::int64_t n, int blocks, std::uint64_t seed)
      : group(allocate<std::int32_t>(n, "group assignments")),
        rank(allocate<std::int32_t>(n, "group ranks")),
        group_begin(static_cast<std::size_t>(blocks) + 1) {
    const auto perm = random_permutation<std::int32_t>(n, seed);
    for (int p = 0; p <= blocks; ++p) group_begin[p] = n * p / blocks;
    int p = 0;
    for (std::int64_t r = 0; r < n; ++r) {
      while (r >= group_begin[p + 1]) ++p;
      group[perm[r]] = p;
      rank[perm[r]] = static_cast<std::int32_t>(r);
    }
  }
};

inline void check_grid_arguments(std::int64_t size, int blocks) {
  require(blocks >= 1 && blocks <= max_blocks, "blocks must be in [1, ", max_blocks, "], got ", blocks);
  require(size >= 1, "the ratings are empty: at least one rating is needed");
  require(size <= std::int64_t(std::numeric_limits<std::uint32_t>::max()),
          "at most 4294967295 ratings are supported, got ", size);
}

// The grid's visiting order without the copies: ratings (as input positions) sorted by block,
// and inside each block by user rank, stably. block_begin has B * B + 1 offsets.
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
    sort_blocks_by_user_rank(r, threads);
  }

  int blocks() const { return static_cast<int>(users.group_begin.size()) - 1; }
  std::int64_t block_id(int p, int q) const { return std::int64_t(p) * blocks() + q; }

 private:
  // Stable counting sort of each block's segment by the user's rank within its group.
  template <class Index, class Value>
  void sort_blocks_by_user_rank(const Coo<Index, Value>& r, int threads) {
    const int B = blocks();
    parallel_for(std::int64_t(B) * B, threads, [&](std::int64_t b) {
      const int p = static_cast<int>(b / B);
      const std::int64_t first_rank = users.group_begin[p];
      const std::int64_t ranks = users.group_begin[p + 1] - first_rank;
      const std::int64_t begin = block_begin[b], end = block_begin[b + 1];
      if (end - begin < 2) return;
      std::vector<std::int64_t> slot(static_cast<std::size_t>(ranks) + 1, 0);
      auto local_rank = [&](std::uint32_t k) { return users.rank[r.users[k]] - first_rank; };
      for (std::int64_t i = begin; i < end; ++i) ++slot[local_rank(order[i]) + 1];
      for (std::int64_t i = 0; i < ranks; ++i) slot[i + 1] += slot[i];
      std::vector<std::uint32_t> sorted(static_cast<std::size_t>(end - begin));
      for (std::int64_t i = begin; i < end; ++i) sorted[slot[local_rank(order[i])]++] = order[i];
      std::copy(sorted.begin(), sorted.end(), order.begin() + begin);
    }, 1);
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
    user_group_ = std::move(block_order.users.group);
    item_group_ = std::move(block_order.items.group);
    block_begin_ = block_order.block_begin;
    copy_in_block_order(r, block_order.order, threads);
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
  void copy_in_block_order(const Coo<Index, Value>& r, const std::vector<std::uint32_t>& order,
                           int threads) {
    const std::int64_t n_blocks = std::int64_t(blocks_) * blocks_;
    block_rows_.assign(static_cast<std::size_t>(n_blocks) + 1, 0);
    for (std::int64_t b = 0; b < n_blocks; ++b) {
      std::int64_t rows = 0;
      for (std::int64_t i = block_begin_[b]; i < block_begin_[b + 1]; ++i)
        rows += i == block_begin_[b] || r.users[order[i]] != r.users[order[i - 1]];
      block_rows_[b + 1] = block_rows_[b] + rows;
    }
    row_user_ = allocate<std::int32_t>(block_rows_.back(), "grid rows");
    row_begin_ = allocate<std::int64_t>(block_rows_.back() + 1, "grid rows");
    items_ = allocate<std::int32_t>(size_, "the ratings in block order");
    values_ = allocate<Scalar>(size_, "the ratings in block order");
    row_begin_.back() = size_;
    parallel_for(n_blocks, threads, [&](std::int64_t b) {
      std::int64_t row = block_rows_[b];
      for (std::int64_t i = block_begin_[b]; i < block_begin_[b + 1]; ++i) {
        const std::uint32_t k = order[i];
        if (i == block_begin_[b] || r.users[k] != r.users[order[i - 1]]) {
          row_user_[row] = static_cast<std::int32_t>(r.users[k]);
          row_begin_[row] = i;
          ++row;
        }
        items_[i] = static_cast<std::int32_t>(r.items[k]);
        values_[i] = static_cast<Scalar>(r.values[k]);
      }
    }, 1);
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

}  // namespace latentmf
