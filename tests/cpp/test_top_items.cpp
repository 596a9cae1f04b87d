// Top-k items per user, through the dispatch table of every level this CPU runs: best first, ties
// to the lower item, seen items left out, -1 and NaN after the items there are; on scores that are
// exact in float (small integer factors), so that every tie is a real one.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "check.hpp"
#include "latentmf/dispatch.hpp"
#include "problems.hpp"

namespace latentmf::test {
namespace {

// The seen items of each user, in the layout top_items reads (offsets, then sorted items).
struct Seen {
  std::vector<std::int64_t> offsets{0};
  std::vector<std::int32_t> items;

  void add_user(std::vector<std::int32_t> seen) {
    std::sort(seen.begin(), seen.end());
    items.insert(items.end(), seen.begin(), seen.end());
    offsets.push_back(std::int64_t(items.size()));
  }
};

template <class Scalar>
struct TopK {
  std::vector<std::int64_t> items;
  std::vector<Scalar> scores;
};

template <class Scalar>
TopK<Scalar> top_items(Isa isa, Model<Scalar>& m, const Seen* seen, const std::vector<std::int64_t>& users,
                       std::int64_t k, int threads = 1) {
  TopK<Scalar> out{std::vector<std::int64_t>(users.size() * k), std::vector<Scalar>(users.size() * k)};
  kernels<Scalar>(isa).top_items(m.factors(), m.biases(), seen ? seen->offsets.data() : nullptr,
                                 seen ? seen->items.data() : nullptr, seen ? std::int64_t(seen->items.size()) : 0,
                                 users.data(), std::int64_t(users.size()), k, out.items.data(), out.scores.data(),
                                 threads);
  return out;
}

// The same, by scoring every item, sorting by score (ties: lower item first) and dropping seen ones.
template <class Scalar>
TopK<Scalar> expected_top_items(const Model<Scalar>& m, const Seen* seen, const std::vector<std::int64_t>& users,
                                std::int64_t k) {
  TopK<Scalar> out;
  const std::int64_t F = m.n_factors;
  for (std::int64_t n : users) {
    std::vector<Scalar> score(static_cast<std::size_t>(m.n_items));
    for (std::int64_t i = 0; i < m.n_items; ++i) {
      score[i] = m.user_bias.empty() ? Scalar(0) : m.global_mean + m.user_bias[n] + m.item_bias[i];
      for (std::int64_t f = 0; f < F; ++f) score[i] += m.U[n * F + f] * m.V[i * F + f];
    }
    auto was_seen = [&](std::int64_t i) {
      return seen && std::binary_search(seen->items.begin() + seen->offsets[n],
                                        seen->items.begin() + seen->offsets[n + 1], std::int32_t(i));
    };
    std::vector<std::int64_t> candidates;
    for (std::int64_t i = 0; i < m.n_items; ++i)
      if (!was_seen(i)) candidates.push_back(i);
    std::stable_sort(candidates.begin(), candidates.end(), [&](auto a, auto b) { return score[a] > score[b]; });
    for (std::int64_t j = 0; j < k; ++j) {
      const bool there = j < std::int64_t(candidates.size());
      out.items.push_back(there ? candidates[j] : -1);
      out.scores.push_back(there ? score[candidates[j]] : std::numeric_limits<Scalar>::quiet_NaN());
    }
  }
  return out;
}

template <class Int>
std::string show_items(const std::vector<Int>& items) {
  std::string text;
  for (auto item : items) text += std::to_string(item) + " ";
  return text;
}

// Equal scores, NaN (padding) where the other has NaN.
template <class Scalar>
bool same_scores(const std::vector<Scalar>& a, const std::vector<Scalar>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](Scalar x, Scalar y) { return x == y || (std::isnan(x) && std::isnan(y)); });
}

// Entries [i k, (i + 1) k): the list of the i-th user asked for.
template <class T>
std::vector<T> row(const std::vector<T>& x, std::size_t i, std::int64_t k) {
  return std::vector<T>(x.begin() + std::int64_t(i) * k, x.begin() + std::int64_t(i + 1) * k);
}

// The lists of the given users (k entries each) equal, user by user.
template <class Scalar>
void check_same(const TopK<Scalar>& actual, const TopK<Scalar>& expected, const std::vector<std::int64_t>& users,
                std::int64_t k) {
  REQUIRE(actual.items.size() == expected.items.size());
  for (std::size_t i = 0; i < users.size(); ++i) {
    CONTEXT("user " << users[i]);
    CHECK_EQ(show_items(row(actual.items, i, k)), show_items(row(expected.items, i, k)));
    CHECK(same_scores(row(actual.scores, i, k), row(expected.scores, i, k)));
  }
}

template <class Scalar>
Model<Scalar> scores_of_items(const std::vector<Scalar>& item_scores) {
  Model<Scalar> m;
  m.n_users = 2;
  m.n_items = std::int64_t(item_scores.size());
  m.n_factors = 1;
  m.U = {1, -1};
  m.V = item_scores;
  return m;
}

template <class Scalar>
void check_small_case(Isa isa) {
  CONTEXT(isa_name(isa) << ", " << scalar_name<Scalar>());
  // User 0 scores the items 1, 3, 3, 2, 3; user 1 the opposite.
  auto m = scores_of_items<Scalar>({1, 3, 3, 2, 3});
  auto top = top_items<Scalar>(isa, m, nullptr, {0, 1}, 3);
  CHECK_EQ(show_items(top.items), show_items(std::vector<int>{1, 2, 4, 0, 3, 1}));
  CHECK(top.scores == (std::vector<Scalar>{3, 3, 3, -1, -2, -3}));
  // User 0 has seen item 2, user 1 items 0 and 3; k = 5 leaves room for padding.
  Seen seen;
  seen.add_user({2});
  seen.add_user({3, 0});
  top = top_items<Scalar>(isa, m, &seen, {0, 1}, 5);
  CHECK_EQ(show_items(top.items), show_items(std::vector<int>{1, 4, 3, 0, -1, 1, 2, 4, -1, -1}));
  const Scalar padding = std::numeric_limits<Scalar>::quiet_NaN();
  CHECK(same_scores(top.scores, std::vector<Scalar>{3, 3, 2, 1, padding, -3, -3, -3, padding, padding}));
}

// Integer factors in [-2, 2] and biases in halves: every score is exact, and many tie, across
// several panels of items (a panel is 8 to 32 items, by level and type).
template <class Scalar>
void check_random_case(Isa isa, bool biases, int threads) {
  CONTEXT(isa_name(isa) << ", " << scalar_name<Scalar>() << (biases ? ", biases" : "") << ", threads " << threads);
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int> small(-2, 2);
  Model<Scalar> m;
  m.n_users = 70;
  m.n_items = 130;
  m.n_factors = 5;
  for (std::int64_t i = 0; i < 70 * 5; ++i) m.U.push_back(Scalar(small(rng)));
  for (std::int64_t i = 0; i < 130 * 5; ++i) m.V.push_back(Scalar(small(rng)));
  if (biases) {
    m.global_mean = 3;
    for (int n = 0; n < 70; ++n) m.user_bias.push_back(Scalar(small(rng)) / 2);
    for (int i = 0; i < 130; ++i) m.item_bias.push_back(Scalar(small(rng)) / 2);
  }
  Seen seen;
  std::bernoulli_distribution seen_it(0.3);
  for (int n = 0; n < 70; ++n) {
    std::vector<std::int32_t> items;
    // The last user has seen all items but three, so that k = 10 needs padding.
    for (std::int32_t i = 0; i < 130; ++i)
      if (n == 69 ? i > 2 : seen_it(rng)) items.push_back(i);
    seen.add_user(items);
  }
  std::vector<std::int64_t> users(70);
  std::iota(users.rbegin(), users.rend(), 0);  // in reverse: top_items takes users in any order
  for (std::int64_t k : {1, 10}) {
    check_same(top_items<Scalar>(isa, m, nullptr, users, k, threads), expected_top_items<Scalar>(m, nullptr, users, k),
               users, k);
    check_same(top_items<Scalar>(isa, m, &seen, users, k, threads), expected_top_items<Scalar>(m, &seen, users, k),
               users, k);
  }
}

TEST_CASE(top_items_rank_ties_by_item_and_leave_out_seen_items) {
  for (Isa isa : runnable_isas()) {
    check_small_case<float>(isa);
    check_small_case<double>(isa);
    for (bool biases : {false, true})
      for (int threads : {1, 2}) {
        check_random_case<float>(isa, biases, threads);
        check_random_case<double>(isa, biases, threads);
      }
  }
}

}  // namespace
}  // namespace latentmf::test
