// The least-norm solution of a small symmetric system that is not positive definite, for the rows
// of the row solver (rows.hpp) whose systems are singular. Baseline code with Eigen's
// eigen-solver: such rows are rare, and the per-level kernels must not compile Eigen themselves
// (see cpp/dispatch/kernels.cpp), so they call this.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>

namespace latentmf {

// The least-norm solution of A x = b for a symmetric positive semi-definite A (n x n, row-major,
// in double) that is not numerically positive definite: x = A^+ b, from the eigen-decomposition
// A = Q diag(e) Q^T with the eigenvalues e_i <= tolerance * max(e) taken as 0. With `noise` (n
// values, or null) also a draw from N(A^+ b, A^+): x += sum_i q_i (q_i . z) / sqrt(e_i) over the same
// eigenvalues. Rows whose systems are singular are rare (lambda = 0, no shared matrix and fewer
// entries than unknowns), so this runs in baseline code with Eigen's solver.
inline void least_norm_solution(const double* A, const double* b, const double* noise, std::int64_t n,
                                double tolerance, double* x) {
  using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::VectorXd;
  const Eigen::Map<const Matrix> a(A, n, n);
  const Eigen::SelfAdjointEigenSolver<Matrix> eigen(a);
  const Vector& e = eigen.eigenvalues();
  const Matrix& Q = eigen.eigenvectors();
  const double cutoff = tolerance * std::max(e.maxCoeff(), 0.0);
  Vector coefficients = Q.transpose() * Eigen::Map<const Vector>(b, n);
  const Vector z = noise ? Vector(Q.transpose() * Eigen::Map<const Vector>(noise, n)) : Vector::Zero(n);
  for (std::int64_t i = 0; i < n; ++i)
    coefficients[i] = e[i] > cutoff ? coefficients[i] / e[i] + z[i] / std::sqrt(e[i]) : 0.0;
  Eigen::Map<Vector>(x, n) = Q * coefficients;
}

}  // namespace latentmf
