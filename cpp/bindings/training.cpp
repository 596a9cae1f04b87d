// Entry points of training and of the loss: the objective, batch gradients, SGD over the grid or in a given order.
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
#include "latentmf/dense.hpp"
#include "latentmf/dispatch.hpp"

namespace latentmf::binding {
namespace {

using namespace pybind11::literals;
using latentmf::BlockGrid;
using latentmf::RatingsIndex;

template <class Scalar>
latentmf::Objective objective_of(const RatingsIndex<Scalar>& data, const Factors<Scalar>& f, const Biases<Scalar>& b,
                                 int threads) {
  return active_kernels<Scalar>().objective(data, f, b, threads);
}

template <class Scalar>
latentmf::Objective objective_of(const BlockGrid<Scalar>& data, const Factors<Scalar>& f, const Biases<Scalar>& b,
                                 int threads) {
  return active_kernels<Scalar>().grid_objective(data, f, b, threads);
}

// (squared_errors, penalty) of the ratings `data` holds (a RatingsIndex or a BlockGrid):
// L = (squared_errors + regularization * penalty) / 2.
template <class Scalar, class Data>
py::tuple objective(const Data& data, const py::array& U, const py::array& V, double global_mean,
                    const py::object& user_bias, const py::object& item_bias, int threads) {
  const auto f = factors_of<Scalar>(U, V, false);
  const auto b = biases_of<Scalar>(user_bias, item_bias, global_mean, f, false);
  const int t = latentmf::resolve_threads(threads);
  latentmf::Objective o;
  {
    py::gil_scoped_release release;
    o = objective_of(data, f, b, t);
  }
  return py::make_tuple(o.squared_errors, o.penalty);
}

template <class Scalar>
py::tuple gradients(const RatingsIndex<Scalar>& index, const py::array& U, const py::array& V,
                    double regularization, double global_mean, const py::object& user_bias,
                    const py::object& item_bias, int threads) {
  const auto f = factors_of<Scalar>(U, V, false);
  const auto b = biases_of<Scalar>(user_bias, item_bias, global_mean, f, false);
  const int t = latentmf::resolve_threads(threads);
  const Scalar lambda = to_scalar<Scalar>(regularization, "regularization", false);
  auto dU = new_matrix<Scalar>(f.n_users, f.n_factors, "the gradient dU"),
       dV = new_matrix<Scalar>(f.n_items, f.n_factors, "the gradient dV");
  py::array_t<Scalar> d_user_bias(b.enabled() ? f.n_users : 0), d_item_bias(b.enabled() ? f.n_items : 0);
  latentmf::Gradients<Scalar> out{dU.mutable_data(), dV.mutable_data(),
                                  b.enabled() ? d_user_bias.mutable_data() : nullptr,
                                  b.enabled() ? d_item_bias.mutable_data() : nullptr};
  {
    py::gil_scoped_release release;
    active_kernels<Scalar>().gradients(index, f, b, lambda, out, t);
  }
  if (b.enabled()) return py::make_tuple(dU, dV, d_user_bias, d_item_bias);
  return py::make_tuple(dU, dV);
}

py::tuple gradients_dense(const py::array& R, const py::array& U, const py::array& V, const py::object& mask,
                          double regularization, int threads) {
  return with_value(R, [&](auto scalar) -> py::tuple {
    using Scalar = decltype(scalar);
    check_array<Scalar>(R, "R", 2);
    const auto f = factors_of<Scalar>(U, V, false);
    if (R.shape(0) != f.n_users || R.shape(1) != f.n_items)
      throw py::value_error("R has shape (" + std::to_string(R.shape(0)) + ", " + std::to_string(R.shape(1)) +
                            ") but U and V give (" + std::to_string(f.n_users) + ", " +
                            std::to_string(f.n_items) + ")");
    const std::uint8_t* mask_data = nullptr;
    if (!mask.is_none()) {
      const auto m = py::cast<py::array>(mask);
      if (!has_dtype<bool>(m) && !has_dtype<std::uint8_t>(m))
        throw py::type_error("mask must have dtype bool or uint8, got " + dtype_name(m));
      if (m.ndim() != 2 || m.shape(0) != R.shape(0) || m.shape(1) != R.shape(1))
        throw py::value_error("mask must have the shape of R");
      if (!(m.flags() & py::array::c_style)) throw py::type_error("mask must be C-contiguous");
      mask_data = static_cast<const std::uint8_t*>(m.data());
    }
    const latentmf::DenseRatings<Scalar> dense{static_cast<const Scalar*>(R.data()), mask_data, f.n_users,
                                               f.n_items};
    const int t = latentmf::resolve_threads(threads);
    const Scalar lambda = to_scalar<Scalar>(regularization, "regularization", false);
    auto dU = new_matrix<Scalar>(f.n_users, f.n_factors, "the gradient dU"),
         dV = new_matrix<Scalar>(f.n_items, f.n_factors, "the gradient dV");
    {
      py::gil_scoped_release release;
      latentmf::gradients_dense(dense, f, lambda, dU.mutable_data(),
                                dV.mutable_data(), t);
    }
    return py::make_tuple(dU, dV);
  }, "R");
}

// What one SGD call updates in place, checked before anything changes: U and V, the biases and
// the AdaGrad accumulators (each optional pair both given or neither), none sharing memory, and
// the step in the factors' precision.
template <class Scalar>
struct SgdArguments {
  Factors<Scalar> factors;
  Biases<Scalar> biases;
  latentmf::Accumulators<Scalar> accumulators;
  latentmf::SgdStep<Scalar> step;
};

template <class Scalar>
SgdArguments<Scalar> sgd_arguments(const py::array& U, const py::array& V, double learning_rate,
                                   double regularization, double global_mean, const py::object& user_bias,
                                   const py::object& item_bias, const py::object& user_accumulators,
                                   const py::object& item_accumulators, bool warm_up) {
  const auto f = factors_of<Scalar>(U, V, true);
  const auto b = biases_of<Scalar>(user_bias, item_bias, global_mean, f, true);
  const auto a = accumulators_of<Scalar>(user_accumulators, item_accumulators, f);
  check_disjoint({{"U", U}, {"V", V}, {"user_bias", user_bias}, {"item_bias", item_bias},
                  {"user_accumulators", user_accumulators}, {"item_accumulators", item_accumulators}});
  return {f, b, a,
          {to_scalar<Scalar>(learning_rate, "learning_rate", true),
           to_scalar<Scalar>(regularization, "regularization", false), warm_up}};
}

// Sub-epoch `sub_epoch` of `epoch`, or the whole epoch when sub_epoch is None.
template <class Scalar>
double sgd_grid(const BlockGrid<Scalar>& grid, const py::array& U, const py::array& V, double learning_rate,
                double regularization, std::int64_t epoch, const py::object& sub_epoch, double global_mean,
                const py::object& user_bias, const py::object& item_bias, const py::object& user_accumulators,
                const py::object& item_accumulators, bool warm_up, int threads) {
  const auto args = sgd_arguments<Scalar>(U, V, learning_rate, regularization, global_mean, user_bias, item_bias,
                                          user_accumulators, item_accumulators, warm_up);
  const int t = latentmf::resolve_threads(threads);
  const bool whole_epoch = sub_epoch.is_none();
  const int first = whole_epoch ? 0 : sub_epoch.cast<int>();
  const int last = whole_epoch ? grid.blocks() : first + 1;
  for (int s = first; s < last; ++s) latentmf::check_grid_step(grid, args.factors, args.step, epoch, s);
  const auto& table = active_kernels<Scalar>();
  py::gil_scoped_release release;
  double squared_errors = 0;
  for (int s = first; s < last; ++s)
    squared_errors += table.sgd_sub_epoch(grid, args.factors, args.biases, args.accumulators, args.step, epoch, s, t);
  return squared_errors;
}

double sgd_ordered(const py::array& users, const py::array& items, const py::array& values,
                   const py::array& order, const py::array& U, const py::array& V, double learning_rate,
                   double regularization, double global_mean, const py::object& user_bias,
                   const py::object& item_bias, const py::object& user_accumulators,
                   const py::object& item_accumulators, bool warm_up) {
  return with_value(values, [&](auto scalar) {
    using Scalar = decltype(scalar);
    const auto args = sgd_arguments<Scalar>(U, V, learning_rate, regularization, global_mean, user_bias, item_bias,
                                            user_accumulators, item_accumulators, warm_up);
    return with_index(users, items, [&](auto index) {
      const auto& f = args.factors;
      const auto coo = coo_of<decltype(index), Scalar>(users, items, values, f.n_users, f.n_items);
      const auto* order_data = vector_data<std::int64_t>(order, "order", coo.size);
      py::gil_scoped_release release;
      return active_kernels<Scalar>().sgd_ordered(decltype(index){})(coo, order_data, f, args.biases, args.accumulators,
                                                              args.step);
    });
  });
}

template <class Scalar>
void bind_scalar(py::module_& m) {
  m.def("objective", &objective<Scalar, RatingsIndex<Scalar>>, "index"_a, "U"_a, "V"_a, "global_mean"_a,
        "user_bias"_a, "item_bias"_a, "threads"_a);
  m.def("gradients", &gradients<Scalar>, "index"_a, "U"_a, "V"_a, "regularization"_a, "global_mean"_a,
        "user_bias"_a, "item_bias"_a, "threads"_a);
  m.def("grid_objective", &objective<Scalar, BlockGrid<Scalar>>, "grid"_a, "U"_a, "V"_a, "global_mean"_a,
        "user_bias"_a, "item_bias"_a, "threads"_a);
  m.def("sgd_grid", &sgd_grid<Scalar>, "grid"_a, "U"_a, "V"_a, "learning_rate"_a, "regularization"_a, "epoch"_a,
        "sub_epoch"_a, "global_mean"_a, "user_bias"_a, "item_bias"_a, "user_accumulators"_a, "item_accumulators"_a,
        "warm_up"_a, "threads"_a);
}

}  // namespace

void bind_training(py::module_& m) {
  // Overloads by the dtype of the native object (RatingsIndex or BlockGrid) they take.
  bind_scalar<float>(m);
  bind_scalar<double>(m);
  m.def("gradients_dense", &gradients_dense, "R"_a, "U"_a, "V"_a, "mask"_a, "regularization"_a, "threads"_a);
  m.def("sgd_ordered", &sgd_ordered, "users"_a, "items"_a, "values"_a, "order"_a, "U"_a, "V"_a,
        "learning_rate"_a, "regularization"_a, "global_mean"_a, "user_bias"_a, "item_bias"_a,
        "user_accumulators"_a, "item_accumulators"_a, "warm_up"_a);
}

}  // namespace latentmf::binding
