// Entry points that answer from fitted factors: predictions and top-k items.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "latentmf/dispatch.hpp"

namespace latentmf::binding {
namespace {

using namespace pybind11::literals;

py::array predict(const py::array& U, const py::array& V, const py::array& users, const py::array& items,
                  double global_mean, const py::object& user_bias, const py::object& item_bias, int threads) {
  return with_value(U, [&](auto scalar) -> py::array {
    using Scalar = decltype(scalar);
    const auto f = factors_of<Scalar>(U, V, false);
    const auto b = biases_of<Scalar>(user_bias, item_bias, global_mean, f, false);
    const int t = latentmf::resolve_threads(threads);
    return with_index(users, items, [&](auto index) -> py::array {
      using Index = decltype(index);
      check_array<Index>(users, "users", 1);
      const py::ssize_t size = users.shape(0);
      const Index* u = vector_data<Index>(users, "users", size);
      const Index* i = vector_data<Index>(items, "items", size);
      auto out = new_array<Scalar>({size}, "the predictions");
      Scalar* out_data = out.mutable_data();
      py::gil_scoped_release release;
      active_kernels<Scalar>().predict(Index{})(f, b, u, i, size, out_data, t);
      return out;
    });
  }, "U");
}

// (items, scores), each users.size x k: every user's k best items by predicted rating, best first,
// leaving out the seen items (seen_offsets / seen_items as group_by_row gives them) when given.
py::tuple top_items(const py::array& U, const py::array& V, const py::array& users, std::int64_t k,
                    double global_mean, const py::object& user_bias, const py::object& item_bias,
                    const py::object& seen_offsets, const py::object& seen_items, int threads) {
  return with_value(U, [&](auto scalar) -> py::tuple {
    using Scalar = decltype(scalar);
    const auto f = factors_of<Scalar>(U, V, false);
    const auto b = biases_of<Scalar>(user_bias, item_bias, global_mean, f, false);
    check_array<std::int64_t>(users, "users", 1);
    if (k < 1) throw py::value_error("k must be >= 1, got " + std::to_string(k));
    const std::int64_t* offsets = nullptr;
    const std::int32_t* seen = nullptr;
    std::int64_t seen_size = 0;
    if (!seen_offsets.is_none()) {
      const auto o = py::cast<py::array>(seen_offsets), s = py::cast<py::array>(seen_items);
      offsets = vector_data<std::int64_t>(o, "seen_offsets", f.n_users + 1);
      check_array<std::int32_t>(s, "seen_items", 1);
      seen = static_cast<const std::int32_t*>(s.data());
      seen_size = s.shape(0);
    }
    const std::int64_t count = users.shape(0);
    // Both results at once: together they must fit.
    latentmf::check_available(double(count) * double(k) * double(sizeof(std::int64_t) + sizeof(Scalar)),
                              "the top-k items and scores");
    auto items = new_array<std::int64_t>({count, k}, "the top-k items");
    auto scores = new_array<Scalar>({count, k}, "the top-k scores");
    const auto* user_data = static_cast<const std::int64_t*>(users.data());
    auto* item_data = items.mutable_data();
    auto* score_data = scores.mutable_data();
    const int t = latentmf::resolve_threads(threads);
    {
      py::gil_scoped_release release;
      active_kernels<Scalar>().top_items(f, b, offsets, seen, seen_size, user_data, count, k, item_data, score_data, t);
    }
    return py::make_tuple(items, scores);
  }, "U");
}


}  // namespace

void bind_predict(py::module_& m) {
  m.def("predict", &predict, "U"_a, "V"_a, "users"_a, "items"_a, "global_mean"_a, "user_bias"_a, "item_bias"_a,
        "threads"_a);
  m.def("top_items", &top_items, "U"_a, "V"_a, "users"_a, "k"_a, "global_mean"_a, "user_bias"_a, "item_bias"_a,
        "seen_offsets"_a, "seen_items"_a, "threads"_a);
}

}  // namespace latentmf::binding
