// The loss of DESIGN.md and its masked batch gradients over sparse ratings:
//   L = 1/2 sum_(n,m) in Omega [ e_nm^2 + lambda (|u_n|^2 + |v_m|^2) ],  e = r_hat - r
//   dL/dU = E V + lambda diag(c) U,   dL/dV = E^T U + lambda diag(d) V
// With biases, r_hat = mu + b_n + c_m + u_n . v_m and lambda also weighs b_n^2 and c_m^2.
#pragma once

#include <cstdint>

#include "../checks.hpp"
#include "../compressed.hpp"
#include "../factors.hpp"
#include "../parallel.hpp"
#include "isa.hpp"
#include "vector.hpp"

namespace latentmf {
namespace LATENTMF_ISA {

// Ratings ahead of the current one whose opposite-side rows are prefetched: the rows are
// gathered at random, and their misses overlap only if they are asked for early.
constexpr std::int64_t prefetch_ratings = 8;

// What one side of the batch gradient reads and writes. `own` holds this side's factors (U when
// the rows are users), `other` the opposite side's; null outputs are skipped.
template <class Scalar>
struct SidePass {
  const CompressedRatings<Scalar>* side;
  const Scalar* own;
  const Scalar* other;
  std::int64_t n_factors;
  const Scalar* own_bias;
  const Scalar* other_bias;
  Scalar global_mean;
  Scalar regularization;
  Scalar* grad;
  Scalar* grad_bias;
  bool count_errors;
};

// Row n of one side: grad_n = sum_m e_nm other_m + lambda c_n own_n (c_n = ratings in the row),
// with e_nm = r_hat_nm - r_nm. Returns the row's share of the Objective: its squared errors when
// count_errors (the user side counts them; the item side would count them again), and
// c_n (|own_n|^2 + bias_n^2).
template <int FixedF, class Scalar>
Objective gradient_row(const SidePass<Scalar>& p, std::int64_t n) {
  const std::int64_t F = width<FixedF>(p.n_factors);
  const std::int64_t* offsets = p.side->offsets.data();
  const std::int32_t* cols = p.side->cols.data();
  const Scalar* values = p.side->values.data();
  const std::int64_t size = p.side->offsets.back();
  const Scalar* x = p.own + n * F;
  const Scalar x_bias = p.own_bias ? p.own_bias[n] : Scalar(0);
  const bool visit_ratings = p.grad != nullptr || p.grad_bias != nullptr || p.count_errors;
  const std::int64_t begin = visit_ratings ? offsets[n] : offsets[n + 1];
  const Scalar weight = p.regularization * Scalar(offsets[n + 1] - offsets[n]);
  Scalar g_bias = 0;
  double errors = 0;
  auto error = [&](std::int64_t k, Scalar dot_product) {
    Scalar prediction = dot_product;
    if (p.own_bias) prediction += p.global_mean + x_bias + p.other_bias[cols[k]];
    const Scalar e = prediction - values[k];
    errors += double(e) * double(e);
    g_bias += e;
    return e;
  };
#ifdef LATENTMF_HAVE_VECTORS
  if constexpr (vectorised<FixedF, Scalar>) {
    constexpr int W = vector_width<Scalar>, K = FixedF / W;
    Vector<Scalar> own_row[K], sum[K];
    for (int i = 0; i < K; ++i) {
      own_row[i] = load(x + i * W);
      sum[i] = Vector<Scalar>{};
    }
    for (std::int64_t k = begin; k < offsets[n + 1]; ++k) {
      if (k + prefetch_ratings < size) prefetch_row(p.other + std::int64_t(cols[k + prefetch_ratings]) * F, F);
      Vector<Scalar> other_row[K];
      for (int i = 0; i < K; ++i) other_row[i] = load(p.other + std::int64_t(cols[k]) * F + i * W);
      const Scalar e = error(k, dot_vectors<K, Scalar>(own_row, other_row));
      for (int i = 0; i < K; ++i) sum[i] += e * other_row[i];
    }
    if (p.grad)
      for (int i = 0; i < K; ++i) store(p.grad + n * F + i * W, sum[i] + weight * own_row[i]);
  } else
#endif
  {
    Scalar* g = p.grad ? p.grad + n * F : nullptr;
    if (g)
      for (std::int64_t f = 0; f < F; ++f) g[f] = 0;
    for (std::int64_t k = begin; k < offsets[n + 1]; ++k) {
      const Scalar* w = p.other + std::int64_t(cols[k]) * F;
      const Scalar e = error(k, dot<FixedF>(x, w, F));
      if (g) {
        LATENTMF_OMP_SIMD()
        for (std::int64_t f = 0; f < F; ++f) g[f] += e * w[f];
      }
    }
    if (g) {
      LATENTMF_OMP_SIMD()
      for (std::int64_t f = 0; f < F; ++f) g[f] += weight * x[f];
    }
  }
  if (p.grad_bias) p.grad_bias[n] = g_bias + weight * x_bias;
  Objective share;
  if (p.count_errors) share.squared_errors = errors;
  share.penalty = double(offsets[n + 1] - offsets[n]) * (double(squared_norm<FixedF>(x, F)) + double(x_bias) * x_bias);
  return share;
}

// All rows of one side, in chunks of about equal work whose sums are added in chunk order.
template <int FixedF, class Scalar>
Objective side_pass(const SidePass<Scalar>& p, int threads) {
  return deterministic_sum<Objective>(balanced_chunks(p.side->offsets), threads, [&](std::int64_t begin, std::int64_t end) {
    Objective partial;
    for (std::int64_t n = begin; n < end; ++n) partial += gradient_row<FixedF>(p, n);
    return partial;
  });
}

// Both sides: the user rows from the CSR ordering and the item rows from the CSC ordering, so each
// output row is written by one thread and its sum runs in a fixed order. Null outputs are skipped.
template <class Scalar>
Objective both_sides(const RatingsIndex<Scalar>& r, const Factors<Scalar>& f, const Biases<Scalar>& b,
                     Scalar regularization, const Gradients<Scalar>& out, int threads) {
  check_factors(f, r.n_users, r.n_items);
  check_regularization(regularization);
  const SidePass<Scalar> users{&r.by_user, f.U, f.V, f.n_factors, b.user, b.item, b.global_mean,
                               regularization, out.U, out.user_bias, true};
  const SidePass<Scalar> items{&r.by_item, f.V, f.U, f.n_factors, b.item, b.user, b.global_mean,
                               regularization, out.V, out.item_bias, false};
  return with_width(f.n_factors, [&](auto fixed) {
    constexpr int FixedF = decltype(fixed)::value;
    Objective total = side_pass<FixedF>(users, threads);
    total += side_pass<FixedF>(items, threads);
    return total;
  });
}

// The two sums of L for the indexed ratings.
template <class Scalar>
Objective objective(const RatingsIndex<Scalar>& r, const Factors<Scalar>& f, const Biases<Scalar>& b, int threads) {
  return both_sides(r, f, b, Scalar(0), Gradients<Scalar>{}, threads);
}

// dL/dU, dL/dV (and the bias gradients when biases are enabled) into `out`; returns the
// Objective at the same point.
template <class Scalar>
Objective gradients(const RatingsIndex<Scalar>& r, const Factors<Scalar>& f, const Biases<Scalar>& b,
                    Scalar regularization, const Gradients<Scalar>& out, int threads) {
  return both_sides(r, f, b, regularization, out, threads);
}

}  // namespace LATENTMF_ISA
}  // namespace latentmf
