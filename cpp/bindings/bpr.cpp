// Entry points of BPR (latentmf/bpr.hpp): the grid of the positives and its arrangement for an
// epoch, one sub-epoch of SGD, and the triples a sub-epoch applies.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "latentmf/bpr.hpp"
#include "latentmf/dispatch.hpp"
#include "latentmf/parallel.hpp"

namespace latentmf::binding {
namespace {

using namespace pybind11::literals;
using latentmf::BprGrid;

// The grid of the positives given by user as (offsets, items): user n's items are
// items[offsets[n]:offsets[n + 1]], sorted and distinct. The grid keeps a copy.
std::unique_ptr<BprGrid> make_grid(const py::array& offsets, const py::array& items, std::int64_t n_items, int blocks,
                                   std::uint64_t seed) {
  check_array<std::int64_t>(offsets, "offsets", 1);
  check_array<std::int32_t>(items, "items", 1);
  const std::int64_t n_users = offsets.shape(0) - 1;
  if (n_users < 1) throw py::value_error("offsets must have n_users + 1 >= 2 entries, got " +
                                         std::to_string(offsets.shape(0)));
  const auto* offset_data = static_cast<const std::int64_t*>(offsets.data());
  const auto* item_data = static_cast<const std::int32_t*>(items.data());
  const std::int64_t size = items.shape(0);
  py::gil_scoped_release release;
  return std::make_unique<BprGrid>(latentmf::checked_positives(offset_data, n_users, item_data, size, n_items),
                                   blocks, seed);
}

// The item biases (n_items, writeable, of the factors' dtype), or null for None.
template <class Scalar>
Scalar* item_bias_of(const py::object& item_bias, const Factors<Scalar>& f) {
  if (item_bias.is_none()) return nullptr;
  const auto array = py::cast<py::array>(item_bias);
  check_array<Scalar>(array, "item_bias", 1, true);
  if (array.shape(0) != f.n_items)
    throw py::value_error("item_bias has length " + std::to_string(array.shape(0)) + ", expected n_items=" +
                          std::to_string(f.n_items));
  return static_cast<Scalar*>(const_cast<void*>(array.data()));
}

// One sub-epoch in place; returns the sum of its triples' losses (see latentmf.bpr_sub_epoch).
double bpr_sub_epoch(const BprGrid& grid, const py::array& U, const py::array& V, const py::object& item_bias,
                     double learning_rate, double regularization, std::int64_t epoch, int sub_epoch, int threads) {
  return with_value(U, [&](auto scalar) {
    using Scalar = decltype(scalar);
    const auto f = factors_of<Scalar>(U, V, true);
    Scalar* bias = item_bias_of<Scalar>(item_bias, f);
    check_disjoint({{"U", U}, {"V", V}, {"item_bias", item_bias}});
    const latentmf::BprStep<Scalar> step{to_scalar<Scalar>(learning_rate, "learning_rate", true),
                                         to_scalar<Scalar>(regularization, "regularization", false)};
    latentmf::check_bpr_sub_epoch(grid, f, step, epoch, sub_epoch);
    const int t = latentmf::resolve_threads(threads);
    const auto& table = active_kernels<Scalar>();
    py::gil_scoped_release release;
    return table.bpr_sub_epoch(grid, f, bias, step, epoch, sub_epoch, t);
  }, "U");
}

// (users, positives, negatives) of one sub-epoch, in the order bpr_sub_epoch applies them.
py::tuple bpr_triples(const BprGrid& grid, std::int64_t epoch, int sub_epoch) {
  latentmf::Triples triples;
  {
    py::gil_scoped_release release;
    triples = latentmf::sub_epoch_triples(grid, epoch, sub_epoch);
  }
  return py::make_tuple(to_array(triples.users), to_array(triples.positives), to_array(triples.negatives));
}

void bucket(BprGrid& grid, std::int64_t epoch, int threads) {
  const int t = latentmf::resolve_threads(threads);
  py::gil_scoped_release release;
  grid.bucket(epoch, t);
}

py::array_t<std::int64_t> block_sizes(const BprGrid& grid) {
  const int B = grid.blocks();
  py::array_t<std::int64_t> sizes({B, B});
  auto s = sizes.mutable_unchecked<2>();
  for (int p = 0; p < B; ++p)
    for (int q = 0; q < B; ++q) s(p, q) = grid.epoch() < 0 ? 0 : grid.block_size(grid.block_id(p, q));
  return sizes;
}

}  // namespace

void bind_bpr(py::module_& m) {
  py::class_<BprGrid>(m, "BprGrid",
                      "The positives of BPR on the block grid, arranged into the blocks of one epoch at a time. "
                      "bucket() rearranges it: one grid serves one training at a time.")
      .def(py::init(&make_grid), "offsets"_a, "items"_a, "n_items"_a, "blocks"_a, "seed"_a)
      .def("bucket", &bucket, "epoch"_a, "threads"_a)
      .def_property_readonly("epoch", &BprGrid::epoch)
      .def_property_readonly("blocks", &BprGrid::blocks)
      .def_property_readonly("seed", &BprGrid::seed)
      .def_property_readonly("n_users", &BprGrid::n_users)
      .def_property_readonly("n_items", &BprGrid::n_items)
      .def_property_readonly("size", &BprGrid::size)
      .def("block_sizes", &block_sizes)
      .def("user_groups", [](const BprGrid& g) { return to_array(g.user_groups().group); })
      .def("item_groups", [](const BprGrid& g) { return to_array(g.item_groups().group); });
  m.def("bpr_sub_epoch", &bpr_sub_epoch, "grid"_a, "U"_a, "V"_a, "item_bias"_a, "learning_rate"_a,
        "regularization"_a, "epoch"_a, "sub_epoch"_a, "threads"_a);
  m.def("bpr_triples", &bpr_triples, "grid"_a, "epoch"_a, "sub_epoch"_a);
}

}  // namespace latentmf::binding
