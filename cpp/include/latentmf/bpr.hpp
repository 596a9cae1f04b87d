// Bayesian personalized ranking (Rendle, Freudenthaler, Gantner and Schmidt-Thieme 2009) on the
// stratified block grid of DESIGN.md: the positives (the items each user interacted with) and
// their arrangement into blocks, which changes every epoch.
//
// Users are split into B fixed groups by a seeded permutation, as the SGD grid splits them. Items
// are split into B groups drawn anew for every epoch (a seeded re-partition from (seed, epoch)):
// with one fixed item partition an item would only ever be contrasted with the items of its own
// group, and scores of items of different groups would never be calibrated against each other.
// Block (p, q) of epoch e holds the positives of the users of group p on the items of group q of
// epoch e. In sub-epoch s the blocks (p, (p + shift_s) mod B) touch pairwise-disjoint rows of U
// and V (and item biases), so they run in parallel without locks; the negative item of each
// positive of block (p, q) is drawn from item group q, from a stream of its own per (seed, epoch,
// block). The result is therefore the same for any number of threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "blocks.hpp"
#include "checks.hpp"
#include "errors.hpp"
#include "factors.hpp"
#include "memory.hpp"
#include "parallel.hpp"
#include "random.hpp"

namespace latentmf {

// Draws of a negative item per positive: a draw that hits another positive of the user is
// redrawn, at most this many times in all; a positive whose draws all hit positives is skipped.
// With f the share of its item group a user has, a positive is skipped with probability f^16.
constexpr int max_negative_draws = 16;

// The seed of the item groups of one epoch, and that of the negatives of block `block` (p B + q)
// of one epoch. Both derive from the model's seed alone, from streams that no other use of it
// draws: the users' groups (user_stream) and the sub-epoch order (sub_epoch_shifts) are those of
// the SGD grid.
inline std::uint64_t bpr_item_groups_seed(std::uint64_t seed, std::int64_t epoch) {
  return stream_seed(stream_seed(seed, item_stream), std::uint64_t(epoch));
}

inline std::uint64_t bpr_negatives_seed(std::uint64_t seed, std::int64_t epoch, std::int64_t block) {
  return stream_seed(stream_seed(seed, first_epoch_stream + std::uint64_t(epoch)), 1 + std::uint64_t(block));
}

// The positives of each user, sorted: user n's are items[offsets[n] .. offsets[n + 1]), strictly
// increasing (every (user, item) pair at most once).
struct Positives {
  std::int64_t n_users = 0;
  std::int64_t n_items = 0;
  std::vector<std::int64_t> offsets;
  std::vector<std::int32_t> items;

  std::int64_t size() const { return std::int64_t(items.size()); }
};

// A copy of the caller's positives (offsets: n_users + 1 entries; items: `size`), checked first.
inline Positives checked_positives(const std::int64_t* offsets, std::int64_t n_users, const std::int32_t* items,
                                   std::int64_t size, std::int64_t n_items) {
  require(n_users >= 1, "n_users must be >= 1, got ", n_users);
  require(n_items >= 1, "n_items must be >= 1, got ", n_items);
  check_index_range(n_users, n_items);
  require(size <= std::int64_t(std::numeric_limits<std::uint32_t>::max()),
          "at most 4294967295 positives are supported, got ", size);
  require(offsets[0] == 0, "offsets[0] must be 0, got ", offsets[0]);
  require(offsets[n_users] == size, "offsets[n_users=", n_users, "] = ", offsets[n_users],
          " must be the number of items, ", size);
  for (std::int64_t n = 0; n < n_users; ++n) {
    require(offsets[n + 1] >= offsets[n], "offsets must not decrease, but offsets[", n + 1, "] = ", offsets[n + 1],
            " < offsets[", n, "] = ", offsets[n]);
    require(offsets[n + 1] <= size, "offsets[", n + 1, "] = ", offsets[n + 1], " exceeds the number of items, ",
            size);
    for (std::int64_t k = offsets[n]; k < offsets[n + 1]; ++k) {
      require(items[k] >= 0 && items[k] < n_items, "items[", k, "] = ", items[k], " is outside [0, n_items=",
              n_items, ")");
      require(k == offsets[n] || items[k] > items[k - 1], "items[", k, "] = ", items[k], " of user ", n,
              " does not follow items[", k - 1, "] = ", items[k - 1],
              ": each user's items must be sorted and distinct");
    }
  }
  Positives p;
  p.n_users = n_users;
  p.n_items = n_items;
  p.offsets.assign(offsets, offsets + n_users + 1);
  p.items = allocate<std::int32_t>(size, "the positives");
  std::copy(items, items + size, p.items.begin());
  return p;
}

// The positives of one epoch in block order, and the item groups of that epoch.
//
// Block b = p B + q holds rows [block_row_begin[b], block_row_end[b]); row r is user row_user[r]
// (users in increasing index) with its row_length[r] positives in item group q, sorted, which are
// the next row_length[r] entries of `items` (block b's entries are items[block_begin[b] ..
// block_begin[b + 1])).
class BprGrid {
 public:
  BprGrid(Positives positives, int blocks, std::uint64_t seed)
      : positives_(std::move(positives)), blocks_(checked_blocks(blocks)), seed_(seed),
        users_(positives_.n_users, blocks, stream_seed(seed, user_stream)),
        item_groups_(0, blocks, 0) {
    lay_out_user_groups();
    items_ = allocate<std::int32_t>(positives_.size(), "the positives in block order");
    row_user_ = allocate<std::int32_t>(group_row_begin_.back(), "the rows of the blocks");
    row_length_ = allocate<std::int32_t>(group_row_begin_.back(), "the rows of the blocks");
    block_begin_.assign(std::size_t(blocks_) * blocks_ + 1, 0);
    block_row_begin_.assign(std::size_t(blocks_) * blocks_, 0);
    block_row_end_.assign(std::size_t(blocks_) * blocks_, 0);
  }

  int blocks() const { return blocks_; }
  std::uint64_t seed() const { return seed_; }
  std::int64_t n_users() const { return positives_.n_users; }
  std::int64_t n_items() const { return positives_.n_items; }
  std::int64_t size() const { return positives_.size(); }
  const Positives& positives() const { return positives_; }
  // The epoch the blocks are arranged for (-1 before the first call of bucket).
  std::int64_t epoch() const { return epoch_; }
  const Grouping& user_groups() const { return users_; }
  const Grouping& item_groups() const { return item_groups_; }

  std::int64_t block_id(int p, int q) const { return std::int64_t(p) * blocks_ + q; }
  std::int64_t block_size(std::int64_t b) const { return block_begin_[b + 1] - block_begin_[b]; }
  std::int64_t block_begin(std::int64_t b) const { return block_begin_[b]; }
  std::int64_t block_row_begin(std::int64_t b) const { return block_row_begin_[b]; }
  std::int64_t block_row_end(std::int64_t b) const { return block_row_end_[b]; }
  const std::int32_t* row_user() const { return row_user_.data(); }
  const std::int32_t* row_length() const { return row_length_.data(); }
  const std::int32_t* items() const { return items_.data(); }

  // Arranges the positives into the blocks of `epoch`: the items' groups are drawn for the epoch,
  // then each user group's positives are sorted by item group with a stable counting sort (two
  // passes over them: count, then place), one user group per thread. Only the item side moves:
  // a user group's positives stay in its own range of `items`, and its rows in its own range of
  // row_user and row_length.
  void bucket(std::int64_t epoch, int threads) {
    require(epoch >= 0, "epoch must be >= 0, got ", epoch);
    if (epoch == epoch_) return;
    item_groups_ = Grouping(positives_.n_items, blocks_, bpr_item_groups_seed(seed_, epoch));
    parallel_for(blocks_, threads, [&](std::int64_t p) { bucket_user_group(int(p)); });
    block_begin_.back() = positives_.size();
    epoch_ = epoch;
  }

  // Throws unless the blocks are arranged for `epoch` and `sub_epoch` is one of its sub-epochs.
  void check_sub_epoch(std::int64_t epoch, int sub_epoch) const {
    require(epoch >= 0, "epoch must be >= 0, got ", epoch);
    require(sub_epoch >= 0 && sub_epoch < blocks_, "sub_epoch must be in [0, blocks=", blocks_, "), got ",
            sub_epoch);
    require(epoch == epoch_, "the grid's blocks are arranged for epoch ", epoch_, ", not for epoch ", epoch,
            ": call bucket(", epoch, ") first");
  }

  // The item group of block p of a sub-epoch whose shift is `shift`.
  int item_group_of(int p, int shift) const { return (p + shift) % blocks_; }

 private:
  static int checked_blocks(int blocks) {
    require(blocks >= 1 && blocks <= max_blocks, "blocks must be in [1, ", max_blocks, "], got ", blocks);
    return blocks;
  }

  // The fixed ranges of each user group: its positives, group_begin_[p] onwards (the groups in
  // order), and room for its rows, one per (user, item group) pair that can occur: at most
  // min(its positives, its users x B).
  void lay_out_user_groups() {
    const int B = blocks_;
    group_begin_.assign(std::size_t(B) + 1, 0);
    group_row_begin_.assign(std::size_t(B) + 1, 0);
    for (int p = 0; p < B; ++p) {
      std::int64_t positives = 0;
      for (std::int64_t m = users_.begin[p]; m < users_.begin[p + 1]; ++m) {
        const std::int64_t n = users_.members[m];
        positives += positives_.offsets[n + 1] - positives_.offsets[n];
      }
      group_begin_[p + 1] = group_begin_[p] + positives;
      group_row_begin_[p + 1] = group_row_begin_[p] + std::min(positives, users_.size[p] * B);
    }
  }

  // The counting sort of user group p's positives by this epoch's item group (see bucket). Users
  // come in increasing index and each user's items in increasing index, so every row is a user's
  // sorted positives in one item group, and a block's rows come in increasing user index.
  void bucket_user_group(int p) {
    const int B = blocks_;
    const std::int32_t* group = item_groups_.group.data();
    std::vector<std::int64_t> entries(std::size_t(B), 0), rows(std::size_t(B), 0), last_user(std::size_t(B), -1);
    auto for_each_positive = [&](auto&& visit) {
      for (std::int64_t m = users_.begin[p]; m < users_.begin[p + 1]; ++m) {
        const std::int32_t n = users_.members[m];
        for (std::int64_t k = positives_.offsets[n]; k < positives_.offsets[n + 1]; ++k)
          visit(n, positives_.items[k], group[positives_.items[k]]);
      }
    };
    for_each_positive([&](std::int32_t n, std::int32_t, int q) {
      ++entries[q];
      if (last_user[q] != n) ++rows[q], last_user[q] = n;
    });
    std::int64_t entry = group_begin_[p], row = group_row_begin_[p];
    for (int q = 0; q < B; ++q) {
      const std::int64_t b = block_id(p, q), count = entries[q];
      block_begin_[b] = entry;
      block_row_begin_[b] = row;
      block_row_end_[b] = row + rows[q];
      entries[q] = entry;  // from here on: where block (p, q)'s next positive goes
      entry += count;
      row += rows[q];
      rows[q] = block_row_begin_[b] - 1;  // and its current row
      last_user[q] = -1;
    }
    for_each_positive([&](std::int32_t n, std::int32_t item, int q) {
      if (last_user[q] != n) {
        last_user[q] = n;
        ++rows[q];
        row_user_[rows[q]] = n;
        row_length_[rows[q]] = 0;
      }
      items_[entries[q]++] = item;
      ++row_length_[rows[q]];
    });
  }

  Positives positives_;
  int blocks_;
  std::uint64_t seed_;
  Grouping users_, item_groups_;
  std::int64_t epoch_ = -1;
  std::vector<std::int64_t> group_begin_, group_row_begin_;
  std::vector<std::int32_t> items_, row_user_, row_length_;
  std::vector<std::int64_t> block_begin_, block_row_begin_, block_row_end_;
};

// The negative items of one block (p, q) of one epoch, drawn in turn from the block's own stream.
class BlockNegatives {
 public:
  BlockNegatives(const BprGrid& grid, std::int64_t block)
      : rng_(bpr_negatives_seed(grid.seed(), grid.epoch(), block)) {
    const Grouping& items = grid.item_groups();
    const int q = int(block % grid.blocks());
    candidates_ = items.members.data() + items.begin[q];
    count_ = items.size[q];
  }

  // The negative of the user's next positive: uniform over item group q, redrawn while it is one
  // of `own` (the user's positives in group q, sorted, own_count of them), at most
  // max_negative_draws draws in all. -1 when every draw hit a positive.
  std::int32_t next(const std::int32_t* own, std::int64_t own_count) {
    for (int draw = 0; draw < max_negative_draws; ++draw) {
      const std::int32_t j = candidates_[rng_.below(std::uint64_t(count_))];
      if (!std::binary_search(own, own + own_count, j)) return j;
    }
    return -1;
  }

 private:
  SplitMix64 rng_;
  const std::int32_t* candidates_;
  std::int64_t count_;
};

// The step of BPR's SGD: eta and lambda.
template <class Scalar>
struct BprStep {
  Scalar learning_rate;
  Scalar regularization;
};

// The arguments of one sub-epoch, checked before anything is written: U (n_users x F) and V
// (n_items x F) of the grid's users and items, eta > 0, lambda >= 0, the blocks arranged for
// `epoch`, and sub_epoch in [0, B).
template <class Scalar>
void check_bpr_sub_epoch(const BprGrid& grid, const Factors<Scalar>& f, const BprStep<Scalar>& step,
                         std::int64_t epoch, int sub_epoch) {
  check_factors(f, grid.n_users(), grid.n_items());
  check_learning_rate(step.learning_rate);
  check_regularization(step.regularization);
  grid.check_sub_epoch(epoch, sub_epoch);
}

// (user, positive item, negative item) triples.
struct Triples {
  std::vector<std::int32_t> users, positives, negatives;
};

// The triples of sub-epoch `sub_epoch` of the grid's epoch, in the order the BPR kernel applies
// them: the sub-epoch's blocks p = 0, 1, ... (they touch disjoint rows, so this order gives the
// result of running them in parallel), in each block its rows in order and each row's positives
// in order, with the negatives the kernel draws. Positives without a negative are left out.
inline Triples sub_epoch_triples(const BprGrid& grid, std::int64_t epoch, int sub_epoch) {
  grid.check_sub_epoch(epoch, sub_epoch);
  const int shift = sub_epoch_shifts(grid.blocks(), grid.seed(), epoch)[sub_epoch];
  Triples t;
  for (int p = 0; p < grid.blocks(); ++p) {
    const std::int64_t b = grid.block_id(p, grid.item_group_of(p, shift));
    BlockNegatives negatives(grid, b);
    const std::int32_t* own = grid.items() + grid.block_begin(b);
    for (std::int64_t r = grid.block_row_begin(b); r < grid.block_row_end(b); ++r) {
      const std::int64_t length = grid.row_length()[r];
      for (std::int64_t k = 0; k < length; ++k) {
        const std::int32_t j = negatives.next(own, length);
        if (j < 0) continue;
        t.users.push_back(grid.row_user()[r]);
        t.positives.push_back(own[k]);
        t.negatives.push_back(j);
      }
      own += length;
    }
  }
  return t;
}

}  // namespace latentmf
