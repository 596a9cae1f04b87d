// The parameters a fitted model owns: U (n_users x F) and V (n_items x F) row-major, the
// user and item biases and the global mean. Storage is allocated once and never moves, so
// views handed out (the NumPy arrays of the binding) stay valid for the model's lifetime.
#pragma once

#include <cstdint>
#include <new>

#include <Eigen/Core>

#include "errors.hpp"
#include "factors.hpp"
#include "memory.hpp"

namespace latentmf {

template <class Scalar>
class Model {
 public:
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  Model(std::int64_t n_users, std::int64_t n_items, std::int64_t n_factors) {
    require(n_users >= 1, "n_users must be >= 1, got ", n_users);
    require(n_items >= 1, "n_items must be >= 1, got ", n_items);
    require(n_factors >= 1, "factors must be >= 1, got ", n_factors);
    const double bytes = (double(n_users) + double(n_items)) * (double(n_factors) + 1) * sizeof(Scalar);
    try {
      U_ = Matrix::Zero(n_users, n_factors);
      V_ = Matrix::Zero(n_items, n_factors);
      user_bias_ = Vector::Zero(n_users);
      item_bias_ = Vector::Zero(n_items);
    } catch (const std::bad_alloc&) {
      allocation_failed("the model's factors and biases", bytes);
    }
  }

  std::int64_t n_users() const { return U_.rows(); }
  std::int64_t n_items() const { return V_.rows(); }
  std::int64_t n_factors() const { return U_.cols(); }
  Matrix& U() { return U_; }
  Matrix& V() { return V_; }
  Vector& user_bias() { return user_bias_; }
  Vector& item_bias() { return item_bias_; }
  Scalar& global_mean() { return global_mean_; }

 private:
  Matrix U_, V_;
  Vector user_bias_, item_bias_;
  Scalar global_mean_ = 0;
};

}  // namespace latentmf
