// Stochastic gradient descent on the loss of DESIGN.md, one observed pair at a time:
//   e = r - r_hat,  u_n <- u_n + eta (e v_m - lambda u_n),  v_m <- v_m + eta (e u_n - lambda v_m)
// (both from the values before the step); with biases also
//   b_n <- b_n + eta (e - lambda b_n),  c_m <- c_m + eta (e - lambda c_m).
// In a warm-up epoch only the leading factors (the first lead_factors) move.
//
// With AdaGrad (after LIBMF's schedule) each row has its own steps: the leading factors and the
// rest form two groups, each with an accumulator G per row (starting at 1). A group's factors of
// user n move by eta / sqrt(G_n) (G before this update), then G_n grows by the mean square of the
// group's gradient, |e v_m - lambda u_n|^2 / (factors in the group), expanded over sums of the
// rows taken with the prediction (GroupSums); likewise for item m. The biases move with the
// leading group's steps. Keeping the groups apart, and a first epoch on the leading group only,
// lets the large early gradients that fit the mean rating inflate only the leading group's G: on
// 9M synthetic ratings this reached test RMSE 0.71 in 13 epochs where one accumulator per row had
// not reached it in 20.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <utility>
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

// u <- u + eta_u (e v - lambda u), v <- v + eta_v (e u - lambda v) on factors [lo, hi), both from
// the values before the step.
template <class Scalar>
inline void step_factors(Scalar* LATENTMF_RESTRICT u, Scalar* LATENTMF_RESTRICT v, std::int64_t lo, std::int64_t hi,
                         Scalar e, Scalar eta_u, Scalar eta_v, Scalar lambda) {
  LATENTMF_OMP_SIMD()
  for (std::int64_t f = lo; f < hi; ++f) {
    const Scalar x = u[f], y = v[f];
    u[f] = x + eta_u * (e * y - lambda * x);
    v[f] = y + eta_v * (e * x - lambda * y);
  }
}

// What AdaGrad needs of the two rows of one update, from their values before the step, for each
// factor group (0 the leading factors, 1 the rest): u.v (together the prediction), u.u and v.v.
// From these the squared gradient norms are known as soon as e is,
//   |e v - lambda u|^2 = e^2 v.v - 2 e lambda u.v + lambda^2 u.u,
// so that the step and the accumulators' growth need no second reduction after the step.
template <class Scalar>
struct GroupSums {
  Scalar uv[2] = {}, uu[2] = {}, vv[2] = {};
};

#ifdef LATENTMF_HAVE_VECTORS
// The rows u and v of one update, F = FixedF a multiple of the vector width, as K vectors each:
// u a copy that the caller gives and takes back (UserVectors), v loaded here once (the step's
// stores would otherwise make the compiler load it again, as it cannot tell that u and v never
// overlap). Group 0 is the leading vectors, group 1 the rest.
template <int FixedF, class Scalar>
class VectorRows {
 public:
  static constexpr int W = vector_width<Scalar>, K = FixedF / W, lead_vectors = std::min<int>(K, lead_factors / W);
  static constexpr bool has_rest() { return K > lead_vectors; }

  VectorRows(const Vector<Scalar> (&x)[K], Scalar* v) : v_(v) {
    for (int k = 0; k < K; ++k) {
      x_[k] = x[k];
      y_[k] = load(v + k * W);
    }
  }

  static constexpr std::int64_t group_size(int group) { return (group == 0 ? lead_vectors : K - lead_vectors) * W; }

  Scalar dot_product() const { return dot_vectors<K, Scalar>(x_, y_); }

  GroupSums<Scalar> sums() const {
    // In the order {vv, uu} of each group, then u.v of each (and padding), so that
    // grow_accumulators finds the four it needs side by side.
    constexpr int N = has_rest() ? 8 : 4, at_uv = has_rest() ? 4 : 2;
    Vector<Scalar> partial[N] = {};
    for (int k = 0; k < K; ++k) {
      const int g = k < lead_vectors ? 0 : 1;
      partial[2 * g] += y_[k] * y_[k];
      partial[2 * g + 1] += x_[k] * x_[k];
      partial[at_uv + g] += x_[k] * y_[k];
    }
    Scalar out[N];
    horizontal_sums(partial, out);
    GroupSums<Scalar> s;
    for (int g = 0; g < (has_rest() ? 2 : 1); ++g) {
      s.vv[g] = out[2 * g];
      s.uu[g] = out[2 * g + 1];
      s.uv[g] = out[at_uv + g];
    }
    return s;
  }

  // u <- u + eta_u (e v - lambda u), v <- v + eta_v (e u - lambda v) on one group, both from the
  // values before the update: u in this copy, v stored.
  void step(int group, Scalar e, Scalar eta_u, Scalar eta_v, Scalar lambda) {
    for (int k = group == 0 ? 0 : lead_vectors; k < (group == 0 ? lead_vectors : K); ++k) {
      const Vector<Scalar> x = x_[k], y = y_[k];
      x_[k] = x + eta_u * (e * y - lambda * x);
      store(v_ + k * W, y + eta_v * (e * x - lambda * y));
    }
  }

  const Vector<Scalar> (&x() const)[K] { return x_; }

 private:
  Scalar* v_;
  alignas(sizeof(Vector<Scalar>)) Vector<Scalar> x_[K];
  alignas(sizeof(Vector<Scalar>)) Vector<Scalar> y_[K];
};
#endif

// The same operations for any F, one factor at a time, on u and v in memory.
template <int FixedF, class Scalar>
class ScalarRows {
 public:
  ScalarRows(Scalar* u, Scalar* v, std::int64_t n_factors)
      : u_(u), v_(v), F_(width<FixedF>(n_factors)), lead_(std::min(F_, lead_factors)) {}

  bool has_rest() const { return F_ > lead_; }
  std::int64_t group_size(int group) const { return group == 0 ? lead_ : F_ - lead_; }
  Scalar dot_product() const { return dot<FixedF>(u_, v_, F_); }

  GroupSums<Scalar> sums() const {
    GroupSums<Scalar> s;
    for (int g = 0; g < 2; ++g) {
      const Scalar* LATENTMF_RESTRICT u = u_;
      const Scalar* LATENTMF_RESTRICT v = v_;
      Scalar uv = 0, uu = 0, vv = 0;
      LATENTMF_OMP_SIMD(reduction(+ : uv, uu, vv))
      for (std::int64_t f = begin(g); f < end(g); ++f) {
        uv += u[f] * v[f];
        uu += u[f] * u[f];
        vv += v[f] * v[f];
      }
      s.uv[g] = uv;
      s.uu[g] = uu;
      s.vv[g] = vv;
    }
    return s;
  }

  void step(int group, Scalar e, Scalar eta_u, Scalar eta_v, Scalar lambda) const {
    step_factors(u_, v_, begin(group), end(group), e, eta_u, eta_v, lambda);
  }

 private:
  std::int64_t begin(int group) const { return group == 0 ? 0 : lead_; }
  std::int64_t end(int group) const { return group == 0 ? lead_ : F_; }

  Scalar* u_;
  Scalar* v_;
  std::int64_t F_, lead_;
};

// AdaGrad's accumulators g = {G_user lead, G_item lead, G_user rest, G_item rest} (from before the
// update) grown by each group's mean square gradient, with `sizes` the factors in each group that
// moved (0 for one that did not, whose accumulators then keep their values), stored into user_g
// and item_g. The four are updated side by side as one 4-wide vector where the compiler has vector
// types (GCC vectorised the same loop of four scalars worse: AdaGrad was 4 % slower). Rounding can
// take the expanded square a hair below zero when the gradient nearly vanishes: against G >= 1
// that is immaterial.
template <class Scalar>
inline void grow_accumulators(Scalar e, Scalar lambda, const GroupSums<Scalar>& s, const Scalar (&g)[4],
                              const std::int64_t (&sizes)[2], Scalar* user_g, Scalar* item_g) {
  const Scalar lead_weight = Scalar(1) / Scalar(sizes[0]);
  const Scalar rest_weight = sizes[1] > 0 ? Scalar(1) / Scalar(sizes[1]) : Scalar(0);
  const Scalar square = e * e, twice = 2 * e * lambda, lambda_squared = lambda * lambda;
  Scalar grown[4];
#ifdef LATENTMF_HAVE_VECTORS
  using Quad = typename VectorOf<Scalar, 4 * sizeof(Scalar)>::type;
  const Quad own = {s.vv[0], s.uu[0], s.vv[1], s.uu[1]}, other = {s.uu[0], s.vv[0], s.uu[1], s.vv[1]};
  const Quad cross = {s.uv[0], s.uv[0], s.uv[1], s.uv[1]};
  const Quad weight = {lead_weight, lead_weight, rest_weight, rest_weight}, before = {g[0], g[1], g[2], g[3]};
  const Quad after = before + (square * own - twice * cross + lambda_squared * other) * weight;
  for (int i = 0; i < 4; ++i) grown[i] = after[i];
#else
  const Scalar own[4] = {s.vv[0], s.uu[0], s.vv[1], s.uu[1]};
  const Scalar other[4] = {s.uu[0], s.vv[0], s.uu[1], s.vv[1]};
  const Scalar cross[4] = {s.uv[0], s.uv[0], s.uv[1], s.uv[1]};
  const Scalar weight[4] = {lead_weight, lead_weight, rest_weight, rest_weight};
  for (int i = 0; i < 4; ++i)
    grown[i] = g[i] + (square * own[i] - twice * cross[i] + lambda_squared * other[i]) * weight[i];
#endif
  user_g[0] = grown[0];
  item_g[0] = grown[1];
  user_g[1] = grown[2];
  item_g[1] = grown[3];
}

// One update on one rating (see the top of this file) of the rows in `rows`; returns e^2 (before
// the step).
template <bool WithBiases, bool Adaptive, bool WarmUp, class Rows, class Scalar>
inline Scalar update_rows(Rows&& rows, const Endpoint<Scalar>& user, const Endpoint<Scalar>& item, Scalar rating,
                          Scalar global_mean, const SgdStep<Scalar>& step) {
  GroupSums<Scalar> sums;
  Scalar prediction;
  if constexpr (Adaptive) {
    sums = rows.sums();
    prediction = sums.uv[0] + sums.uv[1];
  } else {
    prediction = rows.dot_product();
  }
  if constexpr (WithBiases) prediction += global_mean + *user.bias + *item.bias;
  const Scalar e = rating - prediction, lambda = step.regularization;
  const bool rest = !WarmUp && rows.has_rest();
  Scalar eta_u = step.learning_rate, eta_v = step.learning_rate;
  if constexpr (Adaptive) {
    // The four steps (user and item, both groups) from the accumulators before this update.
    const Scalar g[4] = {user.accumulator[0], item.accumulator[0], user.accumulator[1], item.accumulator[1]};
    Scalar steps[4];
    rsqrt_steps(step.learning_rate, g, steps);
    eta_u = steps[0];
    eta_v = steps[1];
    rows.step(0, e, steps[0], steps[1], lambda);
    if (rest) rows.step(1, e, steps[2], steps[3], lambda);
    const std::int64_t sizes[2] = {rows.group_size(0), rest ? rows.group_size(1) : 0};
    grow_accumulators(e, lambda, sums, g, sizes, user.accumulator, item.accumulator);
  } else {
    rows.step(0, e, eta_u, eta_v, lambda);
    if (rest) rows.step(1, e, eta_u, eta_v, lambda);
  }
  if constexpr (WithBiases) {
    const Scalar b = *user.bias, c = *item.bias;
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

// Whether the user rows of all SGD lanes fit in half the level's vector registers (AVX-512 and
// arm64 have 32, SSE2 and AVX2 16), leaving the other half for the update itself.
#if LATENTMF_VECTOR_BYTES == 64 || defined(LATENTMF_HAVE_NEON64)
constexpr int vector_registers = 32;
#else
constexpr int vector_registers = 16;
#endif
#ifdef LATENTMF_HAVE_VECTORS
template <int FixedF, class Scalar>
constexpr bool rows_in_registers = vectorised<FixedF, Scalar> &&
                                   sgd_lanes * FixedF / vector_width<Scalar> <= vector_registers / 2;
#else
template <int FixedF, class Scalar>
constexpr bool rows_in_registers = false;
#endif

#ifdef LATENTMF_HAVE_VECTORS
// A user's row (F = FixedF a multiple of the vector width) as K vectors, with its bias and
// accumulators where enabled: a copy that the updates change, taken from the model by load() and
// written back by store().
template <int FixedF, bool WithBiases, bool Adaptive, class Scalar>
class UserVectors {
 public:
  using Rows = VectorRows<FixedF, Scalar>;
  static constexpr int K = Rows::K;

  void load(const Endpoint<Scalar>& at) {
    at_ = at;
    for (int k = 0; k < K; ++k) x_[k] = latentmf::LATENTMF_ISA::load(at.row + k * vector_width<Scalar>);
    if constexpr (WithBiases) bias_ = *at.bias;
    if constexpr (Adaptive) accumulator_[0] = at.accumulator[0], accumulator_[1] = at.accumulator[1];
  }

  void store() const {
    for (int k = 0; k < K; ++k) latentmf::LATENTMF_ISA::store(at_.row + k * vector_width<Scalar>, x_[k]);
    if constexpr (WithBiases) *at_.bias = bias_;
    if constexpr (Adaptive) at_.accumulator[0] = accumulator_[0], at_.accumulator[1] = accumulator_[1];
  }

  // One update of this user and the item at `item` (see the top of this file); returns e^2.
  template <bool WarmUp>
  Scalar update(const Endpoint<Scalar>& item, Scalar rating, Scalar global_mean, const SgdStep<Scalar>& step) {
    Rows rows(x_, item.row);
    const Endpoint<Scalar> copy = {nullptr, &bias_, accumulator_};
    const Scalar squared_error = update_rows<WithBiases, Adaptive, WarmUp>(rows, copy, item, rating, global_mean, step);
    for (int k = 0; k < K; ++k) x_[k] = rows.x()[k];
    return squared_error;
  }

 private:
  Endpoint<Scalar> at_ = {};
  // Aligned to the vectors' size although their type only promises a scalar's alignment (so that
  // load() may read unaligned rows): clang lays the member out at the type's alignment but reads
  // it through references to Vector arrays with aligned moves (vmovaps at offset 24 crashed).
  alignas(sizeof(Vector<Scalar>)) Vector<Scalar> x_[K];
  Scalar bias_ = 0, accumulator_[2] = {};
};
#endif

template <int FixedF, bool WithBiases, bool Adaptive, bool WarmUp, class Scalar>
inline Scalar sgd_update(const Endpoint<Scalar>& user, const Endpoint<Scalar>& item, std::int64_t n_factors,
                         Scalar rating, Scalar global_mean, const SgdStep<Scalar>& step) {
#ifdef LATENTMF_HAVE_VECTORS
  if constexpr (vectorised<FixedF, Scalar>) {
    UserVectors<FixedF, WithBiases, Adaptive, Scalar> copy;
    copy.load(user);
    const Scalar squared_error = copy.template update<WarmUp>(item, rating, global_mean, step);
    copy.store();
    return squared_error;
  }
#endif
  return update_rows<WithBiases, Adaptive, WarmUp>(ScalarRows<FixedF, Scalar>(user.row, item.row, n_factors), user,
                                                   item, rating, global_mean, step);
}

// The user of one lane's open row in sgd_block. A row's updates run one after the other in its
// lane, and no other lane, nor any other block of the sub-epoch, touches that user meanwhile: so
// where the rows of all lanes fit in half the vector registers, the user's row, bias and
// accumulators are loaded when the row opens, stay in registers for all of its updates and are
// written back when it closes, which saves each update a store and a reload of u (AdaGrad, F = 32
// with AVX-512: 10 % less time per update). Elsewhere each update reads and writes the user in
// memory.
template <int FixedF, bool WithBiases, bool Adaptive, class Scalar,
          bool InRegisters = rows_in_registers<FixedF, Scalar>>
class LaneUser {
 public:
  void open(const Endpoint<Scalar>& at) { at_ = at; }
  void close() const {}

  template <bool WarmUp>
  Scalar update(const Endpoint<Scalar>& item, std::int64_t n_factors, Scalar rating, Scalar global_mean,
                const SgdStep<Scalar>& step) const {
    return sgd_update<FixedF, WithBiases, Adaptive, WarmUp>(at_, item, n_factors, rating, global_mean, step);
  }

 private:
  Endpoint<Scalar> at_ = {};
};

#ifdef LATENTMF_HAVE_VECTORS
template <int FixedF, bool WithBiases, bool Adaptive, class Scalar>
class LaneUser<FixedF, WithBiases, Adaptive, Scalar, true> {
 public:
  void open(const Endpoint<Scalar>& at) { user_.load(at); }
  void close() const { user_.store(); }

  template <bool WarmUp>
  Scalar update(const Endpoint<Scalar>& item, std::int64_t, Scalar rating, Scalar global_mean,
                const SgdStep<Scalar>& step) {
    return user_.template update<WarmUp>(item, rating, global_mean, step);
  }

 private:
  UserVectors<FixedF, WithBiases, Adaptive, Scalar> user_;
};
#endif

// Calls body(std::integral_constant<int, lane>) for each lane in turn: the lanes' state then has
// compile-time indices, which lets the compiler keep it in registers.
template <class Body, int... Lane>
inline void for_each_lane(Body&& body, std::integer_sequence<int, Lane...>) {
  (body(std::integral_constant<int, Lane>{}), ...);
}

template <class Body>
inline void for_each_lane(Body&& body) {
  for_each_lane(body, std::make_integer_sequence<int, sgd_lanes>{});
}

// Rows ahead of the one being opened whose user is prefetched: far enough for a miss to arrive
// before the row is opened, near enough for it to still be in cache then.
constexpr std::int64_t prefetch_rows = 8;

// Asks for all of a user that an update reads: its row, bias and accumulators (the accumulators
// alone, left to miss, cost SGD 10 % of its time on 9M ratings).
template <class Scalar>
inline void prefetch_endpoint(const Endpoint<Scalar>& at, std::int64_t n_factors) {
  prefetch_row(at.row, n_factors);
  if (at.bias) LATENTMF_PREFETCH(at.bias);
  if (at.accumulator) LATENTMF_PREFETCH(at.accumulator);
}

// All ratings of one block, in the lane order of visit_in_lane_order (blocks.hpp). The lanes are
// interleaved so that the processor overlaps their independent updates. Touches only the rows of
// U and V of the block's user and item groups. Returns the sum of e^2, added lane by lane.
// Flattened: a round of the lanes' updates must be one piece of code for LaneUser to keep their
// rows in registers (GCC otherwise left part of each update an out-of-line call).
template <int FixedF, bool WithBiases, bool Adaptive, bool WarmUp, class Scalar>
LATENTMF_FLATTEN double sgd_block(const BlockGrid<Scalar>& grid, std::int64_t block, const Factors<Scalar>& f,
                                  const Biases<Scalar>& b, const Accumulators<Scalar>& a,
                                  const SgdStep<Scalar>& step) {
  constexpr int L = sgd_lanes;
  const std::int64_t F = width<FixedF>(f.n_factors);
  const std::int64_t* row_begin = grid.row_begin().data();
  const std::int32_t* row_user = grid.row_user().data();
  const std::int32_t* items = grid.items().data();
  const Scalar* values = grid.values().data();
  std::int64_t unopened = grid.block_rows()[block];
  const std::int64_t last_row = grid.block_rows()[block + 1];

  LaneUser<FixedF, WithBiases, Adaptive, Scalar> user[L];
  std::int64_t next[L] = {}, end[L] = {};
  bool open[L] = {};
  double squared_errors[L] = {};

  auto user_of_row = [&](std::int64_t row) {
    return endpoint<WithBiases, Adaptive>(f.U, F, b.user, a.user, row_user[row]);
  };
  // Closes the lane's row (if open) and opens the block's next unopened row in it, if any.
  auto next_row = [&](auto lane) {
    if (open[lane]) user[lane].close();
    open[lane] = unopened < last_row;
    if (!open[lane]) return;
    user[lane].open(user_of_row(unopened));
    next[lane] = row_begin[unopened];
    end[lane] = row_begin[unopened + 1];
    ++unopened;
    if (unopened + prefetch_rows < last_row) prefetch_endpoint(user_of_row(unopened + prefetch_rows), F);
  };
  auto update = [&](auto lane, std::int64_t k) {
    const auto item = endpoint<WithBiases, Adaptive>(f.V, F, b.item, a.item, items[k]);
    squared_errors[lane] += user[lane].template update<WarmUp>(item, F, values[k], b.global_mean, step);
  };
  for_each_lane(next_row);
  for (;;) {
    if (std::all_of(open, open + L, [](bool o) { return o; })) {
      // Every lane has a row: run as many whole rounds as the shortest row allows, unchecked.
      std::int64_t rounds = end[0] - next[0];
      for_each_lane([&](auto lane) { rounds = std::min(rounds, end[lane] - next[lane]); });
      for (std::int64_t t = 0; t < rounds; ++t) for_each_lane([&](auto lane) { update(lane, next[lane] + t); });
      for_each_lane([&](auto lane) {
        next[lane] += rounds;
        if (next[lane] == end[lane]) next_row(lane);
      });
      continue;
    }
    // The block's last rows: lanes run dry one by one.
    bool any_open = false;
    for_each_lane([&](auto lane) {
      if (!open[lane]) return;
      any_open = true;
      update(lane, next[lane]++);
      if (next[lane] == end[lane]) next_row(lane);
    });
    if (!any_open) break;
  }
  return std::accumulate(squared_errors, squared_errors + L, 0.0);
}

// Calls visit(F, with biases, adaptive, warm-up) with the four as compile-time constants (a
// warm-up flag tested in every update cost AdaGrad 10 % of its time).
template <class Scalar, class Visit>
decltype(auto) with_variant(std::int64_t n_factors, const Biases<Scalar>& b, const Accumulators<Scalar>& a,
                            bool warm_up, Visit&& visit) {
  return with_width(n_factors, [&](auto fixed) {
    auto with_warm_up = [&](auto with_biases, auto adaptive) {
      return warm_up ? visit(fixed, with_biases, adaptive, std::true_type{})
                     : visit(fixed, with_biases, adaptive, std::false_type{});
    };
    auto with_adaptive = [&](auto with_biases) {
      return a.enabled() ? with_warm_up(with_biases, std::true_type{}) : with_warm_up(with_biases, std::false_type{});
    };
    return b.enabled() ? with_adaptive(std::true_type{}) : with_adaptive(std::false_type{});
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
  with_variant(f.n_factors, b, a, step.warm_up, [&](auto fixed, auto with_biases, auto adaptive, auto warm_up) {
    constexpr int FixedF = decltype(fixed)::value;
    constexpr bool WithBiases = decltype(with_biases)::value, Adaptive = decltype(adaptive)::value;
    constexpr bool WarmUp = decltype(warm_up)::value;
    parallel_for(B, threads, [&](std::int64_t j) {
      const int p = by_size[j];
      const std::int64_t block = grid.block_id(p, item_group_of(p));
      squared_errors[p] = sgd_block<FixedF, WithBiases, Adaptive, WarmUp>(grid, block, f, b, a, step);
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
  auto run = [&](auto fixed, auto with_biases, auto adaptive, auto warm_up) {
    constexpr int FixedF = decltype(fixed)::value;
    constexpr bool WithBiases = decltype(with_biases)::value, Adaptive = decltype(adaptive)::value;
    constexpr bool WarmUp = decltype(warm_up)::value;
    const std::int64_t F = width<FixedF>(f.n_factors);
    double squared_errors = 0;
    for (std::int64_t i = 0; i < r.size; ++i) {
      const std::int64_t k = order[i];
      squared_errors += sgd_update<FixedF, WithBiases, Adaptive, WarmUp>(
          endpoint<WithBiases, Adaptive>(f.U, F, b.user, a.user, r.users[k]),
          endpoint<WithBiases, Adaptive>(f.V, F, b.item, a.item, r.items[k]), F, r.values[k], b.global_mean, step);
    }
    return squared_errors;
  };
  return with_variant(f.n_factors, b, a, step.warm_up, run);
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
