"""Memory that cannot be had is refused with MemoryError and the size, before anything is allocated;
absurd thread counts run on the processors there are instead of ending the process."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import latentmf
from latentmf import _checks, _core

from conftest import peak_memory_growth, random_ratings

#: Indices are int32 inside: the most users and items a Ratings may declare.
MAX_ROWS = 2**31 - 1


def _state(model):
    return [model.U.copy(), model.V.copy(), model.user_bias_.copy(), model.item_bias_.copy(),
            {key: list(values) for key, values in model.history_.items()}]


def _assert_same_state(before, after):
    for a, b in zip(before[:-1], after[:-1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert before[-1] == after[-1]


@pytest.fixture
def huge():
    """One rating declared among 2^31 - 1 users and items: every per-user structure is too large."""
    return latentmf.Ratings([0], [0], [1.0], n_users=MAX_ROWS, n_items=MAX_ROWS)


def test_the_physical_memory_is_known():
    assert _core.physical_memory() > 2**28  # more than 256 MiB on any machine that runs the tests


@pytest.mark.parametrize("dtype", [_core.ModelFloat32, _core.ModelFloat64])
def test_a_native_model_larger_than_memory_is_refused_before_allocating(dtype):
    with peak_memory_growth() as growth:
        with pytest.raises(MemoryError, match=r"cannot allocate \d+\.\d MiB for the model .*: more than the "
                                              r"\d+\.\d MiB of physical memory") as caught:
            dtype(MAX_ROWS, MAX_ROWS, 2**20)
    assert growth.bytes < 2**24
    assert isinstance(caught.value, _core.AllocationError)


def test_peak_memory_growth_sees_native_allocations():
    """The measure the memory tests rely on sees what the native core allocates (tracemalloc does not)."""
    with peak_memory_growth() as growth:
        model = _core.ModelFloat32(1_000_000, 10, 50)
    assert growth.bytes > 150 * 2**20
    del model


def test_sizes_that_overflow_are_refused():
    with pytest.raises(MemoryError, match="MiB"):
        _core.ModelFloat64(2**62, 2**62, 2**20)
    with pytest.raises(ValueError, match="n_users must be >= 1"):
        _core.ModelFloat32(-5, 3, 2)


def test_the_block_grid_of_too_many_users_is_refused(huge):
    with pytest.raises(MemoryError, match=r"MiB for the block grid of the ratings: more than"):
        latentmf.sgd_order(huge)
    with pytest.raises(MemoryError, match=r"MiB for the block grid"):
        _core.block_grid(huge.users, huge.items, huge.values, MAX_ROWS, MAX_ROWS, 1024, 0, "float32", 0)


def test_the_orderings_of_too_many_users_are_refused(huge):
    with pytest.raises(MemoryError, match=r"MiB for the by-user and by-item orderings"):
        huge.native_index("float64")


def test_fit_refuses_factors_that_cannot_fit_and_names_them(rng):
    ratings = random_ratings(rng, 20, 10, 60)
    model = latentmf.MatrixFactorization(factors=3, epochs=2).fit(ratings)
    before = _state(model)
    wide = latentmf.Ratings(ratings.users, ratings.items, ratings.values, n_users=10**6, n_items=10)
    model.set_params(factors=2**20)
    with pytest.raises(MemoryError, match=r"factors=1048576 for 1000000 users and 10 items.* need \d+\.\d MiB, "
                                          r"more than the \d+\.\d MiB of physical memory: use fewer factors"):
        model.fit(wide)
    _assert_same_state(before, _state(model))


def test_fit_counts_the_copies_it_falls_back_on(rng, monkeypatch):
    """With (pretend) 4 MiB of memory: a model of 3 MiB fits, but not with the copy of the factors
    that fit keeps to roll an epoch back."""
    ratings = random_ratings(rng, 5000, 100, 20000)
    model = latentmf.MatrixFactorization(factors=4, epochs=1).fit(ratings)
    before = _state(model)
    monkeypatch.setattr(_checks, "physical_memory", lambda: 4 * 2**20)
    model.set_params(factors=150, dtype="float32", solver="sgd")
    with pytest.raises(MemoryError, match=r"factors=150 for 5000 users and 100 items, float32\) and the copies "
                                          r"that training falls back on need 5.9 MiB, more than the 4.0 MiB"):
        model.fit(ratings)
    _assert_same_state(before, _state(model))
    # partial_fit continues on the model it has: only the copies count
    model.set_params(factors=4, solver="adagrad")
    monkeypatch.setattr(_checks, "physical_memory", lambda: 2**17)
    with pytest.raises(MemoryError, match=r"need 0.1 MiB"):
        model.partial_fit(ratings)
    _assert_same_state(before, _state(model))


@pytest.mark.parametrize("call", [
    lambda m: m.recommend(0, k=10**12),
    lambda m: m.recommend_all(k=10**9),
    lambda m: m.recommend_all([0, 1], k=2**62),
    lambda m: m.similar_items(0, k=10**13),
    lambda m: m.recommend_for(m.fold_in([1], [4.0]), k=10**12),
], ids=["recommend", "recommend_all", "recommend_all overflowing", "similar_items", "recommend_for"])
def test_top_k_lists_that_cannot_fit_are_refused(rng, call):
    """k beyond the items only pads the rows; a k whose rows cannot be held is a MemoryError (it
    used to be allocated under overcommit, and the process killed as the padding was written)."""
    model = latentmf.MatrixFactorization(factors=3, epochs=1).fit(random_ratings(rng, 20, 10, 60))
    before = _state(model)
    with pytest.raises(MemoryError, match=r"MiB for the top-k items and scores: more than the"):
        call(model)
    _assert_same_state(before, _state(model))
    assert model.recommend_all(k=12)[0].shape == (20, 12)


@pytest.mark.parametrize("threads", [10**9, 2**40])
def test_absurd_thread_counts_run_on_the_processors_there_are(rng, threads):
    ratings = random_ratings(rng, 50, 40, 500)
    one = latentmf.MatrixFactorization(factors=4, epochs=2, threads=1).fit(ratings)
    many = latentmf.MatrixFactorization(factors=4, epochs=2, threads=threads).fit(ratings)
    np.testing.assert_array_equal(one.U, many.U)
    np.testing.assert_array_equal(many.predict([0, 1], [2, 3]), one.predict([0, 1], [2, 3]))
    U, V = one.U.copy(), one.V.copy()
    grads = latentmf.gradients(ratings, U, V, 0.1, threads=threads)
    np.testing.assert_array_equal(grads[0], latentmf.gradients(ratings, U, V, 0.1, threads=1)[0])


PEAK_CHILD = """
import resource, sys, numpy as np, latentmf
data = np.load(sys.argv[1])
ratings = latentmf.Ratings(data["users"], data["items"], data["values"])
latentmf.MatrixFactorization(factors=4, epochs=1).fit(latentmf.Ratings([0, 1], [1, 0], [1.0, 2.0]))  # warm
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model = latentmf.MatrixFactorization(factors=32, epochs=2, seed=0, solver=sys.argv[2]).fit(ratings)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
native = model._state().native
factors = sum(a.nbytes for a in (native.U, native.V, native.user_bias, native.item_bias, native.user_accumulators,
                                 native.item_accumulators))
size = ratings.users.nbytes + ratings.items.nbytes + ratings.values.nbytes
print((peak - before) * 1024 / (size + factors))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak resident memory in KiB (Linux)")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""), reason="AddressSanitizer's shadow memory")
@pytest.mark.parametrize("solver, bound", [("adagrad", 1.5), ("gd", 2.4)])
def test_fit_needs_little_more_than_the_ratings_and_the_factors(tmp_path, solver, bound):
    """What fit adds to the process at its peak, over the caller's ratings plus the model's factors,
    for 2M ratings in a fresh process: SGD holds the ratings once more in block order (8 of the
    caller's 12 bytes per rating) and one copy of the factors to roll back to (1.1 here); GD holds
    them by user and by item (1.9). benchmarks/bench_memory.py measures the 10M set."""
    ratings = latentmf.datasets.synthetic(40_000, 4_000, 2_000_000, seed=0)
    np.savez(tmp_path / "ratings.npz", users=ratings.users, items=ratings.items,
             values=ratings.values.astype(np.float32))
    result = subprocess.run([sys.executable, "-c", PEAK_CHILD, str(tmp_path / "ratings.npz"), solver],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < bound
