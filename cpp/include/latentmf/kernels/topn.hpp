// Top-k items per user by predicted rating, for many users at once. Scoring every item is a
// matrix product U_selected V^T; it runs as tiles of a few users by one panel of items, with V
// packed panel by panel so that each tile is a run of broadcast-multiply-adds into registers.
// Only the tiles whose best score beats a user's current k-th best are looked at one by one.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "../checks.hpp"
#include "../factors.hpp"
#include "../memory.hpp"
#include "../parallel.hpp"
#include "isa.hpp"
#include "vector.hpp"

namespace latentmf {
namespace LATENTMF_ISA {

// Items per panel: two SIMD vectors' worth, so that a tile row is two vector accumulators.
template <class Scalar>
constexpr int panel_items = 2 * LATENTMF_VECTOR_BYTES / int(sizeof(Scalar));
// Users per tile: enough accumulators to keep the multiply-add units busy.
constexpr int tile_users = 4;

// V (n_items x F) as panels: panel p holds items [p P, (p + 1) P) as an F x P row-major block,
// zero beyond the last item. Reading a panel is then sequential, one P-wide row per factor.
// `offsets` holds what is added to every score: the item bias (or 0), and -inf past the last
// item so that padding never ranks.
template <class Scalar>
struct Panels {
  std::vector<Scalar> factors;
  std::vector<Scalar> offsets;
};

template <class Scalar>
Panels<Scalar> pack_panels(const Factors<Scalar>& f, const Biases<Scalar>& b) {
  constexpr int P = panel_items<Scalar>;
  const std::int64_t F = f.n_factors, panels = (f.n_items + P - 1) / P;
  Panels<Scalar> packed{allocate<Scalar>(panels * F * P, "the packed item factors"),
                        std::vector<Scalar>(static_cast<std::size_t>(panels * P),
                                            -std::numeric_limits<Scalar>::infinity())};
  for (std::int64_t m = 0; m < f.n_items; ++m) {
    for (std::int64_t d = 0; d < F; ++d) packed.factors[((m / P) * F + d) * P + m % P] = f.V[m * F + d];
    packed.offsets[m] = b.enabled() ? b.item[m] : Scalar(0);
  }
  return packed;
}

// One user's best k so far, best first; ties keep the lower item first.
template <class Scalar>
struct Best {
  std::int64_t* items;
  Scalar* scores;
  std::int64_t k;
  std::int64_t size = 0;

  Scalar threshold() const { return size < k ? -std::numeric_limits<Scalar>::infinity() : scores[k - 1]; }
  // A score above the threshold enters. Items arrive in increasing order, so an equal score never
  // displaces an earlier item; NaN and -inf (excluded items, padding) never enter.
  void offer(std::int64_t item, Scalar score) {
    std::int64_t at = std::min(size, k - 1);
    while (at > 0 && scores[at - 1] < score) {
      scores[at] = scores[at - 1];
      items[at] = items[at - 1];
      --at;
    }
    scores[at] = score;
    items[at] = item;
    size = std::min(size + 1, k);
  }
};

// What recommend() reads: the factors, biases and, optionally, the items each user has seen
// (sorted increasing: seen_items[seen_offsets[n] .. seen_offsets[n + 1]) for user n).
template <class Scalar>
struct TopNInput {
  Factors<Scalar> f;
  Biases<Scalar> b;
  const std::int64_t* seen_offsets;
  const std::int32_t* seen_items;
  std::int64_t seen_size;
};

// The seen lists of the given users must be what the tiles assume: within [0, size) of the
// seen items, each user's items increasing and in range.
template <class Index>
void check_seen(const std::int64_t* offsets, const std::int32_t* items, std::int64_t size, const Index* users,
                std::int64_t count, std::int64_t n_items) {
  for (std::int64_t u = 0; u < count; ++u) {
    const std::int64_t n = users[u];
    require(0 <= offsets[n] && offsets[n] <= offsets[n + 1] && offsets[n + 1] <= size,
            "seen_offsets of user ", n, " are outside [0, ", size, "] or decrease");
    for (std::int64_t i = offsets[n]; i < offsets[n + 1]; ++i)
      require(items[i] >= 0 && items[i] < n_items && (i == offsets[n] || items[i] >= items[i - 1]),
              "seen_items of user ", n, " must be increasing item indices in [0, n_items=", n_items, ")");
  }
}

// Scores of tile_users users (rows of U at `rows`) on one panel plus its offsets, into tile[r][j];
// above[r] tells whether any score of row r exceeds thresholds[r].
template <class Scalar>
inline void score_tile(const Scalar* const* rows, const Scalar* panel, const Scalar* offsets, std::int64_t F,
                       const Scalar* thresholds, Scalar (&tile)[tile_users][panel_items<Scalar>],
                       bool (&above)[tile_users]) {
  constexpr int P = panel_items<Scalar>;
#ifdef LATENTMF_HAVE_VECTORS
  // Two vector accumulators per user, kept in registers for the whole panel.
  constexpr int W = vector_width<Scalar>;
  static_assert(P == 2 * W, "a panel is two vectors wide");
  Vector<Scalar> low[tile_users] = {}, high[tile_users] = {};
  for (std::int64_t d = 0; d < F; ++d) {
    const Vector<Scalar> column_low = load(panel + d * P), column_high = load(panel + d * P + W);
    for (int r = 0; r < tile_users; ++r) {
      const Scalar weight = rows[r][d];
      low[r] += weight * column_low;
      high[r] += weight * column_high;
    }
  }
  for (int r = 0; r < tile_users; ++r) {
    low[r] += load(offsets);
    high[r] += load(offsets + W);
    above[r] = any_above<Scalar>(low[r], high[r], thresholds[r]);
    store(tile[r], low[r]);
    store(tile[r] + W, high[r]);
  }
#else
  for (int r = 0; r < tile_users; ++r)
    for (int j = 0; j < P; ++j) tile[r][j] = offsets[j];
  for (std::int64_t d = 0; d < F; ++d)
    for (int r = 0; r < tile_users; ++r)
      for (int j = 0; j < P; ++j) tile[r][j] += rows[r][d] * panel[d * P + j];
  for (int r = 0; r < tile_users; ++r) {
    above[r] = false;
    for (int j = 0; j < P; ++j) above[r] = above[r] || tile[r][j] > thresholds[r];
  }
#endif
}

// The top k of `count` users (user indices at `users`), into items[i k ..] and scores[i k ..]
// (-1 and NaN where fewer than k items are left after excluding seen ones).
template <class Scalar, class Index>
void top_items_block(const TopNInput<Scalar>& in, const Panels<Scalar>& packed, const Index* users,
                     std::int64_t count, std::int64_t k, std::int64_t* items, Scalar* scores) {
  constexpr int P = panel_items<Scalar>;
  constexpr Scalar excluded = -std::numeric_limits<Scalar>::infinity();
  const Factors<Scalar>& f = in.f;
  const std::int64_t panels = (f.n_items + P - 1) / P;
  alignas(64) Scalar tile[tile_users][P];
  for (std::int64_t first = 0; first < count; first += tile_users) {
    const Scalar* rows[tile_users];
    Best<Scalar> best[tile_users] = {};
    std::int64_t seen_next[tile_users] = {}, seen_end[tile_users] = {};
    for (int r = 0; r < tile_users; ++r) {
      const std::int64_t i = std::min(first + r, count - 1);  // the last user fills a short tile
      const std::int64_t n = users[i];
      rows[r] = f.U + n * f.n_factors;
      best[r] = Best<Scalar>{items + i * k, scores + i * k, k};
      if (in.seen_items) {
        seen_next[r] = in.seen_offsets[n];
        seen_end[r] = in.seen_offsets[n + 1];
      }
    }
    const int live = int(std::min<std::int64_t>(tile_users, count - first));
    for (std::int64_t p = 0; p < panels; ++p) {
      Scalar thresholds[tile_users];
      bool above[tile_users];
      for (int r = 0; r < tile_users; ++r) thresholds[r] = best[r].threshold();
      score_tile(rows, packed.factors.data() + p * f.n_factors * P, packed.offsets.data() + p * P, f.n_factors,
                 thresholds, tile, above);
      const std::int64_t base = p * P, end = base + P;
      for (int r = 0; r < live; ++r) {
        // Excluding seen items only lowers scores: a row with nothing above the threshold is done.
        for (; seen_next[r] < seen_end[r] && in.seen_items[seen_next[r]] < end; ++seen_next[r])
          if (above[r]) tile[r][in.seen_items[seen_next[r]] - base] = excluded;
        if (!above[r]) continue;
        for (int j = 0; j < P; ++j)
          if (tile[r][j] > best[r].threshold()) best[r].offer(base + j, tile[r][j]);
      }
    }
    for (int r = 0; r < live; ++r) {
      const std::int64_t n = users[first + r];
      const Scalar offset = in.b.enabled() ? in.b.global_mean + in.b.user[n] : Scalar(0);
      for (std::int64_t j = 0; j < k; ++j) {
        if (j < best[r].size) {
          best[r].scores[j] += offset;
        } else {
          best[r].items[j] = -1;
          best[r].scores[j] = std::numeric_limits<Scalar>::quiet_NaN();
        }
      }
    }
  }
}

// For each of the `count` users, the k items with the highest predicted rating, best first
// (ties: lower item first), leaving out the user's seen items when given.
template <class Scalar, class Index>
void top_items(const TopNInput<Scalar>& in, const Index* users, std::int64_t count, std::int64_t k,
               std::int64_t* items, Scalar* scores, int threads) {
  require(k >= 1, "k must be >= 1, got ", k);
  for (std::int64_t i = 0; i < count; ++i)
    require(users[i] >= 0 && users[i] < in.f.n_users, "users[", i, "] = ", +users[i], " is outside [0, n_users=",
            in.f.n_users, ")");
  if (in.seen_items) check_seen(in.seen_offsets, in.seen_items, in.seen_size, users, count, in.f.n_items);
  const auto packed = pack_panels(in.f, in.b);
  const Chunks chunks = even_chunks(count, 64, 4096);
  parallel_for(chunks.count(), threads, [&](std::int64_t c) {
    const std::int64_t begin = chunks.begin(c);
    top_items_block(in, packed, users + begin, chunks.end(c) - begin, k, items + begin * k, scores + begin * k);
  });
}

}  // namespace LATENTMF_ISA
}  // namespace latentmf
