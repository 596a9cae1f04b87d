// Row arithmetic for the kernels. With F known at compile time (16, 32, 64 or 128) a row is
// handled as a few SIMD vectors of the level's width (GCC and Clang vector extensions), so that
// dot products end in a short tree of vector additions; any other F, or another compiler, runs
// plain loops.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define LATENTMF_HAVE_SSE2 1
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#define LATENTMF_HAVE_NEON64 1
#endif

#include "isa.hpp"

#ifndef LATENTMF_VECTOR_BYTES
#define LATENTMF_VECTOR_BYTES 16
#endif

namespace latentmf {
namespace LATENTMF_ISA {

// F as a compile-time constant when FixedF > 0 (loops then unroll without remainders), else n.
template <int FixedF>
constexpr std::int64_t width(std::int64_t n) {
  return FixedF > 0 ? FixedF : n;
}

// Calls visit(std::integral_constant<int, F>) for the widths compiled as constants, and
// visit(std::integral_constant<int, 0>) for every other F.
template <class Visit>
decltype(auto) with_width(std::int64_t F, Visit&& visit) {
  switch (F) {
    case 16: return visit(std::integral_constant<int, 16>{});
    case 32: return visit(std::integral_constant<int, 32>{});
    case 64: return visit(std::integral_constant<int, 64>{});
    case 128: return visit(std::integral_constant<int, 128>{});
    default: return visit(std::integral_constant<int, 0>{});
  }
}

#if defined(__GNUC__) || defined(__clang__)
#define LATENTMF_HAVE_VECTORS 1

// A vector of Bytes / sizeof(Scalar) elements that may be loaded from any Scalar address.
template <class Scalar, int Bytes>
struct VectorOf;
#define LATENTMF_VECTOR_TYPE(Scalar, Bytes) \
  template <>                               \
  struct VectorOf<Scalar, Bytes> {          \
    typedef Scalar type __attribute__((vector_size(Bytes), aligned(sizeof(Scalar)), may_alias)); \
  };
LATENTMF_VECTOR_TYPE(float, 8)
LATENTMF_VECTOR_TYPE(float, 16)
LATENTMF_VECTOR_TYPE(float, 32)
LATENTMF_VECTOR_TYPE(float, 64)
LATENTMF_VECTOR_TYPE(double, 16)
LATENTMF_VECTOR_TYPE(double, 32)
LATENTMF_VECTOR_TYPE(double, 64)
#undef LATENTMF_VECTOR_TYPE

template <class Scalar>
using Vector = typename VectorOf<Scalar, LATENTMF_VECTOR_BYTES>::type;

template <class Scalar>
constexpr int vector_width = LATENTMF_VECTOR_BYTES / int(sizeof(Scalar));

// Whether rows of FixedF elements are handled as whole vectors.
template <int FixedF, class Scalar>
constexpr bool vectorised = FixedF > 0 && FixedF % vector_width<Scalar> == 0;

template <class Scalar>
inline Vector<Scalar> load(const Scalar* p) {
  return *reinterpret_cast<const Vector<Scalar>*>(p);
}

template <class Scalar>
inline void store(Scalar* p, Vector<Scalar> v) {
  *reinterpret_cast<Vector<Scalar>*>(p) = v;
}

// The sum of a vector's elements: halves added until two or four elements remain.
template <class Scalar, int Bytes>
inline Scalar horizontal_sum(typename VectorOf<Scalar, Bytes>::type v) {
  if constexpr (Bytes == 16 && sizeof(Scalar) == 8) {
    return v[0] + v[1];
  } else if constexpr (Bytes == 8) {
    return v[0] + v[1];
  } else {
    typename VectorOf<Scalar, Bytes / 2>::type low, high;
    std::memcpy(&low, &v, Bytes / 2);
    std::memcpy(&high, reinterpret_cast<const char*>(&v) + Bytes / 2, Bytes / 2);
    return horizontal_sum<Scalar, Bytes / 2>(low + high);
  }
}

template <class Scalar>
inline Scalar horizontal_sum(Vector<Scalar> v) {
  return horizontal_sum<Scalar, LATENTMF_VECTOR_BYTES>(v);
}

// Whether any element of a or b exceeds t (NaN never does).
template <class Scalar>
inline bool any_above(Vector<Scalar> a, Vector<Scalar> b, Scalar t) {
  const auto above = (a > t) | (b > t);  // lanes of all ones where true
  std::uint64_t words[sizeof(above) / 8];
  std::memcpy(words, &above, sizeof(above));
  std::uint64_t any = 0;
  for (std::uint64_t w : words) any |= w;
  return any != 0;
}

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
// Which element of (a, b), b's numbered from W, is term `odd` (0 or 1) of element i of a pairwise
// sum of two vectors of W elements in lanes of E (16 bytes). Inside lanes: each lane gets its
// adjacent pairs from a, then from b (shuffles that stay inside lanes are the cheapest). Across
// lanes: the first half of the lanes gets a's adjacent pairs of lanes, the second half b's.
constexpr int pair_source(int i, int W, int E, bool across_lanes, int odd) {
  if (!across_lanes) {
    const int lane = i / E, j = i % E, half = E / 2;
    return (j < half ? 0 : W) + lane * E + 2 * (j % half) + odd;
  }
  const int lane = i / E, j = i % E, half = W / E / 2;
  return (lane < half ? 0 : W) + (2 * (lane % half) + odd) * E + j;
}

template <bool AcrossLanes, int E, class V, std::size_t... I>
inline V pairwise_add(V a, V b, std::index_sequence<I...>) {
  constexpr int W = int(sizeof...(I));
  return __builtin_shufflevector(a, b, pair_source(int(I), W, E, AcrossLanes, 0)...) +
         __builtin_shufflevector(a, b, pair_source(int(I), W, E, AcrossLanes, 1)...);
}

// One level of horizontal_sums: the Count vectors of `level` hold the partial sums of N vectors,
// N / Count vectors' in each, vector by vector in order; each has InLane partials in every lane of
// E elements and Lanes partials across lanes. Partials inside lanes are added first, then across
// lanes. A level with several vectors adds pairs of two at a time; a single vector is added to
// itself (its partials halve, duplicated); vectors with one sum per vector are the result.
template <int Count, int InLane, int Lanes, int E, int N, class Scalar>
inline void reduce_level(const Vector<Scalar> (&level)[Count], Scalar (&out)[N]) {
  constexpr auto elements = std::make_index_sequence<vector_width<Scalar>>();
  constexpr bool across = InLane == 1;
  constexpr int next_in_lane = across ? 1 : InLane / 2, next_lanes = across ? Lanes / 2 : Lanes;
  if constexpr (InLane == 1 && Lanes == 1) {
    for (int i = 0; i < N; ++i) out[i] = level[i / (N / Count)][i % (N / Count)];
  } else {
    constexpr int next_count = Count > 1 ? Count / 2 : 1;
    Vector<Scalar> next[next_count];
    for (int i = 0; i < next_count; ++i)
      next[i] = pairwise_add<across, E>(level[2 * i], level[Count > 1 ? 2 * i + 1 : 0], elements);
    reduce_level<next_count, next_in_lane, next_lanes, E>(next, out);
  }
}
#endif

// The sums of the elements of N vectors at once (N a power of two). Adding adjacent pairs of two
// vectors at a time shares the shuffles between them: half the instructions of N separate
// reductions, or fewer.
template <int N, class Scalar>
inline void horizontal_sums(const Vector<Scalar> (&v)[N], Scalar (&out)[N]) {
  static_assert(N >= 2 && (N & (N - 1)) == 0, "N must be a power of two");
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
  constexpr int E = 16 / int(sizeof(Scalar));  // elements in a 16-byte lane
  reduce_level<N, E, vector_width<Scalar> / E, E>(v, out);
#else
  for (int i = 0; i < N; ++i) out[i] = horizontal_sum<Scalar>(v[i]);
#endif
}

// sum_i a[i] * b[i] over K vectors, in two interleaved accumulators (half the dependent chain).
template <int K, class Scalar>
inline Scalar dot_vectors(const Vector<Scalar>* a, const Vector<Scalar>* b) {
  Vector<Scalar> even = a[0] * b[0];
  if constexpr (K == 1) {
    return horizontal_sum<Scalar>(even);
  } else {
    Vector<Scalar> odd = a[1] * b[1];
    for (int i = 2; i < K; i += 2) {
      even += a[i] * b[i];
      if (i + 1 < K) odd += a[i + 1] * b[i + 1];
    }
    return horizontal_sum<Scalar>(even + odd);
  }
}
#else
template <int FixedF, class Scalar>
constexpr bool vectorised = false;
#endif

template <int FixedF, class Scalar>
inline Scalar dot(const Scalar* a, const Scalar* b, std::int64_t n) {
#ifdef LATENTMF_HAVE_VECTORS
  if constexpr (vectorised<FixedF, Scalar>) {
    constexpr int K = FixedF / vector_width<Scalar>;
    Vector<Scalar> x[K], y[K];
    for (int i = 0; i < K; ++i) {
      x[i] = load(a + i * vector_width<Scalar>);
      y[i] = load(b + i * vector_width<Scalar>);
    }
    return dot_vectors<K, Scalar>(x, y);
  }
#endif
  const std::int64_t F = width<FixedF>(n);
  Scalar sum = 0;
  LATENTMF_OMP_SIMD(reduction(+ : sum))
  for (std::int64_t f = 0; f < F; ++f) sum += a[f] * b[f];
  return sum;
}

template <int FixedF, class Scalar>
inline Scalar squared_norm(const Scalar* a, std::int64_t n) {
  return dot<FixedF>(a, a, n);
}

// out[i] = eta / sqrt(g[i]) for four values, with one SIMD square root and one division where the
// platform has them (correctly rounded, so the same bits as one at a time): scalar square roots
// and divisions were what limited AdaGrad's throughput.
inline void rsqrt_steps(float eta, const float (&g)[4], float (&out)[4]) {
#if defined(LATENTMF_HAVE_SSE2)
  _mm_storeu_ps(out, _mm_div_ps(_mm_set1_ps(eta), _mm_sqrt_ps(_mm_loadu_ps(g))));
#elif defined(LATENTMF_HAVE_NEON64)
  vst1q_f32(out, vdivq_f32(vdupq_n_f32(eta), vsqrtq_f32(vld1q_f32(g))));
#else
  for (int i = 0; i < 4; ++i) out[i] = eta / std::sqrt(g[i]);
#endif
}

inline void rsqrt_steps(double eta, const double (&g)[4], double (&out)[4]) {
#if defined(LATENTMF_HAVE_SSE2)
  const __m128d numerator = _mm_set1_pd(eta);
  _mm_storeu_pd(out, _mm_div_pd(numerator, _mm_sqrt_pd(_mm_loadu_pd(g))));
  _mm_storeu_pd(out + 2, _mm_div_pd(numerator, _mm_sqrt_pd(_mm_loadu_pd(g + 2))));
#elif defined(LATENTMF_HAVE_NEON64)
  const float64x2_t numerator = vdupq_n_f64(eta);
  vst1q_f64(out, vdivq_f64(numerator, vsqrtq_f64(vld1q_f64(g))));
  vst1q_f64(out + 2, vdivq_f64(numerator, vsqrtq_f64(vld1q_f64(g + 2))));
#else
  for (int i = 0; i < 4; ++i) out[i] = eta / std::sqrt(g[i]);
#endif
}

// Asks for a row of n scalars to be brought into cache ahead of its use.
template <class Scalar>
inline void prefetch_row(const Scalar* row, std::int64_t n) {
  const char* bytes = reinterpret_cast<const char*>(row);
  for (std::int64_t offset = 0; offset < n * std::int64_t(sizeof(Scalar)); offset += 64)
    LATENTMF_PREFETCH(bytes + offset);
}

}  // namespace LATENTMF_ISA
}  // namespace latentmf
