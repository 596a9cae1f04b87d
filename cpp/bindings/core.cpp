// latentmf._core: the thin layer between NumPy arrays and the C++ core. Each entry point checks
// dtypes, shapes, layout and flags (TypeError for dtype and layout, ValueError for values; see
// convert.hpp), allocates results with the GIL held, then releases the GIL around the pure C++
// call. The entry points live in the files bindings.hpp lists; this one assembles the module.
#include <pybind11/pybind11.h>

#include "bindings.hpp"
#include "latentmf/memory.hpp"

PYBIND11_MODULE(_core, m) {
  namespace binding = latentmf::binding;
  binding::start_openmp();
  m.doc() = "Native core of latentmf (C++17, Eigen, OpenMP). Use the latentmf package, not this module.";
  pybind11::register_exception<latentmf::AllocationError>(m, "AllocationError", PyExc_MemoryError);
  binding::bind_info(m);
  binding::bind_models(m);
  binding::bind_ratings(m);
  binding::bind_training(m);
  binding::bind_predict(m);
  binding::bind_shards(m);
  binding::bind_rows(m);
  binding::bind_bpr(m);
}
