// The table of this level's kernels (one Kernels<Scalar> per float type), which the dispatcher
// hands out when this level is chosen.
#pragma once

#include <cstdint>

#include "../dispatch.hpp"
#include "gradients.hpp"
#include "isa.hpp"
#include "predict.hpp"
#include "sgd.hpp"

namespace latentmf {
namespace LATENTMF_ISA {

template <class Scalar>
Kernels<Scalar> make_kernels() {
  Kernels<Scalar> k;
  k.sgd_sub_epoch = &sgd_sub_epoch<Scalar>;
  k.grid_objective = &grid_objective<Scalar>;
  k.sgd_ordered_int32 = &sgd_ordered<Scalar, std::int32_t>;
  k.sgd_ordered_int64 = &sgd_ordered<Scalar, std::int64_t>;
  k.objective = &objective<Scalar>;
  k.gradients = &gradients<Scalar>;
  k.predict_int32 = &predict<Scalar, std::int32_t>;
  k.predict_int64 = &predict<Scalar, std::int64_t>;
  return k;
}

}  // namespace LATENTMF_ISA
}  // namespace latentmf
