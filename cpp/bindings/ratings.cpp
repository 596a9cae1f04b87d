// Entry points that check ratings and build the native orderings of them (RatingsIndex, BlockGrid).
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
#include "latentmf/checks.hpp"
#include "latentmf/compressed.hpp"

namespace latentmf::binding {
namespace {

using namespace pybind11::literals;
using latentmf::BlockGrid;
using latentmf::RatingsIndex;

void check_ratings(const py::array& users, const py::array& items, const py::array& values,
                   std::int64_t n_users, std::int64_t n_items, int threads) {
  with_coo(users, items, values, n_users, n_items, [&](const auto& coo) {
    const int t = latentmf::resolve_threads(threads);
    py::gil_scoped_release release;
    latentmf::check_ratings(coo, t);
  });
}

// A native Structure<Scalar> (Scalar from `dtype`) built from the ratings with the GIL released,
// handed to Python, which owns it from then on.
template <template <class> class Structure, class... Extra>
py::object build_from_ratings(const py::array& users, const py::array& items, const py::array& values,
                              std::int64_t n_users, std::int64_t n_items, const std::string& dtype, int threads,
                              Extra... extra) {
  return with_scalar(dtype, [&](auto scalar) {
    using Scalar = decltype(scalar);
    return with_coo(users, items, values, n_users, n_items, [&](const auto& coo) {
      const int t = latentmf::resolve_threads(threads);
      std::unique_ptr<Structure<Scalar>> result;
      {
        py::gil_scoped_release release;
        result = std::make_unique<Structure<Scalar>>(coo, extra..., t);
      }
      return py::cast(std::move(result));
    });
  });
}

py::object index_ratings(const py::array& users, const py::array& items, const py::array& values,
                         std::int64_t n_users, std::int64_t n_items, const std::string& dtype, int threads) {
  return build_from_ratings<RatingsIndex>(users, items, values, n_users, n_items, dtype, threads);
}

py::object block_grid(const py::array& users, const py::array& items, const py::array& values,
                      std::int64_t n_users, std::int64_t n_items, int blocks, std::uint64_t seed,
                      const std::string& dtype, int threads) {
  return build_from_ratings<BlockGrid>(users, items, values, n_users, n_items, dtype, threads, blocks, seed);
}

py::array_t<std::int64_t> visiting_order(const py::array& users, const py::array& items, const py::array& values,
                                         std::int64_t n_users, std::int64_t n_items, int blocks,
                                         std::uint64_t seed, std::int64_t epoch, int threads) {
  return with_coo(users, items, values, n_users, n_items, [&](const auto& coo) {
    const int t = latentmf::resolve_threads(threads);
    std::vector<std::int64_t> order;
    {
      py::gil_scoped_release release;
      order = latentmf::grid_visiting_order(coo, blocks, seed, epoch, t);
    }
    return to_array(order);
  });
}


// (offsets, cols): the cols of row r are cols[offsets[r]:offsets[r + 1]], sorted increasing.
py::tuple group_by_row(const py::array& rows, const py::array& cols, std::int64_t n_rows, std::int64_t n_cols) {
  return with_index(rows, cols, [&](auto index) -> py::tuple {
    using Index = decltype(index);
    check_array<Index>(rows, "rows", 1);
    const py::ssize_t size = rows.shape(0);
    const Index* r = vector_data<Index>(rows, "rows", size);
    const Index* c = vector_data<Index>(cols, "cols", size);
    latentmf::require(n_rows >= 0 && n_cols >= 0, "n_rows and n_cols must be >= 0, got ", n_rows, " and ", n_cols);
    latentmf::check_index_range(n_rows, n_cols);
    latentmf::CompressedRatings<float> grouped;
    {
      py::gil_scoped_release release;
      latentmf::check_pairs(r, c, size, n_rows, n_cols);
      grouped = latentmf::compress<float, Index, float>(r, c, nullptr, size, n_rows);
      latentmf::sort_rows(grouped, latentmf::available_threads());
    }
    return py::make_tuple(to_array(grouped.offsets), to_array(grouped.cols));
  });
}

template <class Scalar>
void bind_ratings_index(py::module_& m, const char* name) {
  using I = RatingsIndex<Scalar>;
  py::class_<I>(m, name, "Ratings grouped by user and by item, for loss and gradients.")
      .def_property_readonly("size", [](const I& i) { return i.size; })
      .def_property_readonly("n_users", [](const I& i) { return i.n_users; })
      .def_property_readonly("n_items", [](const I& i) { return i.n_items; })
      .def("user_counts", [](const I& i) { return to_array(i.by_user.counts()); })
      .def("item_counts", [](const I& i) { return to_array(i.by_item.counts()); });
}

template <class Scalar>
void bind_block_grid(py::module_& m, const char* name) {
  using G = BlockGrid<Scalar>;
  py::class_<G>(m, name, "The stratified block grid of one set of ratings (see DESIGN.md).")
      .def_property_readonly("blocks", &G::blocks)
      .def_property_readonly("seed", &G::seed)
      .def_property_readonly("n_users", &G::n_users)
      .def_property_readonly("n_items", &G::n_items)
      .def_property_readonly("size", &G::size)
      .def("block_sizes", [](const G& g) {
        py::array_t<std::int64_t> sizes({g.blocks(), g.blocks()});
        auto s = sizes.mutable_unchecked<2>();
        for (int p = 0; p < g.blocks(); ++p)
          for (int q = 0; q < g.blocks(); ++q) s(p, q) = g.block_size(p, q);
        return sizes;
      })
      .def_property_readonly("user_group", &G::user_group)
      .def("user_counts", [](const G& g) { return to_array(g.user_counts()); })
      .def("item_counts", [](const G& g) { return to_array(g.item_counts()); })
      .def("user_groups", [](const G& g) { return to_array(g.user_groups()); })
      .def("item_groups", [](const G& g) { return to_array(g.item_groups()); });
}

}  // namespace

void bind_ratings(py::module_& m) {
  bind_ratings_index<float>(m, "RatingsIndexFloat32");
  bind_ratings_index<double>(m, "RatingsIndexFloat64");
  bind_block_grid<float>(m, "BlockGridFloat32");
  bind_block_grid<double>(m, "BlockGridFloat64");
  m.def("check_ratings", &check_ratings, "users"_a, "items"_a, "values"_a, "n_users"_a, "n_items"_a, "threads"_a);
  m.def("index_ratings", &index_ratings, "users"_a, "items"_a, "values"_a, "n_users"_a, "n_items"_a, "dtype"_a,
        "threads"_a);
  m.def("block_grid", &block_grid, "users"_a, "items"_a, "values"_a, "n_users"_a, "n_items"_a, "blocks"_a,
        "seed"_a, "dtype"_a, "threads"_a);
  m.def("visiting_order", &visiting_order, "users"_a, "items"_a, "values"_a, "n_users"_a, "n_items"_a,
        "blocks"_a, "seed"_a, "epoch"_a, "threads"_a);
  m.def("group_by_row", &group_by_row, "rows"_a, "cols"_a, "n_rows"_a, "n_cols"_a);
}

}  // namespace latentmf::binding
