// latentmf._core: the thin layer between NumPy arrays and the C++ core. It checks dtypes,
// shapes, layout and flags (TypeError for dtype and layout, ValueError for values), allocates
// results with the GIL held, then releases the GIL around the pure C++ call.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "latentmf/blocks.hpp"
#include "latentmf/build_info.hpp"
#include "latentmf/checks.hpp"
#include "latentmf/compressed.hpp"
#include "latentmf/dense.hpp"
#include "latentmf/dispatch.hpp"
#include "latentmf/memory.hpp"
#include "latentmf/model.hpp"
#include "latentmf/shards.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

namespace {

using latentmf::Biases;
using latentmf::BlockGrid;
using latentmf::Coo;
using latentmf::Factors;
using latentmf::Model;
using latentmf::RatingsIndex;

// The instruction-set level whose kernels run: the best this CPU supports, unless
// select_isa() chose a lower one.
latentmf::Isa active_isa = latentmf::best_isa();

template <class Scalar>
const latentmf::Kernels<Scalar>& kernels() {
  return latentmf::kernels<Scalar>(active_isa);
}

template <class T>
bool has_dtype(const py::array& a) {
  return py::isinstance<py::array_t<T>>(a);
}

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

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

bool overlap(const py::array& a, const py::array& b) {
  auto begin_a = static_cast<const char*>(a.data()), begin_b = static_cast<const char*>(b.data());
  return begin_a < begin_b + b.nbytes() && begin_b < begin_a + a.nbytes();
}

// The arrays one call updates in place must not share memory: an update through one would
// silently change another.
void check_disjoint(const std::vector<std::pair<const char*, py::object>>& arrays) {
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
  if (b.enabled() && !std::isfinite(global_mean)) throw py::value_error("global_mean must be finite");
  b.global_mean = static_cast<Scalar>(global_mean);
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

// A hyper-parameter as the Scalar the kernels compute in. A double that is finite may still not
// be once converted (1e300 in float32 is inf, 1e-50 is 0): the value is refused then, naming the
// value the caller gave rather than what the conversion made of it.
template <class Scalar>
Scalar to_scalar(double value, const char* name, bool positive) {
  const auto converted = static_cast<Scalar>(value);
  const bool ok = std::isfinite(converted) && (positive ? converted > 0 : converted >= 0);
  if (!ok) {
    std::ostringstream message;
    message << name << " must be a finite number " << (positive ? "> 0" : ">= 0") << " in "
            << type_name<Scalar>() << ", got " << value;
    if (std::isfinite(value) && (positive ? value > 0 : value >= 0))
      message << " (" << (std::isfinite(converted) ? "0" : "inf") << " as " << type_name<Scalar>() << ")";
    throw py::value_error(message.str());
  }
  return converted;
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


template <class Scalar>
latentmf::Objective objective_of(const RatingsIndex<Scalar>& data, const Factors<Scalar>& f, const Biases<Scalar>& b,
                                 int threads) {
  return kernels<Scalar>().objective(data, f, b, threads);
}

template <class Scalar>
latentmf::Objective objective_of(const BlockGrid<Scalar>& data, const Factors<Scalar>& f, const Biases<Scalar>& b,
                                 int threads) {
  return kernels<Scalar>().grid_objective(data, f, b, threads);
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
    kernels<Scalar>().gradients(index, f, b, lambda, out, t);
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

// Sub-epoch `sub_epoch` of `epoch`, or the whole epoch when sub_epoch is None.
template <class Scalar>
double sgd_grid(const BlockGrid<Scalar>& grid, const py::array& U, const py::array& V, double learning_rate,
                double regularization, std::int64_t epoch, const py::object& sub_epoch, double global_mean,
                const py::object& user_bias, const py::object& item_bias, const py::object& user_accumulators,
                const py::object& item_accumulators, bool warm_up, int threads) {
  const auto f = factors_of<Scalar>(U, V, true);
  const auto b = biases_of<Scalar>(user_bias, item_bias, global_mean, f, true);
  const auto a = accumulators_of<Scalar>(user_accumulators, item_accumulators, f);
  check_disjoint({{"U", U}, {"V", V}, {"user_bias", user_bias}, {"item_bias", item_bias},
                  {"user_accumulators", user_accumulators}, {"item_accumulators", item_accumulators}});
  const latentmf::SgdStep<Scalar> step{to_scalar<Scalar>(learning_rate, "learning_rate", true),
                                       to_scalar<Scalar>(regularization, "regularization", false), warm_up};
  const int t = latentmf::resolve_threads(threads);
  const bool whole_epoch = sub_epoch.is_none();
  const int first = whole_epoch ? 0 : sub_epoch.cast<int>();
  const int last = whole_epoch ? grid.blocks() : first + 1;
  for (int s = first; s < last; ++s) latentmf::check_grid_step(grid, f, step, epoch, s);
  py::gil_scoped_release release;
  double squared_errors = 0;
  for (int s = first; s < last; ++s)
    squared_errors += kernels<Scalar>().sgd_sub_epoch(grid, f, b, a, step, epoch, s, t);
  return squared_errors;
}

double sgd_ordered(const py::array& users, const py::array& items, const py::array& values,
                   const py::array& order, const py::array& U, const py::array& V, double learning_rate,
                   double regularization, double global_mean, const py::object& user_bias,
                   const py::object& item_bias, const py::object& user_accumulators,
                   const py::object& item_accumulators, bool warm_up) {
  return with_value(values, [&](auto scalar) {
    using Scalar = decltype(scalar);
    const auto f = factors_of<Scalar>(U, V, true);
    const auto b = biases_of<Scalar>(user_bias, item_bias, global_mean, f, true);
    const auto a = accumulators_of<Scalar>(user_accumulators, item_accumulators, f);
    check_disjoint({{"U", U}, {"V", V}, {"user_bias", user_bias}, {"item_bias", item_bias},
                    {"user_accumulators", user_accumulators}, {"item_accumulators", item_accumulators}});
    const latentmf::SgdStep<Scalar> step{to_scalar<Scalar>(learning_rate, "learning_rate", true),
                                         to_scalar<Scalar>(regularization, "regularization", false), warm_up};
    return with_index(users, items, [&](auto index) {
      const auto coo = coo_of<decltype(index), Scalar>(users, items, values, f.n_users, f.n_items);
      const auto* order_data = vector_data<std::int64_t>(order, "order", coo.size);
      py::gil_scoped_release release;
      return kernels<Scalar>().sgd_ordered(decltype(index){})(coo, order_data, f, b, a, step);
    });
  });
}

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
      kernels<Scalar>().predict(Index{})(f, b, u, i, size, out_data, t);
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
      kernels<Scalar>().top_items(f, b, offsets, seen, seen_size, user_data, count, k, item_data, score_data, t);
    }
    return py::make_tuple(items, scores);
  }, "U");
}

// A NumPy array viewing `data`; `owner` (the model) stays alive as long as the array does.
template <class Scalar>
py::array view(Scalar* data, std::vector<py::ssize_t> shape, const py::object& owner) {
  return py::array_t<Scalar>(std::move(shape), data, owner);
}

template <class Scalar>
void bind_model(py::module_& m, const char* name) {
  using M = Model<Scalar>;
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

template <class Scalar>
void bind_ratings_index(py::module_& m, const char* name) {
  using I = RatingsIndex<Scalar>;
  py::class_<I>(m, name, "Ratings grouped by user and by item, for loss and gradients.")
      .def_property_readonly("size", [](const I& i) { return i.size; })
      .def_property_readonly("n_users", [](const I& i) { return i.n_users; })
      .def_property_readonly("n_items", [](const I& i) { return i.n_items; });
  m.def("objective", &objective<Scalar, RatingsIndex<Scalar>>, "index"_a, "U"_a, "V"_a, "global_mean"_a, "user_bias"_a,
        "item_bias"_a, "threads"_a);
  m.def("gradients", &gradients<Scalar>, "index"_a, "U"_a, "V"_a, "regularization"_a, "global_mean"_a,
        "user_bias"_a, "item_bias"_a, "threads"_a);
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
  m.def("grid_objective", &objective<Scalar, BlockGrid<Scalar>>, "grid"_a, "U"_a, "V"_a, "global_mean"_a, "user_bias"_a,
        "item_bias"_a, "threads"_a);
  m.def("sgd_grid", &sgd_grid<Scalar>, "grid"_a, "U"_a, "V"_a, "learning_rate"_a, "regularization"_a,
        "epoch"_a, "sub_epoch"_a, "global_mean"_a, "user_bias"_a, "item_bias"_a, "user_accumulators"_a,
        "item_accumulators"_a, "warm_up"_a, "threads"_a);
}

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
  if (side != "users" && side != "items") throw py::value_error("side must be 'users' or 'items', got '" + side + "'");
  if (n < 1) throw py::value_error("n must be >= 1, got " + std::to_string(n));
  latentmf::require(blocks >= 1 && blocks <= latentmf::max_blocks, "blocks must be in [1, ", latentmf::max_blocks,
                    "], got ", blocks);
  latentmf::check_index_range(n, n);
  const auto stream = side == "users" ? latentmf::user_stream : latentmf::item_stream;
  const latentmf::Grouping grouping(n, blocks, latentmf::stream_seed(seed, stream));
  return py::make_tuple(to_array(grouping.group), to_array(grouping.member));
}

// A group's state array (see latentmf::GroupState) for `rows` rows: 1-D, C-contiguous, of the
// right length and dtype.
template <class Scalar>
latentmf::GroupState<Scalar> group_state_of(const py::handle& object, const char* name, std::int64_t rows,
                                            std::int64_t n_factors, bool biases, bool adagrad, bool writeable) {
  const auto array = py::cast<py::array>(object);
  check_array<Scalar>(array, name, 1, writeable);
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
  if (biases && !std::isfinite(global_mean)) throw py::value_error("global_mean must be finite");
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
    const auto u = group_state_of<Scalar>(user_states[i], "user_states[i]", n_users, n_factors, biases, adagrad, writeable);
    const auto v = group_state_of<Scalar>(item_states[i], "item_states[i]", n_items, n_factors, biases, adagrad, writeable);
    latentmf::Biases<Scalar> b;
    if (biases) b = {static_cast<Scalar>(global_mean), u.bias, v.bias};
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
    const latentmf::SgdStep<Scalar> step{static_cast<Scalar>(learning_rate), static_cast<Scalar>(regularization),
                                         warm_up};
    latentmf::check_step(step);
    const int t = latentmf::resolve_threads(threads);
    std::vector<double> squared_errors(blocks.size(), 0.0);
    py::gil_scoped_release release;
    kernels<Scalar>().sgd_shard_blocks(blocks.data(), std::int64_t(blocks.size()), step, squared_errors.data(), t);
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
    kernels<Scalar>().shard_block_errors(blocks.data(), std::int64_t(blocks.size()), squared_errors.data(), t);
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
    kernels<Scalar>().row_squared_norms(data, n_rows, n_factors, out_data, t);
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
    return kernels<Scalar>().penalty_of_norms(norm_data, bias_data, count_data, n, t);
  });
}

std::vector<std::string> isa_names(bool supported_only) {
  std::vector<std::string> names;
  for (auto isa : latentmf::compiled_isas())
    if (!supported_only || latentmf::cpu_supports(isa)) names.push_back(latentmf::isa_name(isa));
  return names;
}

py::dict build_info() {
  const auto info = latentmf::build_info();
  return py::dict("openmp"_a = info.openmp, "openmp_version"_a = info.openmp_version,
                  "compiler"_a = info.compiler, "eigen_version"_a = info.eigen_version,
                  "eigen_simd"_a = info.eigen_simd, "instruction_sets"_a = info.instruction_sets,
                  "isa_levels"_a = isa_names(false), "isa_levels_supported"_a = isa_names(true),
                  "isa"_a = latentmf::isa_name(active_isa), "float_types"_a = info.float_types,
                  "max_threads"_a = latentmf::available_threads());
}

// Runs the kernels of the named level from now on; refuses a level this CPU cannot run.
void select_isa(const std::string& name) {
  const auto isa = latentmf::isa_from_name(name);
  if (!latentmf::cpu_supports(isa))
    throw py::value_error("instruction-set level '" + name + "' is compiled in but this CPU cannot run it");
  active_isa = isa;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "Native core of latentmf (C++17, Eigen, OpenMP). Use the latentmf package, not this module.";
  py::register_exception<latentmf::AllocationError>(m, "AllocationError", PyExc_MemoryError);

  bind_model<float>(m, "ModelFloat32");
  bind_model<double>(m, "ModelFloat64");
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
  m.def("gradients_dense", &gradients_dense, "R"_a, "U"_a, "V"_a, "mask"_a, "regularization"_a, "threads"_a);
  m.def("sgd_ordered", &sgd_ordered, "users"_a, "items"_a, "values"_a, "order"_a, "U"_a, "V"_a,
        "learning_rate"_a, "regularization"_a, "global_mean"_a, "user_bias"_a, "item_bias"_a,
        "user_accumulators"_a, "item_accumulators"_a, "warm_up"_a);
  m.def("predict", &predict, "U"_a, "V"_a, "users"_a, "items"_a, "global_mean"_a, "user_bias"_a, "item_bias"_a,
        "threads"_a);
  m.def("top_items", &top_items, "U"_a, "V"_a, "users"_a, "k"_a, "global_mean"_a, "user_bias"_a, "item_bias"_a,
        "seen_offsets"_a, "seen_items"_a, "threads"_a);
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
  m.def("sgd_shards", &sgd_shards, "shards"_a, "user_states"_a, "item_states"_a, "item_groups"_a, "n_factors"_a,
        "learning_rate"_a, "regularization"_a, "global_mean"_a, "biases"_a, "adagrad"_a, "warm_up"_a, "threads"_a);
  m.def("shard_errors", &shard_errors, "shards"_a, "user_states"_a, "item_states"_a, "item_groups"_a, "n_factors"_a,
        "global_mean"_a, "biases"_a, "adagrad"_a, "threads"_a);
  m.def("row_squared_norms", &row_squared_norms, "state"_a, "n_rows"_a, "n_factors"_a, "threads"_a);
  m.def("penalty_of_norms", &penalty_of_norms, "norms"_a, "bias"_a, "counts"_a, "threads"_a);
  m.def("build_info", &build_info);
  m.def("select_isa", &select_isa, "name"_a);
  m.def("available_threads", &latentmf::available_threads);
  m.def("physical_memory", &latentmf::physical_memory,
        "Bytes of physical memory of this machine (0 when unknown); larger requests raise MemoryError.");
}
