// BPR on the block grid (bpr.hpp) on its own: every epoch's blocks hold each positive once, in the
// block of its user's group and of the epoch's item group; a sub-epoch gives the same bits on 1 and
// 2 threads at every level this CPU runs; bad positives and a sub-epoch of another epoch are refused.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "check.hpp"
#include "latentmf/bpr.hpp"
#include "latentmf/dispatch.hpp"
#include "latentmf/errors.hpp"
#include "problems.hpp"

namespace latentmf::test {
namespace {

// The distinct items of each user of `size` random ratings: sorted lists, as Positives holds them.
struct PositiveLists {
  std::int64_t n_users = 0, n_items = 0;
  std::vector<std::int64_t> offsets{0};
  std::vector<std::int32_t> items;

  Positives checked() const {
    return checked_positives(offsets.data(), n_users, items.data(), std::int64_t(items.size()), n_items);
  }
};

PositiveLists random_positives(std::int64_t n_users, std::int64_t n_items, std::int64_t size, std::uint64_t seed) {
  const auto r = random_ratings<float>(n_users, n_items, size, seed);
  std::vector<std::vector<std::int32_t>> by_user(static_cast<std::size_t>(n_users));
  for (std::int64_t k = 0; k < r.size(); ++k) by_user[r.users[k]].push_back(r.items[k]);
  PositiveLists lists;
  lists.n_users = n_users;
  lists.n_items = n_items;
  for (auto& own : by_user) {
    std::sort(own.begin(), own.end());
    own.erase(std::unique(own.begin(), own.end()), own.end());
    lists.items.insert(lists.items.end(), own.begin(), own.end());
    lists.offsets.push_back(std::int64_t(lists.items.size()));
  }
  return lists;
}

// Every positive of the grid's epoch, found block by block: rows of increasing users of group p,
// each a run of strictly increasing items of group q that the user has. Returns how many.
std::int64_t check_blocks(const BprGrid& grid, const PositiveLists& lists) {
  std::int64_t found = 0;
  for (int p = 0; p < grid.blocks(); ++p)
    for (int q = 0; q < grid.blocks(); ++q) {
      CONTEXT("block (" << p << ", " << q << ")");
      const std::int64_t b = grid.block_id(p, q);
      const std::int32_t* own = grid.items() + grid.block_begin(b);
      for (std::int64_t r = grid.block_row_begin(b); r < grid.block_row_end(b); ++r) {
        const std::int32_t n = grid.row_user()[r];
        CHECK_EQ(grid.user_groups().group[n], p);
        CHECK(r == grid.block_row_begin(b) || n > grid.row_user()[r - 1]);
        const auto* first = lists.items.data() + lists.offsets[n];
        const auto* last = lists.items.data() + lists.offsets[n + 1];
        for (std::int64_t k = 0; k < grid.row_length()[r]; ++k) {
          CHECK_EQ(grid.item_groups().group[own[k]], q);
          CHECK(k == 0 || own[k] > own[k - 1]);
          CHECK(std::binary_search(first, last, own[k]));
        }
        own += grid.row_length()[r];
        found += grid.row_length()[r];
      }
      CHECK_EQ(own - grid.items(), grid.block_begin(b) + grid.block_size(b));
    }
  return found;
}

TEST_CASE(bpr_blocks_hold_every_positive_once_in_its_groups_of_the_epoch) {
  const auto lists = random_positives(200, 90, 3000, 1);
  BprGrid grid(lists.checked(), 3, 5);
  std::vector<std::int32_t> first_groups;
  for (std::int64_t epoch : {0, 1, 2}) {
    CONTEXT("epoch " << epoch);
    grid.bucket(epoch, 2);
    // No positive is found twice (rows and their items strictly increase), all are found.
    CHECK_EQ(check_blocks(grid, lists), grid.size());
    if (epoch == 0) first_groups = grid.item_groups().group;
  }
  CHECK(grid.item_groups().group != first_groups);  // the items' partition changes between epochs
}

template <class Scalar>
void check_bpr_threads(Isa isa, BprGrid& grid, bool biases) {
  CONTEXT(isa_name(isa) << ", " << scalar_name<Scalar>() << (biases ? ", biases" : ""));
  const BprStep<Scalar> step{Scalar(0.05), Scalar(0.01)};
  const auto start = random_model<Scalar>(grid.n_users(), grid.n_items(), 32, biases, false, 6);
  auto one = start, two = start;
  const auto& k = kernels<Scalar>(isa);
  for (std::int64_t epoch = 0; epoch < 2; ++epoch) {
    grid.bucket(epoch, 2);
    for (int s = 0; s < grid.blocks(); ++s) {
      const double l1 = k.bpr_sub_epoch(grid, one.factors(), biases ? one.item_bias.data() : nullptr, step, epoch,
                                        s, 1);
      const double l2 = k.bpr_sub_epoch(grid, two.factors(), biases ? two.item_bias.data() : nullptr, step, epoch,
                                        s, 2);
      CHECK_EQ(l1, l2);
    }
  }
  const auto a = one.parameters(), b = two.parameters();
  for (std::size_t p = 0; p < a.size(); ++p) CHECK(same_bits(a[p], b[p]));
  CHECK(!same_bits(one.V, start.V));
}

TEST_CASE(bpr_sub_epochs_give_the_same_bits_on_1_and_2_threads) {
  // About 146000 positives in 2 x 2 blocks: enough per sub-epoch for the kernel to use 2 threads.
  BprGrid grid(random_positives(3000, 2000, 150000, 2).checked(), 2, 7);
  for (Isa isa : runnable_isas())
    for (bool biases : {false, true}) {
      check_bpr_threads<float>(isa, grid, biases);
      check_bpr_threads<double>(isa, grid, biases);
    }
}

TEST_CASE(bpr_refuses_unsorted_positives_and_a_sub_epoch_of_another_epoch) {
  PositiveLists unsorted;
  unsorted.n_users = 1;
  unsorted.n_items = 3;
  unsorted.offsets = {0, 2};
  unsorted.items = {2, 1};
  CHECK_THROWS(InvalidArgument, unsorted.checked(), "each user's items must be sorted and distinct");
  BprGrid grid(random_positives(20, 10, 100, 3).checked(), 2, 0);
  grid.bucket(1, 1);
  auto m = random_model<double>(20, 10, 4, false, false, 1);
  const BprStep<double> step{0.1, 0.0};
  const auto before = m.parameters();
  CHECK_THROWS(InvalidArgument, kernels<double>(Isa::generic).bpr_sub_epoch(grid, m.factors(), nullptr, step, 0, 0, 1),
               "arranged for epoch 1, not for epoch 0");
  CHECK_THROWS(InvalidArgument, kernels<double>(Isa::generic).bpr_sub_epoch(grid, m.factors(), nullptr, step, 1, 2, 1),
               "sub_epoch must be in [0, blocks=2)");
  CHECK(m.parameters() == before);
}

}  // namespace
}  // namespace latentmf::test
