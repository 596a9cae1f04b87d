// A small portable random generator: the block grid and the sub-epoch order must be the same
// on every platform and standard library, which std::shuffle and the std distributions are not.
#pragma once

#include <cstdint>
#include <numeric>
#include <vector>

namespace latentmf {

// SplitMix64 (Steele, Lea and Flood 2014): 64-bit state, passes BigCrush, trivially seedable.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, bound) without modulo bias (rejection on the 64-bit range).
  std::uint64_t below(std::uint64_t bound) {
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    std::uint64_t x;
    do x = next();
    while (x >= limit);
    return x % bound;
  }

 private:
  std::uint64_t state_;
};

// Independent streams from one user seed: the grid's user and item permutations and each
// epoch's sub-epoch order draw from distinct streams.
inline std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stream) {
  SplitMix64 mix(seed ^ (0xD1B54A32D192ED03ULL * (stream + 1)));
  return mix.next();
}

// A uniformly random permutation of [0, n) (Fisher-Yates).
template <class Int>
std::vector<Int> random_permutation(std::int64_t n, std::uint64_t seed) {
  std::vector<Int> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), Int(0));
  SplitMix64 rng(seed);
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(i + 1)));
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

}  // namespace latentmf
