// Views of the model parameters the routines read and update: U (n_users x F) and V
// (n_items x F), row-major and contiguous, and the optional biases of DESIGN.md.
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
  double loss(double regularization) const { return 0.5 * (squared_errors + regularization * penalty); }
};

template <class Scalar>
inline Scalar dot(const Scalar* a, const Scalar* b, std::int64_t n) {
  Scalar sum = 0;
#pragma omp simd reduction(+ : sum)
  for (std::int64_t f = 0; f < n; ++f) sum += a[f] * b[f];
  return sum;
}

template <class Scalar>
inline Scalar squared_norm(const Scalar* a, std::int64_t n) {
  return dot(a, a, n);
}

}  // namespace latentmf
