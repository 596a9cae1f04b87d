// Predictions r_hat = u_n . v_m (+ mu + b_n + c_m) for given (user, item) pairs.
#pragma once

#include <cstdint>

#include "../checks.hpp"
#include "../factors.hpp"
#include "../parallel.hpp"
#include "isa.hpp"
#include "vector.hpp"

namespace latentmf {
namespace LATENTMF_ISA {

// Pairs ahead whose rows are prefetched: pairs come in any order, so their rows are gathered at
// random, and the misses overlap only when asked for early (with a U of 61 MB, predicting 10M
// pairs took about two thirds of the time at 48 pairs ahead as at 16).
constexpr std::int64_t prefetch_pairs = 48;

// out[k] = r_hat(users[k], items[k]) for k in [0, size).
template <class Scalar, class Index>
void predict(const Factors<Scalar>& f, const Biases<Scalar>& b, const Index* users, const Index* items,
             std::int64_t size, Scalar* out, int threads) {
  check_pairs(users, items, size, f.n_users, f.n_items);
  with_width(f.n_factors, [&](auto fixed) {
    constexpr int FixedF = decltype(fixed)::value;
    const Chunks chunks = even_chunks(size, 1 << 14);
    parallel_for(chunks.count(), threads, [&](std::int64_t c) {
      const std::int64_t F = width<FixedF>(f.n_factors);
      for (std::int64_t k = chunks.begin(c); k < chunks.end(c); ++k) {
        if (k + prefetch_pairs < chunks.end(c)) {
          prefetch_row(f.U + std::int64_t(users[k + prefetch_pairs]) * F, F);
          prefetch_row(f.V + std::int64_t(items[k + prefetch_pairs]) * F, F);
        }
        const std::int64_t n = users[k], m = items[k];
        out[k] = b.offset(n, m) + dot<FixedF>(f.U + n * F, f.V + m * F, F);
      }
    });
  });
}

}  // namespace LATENTMF_ISA
}  // namespace latentmf
