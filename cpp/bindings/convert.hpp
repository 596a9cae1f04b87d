// What every part of the binding shares: checks of NumPy arrays (dtype, shape, layout, flags) that
// raise TypeError for dtype and layout faults and ValueError for values, their conversion into the
// core's views (Factors, Biases, Coo, ...), dispatch on the dtypes, and the allocation of results.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "latentmf/factors.hpp"
#include "latentmf/memory.hpp"
#include "latentmf/ratings.hpp"

namespace latentmf::binding {

namespace py = pybind11;

template <class T>
bool has_dtype(const py::array& a) {
  return py::isinstance<py::array_t<T>>(a);
}

inline std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  if constexpr (std::is_same_v<T, double>) return "float64";
  if constexpr (std::is_same_v<T, std::int32_t>) return "int32";
  if constexpr (std::is_same_v<T, std::int64_t>) return "int64";
  if constexpr (std::is_same_v<T, std::uint8_t>) return "bool or uint8";
}

// A C-contiguous array of exactly dtype T and the given number of dimensions.
template <class T>
void check_array(const py::array& a, const char* name, int ndim, bool writeable = false) {
  if (!has_dtype<T>(a))
    throw py::type_error(std::string(name) + " must have dtype " + type_name<T>() + ", got " + dtype_name(a));
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-dimensional, got " +
                          std::to_string(a.ndim()) + " dimensions");
  if (!(a.flags() & py::array::c_style))
    throw py::type_error(std::string(name) + " must be C-contiguous (use numpy.ascontiguousarray)");
  if (writeable && !a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
}

template <class T>
const T* vector_data(const py::array& a, const char* name, py::ssize_t size) {
  check_array<T>(a, name, 1);
  if (a.shape(0) != size)
    throw py::value_error(std::string(name) + " has length " + std::to_string(a.shape(0)) + ", expected " +
                          std::to_string(size));
  return static_cast<const T*>(a.data());
}

// Whether a `side` argument names the users (true) or the items (false); ValueError for any other.
inline bool is_users_side(const std::string& side) {
  if (side != "users" && side != "items") throw py::value_error("side must be 'users' or 'items', got '" + side + "'");
  return side == "users";
}

// Which values a scalar argument admits.
enum class Sign { any, non_negative, positive };

// A number as the Scalar the kernels compute in. A double that is finite may still not be once
// converted (1e300 in float32 is inf, 1e-50 is 0): the value is refused then, naming the value the
// caller gave rather than what the conversion made of it.
template <class Scalar>
Scalar to_scalar(double value, const std::string& name, Sign sign) {
  const auto converted = static_cast<Scalar>(value);
  const bool in_range = sign == Sign::any || (sign == Sign::positive ? converted > 0 : converted >= 0);
  if (!(std::isfinite(converted) && in_range)) {
    const char* relation = sign == Sign::any ? "" : sign == Sign::positive ? " > 0" : " >= 0";
    std::ostringstream message;
    message << name << " must be a finite number" << relation << " in " << type_name<Scalar>() << ", got " << value;
    if (std::isfinite(value) && !std::isfinite(converted)) message << " (inf as " << type_name<Scalar>() << ")";
    if (std::isfinite(value) && converted == 0 && value != 0) message << " (0 as " << type_name<Scalar>() << ")";
    throw py::value_error(message.str());
  }
  return converted;
}

// The hyper-parameters of the kernels: learning rates must be > 0, regularization >= 0.
template <class Scalar>
Scalar to_scalar(double value, const char* name, bool positive) {
  return to_scalar<Scalar>(value, std::string(name), positive ? Sign::positive : Sign::non_negative);
}

inline bool overlap(const py::array& a, const py::array& b) {
  auto begin_a = static_cast<const char*>(a.data()), begin_b = static_cast<const char*>(b.data());
  return begin_a < begin_b + b.nbytes() && begin_b < begin_a + a.nbytes();
}

// The arrays one call updates in place must not share memory: an update through one would
// silently change another.
inline void check_disjoint(const std::vector<std::pair<const char*, py::object>>& arrays) {
  for (std::size_t i = 0; i < arrays.size(); ++i)
    for (std::size_t j = i + 1; j < arrays.size(); ++j) {
      if (arrays[i].second.is_none() || arrays[j].second.is_none()) continue;
      if (overlap(py::cast<py::array>(arrays[i].second), py::cast<py::array>(arrays[j].second)))
        throw py::value_error(std::string(arrays[i].first) + " and " + arrays[j].first + " must not share memory");
    }
}

// U and V as the core's Factors; both of dtype Scalar, 2-D, C-contiguous, the same width, and
// when the call updates them, writeable and not sharing memory (a call that only reads them may
// be given one array twice).
template <class Scalar>
Factors<Scalar> factors_of(const py::array& U, const py::array& V, bool writeable) {
  check_array<Scalar>(U, "U", 2, writeable);
  check_array<Scalar>(V, "V", 2, writeable);
  if (U.shape(1) != V.shape(1))
    throw py::value_error("U and V must have the same number of columns (factors), got " +
                          std::to_string(U.shape(1)) + " and " + std::to_string(V.shape(1)));
  if (U.shape(1) < 1) throw py::value_error("U and V must have at least one column (factor)");
  if (writeable) check_disjoint({{"U", U}, {"V", V}});
  return {static_cast<Scalar*>(const_cast<void*>(U.data())), static_cast<Scalar*>(const_cast<void*>(V.data())),
          U.shape(0), V.shape(0), U.shape(1)};
}

// A pair of vectors with one entry per user and one per item, both given or neither (then null).
template <class Scalar>
std::pair<Scalar*, Scalar*> row_vectors(const py::object& user, const py::object& item, const char* user_name,
                                        const char* item_name, const Factors<Scalar>& f, bool writeable) {
  if (user.is_none() && item.is_none()) return {nullptr, nullptr};
  if (user.is_none() || item.is_none())
    throw py::value_error(std::string(user_name) + " and " + item_name + " must be given together");
  const auto u = py::cast<py::array>(user), i = py::cast<py::array>(item);
  check_array<Scalar>(u, user_name, 1, writeable);
  check_array<Scalar>(i, item_name, 1, writeable);
  if (u.shape(0) != f.n_users)
    throw py::value_error(std::string(user_name) + " has length " + std::to_string(u.shape(0)) +
                          ", expected n_users=" + std::to_string(f.n_users));
  if (i.shape(0) != f.n_items)
    throw py::value_error(std::string(item_name) + " has length " + std::to_string(i.shape(0)) +
                          ", expected n_items=" + std::to_string(f.n_items));
  return {static_cast<Scalar*>(const_cast<void*>(u.data())), static_cast<Scalar*>(const_cast<void*>(i.data()))};
}

// Both bias vectors or neither; with them the model has r_hat = mean + b_n + c_m + u . v.
template <class Scalar>
Biases<Scalar> biases_of(const py::object& user_bias, const py::object& item_bias, double global_mean,
                         const Factors<Scalar>& f, bool writeable) {
  Biases<Scalar> b;
  std::tie(b.user, b.item) = row_vectors(user_bias, item_bias, "user_bias", "item_bias", f, writeable);
  if (b.enabled()) b.global_mean = to_scalar<Scalar>(global_mean, "global_mean", Sign::any);
  return b;
}

// The AdaGrad accumulators (both or neither): n_users x 2 and n_items x 2, writeable, every
// entry a finite number > 0.
template <class Scalar>
latentmf::Accumulators<Scalar> accumulators_of(const py::object& user, const py::object& item,
                                               const Factors<Scalar>& f) {
  latentmf::Accumulators<Scalar> a;
  if (user.is_none() && item.is_none()) return a;
  if (user.is_none() || item.is_none())
    throw py::value_error("user_accumulators and item_accumulators must be given together");
  for (auto [name, object, rows, target] : {std::make_tuple("user_accumulators", &user, f.n_users, &a.user),
                                            std::make_tuple("item_accumulators", &item, f.n_items, &a.item)}) {
    const auto array = py::cast<py::array>(*object);
    check_array<Scalar>(array, name, 2, true);
    if (array.shape(0) != rows || array.shape(1) != 2)
      throw py::value_error(std::string(name) + " must have shape (" + std::to_string(rows) + ", 2), got (" +
                            std::to_string(array.shape(0)) + ", " + std::to_string(array.shape(1)) + ")");
    *target = static_cast<Scalar*>(const_cast<void*>(array.data()));
    for (std::int64_t k = 0; k < 2 * rows; ++k)
      if (!(std::isfinite((*target)[k]) && (*target)[k] > 0))
        throw py::value_error(std::string(name) + "[" + std::to_string(k / 2) + ", " + std::to_string(k % 2) +
                              "] = " + std::to_string((*target)[k]) + " must be a finite number > 0");
  }
  return a;
}

template <class Index, class Value>
Coo<Index, Value> coo_of(const py::array& users, const py::array& items, const py::array& values,
                         std::int64_t n_users, std::int64_t n_items) {
  check_array<Index>(users, "users", 1);
  const py::ssize_t size = users.shape(0);
  return {vector_data<Index>(users, "users", size), vector_data<Index>(items, "items", size),
          vector_data<Value>(values, "values", size), size, n_users, n_items};
}

// Calls fn(Index{}) for the index dtype shared by users and items.
template <class Fn>
auto with_index(const py::array& users, const py::array& items, Fn&& fn) {
  if (has_dtype<std::int32_t>(users) && has_dtype<std::int32_t>(items)) return fn(std::int32_t{});
  if (has_dtype<std::int64_t>(users) && has_dtype<std::int64_t>(items)) return fn(std::int64_t{});
  throw py::type_error("users and items must both be int32 or both int64, got " + dtype_name(users) +
                       " and " + dtype_name(items));
}

// Calls fn(Scalar{}) for the float dtype of `values` (named `name` in the error).
template <class Fn>
auto with_value(const py::array& values, Fn&& fn, const char* name = "values") {
  if (has_dtype<float>(values)) return fn(float{});
  if (has_dtype<double>(values)) return fn(double{});
  throw py::type_error(std::string(name) + " must be float32 or float64, got " + dtype_name(values));
}

// A new array of the given shape for a result, refused (MemoryError naming `what`) when it would
// not fit in physical memory: NumPy's own allocation would "succeed" under overcommit and the
// process be killed when the kernel writes it.
template <class T>
py::array_t<T> new_array(std::vector<py::ssize_t> shape, const char* what) {
  double elements = 1;
  for (auto extent : shape) elements *= double(extent);
  latentmf::check_available(elements * sizeof(T), what);
  return py::array_t<T>(std::move(shape));
}

template <class Fn>
auto with_scalar(const std::string& dtype, Fn&& fn) {
  if (dtype == "float32") return fn(float{});
  if (dtype == "float64") return fn(double{});
  throw py::value_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
}

template <class T>
py::array_t<T> to_array(const std::vector<T>& v) {
  return py::array_t<T>(static_cast<py::ssize_t>(v.size()), v.data());
}

template <class Scalar>
py::array_t<Scalar> new_matrix(std::int64_t rows, std::int64_t cols, const char* what) {
  return new_array<Scalar>({rows, cols}, what);
}

// Calls fn(coo) with the ratings viewed as a Coo of their own index and value types.
template <class Fn>
auto with_coo(const py::array& users, const py::array& items, const py::array& values, std::int64_t n_users,
              std::int64_t n_items, Fn&& fn) {
  return with_index(users, items, [&](auto index) {
    return with_value(values, [&](auto value) {
      return fn(coo_of<decltype(index), decltype(value)>(users, items, values, n_users, n_items));
    });
  });
}

// A NumPy array viewing `data`; `owner` (the model) stays alive as long as the array does.
template <class Scalar>
py::array view(Scalar* data, std::vector<py::ssize_t> shape, const py::object& owner) {
  return py::array_t<Scalar>(std::move(shape), data, owner);
}

}  // namespace latentmf::binding
