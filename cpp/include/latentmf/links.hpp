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
#include "prefetch.hpp"

namespace latentmf {

// The columns' entries: column j's rows are rows[offsets[j] .. offsets[j + 1]), each with the
// weight weight[row].
struct LinkEntries {
  const std::int64_t* offsets = nullptr;  // n_cols + 1
  const std::int32_t* rows = nullptr;
  const double* weight = nullptr;         // n_rows
  std::int64_t n_cols = 0;
  std::int64_t n_rows = 0;
};

// Entries ahead whose rows of the residuals are asked for early: a column's rows lie anywhere in
// them (tens of megabytes for a large side), and every entry reads and writes its row. (Written out
// in the loops: GCC took a function that only prefetched for one without effects.)
constexpr std::int64_t link_prefetch = 8;

// out (n_rows x D) = X L: row n gets w_n times the sum of the links of its entries' columns.
inline void link_product(const LinkEntries& e, const double* links, std::int64_t D, double* out) {
  std::fill(out, out + e.n_rows * D, 0.0);
  for (std::int64_t j = 0; j < e.n_cols; ++j)
    for (std::int64_t k = e.offsets[j]; k < e.offsets[j + 1]; ++k) {
      if (k + link_prefetch < e.offsets[j + 1])
        for (std::int64_t d = 0; d < D; d += 8) LATENTMF_PREFETCH(out + e.rows[k + link_prefetch] * D + d);
      const std::int64_t n = e.rows[k];
      const double w = e.weight[n];
      for (std::int64_t d = 0; d < D; ++d) out[n * D + d] += w * links[j * D + d];
    }
}

// One sweep over the links (see the top of this file). `residual` (n_rows x D) holds A on entry and
// A - X L (with the new links) on return; `noise` holds e_j for every column.
inline void link_sweep(const LinkEntries& e, double* residual, double* links, const double* noise, std::int64_t D,
                       double lambda) {
  require(std::isfinite(lambda) && lambda > 0, "the links' regularization must be > 0, got ", lambda);
  std::vector<double> product(static_cast<std::size_t>(e.n_rows * D)), sum(static_cast<std::size_t>(D)),
      change(static_cast<std::size_t>(D));
  link_product(e, links, D, product.data());
  for (std::int64_t i = 0; i < e.n_rows * D; ++i) residual[i] -= product[i];
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
      const std::int64_t n = e.rows[k];
      const double w = e.weight[n];
      for (std::int64_t d = 0; d < D; ++d) residual[n * D + d] -= w * change[d];
    }
  }
}

}  // namespace latentmf
