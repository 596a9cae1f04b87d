// The routines whose speed matters, compiled once per instruction-set level into one extension
// (cpp/dispatch/kernels.cpp), and the choice among them for the CPU at hand.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "blocks.hpp"
#include "bpr.hpp"
#include "compressed.hpp"
#include "factors.hpp"
#include "ratings.hpp"
#include "rows.hpp"
#include "shards.hpp"

namespace latentmf {

template <class Scalar>
struct Kernels {
  double (*sgd_sub_epoch)(const BlockGrid<Scalar>&, const Factors<Scalar>&, const Biases<Scalar>&,
                          const Accumulators<Scalar>&, const SgdStep<Scalar>&, std::int64_t epoch, int sub_epoch,
                          int threads);
  Objective (*grid_objective)(const BlockGrid<Scalar>&, const Factors<Scalar>&, const Biases<Scalar>&, int threads);
  double (*sgd_ordered_int32)(const Coo<std::int32_t, Scalar>&, const std::int64_t* order, const Factors<Scalar>&,
                              const Biases<Scalar>&, const Accumulators<Scalar>&, const SgdStep<Scalar>&);
  double (*sgd_ordered_int64)(const Coo<std::int64_t, Scalar>&, const std::int64_t* order, const Factors<Scalar>&,
                              const Biases<Scalar>&, const Accumulators<Scalar>&, const SgdStep<Scalar>&);
  Objective (*objective)(const RatingsIndex<Scalar>&, const Factors<Scalar>&, const Biases<Scalar>&, int threads);
  Objective (*gradients)(const RatingsIndex<Scalar>&, const Factors<Scalar>&, const Biases<Scalar>&,
                         Scalar regularization, const Gradients<Scalar>&, int threads);
  void (*predict_int32)(const Factors<Scalar>&, const Biases<Scalar>&, const std::int32_t* users,
                        const std::int32_t* items, std::int64_t size, Scalar* out, int threads);
  void (*predict_int64)(const Factors<Scalar>&, const Biases<Scalar>&, const std::int64_t* users,
                        const std::int64_t* items, std::int64_t size, Scalar* out, int threads);

  void (*top_items)(const Factors<Scalar>&, const Biases<Scalar>&, const std::int64_t* seen_offsets,
                    const std::int32_t* seen_items, std::int64_t seen_size, const std::int64_t* users,
                    std::int64_t count, std::int64_t k, std::int64_t* items, Scalar* scores, int threads);

  // Training on a cluster (shards.hpp, kernels/shards.hpp).
  void (*sgd_shard_blocks)(const ShardBlock<Scalar>* blocks, std::int64_t count, const SgdStep<Scalar>&,
                           double* squared_errors, int threads);
  void (*shard_block_errors)(const ShardBlock<Scalar>* blocks, std::int64_t count, double* squared_errors,
                             int threads);
  void (*row_squared_norms)(const Scalar* X, std::int64_t n_rows, std::int64_t n_factors, Scalar* out, int threads);
  double (*penalty_of_norms)(const Scalar* norms, const Scalar* bias, const std::int64_t* counts,
                             std::int64_t n_rows, int threads);

  // The row solver (rows.hpp, kernels/rows.hpp): solves the rows of one side, returning how many
  // were not positive definite; the Gramian [Y C]^T [Y C] in double; the iALS objective's parts.
  std::int64_t (*solve_rows)(const RowSolve<Scalar>&, int threads);
  void (*gramian)(const Scalar* Y, const Scalar* C, std::int64_t n_rows, std::int64_t n_factors,
                  std::int64_t n_columns, double* out, int threads);
  ImplicitObjective (*implicit_objective)(const RowEntries<Scalar>& by_user, const RowEntries<Scalar>& by_item,
                                          const Entries<Scalar>&, const Factors<Scalar>&, const Biases<Scalar>&,
                                          const RowRegularization<Scalar>& users,
                                          const RowRegularization<Scalar>& items, int threads);

  // One BPR sub-epoch (bpr.hpp, kernels/bpr.hpp), returning the sum of its triples' losses.
  double (*bpr_sub_epoch)(const BprGrid&, const Factors<Scalar>&, Scalar* item_bias, const BprStep<Scalar>&,
                          std::int64_t epoch, int sub_epoch, int threads);

  // The member for an index type, for callers that are templates on it.
  auto sgd_ordered(std::int32_t) const { return sgd_ordered_int32; }
  auto sgd_ordered(std::int64_t) const { return sgd_ordered_int64; }
  auto predict(std::int32_t) const { return predict_int32; }
  auto predict(std::int64_t) const { return predict_int64; }
};

// Instruction-set levels, lowest first: "generic" is what the compiler targets by default
// (x86-64 baseline, NEON on arm64); "avx2" adds AVX2 and FMA; "avx512" adds AVX-512 F/VL/BW/DQ.
enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
// The levels compiled into this build, lowest first.
std::vector<Isa> compiled_isas();
// Whether this CPU (and operating system) can run code of that level.
bool cpu_supports(Isa isa);
// The highest level that is both compiled in and supported here.
Isa best_isa();
// The level called `name`; throws InvalidArgument naming the levels that exist here.
Isa isa_from_name(const std::string& name);

const Kernels<float>& kernels_float(Isa isa);
const Kernels<double>& kernels_double(Isa isa);

template <class Scalar>
const Kernels<Scalar>& kernels(Isa isa) {
  if constexpr (std::is_same_v<Scalar, float>)
    return kernels_float(isa);
  else
    return kernels_double(isa);
}

// The level whose kernels the callers of active_kernels() run: best_isa() until a level is
// selected. Selecting is safe while other threads run kernels (the level is an atomic that each
// call reads once, so a call runs one level from start to end).
Isa active_isa();
// Runs `isa` from the next active_kernels() call on; throws InvalidArgument for a level this
// build lacks or this CPU cannot run.
void select_active_isa(Isa isa);

template <class Scalar>
const Kernels<Scalar>& active_kernels() {
  return kernels<Scalar>(active_isa());
}

}  // namespace latentmf
