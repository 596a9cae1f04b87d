// The instruction-set level whose kernels run, shared by every entry point of the binding.
#pragma once

#include "latentmf/dispatch.hpp"

namespace latentmf::binding {

// The level's kernel table, read once per call (a call runs one level from start to end, even
// when select_isa changes the level meanwhile from another thread).
const Kernels<float>& active_kernels(float);
const Kernels<double>& active_kernels(double);

template <class Scalar>
const Kernels<Scalar>& kernels() {
  return active_kernels(Scalar{});
}

}  // namespace latentmf::binding
