// The row solver (see ../rows.hpp for the problem): one system per row, solved exactly (Cholesky,
// spd.hpp) or by a few steps of conjugate gradient, rows in parallel. The sums over all rows it
// shares (the Gramian) are in gramian.hpp.
//
// Rows are independent: each is computed by one thread from inputs no other row writes, in an
// order fixed by the row's data, so the results are the same bits for any thread count and any
// schedule.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../factors.hpp"
#include "../least_norm.hpp"
#include "../memory.hpp"
#include "../parallel.hpp"
#include "../rows.hpp"
#include "gramian.hpp"
#include "isa.hpp"
#include "spd.hpp"
#include "vector.hpp"

namespace latentmf {
namespace LATENTMF_ISA {

// Entries ahead of the current one whose rows of Y are prefetched while gathering (rows of Y are
// read at random).
constexpr std::int64_t prefetch_entries = 16;
// Bytes of gathered rows that one step of the exact path accumulates (w_j y_j and y_j): the
// product tiles pass over them once per tile, so they should stay in L1.
constexpr std::int64_t exact_chunk_bytes = 32 * 1024;
// Bytes of gathered rows that conjugate gradient keeps for one row: its steps then read them
// contiguously from L2 instead of gathering them from Y again. Longer rows form A instead (see
// conjugate_gradient()).
constexpr std::int64_t cg_chunk_bytes = 256 * 1024;

// P and h as the solver reads them: P's F x F block padded to D x D (rows of stride D), its bias
// column's first F entries (border) and corner P[F][F]; h's first F entries padded to D and h[F].
template <class Scalar>
struct SharedTerms {
  bool has_matrix = false;
  std::vector<Scalar> matrix, border, vector;
  Scalar corner = 0, vector_bias = 0;
};

// One thread's scratch, allocated before the parallel loop so that nothing inside it allocates.
template <class Scalar>
struct RowScratch {
  std::vector<Scalar> system, diagonal, inverse_diagonal, x, y, b, a, p, q, r, product;
  std::vector<Scalar> gathered, weights, targets, left, right;
  std::int64_t least_norm_rows = 0;
  bool fallback_failed = false;

  RowScratch(std::int64_t D, std::int64_t stride, std::int64_t cg_capacity, std::int64_t exact_capacity)
      : system(D * stride), diagonal(D), inverse_diagonal(D), x(D), y(D), b(D), a(D), p(D), q(D), r(D), product(D),
        gathered(cg_capacity * D), weights(cg_capacity), targets(cg_capacity), left(exact_capacity * D),
        right(exact_capacity * D) {}
};

// Entries whose gathered rows fit in the bytes above, at least one tile's worth.
template <class Scalar>
std::int64_t cg_entries(std::int64_t D) {
  return std::max<std::int64_t>(tile_rows, cg_chunk_bytes / (D * std::int64_t(sizeof(Scalar))));
}
template <class Scalar>
std::int64_t exact_entries(std::int64_t D) {
  return std::max<std::int64_t>(tile_rows, exact_chunk_bytes / (2 * D * std::int64_t(sizeof(Scalar))));
}

// Solves the rows of one call; D is the padded order of the F x F block (FixedD when a compile-time
// constant), and a bias column adds a border (see exact()).
template <int FixedD, class Scalar>
class RowSolver {
 public:
  RowSolver(const RowSolve<Scalar>& s, const SharedTerms<Scalar>& shared, const Scalar* lambda, RowScratch<Scalar>& w)
      : s_(s), shared_(shared), lambda_(lambda), w_(w), F_(s.n_factors), D_(order<FixedD>(padded_order<Scalar>(F_))),
        S_(system_stride<FixedD, Scalar>(D_)), bias_(s.bias != nullptr),
        exact_capacity_(exact_entries<Scalar>(D_)), cg_capacity_(cg_entries<Scalar>(D_)) {}

  void solve(std::int64_t n) {
    const bool exact_method = s_.method == RowMethod::exact || s_.rows.count(n) == 0 || structurally_singular(n);
    if (exact_method) {
      if (!exact(n)) least_norm(n);
    } else {
      conjugate_gradient(n);
    }
  }

 private:
  // With no shared matrix, no regularization and fewer entries than unknowns, A_n has rank below
  // its order: conjugate gradient would keep the starting point's part in A's null space, so such
  // rows take the exact path, which gives them the least-norm solution.
  bool structurally_singular(std::int64_t n) const {
    return !shared_.has_matrix && lambda_[n] == 0 && s_.rows.count(n) < s_.order();
  }

  // y_j's F values into dst: whole packs when F is a compile-time multiple of them (a call to
  // memcpy per entry showed in profiles), else memcpy.
  void copy_row(Scalar* LATENTMF_RESTRICT dst, std::int32_t j) const {
    const Scalar* src = s_.Y + std::int64_t(j) * F_;
    if constexpr (FixedD > 0) {
      for (std::int64_t c = 0; c < FixedD; c += pack_width<Scalar>) store_pack(dst + c, load_pack(src + c));
    } else {
      std::memcpy(dst, src, sizeof(Scalar) * F_);
    }
  }

  // visit(k - begin, j, w_j, t_j) for the entries k in [begin, end), prefetching the rows of Y
  // prefetch_entries ahead. The prefetch is written out in this loop: in a function of its own,
  // whose only effect is the prefetch, GCC takes it as pure and removes its calls.
  template <class Visit>
  void for_entries(std::int64_t begin, std::int64_t end, Visit&& visit) {
    const auto& r = s_.rows;
    const std::int64_t limit = r.size(), row_bytes = F_ * std::int64_t(sizeof(Scalar));
    for (std::int64_t k = begin; k < end; ++k) {
      if (k + prefetch_entries < limit) {
        const char* ahead = reinterpret_cast<const char*>(s_.Y + std::int64_t(r.cols[k + prefetch_entries]) * F_);
        for (std::int64_t offset = 0; offset < row_bytes; offset += 64) LATENTMF_PREFETCH(ahead + offset);
      }
      const std::int32_t j = r.cols[k];
      const Scalar weight = s_.entries.weight(r.values[k]);
      visit(k - begin, j, weight, s_.entries.target(r.values[k], weight, s_.offset(j)));
    }
  }

  // For conjugate gradient: y_j, w_j and t_j of the entries [begin, end) into rows 0 .. end - begin
  // of `gathered` (rows of D, zero beyond F: the padding is never written).
  void gather(std::int64_t begin, std::int64_t end) {
    for_entries(begin, end, [&](std::int64_t k, std::int32_t j, Scalar weight, Scalar target) {
      copy_row(w_.gathered.data() + k * D_, j);
      w_.weights[k] = weight;
      w_.targets[k] = target;
    });
  }

  // For the exact path: the rows that product tiles turn into sum_j w_j y_j y_j^T, for the entries
  // [begin, end): left_j = y_j and right_j = w_j y_j (rows of D); b += sum_j t_j y_j and the border
  // a += sum_j w_j y_j, alpha_ += sum_j w_j and beta_ += sum_j t_j. b and a are summed in registers
  // over the chunk when D is a compile-time constant (through memory every entry would wait on the
  // one before).
  void gather_products(std::int64_t begin, std::int64_t end, Scalar* LATENTMF_RESTRICT b, Scalar* LATENTMF_RESTRICT a) {
    constexpr int W = pack_width<Scalar>;
    constexpr bool in_registers = FixedD > 0 && FixedD / W <= 8;
    constexpr int K = in_registers ? FixedD / W : 1;
    Pack<Scalar> b_sum[K], a_sum[K];
    for (int c = 0; c < K; ++c) b_sum[c] = a_sum[c] = Pack<Scalar>{};
    for_entries(begin, end, [&](std::int64_t k, std::int32_t j, Scalar weight, Scalar target) {
      Scalar* left = w_.left.data() + k * D_;
      Scalar* right = w_.right.data() + k * D_;
      copy_row(left, j);
      if constexpr (in_registers) {
        for (int c = 0; c < K; ++c) {
          const Pack<Scalar> y = load_pack(left + c * W), wy = weight * y;
          store_pack(right + c * W, wy);
          b_sum[c] += target * y;
          a_sum[c] += wy;
        }
      } else {
        for (std::int64_t c = 0; c < D_; c += W) {
          const Pack<Scalar> y = load_pack(left + c), wy = weight * y;
          store_pack(right + c, wy);
          store_pack(b + c, load_pack(b + c) + target * y);
          store_pack(a + c, load_pack(a + c) + wy);
        }
      }
      alpha_ += weight;
      beta_ += target;
    });
    if constexpr (in_registers)
      for (int c = 0; c < K; ++c) {
        store_pack(b + c * W, load_pack(b + c * W) + b_sum[c]);
        store_pack(a + c * W, load_pack(a + c * W) + a_sum[c]);
      }
  }

  // Row n's own share of h (row_vectors), added to h's first F entries and to its bias entry.
  void add_row_vector(std::int64_t n, Scalar* h, Scalar& h_bias) const {
    if (!s_.row_vectors) return;
    const Scalar* own = s_.row_vectors + n * s_.order();
    for (std::int64_t i = 0; i < F_; ++i) h[i] += own[i];
    if (bias_) h_bias += own[F_];
  }

  // The system of row n in the scratch: A's F x F block (padded with the identity) in `system`
  // with b in column D and, with a bias column, A's border a = A[0:F][F] in column D + 1;
  // alpha_ = A[F][F] and beta_ = b[F]; `diagonal` holds A's diagonal.
  void form(std::int64_t n) {
    constexpr int W = pack_width<Scalar>;
    Scalar* A = w_.system.data();
    for (std::int64_t i = 0; i < D_; ++i) {
      Scalar* row = A + i * S_;
      // The tiles add to the packs from the one holding their first row's diagonal.
      const std::int64_t first = pack_of<Scalar>(i - i % tile_rows) * W;
      if (shared_.has_matrix)
        std::copy(shared_.matrix.data() + i * D_ + first, shared_.matrix.data() + (i + 1) * D_, row + first);
      else
        std::fill(row + first, row + D_, Scalar(0));
      std::fill(row + D_, row + S_, Scalar(0));
    }
    for (std::int64_t i = F_; i < D_; ++i) A[i * S_ + i] = 1;
    Scalar* b = w_.b.data();
    Scalar* a = w_.a.data();
    std::copy(shared_.vector.begin(), shared_.vector.end(), b);
    std::copy(shared_.border.begin(), shared_.border.end(), a);
    alpha_ = shared_.corner;
    beta_ = shared_.vector_bias;
    add_row_vector(n, b, beta_);
    const auto& r = s_.rows;
    for (std::int64_t begin = r.offsets[n]; begin < r.offsets[n + 1]; begin += exact_capacity_) {
      const std::int64_t end = std::min(begin + exact_capacity_, r.offsets[n + 1]);
      gather_products(begin, end, b, a);
      add_products<FixedD>(A, S_, w_.left.data(), w_.right.data(), end - begin, D_);
    }
    const Scalar lambda = lambda_[n];
    for (std::int64_t i = 0; i < F_; ++i) A[i * S_ + i] += lambda;
    alpha_ += lambda;
    for (std::int64_t i = 0; i < D_; ++i) {
      A[i * S_ + D_] = b[i];
      A[i * S_ + D_ + 1] = bias_ ? a[i] : Scalar(0);
      w_.diagonal[i] = A[i * S_ + i];
    }
  }

  // x_n = A^{-1} b (+ R^{-1} z for a draw), by Cholesky. With a bias column A is bordered,
  // A~ = [[A, a], [a^T, alpha]], b~ = [b, beta], and its factor is R~ = [[R, r], [0, rho]] with
  // r = R^{-T} a and rho^2 = alpha - r . r: the bias is eliminated last, so R~ is the Cholesky factor
  // of A~ in the order of its unknowns. Returns false when A~ is not numerically positive definite.
  bool exact(std::int64_t n) {
    form(n);
    Scalar* A = w_.system.data();
    if (!cholesky<FixedD>(A, w_.diagonal.data(), w_.inverse_diagonal.data(), D_)) return false;
    Scalar* y = w_.y.data();
    Scalar* r = w_.r.data();
    for (std::int64_t i = 0; i < D_; ++i) {
      y[i] = A[i * S_ + D_];
      r[i] = A[i * S_ + D_ + 1];
    }
    Scalar rho = 1, y_bias = 0;
    if (bias_) {
      const Scalar rho2 = alpha_ - padded_dot<FixedD>(r, r, D_);
      if (!(rho2 > pivot_tolerance<Scalar>(D_ + 1) * alpha_)) return false;
      rho = std::sqrt(rho2);
      y_bias = (beta_ - padded_dot<FixedD>(r, y, D_)) / rho;
    }
    if (s_.noise) {
      const Scalar* z = s_.noise + n * s_.order();
      for (std::int64_t i = 0; i < F_; ++i) y[i] += z[i];
      if (bias_) y_bias += z[F_];
    }
    Scalar x_bias = 0;
    if (bias_) {
      x_bias = y_bias / rho;
      padded_axpy<FixedD>(-x_bias, r, y, D_);
    }
    Scalar* x = w_.x.data();
    std::fill(x, x + D_, Scalar(0));
    solve_upper<FixedD>(A, w_.inverse_diagonal.data(), y, x, D_);
    write(n, x, x_bias);
    return true;
  }

  // The least-norm solution (or draw) of a system that is not positive definite, from the system
  // formed again in double (see least_norm_solution).
  void least_norm(std::int64_t n) {
    form(n);
    const std::int64_t m = s_.order();
    const Scalar* A = w_.system.data();
    try {
      std::vector<double> matrix(m * m), rhs(m), noise(s_.noise ? m : 0), x(m);
      for (std::int64_t i = 0; i < F_; ++i) {
        for (std::int64_t j = i; j < F_; ++j) matrix[i * m + j] = matrix[j * m + i] = A[i * S_ + j];
        rhs[i] = A[i * S_ + D_];
        if (bias_) matrix[i * m + F_] = matrix[F_ * m + i] = A[i * S_ + D_ + 1];
      }
      if (bias_) {
        matrix[F_ * m + F_] = alpha_;
        rhs[F_] = beta_;
      }
      if (s_.noise) std::copy(s_.noise + n * m, s_.noise + (n + 1) * m, noise.begin());
      least_norm_solution(matrix.data(), rhs.data(), s_.noise ? noise.data() : nullptr, m,
                          double(pivot_tolerance<Scalar>(m)), x.data());
      Scalar* out = w_.x.data();
      for (std::int64_t i = 0; i < F_; ++i) out[i] = Scalar(x[i]);
      write(n, out, bias_ ? Scalar(x[F_]) : Scalar(0));
      ++w_.least_norm_rows;
    } catch (...) {
      w_.fallback_failed = true;
    }
  }

  void write(std::int64_t n, const Scalar* x, Scalar x_bias) {
    std::copy(x, x + F_, s_.X + n * F_);
    if (bias_) s_.bias[n] = x_bias;
  }

  // One pass over the entries of row n for conjugate gradient: with d_j = y~_j . [v, v_bias],
  // out += sum_j c_j y_j and out_bias += sum_j c_j for c_j = coefficient(w_j, t_j, d_j). The first
  // pass gathers the row, later ones reuse it (conjugate_gradient() takes this path only for rows
  // that fit in the scratch).
  template <class Coefficient>
  void entry_pass(std::int64_t n, bool first, const Scalar* v, Scalar v_bias, Scalar* out, Scalar& out_bias,
                  Coefficient&& coefficient) {
    const auto& r = s_.rows;
    if (first) gather(r.offsets[n], r.offsets[n + 1]);
    const std::int64_t count = r.count(n);
#ifdef LATENTMF_HAVE_VECTORS
    constexpr int W = pack_width<Scalar>;
    if constexpr (FixedD > 0 && FixedD / W <= 8) {
      // The sums stay in registers, in two sets that take the entries in turn (each entry's
      // multiply-adds then wait on the one before last, not on the last); eight dot products share
      // one reduction.
      constexpr int K = FixedD / W, batch = 8;
      Pack<Scalar> vv[K], sum[2][K];
      for (int c = 0; c < K; ++c) {
        vv[c] = load_pack(v + c * W);
        sum[0][c] = sum[1][c] = Pack<Scalar>{};
      }
      Scalar sum_bias = 0;
      auto add = [&](int set, const Scalar* y, Scalar c_j) {
        for (int c = 0; c < K; ++c) sum[set][c] += c_j * load_pack(y + c * W);
        sum_bias += c_j;
      };
      std::int64_t k = 0;
      for (; k + batch <= count; k += batch) {
        Pack<Scalar> products[batch];
        for (int i = 0; i < batch; ++i) {
          const Scalar* y = w_.gathered.data() + (k + i) * D_;
          products[i] = load_pack(y) * vv[0];
          for (int c = 1; c < K; ++c) products[i] += load_pack(y + c * W) * vv[c];
        }
        Scalar dots[batch];
        horizontal_sums<batch, Scalar>(products, dots);
        for (int i = 0; i < batch; ++i)
          add(i & 1, w_.gathered.data() + (k + i) * D_,
              coefficient(w_.weights[k + i], w_.targets[k + i], dots[i] + v_bias));
      }
      for (; k < count; ++k) {
        const Scalar d = padded_dot<FixedD>(w_.gathered.data() + k * D_, v, D_) + v_bias;
        add(int(k & 1), w_.gathered.data() + k * D_, coefficient(w_.weights[k], w_.targets[k], d));
      }
      for (int c = 0; c < K; ++c) store_pack(out + c * W, load_pack(out + c * W) + sum[0][c] + sum[1][c]);
      if (bias_) out_bias += sum_bias;
      return;
    }
#endif
    for (std::int64_t k = 0; k < count; ++k) {
      const Scalar d = padded_dot<FixedD>(w_.gathered.data() + k * D_, v, D_) + v_bias;
      const Scalar c_j = coefficient(w_.weights[k], w_.targets[k], d);
      padded_axpy<FixedD>(c_j, w_.gathered.data() + k * D_, out, D_);
      if (bias_) out_bias += c_j;
    }
  }

  // out (+)= (P + lambda I) v in the bordered form: [P v + border v_bias + lambda v,
  // border . v + corner v_bias + lambda v_bias]; `add` adds to out, else subtracts.
  void add_shared_product(std::int64_t n, const Scalar* v, Scalar v_bias, Scalar* out, Scalar& out_bias, bool add) {
    Scalar* tmp = w_.product.data();
    Scalar tmp_bias = lambda_[n] * v_bias;
    if (shared_.has_matrix) {
      symmetric_product<FixedD>(shared_.matrix.data(), D_, v, tmp, D_);
      if (bias_) {
        padded_axpy<FixedD>(v_bias, shared_.border.data(), tmp, D_);
        tmp_bias += padded_dot<FixedD>(shared_.border.data(), v, D_) + shared_.corner * v_bias;
      }
    } else {
      std::fill(tmp, tmp + D_, Scalar(0));
    }
    padded_axpy<FixedD>(lambda_[n], v, tmp, D_);
    padded_axpy<FixedD>(add ? Scalar(1) : Scalar(-1), tmp, out, D_);
    out_bias += add ? tmp_bias : -tmp_bias;
  }

  // cg_steps steps of conjugate gradient on A x = b from the current x_n. A row whose entries fit
  // in the scratch is gathered once and A applied as P p + lambda p + sum_j w_j (y~_j . p) y~_j,
  // never formed. A longer row would be gathered from Y again at every step (cg_steps + 1 passes of
  // random reads); forming A once costs less, and the steps then apply it as a dense matrix: the
  // same iterates, rounded differently.
  void conjugate_gradient(std::int64_t n) {
    Scalar* x = w_.x.data();
    std::fill(x, x + D_, Scalar(0));
    std::copy(s_.X + n * F_, s_.X + (n + 1) * F_, x);
    Scalar x_bias = bias_ ? s_.bias[n] : Scalar(0);
    Scalar* r = w_.r.data();
    Scalar r_bias = 0;
    if (s_.rows.count(n) <= cg_capacity_) {
      // r = b - A x
      std::copy(shared_.vector.begin(), shared_.vector.end(), r);
      r_bias = shared_.vector_bias;
      add_row_vector(n, r, r_bias);
      entry_pass(n, true, x, x_bias, r, r_bias, [](Scalar w, Scalar t, Scalar d) { return t - w * d; });
      add_shared_product(n, x, x_bias, r, r_bias, false);
      iterate(x, x_bias, r, r_bias, [&](const Scalar* p, Scalar p_bias, Scalar* q, Scalar& q_bias) {
        std::fill(q, q + D_, Scalar(0));
        q_bias = 0;
        entry_pass(n, false, p, p_bias, q, q_bias, [](Scalar w, Scalar, Scalar d) { return w * d; });
        add_shared_product(n, p, p_bias, q, q_bias, true);
      });
    } else {
      form(n);
      Scalar* A = w_.system.data();
      const Scalar* a = w_.a.data();
      const Scalar* b = w_.b.data();
      for (std::int64_t i = 0; i < D_; ++i)
        for (std::int64_t j = 0; j < i; ++j) A[i * S_ + j] = A[j * S_ + i];
      // q~ = A~ p~ = [A p + a p_bias, a . p + alpha p_bias]
      auto apply = [&](const Scalar* p, Scalar p_bias, Scalar* q, Scalar& q_bias) {
        symmetric_product<FixedD>(A, S_, p, q, D_);
        q_bias = 0;
        if (bias_) {
          padded_axpy<FixedD>(p_bias, a, q, D_);
          q_bias = padded_dot<FixedD>(a, p, D_) + alpha_ * p_bias;
        }
      };
      apply(x, x_bias, r, r_bias);
      for (std::int64_t i = 0; i < D_; ++i) r[i] = b[i] - r[i];
      r_bias = bias_ ? beta_ - r_bias : Scalar(0);
      iterate(x, x_bias, r, r_bias, apply);
    }
    write(n, x, x_bias);
  }

  // The steps of conjugate gradient from x with its residual r = b - A x, where apply(p, p_bias, q,
  // q_bias) sets q~ = A~ p~. Stops early, keeping the iterate, when the residual is 0 or p^T A p is
  // not positive (A singular along p): no step divides by 0.
  template <class Apply>
  void iterate(Scalar* x, Scalar& x_bias, Scalar* r, Scalar& r_bias, Apply&& apply) {
    Scalar* p = w_.p.data();
    Scalar* q = w_.q.data();
    std::copy(r, r + D_, p);
    Scalar p_bias = r_bias;
    Scalar rr = padded_dot<FixedD>(r, r, D_) + r_bias * r_bias;
    for (int step = 0; step < s_.cg_steps && rr > 0; ++step) {
      Scalar q_bias = 0;
      apply(p, p_bias, q, q_bias);
      const Scalar pq = padded_dot<FixedD>(p, q, D_) + p_bias * q_bias;
      if (!(pq > 0)) break;
      const Scalar step_size = rr / pq;
      padded_axpy<FixedD>(step_size, p, x, D_);
      x_bias += step_size * p_bias;
      padded_axpy<FixedD>(-step_size, q, r, D_);
      r_bias -= step_size * q_bias;
      const Scalar rr_next = padded_dot<FixedD>(r, r, D_) + r_bias * r_bias;
      const Scalar ratio = rr_next / rr;
      for (std::int64_t c = 0; c < D_; ++c) p[c] = r[c] + ratio * p[c];
      p_bias = r_bias + ratio * p_bias;
      rr = rr_next;
    }
  }

  const RowSolve<Scalar>& s_;
  const SharedTerms<Scalar>& shared_;
  const Scalar* lambda_;
  RowScratch<Scalar>& w_;
  const std::int64_t F_, D_, S_;
  const bool bias_;
  const std::int64_t exact_capacity_, cg_capacity_;
  Scalar alpha_ = 0, beta_ = 0;
};

// P and h for the solver: as given, or the rule's own when null (see RowSolve). For implicit
// feedback the own terms are the sums over all rows of Y, P = Y~^T Y~ and h = -Y~^T o, read off
// the Gramian of [Y, 1 (with a bias column), o (with offsets)].
template <class Scalar>
SharedTerms<Scalar> shared_terms(const RowSolve<Scalar>& s, int threads) {
  const std::int64_t F = s.n_factors, D = padded_order<Scalar>(F), m = s.order();
  const bool bias = s.bias != nullptr;
  SharedTerms<Scalar> out;
  out.matrix.assign(D * D, Scalar(0));
  out.border.assign(D, Scalar(0));
  out.vector.assign(D, Scalar(0));
  auto take_matrix = [&](auto&& P, std::int64_t stride) {
    out.has_matrix = true;
    for (std::int64_t i = 0; i < F; ++i) {
      for (std::int64_t j = 0; j < F; ++j) out.matrix[i * D + j] = Scalar(P(i * stride + j));
      if (bias) out.border[i] = Scalar(P(i * stride + F));
    }
    if (bias) out.corner = Scalar(P(F * stride + F));
  };
  const bool implicit = s.entries.rule == EntryRule::implicit_feedback;
  const bool own_vector = implicit && !s.shared_vector && s.has_offsets();
  if (implicit && (!s.shared_matrix || own_vector)) {
    const std::int64_t E = (bias ? 1 : 0) + (own_vector ? 1 : 0), M = F + E, n = s.rows.n_cols;
    std::vector<Scalar> columns = allocate<Scalar>(n * E, "the bias and offset columns");
    for (std::int64_t j = 0; j < n; ++j) {
      if (bias) columns[j * E] = 1;
      if (own_vector) columns[j * E + E - 1] = s.offset(std::int32_t(j));
    }
    std::vector<double> G = allocate<double>(M * M, "the Gramian");
    gramian(s.Y, E ? columns.data() : nullptr, n, F, E, G.data(), threads);
    if (!s.shared_matrix) take_matrix([&](std::int64_t k) { return G[k]; }, M);
    if (own_vector) {
      for (std::int64_t i = 0; i < F; ++i) out.vector[i] = Scalar(-G[i * M + M - 1]);
      if (bias) out.vector_bias = Scalar(-G[F * M + M - 1]);
    }
  }
  if (s.shared_matrix) take_matrix([&](std::int64_t k) { return s.shared_matrix[k]; }, m);
  if (s.shared_vector) {
    for (std::int64_t i = 0; i < F; ++i) out.vector[i] = s.shared_vector[i];
    if (bias) out.vector_bias = s.shared_vector[F];
  }
  return out;
}

// Chunks of rows of about equal work for the solver: a row costs its entries plus `overhead`
// entries' worth (its factorization, or its products with P). Any split gives the same results.
template <class Scalar>
Chunks solver_chunks(const RowEntries<Scalar>& r, std::int64_t overhead, std::int64_t max_chunks = 1024) {
  const double total = double(r.size()) + double(overhead + 1) * double(r.n_rows);
  const double per_chunk = std::max(total / double(max_chunks), 1.0);
  Chunks chunks;
  chunks.bounds.push_back(0);
  double work = 0;
  for (std::int64_t n = 0; n < r.n_rows; ++n) {
    work += double(r.count(n) + overhead + 1);
    if (work >= per_chunk && n + 1 < r.n_rows) {
      chunks.bounds.push_back(n + 1);
      work = 0;
    }
  }
  chunks.bounds.push_back(r.n_rows);
  return chunks;
}

// Solves every row of `s` (see ../rows.hpp), after checking all of it. Returns the number of rows
// whose system was not positive definite (solved for the least-norm solution instead).
template <class Scalar>
std::int64_t solve_rows(const RowSolve<Scalar>& s, int threads) {
  check_row_solve(s, threads);
  const std::vector<Scalar> lambda = row_regularization(s.rows, s.entries, s.regularization, threads);
  const SharedTerms<Scalar> shared = shared_terms(s, threads);
  const std::int64_t F = s.n_factors, D = padded_order<Scalar>(F);
  const std::int64_t stride = system_stride<0, Scalar>(D), cg = cg_entries<Scalar>(D), exact = exact_entries<Scalar>(D);
  check_available(double(threads) * double(D * stride + cg * D + 2 * exact * D) * sizeof(Scalar),
                  "the row solver's scratch");
  std::vector<RowScratch<Scalar>> scratch;
  for (int t = 0; t < threads; ++t) scratch.emplace_back(D, stride, cg, exact);
  const Chunks chunks = solver_chunks(s.rows, s.method == RowMethod::exact ? D / 3 : s.cg_steps * D / 8);
  with_width(F, [&](auto fixed) {
    constexpr int FixedF = decltype(fixed)::value;
    constexpr int FixedD = FixedF > 0 && padded_order<Scalar>(FixedF) == FixedF ? FixedF : 0;
    parallel_for(chunks.count(), threads, [&](std::int64_t c) {
      RowSolver<FixedD, Scalar> solver(s, shared, lambda.data(), scratch[thread_number()]);
      for (std::int64_t n = chunks.begin(c); n < chunks.end(c); ++n) solver.solve(n);
    });
  });
  std::int64_t least_norm_rows = 0;
  for (const auto& w : scratch) {
    if (w.fallback_failed) throw AllocationError("cannot allocate the least-norm solution of a singular row system");
    least_norm_rows += w.least_norm_rows;
  }
  return least_norm_rows;
}

}  // namespace LATENTMF_ISA
}  // namespace latentmf
