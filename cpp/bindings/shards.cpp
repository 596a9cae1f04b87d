// Entry points of training on a cluster (latentmf.dask): grid shards, one per user group with local
// indices, and the blocks of one worker's sub-epoch on packed group states.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "latentmf/blocks.hpp"
#include "latentmf/dispatch.hpp"
#include "latentmf/shards.hpp"

namespace latentmf::binding {
namespace {

using namespace pybind11::literals;
using latentmf::BlockGrid;

// Training on a cluster (latentmf.dask): shards of the grid, one per user group, with local indices.
py::object shard_grid(const py::array& users, const py::array& items, const py::array& values, std::int64_t n_users,
                      std::int64_t n_items, int blocks, std::uint64_t seed, int user_group, const std::string& dtype,
                      int threads) {
  return with_scalar(dtype, [&](auto scalar) {
    using Scalar = decltype(scalar);
    return with_index(users, items, [&](auto index) {
      return with_value(values, [&](auto value) {
        const auto coo = coo_of<decltype(index), decltype(value)>(users, items, values, n_users, n_items);
        const int t = latentmf::resolve_threads(threads);
        BlockGrid<Scalar>* result;
        {
          py::gil_scoped_release release;
          result = new BlockGrid<Scalar>(BlockGrid<Scalar>::user_group_shard(coo, blocks, seed, user_group, t));
        }
        return py::cast(result, py::return_value_policy::take_ownership);
      });
    });
  });
}

// (group, member) of each of n users (side "users") or items ("items"): the groups of the grid
// with that many blocks and that seed, members numbered in increasing index order.
py::tuple grid_groups(std::int64_t n, int blocks, std::uint64_t seed, const std::string& side) {
  const bool users = is_users_side(side);
  if (n < 1) throw py::value_error("n must be >= 1, got " + std::to_string(n));
  latentmf::require(blocks >= 1 && blocks <= latentmf::max_blocks, "blocks must be in [1, ", latentmf::max_blocks,
                    "], got ", blocks);
  latentmf::check_index_range(n, n);
  const auto stream = users ? latentmf::user_stream : latentmf::item_stream;
  const latentmf::Grouping grouping(n, blocks, latentmf::stream_seed(seed, stream));
  return py::make_tuple(to_array(grouping.group), to_array(grouping.member));
}

// A group's state array (see latentmf::GroupState) for `rows` rows: 1-D, C-contiguous, of the
// right length and dtype.
template <class Scalar>
latentmf::GroupState<Scalar> group_state_of(const py::handle& object, const std::string& name, std::int64_t rows,
                                            std::int64_t n_factors, bool biases, bool adagrad, bool writeable) {
  const auto array = py::cast<py::array>(object);
  check_array<Scalar>(array, name.c_str(), 1, writeable);
  const auto expected = latentmf::group_state_size(rows, n_factors, biases, adagrad);
  if (array.shape(0) != expected)
    throw py::value_error(std::string(name) + " has length " + std::to_string(array.shape(0)) + ", expected " +
                          std::to_string(expected) + " (" + std::to_string(rows) + " rows)");
  auto state = latentmf::group_state(static_cast<Scalar*>(const_cast<void*>(array.data())), rows, n_factors, biases,
                                     adagrad);
  if (adagrad)
    for (std::int64_t k = 0; k < 2 * rows; ++k)
      if (!(std::isfinite(state.accumulators[k]) && state.accumulators[k] > 0))
        throw py::value_error(std::string(name) + ": accumulator " + std::to_string(k) + " = " +
                              std::to_string(state.accumulators[k]) + " must be a finite number > 0");
  return state;
}

// The blocks (shards[i].user_group, item_groups[i]) with their group states, checked.
template <class Scalar>
std::vector<latentmf::ShardBlock<Scalar>> shard_blocks(const py::list& shards, const py::list& user_states,
                                                       const py::list& item_states, const std::vector<int>& item_groups,
                                                       std::int64_t n_factors, double global_mean, bool biases,
                                                       bool adagrad, bool writeable) {
  const auto count = py::len(shards);
  if (py::len(user_states) != count || py::len(item_states) != count || item_groups.size() != count)
    throw py::value_error("shards, user_states, item_states and item_groups must have the same length");
  if (n_factors < 1) throw py::value_error("n_factors must be >= 1, got " + std::to_string(n_factors));
  const Scalar mean = biases ? to_scalar<Scalar>(global_mean, "global_mean", Sign::any) : Scalar(0);
  std::vector<latentmf::ShardBlock<Scalar>> blocks;
  for (std::size_t i = 0; i < count; ++i) {
    if (!py::isinstance<BlockGrid<Scalar>>(shards[i]))
      throw py::type_error("shards[" + std::to_string(i) + "] must be a grid shard of the states' dtype");
    const auto& shard = shards[i].cast<const BlockGrid<Scalar>&>();
    const int p = shard.user_group(), q = item_groups[i];
    if (p < 0) throw py::value_error("shards[" + std::to_string(i) + "] is a full grid, not a user-group shard");
    if (q < 0 || q >= shard.blocks())
      throw py::value_error("item_groups[" + std::to_string(i) + "] = " + std::to_string(q) + " is outside [0, blocks=" +
                            std::to_string(shard.blocks()) + ")");
    const std::int64_t n_users = shard.user_group_sizes()[p], n_items = shard.item_group_sizes()[q];
    const auto u = group_state_of<Scalar>(user_states[i], "user_states[" + std::to_string(i) + "]", n_users, n_factors, biases, adagrad, writeable);
    const auto v = group_state_of<Scalar>(item_states[i], "item_states[" + std::to_string(i) + "]", n_items, n_factors, biases, adagrad, writeable);
    latentmf::Biases<Scalar> b;
    if (biases) b = {mean, u.bias, v.bias};
    blocks.push_back({&shard, q, {u.factors, v.factors, n_users, n_items, n_factors}, b, {u.accumulators, v.accumulators}});
  }
  if (writeable) {
    std::vector<std::pair<const char*, py::object>> arrays;
    for (std::size_t i = 0; i < count; ++i) {
      arrays.emplace_back("user_states", user_states[i]);
      arrays.emplace_back("item_states", item_states[i]);
    }
    check_disjoint(arrays);
  }
  return blocks;
}

template <class Fn>
auto with_shard_scalar(const py::list& shards, Fn&& fn) {
  if (py::len(shards) == 0 || py::isinstance<BlockGrid<float>>(shards[0])) return fn(float{});
  if (py::isinstance<BlockGrid<double>>(shards[0])) return fn(double{});
  throw py::type_error("shards must hold grid shards (latentmf._core.shard_grid)");
}

// One sub-epoch's blocks on one worker (sgd_block on each, in parallel), updating the states in
// place; returns each block's sum of e^2.
std::vector<double> sgd_shards(const py::list& shards, const py::list& user_states, const py::list& item_states,
                               const std::vector<int>& item_groups, std::int64_t n_factors, double learning_rate,
                               double regularization, double global_mean, bool biases, bool adagrad, bool warm_up,
                               int threads) {
  return with_shard_scalar(shards, [&](auto scalar) {
    using Scalar = decltype(scalar);
    const auto blocks = shard_blocks<Scalar>(shards, user_states, item_states, item_groups, n_factors, global_mean,
                                             biases, adagrad, true);
    const latentmf::SgdStep<Scalar> step{to_scalar<Scalar>(learning_rate, "learning_rate", true),
                                         to_scalar<Scalar>(regularization, "regularization", false), warm_up};
    const int t = latentmf::resolve_threads(threads);
    std::vector<double> squared_errors(blocks.size(), 0.0);
    py::gil_scoped_release release;
    active_kernels<Scalar>().sgd_shard_blocks(blocks.data(), std::int64_t(blocks.size()), step,
                                              squared_errors.data(), t);
    return squared_errors;
  });
}

// Each block's sum of (r - r_hat)^2 (grid_objective's terms).
std::vector<double> shard_errors(const py::list& shards, const py::list& user_states, const py::list& item_states,
                                 const std::vector<int>& item_groups, std::int64_t n_factors, double global_mean,
                                 bool biases, bool adagrad, int threads) {
  return with_shard_scalar(shards, [&](auto scalar) {
    using Scalar = decltype(scalar);
    const auto blocks = shard_blocks<Scalar>(shards, user_states, item_states, item_groups, n_factors, global_mean,
                                             biases, adagrad, false);
    const int t = latentmf::resolve_threads(threads);
    std::vector<double> squared_errors(blocks.size(), 0.0);
    py::gil_scoped_release release;
    active_kernels<Scalar>().shard_block_errors(blocks.data(), std::int64_t(blocks.size()), squared_errors.data(), t);
    return squared_errors;
  });
}

// |x_n|^2 of each of the n_rows rows of a group state's factors.
py::array row_squared_norms(const py::array& state, std::int64_t n_rows, std::int64_t n_factors, int threads) {
  return with_value(state, [&](auto scalar) -> py::array {
    using Scalar = decltype(scalar);
    check_array<Scalar>(state, "state", 1);
    if (n_rows < 0 || n_factors < 1 || state.shape(0) < n_rows * n_factors)
      throw py::value_error("state has length " + std::to_string(state.shape(0)) + ", too short for " +
                            std::to_string(n_rows) + " rows of " + std::to_string(n_factors) + " factors");
    py::array_t<Scalar> out(n_rows);
    const auto* data = static_cast<const Scalar*>(state.data());
    auto* out_data = out.mutable_data();
    const int t = latentmf::resolve_threads(threads);
    py::gil_scoped_release release;
    active_kernels<Scalar>().row_squared_norms(data, n_rows, n_factors, out_data, t);
    return out;
  });
}

// sum_n counts[n] (norms[n] + bias[n]^2) in grid_objective's order.
double penalty_of_norms(const py::array& norms, const py::object& bias, const py::array& counts, int threads) {
  return with_value(norms, [&](auto scalar) {
    using Scalar = decltype(scalar);
    check_array<Scalar>(norms, "norms", 1);
    const py::ssize_t n = norms.shape(0);
    const auto* count_data = vector_data<std::int64_t>(counts, "counts", n);
    const Scalar* bias_data = bias.is_none() ? nullptr : vector_data<Scalar>(py::cast<py::array>(bias), "bias", n);
    const auto* norm_data = static_cast<const Scalar*>(norms.data());
    const int t = latentmf::resolve_threads(threads);
    py::gil_scoped_release release;
    return active_kernels<Scalar>().penalty_of_norms(norm_data, bias_data, count_data, n, t);
  });
}

}  // namespace

void bind_shards(py::module_& m) {
  m.def("shard_grid", &shard_grid, "users"_a, "items"_a, "values"_a, "n_users"_a, "n_items"_a, "blocks"_a, "seed"_a,
        "user_group"_a, "dtype"_a, "threads"_a);
  m.def(
      "sub_epoch_shifts",
      [](int blocks, std::uint64_t seed, std::int64_t epoch) {
        latentmf::require(blocks >= 1 && blocks <= latentmf::max_blocks, "blocks must be in [1, ",
                          latentmf::max_blocks, "], got ", blocks);
        return latentmf::sub_epoch_shifts(blocks, seed, epoch);
      },
      "blocks"_a, "seed"_a, "epoch"_a);
  m.def("grid_groups", &grid_groups, "n"_a, "blocks"_a, "seed"_a, "side"_a);
  m.def(
      "group_state_size",
      [](std::int64_t rows, std::int64_t n_factors, bool biases, bool adagrad) {
        latentmf::require(rows >= 0 && n_factors >= 1, "rows must be >= 0 and n_factors >= 1, got ", rows, " and ",
                          n_factors);
        return latentmf::group_state_size(rows, n_factors, biases, adagrad);
      },
      "rows"_a, "n_factors"_a, "biases"_a, "adagrad"_a);
  m.def("sgd_shards", &sgd_shards, "shards"_a, "user_states"_a, "item_states"_a, "item_groups"_a, "n_factors"_a,
        "learning_rate"_a, "regularization"_a, "global_mean"_a, "biases"_a, "adagrad"_a, "warm_up"_a, "threads"_a);
  m.def("shard_errors", &shard_errors, "shards"_a, "user_states"_a, "item_states"_a, "item_groups"_a, "n_factors"_a,
        "global_mean"_a, "biases"_a, "adagrad"_a, "threads"_a);
  m.def("row_squared_norms", &row_squared_norms, "state"_a, "n_rows"_a, "n_factors"_a, "threads"_a);
  m.def("penalty_of_norms", &penalty_of_norms, "norms"_a, "bias"_a, "counts"_a, "threads"_a);
}

}  // namespace latentmf::binding
