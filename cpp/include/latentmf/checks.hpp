// Checks shared by the routines that take factors and hyper-parameters.
#pragma once

#include <cmath>
#include <cstdint>

#include "errors.hpp"
#include "factors.hpp"

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

}  // namespace latentmf
