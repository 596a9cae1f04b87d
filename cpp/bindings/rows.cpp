// Entry points of the row solver (latentmf/rows.hpp): one side's rows solved in place, the Gramian,
// and the iALS objective over all entries.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "latentmf/dispatch.hpp"
#include "latentmf/compressed.hpp"
#include "latentmf/links.hpp"
#include "latentmf/rows.hpp"

namespace latentmf::binding {
namespace {

using namespace pybind11::literals;
using latentmf::RatingsIndex;

// The ratings of one side, by row: users' rows hold items, items' rows hold users.
template <class Scalar>
latentmf::RowEntries<Scalar> entries_of(const RatingsIndex<Scalar>& index, bool users) {
  const auto& side = users ? index.by_user : index.by_item;
  return {side.offsets.data(), side.cols.data(), side.values.data(), side.n_rows,
          users ? index.n_items : index.n_users, users ? "user" : "item", users ? "item" : "user"};
}

latentmf::EntryRule rule_of(const std::string& rule) {
  if (rule == "implicit") return latentmf::EntryRule::implicit_feedback;
  if (rule == "explicit") return latentmf::EntryRule::explicit_ratings;
  throw py::value_error("rule must be 'implicit' or 'explicit', got '" + rule + "'");
}

latentmf::Confidence confidence_of(const std::string& confidence) {
  if (confidence == "linear") return latentmf::Confidence::linear;
  if (confidence == "log") return latentmf::Confidence::log;
  throw py::value_error("confidence must be 'linear' or 'log', got '" + confidence + "'");
}

latentmf::RowMethod method_of(const std::string& method) {
  if (method == "exact") return latentmf::RowMethod::exact;
  if (method == "cg") return latentmf::RowMethod::conjugate_gradient;
  throw py::value_error("method must be 'exact' or 'cg', got '" + method + "'");
}

template <class Scalar>
latentmf::Entries<Scalar> entry_rule(const std::string& rule, double alpha, const std::string& confidence,
                                     double epsilon, double precision) {
  latentmf::Entries<Scalar> e;
  e.rule = rule_of(rule);
  e.confidence = confidence_of(confidence);
  e.alpha = to_scalar<Scalar>(alpha, "alpha", Sign::non_negative);
  e.epsilon = to_scalar<Scalar>(epsilon, "epsilon", Sign::positive);
  e.precision = to_scalar<Scalar>(precision, "precision", Sign::positive);
  return e;
}

// An optional read-only array of exactly dtype Scalar and the given shape (null when None).
template <class Scalar>
const Scalar* optional_array(const py::object& object, const char* name, std::vector<py::ssize_t> shape) {
  if (object.is_none()) return nullptr;
  const auto array = py::cast<py::array>(object);
  check_array<Scalar>(array, name, int(shape.size()));
  for (std::size_t d = 0; d < shape.size(); ++d)
    if (array.shape(d) != shape[d]) {
      std::string expected, got;
      for (std::size_t k = 0; k < shape.size(); ++k) {
        expected += (k ? ", " : "") + std::to_string(shape[k]);
        got += (k ? ", " : "") + std::to_string(array.shape(k));
      }
      throw py::value_error(std::string(name) + " must have shape (" + expected + "), got (" + got + ")");
    }
  return static_cast<const Scalar*>(array.data());
}

template <class Scalar>
latentmf::RowRegularization<Scalar> regularization_of(double regularization, double exponent,
                                                     const py::object& per_row, const char* name, std::int64_t rows) {
  latentmf::RowRegularization<Scalar> g;
  g.regularization = regularization;
  g.exponent = exponent;
  g.per_row = optional_array<Scalar>(per_row, name, {rows});
  return g;
}

// Solves the rows of `side` ("users": U given V, "items": V given U) in place; see
// latentmf.functions.solve_rows. Returns the number of rows solved for the least-norm solution.
template <class Scalar>
std::int64_t solve_rows(const RatingsIndex<Scalar>& index, const std::string& side, const py::array& U,
                        const py::array& V, const std::string& rule, double alpha, const std::string& confidence,
                        double epsilon, double precision, double regularization, double exponent,
                        const py::object& row_regularization, double global_mean, const py::object& user_bias,
                        const py::object& item_bias, const py::object& shared_matrix,
                        const py::object& shared_vector, const py::object& per_row_vectors,
                        const std::string& method, int cg_steps, const py::object& noise, int threads) {
  const bool users = is_users_side(side);
  const auto f = factors_of<Scalar>(U, V, false);
  check_array<Scalar>(users ? U : V, users ? "U" : "V", 2, true);
  latentmf::require(f.n_users == index.n_users && f.n_items == index.n_items, "U and V have ", f.n_users, " and ",
                    f.n_items, " rows but the ratings have n_users=", index.n_users, ", n_items=", index.n_items);
  const auto [user_b, item_b] = row_vectors<Scalar>(user_bias, item_bias, "user_bias", "item_bias", f, false);
  if (user_b) check_array<Scalar>(py::cast<py::array>(users ? user_bias : item_bias), users ? "user_bias" : "item_bias", 1, true);
  check_disjoint({{users ? "U" : "V", users ? py::object(U) : py::object(V)},
                  {users ? "V" : "U", users ? py::object(V) : py::object(U)},
                  {"user_bias", user_bias}, {"item_bias", item_bias}, {"shared_matrix", shared_matrix},
                  {"shared_vector", shared_vector}, {"row_vectors", per_row_vectors}, {"noise", noise},
                  {"regularization", row_regularization}});
  latentmf::RowSolve<Scalar> s;
  s.rows = entries_of(index, users);
  s.x_name = users ? "U" : "V";
  s.y_name = users ? "V" : "U";
  s.bias_name = users ? "user_bias" : "item_bias";
  s.other_bias_name = users ? "item_bias" : "user_bias";
  s.entries = entry_rule<Scalar>(rule, alpha, confidence, epsilon, precision);
  s.Y = users ? f.V : f.U;
  s.X = users ? f.U : f.V;
  s.n_factors = f.n_factors;
  if (user_b) {
    s.bias = users ? user_b : item_b;
    s.other_bias = users ? item_b : user_b;
    s.global_mean = to_scalar<Scalar>(global_mean, "global_mean", Sign::any);
  }
  const std::int64_t order = s.order(), n_rows = s.rows.n_rows;
  s.shared_matrix = optional_array<Scalar>(shared_matrix, "shared_matrix", {order, order});
  s.shared_vector = optional_array<Scalar>(shared_vector, "shared_vector", {order});
  s.row_vectors = optional_array<Scalar>(per_row_vectors, "row_vectors", {n_rows, order});
  s.noise = optional_array<Scalar>(noise, "noise", {n_rows, order});
  s.regularization = regularization_of<Scalar>(regularization, exponent, row_regularization, "regularization", n_rows);
  s.method = method_of(method);
  s.cg_steps = cg_steps;
  const int t = latentmf::resolve_threads(threads);
  py::gil_scoped_release release;
  return active_kernels<Scalar>().solve_rows(s, t);
}

// Y^T Y, or [Y 1]^T [Y 1] with a bias column, in Y's dtype.
py::array gramian(const py::array& Y, bool bias_column, int threads) {
  return with_value(Y, [&](auto scalar) -> py::array {
    using Scalar = decltype(scalar);
    check_array<Scalar>(Y, "Y", 2);
    const std::int64_t n = Y.shape(0), F = Y.shape(1), E = bias_column ? 1 : 0, M = F + E;
    if (F < 1) throw py::value_error("Y must have at least one column");
    auto out = new_matrix<Scalar>(M, M, "the Gramian");
    Scalar* out_data = out.mutable_data();
    const auto* y = static_cast<const Scalar*>(Y.data());
    const int t = latentmf::resolve_threads(threads);
    {
      py::gil_scoped_release release;
      std::vector<Scalar> ones = latentmf::allocate<Scalar>(n * E, "the bias column");
      std::fill(ones.begin(), ones.end(), Scalar(1));
      std::vector<double> G = latentmf::allocate<double>(M * M, "the Gramian");
      active_kernels<Scalar>().gramian(y, E ? ones.data() : nullptr, n, F, E, G.data(), t);
      for (std::int64_t k = 0; k < M * M; ++k) out_data[k] = Scalar(G[k]);
    }
    return out;
  }, "Y");
}

// (all_entries, observed, penalty) of the iALS objective; see latentmf.functions.implicit_loss.
template <class Scalar>
py::tuple implicit_objective(const RatingsIndex<Scalar>& index, const py::array& U, const py::array& V, double alpha,
                             const std::string& confidence, double epsilon, double regularization, double exponent,
                             const py::object& user_regularization, const py::object& item_regularization,
                             double global_mean, const py::object& user_bias, const py::object& item_bias,
                             int threads) {
  const auto f = factors_of<Scalar>(U, V, false);
  latentmf::require(f.n_users == index.n_users && f.n_items == index.n_items, "U and V have ", f.n_users, " and ",
                    f.n_items, " rows but the ratings have n_users=", index.n_users, ", n_items=", index.n_items);
  const auto b = biases_of<Scalar>(user_bias, item_bias, global_mean, f, false);
  const auto e = entry_rule<Scalar>("implicit", alpha, confidence, epsilon, 1.0);
  const auto users = regularization_of<Scalar>(regularization, exponent, user_regularization, "user_regularization",
                                               f.n_users);
  const auto items = regularization_of<Scalar>(regularization, exponent, item_regularization, "item_regularization",
                                               f.n_items);
  const int t = latentmf::resolve_threads(threads);
  latentmf::ImplicitObjective o;
  {
    py::gil_scoped_release release;
    o = active_kernels<Scalar>().implicit_objective(entries_of(index, true), entries_of(index, false), e, f, b, users, items,
                                             t);
  }
  return py::make_tuple(o.all_entries, o.observed, o.penalty);
}

// The implicit links of one side's prior (latentmf/links.hpp): side "users" links each user to the
// items it rated, with the weights c_n^{-1/2} it fills in `weight`.
template <class Scalar>
latentmf::LinkEntries link_entries(const RatingsIndex<Scalar>& index, const std::string& side,
                                   std::vector<double>& weight) {
  const bool users = is_users_side(side);
  const auto& own = users ? index.by_user : index.by_item;
  const auto& columns = users ? index.by_item : index.by_user;
  weight.assign(static_cast<std::size_t>(own.n_rows), 0.0);
  for (std::int64_t n = 0; n < own.n_rows; ++n) {
    const std::int64_t count = own.count(n);
    if (count > 0) weight[n] = 1.0 / std::sqrt(double(count));
  }
  return {columns.offsets.data(), columns.cols.data(), own.offsets.data(), own.cols.data(), weight.data(),
          columns.n_rows, own.n_rows};
}

// A float64 matrix of the given shape (optional_array's checks), writeable when asked, every value
// finite.
double* link_matrix(const py::array& a, const char* name, std::int64_t rows, std::int64_t cols, bool writeable) {
  if (writeable) check_array<double>(a, name, 2, true);
  auto* data = const_cast<double*>(optional_array<double>(a, name, {rows, cols}));
  latentmf::check_finite(data, rows * cols, name, 1);
  return data;
}

template <class Scalar>
py::array_t<double> link_product(const RatingsIndex<Scalar>& index, const std::string& side, const py::array& links,
                                 int threads) {
  std::vector<double> weight;
  const latentmf::LinkEntries e = link_entries(index, side, weight);
  if (links.ndim() != 2) throw py::value_error("links must be 2-dimensional");
  const std::int64_t D = links.shape(1);
  const double* l = link_matrix(links, "links", e.n_cols, D, false);
  auto out = new_matrix<double>(e.n_rows, D, "the links' product");
  const int t = latentmf::resolve_threads(threads);
  py::gil_scoped_release release;
  latentmf::link_product(e, l, D, out.mutable_data(), t);
  return out;
}

template <class Scalar>
void link_sweep(const RatingsIndex<Scalar>& index, const std::string& side, const py::array& residual,
                const py::array& links, const py::array& noise, double regularization) {
  std::vector<double> weight;
  const latentmf::LinkEntries e = link_entries(index, side, weight);
  if (links.ndim() != 2) throw py::value_error("links must be 2-dimensional");
  const std::int64_t D = links.shape(1);
  check_disjoint({{"residual", residual}, {"links", links}, {"noise", noise}});
  double* l = link_matrix(links, "links", e.n_cols, D, true);
  double* r = link_matrix(residual, "residual", e.n_rows, D, true);
  const double* z = link_matrix(noise, "noise", e.n_cols, D, false);
  py::gil_scoped_release release;
  latentmf::link_sweep(e, r, l, z, D, regularization);
}

template <class Scalar>
void bind_scalar(py::module_& m) {
  m.def("solve_rows", &solve_rows<Scalar>, "index"_a, "side"_a, "U"_a, "V"_a, "rule"_a, "alpha"_a, "confidence"_a,
        "epsilon"_a, "precision"_a, "regularization"_a, "regularization_exponent"_a, "row_regularization"_a,
        "global_mean"_a, "user_bias"_a, "item_bias"_a, "shared_matrix"_a, "shared_vector"_a, "row_vectors"_a,
        "method"_a, "cg_steps"_a, "noise"_a, "threads"_a);
  m.def("implicit_objective", &implicit_objective<Scalar>, "index"_a, "U"_a, "V"_a, "alpha"_a, "confidence"_a,
        "epsilon"_a, "regularization"_a, "regularization_exponent"_a, "user_regularization"_a,
        "item_regularization"_a, "global_mean"_a, "user_bias"_a, "item_bias"_a, "threads"_a);
  m.def("link_product", &link_product<Scalar>, "index"_a, "side"_a, "links"_a, "threads"_a);
  m.def("link_sweep", &link_sweep<Scalar>, "index"_a, "side"_a, "residual"_a, "links"_a, "noise"_a,
        "regularization"_a);
}

}  // namespace

void bind_rows(py::module_& m) {
  // Overloads by the dtype of the native ratings index they take.
  bind_scalar<float>(m);
  bind_scalar<double>(m);
  m.def("gramian", &gramian, "Y"_a, "bias_column"_a, "threads"_a);
}

}  // namespace latentmf::binding
