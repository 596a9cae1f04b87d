// How the extension was built, and which instruction-set level runs.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings.hpp"
#include "latentmf/build_info.hpp"
#include "latentmf/dispatch.hpp"
#include "latentmf/memory.hpp"
#include "latentmf/parallel.hpp"

namespace latentmf::binding {
namespace {

namespace py = pybind11;

using namespace pybind11::literals;

std::vector<std::string> isa_names(bool supported_only) {
  std::vector<std::string> names;
  for (auto isa : compiled_isas())
    if (!supported_only || cpu_supports(isa)) names.push_back(isa_name(isa));
  return names;
}

py::dict build_info() {
  const auto info = latentmf::build_info();
  return py::dict("openmp"_a = info.openmp, "openmp_version"_a = info.openmp_version,
                  "compiler"_a = info.compiler, "eigen_version"_a = info.eigen_version,
                  "eigen_simd"_a = info.eigen_simd, "instruction_sets"_a = info.instruction_sets,
                  "isa_levels"_a = isa_names(false), "isa_levels_supported"_a = isa_names(true),
                  "isa"_a = isa_name(active_isa()), "float_types"_a = info.float_types,
                  "max_threads"_a = available_threads());
}

// Runs the kernels of the named level from the next call on; refuses a level this CPU cannot run.
void select_isa(const std::string& name) { select_active_isa(isa_from_name(name)); }

}  // namespace

void bind_info(py::module_& m) {
  m.def("build_info", &build_info);
  m.def("select_isa", &select_isa, "name"_a);
  m.def("available_threads", &available_threads);
  m.def("physical_memory", &physical_memory,
        "Bytes of physical memory of this machine (0 when unknown); larger requests raise MemoryError.");
}

}  // namespace latentmf::binding
