// SGD of DESIGN.md, one observed pair at a time, through the dispatch table of every level this CPU
// runs: a one-rating step against numbers worked out by hand (plain, with biases, AdaGrad), every
// variant (widths, biases, AdaGrad, warm-up) against the update written out plainly, and an epoch
// over the block grid against the same ratings run one by one in the grid's visiting order.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "check.hpp"
#include "latentmf/blocks.hpp"
#include "latentmf/dispatch.hpp"
#include "problems.hpp"

namespace latentmf::test {
namespace {

template <class Scalar>
double tolerance() {
  return sizeof(Scalar) == 4 ? 2e-6 : 1e-13;
}

// How a one-rating problem reaches the kernels: in a given order (with 32- or 64-bit indices), or
// as the only block of a 1 x 1 grid.
enum class Entry { ordered_int32, ordered_int64, grid };
constexpr Entry entries[] = {Entry::ordered_int32, Entry::ordered_int64, Entry::grid};

const char* entry_name(Entry entry) {
  switch (entry) {
    case Entry::ordered_int32: return "sgd_ordered, int32";
    case Entry::ordered_int64: return "sgd_ordered, int64";
    default: return "sgd_sub_epoch";
  }
}

// One SGD step on the rating r of user 0 and item 0 of `m`; returns e^2 as the kernel reports it.
template <class Scalar>
double step_one_rating(Isa isa, Entry entry, Model<Scalar>& m, Scalar r, const SgdStep<Scalar>& step) {
  const auto& k = kernels<Scalar>(isa);
  const std::int64_t order[] = {0};
  if (entry == Entry::ordered_int64) {
    const std::int64_t users[] = {0}, items[] = {0};
    const Coo<std::int64_t, Scalar> coo{users, items, &r, 1, m.n_users, m.n_items};
    return k.sgd_ordered_int64(coo, order, m.factors(), m.biases(), m.accumulators(), step);
  }
  const std::int32_t users[] = {0}, items[] = {0};
  const Coo<std::int32_t, Scalar> coo{users, items, &r, 1, m.n_users, m.n_items};
  if (entry == Entry::ordered_int32)
    return k.sgd_ordered_int32(coo, order, m.factors(), m.biases(), m.accumulators(), step);
  const BlockGrid<Scalar> grid(coo, 1, 0, 1);
  return k.sgd_sub_epoch(grid, m.factors(), m.biases(), m.accumulators(), step, 0, 0, 1);
}

// A one-user, one-item model with the given rows.
template <class Scalar>
Model<Scalar> one_pair(std::vector<Scalar> u, std::vector<Scalar> v) {
  Model<Scalar> m;
  m.n_users = m.n_items = 1;
  m.n_factors = std::int64_t(u.size());
  m.U = std::move(u);
  m.V = std::move(v);
  return m;
}

template <class Scalar>
void check_values(const std::vector<Scalar>& actual, const std::vector<double>& expected, const char* what) {
  CONTEXT(what);
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK_NEAR(actual[i], expected[i], tolerance<Scalar>());
}

// u = (0.5, -1), v = (2, 0.25), r = 3, eta = 0.1, lambda = 0.2: r_hat = 1 - 0.25 = 0.75, e = 2.25;
//   u <- u + eta (e v - lambda u) = (0.5 + 0.1 (4.5 - 0.1), -1 + 0.1 (0.5625 + 0.2)) = (0.94, -0.92375)
//   v <- v + eta (e u - lambda v) = (2 + 0.1 (1.125 - 0.4), 0.25 + 0.1 (-2.25 - 0.05)) = (2.0725, 0.02)
template <class Scalar>
void check_plain_step(Isa isa, Entry entry) {
  auto m = one_pair<Scalar>({0.5, -1}, {2, 0.25});
  const double squared_error = step_one_rating<Scalar>(isa, entry, m, 3, {Scalar(0.1), Scalar(0.2)});
  CHECK_NEAR(squared_error, 5.0625, tolerance<Scalar>());
  check_values(m.U, {0.94, -0.92375}, "u");
  check_values(m.V, {2.0725, 0.02}, "v");
}

// The same rows with mean 3, b = 0.5, c = -0.25 and r = 5: r_hat = 3 + 0.5 - 0.25 + 0.75 = 4, e = 1;
//   u = (0.5 + 0.1 (2 - 0.1), -1 + 0.1 (0.25 + 0.2)) = (0.69, -0.955)
//   v = (2 + 0.1 (0.5 - 0.4), 0.25 + 0.1 (-1 - 0.05)) = (2.01, 0.145)
//   b = 0.5 + 0.1 (1 - 0.1) = 0.59,  c = -0.25 + 0.1 (1 + 0.05) = -0.145
template <class Scalar>
void check_step_with_biases(Isa isa, Entry entry) {
  auto m = one_pair<Scalar>({0.5, -1}, {2, 0.25});
  m.global_mean = 3;
  m.user_bias = {0.5};
  m.item_bias = {-0.25};
  const double squared_error = step_one_rating<Scalar>(isa, entry, m, 5, {Scalar(0.1), Scalar(0.2)});
  CHECK_NEAR(squared_error, 1.0, tolerance<Scalar>());
  check_values(m.U, {0.69, -0.955}, "u");
  check_values(m.V, {2.01, 0.145}, "v");
  check_values(m.user_bias, {0.59}, "b");
  check_values(m.item_bias, {-0.145}, "c");
}

// The plain case with AdaGrad, G_user = (4, 9), G_item = (16, 25) (F = 2: the leading group only).
// Steps 0.1 / sqrt(4) = 0.05 and 0.1 / sqrt(16) = 0.025; gradients e v - lambda u = (4.4, 0.7625)
// and e u - lambda v = (0.725, -2.3):
//   u = (0.5 + 0.05 * 4.4, -1 + 0.05 * 0.7625) = (0.72, -0.961875)
//   v = (2 + 0.025 * 0.725, 0.25 - 0.025 * 2.3) = (2.018125, 0.1925)
//   G_user lead = 4 + (4.4^2 + 0.7625^2) / 2 = 13.970703125, G_item lead = 16 + (0.725^2 + 2.3^2) / 2
//   = 18.9078125; the other group's accumulators keep their values.
template <class Scalar>
void check_adagrad_step(Isa isa, Entry entry) {
  auto m = one_pair<Scalar>({0.5, -1}, {2, 0.25});
  m.user_accumulators = {4, 9};
  m.item_accumulators = {16, 25};
  const double squared_error = step_one_rating<Scalar>(isa, entry, m, 3, {Scalar(0.1), Scalar(0.2)});
  CHECK_NEAR(squared_error, 5.0625, tolerance<Scalar>());
  check_values(m.U, {0.72, -0.961875}, "u");
  check_values(m.V, {2.018125, 0.1925}, "v");
  check_values(m.user_accumulators, {13.970703125, 9}, "user accumulators");
  check_values(m.item_accumulators, {18.9078125, 25}, "item accumulators");
}

template <class Scalar>
void check_hand_computed_steps() {
  for (Isa isa : runnable_isas())
    for (Entry entry : entries) {
      CONTEXT(isa_name(isa) << ", " << scalar_name<Scalar>() << ", " << entry_name(entry));
      check_plain_step<Scalar>(isa, entry);
      check_step_with_biases<Scalar>(isa, entry);
      check_adagrad_step<Scalar>(isa, entry);
    }
}

TEST_CASE(one_sgd_step_matches_the_hand_computed_update) {
  check_hand_computed_steps<float>();
  check_hand_computed_steps<double>();
}

// The update of kernels/sgd.hpp on one rating, written out in double from the formulas: factor
// group 0 is the first lead_factors factors, group 1 the rest; a warm-up moves group 0 only; with
// AdaGrad each group of each row steps by eta / sqrt(G) and G grows by the group's mean square
// gradient; the biases step like group 0. Returns e^2.
double expected_update(Model<double>& m, double r, double eta, double lambda, bool warm_up) {
  const std::int64_t F = m.n_factors, lead = std::min(F, lead_factors);
  double* u = m.U.data();
  double* v = m.V.data();
  const bool biases = !m.user_bias.empty(), adagrad = !m.user_accumulators.empty();
  double prediction = biases ? m.global_mean + m.user_bias[0] + m.item_bias[0] : 0.0;
  for (std::int64_t f = 0; f < F; ++f) prediction += u[f] * v[f];
  const double e = r - prediction;
  double eta_u[2] = {eta, eta}, eta_v[2] = {eta, eta};
  for (int g = 0; adagrad && g < 2; ++g) {
    eta_u[g] = eta / std::sqrt(m.user_accumulators[g]);
    eta_v[g] = eta / std::sqrt(m.item_accumulators[g]);
  }
  const std::int64_t begin[2] = {0, lead}, end[2] = {lead, warm_up ? lead : F};
  for (int g = 0; g < 2; ++g) {
    double user_squares = 0, item_squares = 0;
    for (std::int64_t f = begin[g]; f < end[g]; ++f) {
      const double x = u[f], y = v[f], grad_u = e * y - lambda * x, grad_v = e * x - lambda * y;
      u[f] = x + eta_u[g] * grad_u;
      v[f] = y + eta_v[g] * grad_v;
      user_squares += grad_u * grad_u;
      item_squares += grad_v * grad_v;
    }
    if (adagrad && end[g] > begin[g]) {
      m.user_accumulators[g] += user_squares / double(end[g] - begin[g]);
      m.item_accumulators[g] += item_squares / double(end[g] - begin[g]);
    }
  }
  if (biases) {
    const double b = m.user_bias[0], c = m.item_bias[0];
    m.user_bias[0] = b + eta_u[0] * (e - lambda * b);
    m.item_bias[0] = c + eta_v[0] * (e - lambda * c);
  }
  return e * e;
}

template <class To, class From>
Model<To> converted(const Model<From>& m) {
  auto convert = [](const std::vector<From>& x) { return std::vector<To>(x.begin(), x.end()); };
  Model<To> out;
  out.n_users = m.n_users;
  out.n_items = m.n_items;
  out.n_factors = m.n_factors;
  out.U = convert(m.U);
  out.V = convert(m.V);
  out.global_mean = To(m.global_mean);
  out.user_bias = convert(m.user_bias);
  out.item_bias = convert(m.item_bias);
  out.user_accumulators = convert(m.user_accumulators);
  out.item_accumulators = convert(m.item_accumulators);
  return out;
}

template <class Scalar>
void check_every_variant(Isa isa) {
  // 2: one factor group; 20: two groups, plain loops; 32: two groups of whole SIMD vectors.
  for (std::int64_t F : {2, 20, 32})
    for (bool biases : {false, true})
      for (bool adagrad : {false, true})
        for (bool warm_up : {false, true})
          for (Entry entry : entries) {
            CONTEXT(isa_name(isa) << ", " << scalar_name<Scalar>() << ", F = " << F << (biases ? ", biases" : "")
                                  << (adagrad ? ", AdaGrad" : "") << (warm_up ? ", warm-up" : "") << ", "
                                  << entry_name(entry));
            // Values exact in float, so that both types start from the same point.
            auto expected = converted<double>(converted<float>(random_model<double>(1, 1, F, biases, adagrad, 17)));
            auto m = converted<Scalar>(expected);
            const double r = 4.25, eta = 0.05, lambda = 0.1;
            const double expected_squared_error = expected_update(expected, r, eta, lambda, warm_up);
            const SgdStep<Scalar> step{Scalar(eta), Scalar(lambda), warm_up};
            CHECK_NEAR(step_one_rating<Scalar>(isa, entry, m, Scalar(r), step), expected_squared_error,
                       tolerance<Scalar>());
            const auto actual = m.parameters(), wanted = expected.parameters();
            for (std::size_t p = 0; p < actual.size(); ++p) {
              REQUIRE(actual[p].size() == wanted[p].size());
              for (std::size_t i = 0; i < actual[p].size(); ++i)
                CHECK_NEAR(actual[p][i], wanted[p][i], tolerance<Scalar>());
            }
          }
}

TEST_CASE(every_sgd_variant_follows_the_formulas) {
  for (Isa isa : runnable_isas()) {
    check_every_variant<float>(isa);
    check_every_variant<double>(isa);
  }
}

// Running the ratings one at a time in visiting_order gives the bits of the parallel epoch.
template <class Scalar>
void check_epoch_against_visiting_order(Isa isa, bool biases, bool adagrad) {
  CONTEXT(isa_name(isa) << ", " << scalar_name<Scalar>() << (biases ? ", biases" : "") << (adagrad ? ", AdaGrad" : ""));
  const int B = 3;
  const std::uint64_t seed = 21;
  const std::int64_t epoch = 2;
  const auto r = random_ratings<Scalar>(90, 70, 3000, 8);
  const auto& k = kernels<Scalar>(isa);
  const SgdStep<Scalar> step{Scalar(0.01), Scalar(0.05)};
  auto parallel = random_model<Scalar>(90, 70, 32, biases, adagrad, 9);
  auto sequential = parallel;
  const BlockGrid<Scalar> grid(r.coo(), B, seed, 2);
  double parallel_errors = 0;
  for (int s = 0; s < B; ++s)
    parallel_errors += k.sgd_sub_epoch(grid, parallel.factors(), parallel.biases(), parallel.accumulators(), step,
                                       epoch, s, 2);
  const auto order = grid_visiting_order(r.coo(), B, seed, epoch, 1);
  const double sequential_errors = k.sgd_ordered_int32(r.coo(), order.data(), sequential.factors(),
                                                       sequential.biases(), sequential.accumulators(), step);
  const auto a = parallel.parameters(), b = sequential.parameters();
  for (std::size_t p = 0; p < a.size(); ++p) CHECK(same_bits(a[p], b[p]));
  // The sums of e^2 are added in other orders: equal to rounding.
  CHECK_NEAR(parallel_errors, sequential_errors, 1e-9);
  CHECK(!same_bits(parallel.U, random_model<Scalar>(90, 70, 32, biases, adagrad, 9).U));
}

TEST_CASE(an_epoch_on_the_grid_equals_its_visiting_order_run_one_by_one) {
  for (Isa isa : runnable_isas())
    for (bool biases : {false, true})
      for (bool adagrad : {false, true}) {
        check_epoch_against_visiting_order<float>(isa, biases, adagrad);
        check_epoch_against_visiting_order<double>(isa, biases, adagrad);
      }
}

}  // namespace
}  // namespace latentmf::test
