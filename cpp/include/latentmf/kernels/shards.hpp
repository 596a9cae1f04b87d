// The kernels of training on a cluster (see ../shards.hpp). They call the very functions local
// training calls (sgd_block, block_squared_errors, squared_norm) with the same template
// arguments, on the same ratings in the same order, so a worker's blocks get the same bits as
// the blocks of a local fit.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "../parallel.hpp"
#include "../shards.hpp"
#include "sgd.hpp"
#include "vector.hpp"

namespace latentmf {
namespace LATENTMF_ISA {

// The blocks[0 .. count) of one sub-epoch on one worker: pairwise disjoint rows, so they run in
// parallel, largest first. squared_errors[i] gets block i's sum of e^2 (see sgd_block). All
// blocks must share n_factors and whether biases and accumulators are given.
template <class Scalar>
void sgd_shard_blocks(const ShardBlock<Scalar>* blocks, std::int64_t count, const SgdStep<Scalar>& step,
                      double* squared_errors, int threads) {
  if (count == 0) return;
  std::vector<std::int64_t> by_size(static_cast<std::size_t>(count));
  std::iota(by_size.begin(), by_size.end(), 0);
  auto size = [&](std::int64_t i) {
    return blocks[i].shard->block_size(blocks[i].shard->user_group(), blocks[i].item_group);
  };
  std::stable_sort(by_size.begin(), by_size.end(), [&](std::int64_t x, std::int64_t y) { return size(x) > size(y); });
  with_variant(blocks[0].f.n_factors, blocks[0].b, blocks[0].a, step.warm_up,
               [&](auto fixed, auto with_biases, auto adaptive, auto warm_up) {
    constexpr int FixedF = decltype(fixed)::value;
    constexpr bool WithBiases = decltype(with_biases)::value, Adaptive = decltype(adaptive)::value;
    constexpr bool WarmUp = decltype(warm_up)::value;
    parallel_for(count, threads, [&](std::int64_t j) {
      const ShardBlock<Scalar>& x = blocks[by_size[j]];
      squared_errors[by_size[j]] =
          sgd_block<FixedF, WithBiases, Adaptive, WarmUp>(*x.shard, x.block(), x.f, x.b, x.a, step);
    });
  });
}

// squared_errors[i]: the sum over block i's ratings of (r - r_hat)^2, as grid_objective adds it.
template <class Scalar>
void shard_block_errors(const ShardBlock<Scalar>* blocks, std::int64_t count, double* squared_errors, int threads) {
  if (count == 0) return;
  with_width(blocks[0].f.n_factors, [&](auto fixed) {
    constexpr int FixedF = decltype(fixed)::value;
    parallel_for(count, threads, [&](std::int64_t i) {
      const ShardBlock<Scalar>& x = blocks[i];
      squared_errors[i] = block_squared_errors<FixedF>(*x.shard, x.block(), x.f, x.b);
    });
  });
}

// out[n] = |x_n|^2 for the n_rows rows of X (n_factors wide), as grid_objective's penalty takes it.
template <class Scalar>
void row_squared_norms(const Scalar* X, std::int64_t n_rows, std::int64_t n_factors, Scalar* out, int threads) {
  with_width(n_factors, [&](auto fixed) {
    constexpr int FixedF = decltype(fixed)::value;
    const std::int64_t F = width<FixedF>(n_factors);
    const Chunks chunks = even_chunks(n_rows);
    parallel_for(chunks.count(), threads, [&](std::int64_t c) {
      for (std::int64_t n = chunks.begin(c); n < chunks.end(c); ++n) out[n] = squared_norm<FixedF>(X + n * F, F);
    });
  });
}

// grid_objective's penalty of one side, sum_n count_n (|x_n|^2 + bias_n^2), from the squared
// norms of the rows (row_squared_norms) in index order: the same chunks and the same
// arithmetic, so the same bits.
template <class Scalar>
double penalty_of_norms(const Scalar* norms, const Scalar* bias, const std::int64_t* counts, std::int64_t n_rows,
                        int threads) {
  return deterministic_sum(even_chunks(n_rows), threads, [&](std::int64_t begin, std::int64_t end) {
    double sum = 0;
    for (std::int64_t n = begin; n < end; ++n) {
      const double c = bias ? double(bias[n]) : 0.0;
      sum += double(counts[n]) * (double(norms[n]) + c * c);
    }
    return sum;
  });
}

}  // namespace LATENTMF_ISA
}  // namespace latentmf
