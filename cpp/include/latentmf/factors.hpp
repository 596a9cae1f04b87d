// Views of the model parameters the routines read and update, U (n_users x F) and V
// (n_items x F) row-major and contiguous, the optional biases of DESIGN.md, and the small
// structs the kernels take and return.
#pragma once

#include <cstdint>

namespace latentmf {

template <class Scalar>
struct Factors {
  Scalar* U;
  Scalar* V;
  std::int64_t n_users;
  std::int64_t n_items;
  std::int64_t n_factors;

  Scalar* user_row(std::int64_t n) const { return U + n * n_factors; }
  Scalar* item_row(std::int64_t m) const { return V + m * n_factors; }
};

// r_hat = global_mean + user[n] + item[m] + u_n . v_m when user and item are set; when both are
// null the model is the plain r_hat = u_n . v_m (global_mean is then ignored).
template <class Scalar>
struct Biases {
  Scalar global_mean = 0;
  Scalar* user = nullptr;
  Scalar* item = nullptr;

  bool enabled() const { return user != nullptr; }
  Scalar offset(std::int64_t n, std::int64_t m) const {
    return enabled() ? global_mean + user[n] + item[m] : Scalar(0);
  }
};

// The two sums the loss of DESIGN.md is made of: L = 1/2 (squared_errors + lambda penalty) with
// squared_errors = sum over Omega of (r - r_hat)^2 and penalty = sum over Omega of
// |u_n|^2 + |v_m|^2 (+ b_n^2 + c_m^2 with biases).
struct Objective {
  double squared_errors = 0;
  double penalty = 0;

  Objective& operator+=(const Objective& other) {
    squared_errors += other.squared_errors;
    penalty += other.penalty;
    return *this;
  }
};

// The leading factors: the first group of AdaGrad's accumulators, and the factors a warm-up
// epoch moves (see kernels/sgd.hpp).
constexpr std::int64_t lead_factors = 16;

template <class Scalar>
struct SgdStep {
  Scalar learning_rate;
  Scalar regularization;
  bool warm_up = false;  // move only the leading factors
};

// The per-row accumulators of AdaGrad SGD (null when the step is fixed): two per user (n_users x 2,
// row-major) and two per item, one for the leading factors and one for the rest, each the running
// sum of that group's mean square gradients (starting at 1).
template <class Scalar>
struct Accumulators {
  Scalar* user = nullptr;
  Scalar* item = nullptr;

  bool enabled() const { return user != nullptr; }
};

// Outputs of the batch gradients; a null pointer skips that output. Row-major like U and V.
template <class Scalar>
struct Gradients {
  Scalar* U = nullptr;
  Scalar* V = nullptr;
  Scalar* user_bias = nullptr;
  Scalar* item_bias = nullptr;
};

}  // namespace latentmf
