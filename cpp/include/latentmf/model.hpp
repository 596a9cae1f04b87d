// The parameters a fitted model owns: U (n_users x F) and V (n_items x F) row-major, the
// user and item biases, the global mean, and the per-row AdaGrad accumulators. Storage is allocated once and never moves, so
// views handed out (the NumPy arrays of the binding) stay valid for the model's lifetime.
#pragma once

#include <cstdint>

#include "errors.hpp"
#include "memory.hpp"

namespace latentmf {

template <class Scalar>
class Model {
 public:
  Model(std::int64_t n_users, std::int64_t n_items, std::int64_t n_factors) : n_factors_(n_factors) {
    require(n_users >= 1, "n_users must be >= 1, got ", n_users);
    require(n_items >= 1, "n_items must be >= 1, got ", n_items);
    require(n_factors >= 1, "factors must be >= 1, got ", n_factors);
    // All of it or nothing: the whole model is checked against physical memory before any part
    // is allocated (U, V, two biases and two AdaGrad accumulators per row).
    const double rows = double(n_users) + double(n_items);
    check_available(rows * (double(n_factors) + 3.0) * sizeof(Scalar), "the model (U, V, biases, accumulators)");
    U_ = Buffer<Scalar>(n_users * n_factors, "the user factors U");
    V_ = Buffer<Scalar>(n_items * n_factors, "the item factors V");
    user_bias_ = Buffer<Scalar>(n_users, "the user biases");
    item_bias_ = Buffer<Scalar>(n_items, "the item biases");
    user_accumulators_ = Buffer<Scalar>(2 * n_users, "the AdaGrad accumulators");
    item_accumulators_ = Buffer<Scalar>(2 * n_items, "the AdaGrad accumulators");
  }

  std::int64_t n_users() const { return user_bias_.size(); }
  std::int64_t n_items() const { return item_bias_.size(); }
  std::int64_t n_factors() const { return n_factors_; }
  Scalar* U() { return U_.data(); }
  Scalar* V() { return V_.data(); }
  Scalar* user_bias() { return user_bias_.data(); }
  Scalar* item_bias() { return item_bias_.data(); }
  Scalar* user_accumulators() { return user_accumulators_.data(); }
  Scalar* item_accumulators() { return item_accumulators_.data(); }
  Scalar& global_mean() { return global_mean_; }

 private:
  std::int64_t n_factors_;
  Buffer<Scalar> U_, V_, user_bias_, item_bias_, user_accumulators_, item_accumulators_;
  Scalar global_mean_ = 0;
};

}  // namespace latentmf
