// The instruction-set level the kernel headers are compiled for. Each level's kernels live in
// the namespace latentmf::LATENTMF_ISA, so that the copies built for different levels (see
// cpp/dispatch/kernels.cpp) have names of their own and the linker never mixes them up.
#pragma once

#ifndef LATENTMF_ISA
#define LATENTMF_ISA generic
#endif

#include "../prefetch.hpp"

#if defined(__GNUC__) || defined(__clang__)
#define LATENTMF_RESTRICT __restrict__
#else
#define LATENTMF_RESTRICT __restrict
#endif

// `#pragma omp simd` with the given clauses, for GCC and Clang (with OpenMP or -fopenmp-simd).
// Nothing for MSVC, whose /openmp implements OpenMP 2.0, which has no simd directive.
#if defined(__GNUC__) || defined(__clang__)
#define LATENTMF_PRAGMA_TEXT(text) _Pragma(#text)
#define LATENTMF_OMP_SIMD(...) LATENTMF_PRAGMA_TEXT(omp simd __VA_ARGS__)
#else
#define LATENTMF_OMP_SIMD(...)
#endif

// Inlines every call in the function so marked, recursively: for loops whose body is too large
// for the compiler's own inlining limits but must become one piece of straight code.
// Not under the sanitizers (.ci/sanitize): with the flattened SGD blocks instrumented, compiling
// one level's kernels took over 17 minutes on 2 busy cores (4 without), and speed does not matter
// there.
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define LATENTMF_FLATTEN __attribute__((flatten))
#else
#define LATENTMF_FLATTEN
#endif
