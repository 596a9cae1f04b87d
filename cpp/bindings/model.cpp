// The native model: storage for U, V, the biases and accumulators, viewed by NumPy without copies.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "latentmf/model.hpp"

namespace latentmf::binding {
namespace {

using namespace pybind11::literals;

template <class Scalar>
void bind_model(py::module_& m, const char* name) {
  using M = latentmf::Model<Scalar>;
  py::class_<M>(m, name, "Storage for U, V and the biases; arrays returned by its properties view it.")
      // Zeroing a large model takes a while and touches no Python object: other threads run meanwhile.
      .def(py::init<std::int64_t, std::int64_t, std::int64_t>(), "n_users"_a, "n_items"_a, "n_factors"_a,
           py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("n_users", &M::n_users)
      .def_property_readonly("n_items", &M::n_items)
      .def_property_readonly("n_factors", &M::n_factors)
      .def_property_readonly("U", [](py::object self) {
        auto& model = self.cast<M&>();
        return view(model.U(), {model.n_users(), model.n_factors()}, self);
      })
      .def_property_readonly("V", [](py::object self) {
        auto& model = self.cast<M&>();
        return view(model.V(), {model.n_items(), model.n_factors()}, self);
      })
      .def_property_readonly("user_bias", [](py::object self) {
        auto& model = self.cast<M&>();
        return view(model.user_bias(), {model.n_users()}, self);
      })
      .def_property_readonly("item_bias", [](py::object self) {
        auto& model = self.cast<M&>();
        return view(model.item_bias(), {model.n_items()}, self);
      })
      .def_property_readonly("user_accumulators", [](py::object self) {
        auto& model = self.cast<M&>();
        return view(model.user_accumulators(), {model.n_users(), 2}, self);
      })
      .def_property_readonly("item_accumulators", [](py::object self) {
        auto& model = self.cast<M&>();
        return view(model.item_accumulators(), {model.n_items(), 2}, self);
      })
      .def_property(
          "global_mean", [](M& model) { return double(model.global_mean()); },
          [](M& model, double value) {
            if (!std::isfinite(value)) throw py::value_error("global_mean must be finite");
            model.global_mean() = static_cast<Scalar>(value);
          });
}

}  // namespace

void bind_models(py::module_& m) {
  bind_model<float>(m, "ModelFloat32");
  bind_model<double>(m, "ModelFloat64");
}

}  // namespace latentmf::binding
