// The loss of DESIGN.md and its masked batch gradients over sparse ratings:
//   L = 1/2 sum_(n,m) in Omega [ e_nm^2 + lambda (|u_n|^2 + |v_m|^2) ],  e = r_hat - r
//   dL/dU = E V + lambda diag(c) U,   dL/dV = E^T U + lambda diag(d) V
// With biases, r_hat = mu + b_n + c_m + u_n . v_m and lambda also weighs b_n^2 and c_m^2.
#pragma once

#include <cstdint>

#include "checks.hpp"
#include "compressed.hpp"
#include "factors.hpp"
#include "parallel.hpp"

namespace latentmf {

// Outputs of gradients(); a null pointer skips that output. Row-major like U and V.
template <class Scalar>
struct Gradients {
  Scalar* U = nullptr;
  Scalar* V = nullptr;
  Scalar* user_bias = nullptr;
  Scalar* item_bias = nullptr;
};

// One side of the batch gradient, one row at a time. `own` holds this side's factors (U when the
// rows are users), `other` the opposite side's. For each row n with ratings m:
//   grad_n = sum_m e_nm other_m + lambda c_n own_n       (c_n = ratings in the row)
// Returns this side's share of the Objective: the squared errors when count_errors (the user
// side counts them, the item side would count them again), and sum_n c_n (|own_n|^2 + bias_n^2).
template <class Scalar>
Objective side_pass(const CompressedRatings<Scalar>& side, const Scalar* own, const Scalar* other,
                    std::int64_t n_factors, const Scalar* own_bias, const Scalar* other_bias,
                    Scalar global_mean, Scalar regularization, Scalar* grad, Scalar* grad_bias,
                    bool count_errors, int threads) {
  const std::int64_t F = n_factors;
  const bool visit_ratings = grad != nullptr || grad_bias != nullptr || count_errors;
  return deterministic_sum<Objective>(side.n_rows, threads, [&](std::int64_t begin, std::int64_t end) {
    Objective partial;
    for (std::int64_t n = begin; n < end; ++n) {
      const Scalar* x = own + n * F;
      const Scalar x_bias = own_bias ? own_bias[n] : Scalar(0);
      Scalar* g = grad ? grad + n * F : nullptr;
      if (g)
        for (std::int64_t f = 0; f < F; ++f) g[f] = 0;
      Scalar g_bias = 0;
      double errors = 0;
      if (visit_ratings) {
        for (std::int64_t k = side.offsets[n]; k < side.offsets[n + 1]; ++k) {
          const Scalar* w = other + std::int64_t(side.cols[k]) * F;
          Scalar prediction = dot(x, w, F);
          if (own_bias) prediction += global_mean + x_bias + other_bias[side.cols[k]];
          const Scalar e = prediction - side.values[k];
          errors += double(e) * double(e);
          g_bias += e;
          if (g) {
#pragma omp simd
            for (std::int64_t f = 0; f < F; ++f) g[f] += e * w[f];
          }
        }
      }
      const Scalar count = Scalar(side.count(n));
      const Scalar weight = regularization * count;
      if (g) {
#pragma omp simd
        for (std::int64_t f = 0; f < F; ++f) g[f] += weight * x[f];
      }
      if (grad_bias) grad_bias[n] = g_bias + weight * x_bias;
      if (count_errors) partial.squared_errors += errors;
      partial.penalty += double(count) * (double(squared_norm(x, F)) + double(x_bias) * x_bias);
    }
    return partial;
  });
}

template <class Scalar>
void check_loss_arguments(const RatingsIndex<Scalar>& r, const Factors<Scalar>& f,
                          Scalar regularization) {
  check_factors(f, r.n_users, r.n_items);
  check_regularization(regularization);
}

// The two sums of L for the indexed ratings (see the top of this file).
template <class Scalar>
Objective objective(const RatingsIndex<Scalar>& r, const Factors<Scalar>& f, const Biases<Scalar>& b,
                    int threads) {
  check_loss_arguments(r, f, Scalar(0));
  Objective total = side_pass<Scalar>(r.by_user, f.U, f.V, f.n_factors, b.user, b.item, b.global_mean,
                                      Scalar(0), nullptr, nullptr, true, threads);
  total += side_pass<Scalar>(r.by_item, f.V, f.U, f.n_factors, b.item, b.user, b.global_mean, Scalar(0),
                             nullptr, nullptr, false, threads);
  return total;
}

// dL/dU, dL/dV (and the bias gradients when biases are enabled) into `out`; returns the
// Objective at the same point. The user rows come from the CSR ordering and the item rows from
// the CSC ordering, so each output row is written by one thread and its sum runs in a fixed order.
template <class Scalar>
Objective gradients(const RatingsIndex<Scalar>& r, const Factors<Scalar>& f, const Biases<Scalar>& b,
                    Scalar regularization, const Gradients<Scalar>& out, int threads) {
  check_loss_arguments(r, f, regularization);
  Objective total = side_pass<Scalar>(r.by_user, f.U, f.V, f.n_factors, b.user, b.item, b.global_mean,
                                      regularization, out.U, out.user_bias, true, threads);
  total += side_pass<Scalar>(r.by_item, f.V, f.U, f.n_factors, b.item, b.user, b.global_mean,
                             regularization, out.V, out.item_bias, false, threads);
  return total;
}

}  // namespace latentmf
