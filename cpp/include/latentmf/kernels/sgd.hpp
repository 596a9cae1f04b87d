// Stochastic gradient descent on the loss of DESIGN.md, one observed pair at a time:
//   e = r - r_hat,  u_n <- u_n + eta (e v_m - lambda u_n),  v_m <- v_m + eta (e u_n - lambda v_m)
// (both from the values before the step); with biases also
//   b_n <- b_n + eta (e - lambda b_n),  c_m <- c_m + eta (e - lambda c_m).
// In a warm-up epoch only the leading factors (the first lead_factors) move.
//
// With AdaGrad (after LIBMF's schedule) each row has its own steps: the leading factors and the
// rest form two groups, each with an accumulator G per row (starting at 1). A group's factors of
// user n move by eta / sqrt(G_n) (G before this update), then G_n grows by the mean square of the
// group's gradient, |e v_m - lambda u_n|^2 / (factors in the group); likewise for item m. The
// biases move with the leading group's steps. Keeping the groups apart, and a first epoch on the
// leading group only, lets the large early gradients that fit the mean rating inflate only the
// leading group's G: on 9M synthetic ratings this reached test RMSE 0.71 in 13 epochs where one
// accumulator per row had not reached it in 20.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "../blocks.hpp"
#include "../checks.hpp"
#include "../factors.hpp"
#include "../parallel.hpp"
#include "../ratings.hpp"
#include "isa.hpp"
#include "vector.hpp"

namespace latentmf {
namespace LATENTMF_ISA {

// What one update touches on one side (the user or the item): the factor row, and where enabled
// the bias and the row's two AdaGrad accumulators.
template <class Scalar>
struct Endpoint {
  Scalar* row;
  Scalar* bias;
  Scalar* accumulator;
};

#ifdef LATENTMF_HAVE_VECTORS
// Factors [lo, hi) (multiples of the vector width) of one update: u <- u + eta_u (e v - lambda u),
// v <- v + eta_v (e u - lambda v), both from the old values; with Norms the squares of the two
// gradients are added, lane by lane, into sum_u and sum_v.
template <bool Norms, class Scalar>
inline void step_vectors(Scalar* LATENTMF_RESTRICT u, Scalar* LATENTMF_RESTRICT v, std::int64_t lo, std::int64_t hi,
                         Scalar e, Scalar eta_u, Scalar eta_v, Scalar lambda, Vector<Scalar>& sum_u,
                         Vector<Scalar>& sum_v) {
  constexpr int W = vector_width<Scalar>;
  for (std::int64_t i = lo; i < hi; i += W) {
    const Vector<Scalar> x = load(u + i), y = load(v + i);
    const Vector<Scalar> g_u = e * y - lambda * x, g_v = e * x - lambda * y;
    if constexpr (Norms) {
      sum_u += g_u * g_u;
      sum_v += g_v * g_v;
    }
    store(u + i, x + eta_u * g_u);
    store(v + i, y + eta_v * g_v);
  }
}
#endif

// The same for any width, one factor at a time; with Norms the two gradients' squared norms.
template <bool Norms, class Scalar>
inline void step_factors(Scalar* LATENTMF_RESTRICT u, Scalar* LATENTMF_RESTRICT v, std::int64_t lo, std::int64_t hi,
                         Scalar e, Scalar eta_u, Scalar eta_v, Scalar lambda, Scalar& norm_u, Scalar& norm_v) {
  Scalar sum_u = 0, sum_v = 0;
  LATENTMF_OMP_SIMD(reduction(+ : sum_u, sum_v))
  for (std::int64_t f = lo; f < hi; ++f) {
    const Scalar x = u[f], y = v[f];
    const Scalar g_u = e * y - lambda * x, g_v = e * x - lambda * y;
    if constexpr (Norms) {
      sum_u += g_u * g_u;
      sum_v += g_v * g_v;
    }
    u[f] = x + eta_u * g_u;
    v[f] = y + eta_v * g_v;
  }
  norm_u = sum_u;
  norm_v = sum_v;
}

// AdaGrad's factor steps for one update: the leading group [0, lead) and, unless warming up, the
// rest [lead, F), with steps = {user lead, item lead, user rest, item rest}; then each group's
// accumulators grow by its mean square gradient.
template <int FixedF, class Scalar>
inline void adagrad_step(Scalar* u, Scalar* v, std::int64_t lead, std::int64_t F, Scalar e, const Scalar (&steps)[4],
                         Scalar lambda, bool warm_up, Scalar* user_g, Scalar* item_g) {
  const bool rest = !warm_up && lead < F;
  Scalar norms[4] = {};
#ifdef LATENTMF_HAVE_VECTORS
  if constexpr (vectorised<FixedF, Scalar>) {
    Vector<Scalar> sums[4] = {};
    step_vectors<true>(u, v, 0, lead, e, steps[0], steps[1], lambda, sums[0], sums[1]);
    if (rest) step_vectors<true>(u, v, lead, F, e, steps[2], steps[3], lambda, sums[2], sums[3]);
    horizontal_sums(sums, norms);
  } else
#endif
  {
    step_factors<true>(u, v, 0, lead, e, steps[0], steps[1], lambda, norms[0], norms[1]);
    if (rest) step_factors<true>(u, v, lead, F, e, steps[2], steps[3], lambda, norms[2], norms[3]);
  }
  user_g[0] += norms[0] / Scalar(lead);
  item_g[0] += norms[1] / Scalar(lead);
  if (rest) {
    user_g[1] += norms[2] / Scalar(F - lead);
    item_g[1] += norms[3] / Scalar(F - lead);
  }
}

// One update on one rating (see the top of this file); returns e^2 (before the step).
template <int FixedF, bool WithBiases, bool Adaptive, class Scalar>
inline Scalar sgd_update(const Endpoint<Scalar>& user, const Endpoint<Scalar>& item, std::int64_t n_factors,
                         Scalar rating, Scalar global_mean, const SgdStep<Scalar>& step) {
  Scalar* LATENTMF_RESTRICT u = user.row;
  Scalar* LATENTMF_RESTRICT v = item.row;
  const std::int64_t F = width<FixedF>(n_factors), lead = std::min(F, lead_factors);
  Scalar prediction = dot<FixedF>(u, v, F);
  if constexpr (WithBiases) prediction += global_mean + *user.bias + *item.bias;
  const Scalar e = rating - prediction;
  Scalar eta_u = step.learning_rate, eta_v = step.learning_rate;
  if constexpr (Adaptive) {
    // The four steps (user and item, both groups) from the accumulators before this update.
    const Scalar g[4] = {user.accumulator[0], item.accumulator[0], user.accumulator[1], item.accumulator[1]};
    Scalar steps[4];
    rsqrt_steps(step.learning_rate, g, steps);
    eta_u = steps[0];
    eta_v = steps[1];
    adagrad_step<FixedF>(u, v, lead, F, e, steps, step.regularization, step.warm_up, user.accumulator,
                         item.accumulator);
  } else {
    const std::int64_t end = step.warm_up ? lead : F;
#ifdef LATENTMF_HAVE_VECTORS
    if constexpr (vectorised<FixedF, Scalar>) {
      Vector<Scalar> unused_u, unused_v;
      step_vectors<false>(u, v, 0, end, e, eta_u, eta_v, step.regularization, unused_u, unused_v);
    } else
#endif
    {
      Scalar unused_u, unused_v;
      step_factors<false>(u, v, 0, end, e, eta_u, eta_v, step.regularization, unused_u, unused_v);
    }
  }
  if constexpr (WithBiases) {
    const Scalar lambda = step.regularization, b = *user.bias, c = *item.bias;
    *user.bias = b + eta_u * (e - lambda * b);
    *item.bias = c + eta_v * (e - lambda * c);
  }
  return e * e;
}

// The endpoint of row n of factors X (n_factors wide), its bias and accumulator where enabled.
template <bool WithBiases, bool Adaptive, class Scalar>
inline Endpoint<Scalar> endpoint(Scalar* X, std::int64_t n_factors, Scalar* biases, Scalar* accumulators,
                                 std::int64_t n) {
  return {X + n * n_factors, WithBiases ? biases + n : nullptr, Adaptive ? accumulators + 2 * n : nullptr};
}

// Rows ahead of the one being opened whose U rows are prefetched: far enough for a miss to
// arrive before the row is opened, near enough for the row to still be in cache then.
constexpr std::int64_t prefetch_rows = 8;

// All ratings of one block, in the lane order of visit_in_lane_order (blocks.hpp). The lanes are
// interleaved so that the processor overlaps their independent updates. Touches only the rows of
// U and V of the block's user and item groups. Returns the sum of e^2, added lane by lane.
template <int FixedF, bool WithBiases, bool Adaptive, class Scalar>
double sgd_block(const BlockGrid<Scalar>& grid, std::int64_t block, const Factors<Scalar>& f,
                 const Biases<Scalar>& b, const Accumulators<Scalar>& a, const SgdStep<Scalar>& step) {
  constexpr int L = sgd_lanes;
  const std::int64_t F = width<FixedF>(f.n_factors);
  const std::int64_t* row_begin = grid.row_begin().data();
  const std::int32_t* row_user = grid.row_user().data();
  const std::int32_t* items = grid.items().data();
  const Scalar* values = grid.values().data();
  std::int64_t unopened = grid.block_rows()[block];
  const std::int64_t last_row = grid.block_rows()[block + 1];

  Endpoint<Scalar> user[L] = {};
  std::int64_t next[L] = {}, end[L] = {};
  bool open[L] = {};
  double squared_errors[L] = {};

  auto open_row = [&](int lane) {
    open[lane] = unopened < last_row;
    if (!open[lane]) return;
    user[lane] = endpoint<WithBiases, Adaptive>(f.U, F, b.user, a.user, row_user[unopened]);
    next[lane] = row_begin[unopened];
    end[lane] = row_begin[unopened + 1];
    ++unopened;
    if (unopened + prefetch_rows < last_row) prefetch_row(f.U + row_user[unopened + prefetch_rows] * F, F);
  };
  auto update = [&](int lane, std::int64_t k) {
    const auto item = endpoint<WithBiases, Adaptive>(f.V, F, b.item, a.item, items[k]);
    squared_errors[lane] += sgd_update<FixedF, WithBiases, Adaptive>(user[lane], item, F, values[k], b.global_mean, step);
  };

  for (int lane = 0; lane < L; ++lane) open_row(lane);
  for (;;) {
    if (std::all_of(open, open + L, [](bool o) { return o; })) {
      // Every lane has a row: run as many whole rounds as the shortest row allows, unchecked.
      std::int64_t rounds = end[0] - next[0];
      for (int lane = 1; lane < L; ++lane) rounds = std::min(rounds, end[lane] - next[lane]);
      for (std::int64_t t = 0; t < rounds; ++t)
        for (int lane = 0; lane < L; ++lane) update(lane, next[lane] + t);
      for (int lane = 0; lane < L; ++lane) {
        next[lane] += rounds;
        if (next[lane] == end[lane]) open_row(lane);
      }
      continue;
    }
    // The block's last rows: lanes run dry one by one.
    bool any_open = false;
    for (int lane = 0; lane < L; ++lane) {
      if (!open[lane]) continue;
      any_open = true;
      update(lane, next[lane]++);
      if (next[lane] == end[lane]) open_row(lane);
    }
    if (!any_open) break;
  }
  return std::accumulate(squared_errors, squared_errors + L, 0.0);
}

// Calls visit(F, with biases, adaptive) with the three as compile-time constants.
template <class Scalar, class Visit>
decltype(auto) with_variant(std::int64_t n_factors, const Biases<Scalar>& b, const Accumulators<Scalar>& a,
                            Visit&& visit) {
  return with_width(n_factors, [&](auto fixed) {
    auto with_flags = [&](auto with_biases) {
      return a.enabled() ? visit(fixed, with_biases, std::true_type{}) : visit(fixed, with_biases, std::false_type{});
    };
    return b.enabled() ? with_flags(std::true_type{}) : with_flags(std::false_type{});
  });
}

// Ratings below which another thread costs more than it saves in one SGD sub-epoch.
constexpr std::int64_t min_ratings_per_thread = 20000;

// Sub-epoch s of the given epoch: its B blocks run in parallel, largest first so that the
// threads finish together. Each block is one thread's sequential work on rows no other block
// of the sub-epoch touches, so the result is the same for any thread count.
// Returns the sum of e^2 seen, added in block order.
template <class Scalar>
double sgd_sub_epoch(const BlockGrid<Scalar>& grid, const Factors<Scalar>& f, const Biases<Scalar>& b,
                     const Accumulators<Scalar>& a, const SgdStep<Scalar>& step, std::int64_t epoch, int sub_epoch,
                     int threads) {
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
  // A sub-epoch of a small data set is over in microseconds, less than waking threads and meeting
  // at the barrier costs: give each thread some work (the result is the same for any count).
  std::int64_t ratings = 0;
  for (int p = 0; p < B; ++p) ratings += grid.block_size(p, item_group_of(p));
  threads = int(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, ratings / min_ratings_per_thread)));
  with_variant(f.n_factors, b, a, [&](auto fixed, auto with_biases, auto adaptive) {
    constexpr int FixedF = decltype(fixed)::value;
    constexpr bool WithBiases = decltype(with_biases)::value, Adaptive = decltype(adaptive)::value;
    parallel_for(B, threads, [&](std::int64_t j) {
      const int p = by_size[j];
      const std::int64_t block = grid.block_id(p, item_group_of(p));
      squared_errors[p] = sgd_block<FixedF, WithBiases, Adaptive>(grid, block, f, b, a, step);
    });
  });
  return std::accumulate(squared_errors.begin(), squared_errors.end(), 0.0);
}

// The ratings order[0], order[1], ... one after the other, on the calling thread.
// `order` must be a permutation of [0, r.size). Returns the sum of e^2 seen along the way.
template <class Scalar, class Index>
double sgd_ordered(const Coo<Index, Scalar>& r, const std::int64_t* order, const Factors<Scalar>& f,
                   const Biases<Scalar>& b, const Accumulators<Scalar>& a, const SgdStep<Scalar>& step) {
  check_ratings(r, 1);
  check_factors(f, r.n_users, r.n_items);
  check_step(step);
  check_permutation(order, r.size);
  return with_variant(f.n_factors, b, a, [&](auto fixed, auto with_biases, auto adaptive) {
    constexpr int FixedF = decltype(fixed)::value;
    constexpr bool WithBiases = decltype(with_biases)::value, Adaptive = decltype(adaptive)::value;
    const std::int64_t F = width<FixedF>(f.n_factors);
    double squared_errors = 0;
    for (std::int64_t i = 0; i < r.size; ++i) {
      const std::int64_t k = order[i];
      squared_errors += sgd_update<FixedF, WithBiases, Adaptive>(
          endpoint<WithBiases, Adaptive>(f.U, F, b.user, a.user, r.users[k]),
          endpoint<WithBiases, Adaptive>(f.V, F, b.item, a.item, r.items[k]), F, r.values[k], b.global_mean, step);
    }
    return squared_errors;
  });
}

// sum_n count_n (|x_n|^2 + bias_n^2) over the rows of X: one side's share of the penalty.
template <int FixedF, class Scalar>
double penalty(const Scalar* X, const Scalar* bias, const std::vector<std::int64_t>& counts, std::int64_t n_factors,
               int threads) {
  return deterministic_sum(even_chunks(std::int64_t(counts.size())), threads, [&](std::int64_t begin, std::int64_t end) {
    const std::int64_t F = width<FixedF>(n_factors);
    double sum = 0;
    for (std::int64_t n = begin; n < end; ++n) {
      const double c = bias ? double(bias[n]) : 0.0;
      sum += double(counts[n]) * (double(squared_norm<FixedF>(X + n * F, F)) + c * c);
    }
    return sum;
  });
}

// The squared errors of one block's ratings.
template <int FixedF, class Scalar>
double block_squared_errors(const BlockGrid<Scalar>& grid, std::int64_t block, const Factors<Scalar>& f,
                            const Biases<Scalar>& b) {
  const std::int64_t F = width<FixedF>(f.n_factors);
  const std::int64_t* row_begin = grid.row_begin().data();
  const std::int32_t* row_user = grid.row_user().data();
  const std::int32_t* items = grid.items().data();
  const Scalar* values = grid.values().data();
  double sum = 0;
  const std::int64_t last = grid.block_rows()[block + 1];
  for (std::int64_t row = grid.block_rows()[block]; row < last; ++row) {
    const std::int64_t n = row_user[row];
    // The block's users are spread over all of U: their rows are asked for ahead (as SGD does).
    if (row + prefetch_rows < last) prefetch_row(f.U + std::int64_t(row_user[row + prefetch_rows]) * F, F);
    for (std::int64_t k = row_begin[row]; k < row_begin[row + 1]; ++k) {
      const std::int64_t m = items[k];
      const Scalar e = b.offset(n, m) + dot<FixedF>(f.U + n * F, f.V + m * F, F) - values[k];
      sum += double(e) * double(e);
    }
  }
  return sum;
}

// The Objective of the ratings held by the grid (the same value objective() gives for them),
// block by block so that the sum runs in a fixed order.
template <class Scalar>
Objective grid_objective(const BlockGrid<Scalar>& grid, const Factors<Scalar>& f, const Biases<Scalar>& b,
                         int threads) {
  check_factors(f, grid.n_users(), grid.n_items());
  return with_width(f.n_factors, [&](auto fixed) {
    constexpr int FixedF = decltype(fixed)::value;
    const std::int64_t n_blocks = std::int64_t(grid.blocks()) * grid.blocks();
    std::vector<double> block_errors(static_cast<std::size_t>(n_blocks), 0.0);
    parallel_for(n_blocks, threads,
                 [&](std::int64_t block) { block_errors[block] = block_squared_errors<FixedF>(grid, block, f, b); });
    Objective total;
    total.squared_errors = std::accumulate(block_errors.begin(), block_errors.end(), 0.0);
    total.penalty = penalty<FixedF>(f.U, b.user, grid.user_counts(), f.n_factors, threads) +
                    penalty<FixedF>(f.V, b.item, grid.item_counts(), f.n_factors, threads);
    return total;
  });
}

}  // namespace LATENTMF_ISA
}  // namespace latentmf
