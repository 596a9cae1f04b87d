// Predictions r_hat = u_n . v_m (+ mu + b_n + c_m) for given (user, item) pairs.
#pragma once

#include <cstdint>

#include "errors.hpp"
#include "factors.hpp"
#include "parallel.hpp"

namespace latentmf {

template <class Index>
void check_pairs(const Index* users, const Index* items, std::int64_t size, std::int64_t n_users,
                 std::int64_t n_items) {
  for (std::int64_t k = 0; k < size; ++k) {
    require(users[k] >= 0 && users[k] < n_users, "users[", k, "] = ", +users[k],
            " is outside [0, n_users=", n_users, ")");
    require(items[k] >= 0 && items[k] < n_items, "items[", k, "] = ", +items[k],
            " is outside [0, n_items=", n_items, ")");
  }
}

// out[k] = r_hat(users[k], items[k]) for k in [0, size).
template <class Scalar, class Index>
void predict(const Factors<Scalar>& f, const Biases<Scalar>& b, const Index* users, const Index* items,
             std::int64_t size, Scalar* out, int threads) {
  check_pairs(users, items, size, f.n_users, f.n_items);
  parallel_for(size, threads, [&](std::int64_t k) {
    const std::int64_t n = users[k], m = items[k];
    out[k] = b.offset(n, m) + dot(f.user_row(n), f.item_row(m), f.n_factors);
  }, 4096);
}

}  // namespace latentmf
