// Stochastic gradient descent of BPR (see ../bpr.hpp) on one triple of a user u, a positive item i
// and a negative item j:
//   x = u . (v_i - v_j) + b_i - b_j,   g = sigma(-x) = 1 / (1 + e^x),
//   u   <- u   + eta (g (v_i - v_j) - lambda u)
//   v_i <- v_i + eta (g u - lambda v_i)          b_i <- b_i + eta (g - lambda b_i)
//   v_j <- v_j + eta (-g u - lambda v_j)         b_j <- b_j + eta (-g - lambda b_j)
// all from the values before the step (the biases where enabled): the gradient step of the
// triple's loss
//   l = -ln sigma(x) + lambda / 2 (|u|^2 + |v_i|^2 + |v_j|^2 + b_i^2 + b_j^2).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

#include "../bpr.hpp"
#include "../factors.hpp"
#include "../parallel.hpp"
#include "isa.hpp"
#include "vector.hpp"

namespace latentmf {
namespace LATENTMF_ISA {

// g = sigma(-x) and -ln sigma(x) = ln(1 + e^-x), from e = e^-|x| <= 1 so that nothing overflows.
// A NaN x gives NaN for both.
template <class Scalar>
inline void logistic(Scalar x, Scalar& g, Scalar& loss) {
  const Scalar e = std::exp(-std::abs(x));
  g = (x >= 0 ? e : Scalar(1)) / (Scalar(1) + e);
  loss = std::max(-x, Scalar(0)) + std::log1p(e);
}

// The loss of one triple from -ln sigma(x) and the sum of the squares it charges.
template <class Scalar>
inline double triple_loss(Scalar log_loss, Scalar squares, Scalar lambda) {
  return double(log_loss) + 0.5 * double(lambda) * double(squares);
}

// The item biases of one triple, b_i and b_j (nullptr without biases).
template <class Scalar>
struct ItemBiases {
  Scalar* i;
  Scalar* j;

  Scalar difference() const { return *i - *j; }
  Scalar squares() const { return *i * *i + *j * *j; }
  void step(Scalar g, Scalar eta, Scalar lambda) const {
    const Scalar bi = *i, bj = *j;
    *i = bi + eta * (g - lambda * bi);
    *j = bj + eta * (-g - lambda * bj);
  }
};

#ifdef LATENTMF_HAVE_VECTORS
// The row of a user for the run of its positives in one block, F = FixedF a multiple of the
// vector width: held in K vectors from the first triple to the last (no other row aliases it)
// and stored once at the end.
template <int FixedF, class Scalar>
class VectorUser {
 public:
  static constexpr int W = vector_width<Scalar>, K = FixedF / W;

  VectorUser(Scalar* u, std::int64_t) : u_(u) {
    for (int k = 0; k < K; ++k) x_[k] = load(u + k * W);
  }

  void store_row() const {
    for (int k = 0; k < K; ++k) store(u_ + k * W, x_[k]);
  }

  // One step on (u, v_i, v_j); returns the triple's loss (before the step).
  template <bool WithBiases>
  double step(Scalar* vi, Scalar* vj, const ItemBiases<Scalar>& bias, const BprStep<Scalar>& s) {
    Vector<Scalar> a[K], b[K], d[K];
    // u . (v_i - v_j) in two accumulators (half the dependent chain), then |u|^2 + |v_i|^2 + |v_j|^2:
    // the three reduced together.
    Vector<Scalar> partial[4] = {};
    for (int k = 0; k < K; ++k) {
      a[k] = load(vi + k * W);
      b[k] = load(vj + k * W);
      d[k] = a[k] - b[k];
      partial[k % 2] += x_[k] * d[k];
      partial[2] += x_[k] * x_[k] + a[k] * a[k];
      partial[3] += b[k] * b[k];
    }
    Scalar sums[4];
    horizontal_sums(partial, sums);
    const Scalar x = sums[0] + sums[1] + (WithBiases ? bias.difference() : Scalar(0));
    Scalar g, log_loss;
    logistic(x, g, log_loss);
    const Scalar eta = s.learning_rate, lambda = s.regularization;
    const Scalar squares = sums[2] + sums[3] + (WithBiases ? bias.squares() : Scalar(0));
    for (int k = 0; k < K; ++k) {
      store(vi + k * W, a[k] + eta * (g * x_[k] - lambda * a[k]));
      store(vj + k * W, b[k] + eta * (-g * x_[k] - lambda * b[k]));
      x_[k] = x_[k] + eta * (g * d[k] - lambda * x_[k]);
    }
    if constexpr (WithBiases) bias.step(g, eta, lambda);
    return triple_loss(log_loss, squares, lambda);
  }

 private:
  Scalar* u_;
  alignas(sizeof(Vector<Scalar>)) Vector<Scalar> x_[K];  // see UserVectors in sgd.hpp
};
#endif

// The same for any F, one factor at a time, the user's row updated in memory.
template <int FixedF, class Scalar>
class ScalarUser {
 public:
  ScalarUser(Scalar* u, std::int64_t n_factors) : u_(u), F_(width<FixedF>(n_factors)) {}

  void store_row() const {}

  template <bool WithBiases>
  double step(Scalar* vi, Scalar* vj, const ItemBiases<Scalar>& bias, const BprStep<Scalar>& s) {
    Scalar* LATENTMF_RESTRICT u = u_;
    Scalar* LATENTMF_RESTRICT a = vi;
    Scalar* LATENTMF_RESTRICT b = vj;
    Scalar dot = 0, squares = 0;
    LATENTMF_OMP_SIMD(reduction(+ : dot, squares))
    for (std::int64_t f = 0; f < F_; ++f) {
      dot += u[f] * (a[f] - b[f]);
      squares += u[f] * u[f] + a[f] * a[f] + b[f] * b[f];
    }
    const Scalar x = dot + (WithBiases ? bias.difference() : Scalar(0));
    Scalar g, log_loss;
    logistic(x, g, log_loss);
    const Scalar eta = s.learning_rate, lambda = s.regularization;
    if constexpr (WithBiases) squares += bias.squares();
    LATENTMF_OMP_SIMD()
    for (std::int64_t f = 0; f < F_; ++f) {
      const Scalar x_f = u[f], a_f = a[f], b_f = b[f];
      u[f] = x_f + eta * (g * (a_f - b_f) - lambda * x_f);
      a[f] = a_f + eta * (g * x_f - lambda * a_f);
      b[f] = b_f + eta * (-g * x_f - lambda * b_f);
    }
    if constexpr (WithBiases) bias.step(g, eta, lambda);
    return triple_loss(log_loss, squares, lambda);
  }

 private:
  Scalar* u_;
  std::int64_t F_;
};

// Rows ahead of the one being opened whose U rows are asked for: a block's users are spread over
// all of U, so each row of U is a cache miss unless asked for early (as the SGD kernel does).
constexpr std::int64_t bpr_prefetch_rows = 8;

// All triples of block b, in the order of sub_epoch_triples (../bpr.hpp): its rows in order, each
// row's positives in order, the negatives drawn from the block's stream. Touches only the rows of
// U, V and item_bias of the block's user and item groups. Returns the sum of the triples' losses.
template <class User, bool WithBiases, class Scalar>
double bpr_block(const BprGrid& grid, std::int64_t b, const Factors<Scalar>& f, Scalar* item_bias,
                 const BprStep<Scalar>& step) {
  const std::int64_t F = f.n_factors;
  const std::int32_t* row_user = grid.row_user();
  const std::int32_t* row_length = grid.row_length();
  const std::int64_t last_row = grid.block_row_end(b);
  BlockNegatives negatives(grid, b);
  const std::int32_t* own = grid.items() + grid.block_begin(b);
  double loss = 0;
  for (std::int64_t r = grid.block_row_begin(b); r < last_row; ++r) {
    if (r + bpr_prefetch_rows < last_row) prefetch_row(f.U + row_user[r + bpr_prefetch_rows] * F, F);
    const std::int64_t length = row_length[r];
    User user(f.U + row_user[r] * F, F);
    for (std::int64_t k = 0; k < length; ++k) {
      const std::int32_t j = negatives.next(own, length);
      if (j < 0) continue;
      const std::int64_t i = own[k];
      const ItemBiases<Scalar> bias{WithBiases ? item_bias + i : nullptr, WithBiases ? item_bias + j : nullptr};
      loss += user.template step<WithBiases>(f.V + i * F, f.V + j * F, bias, step);
    }
    user.store_row();
    own += length;
  }
  return loss;
}

// A type as a value, to hand a class to a generic lambda without making one.
template <class T>
struct TypeTag {
  using type = T;
};

// Calls visit(TypeTag<User>, with biases) with the user row class for F, and the bias flag as a
// type.
template <class Scalar, class Visit>
decltype(auto) with_bpr_variant(std::int64_t n_factors, bool with_biases, Visit&& visit) {
  return with_width(n_factors, [&](auto fixed) {
    constexpr int FixedF = decltype(fixed)::value;
    auto with_user = [&](auto user) {
      return with_biases ? visit(user, std::true_type{}) : visit(user, std::false_type{});
    };
#ifdef LATENTMF_HAVE_VECTORS
    if constexpr (vectorised<FixedF, Scalar>) return with_user(TypeTag<VectorUser<FixedF, Scalar>>{});
    else
#endif
      return with_user(TypeTag<ScalarUser<FixedF, Scalar>>{});
  });
}

// Triples below which another thread costs more than it saves in one sub-epoch.
constexpr std::int64_t min_triples_per_thread = 20000;

// Sub-epoch `sub_epoch` of `epoch` (the grid's blocks arranged for it): the blocks
// (p, (p + shift) mod B) in parallel, largest first so that the threads finish together; each is
// one thread's sequential work on rows no other block of the sub-epoch touches, so the result is
// the same for any thread count. item_bias (n_items) is null without biases. Returns the sum of
// the triples' losses, added in block order.
template <class Scalar>
double bpr_sub_epoch(const BprGrid& grid, const Factors<Scalar>& f, Scalar* item_bias, const BprStep<Scalar>& step,
                     std::int64_t epoch, int sub_epoch, int threads) {
  check_bpr_sub_epoch(grid, f, step, epoch, sub_epoch);
  const int B = grid.blocks();
  const int shift = sub_epoch_shifts(B, grid.seed(), epoch)[sub_epoch];
  auto block_of = [&](int p) { return grid.block_id(p, grid.item_group_of(p, shift)); };
  std::vector<int> by_size(static_cast<std::size_t>(B));
  std::iota(by_size.begin(), by_size.end(), 0);
  std::stable_sort(by_size.begin(), by_size.end(),
                   [&](int x, int y) { return grid.block_size(block_of(x)) > grid.block_size(block_of(y)); });
  std::int64_t positives = 0;
  for (int p = 0; p < B; ++p) positives += grid.block_size(block_of(p));
  threads = int(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, positives / min_triples_per_thread)));
  std::vector<double> losses(static_cast<std::size_t>(B), 0.0);
  with_bpr_variant<Scalar>(f.n_factors, item_bias != nullptr, [&](auto user, auto with_biases) {
    using User = typename decltype(user)::type;
    constexpr bool WithBiases = decltype(with_biases)::value;
    parallel_for(B, threads, [&](std::int64_t k) {
      const int p = by_size[k];
      losses[p] = bpr_block<User, WithBiases>(grid, block_of(p), f, item_bias, step);
    });
  });
  return std::accumulate(losses.begin(), losses.end(), 0.0);
}

}  // namespace LATENTMF_ISA
}  // namespace latentmf
