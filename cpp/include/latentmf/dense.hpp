// The masked batch gradients for a dense R, as the plain formulation of DESIGN.md states them:
//   E = mask .* (U V^T - R),   dL/dU = E V + lambda diag(c) U,   dL/dV = E^T U + lambda diag(d) V
// where c and d count the observed entries of each row and column.
#pragma once

#include <cmath>
#include <cstdint>

#include <Eigen/Core>

#include "checks.hpp"
#include "factors.hpp"
#include "memory.hpp"
#include "parallel.hpp"

namespace latentmf {

template <class Scalar>
using RowMajorMatrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// R is n_users x n_items row-major. `mask` (same shape, nonzero = observed) may be null, and then
// NaN marks a missing entry. Observed entries must be finite.
template <class Scalar>
struct DenseRatings {
  const Scalar* R;
  const std::uint8_t* mask;
  std::int64_t n_users;
  std::int64_t n_items;

  bool observed(std::int64_t k) const { return mask ? mask[k] != 0 : !std::isnan(R[k]); }
};

template <class Scalar>
void check_dense(const DenseRatings<Scalar>& d) {
  const std::int64_t total = d.n_users * d.n_items;
  for (std::int64_t k = 0; k < total; ++k) {
    if (d.observed(k) && !std::isfinite(d.R[k]))
      fail("R[", k / d.n_items, ", ", k % d.n_items, "] = ", d.R[k],
           d.mask ? " is observed (mask is true) but not a finite number"
                  : " is infinite (only NaN marks a missing rating)");
  }
}

// Writes dU (n_users x F) and dV (n_items x F). Rows are computed in fixed chunks, each by one
// thread with single-threaded Eigen products, so the result does not depend on the thread count.
template <class Scalar>
void gradients_dense(const DenseRatings<Scalar>& d, const Factors<Scalar>& f, Scalar regularization,
                     Scalar* dU, Scalar* dV, int threads) {
  check_factors(f, d.n_users, d.n_items);
  check_regularization(regularization);
  check_dense(d);
  using Matrix = RowMajorMatrix<Scalar>;
  using Map = Eigen::Map<Matrix>;
  using ConstMap = Eigen::Map<const Matrix>;
  const std::int64_t N = d.n_users, M = d.n_items, F = f.n_factors;
  const ConstMap U(f.U, N, F), V(f.V, M, F);
  Map gU(dU, N, F), gV(dV, M, F);
  auto E_storage = allocate<Scalar>(N * M, "the residual matrix E");
  Map E(E_storage.data(), N, M);
  Eigen::Matrix<Scalar, Eigen::Dynamic, 1> row_count(N), column_count(M);

  const Chunks user_chunks = even_chunks(N, 16, 4096), item_chunks = even_chunks(M, 16, 4096);
  parallel_for(user_chunks.count(), threads, [&](std::int64_t c) {
    const auto begin = user_chunks.begin(c), rows = user_chunks.end(c) - begin;
    E.middleRows(begin, rows).noalias() = U.middleRows(begin, rows) * V.transpose();
    for (std::int64_t n = begin; n < begin + rows; ++n) {
      std::int64_t count = 0;
      for (std::int64_t m = 0; m < M; ++m) {
        const std::int64_t k = n * M + m;
        const bool seen = d.observed(k);
        E(n, m) = seen ? E(n, m) - d.R[k] : Scalar(0);
        count += seen;
      }
      row_count[n] = Scalar(count);
    }
  });
  parallel_for(item_chunks.count(), threads, [&](std::int64_t c) {
    const auto begin = item_chunks.begin(c), cols = item_chunks.end(c) - begin;
    for (std::int64_t m = begin; m < begin + cols; ++m) {
      std::int64_t count = 0;
      for (std::int64_t n = 0; n < N; ++n) count += d.observed(n * M + m);
      column_count[m] = Scalar(count);
    }
    gV.middleRows(begin, cols).noalias() = E.middleCols(begin, cols).transpose() * U;
    gV.middleRows(begin, cols) +=
        regularization * (column_count.segment(begin, cols).asDiagonal() * V.middleRows(begin, cols));
  });
  parallel_for(user_chunks.count(), threads, [&](std::int64_t c) {
    const auto begin = user_chunks.begin(c), rows = user_chunks.end(c) - begin;
    gU.middleRows(begin, rows).noalias() = E.middleRows(begin, rows) * V;
    gU.middleRows(begin, rows) +=
        regularization * (row_count.segment(begin, rows).asDiagonal() * U.middleRows(begin, rows));
  });
}

}  // namespace latentmf
