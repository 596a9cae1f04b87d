// The stratified block grid of DESIGN.md: seeded permutations, balanced groups, every rating in
// exactly one block of its user group and item group, sub-epochs whose blocks share no row, and a
// visiting order that covers each rating once.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <tuple>
#include <vector>

#include "check.hpp"
#include "latentmf/blocks.hpp"
#include "latentmf/random.hpp"
#include "problems.hpp"

namespace latentmf::test {
namespace {

template <class Int>
bool is_permutation_of_range(const std::vector<Int>& values) {
  std::vector<Int> sorted(values);
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i)
    if (sorted[i] != Int(i)) return false;
  return true;
}

using Triple = std::tuple<std::int32_t, std::int32_t, double>;

// The (user, item, value) of every rating the grid stores, block by block, checking on the way
// that block (p, q) holds users of group p and items of group q only.
std::vector<Triple> ratings_in_blocks(const BlockGrid<double>& grid) {
  std::vector<Triple> found;
  const int B = grid.blocks();
  for (int p = 0; p < B; ++p)
    for (int q = 0; q < B; ++q) {
      CONTEXT("block (" << p << ", " << q << ")");
      const std::int64_t b = grid.block_id(p, q);
      std::int64_t in_block = 0;
      for (std::int64_t row = grid.block_rows()[b]; row < grid.block_rows()[b + 1]; ++row) {
        const std::int32_t user = grid.row_user()[row];
        CHECK_EQ(grid.user_groups()[user], p);
        for (std::int64_t k = grid.row_begin()[row]; k < grid.row_begin()[row + 1]; ++k, ++in_block) {
          CHECK_EQ(grid.item_groups()[grid.items()[k]], q);
          found.emplace_back(user, grid.items()[k], grid.values()[k]);
        }
      }
      CHECK_EQ(in_block, grid.block_size(p, q));
    }
  return found;
}

TEST_CASE(random_permutation_is_a_permutation_fixed_by_its_seed) {
  for (std::int64_t n : {0, 1, 2, 17, 1000}) {
    CONTEXT("n = " << n);
    const auto perm = random_permutation<std::int32_t>(n, 42);
    CHECK_EQ(std::int64_t(perm.size()), n);
    CHECK(is_permutation_of_range(perm));
    CHECK(perm == random_permutation<std::int32_t>(n, 42));
  }
  CHECK(random_permutation<std::int32_t>(1000, 42) != random_permutation<std::int32_t>(1000, 43));
  // The streams of one seed differ from each other and from the seed's neighbours'.
  CHECK(stream_seed(7, user_stream) != stream_seed(7, item_stream));
  CHECK(stream_seed(7, user_stream) != stream_seed(8, user_stream));
}

TEST_CASE(grouping_follows_its_permutation_and_is_balanced) {
  for (auto [n, B] : {std::pair<std::int64_t, int>{10, 3}, {1000, 7}, {5, 5}, {3, 4}, {1, 1}}) {
    CONTEXT("n = " << n << ", B = " << B);
    const std::uint64_t seed = 99;
    const Grouping g(n, B, seed);
    // Group p holds the objects whose position in the seeded permutation is in [p n / B, (p + 1) n / B).
    const auto perm = random_permutation<std::int32_t>(n, seed);
    for (int p = 0; p < B; ++p)
      for (std::int64_t position = p * n / B; position < (p + 1) * n / B; ++position)
        CHECK_EQ(g.group[perm[position]], p);
    const auto [smallest, largest] = std::minmax_element(g.size.begin(), g.size.end());
    CHECK(*largest - *smallest <= 1);
    CHECK_EQ(std::accumulate(g.size.begin(), g.size.end(), std::int64_t(0)), n);
    // members lists each group's objects in increasing index order, and member numbers them so.
    for (int p = 0; p < B; ++p) {
      CHECK_EQ(g.begin[p + 1] - g.begin[p], g.size[p]);
      for (std::int64_t j = g.begin[p]; j < g.begin[p + 1]; ++j) {
        const std::int32_t object = g.members[j];
        CHECK_EQ(g.group[object], p);
        CHECK_EQ(std::int64_t(g.member[object]), j - g.begin[p]);
        if (j > g.begin[p]) CHECK(g.members[j - 1] < object);
      }
    }
  }
}

TEST_CASE(block_grid_holds_every_rating_once_in_the_block_of_its_groups) {
  const auto r = random_ratings<double>(300, 200, 5000, 1);
  const BlockGrid<double> grid(r.coo(), 5, 7, 2);
  CHECK_EQ(grid.size(), r.size());
  auto stored = ratings_in_blocks(grid);
  std::vector<Triple> given;
  for (std::int64_t k = 0; k < r.size(); ++k) given.emplace_back(r.users[k], r.items[k], r.values[k]);
  std::sort(stored.begin(), stored.end());
  std::sort(given.begin(), given.end());
  CHECK(stored == given);
  // The groups are the seeded groupings of DESIGN.md.
  CHECK(grid.user_groups() == Grouping(300, 5, stream_seed(7, user_stream)).group);
  CHECK(grid.item_groups() == Grouping(200, 5, stream_seed(7, item_stream)).group);
  // Rows are in increasing user order within a block, and a row keeps its user's input order.
  for (std::int64_t b = 0; b < 25; ++b)
    for (std::int64_t row = grid.block_rows()[b] + 1; row < grid.block_rows()[b + 1]; ++row)
      CHECK(grid.row_user()[row - 1] < grid.row_user()[row]);
  for (std::int64_t row = 0; row < std::int64_t(grid.row_user().size()); ++row) {
    const std::int32_t user = grid.row_user()[row];
    const std::int32_t item_group = grid.item_groups()[grid.items()[grid.row_begin()[row]]];
    std::vector<std::int32_t> expected;
    for (std::int64_t k = 0; k < r.size(); ++k)
      if (r.users[k] == user && grid.item_groups()[r.items[k]] == item_group) expected.push_back(r.items[k]);
    const std::vector<std::int32_t> row_items(grid.items().begin() + grid.row_begin()[row],
                                              grid.items().begin() + grid.row_begin()[row + 1]);
    CHECK(row_items == expected);
  }
  std::vector<std::int64_t> user_counts(300, 0), item_counts(200, 0);
  for (std::int64_t k = 0; k < r.size(); ++k) {
    ++user_counts[r.users[k]];
    ++item_counts[r.items[k]];
  }
  CHECK(grid.user_counts() == user_counts);
  CHECK(grid.item_counts() == item_counts);
}

TEST_CASE(the_thread_count_does_not_change_the_grid) {
  const auto r = random_ratings<double>(50, 40, 3000, 2);
  const BlockGrid<double> one(r.coo(), 3, 5, 1), four(r.coo(), 3, 5, 4);
  CHECK(one.row_user() == four.row_user());
  CHECK(one.row_begin() == four.row_begin());
  CHECK(one.items() == four.items());
  CHECK(same_bits(one.values(), four.values()));
}

TEST_CASE(the_blocks_of_a_sub_epoch_share_no_row) {
  const int B = 5;
  const auto r = random_ratings<double>(300, 200, 5000, 3);
  const BlockGrid<double> grid(r.coo(), B, 11, 1);
  std::vector<std::vector<int>> orders;
  for (std::int64_t epoch = 0; epoch < 4; ++epoch) {
    CONTEXT("epoch " << epoch);
    const auto shifts = sub_epoch_shifts(B, 11, epoch);
    CHECK(is_permutation_of_range(shifts));
    orders.push_back(shifts);
    std::vector<int> visits(B * B, 0);
    for (int shift : shifts) {
      CONTEXT("shift " << shift);
      // The block that touches each user and each item in this sub-epoch, -1 for none yet.
      std::vector<int> user_owner(300, -1), item_owner(200, -1);
      for (int p = 0; p < B; ++p) {
        const int q = (p + shift) % B;
        ++visits[p * B + q];
        const std::int64_t b = grid.block_id(p, q);
        for (std::int64_t row = grid.block_rows()[b]; row < grid.block_rows()[b + 1]; ++row) {
          const std::int32_t user = grid.row_user()[row];
          CHECK(user_owner[user] == -1 || user_owner[user] == p);
          user_owner[user] = p;
          for (std::int64_t k = grid.row_begin()[row]; k < grid.row_begin()[row + 1]; ++k) {
            const std::int32_t item = grid.items()[k];
            CHECK(item_owner[item] == -1 || item_owner[item] == p);
            item_owner[item] = p;
          }
        }
      }
    }
    // An epoch's sub-epochs run every block once.
    CHECK(std::all_of(visits.begin(), visits.end(), [](int v) { return v == 1; }));
  }
  // The order of the sub-epochs is drawn per epoch.
  CHECK(std::any_of(orders.begin(), orders.end(), [&](const auto& order) { return order != orders[0]; }));
}

TEST_CASE(the_visiting_order_covers_each_rating_once_sub_epoch_by_sub_epoch) {
  const int B = 4;
  const std::uint64_t seed = 5;
  const auto r = random_ratings<double>(120, 90, 2000, 4);
  const BlockGrid<double> grid(r.coo(), B, seed, 1);
  const Grouping users(120, B, stream_seed(seed, user_stream)), items(90, B, stream_seed(seed, item_stream));
  for (std::int64_t epoch : {0, 3}) {
    CONTEXT("epoch " << epoch);
    const auto order = grid_visiting_order(r.coo(), B, seed, epoch, 2);
    REQUIRE(std::int64_t(order.size()) == r.size());
    CHECK(is_permutation_of_range(order));
    // Sub-epoch s takes the next ratings, those of blocks (p, (p + shift_s) mod B).
    std::size_t next = 0;
    for (int shift : sub_epoch_shifts(B, seed, epoch)) {
      std::int64_t in_sub_epoch = 0;
      for (int p = 0; p < B; ++p) in_sub_epoch += grid.block_size(p, (p + shift) % B);
      for (std::int64_t i = 0; i < in_sub_epoch; ++i, ++next) {
        const std::int64_t k = order[next];
        CHECK_EQ((users.group[r.users[k]] + shift) % B, items.group[r.items[k]]);
      }
    }
  }
}

TEST_CASE(a_user_group_shard_holds_that_row_of_the_full_grid_in_local_indices) {
  const int B = 3;
  const std::uint64_t seed = 8;
  const auto r = random_ratings<double>(60, 45, 900, 6);
  const BlockGrid<double> full(r.coo(), B, seed, 1);
  const Grouping users(60, B, stream_seed(seed, user_stream)), items(45, B, stream_seed(seed, item_stream));
  for (int p = 0; p < B; ++p) {
    CONTEXT("user group " << p);
    Ratings<double> mine;
    mine.n_users = 60;
    mine.n_items = 45;
    for (std::int64_t k = 0; k < r.size(); ++k)
      if (users.group[r.users[k]] == p) mine.add(r.users[k], r.items[k], r.values[k]);
    const auto shard = BlockGrid<double>::user_group_shard(mine.coo(), B, seed, p, 1);
    CHECK_EQ(shard.user_group(), p);
    for (int q = 0; q < B; ++q) {
      const std::int64_t b = full.block_id(p, q);
      REQUIRE(shard.block_size(p, q) == full.block_size(p, q));
      REQUIRE(shard.block_rows()[b + 1] - shard.block_rows()[b] == full.block_rows()[b + 1] - full.block_rows()[b]);
      for (std::int64_t i = 0; i < full.block_rows()[b + 1] - full.block_rows()[b]; ++i)
        CHECK_EQ(shard.row_user()[shard.block_rows()[b] + i], users.member[full.row_user()[full.block_rows()[b] + i]]);
      for (std::int64_t i = 0; i < full.block_size(p, q); ++i) {
        const std::int64_t k_full = full.row_begin()[full.block_rows()[b]] + i;
        const std::int64_t k_shard = shard.row_begin()[shard.block_rows()[b]] + i;
        CHECK_EQ(shard.items()[k_shard], items.member[full.items()[k_full]]);
        CHECK_EQ(shard.values()[k_shard], full.values()[k_full]);
      }
    }
  }
}

}  // namespace
}  // namespace latentmf::test
