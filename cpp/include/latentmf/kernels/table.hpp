// The table of this level's kernels (one Kernels<Scalar> per float type), which the dispatcher
// hands out when this level is chosen.
#pragma once

#include <cstdint>

#include "../dispatch.hpp"
#include "bpr.hpp"
#include "gradients.hpp"
#include "gramian.hpp"
#include "isa.hpp"
#include "predict.hpp"
#include "rows.hpp"
#include "sgd.hpp"
#include "shards.hpp"
#include "topn.hpp"

namespace latentmf {
namespace LATENTMF_ISA {

// top_items() with its inputs as plain arguments, as the table holds it.
template <class Scalar>
void top_items_entry(const Factors<Scalar>& f, const Biases<Scalar>& b, const std::int64_t* seen_offsets,
                     const std::int32_t* seen_items, std::int64_t seen_size, const std::int64_t* users,
                     std::int64_t count, std::int64_t k, std::int64_t* items, Scalar* scores, int threads) {
  top_items(TopNInput<Scalar>{f, b, seen_offsets, seen_items, seen_size}, users, count, k, items, scores, threads);
}

template <class Scalar>
Kernels<Scalar> make_kernels() {
  Kernels<Scalar> k;
  k.sgd_sub_epoch = &sgd_sub_epoch<Scalar>;
  k.grid_objective = &grid_objective<Scalar>;
  k.sgd_ordered_int32 = &sgd_ordered<Scalar, std::int32_t>;
  k.sgd_ordered_int64 = &sgd_ordered<Scalar, std::int64_t>;
  k.objective = &objective<Scalar>;
  k.gradients = &gradients<Scalar>;
  k.predict_int32 = &predict<Scalar, std::int32_t>;
  k.predict_int64 = &predict<Scalar, std::int64_t>;
  k.top_items = &top_items_entry<Scalar>;
  k.sgd_shard_blocks = &sgd_shard_blocks<Scalar>;
  k.shard_block_errors = &shard_block_errors<Scalar>;
  k.row_squared_norms = &row_squared_norms<Scalar>;
  k.penalty_of_norms = &penalty_of_norms<Scalar>;
  k.solve_rows = &solve_rows<Scalar>;
  k.gramian = &gramian<Scalar>;
  k.implicit_objective = &implicit_objective<Scalar>;
  k.bpr_sub_epoch = &bpr_sub_epoch<Scalar>;
  return k;
}

}  // namespace LATENTMF_ISA
}  // namespace latentmf
