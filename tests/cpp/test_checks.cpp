// Bad input: the core throws InvalidArgument (errors.hpp) naming the argument, before it writes
// anything. Each bad value sits where a kernel that checked as it went would already have written
// (the last rating, the last user, the last sub-epoch), and the outputs are compared bit by bit.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "check.hpp"
#include "latentmf/blocks.hpp"
#include "latentmf/compressed.hpp"
#include "latentmf/dispatch.hpp"
#include "latentmf/errors.hpp"
#include "latentmf/parallel.hpp"
#include "problems.hpp"

namespace latentmf::test {
namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

// Runs `call` (which must throw InvalidArgument mentioning `text`) on a copy of `model`, and checks
// that the copy is still equal to `model` bit by bit.
template <class Call>
void check_refused_unchanged(const Model<double>& model, Call&& call, const std::string& text) {
  CONTEXT("expecting '" << text << "'");
  auto copy = model;
  CHECK_THROWS(InvalidArgument, call(copy), text);
  const auto before = model.parameters(), after = copy.parameters();
  for (std::size_t p = 0; p < before.size(); ++p) CHECK(same_bits(before[p], after[p]));
}

TEST_CASE(sgd_in_an_order_refuses_bad_input_before_any_update) {
  const auto good = random_ratings<double>(6, 5, 40, 1);
  const auto model = random_model<double>(6, 5, 4, true, true, 2);
  std::vector<std::int64_t> order(40);
  std::iota(order.begin(), order.end(), 0);
  const SgdStep<double> step{0.1, 0.1};
  for (Isa isa : runnable_isas()) {
    CONTEXT(isa_name(isa));
    const auto& k = kernels<double>(isa);
    auto run = [&](const Ratings<double>& r, const std::vector<std::int64_t>& o, const SgdStep<double>& s) {
      return [&, r, o, s](Model<double>& m) {
        k.sgd_ordered_int32(r.coo(), o.data(), m.factors(), m.biases(), m.accumulators(), s);
      };
    };
    auto bad = good;
    bad.users[39] = 6;
    check_refused_unchanged(model, run(bad, order, step), "users[39] = 6 is outside [0, n_users=6)");
    bad = good;
    bad.items[39] = -1;
    check_refused_unchanged(model, run(bad, order, step), "items[39] = -1 is outside [0, n_items=5)");
    bad = good;
    bad.values[39] = nan;
    check_refused_unchanged(model, run(bad, order, step), "values[39] = nan is not a finite number");
    auto repeated = order;
    repeated[39] = 3;
    check_refused_unchanged(model, run(good, repeated, step), "order[39] = 3 repeats an earlier entry");
    auto beyond = order;
    beyond[39] = 40;
    check_refused_unchanged(model, run(good, beyond, step), "order[39] = 40 is outside [0, 40)");
    check_refused_unchanged(model, run(good, order, {0.0, 0.1}), "learning_rate must be a finite number > 0, got 0");
    check_refused_unchanged(model, run(good, order, {0.1, -1.0}), "regularization must be a finite number >= 0");
    check_refused_unchanged(model, run(good, order, {nan, 0.1}), "learning_rate must be a finite number > 0");
    auto more_users = good;
    more_users.n_users = 7;
    check_refused_unchanged(model, run(more_users, order, step), "U has 6 rows but the ratings have n_users=7");
  }
}

TEST_CASE(sgd_on_the_grid_refuses_bad_input_before_any_update) {
  const auto r = random_ratings<double>(6, 5, 40, 3);
  const auto model = random_model<double>(6, 5, 4, false, false, 4);
  const BlockGrid<double> grid(r.coo(), 3, 1, 1);
  for (Isa isa : runnable_isas()) {
    CONTEXT(isa_name(isa));
    const auto& k = kernels<double>(isa);
    auto run = [&](std::int64_t epoch, int sub_epoch, SgdStep<double> step, std::int64_t n_items = 5) {
      return [&, epoch, sub_epoch, step, n_items](Model<double>& m) {
        auto f = m.factors();
        f.n_items = n_items;
        k.sgd_sub_epoch(grid, f, m.biases(), m.accumulators(), step, epoch, sub_epoch, 1);
      };
    };
    check_refused_unchanged(model, run(0, 3, {0.1, 0.1}), "sub_epoch must be in [0, blocks=3), got 3");
    check_refused_unchanged(model, run(0, -1, {0.1, 0.1}), "sub_epoch must be in [0, blocks=3), got -1");
    check_refused_unchanged(model, run(-1, 0, {0.1, 0.1}), "epoch must be >= 0, got -1");
    check_refused_unchanged(model, run(0, 2, {-0.1, 0.1}), "learning_rate must be a finite number > 0");
    check_refused_unchanged(model, run(0, 2, {0.1, 0.1}, 4), "V has 4 rows but the ratings have n_items=5");
  }
}

TEST_CASE(gradients_refuse_bad_input_before_writing_their_outputs) {
  const auto r = random_ratings<double>(6, 5, 40, 5);
  auto m = random_model<double>(6, 5, 4, true, false, 6);
  const RatingsIndex<double> index(r.coo(), 1);
  for (Isa isa : runnable_isas()) {
    CONTEXT(isa_name(isa));
    const auto& k = kernels<double>(isa);
    // Outputs filled with a value no gradient here has.
    std::vector<double> dU(m.U.size(), 7.0), dV(m.V.size(), 7.0), db(6, 7.0), dc(5, 7.0);
    const Gradients<double> out{dU.data(), dV.data(), db.data(), dc.data()};
    auto untouched = [](const std::vector<double>& x) {
      return std::all_of(x.begin(), x.end(), [](double v) { return v == 7.0; });
    };
    CHECK_THROWS(InvalidArgument, k.gradients(index, m.factors(), m.biases(), -0.5, out, 1),
                 "regularization must be a finite number >= 0, got -0.5");
    auto narrow = m.factors();
    narrow.n_users = 5;
    CHECK_THROWS(InvalidArgument, k.gradients(index, narrow, m.biases(), 0.1, out, 1),
                 "U has 5 rows but the ratings have n_users=6");
    narrow = m.factors();
    narrow.n_factors = 0;
    CHECK_THROWS(InvalidArgument, k.gradients(index, narrow, m.biases(), 0.1, out, 1),
                 "U and V must have at least one column (factor), got 0");
    CHECK(untouched(dU) && untouched(dV) && untouched(db) && untouched(dc));
  }
}

TEST_CASE(top_items_refuse_bad_input_before_writing_their_outputs) {
  auto m = random_model<float>(4, 6, 3, false, false, 7);
  const std::vector<std::int64_t> offsets = {0, 1, 3, 3, 5};
  const std::vector<std::int32_t> seen = {2, 0, 4, 5, 1};  // the last user's items decrease
  for (Isa isa : runnable_isas()) {
    CONTEXT(isa_name(isa));
    const auto& k = kernels<float>(isa);
    std::vector<std::int64_t> items(8, 99);
    std::vector<float> scores(8, 99.0f);
    auto top = [&](std::vector<std::int64_t> users, std::int64_t k_best, const std::int32_t* seen_items) {
      k.top_items(m.factors(), m.biases(), offsets.data(), seen_items, 5, users.data(), std::int64_t(users.size()),
                  k_best, items.data(), scores.data(), 1);
    };
    CHECK_THROWS(InvalidArgument, top({0, 1}, 0, nullptr), "k must be >= 1, got 0");
    CHECK_THROWS(InvalidArgument, top({0, 4}, 4, nullptr), "users[1] = 4 is outside [0, n_users=4)");
    CHECK_THROWS(InvalidArgument, top({0, 3}, 4, seen.data()),
                 "seen_items of user 3 must be increasing item indices in [0, n_items=6)");
    CHECK(std::all_of(items.begin(), items.end(), [](std::int64_t i) { return i == 99; }));
    CHECK(std::all_of(scores.begin(), scores.end(), [](float s) { return s == 99.0f; }));
  }
}

TEST_CASE(grids_and_orderings_refuse_unusable_ratings) {
  const auto r = random_ratings<double>(6, 5, 40, 8);
  CHECK_THROWS(InvalidArgument, BlockGrid<double>(r.coo(), 0, 1, 1), "blocks must be in [1, 1024], got 0");
  CHECK_THROWS(InvalidArgument, BlockGrid<double>(r.coo(), 1025, 1, 1), "blocks must be in [1, 1024], got 1025");
  Ratings<double> empty;
  empty.n_users = empty.n_items = 3;
  CHECK_THROWS(InvalidArgument, BlockGrid<double>(empty.coo(), 2, 1, 1), "the ratings are empty");
  auto bad = r;
  bad.values[39] = std::numeric_limits<double>::infinity();
  CHECK_THROWS(InvalidArgument, BlockGrid<double>(bad.coo(), 2, 1, 1), "values[39] = inf is not a finite number");
  CHECK_THROWS(InvalidArgument, RatingsIndex<double>(bad.coo(), 1), "values[39] = inf is not a finite number");
  bad = r;
  bad.n_items = 0;
  CHECK_THROWS(InvalidArgument, RatingsIndex<double>(bad.coo(), 1), "n_items must be >= 1, got 0");
  CHECK_THROWS(InvalidArgument, grid_visiting_order(r.coo(), 2, 1, -1, 1), "epoch must be >= 0, got -1");
  // A shard holds the ratings of its own user group only.
  const Grouping users(6, 2, stream_seed(1, user_stream));
  std::int64_t stranger = 0;
  while (users.group[r.users[stranger]] == 0) ++stranger;
  CHECK_THROWS(InvalidArgument, BlockGrid<double>::user_group_shard(r.coo(), 2, 1, 0, 1),
               "users[" + std::to_string(stranger) + "] = " + std::to_string(r.users[stranger]) +
                   " is in user group 1, not in group 0");
  CHECK_THROWS(InvalidArgument, resolve_threads(-1), "threads must be >= 1 (or None for all cores), got -1");
}

}  // namespace
}  // namespace latentmf::test
