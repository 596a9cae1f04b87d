// The implicit-feedback links of the Gibbs sampler (latentmf.gibbs_sweep). Row n of one side (a
// user, say) has the prior mean mu + sum over its entries' columns j (the items it rated) of
// w_n l_j, with w_n = c_n^{-1/2} and c_n its number of entries: the implicit term of SVD++ (Koren
// 2008), written as the link matrix of a Gaussian prior whose mean depends on side information
// (Macau, Simm et al. 2015). The links l_j (n_cols x D) have the prior N(0, (lambda Lambda)^{-1}).
//
// A sweep draws the links one column after the other, each from its conditional given the rest:
// with the residuals R = A - X L (A: the rows minus mu; X_{nj} = w_n for each entry),
//
//   s_j = sum_{n in N(j)} w_n^2,   g_j = sum_{n in N(j)} w_n R_n + s_j l_j,
//   l_j <- g_j / (s_j + lambda) + e_j / sqrt(s_j + lambda),   e_j ~ N(0, Lambda^{-1}) (the caller's)
//
// and R updated at once (each column's draw sees the columns before it). Sequential in a fixed
// order, so the same bits for any thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "errors.hpp"
#include "parallel.hpp"
#include "prefetch.hpp"

namespace latentmf {

// The entries both ways: column j's rows are rows[offsets[j] .. offsets[j + 1]), row n's columns
// cols[row_offsets[n] .. row_offsets[n + 1]); row n has the weight weight[n].
struct LinkEntries {
  const std::int64_t* offsets = nullptr;  // n_cols + 1
  const std::int32_t* rows = nullptr;
  const std::int64_t* row_offsets = nullptr;  // n_rows + 1
  const std::int32_t* cols = nullptr;
  const double* weight = nullptr;  // n_rows
  std::int64_t n_cols = 0;
  std::int64_t n_rows = 0;
};

// Entries ahead whose rows are asked for early: a column's rows lie anywhere in the residuals (tens
// of megabytes for a large side), and every entry reads and writes its row; likewise a row's
// columns in the links. (Written out in the loops: GCC took a function that only prefetched for
// one without effects.)
constexpr std::int64_t link_prefetch = 24;

// out (n_rows x D) = X L: row n gets w_n times the sum of the links of its columns. With fewer
// columns than rows (a user's links, one per item), row by row in parallel, each row's links
// added in its order (the links, the smaller array, are read at random). With more columns, column
// by column on one thread, each column's link scattered into its rows (the links are read in
// order, the smaller output at random): by-row took twice as long there. Either way the order is
// the data's, so the same bits for any thread count.
inline void link_product(const LinkEntries& e, const double* links, std::int64_t D, double* out, int threads) {
  if (e.n_cols > e.n_rows) {
    std::fill(out, out + e.n_rows * D, 0.0);
    for (std::int64_t j = 0; j < e.n_cols; ++j)
      for (std::int64_t k = e.offsets[j]; k < e.offsets[j + 1]; ++k) {
        if (k + link_prefetch < e.offsets[j + 1])
          for (std::int64_t d = 0; d < D; d += 8) LATENTMF_PREFETCH(out + e.rows[k + link_prefetch] * D + d);
        const std::int64_t n = e.rows[k];
        const double w = e.weight[n];
        for (std::int64_t d = 0; d < D; ++d) out[n * D + d] += w * links[j * D + d];
      }
    return;
  }
  const Chunks chunks = even_chunks(e.n_rows, 256);
  parallel_for(chunks.count(), threads, [&](std::int64_t c) {
    for (std::int64_t n = chunks.begin(c); n < chunks.end(c); ++n) {
      double* row = out + n * D;
      std::fill(row, row + D, 0.0);
      for (std::int64_t k = e.row_offsets[n]; k < e.row_offsets[n + 1]; ++k) {
        if (k + link_prefetch < e.row_offsets[n + 1])
          for (std::int64_t d = 0; d < D; d += 8) LATENTMF_PREFETCH(links + e.cols[k + link_prefetch] * D + d);
        const double* l = links + std::int64_t(e.cols[k]) * D;
        for (std::int64_t d = 0; d < D; ++d) row[d] += l[d];
      }
      for (std::int64_t d = 0; d < D; ++d) row[d] *= e.weight[n];
    }
  });
}

// One sweep over the links (see the top of this file). `residual` (n_rows x D) holds A - X L on
// entry (the caller has X L: the prior means it drew the rows with) and A - X L with the new links
// on return; `noise` holds e_j for every column.
inline void link_sweep(const LinkEntries& e, double* residual, double* links, const double* noise, std::int64_t D,
                       double lambda) {
  require(std::isfinite(lambda) && lambda > 0, "the links' regularization must be > 0, got ", lambda);
  std::vector<double> sum(static_cast<std::size_t>(D)), change(static_cast<std::size_t>(D));
  for (std::int64_t j = 0; j < e.n_cols; ++j) {
    double s = 0;
    std::fill(sum.begin(), sum.end(), 0.0);
    for (std::int64_t k = e.offsets[j]; k < e.offsets[j + 1]; ++k) {
      if (k + link_prefetch < e.offsets[j + 1])
        for (std::int64_t d = 0; d < D; d += 8) LATENTMF_PREFETCH(residual + e.rows[k + link_prefetch] * D + d);
      const std::int64_t n = e.rows[k];
      const double w = e.weight[n];
      s += w * w;
      for (std::int64_t d = 0; d < D; ++d) sum[d] += w * residual[n * D + d];
    }
    const double precision = s + lambda, scale = 1.0 / std::sqrt(precision);
    double* l = links + j * D;
    for (std::int64_t d = 0; d < D; ++d) {
      const double drawn = (sum[d] + s * l[d]) / precision + scale * noise[j * D + d];
      change[d] = drawn - l[d];
      l[d] = drawn;
    }
    for (std::int64_t k = e.offsets[j]; k < e.offsets[j + 1]; ++k) {
      if (k + link_prefetch < e.offsets[j + 1])
        for (std::int64_t d = 0; d < D; d += 8) LATENTMF_PREFETCH(residual + e.rows[k + link_prefetch] * D + d);
      const std::int64_t n = e.rows[k];
      const double w = e.weight[n];
      for (std::int64_t d = 0; d < D; ++d) residual[n * D + d] -= w * change[d];
    }
  }
}

}  // namespace latentmf
