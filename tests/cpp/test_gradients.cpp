// The loss of DESIGN.md and its batch gradients, through the dispatch table of every level this
// CPU runs: the Objective against the sums written out, and dL/dU, dL/dV and the bias gradients
// against central finite differences of L, on tiny problems of both code paths (items with few
// ratings: one pass per side; with many: item gradients from partials of the user pass).
#include <cstdint>
#include <vector>

#include "check.hpp"
#include "latentmf/blocks.hpp"
#include "latentmf/compressed.hpp"
#include "latentmf/dispatch.hpp"
#include "problems.hpp"

namespace latentmf::test {
namespace {

// The sums of the Objective written out: squared errors of r_hat - r, and |u_n|^2 + |v_m|^2
// (+ b_n^2 + c_m^2) once per rating.
Objective expected_objective(const Ratings<double>& r, const Model<double>& m) {
  const std::int64_t F = m.n_factors;
  const bool biases = !m.user_bias.empty();
  Objective o;
  for (std::int64_t k = 0; k < r.size(); ++k) {
    const std::int64_t n = r.users[k], i = r.items[k];
    double prediction = biases ? m.global_mean + m.user_bias[n] + m.item_bias[i] : 0.0;
    double norms = biases ? m.user_bias[n] * m.user_bias[n] + m.item_bias[i] * m.item_bias[i] : 0.0;
    for (std::int64_t f = 0; f < F; ++f) {
      prediction += m.U[n * F + f] * m.V[i * F + f];
      norms += m.U[n * F + f] * m.U[n * F + f] + m.V[i * F + f] * m.V[i * F + f];
    }
    o.squared_errors += (prediction - r.values[k]) * (prediction - r.values[k]);
    o.penalty += norms;
  }
  return o;
}

double loss(const Ratings<double>& r, const Model<double>& m, double lambda) {
  const Objective o = expected_objective(r, m);
  return 0.5 * (o.squared_errors + lambda * o.penalty);
}

// dL/dx for every parameter x of `parameter` (one of m's arrays), by central differences.
std::vector<double> finite_differences(const Ratings<double>& r, Model<double> m,
                                       std::vector<double> Model<double>::*parameter, double lambda) {
  const double h = 1e-5;
  std::vector<double>& x = m.*parameter;
  std::vector<double> gradient(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double above = loss(r, m, lambda);
    x[i] = saved - h;
    const double below = loss(r, m, lambda);
    x[i] = saved;
    gradient[i] = (above - below) / (2 * h);
  }
  return gradient;
}

template <class Scalar>
std::vector<Scalar> as(const std::vector<double>& x) {
  return std::vector<Scalar>(x.begin(), x.end());
}

template <class Scalar>
void check_against_finite_differences(Isa isa, std::int64_t n_users, std::int64_t n_items, std::int64_t size,
                                      std::int64_t F, bool biases) {
  CONTEXT(isa_name(isa) << ", " << scalar_name<Scalar>() << ", " << n_users << " x " << n_items << ", " << size
                        << " ratings, F = " << F << (biases ? ", biases" : ""));
  const double lambda = 0.3, tolerance = sizeof(Scalar) == 4 ? 1e-4 : 1e-7;
  const auto r = random_ratings<double>(n_users, n_items, size, std::uint64_t(size + F));
  const auto m = random_model<double>(n_users, n_items, F, biases, false, std::uint64_t(F));
  Ratings<Scalar> rs{r.n_users, r.n_items, r.users, r.items, as<Scalar>(r.values)};
  Model<Scalar> ms{m.n_users, m.n_items, F, as<Scalar>(m.U), as<Scalar>(m.V), Scalar(m.global_mean),
                   as<Scalar>(m.user_bias), as<Scalar>(m.item_bias), {}, {}};
  const RatingsIndex<Scalar> index(rs.coo(), 1);
  std::vector<Scalar> dU(m.U.size()), dV(m.V.size()), db(m.user_bias.size()), dc(m.item_bias.size());
  const Gradients<Scalar> out{dU.data(), dV.data(), biases ? db.data() : nullptr, biases ? dc.data() : nullptr};
  const auto& k = kernels<Scalar>(isa);
  const Objective at_point = k.gradients(index, ms.factors(), ms.biases(), Scalar(lambda), out, 1);
  const Objective objective = k.objective(index, ms.factors(), ms.biases(), 1);
  const Objective expected = expected_objective(r, m);
  CHECK_NEAR(objective.squared_errors, expected.squared_errors, tolerance);
  CHECK_NEAR(objective.penalty, expected.penalty, tolerance);
  CHECK_NEAR(at_point.squared_errors, expected.squared_errors, tolerance);
  CHECK_NEAR(at_point.penalty, expected.penalty, tolerance);
  // The grid sums the same terms block by block.
  const BlockGrid<Scalar> grid(rs.coo(), 2, 3, 1);
  const Objective on_grid = k.grid_objective(grid, ms.factors(), ms.biases(), 1);
  CHECK_NEAR(on_grid.squared_errors, expected.squared_errors, tolerance);
  CHECK_NEAR(on_grid.penalty, expected.penalty, tolerance);

  struct Output {
    const char* name;
    const std::vector<Scalar>& actual;
    std::vector<double> Model<double>::*parameter;
  };
  std::vector<Output> outputs = {{"dL/dU", dU, &Model<double>::U}, {"dL/dV", dV, &Model<double>::V}};
  if (biases) {
    outputs.push_back({"dL/db", db, &Model<double>::user_bias});
    outputs.push_back({"dL/dc", dc, &Model<double>::item_bias});
  }
  for (const auto& output : outputs) {
    CONTEXT(output.name);
    const auto expected_gradient = finite_differences(r, m, output.parameter, lambda);
    for (std::size_t i = 0; i < expected_gradient.size(); ++i)
      CHECK_NEAR(output.actual[i], expected_gradient[i], tolerance);
  }
}

TEST_CASE(objective_and_gradients_match_finite_differences) {
  for (Isa isa : runnable_isas())
    for (bool biases : {false, true})
      for (std::int64_t F : {3, 16}) {
        // 10 ratings on 3 items: a pass over the item rows. 40 on 2 items (at least 8 per item on
        // average): the item gradients come from partials of the user pass.
        check_against_finite_differences<double>(isa, 4, 3, 10, F, biases);
        check_against_finite_differences<double>(isa, 10, 2, 40, F, biases);
        check_against_finite_differences<float>(isa, 4, 3, 10, F, biases);
        check_against_finite_differences<float>(isa, 10, 2, 40, F, biases);
      }
}

}  // namespace
}  // namespace latentmf::test
