// Chooses among the kernel tables compiled in (cpp/dispatch/kernels.cpp) by what the CPU supports.
#include "latentmf/dispatch.hpp"

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "latentmf/errors.hpp"

namespace latentmf {

#define LATENTMF_DECLARE_TABLES(level)        \
  namespace level {                           \
  const Kernels<float>& kernels_float();      \
  const Kernels<double>& kernels_double();    \
  }

LATENTMF_DECLARE_TABLES(generic)
#ifdef LATENTMF_HAVE_AVX2
LATENTMF_DECLARE_TABLES(avx2)
#endif
#ifdef LATENTMF_HAVE_AVX512
LATENTMF_DECLARE_TABLES(avx512)
#endif

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    default: return "generic";
  }
}

std::vector<Isa> compiled_isas() {
  std::vector<Isa> levels{Isa::generic};
#ifdef LATENTMF_HAVE_AVX2
  levels.push_back(Isa::avx2);
#endif
#ifdef LATENTMF_HAVE_AVX512
  levels.push_back(Isa::avx512);
#endif
  return levels;
}

bool cpu_supports(Isa isa) {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  switch (isa) {
    case Isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      return cpu_supports(Isa::avx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    default: return true;
  }
#else
  return isa == Isa::generic;
#endif
}

Isa best_isa() {
  Isa best = Isa::generic;
  for (Isa isa : compiled_isas())
    if (cpu_supports(isa)) best = isa;
  return best;
}

Isa isa_from_name(const std::string& name) {
  std::string known;
  for (Isa isa : compiled_isas()) {
    if (name == isa_name(isa)) return isa;
    known += std::string(known.empty() ? "" : ", ") + isa_name(isa);
  }
  fail("unknown or not compiled instruction-set level '", name, "'; this build has: ", known);
}

namespace {

// The active level. Atomic, because the binding's calls read it with the GIL released while
// another thread may select a level. A function's static, so that it is initialised on first use
// whatever the order in which the translation units' globals are.
std::atomic<Isa>& active_level() {
  static std::atomic<Isa> level{best_isa()};
  return level;
}

}  // namespace

Isa active_isa() { return active_level().load(); }

void select_active_isa(Isa isa) {
  const auto compiled = compiled_isas();
  require(std::find(compiled.begin(), compiled.end(), isa) != compiled.end(), "instruction-set level '",
          isa_name(isa), "' is not compiled into this build");
  require(cpu_supports(isa), "instruction-set level '", isa_name(isa),
          "' is compiled in but this CPU cannot run it");
  active_level().store(isa);
}

const Kernels<float>& kernels_float(Isa isa) {
  switch (isa) {
#ifdef LATENTMF_HAVE_AVX512
    case Isa::avx512: return avx512::kernels_float();
#endif
#ifdef LATENTMF_HAVE_AVX2
    case Isa::avx2: return avx2::kernels_float();
#endif
    default: return generic::kernels_float();
  }
}

const Kernels<double>& kernels_double(Isa isa) {
  switch (isa) {
#ifdef LATENTMF_HAVE_AVX512
    case Isa::avx512: return avx512::kernels_double();
#endif
#ifdef LATENTMF_HAVE_AVX2
    case Isa::avx2: return avx2::kernels_double();
#endif
    default: return generic::kernels_double();
  }
}

}  // namespace latentmf
