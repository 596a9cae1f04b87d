// The parts of the latentmf._core module, one function per file, each adding its classes and
// functions to the module (core.cpp calls them all, after start_openmp).
#pragma once

#include <pybind11/pybind11.h>

namespace latentmf::binding {

// openmp.cpp: starts the OpenMP runtime within the processors, leaving OMP_NUM_THREADS as it was.
// Called first, before anything else of the module can call OpenMP.
void start_openmp();

void bind_info(pybind11::module_& m);      // info.cpp: build, instruction-set level, memory
void bind_models(pybind11::module_& m);    // model.cpp: storage of U, V, biases, accumulators
void bind_ratings(pybind11::module_& m);   // ratings.cpp: checks and native orderings of ratings
void bind_training(pybind11::module_& m);  // training.cpp: objective, gradients, SGD
void bind_predict(pybind11::module_& m);   // predict.cpp: predictions and top-k
void bind_shards(pybind11::module_& m);    // shards.cpp: training on a cluster (latentmf.dask)
void bind_rows(pybind11::module_& m);      // rows.cpp: the row solver (ALS, iALS, Gibbs), Gramian, iALS loss
void bind_bpr(pybind11::module_& m);       // bpr.cpp: BPR's grid of positives and its sub-epochs

}  // namespace latentmf::binding
