// Sums over all entries of a factorization through Gramians: G = Y^T Y (with extra columns), which
// the implicit rule of the row solver shares between all rows, and the iALS objective over all
// n_users x n_items entries, computed from the two Gramians and the observed entries only.
#pragma once

#include <cstdint>
#include <vector>

#include "../factors.hpp"
#include "../memory.hpp"
#include "../parallel.hpp"
#include "../rows.hpp"
#include "isa.hpp"
#include "spd.hpp"
#include "vector.hpp"

namespace latentmf {
namespace LATENTMF_ISA {

// G = Z^T Z (M x M, M = F + E, row-major, in double) for Z = [Y C] with Y n x F and C n x E
// (row-major; E may be 0 and C null). Fixed chunks of rows, each summed by one thread in double
// through the product tiles, are added in chunk order: the same bits for any thread count.
template <class Scalar>
void gramian(const Scalar* Y, const Scalar* C, std::int64_t n, std::int64_t F, std::int64_t E, double* out,
             int threads) {
  const std::int64_t M = F + E, D = padded_order<double>(M);
  constexpr std::int64_t step = 32;
  const Chunks chunks = even_chunks(n, 1024, 64);
  std::vector<double> partial = allocate<double>(std::max<std::int64_t>(chunks.count(), 1) * D * D, "the partial Gramians");
  std::vector<std::vector<double>> rows(static_cast<std::size_t>(threads), std::vector<double>(step * D));
  parallel_for(chunks.count(), threads, [&](std::int64_t c) {
    double* buffer = rows[thread_number()].data();
    double* G = partial.data() + c * D * D;
    for (std::int64_t begin = chunks.begin(c); begin < chunks.end(c); begin += step) {
      const std::int64_t count = std::min(step, chunks.end(c) - begin);
      for (std::int64_t i = 0; i < count; ++i) {
        for (std::int64_t f = 0; f < F; ++f) buffer[i * D + f] = double(Y[(begin + i) * F + f]);
        for (std::int64_t e = 0; e < E; ++e) buffer[i * D + F + e] = double(C[(begin + i) * E + e]);
      }
      add_products<0>(G, D, buffer, buffer, count, D);
    }
  });
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t j = i; j < M; ++j) {
      double sum = 0;
      for (std::int64_t c = 0; c < chunks.count(); ++c) sum += partial[c * D * D + i * D + j];
      out[i * M + j] = out[j * M + i] = sum;
    }
}

// sum_n lambda_n (|x_n|^2 + bias_n^2) in fixed chunks added in order.
template <class Scalar>
double weighted_squared_norms(const Scalar* X, const Scalar* bias, const Scalar* lambda, std::int64_t n_rows,
                              std::int64_t F, int threads) {
  return with_width(F, [&](auto fixed) {
    constexpr int FixedF = decltype(fixed)::value;
    return deterministic_sum(even_chunks(n_rows), threads, [&](std::int64_t begin, std::int64_t end) {
      double sum = 0;
      for (std::int64_t n = begin; n < end; ++n) {
        const double b = bias ? double(bias[n]) : 0.0;
        sum += double(lambda[n]) * (double(squared_norm<FixedF>(X + n * F, F)) + b * b);
      }
      return sum;
    });
  });
}

// <U~^T U~, V~^T V~> from the two Gramians.
template <class Scalar>
double all_entries_term(const Factors<Scalar>& f, const Biases<Scalar>& b, int threads) {
  const std::int64_t F = f.n_factors, E = b.enabled() ? 2 : 0, M = F + E;
  std::vector<Scalar> user_columns = allocate<Scalar>(f.n_users * E, "the bias columns"),
                      item_columns = allocate<Scalar>(f.n_items * E, "the bias columns");
  if (b.enabled()) {
    for (std::int64_t n = 0; n < f.n_users; ++n) user_columns[2 * n] = b.user[n], user_columns[2 * n + 1] = 1;
    for (std::int64_t m = 0; m < f.n_items; ++m) item_columns[2 * m] = 1, item_columns[2 * m + 1] = b.item[m] + b.global_mean;
  }
  std::vector<double> G_user(M * M), G_item(M * M);
  gramian(f.U, E ? user_columns.data() : nullptr, f.n_users, F, E, G_user.data(), threads);
  gramian(f.V, E ? item_columns.data() : nullptr, f.n_items, F, E, G_item.data(), threads);
  double sum = 0;
  for (std::int64_t k = 0; k < M * M; ++k) sum += G_user[k] * G_item[k];
  return sum;
}

// The iALS objective (Hu, Koren and Volinsky 2008) over all n_users x n_items entries, in three parts:
// L = sum_(n,m) c_nm (p_nm - r_hat_nm)^2 + sum_n lambda_n |u~_n|^2 + sum_m lambda_m |v~_m|^2
// (p = 1 and c = 1 + w on an observed entry, p = 0 and c = 1 elsewhere), taken without visiting the
// unobserved entries: all_entries = sum over all (n, m) of r_hat^2 = <U~^T U~, V~^T V~>, observed =
// sum over the observed of c (1 - r_hat)^2 - r_hat^2, penalty = the two regularization sums.
// With biases r_hat = mu + b_n + c_m + u_n . v_m, which is u~_n . v~_m for u~ = [u, b, 1] and
// v~ = [v, 1, c + mu]; the penalty charges b_n^2 and c_m^2 with the factors.
// Takes the ratings by user and by item (the same ratings in both orderings), the rule's
// confidence, and the regularization of each side.
template <class Scalar>
ImplicitObjective implicit_objective(const RowEntries<Scalar>& by_user, const RowEntries<Scalar>& by_item,
                                     const Entries<Scalar>& e, const Factors<Scalar>& f, const Biases<Scalar>& b,
                                     const RowRegularization<Scalar>& user_regularization,
                                     const RowRegularization<Scalar>& item_regularization, int threads) {
  require(e.rule == EntryRule::implicit_feedback, "the iALS objective needs the implicit feedback rule");
  check_entry_rule(e);
  check_row_entries(by_user, e, threads);
  check_row_entries(by_item, e, threads);
  require(by_user.n_rows == f.n_users && by_user.n_cols == f.n_items && by_item.n_rows == f.n_items &&
              by_item.n_cols == f.n_users && by_item.size() == by_user.size(),
          "U and V have ", f.n_users, " and ", f.n_items, " rows but the ratings have n_users=", by_user.n_rows,
          ", n_items=", by_user.n_cols);
  const std::vector<Scalar> user_lambda = row_regularization(by_user, e, user_regularization, threads);
  const std::vector<Scalar> item_lambda = row_regularization(by_item, e, item_regularization, threads);
  ImplicitObjective out;
  out.all_entries = all_entries_term(f, b, threads);
  out.penalty = weighted_squared_norms(f.U, b.user, user_lambda.data(), f.n_users, f.n_factors, threads) +
                weighted_squared_norms(f.V, b.item, item_lambda.data(), f.n_items, f.n_factors, threads);
  const std::vector<std::int64_t> offsets(by_user.offsets, by_user.offsets + by_user.n_rows + 1);
  out.observed = with_width(f.n_factors, [&](auto fixed) {
    constexpr int FixedF = decltype(fixed)::value;
    const std::int64_t F = f.n_factors;
    return deterministic_sum(balanced_chunks(offsets), threads, [&](std::int64_t begin, std::int64_t end) {
      double sum = 0;
      for (std::int64_t n = begin; n < end; ++n)
        for (std::int64_t k = by_user.offsets[n]; k < by_user.offsets[n + 1]; ++k) {
          const std::int64_t m = by_user.cols[k];
          const double r_hat = double(b.offset(n, m)) + double(dot<FixedF>(f.U + n * F, f.V + m * F, F));
          const double c = 1.0 + double(e.weight(by_user.values[k]));
          sum += c * (1.0 - r_hat) * (1.0 - r_hat) - r_hat * r_hat;
        }
      return sum;
    });
  });
  return out;
}

}  // namespace LATENTMF_ISA
}  // namespace latentmf
