// Stochastic gradient descent on the loss of DESIGN.md, one observed pair at a time:
//   e = r - r_hat,  u_n <- u_n + eta (e v_m - lambda u_n),  v_m <- v_m + eta (e u_n - lambda v_m)
// (both from the values before the step); with biases also
//   b_n <- b_n + eta (e - lambda b_n),  c_m <- c_m + eta (e - lambda c_m).
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "blocks.hpp"
#include "checks.hpp"
#include "factors.hpp"
#include "memory.hpp"
#include "parallel.hpp"
#include "ratings.hpp"

namespace latentmf {

template <class Scalar>
struct SgdStep {
  Scalar learning_rate;
  Scalar regularization;
};

template <class Scalar>
void check_step(const SgdStep<Scalar>& step) {
  check_learning_rate(step.learning_rate);
  check_regularization(step.regularization);
}

// One update on rating r of user row u and item row v; returns e^2 (before the step).
template <class Scalar, bool WithBiases>
inline Scalar sgd_update(Scalar* u, Scalar* v, std::int64_t F, Scalar rating, Scalar* user_bias,
                         Scalar* item_bias, Scalar global_mean, const SgdStep<Scalar>& step) {
  Scalar prediction = dot(u, v, F);
  if constexpr (WithBiases) prediction += global_mean + *user_bias + *item_bias;
  const Scalar e = rating - prediction;
  const Scalar eta = step.learning_rate, lambda = step.regularization;
#pragma omp simd
  for (std::int64_t f = 0; f < F; ++f) {
    const Scalar uf = u[f], vf = v[f];
    u[f] = uf + eta * (e * vf - lambda * uf);
    v[f] = vf + eta * (e * uf - lambda * vf);
  }
  if constexpr (WithBiases) {
    const Scalar b = *user_bias, c = *item_bias;
    *user_bias = b + eta * (e - lambda * b);
    *item_bias = c + eta * (e - lambda * c);
  }
  return e * e;
}

// The ratings order[0], order[1], ... one after the other, on the calling thread.
// `order` must be a permutation of [0, r.size). Returns the sum of e^2 seen along the way.
template <class Scalar, class Index>
double sgd_ordered(const Coo<Index, Scalar>& r, const std::int64_t* order, const Factors<Scalar>& f,
                   const Biases<Scalar>& b, const SgdStep<Scalar>& step) {
  check_ratings(r, 1);
  check_factors(f, r.n_users, r.n_items);
  check_step(step);
  auto seen = allocate<std::uint8_t>(r.size, "the order check");
  for (std::int64_t i = 0; i < r.size; ++i) {
    require(order[i] >= 0 && order[i] < r.size, "order[", i, "] = ", order[i], " is outside [0, ",
            r.size, ")");
    require(!seen[order[i]], "order[", i, "] = ", order[i],
            " repeats an earlier entry: order must be a permutation of the ratings");
    seen[order[i]] = 1;
  }
  double squared_errors = 0;
  for (std::int64_t i = 0; i < r.size; ++i) {
    const std::int64_t k = order[i];
    const std::int64_t n = r.users[k], m = r.items[k];
    squared_errors += b.enabled()
        ? sgd_update<Scalar, true>(f.user_row(n), f.item_row(m), f.n_factors, r.values[k],
                                   b.user + n, b.item + m, b.global_mean, step)
        : sgd_update<Scalar, false>(f.user_row(n), f.item_row(m), f.n_factors, r.values[k],
                                    nullptr, nullptr, b.global_mean, step);
  }
  return squared_errors;
}

// All ratings of block (p, q), row by row. Touches only the rows of U and V in groups p and q.
template <class Scalar, bool WithBiases>
double sgd_block(const BlockGrid<Scalar>& grid, std::int64_t block, const Factors<Scalar>& f,
                 const Biases<Scalar>& b, const SgdStep<Scalar>& step) {
  const auto& rows = grid.block_rows();
  const auto& row_begin = grid.row_begin();
  const std::int32_t* items = grid.items().data();
  const Scalar* values = grid.values().data();
  double squared_errors = 0;
  for (std::int64_t row = rows[block]; row < rows[block + 1]; ++row) {
    const std::int64_t n = grid.row_user()[row];
    Scalar* u = f.user_row(n);
    Scalar* user_bias = WithBiases ? b.user + n : nullptr;
    for (std::int64_t k = row_begin[row]; k < row_begin[row + 1]; ++k) {
      const std::int64_t m = items[k];
      squared_errors += sgd_update<Scalar, WithBiases>(u, f.item_row(m), f.n_factors, values[k],
                                                       user_bias, WithBiases ? b.item + m : nullptr,
                                                       b.global_mean, step);
    }
  }
  return squared_errors;
}

template <class Scalar>
void check_grid_step(const BlockGrid<Scalar>& grid, const Factors<Scalar>& f,
                     const SgdStep<Scalar>& step, std::int64_t epoch, int sub_epoch) {
  check_factors(f, grid.n_users(), grid.n_items());
  check_step(step);
  require(epoch >= 0, "epoch must be >= 0, got ", epoch);
  require(sub_epoch >= 0 && sub_epoch < grid.blocks(), "sub_epoch must be in [0, blocks=", grid.blocks(),
          "), got ", sub_epoch);
}

// Sub-epoch s of the given epoch: its B blocks run in parallel, largest first so that the
// threads finish together. Each block is one thread's sequential work on rows no other block
// of the sub-epoch touches, so the result is the same for any thread count.
// Returns the sum of e^2 seen, added in block order.
template <class Scalar>
double sgd_sub_epoch(const BlockGrid<Scalar>& grid, const Factors<Scalar>& f, const Biases<Scalar>& b,
                     const SgdStep<Scalar>& step, std::int64_t epoch, int sub_epoch, int threads) {
  check_grid_step(grid, f, step, epoch, sub_epoch);
  const int B = grid.blocks();
  const int shift = sub_epoch_shifts(B, grid.seed(), epoch)[sub_epoch];
  auto item_group_of = [&](int p) { return (p + shift) % B; };
  std::vector<int> by_size(static_cast<std::size_t>(B));
  std::iota(by_size.begin(), by_size.end(), 0);
  std::stable_sort(by_size.begin(), by_size.end(), [&](int x, int y) {
    return grid.block_size(x, item_group_of(x)) > grid.block_size(y, item_group_of(y));
  });
  std::vector<double> squared_errors(static_cast<std::size_t>(B), 0.0);
  parallel_for(B, threads, [&](std::int64_t j) {
    const int p = by_size[j];
    const std::int64_t block = grid.block_id(p, item_group_of(p));
    squared_errors[p] = b.enabled() ? sgd_block<Scalar, true>(grid, block, f, b, step)
                                    : sgd_block<Scalar, false>(grid, block, f, b, step);
  }, 1);
  return std::accumulate(squared_errors.begin(), squared_errors.end(), 0.0);
}

// sum_n count_n (|x_n|^2 + bias_n^2) over the rows of X: one side's share of the penalty.
template <class Scalar>
double penalty(const Scalar* X, const Scalar* bias, const std::vector<std::int64_t>& counts,
               std::int64_t n_factors, int threads) {
  return deterministic_sum(std::int64_t(counts.size()), threads, [&](std::int64_t begin, std::int64_t end) {
    double sum = 0;
    for (std::int64_t n = begin; n < end; ++n) {
      const double b = bias ? double(bias[n]) : 0.0;
      sum += double(counts[n]) * (double(squared_norm(X + n * n_factors, n_factors)) + b * b);
    }
    return sum;
  });
}

// The Objective of the ratings held by the grid (the same value objective() gives for them),
// block by block so that the sum runs in a fixed order.
template <class Scalar>
Objective grid_objective(const BlockGrid<Scalar>& grid, const Factors<Scalar>& f, const Biases<Scalar>& b,
                         int threads) {
  check_factors(f, grid.n_users(), grid.n_items());
  const std::int64_t n_blocks = std::int64_t(grid.blocks()) * grid.blocks();
  std::vector<double> block_errors(static_cast<std::size_t>(n_blocks), 0.0);
  const auto& rows = grid.block_rows();
  const auto& row_begin = grid.row_begin();
  parallel_for(n_blocks, threads, [&](std::int64_t block) {
    double sum = 0;
    for (std::int64_t row = rows[block]; row < rows[block + 1]; ++row) {
      const std::int64_t n = grid.row_user()[row];
      for (std::int64_t k = row_begin[row]; k < row_begin[row + 1]; ++k) {
        const std::int64_t m = grid.items()[k];
        const Scalar e = b.offset(n, m) + dot(f.user_row(n), f.item_row(m), f.n_factors) - grid.values()[k];
        sum += double(e) * double(e);
      }
    }
    block_errors[block] = sum;
  }, 1);
  Objective total;
  total.squared_errors = std::accumulate(block_errors.begin(), block_errors.end(), 0.0);
  total.penalty = penalty(f.U, b.user, grid.user_counts(), f.n_factors, threads) +
                  penalty(f.V, b.item, grid.item_counts(), f.n_factors, threads);
  return total;
}

// The input positions of the ratings in the order one epoch of the grid visits them: sub-epoch by
// sub-epoch, block p = 0, 1, ... within each. Running them one at a time in this order gives the
// same result as the parallel epoch.
template <class Index, class Value>
std::vector<std::int64_t> grid_visiting_order(const Coo<Index, Value>& r, int blocks, std::uint64_t seed,
                                              std::int64_t epoch, int threads) {
  check_grid_arguments(r.size, blocks);
  check_ratings(r, threads);
  check_index_range(r.n_users, r.n_items);
  const auto shifts = sub_epoch_shifts(blocks, seed, epoch);
  const BlockOrder block_order(r, blocks, seed, threads);
  auto visiting = allocate<std::int64_t>(r.size, "the visiting order");
  std::int64_t next = 0;
  for (int shift : shifts)
    for (int p = 0; p < blocks; ++p) {
      const auto b = block_order.block_id(p, (p + shift) % blocks);
      for (auto i = block_order.block_begin[b]; i < block_order.block_begin[b + 1]; ++i)
        visiting[next++] = block_order.order[i];
    }
  return visiting;
}

}  // namespace latentmf
