// The row solver of DESIGN.md ("The row solver"): for each row n of one side (users or items),
// with the other side's factors Y (n_cols x F) fixed, and the row's entries j (value r_j) in CSR,
//
//   A_n = P + lambda_n I + sum_j w_j y~_j y~_j^T,   b_n = h + sum_j t_j y~_j,   x_n = A_n^{-1} b_n
//
// where y~_j is y_j, or [y_j, 1] with a bias column (x_n's last coordinate is then the row's bias,
// and A, P are (F + 1) x (F + 1)). The entry rules:
//
//   implicit feedback (iALS, Hu, Koren and Volinsky 2008): c_j = 1 + alpha r_j ("linear") or
//     1 + alpha log(1 + r_j / epsilon) ("log"), w_j = c_j - 1, t_j = c_j - w_j o_j;
//     P = Y~^T Y~ and h = -Y~^T o over all rows of Y (the entries every row shares, p = 0, c = 1);
//   explicit ratings (ALS on the loss of DESIGN.md; Gibbs sampling): w_j = s, t_j = s (r_j - o_j)
//     with s the precision (1 for ALS, the noise precision for Gibbs); P and h 0 for ALS, the
//     prior's precision Lambda and Lambda mu_0 for Gibbs;
//
// with o_j = global_mean + (the other side's bias of j) the part of the prediction the row does
// not own (0 without biases). A Gibbs draw adds noise: given z_n ~ N(0, I),
// x_n = A_n^{-1} b_n + R_n^{-1} z_n with A_n = R_n^T R_n (Cholesky), so x_n ~ N(A_n^{-1} b_n, A_n^{-1}).
//
// This header holds what the levels share (compiled for the baseline only): the problem, its
// checks and the per-row regularization. The solver is in kernels/rows.hpp, the least-norm
// solution of a system that is not positive definite in least_norm.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "errors.hpp"
#include "memory.hpp"
#include "parallel.hpp"

namespace latentmf {

enum class EntryRule { implicit_feedback, explicit_ratings };
enum class Confidence { linear, log };
enum class RowMethod { exact, conjugate_gradient };

// How the value r_j of an entry becomes its weight w_j and target t_j (see the top of the file).
template <class Scalar>
struct Entries {
  EntryRule rule = EntryRule::explicit_ratings;
  Confidence confidence = Confidence::linear;
  Scalar alpha = 1;
  Scalar epsilon = 1;
  Scalar precision = 1;

  // w_j: c_j - 1 for implicit feedback, the precision s for explicit ratings.
  Scalar weight(Scalar r) const {
    if (rule == EntryRule::explicit_ratings) return precision;
    return confidence == Confidence::linear ? alpha * r : alpha * Scalar(std::log1p(r / epsilon));
  }
  // t_j given w_j and the offset o_j: c_j - w_j o_j (p = 1 on an observed entry), or w_j (r_j - o_j).
  Scalar target(Scalar r, Scalar w, Scalar offset) const {
    return rule == EntryRule::explicit_ratings ? w * (r - offset) : (Scalar(1) + w) - w * offset;
  }
};

// The entries of the rows of one side, grouped by row (CSR): row n's are cols[offsets[n] ..
// offsets[n + 1]) with their values; cols index the n_cols rows of the other side.
template <class Scalar>
struct RowEntries {
  const std::int64_t* offsets = nullptr;  // n_rows + 1
  const std::int32_t* cols = nullptr;     // size
  const Scalar* values = nullptr;         // size
  std::int64_t n_rows = 0;
  std::int64_t n_cols = 0;
  // What a row and a column are, for messages ("user" and "item", say).
  const char* row_name = "row";
  const char* col_name = "column";

  std::int64_t size() const { return offsets[n_rows]; }
  std::int64_t count(std::int64_t n) const { return offsets[n + 1] - offsets[n]; }
  // The row holding entry k.
  std::int64_t row_of(std::int64_t k) const {
    return std::int64_t(std::upper_bound(offsets, offsets + n_rows + 1, k) - offsets) - 1;
  }
};

// lambda_n: `per_row` (n_rows values) when given, else regularization * weight_n^exponent with
// weight_n the row's total confidence n_cols + sum_j w_j for implicit feedback (the
// frequency-scaled regularization of Rendle et al. 2021) and its number of entries for explicit
// ratings (exponent 1 is the per-rating L2 of DESIGN.md's loss).
template <class Scalar>
struct RowRegularization {
  double regularization = 0;
  double exponent = 0;
  const Scalar* per_row = nullptr;
};

// One call of the row solver. X (n_rows x F) is written, and read first as the starting point of
// conjugate gradient; `bias` (n_rows, or null: no bias column) likewise. Null shared_matrix
// (F' x F', F' = F + 1 with a bias column) and shared_vector (F') stand for the rule's own: the
// sums over all rows of Y for implicit feedback, 0 for explicit ratings. `row_vectors` (n_rows x F',
// or null) adds a vector of each row's own to h (a Gibbs prior whose mean differs by row). `noise`
// (n_rows x F', or null) asks for a Gibbs draw; only the exact method draws.
template <class Scalar>
struct RowSolve {
  RowEntries<Scalar> rows;
  Entries<Scalar> entries;
  const Scalar* Y = nullptr;
  std::int64_t n_factors = 0;
  const Scalar* other_bias = nullptr;  // n_cols, or null (0)
  Scalar global_mean = 0;
  const Scalar* shared_matrix = nullptr;
  const Scalar* shared_vector = nullptr;
  const Scalar* row_vectors = nullptr;
  RowRegularization<Scalar> regularization;
  Scalar* X = nullptr;
  Scalar* bias = nullptr;
  const Scalar* noise = nullptr;
  RowMethod method = RowMethod::exact;
  int cg_steps = 3;
  // The caller's names of X, Y, bias and other_bias, for messages.
  const char* x_name = "X";
  const char* y_name = "Y";
  const char* bias_name = "bias";
  const char* other_bias_name = "other_bias";

  // F': the order of the systems.
  std::int64_t order() const { return n_factors + (bias ? 1 : 0); }
  // o_j for entry column j.
  Scalar offset(std::int32_t j) const { return global_mean + (other_bias ? other_bias[j] : Scalar(0)); }
  bool has_offsets() const { return other_bias != nullptr || global_mean != 0; }
};

// The number of the calling thread inside a parallel_for (0 outside one, or without OpenMP), to
// pick its scratch: scratch is allocated before the loop, so that nothing in it can throw.
inline int thread_number() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// The first i in [0, n) with bad(i), or n: checked in fixed chunks on `threads` threads (the
// smallest failing index, whatever the thread count). bad must not throw.
template <class Bad>
std::int64_t first_failing(std::int64_t n, int threads, Bad&& bad) {
  const Chunks chunks = even_chunks(n, 1 << 16, 256);
  std::vector<std::int64_t> first(static_cast<std::size_t>(chunks.count()), n);
  parallel_for(chunks.count(), threads, [&](std::int64_t c) {
    for (std::int64_t i = chunks.begin(c); i < chunks.end(c); ++i)
      if (bad(i)) {
        first[c] = i;
        return;
      }
  });
  for (std::int64_t i : first)
    if (i < n) return i;
  return n;
}

template <class Scalar>
void check_entry_rule(const Entries<Scalar>& e) {
  require(std::isfinite(e.alpha) && e.alpha >= 0, "alpha must be a finite number >= 0, got ", e.alpha);
  require(std::isfinite(e.epsilon) && e.epsilon > 0, "epsilon must be a finite number > 0, got ", e.epsilon);
  require(std::isfinite(e.precision) && e.precision > 0, "precision must be a finite number > 0, got ",
          e.precision);
}

// The CSR structure (offsets from 0 to size, non-decreasing; cols in [0, n_cols)) and the values:
// finite, and for implicit feedback >= 0 with a finite confidence.
template <class Scalar>
void check_row_entries(const RowEntries<Scalar>& r, const Entries<Scalar>& e, int threads) {
  require(r.n_rows >= 0 && r.n_cols >= 0, "n_rows and n_cols must be >= 0, got ", r.n_rows, " and ", r.n_cols);
  require(r.offsets[0] == 0, "offsets[0] must be 0, got ", r.offsets[0]);
  const std::int64_t row = first_failing(r.n_rows, threads, [&](std::int64_t n) { return r.offsets[n + 1] < r.offsets[n]; });
  require(row == r.n_rows, "offsets must not decrease, got offsets[", row + 1, "] = ", r.offsets[row + 1],
          " < offsets[", row, "] = ", r.offsets[row]);
  const std::int64_t size = r.size();
  const std::int64_t col = first_failing(size, threads, [&](std::int64_t k) { return r.cols[k] < 0 || r.cols[k] >= r.n_cols; });
  if (col < size)
    fail(r.col_name, " ", r.cols[col], " of ", r.row_name, " ", r.row_of(col), " is outside [0, ", r.n_cols, ")");
  const bool implicit = e.rule == EntryRule::implicit_feedback;
  const std::int64_t value = first_failing(size, threads, [&](std::int64_t k) {
    const Scalar v = r.values[k];
    return !std::isfinite(v) || (implicit && !(v >= 0 && std::isfinite(e.weight(v))));
  });
  if (value < size) {
    const Scalar v = r.values[value];
    const std::int64_t row = r.row_of(value);
    require(std::isfinite(v), "values must be finite numbers, got ", v, " for ", r.row_name, " ", row, " and ",
            r.col_name, " ", r.cols[value]);
    require(v >= 0, "values must be >= 0 for implicit feedback (the strength of an interaction), got ", v, " for ",
            r.row_name, " ", row, " and ", r.col_name, " ", r.cols[value]);
    fail("values: ", v, " (", r.row_name, " ", row, ", ", r.col_name, " ", r.cols[value],
         ") gives an infinite confidence with alpha = ", e.alpha, " and epsilon = ", e.epsilon);
  }
}

// Every element of the n values at `data` is finite.
template <class Scalar>
void check_finite(const Scalar* data, std::int64_t n, const char* name, int threads) {
  const std::int64_t i = first_failing(n, threads, [&](std::int64_t k) { return !std::isfinite(data[k]); });
  require(i == n, name, " must hold finite numbers, got ", i < n ? data[i] : Scalar(0), " at flat index ", i);
}

template <class Scalar>
void check_symmetric(const Scalar* S, std::int64_t n, const char* name) {
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = i + 1; j < n; ++j)
      require(S[i * n + j] == S[j * n + i], name, " must be symmetric, got ", name, "[", i, ", ", j, "] = ",
              S[i * n + j], " and ", name, "[", j, ", ", i, "] = ", S[j * n + i]);
}

// Everything the solver reads, before it writes anything.
template <class Scalar>
void check_row_solve(const RowSolve<Scalar>& s, int threads) {
  require(s.n_factors >= 1, "the factors must have at least one column, got ", s.n_factors);
  check_entry_rule(s.entries);
  check_row_entries(s.rows, s.entries, threads);
  const std::int64_t order = s.order();
  check_finite(s.Y, s.rows.n_cols * s.n_factors, s.y_name, threads);
  if (s.other_bias) check_finite(s.other_bias, s.rows.n_cols, s.other_bias_name, threads);
  require(std::isfinite(s.global_mean), "global_mean must be finite, got ", s.global_mean);
  if (s.shared_matrix) {
    check_finite(s.shared_matrix, order * order, "shared_matrix", threads);
    check_symmetric(s.shared_matrix, order, "shared_matrix");
  }
  if (s.shared_vector) check_finite(s.shared_vector, order, "shared_vector", threads);
  if (s.row_vectors) check_finite(s.row_vectors, s.rows.n_rows * order, "row_vectors", threads);
  if (s.method == RowMethod::conjugate_gradient) {
    require(s.cg_steps >= 1, "cg_steps must be >= 1, got ", s.cg_steps);
    require(!s.noise, "a Gibbs draw (noise) needs the exact method, not conjugate gradient");
    // X and the bias are where conjugate gradient starts.
    check_finite(s.X, s.rows.n_rows * s.n_factors, s.x_name, threads);
    if (s.bias) check_finite(s.bias, s.rows.n_rows, s.bias_name, threads);
  }
  if (s.noise) check_finite(s.noise, s.rows.n_rows * order, "noise", threads);
  const auto& g = s.regularization;
  if (g.per_row) {
    const std::int64_t n = first_failing(s.rows.n_rows, threads, [&](std::int64_t k) {
      return !(std::isfinite(g.per_row[k]) && g.per_row[k] >= 0);
    });
    require(n == s.rows.n_rows, "regularization[", n, "] = ", n < s.rows.n_rows ? g.per_row[n] : Scalar(0),
            " must be a finite number >= 0");
  } else {
    require(std::isfinite(g.regularization) && g.regularization >= 0,
            "regularization must be a finite number >= 0, got ", g.regularization);
    require(std::isfinite(g.exponent), "regularization_exponent must be finite, got ", g.exponent);
  }
}

// The weight lambda_n is scaled by (see RowRegularization), in double.
template <class Scalar>
double row_weight(const RowEntries<Scalar>& r, const Entries<Scalar>& e, std::int64_t n) {
  if (e.rule == EntryRule::explicit_ratings) return double(r.count(n));
  double total = double(r.n_cols);
  for (std::int64_t k = r.offsets[n]; k < r.offsets[n + 1]; ++k) total += double(e.weight(r.values[k]));
  return total;
}

// lambda_n for every row (see RowRegularization), each a finite number in Scalar; the entries
// must be checked.
template <class Scalar>
std::vector<Scalar> row_regularization(const RowEntries<Scalar>& r, const Entries<Scalar>& e,
                                       const RowRegularization<Scalar>& g, int threads) {
  std::vector<Scalar> lambda = allocate<Scalar>(r.n_rows, "the per-row regularization");
  if (g.per_row) {
    std::copy(g.per_row, g.per_row + r.n_rows, lambda.begin());
    return lambda;
  }
  const Chunks chunks = even_chunks(r.n_rows);
  parallel_for(chunks.count(), threads, [&](std::int64_t c) {
    for (std::int64_t n = chunks.begin(c); n < chunks.end(c); ++n)
      lambda[n] = Scalar(g.regularization * std::pow(row_weight(r, e, n), g.exponent));
  });
  const std::int64_t bad = first_failing(r.n_rows, threads, [&](std::int64_t n) { return !std::isfinite(lambda[n]); });
  require(bad == r.n_rows, "regularization * weight^regularization_exponent is not finite in row ", bad,
          " (weight ", bad < r.n_rows ? row_weight(r, e, bad) : 0.0, ", regularization ", g.regularization,
          ", regularization_exponent ", g.exponent, ")");
  return lambda;
}

// The parts of the iALS objective (see implicit_objective in kernels/rows.hpp): L is their sum.
struct ImplicitObjective {
  double all_entries = 0;
  double observed = 0;
  double penalty = 0;
};

}  // namespace latentmf
