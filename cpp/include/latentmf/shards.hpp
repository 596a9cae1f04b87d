// Training on a cluster (python/latentmf/dask.py): each worker holds some user groups of the
// block grid (as BlockGrid::user_group_shard, with local indices) and the rows of U of those
// groups; the rows of V move between workers group by group. These are the views one native call
// on a worker takes.
#pragma once

#include <cstdint>

#include "blocks.hpp"
#include "factors.hpp"

namespace latentmf {

// Block (p, q) of a shard of user group p, with the rows of that user group (f.U, b.user,
// a.user: |group p| rows) and of item group q (f.V, b.item, a.item: |group q| rows) in member
// order, so that the shard's local indices address them. f.n_users and f.n_items are those row
// counts.
template <class Scalar>
struct ShardBlock {
  const BlockGrid<Scalar>* shard;
  int item_group;
  Factors<Scalar> f;
  Biases<Scalar> b;
  Accumulators<Scalar> a;

  std::int64_t block() const { return shard->block_id(shard->user_group(), item_group); }
};

// The rows of user group p (or item group q) as one array, so that a group's whole state moves
// between workers as one buffer: n rows of F factors, then n biases (with biases), then n x 2
// AdaGrad accumulators (with AdaGrad).
template <class Scalar>
struct GroupState {
  Scalar* factors;
  Scalar* bias;
  Scalar* accumulators;
};

inline std::int64_t group_state_size(std::int64_t rows, std::int64_t n_factors, bool biases, bool adagrad) {
  return rows * (n_factors + (biases ? 1 : 0) + (adagrad ? 2 : 0));
}

template <class Scalar>
GroupState<Scalar> group_state(Scalar* data, std::int64_t rows, std::int64_t n_factors, bool biases, bool adagrad) {
  Scalar* bias = data + rows * n_factors;
  Scalar* accumulators = bias + (biases ? rows : 0);
  return {data, biases ? bias : nullptr, adagrad ? accumulators : nullptr};
}

}  // namespace latentmf
