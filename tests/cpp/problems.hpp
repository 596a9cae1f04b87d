// Data for the core's tests: ratings and model parameters that own their storage and hand out the
// core's views, and the instruction-set levels to run the kernels at.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "check.hpp"
#include "latentmf/dispatch.hpp"
#include "latentmf/factors.hpp"
#include "latentmf/ratings.hpp"

namespace latentmf::test {

// The levels compiled in that this CPU runs: the tests call the kernels through the dispatch
// table of each, as the extension does.
inline std::vector<Isa> runnable_isas() {
  std::vector<Isa> levels;
  for (Isa isa : compiled_isas())
    if (cpu_supports(isa)) levels.push_back(isa);
  return levels;
}

template <class Scalar>
const char* scalar_name() {
  return sizeof(Scalar) == 4 ? "float" : "double";
}

template <class Scalar>
struct Ratings {
  std::int64_t n_users = 0, n_items = 0;
  std::vector<std::int32_t> users, items;
  std::vector<Scalar> values;

  std::int64_t size() const { return std::int64_t(values.size()); }
  Coo<std::int32_t, Scalar> coo() const {
    return {users.data(), items.data(), values.data(), size(), n_users, n_items};
  }
  void add(std::int32_t user, std::int32_t item, Scalar value) {
    users.push_back(user);
    items.push_back(item);
    values.push_back(value);
  }
};

// `size` ratings of uniformly drawn users and items (pairs may repeat), values in [1, 5].
template <class Scalar>
Ratings<Scalar> random_ratings(std::int64_t n_users, std::int64_t n_items, std::int64_t size, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int32_t> user(0, std::int32_t(n_users - 1)), item(0, std::int32_t(n_items - 1));
  std::uniform_real_distribution<double> value(1.0, 5.0);
  Ratings<Scalar> r;
  r.n_users = n_users;
  r.n_items = n_items;
  for (std::int64_t k = 0; k < size; ++k) r.add(user(rng), item(rng), Scalar(value(rng)));
  return r;
}

// U, V and, where not empty, the biases and the AdaGrad accumulators of a model.
template <class Scalar>
struct Model {
  std::int64_t n_users = 0, n_items = 0, n_factors = 0;
  std::vector<Scalar> U, V;
  Scalar global_mean = 0;
  std::vector<Scalar> user_bias, item_bias;
  std::vector<Scalar> user_accumulators, item_accumulators;

  Factors<Scalar> factors() { return {U.data(), V.data(), n_users, n_items, n_factors}; }
  Biases<Scalar> biases() {
    if (user_bias.empty()) return {};
    return {global_mean, user_bias.data(), item_bias.data()};
  }
  Accumulators<Scalar> accumulators() {
    if (user_accumulators.empty()) return {};
    return {user_accumulators.data(), item_accumulators.data()};
  }
  // Every parameter, for comparing two models bit by bit.
  std::vector<std::vector<Scalar>> parameters() const {
    return {U, V, user_bias, item_bias, user_accumulators, item_accumulators};
  }
};

// Factors drawn from N(0, 0.3^2); with biases, N(0, 0.1^2) biases and mean 3; with AdaGrad,
// accumulators in [1, 3).
template <class Scalar>
Model<Scalar> random_model(std::int64_t n_users, std::int64_t n_items, std::int64_t n_factors, bool biases,
                           bool adagrad, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform(1.0, 3.0);
  auto draw = [&](std::int64_t n, auto&& distribution, double scale) {
    std::vector<Scalar> x(static_cast<std::size_t>(n));
    for (auto& value : x) value = Scalar(scale * distribution(rng));
    return x;
  };
  Model<Scalar> m;
  m.n_users = n_users;
  m.n_items = n_items;
  m.n_factors = n_factors;
  m.U = draw(n_users * n_factors, normal, 0.3);
  m.V = draw(n_items * n_factors, normal, 0.3);
  if (biases) {
    m.global_mean = 3;
    m.user_bias = draw(n_users, normal, 0.1);
    m.item_bias = draw(n_items, normal, 0.1);
  }
  if (adagrad) {
    m.user_accumulators = draw(2 * n_users, uniform, 1.0);
    m.item_accumulators = draw(2 * n_items, uniform, 1.0);
  }
  return m;
}

}  // namespace latentmf::test
