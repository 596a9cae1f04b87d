// What this build of the core was compiled with, for latentmf.build_info().
#pragma once

#include <string>
#include <vector>

#include <Eigen/Core>

namespace latentmf {

struct BuildInfo {
  bool openmp;
  int openmp_version;  // the _OPENMP date macro (e.g. 201511), 0 without OpenMP
  std::string compiler;
  std::string eigen_version;
  std::string eigen_simd;
  std::vector<std::string> instruction_sets;
  std::vector<std::string> float_types;
};

inline std::string compiler_name() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
  return "msvc " + std::to_string(_MSC_VER);
#else
  return "unknown";
#endif
}

// The instruction-set extensions the compiler was allowed to use for this build.
inline std::vector<std::string> compiled_instruction_sets() {
  std::vector<std::string> sets;
#if defined(__SSE2__) || defined(_M_X64)
  sets.push_back("sse2");
#endif
#ifdef __SSE4_2__
  sets.push_back("sse4.2");
#endif
#ifdef __AVX__
  sets.push_back("avx");
#endif
#ifdef __AVX2__
  sets.push_back("avx2");
#endif
#ifdef __FMA__
  sets.push_back("fma");
#endif
#ifdef __AVX512F__
  sets.push_back("avx512f");
#endif
#if defined(__ARM_NEON) || defined(__ARM_NEON__)
  sets.push_back("neon");
#endif
  return sets;
}

inline BuildInfo build_info() {
  BuildInfo info;
#ifdef _OPENMP
  info.openmp = true;
  info.openmp_version = _OPENMP;
#else
  info.openmp = false;
  info.openmp_version = 0;
#endif
  info.compiler = compiler_name();
  info.eigen_version = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) +
                       "." + std::to_string(EIGEN_MINOR_VERSION);
  info.eigen_simd = Eigen::SimdInstructionSetsInUse();
  info.instruction_sets = compiled_instruction_sets();
  info.float_types = {"float32", "float64"};
  return info;
}

}  // namespace latentmf
