// Small dense symmetric positive definite systems A x = b of order D (a few to a few hundred), as
// the row solver (rows.hpp) forms one per row: A += sum_j w_j y_j y_j^T, the Cholesky factor
// A = R^T R, and the two triangular solves. Written for this level's SIMD packs (the row of a
// matrix is D / W packs of W elements), not with Eigen: Eigen included outside the level's target
// region is baseline code, and inside it its inline templates would be merged across levels by
// the linker (see cpp/dispatch/kernels.cpp). Measured (factor and solve of one system in L1, CPU
// time, one Zen 5 core), Eigen 3.4's LLT at F = 32 / 64 / 128 took 3.3 / 10.7 / 42 us in float32
// and 3.9 / 13.8 / 69 us in float64 compiled for the baseline (12.7 us and 11.1 us at F = 64 with
// AVX-512 flags); these kernels took 0.92 / 2.35 / 7.4 us and 1.04 / 2.77 / 10.6 us at the avx512
// level, and 4.2 us and 6.9 us at F = 64 at the generic (SSE2) level.
//
// Conventions: a matrix is D x D, row-major, with D a multiple of both the pack width W and 4 (the
// height of the tiles below), so that every loop runs over whole packs; a system matrix has rows of
// system_stride (D columns, then the right-hand sides). A system of n < D unknowns is padded with an
// identity block (A_ii = 1, b_i = 0 for i >= n): its padded unknowns solve to 0 and change nothing
// else.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "isa.hpp"
#include "vector.hpp"

namespace latentmf {
namespace LATENTMF_ISA {

#ifdef LATENTMF_HAVE_VECTORS
template <class Scalar>
using Pack = Vector<Scalar>;
template <class Scalar>
constexpr int pack_width = vector_width<Scalar>;
template <class Scalar>
inline Pack<Scalar> load_pack(const Scalar* p) {
  return load(p);
}
template <class Scalar>
inline void store_pack(Scalar* p, Pack<Scalar> v) {
  store(p, v);
}
template <class Scalar>
inline Scalar pack_sum(Pack<Scalar> v) {
  return horizontal_sum<Scalar>(v);
}
#else
// Without vector extensions a pack is one element; the compiler may still vectorise the loops.
template <class Scalar>
using Pack = Scalar;
template <class Scalar>
constexpr int pack_width = 1;
template <class Scalar>
inline Scalar load_pack(const Scalar* p) {
  return *p;
}
template <class Scalar>
inline void store_pack(Scalar* p, Scalar v) {
  *p = v;
}
template <class Scalar>
inline Scalar pack_sum(Scalar v) {
  return v;
}
#endif

// Rows per tile of the products and per block of the factorization and the solves.
constexpr int tile_rows = 4;
// Right-hand sides carried as extra columns through the factorization (see cholesky()).
constexpr int rhs_columns = 2;

// The padded order D of a system of n unknowns: whole packs and whole tiles (both powers of two).
template <class Scalar>
constexpr std::int64_t padded_order(std::int64_t n) {
  constexpr std::int64_t m = pack_width<Scalar> > tile_rows ? pack_width<Scalar> : tile_rows;
  return (n + m - 1) / m * m;
}

// D as a compile-time constant when FixedD > 0 (the loops over packs then unroll), else d.
template <int FixedD>
constexpr std::int64_t order(std::int64_t d) {
  return FixedD > 0 ? FixedD : d;
}

// The row stride of a system matrix: D columns, then whole packs for the rhs_columns right-hand
// sides.
template <int FixedD, class Scalar>
constexpr std::int64_t system_stride(std::int64_t d) {
  constexpr std::int64_t W = pack_width<Scalar>;
  return order<FixedD>(d) + (rhs_columns + W - 1) / W * W;
}

// The pack holding element i of a row.
template <class Scalar>
constexpr std::int64_t pack_of(std::int64_t i) {
  return i / pack_width<Scalar>;
}

// A[i0 + i][c] (+ or -)= sum_{j < count} left[j][i0 + i] right[j][c] for the tile_rows rows from i0
// and the Packs packs from p0 (A's rows of stride a_stride, left's and right's of stride `stride`):
// the tile's sums stay in registers over all j, so each step loads Packs packs and tile_rows
// scalars for tile_rows * Packs multiply-adds.
template <int Packs, bool Subtract, class Scalar>
inline void product_tile(Scalar* LATENTMF_RESTRICT A, std::int64_t a_stride, const Scalar* left, const Scalar* right,
                         std::int64_t count, std::int64_t stride, std::int64_t i0, std::int64_t p0) {
  constexpr int W = pack_width<Scalar>;
  Pack<Scalar> sum[tile_rows][Packs];
  for (int i = 0; i < tile_rows; ++i)
    for (int c = 0; c < Packs; ++c) sum[i][c] = Pack<Scalar>{};
  for (std::int64_t j = 0; j < count; ++j) {
    Pack<Scalar> y[Packs];
    for (int c = 0; c < Packs; ++c) y[c] = load_pack(right + j * stride + (p0 + c) * W);
    const Scalar* l = left + j * stride + i0;
    for (int i = 0; i < tile_rows; ++i) {
      const Scalar s = l[i];
      for (int c = 0; c < Packs; ++c) sum[i][c] += s * y[c];
    }
  }
  for (int i = 0; i < tile_rows; ++i)
    for (int c = 0; c < Packs; ++c) {
      Scalar* a = A + (i0 + i) * a_stride + (p0 + c) * W;
      store_pack(a, Subtract ? load_pack(a) - sum[i][c] : load_pack(a) + sum[i][c]);
    }
}

// Packs per tile at most: tile_rows x max_tile_packs sums and a row of packs stay in registers.
constexpr int max_tile_packs = 6;

template <bool Subtract, class Scalar>
inline void product_tile_of_width(std::int64_t width, Scalar* A, std::int64_t a_stride, const Scalar* left,
                                  const Scalar* right, std::int64_t count, std::int64_t stride, std::int64_t i0,
                                  std::int64_t p0) {
  switch (width) {
    case 6: product_tile<6, Subtract>(A, a_stride, left, right, count, stride, i0, p0); break;
    case 5: product_tile<5, Subtract>(A, a_stride, left, right, count, stride, i0, p0); break;
    case 4: product_tile<4, Subtract>(A, a_stride, left, right, count, stride, i0, p0); break;
    case 3: product_tile<3, Subtract>(A, a_stride, left, right, count, stride, i0, p0); break;
    case 2: product_tile<2, Subtract>(A, a_stride, left, right, count, stride, i0, p0); break;
    default: product_tile<1, Subtract>(A, a_stride, left, right, count, stride, i0, p0); break;
  }
}

// product_tile over the rows [i_begin, i_end) of A (whole tiles) and, in each tile, the packs from
// the one holding the tile's first row to pack `packs` (exclusive): the upper triangle and the
// packs that hold the diagonal, which is what the factorization reads. The packs of a tile row
// are split into tiles of about equal width.
template <bool Subtract, class Scalar>
void product_tiles(Scalar* A, std::int64_t a_stride, const Scalar* left, const Scalar* right, std::int64_t count,
                   std::int64_t stride, std::int64_t i_begin, std::int64_t i_end, std::int64_t packs) {
  for (std::int64_t i0 = i_begin; i0 < i_end; i0 += tile_rows) {
    const std::int64_t first = pack_of<Scalar>(i0), n = packs - first;
    const std::int64_t tiles = (n + max_tile_packs - 1) / max_tile_packs;
    for (std::int64_t t = 0, p = first; t < tiles; ++t) {
      const std::int64_t width = (n - (p - first) + (tiles - t) - 1) / (tiles - t);
      product_tile_of_width<Subtract>(width, A, a_stride, left, right, count, stride, i0, p);
      p += width;
    }
  }
}

// A += left^T right over `count` rows of D elements (left and right count x D, row-major; A's rows
// of stride a_stride), on the part of A the factorization reads. With left_j = w_j y_j and
// right_j = y_j this is A += sum_j w_j y_j y_j^T.
template <int FixedD, class Scalar>
void add_products(Scalar* A, std::int64_t a_stride, const Scalar* left, const Scalar* right, std::int64_t count,
                  std::int64_t d) {
  const std::int64_t D = order<FixedD>(d);
  if (count > 0) product_tiles<false>(A, a_stride, left, right, count, D, 0, D, D / pack_width<Scalar>);
}

// The tolerance of a pivot: A is taken as not positive definite when the k-th pivot is at most
// this times A_kk (the diagonal before factoring), that is when row k is, to rounding, a
// combination of the rows before it. Rounding leaves such a pivot at a few D epsilons of A_kk
// instead of 0; the factor 2 D is the usual bound on the growth of that error.
template <class Scalar>
Scalar pivot_tolerance(std::int64_t d) {
  return Scalar(2 * d) * std::numeric_limits<Scalar>::epsilon();
}

// The factor of a tile_rows x tile_rows diagonal block B (its upper triangle at `block`, rows of
// `stride`): r (upper, r^T r = B) and inverse[i] = 1 / r_ii. Returns false when a pivot is not above
// tolerance times its diagonal entry of A before factoring (`diagonal`).
template <class Scalar>
bool factor_block(const Scalar* block, std::int64_t stride, const Scalar* diagonal, Scalar tolerance,
                  Scalar (&r)[tile_rows][tile_rows], Scalar (&inverse)[tile_rows]) {
  for (int i = 0; i < tile_rows; ++i) {
    for (int j = i; j < tile_rows; ++j) {
      Scalar sum = block[i * stride + j];
      for (int q = 0; q < i; ++q) sum -= r[q][i] * r[q][j];
      r[i][j] = sum;
    }
    const Scalar pivot = r[i][i];
    if (!(pivot > tolerance * diagonal[i])) return false;
    const Scalar root = std::sqrt(pivot);
    inverse[i] = Scalar(1) / root;
    r[i][i] = root;
    for (int j = i + 1; j < tile_rows; ++j) r[i][j] *= inverse[i];
  }
  return true;
}

// A = R^T R in place for A of order D (rows of system_stride): R, upper triangular, replaces the
// upper triangle of A; the elements left of the diagonal in the diagonal's pack are set to 0 (the
// solves read them as packs), the packs left of those are scratch. inverse_diagonal[k] = 1 / R_kk;
// `diagonal` holds A's diagonal before the call. The columns after the D-th hold right-hand sides
// B (D x rhs_columns) and come out as R^{-T} B: the forward substitution is the same row operations.
//
// Up-looking in blocks of tile_rows rows. A block first takes the update of all the rows above it
// in one product tile (its sums stay in registers over all those rows). Then its diagonal block is
// factored in scalars (r^T r = B), and the block's rows become R's with one pass over their packs,
// solving r^T R_block = A_block pack by pack in registers. The pivots form a chain (a block's need
// the blocks above finished); done row by row through memory, with a square root and a division
// per row in it, that chain was where most of the time went at F = 64.
//
// Returns false, leaving A partly factored, when a pivot is not above pivot_tolerance * A_kk: A is
// then not numerically positive definite.
template <int FixedD, class Scalar>
bool cholesky(Scalar* A, const Scalar* diagonal, Scalar* inverse_diagonal, std::int64_t d) {
  constexpr int W = pack_width<Scalar>;
  const std::int64_t D = order<FixedD>(d), S = system_stride<FixedD, Scalar>(D), packs = S / W;
  const Scalar tolerance = pivot_tolerance<Scalar>(D);
  for (std::int64_t k0 = 0; k0 < D; k0 += tile_rows) {
    product_tiles<true>(A, S, A, A, k0, S, k0, k0 + tile_rows, packs);
    Scalar r[tile_rows][tile_rows], inverse[tile_rows];
    if (!factor_block(A + k0 * S + k0, S, diagonal + k0, tolerance, r, inverse)) return false;
    Scalar* rows[tile_rows];
    for (int i = 0; i < tile_rows; ++i) rows[i] = A + (k0 + i) * S;
    for (std::int64_t c = pack_of<Scalar>(k0) * W; c < S; c += W) {
      Pack<Scalar> x[tile_rows];
      for (int i = 0; i < tile_rows; ++i) {
        Pack<Scalar> a = load_pack(rows[i] + c);
        for (int q = 0; q < i; ++q) a -= r[q][i] * x[q];
        x[i] = inverse[i] * a;
        store_pack(rows[i] + c, x[i]);
      }
    }
    for (int i = 0; i < tile_rows; ++i) {
      const std::int64_t k = k0 + i;
      for (std::int64_t c = pack_of<Scalar>(k) * W; c < k; ++c) rows[i][c] = 0;
      for (int j = i; j < tile_rows; ++j) rows[i][k0 + j] = r[i][j];
      inverse_diagonal[k] = inverse[i];
    }
  }
  return true;
}

// x = R^{-1} c (back substitution) with the factor of cholesky(), in blocks of tile_rows from the
// last: the block's rows take their dot products with the unknowns already found together (one
// reduction for the block), then the block is solved one by one. x must be 0 on entry: the dot
// products start at a pack boundary and read the block's own unknowns, not yet computed, there
// (and R is 0 left of its diagonal in that pack).
template <int FixedD, class Scalar>
void solve_upper(const Scalar* R, const Scalar* inverse_diagonal, const Scalar* LATENTMF_RESTRICT c,
                 Scalar* LATENTMF_RESTRICT x, std::int64_t d) {
  constexpr int W = pack_width<Scalar>;
  const std::int64_t D = order<FixedD>(d), S = system_stride<FixedD, Scalar>(D);
  for (std::int64_t i0 = D - tile_rows; i0 >= 0; i0 -= tile_rows) {
    Scalar dots[tile_rows];
    const std::int64_t start = pack_of<Scalar>(i0 + tile_rows) * W;
#ifdef LATENTMF_HAVE_VECTORS
    Pack<Scalar> sums[tile_rows];
    for (int i = 0; i < tile_rows; ++i) sums[i] = Pack<Scalar>{};
    for (std::int64_t p = start; p < D; p += W) {
      const Pack<Scalar> xp = load_pack(x + p);
      for (int i = 0; i < tile_rows; ++i) sums[i] += load_pack(R + (i0 + i) * S + p) * xp;
    }
    horizontal_sums<tile_rows, Scalar>(sums, dots);
#else
    for (int i = 0; i < tile_rows; ++i) {
      Scalar s = 0;
      for (std::int64_t p = start; p < D; ++p) s += R[(i0 + i) * S + p] * x[p];
      dots[i] = s;
    }
#endif
    for (int i = tile_rows - 1; i >= 0; --i) {
      const std::int64_t row = i0 + i;
      Scalar s = c[row] - dots[i];
      // The block's own unknowns after `row`, which the pack sums read as 0.
      for (std::int64_t j = row + 1; j < i0 + tile_rows; ++j) s -= R[row * S + j] * x[j];
      x[row] = s * inverse_diagonal[row];
    }
  }
}

// out = S v for a symmetric S (D x D, rows of stride `stride`): out = sum_i v_i S_i, rows as packs.
// With D a compile-time constant the sums stay in registers, in two sets that take the rows in turn.
template <int FixedD, class Scalar>
void symmetric_product(const Scalar* S, std::int64_t stride, const Scalar* LATENTMF_RESTRICT v,
                       Scalar* LATENTMF_RESTRICT out, std::int64_t d) {
  constexpr int W = pack_width<Scalar>;
#ifdef LATENTMF_HAVE_VECTORS
  if constexpr (FixedD > 0 && FixedD / W <= 8) {
    constexpr int K = FixedD / W;
    Pack<Scalar> sum[2][K];
    for (int c = 0; c < K; ++c) sum[0][c] = sum[1][c] = Pack<Scalar>{};
    for (std::int64_t i = 0; i < FixedD; i += 2)
      for (int set = 0; set < 2; ++set) {
        const Scalar vi = v[i + set];
        const Scalar* row = S + (i + set) * stride;
        for (int c = 0; c < K; ++c) sum[set][c] += vi * load_pack(row + c * W);
      }
    for (int c = 0; c < K; ++c) store_pack(out + c * W, sum[0][c] + sum[1][c]);
    return;
  }
#endif
  const std::int64_t D = order<FixedD>(d);
  for (std::int64_t c = 0; c < D; c += W) store_pack(out + c, Pack<Scalar>{});
  for (std::int64_t i = 0; i < D; ++i) {
    const Scalar vi = v[i];
    const Scalar* row = S + i * stride;
    for (std::int64_t c = 0; c < D; c += W) store_pack(out + c, load_pack(out + c) + vi * load_pack(row + c));
  }
}

// a . b over D elements, as packs.
template <int FixedD, class Scalar>
Scalar padded_dot(const Scalar* a, const Scalar* b, std::int64_t d) {
  constexpr int W = pack_width<Scalar>;
  const std::int64_t D = order<FixedD>(d);
  Pack<Scalar> sum{};
  for (std::int64_t c = 0; c < D; c += W) sum += load_pack(a + c) * load_pack(b + c);
  return pack_sum<Scalar>(sum);
}

// y += s x over D elements, as packs.
template <int FixedD, class Scalar>
void padded_axpy(Scalar s, const Scalar* LATENTMF_RESTRICT x, Scalar* LATENTMF_RESTRICT y, std::int64_t d) {
  constexpr int W = pack_width<Scalar>;
  const std::int64_t D = order<FixedD>(d);
  for (std::int64_t c = 0; c < D; c += W) store_pack(y + c, load_pack(y + c) + s * load_pack(x + c));
}

}  // namespace LATENTMF_ISA
}  // namespace latentmf
