// The loss of DESIGN.md and its masked batch gradients over sparse ratings:
//   L = 1/2 sum_(n,m) in Omega [ e_nm^2 + lambda (|u_n|^2 + |v_m|^2) ],  e = r_hat - r
//   dL/dU = E V + lambda diag(c) U,   dL/dV = E^T U + lambda diag(d) V
// With biases, r_hat = mu + b_n + c_m + u_n . v_m and lambda also weighs b_n^2 and c_m^2.
#pragma once

#include <cstdint>

#include "../checks.hpp"
#include "../compressed.hpp"
#include "../factors.hpp"
#include "../memory.hpp"
#include "../parallel.hpp"
#include "isa.hpp"
#include "vector.hpp"

namespace latentmf {
namespace LATENTMF_ISA {

// Ratings ahead of the current one whose opposite-side rows are prefetched: the rows are
// gathered at random, and their misses overlap only if they are asked for early.
constexpr std::int64_t prefetch_ratings = 8;

// The item gradients can come from the pass over the user rows: each group of user rows adds its
// ratings' e_nm u_n into a partial E^T U of its own, and the partials are added in group order.
// Every residual is then computed once and no U row is gathered at random. The groups are fixed
// by the data (never by the thread count), so the sums are the same for any number of threads.
constexpr std::int64_t item_partial_groups = 8;
// Partials are used while they cost less than the ratings they replace a pass over (at least
// item_partial_groups ratings per item), within this many bytes.
constexpr double item_partial_budget = 256.0 * 1024 * 1024;

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

// Where the opposite side's gradient sums of one group of rows go (null members are skipped):
// other_grad_m += e_nm own_n and other_grad_bias_m += e_nm for each rating of a visited row.
template <class Scalar>
struct OppositeSums {
  Scalar* grad = nullptr;
  Scalar* grad_bias = nullptr;
};

// c_n (|own_n|^2 + bias_n^2): row n's share of the penalty sum of the Objective.
template <int FixedF, class Scalar>
double row_penalty(const SidePass<Scalar>& p, std::int64_t n) {
  const std::int64_t F = width<FixedF>(p.n_factors);
  const double bias = p.own_bias ? double(p.own_bias[n]) : 0.0;
  return double(p.side->count(n)) * (double(squared_norm<FixedF>(p.own + n * F, F)) + bias * bias);
}

// Row n of one side: grad_n = sum_m e_nm other_m + lambda c_n own_n (c_n = ratings in the row),
// with e_nm = r_hat_nm - r_nm, adding to `opposite` as it goes. Returns the row's share of the
// Objective: its squared errors when count_errors (the user side counts them; the item side would
// count them again), and its penalty.
template <int FixedF, class Scalar>
Objective gradient_row(const SidePass<Scalar>& p, std::int64_t n, const OppositeSums<Scalar>& opposite = {}) {
  const std::int64_t F = width<FixedF>(p.n_factors);
  const std::int64_t* offsets = p.side->offsets.data();
  const std::int32_t* cols = p.side->cols.data();
  const Scalar* values = p.side->values.data();
  const std::int64_t size = p.side->offsets.back();
  const Scalar* x = p.own + n * F;
  const Scalar x_bias = p.own_bias ? p.own_bias[n] : Scalar(0);
  const bool visit_ratings = p.grad != nullptr || p.grad_bias != nullptr || p.count_errors ||
                             opposite.grad != nullptr || opposite.grad_bias != nullptr;
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
    if (opposite.grad_bias) opposite.grad_bias[cols[k]] += e;
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
      if (k + prefetch_ratings < size) {
        const std::int64_t ahead = std::int64_t(cols[k + prefetch_ratings]) * F;
        prefetch_row(p.other + ahead, F);
        if (opposite.grad) prefetch_row(opposite.grad + ahead, F);
      }
      Vector<Scalar> other_row[K];
      for (int i = 0; i < K; ++i) other_row[i] = load(p.other + std::int64_t(cols[k]) * F + i * W);
      const Scalar e = error(k, dot_vectors<K, Scalar>(own_row, other_row));
      for (int i = 0; i < K; ++i) sum[i] += e * other_row[i];
      if (opposite.grad) {
        Scalar* o = opposite.grad + std::int64_t(cols[k]) * F;
        for (int i = 0; i < K; ++i) store(o + i * W, load(o + i * W) + e * own_row[i]);
      }
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
      if (opposite.grad) {
        Scalar* o = opposite.grad + std::int64_t(cols[k]) * F;
        LATENTMF_OMP_SIMD()
        for (std::int64_t f = 0; f < F; ++f) o[f] += e * x[f];
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
  share.penalty = row_penalty<FixedF>(p, n);
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

// Whether the item gradients are worth taking from partials of the user pass (see
// item_partial_groups): enough ratings per item, and partials within their budget.
template <class Scalar>
bool use_item_partials(const SidePass<Scalar>& items) {
  if (!items.grad && !items.grad_bias) return false;
  const std::int64_t n_items = items.side->n_rows;
  const double per_item = double(items.grad ? items.n_factors : 0) + (items.grad_bias ? 1.0 : 0.0);
  return items.side->offsets.back() >= item_partial_groups * n_items &&
         double(item_partial_groups) * double(n_items) * per_item * sizeof(Scalar) <= item_partial_budget;
}

// Both gradients from one pass over the user rows (see item_partial_groups). The user rows run in
// the chunks of side_pass, a group of consecutive chunks per partial, and the Objective adds the
// chunks' shares in the same order as side_pass, so it has the same bits as the two-pass sum.
template <int FixedF, class Scalar>
Objective fused_sides(const SidePass<Scalar>& users, const SidePass<Scalar>& items, int threads) {
  const std::int64_t F = width<FixedF>(users.n_factors), n_items = items.side->n_rows;
  const Chunks chunks = balanced_chunks(users.side->offsets);
  const Chunks groups = even_chunks(chunks.count(), 1, item_partial_groups);
  Buffer<Scalar> partial(items.grad ? groups.count() * n_items * F : 0, "the partial item gradients");
  Buffer<Scalar> partial_bias(items.grad_bias ? groups.count() * n_items : 0, "the partial item bias gradients");
  std::vector<Objective> shares(static_cast<std::size_t>(chunks.count()));
  parallel_for(groups.count(), threads, [&](std::int64_t g) {
    const OppositeSums<Scalar> sums{items.grad ? partial.data() + g * n_items * F : nullptr,
                                    items.grad_bias ? partial_bias.data() + g * n_items : nullptr};
    for (std::int64_t c = groups.begin(g); c < groups.end(g); ++c)
      for (std::int64_t n = chunks.begin(c); n < chunks.end(c); ++n) shares[c] += gradient_row<FixedF>(users, n, sums);
  });
  Objective total;
  for (const Objective& share : shares) total += share;
  total += deterministic_sum<Objective>(balanced_chunks(items.side->offsets), threads, [&](std::int64_t begin, std::int64_t end) {
    Objective part;
    for (std::int64_t m = begin; m < end; ++m) {
      const Scalar weight = items.regularization * Scalar(items.side->count(m));
      if (items.grad) {
        Scalar* g = items.grad + m * F;
        const Scalar* v = items.own + m * F;
        LATENTMF_OMP_SIMD()
        for (std::int64_t f = 0; f < F; ++f) g[f] = partial.data()[m * F + f];
        for (std::int64_t q = 1; q < groups.count(); ++q) {
          const Scalar* from = partial.data() + (q * n_items + m) * F;
          LATENTMF_OMP_SIMD()
          for (std::int64_t f = 0; f < F; ++f) g[f] += from[f];
        }
        LATENTMF_OMP_SIMD()
        for (std::int64_t f = 0; f < F; ++f) g[f] += weight * v[f];
      }
      if (items.grad_bias) {
        Scalar sum = partial_bias.data()[m];
        for (std::int64_t q = 1; q < groups.count(); ++q) sum += partial_bias.data()[q * n_items + m];
        items.grad_bias[m] = sum + weight * items.own_bias[m];
      }
      part.penalty += row_penalty<FixedF>(items, m);
    }
    return part;
  });
  return total;
}

// Both sides: the user rows from the CSR ordering and the item rows from the CSC ordering (or from
// partials of the user pass), so each output row is written by one thread and its sum runs in a
// fixed order. Null outputs are skipped.
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
    if (use_item_partials(items)) return fused_sides<FixedF>(users, items, threads);
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
