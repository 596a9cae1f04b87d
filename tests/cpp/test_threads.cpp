// The thread count never changes a result (DESIGN.md): SGD sub-epochs, the objective and the batch
// gradients give the same bits on 1 and 2 threads, at every level this CPU runs. The problems are
// large enough for the kernels to use both threads (SGD gives each thread at least 20000 ratings
// of a sub-epoch; the gradients split the rows into chunks of about 2048 ratings).
#include <cstdint>
#include <vector>

#include "check.hpp"
#include "latentmf/blocks.hpp"
#include "latentmf/compressed.hpp"
#include "latentmf/dispatch.hpp"
#include "problems.hpp"

namespace latentmf::test {
namespace {

template <class Scalar>
void check_sgd_threads(Isa isa, const Ratings<Scalar>& r, bool biases, bool adagrad) {
  CONTEXT(isa_name(isa) << ", " << scalar_name<Scalar>() << (biases ? ", biases" : "") << (adagrad ? ", AdaGrad" : ""));
  const int B = 2;
  const BlockGrid<Scalar> grid(r.coo(), B, 4, 2);
  const SgdStep<Scalar> step{Scalar(0.01), Scalar(0.05)};
  const auto start = random_model<Scalar>(r.n_users, r.n_items, 32, biases, adagrad, 6);
  auto one = start, two = start;
  for (std::int64_t epoch = 0; epoch < 2; ++epoch)
    for (int s = 0; s < B; ++s) {
      const auto& k = kernels<Scalar>(isa);
      const double e1 = k.sgd_sub_epoch(grid, one.factors(), one.biases(), one.accumulators(), step, epoch, s, 1);
      const double e2 = k.sgd_sub_epoch(grid, two.factors(), two.biases(), two.accumulators(), step, epoch, s, 2);
      CHECK_EQ(e1, e2);
    }
  const auto a = one.parameters(), b = two.parameters();
  for (std::size_t p = 0; p < a.size(); ++p) CHECK(same_bits(a[p], b[p]));
  CHECK(!same_bits(one.U, start.U));
}

TEST_CASE(sgd_sub_epochs_give_the_same_bits_on_1_and_2_threads) {
  // 150000 ratings in 2 x 2 blocks: 75000 per sub-epoch.
  const auto r32 = random_ratings<float>(3000, 2000, 150000, 1);
  const auto r64 = random_ratings<double>(3000, 2000, 150000, 1);
  for (Isa isa : runnable_isas())
    for (bool variant : {false, true}) {
      check_sgd_threads<float>(isa, r32, variant, variant);
      check_sgd_threads<double>(isa, r64, variant, variant);
    }
}

template <class Scalar>
void check_gradient_threads(Isa isa, std::int64_t n_users, std::int64_t n_items, std::int64_t size) {
  CONTEXT(isa_name(isa) << ", " << scalar_name<Scalar>() << ", " << n_users << " x " << n_items << ", " << size
                        << " ratings");
  const auto r = random_ratings<Scalar>(n_users, n_items, size, 2);
  auto m = random_model<Scalar>(n_users, n_items, 32, true, false, 3);
  const RatingsIndex<Scalar> index(r.coo(), 2);
  const BlockGrid<Scalar> grid(r.coo(), 3, 1, 2);
  const auto& k = kernels<Scalar>(isa);
  // Per thread count: the gradients, and the Objective from gradients(), objective() and the grid.
  std::vector<std::vector<Scalar>> outputs[2];
  Objective with_gradients[2], alone[2], on_grid[2];
  for (int t = 0; t < 2; ++t) {
    const int threads = t + 1;
    auto& out = outputs[t];
    out = {std::vector<Scalar>(m.U.size()), std::vector<Scalar>(m.V.size()), std::vector<Scalar>(n_users),
           std::vector<Scalar>(n_items)};
    with_gradients[t] = k.gradients(index, m.factors(), m.biases(), Scalar(0.1),
                                    {out[0].data(), out[1].data(), out[2].data(), out[3].data()}, threads);
    alone[t] = k.objective(index, m.factors(), m.biases(), threads);
    on_grid[t] = k.grid_objective(grid, m.factors(), m.biases(), threads);
  }
  for (const Objective* o : {with_gradients, alone, on_grid}) {
    CHECK_EQ(o[0].squared_errors, o[1].squared_errors);
    CHECK_EQ(o[0].penalty, o[1].penalty);
  }
  for (std::size_t i = 0; i < outputs[0].size(); ++i) CHECK(same_bits(outputs[0][i], outputs[1][i]));
}

TEST_CASE(objective_and_gradients_give_the_same_bits_on_1_and_2_threads) {
  for (Isa isa : runnable_isas()) {
    // 75 ratings per item: item gradients from partials of the user pass; 2.5 per item: a pass
    // over the item rows.
    check_gradient_threads<float>(isa, 3000, 2000, 150000);
    check_gradient_threads<double>(isa, 3000, 2000, 150000);
    check_gradient_threads<float>(isa, 500, 40000, 100000);
    check_gradient_threads<double>(isa, 500, 40000, 100000);
  }
}

}  // namespace
}  // namespace latentmf::test
