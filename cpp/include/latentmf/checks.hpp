// Checks shared by the routines that take factors and hyper-parameters.
#pragma once

#include <cmath>
#include <cstdint>

#include "errors.hpp"
#include "factors.hpp"
#include "memory.hpp"

namespace latentmf {

template <class Scalar>
void check_factors(const Factors<Scalar>& f, std::int64_t n_users, std::int64_t n_items) {
  require(f.n_factors >= 1, "U and V must have at least one column (factor), got ", f.n_factors);
  require(f.n_users == n_users, "U has ", f.n_users, " rows but the ratings have n_users=", n_users);
  require(f.n_items == n_items, "V has ", f.n_items, " rows but the ratings have n_items=", n_items);
}

template <class Scalar>
void check_regularization(Scalar regularization) {
  require(std::isfinite(regularization) && regularization >= 0,
          "regularization must be a finite number >= 0, got ", regularization);
}

template <class Scalar>
void check_learning_rate(Scalar learning_rate) {
  require(std::isfinite(learning_rate) && learning_rate > 0,
          "learning_rate must be a finite number > 0, got ", learning_rate);
}

template <class Scalar>
void check_step(const SgdStep<Scalar>& step) {
  check_learning_rate(step.learning_rate);
  check_regularization(step.regularization);
}

// Arguments of one SGD sub-epoch over a block grid (any grid type with blocks(), n_users(), n_items()).
template <class Grid, class Scalar>
void check_grid_step(const Grid& grid, const Factors<Scalar>& f, const SgdStep<Scalar>& step, std::int64_t epoch,
                     int sub_epoch) {
  check_factors(f, grid.n_users(), grid.n_items());
  check_step(step);
  require(epoch >= 0, "epoch must be >= 0, got ", epoch);
  require(sub_epoch >= 0 && sub_epoch < grid.blocks(), "sub_epoch must be in [0, blocks=", grid.blocks(),
          "), got ", sub_epoch);
}

// `order` must be a permutation of [0, size): each rating exactly once.
inline void check_permutation(const std::int64_t* order, std::int64_t size) {
  auto seen = allocate<std::uint8_t>(size, "the order check");
  for (std::int64_t i = 0; i < size; ++i) {
    require(order[i] >= 0 && order[i] < size, "order[", i, "] = ", order[i], " is outside [0, ", size, ")");
    require(!seen[order[i]], "order[", i, "] = ", order[i],
            " repeats an earlier entry: order must be a permutation of the ratings");
    seen[order[i]] = 1;
  }
}

// Pairs (users[k], items[k]) must index rows of U and V.
template <class Index>
void check_pairs(const Index* users, const Index* items, std::int64_t size, std::int64_t n_users,
                 std::int64_t n_items) {
  for (std::int64_t k = 0; k < size; ++k) {
    require(users[k] >= 0 && users[k] < n_users, "users[", k, "] = ", +users[k],
            " is outside [0, n_users=", n_users, ")");
    require(items[k] >= 0 && items[k] < n_items, "items[", k, "] = ", +items[k],
            " is outside [0, n_items=", n_items, ")");
  }
}

}  // namespace latentmf
