// The kernels for one instruction-set level: CMake compiles this file once per level with
// LATENTMF_ISA set to the level's name (generic, avx2, avx512).
//
// Only the kernel headers are compiled for the level (inside the target region below). Everything
// they share with the rest of the extension (the standard library, the data structures, the
// checks) is included first, outside the region, so that it is compiled for the baseline only:
// otherwise the linker could keep an AVX-512 copy of, say, a std::vector member and call it on a
// CPU without AVX-512.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "latentmf/blocks.hpp"
#include "latentmf/bpr.hpp"
#include "latentmf/checks.hpp"
#include "latentmf/compressed.hpp"
#include "latentmf/dispatch.hpp"
#include "latentmf/factors.hpp"
#include "latentmf/least_norm.hpp"
#include "latentmf/parallel.hpp"
#include "latentmf/ratings.hpp"
#include "latentmf/rows.hpp"
#include "latentmf/shards.hpp"

#define LATENTMF_STRINGIFY(x) #x
#define LATENTMF_PRAGMA(x) _Pragma(LATENTMF_STRINGIFY(x))

#if defined(LATENTMF_TARGET) && defined(__clang__)
LATENTMF_PRAGMA(clang attribute push(__attribute__((target(LATENTMF_TARGET))), apply_to = function))
#elif defined(LATENTMF_TARGET) && defined(__GNUC__)
#pragma GCC push_options
LATENTMF_PRAGMA(GCC target(LATENTMF_TARGET))
#endif

#include "latentmf/kernels/table.hpp"

namespace latentmf {
namespace LATENTMF_ISA {

const Kernels<float>& kernels_float() {
  static const Kernels<float> table = make_kernels<float>();
  return table;
}

const Kernels<double>& kernels_double() {
  static const Kernels<double> table = make_kernels<double>();
  return table;
}

}  // namespace LATENTMF_ISA
}  // namespace latentmf

#if defined(LATENTMF_TARGET) && defined(__clang__)
#pragma clang attribute pop
#elif defined(LATENTMF_TARGET) && defined(__GNUC__)
#pragma GCC pop_options
#endif
