"""Property-based tests: random shapes, sparsity patterns, dtypes and hyper-parameters through the
native code and through `latentmf.reference`, which must agree.

Widths F include 1 and odd widths that take the plain loops (7, 20, 40) and 16, 32, 64 that take
the vector kernels. Sparsity patterns include single ratings, full rows or columns, diagonals and
random densities, so that users and items without ratings are common. Each test has a fixed
example budget (EXAMPLES), 1,120 examples per run in all.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import latentmf
from latentmf import reference

from conftest import assert_close

#: Examples per property (each a fresh random problem); the total is what one run tries.
EXAMPLES = {
    "loss_and_gradients": 250,
    "dense_gradients": 120,
    "sgd_in_an_order": 200,
    "sgd_over_the_grid": 200,
    "predict": 100,
    "top_k": 250,
}

WIDTHS = [1, 2, 3, 7, 16, 20, 32, 40, 64]
PATTERNS = ["random", "one rating", "one full row", "one full column", "diagonal", "dense"]


def _budget(name):
    return settings(max_examples=EXAMPLES[name], deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw, max_side=24):
    """(ratings, U, V, biases or None, dtype, rng): a random problem of a random shape and pattern."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # Hypothesis favours small numbers (and shrinks towards them): half of the problems take their
    # sides uniformly from the seeded generator instead.
    if draw(st.booleans()):
        n_users, n_items = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    else:
        n_users, n_items = (int(n) for n in rng.integers(1, max_side + 1, 2))
    F = draw(st.sampled_from(WIDTHS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    index_dtype = draw(st.sampled_from([np.int32, np.int64]))
    pattern = draw(st.sampled_from(PATTERNS))
    with_biases = draw(st.booleans())
    observed = np.zeros((n_users, n_items), dtype=bool)
    if pattern == "random":
        observed = rng.random((n_users, n_items)) < draw(st.floats(0.02, 1.0))
    elif pattern == "one full row":
        observed[rng.integers(n_users)] = True
    elif pattern == "one full column":
        observed[:, rng.integers(n_items)] = True
    elif pattern == "diagonal":
        observed[np.arange(min(n_users, n_items)), np.arange(min(n_users, n_items))] = True
    elif pattern == "dense":
        observed[:] = True
    if not observed.any():  # "one rating", or a random pattern that drew none
        observed[rng.integers(n_users), rng.integers(n_items)] = True
    users, items = np.nonzero(observed)
    order = rng.permutation(len(users))  # ratings in no particular order
    values = rng.uniform(1, 5, len(users)).astype(draw(st.sampled_from([np.float32, np.float64])))
    ratings = latentmf.Ratings(users[order].astype(index_dtype), items[order].astype(index_dtype), values,
                               n_users, n_items)
    U = (0.5 * rng.standard_normal((n_users, F))).astype(dtype)
    V = (0.5 * rng.standard_normal((n_items, F))).astype(dtype)
    biases = None
    if with_biases:
        biases = (float(rng.uniform(1, 5)), (0.3 * rng.standard_normal(n_users)).astype(dtype),
                  (0.3 * rng.standard_normal(n_items)).astype(dtype))
    return ratings, U, V, biases, dtype, rng


def _same_values(ratings, dtype):
    """The ratings with values in the factors' dtype (what the native SGD computes with)."""
    return latentmf.Ratings(ratings.users, ratings.items, ratings.values.astype(dtype), ratings.n_users,
                            ratings.n_items)


def _stable_step(learning_rate, U, V):
    """The step, at most half of 1 / (|u|^2 + |v|^2) for the longest rows. Beyond about that SGD
    diverges, and a diverging run is chaotic: the last-bit rounding differences between any two
    correct implementations (FMA or not, summation order) grow until they exceed every tolerance
    (13 of 300 dense F = 64 plain-SGD problems at steps of 0.03 to 0.1, as many with the kernels of
    before the AdaGrad rework as after it). Divergence itself is tested in test_divergence.py."""
    longest = float((U.astype(np.float64) ** 2).sum(axis=1).max() + (V.astype(np.float64) ** 2).sum(axis=1).max())
    return min(learning_rate, 0.5 / longest)


def _copy(biases):
    return None if biases is None else (biases[0], biases[1].copy(), biases[2].copy())


@_budget("loss_and_gradients")
@given(problem=problems(), regularization=st.floats(0.0, 2.0), threads=st.sampled_from([1, 2]))
def test_loss_and_gradients(problem, regularization, threads):
    ratings, U, V, biases, dtype, _ = problem
    assert_close(latentmf.loss(ratings, U, V, regularization, biases=biases, threads=threads),
                 reference.loss(ratings, U, V, regularization, biases=biases), dtype)
    native = latentmf.gradients(ratings, U, V, regularization, biases=biases, threads=threads)
    expected = reference.gradients(ratings, U, V, regularization, biases=biases)
    assert len(native) == len(expected)
    for got, want in zip(native, expected):
        assert got.dtype == dtype and got.shape == want.shape
        assert_close(got, want, dtype)


@_budget("dense_gradients")
@given(problem=problems(), regularization=st.floats(0.0, 2.0), use_mask=st.booleans(),
       threads=st.sampled_from([1, 2]))
def test_dense_gradients(problem, regularization, use_mask, threads):
    ratings, U, V, _, dtype, rng = problem
    observed = np.zeros((len(U), len(V)), dtype=bool)
    observed[ratings.users, ratings.items] = True
    R = np.full(observed.shape, np.nan, dtype=dtype)
    R[ratings.users, ratings.items] = ratings.values
    mask = None
    if use_mask:
        mask = observed
        R[~observed] = rng.uniform(-1e30, 1e30, (~observed).sum())  # must be ignored, whatever it is
    native = latentmf.gradients_dense(R, U, V, mask, regularization, threads=threads)
    for got, want in zip(native, reference.gradients_dense(R, U, V, mask, regularization)):
        assert got.dtype == dtype
        assert_close(got, want, dtype)


@_budget("sgd_in_an_order")
@given(problem=problems(), learning_rate=st.floats(1e-3, 0.1), regularization=st.floats(0.0, 0.5),
       adagrad=st.booleans(), warm_up=st.booleans())
def test_sgd_in_an_order(problem, learning_rate, regularization, adagrad, warm_up):
    ratings, U, V, biases, dtype, rng = problem
    ratings = _same_values(ratings, dtype)
    learning_rate = _stable_step(learning_rate, U, V)
    order = rng.permutation(len(ratings))
    accumulators = (rng.uniform(1, 2, (len(U), 2)).astype(dtype), rng.uniform(1, 2, (len(V), 2)).astype(dtype))
    native = [U.copy(), V.copy(), _copy(biases), (accumulators[0].copy(), accumulators[1].copy())]
    got = latentmf.sgd_epoch(ratings, native[0], native[1], learning_rate, regularization, order=order,
                             biases=native[2], adagrad=native[3] if adagrad else None, warm_up=warm_up)
    want = reference.sgd_epoch(ratings, U, V, learning_rate, regularization, order=order, biases=biases,
                               adagrad=accumulators if adagrad else None, warm_up=warm_up)
    assert_close(got, want, dtype)
    for a, b in zip(native[:2] + (list(native[3]) if adagrad else []), [U, V] + (list(accumulators) if adagrad else [])):
        assert_close(a, b, dtype)
    if biases is not None:
        assert_close(native[2][1], biases[1], dtype)
        assert_close(native[2][2], biases[2], dtype)


@_budget("sgd_over_the_grid")
@given(problem=problems(), blocks=st.integers(1, 8), seed=st.integers(0, 2**64 - 1), epoch=st.integers(0, 50),
       learning_rate=st.floats(1e-3, 0.05), adagrad=st.booleans(), threads=st.sampled_from([1, 2]))
def test_sgd_over_the_grid(problem, blocks, seed, epoch, learning_rate, adagrad, threads):
    """The parallel epoch equals the reference run in the grid's visiting order, and does not
    depend on the thread count."""
    ratings, U, V, biases, dtype, _ = problem
    ratings = _same_values(ratings, dtype)
    learning_rate = _stable_step(learning_rate, U, V)
    results = []
    for t in (1, threads):
        arrays = [U.copy(), V.copy(), _copy(biases), (np.ones((len(U), 2), dtype), np.ones((len(V), 2), dtype))]
        latentmf.sgd_epoch(ratings, arrays[0], arrays[1], learning_rate, 0.05, threads=t, biases=arrays[2],
                           adagrad=arrays[3] if adagrad else None, blocks=blocks, seed=seed, epoch=epoch)
        results.append(arrays)
    for a, b in zip(results[0][:2], results[1][:2]):
        np.testing.assert_array_equal(a, b)
    order = latentmf.sgd_order(ratings, blocks=blocks, seed=seed, epoch=epoch)
    accumulators = (np.ones((len(U), 2), dtype), np.ones((len(V), 2), dtype))
    reference.sgd_epoch(ratings, U, V, learning_rate, 0.05, order=order, biases=biases,
                        adagrad=accumulators if adagrad else None)
    assert_close(results[0][0], U, dtype)
    assert_close(results[0][1], V, dtype)
    if biases is not None:
        assert_close(results[0][2][1], biases[1], dtype)


def _model_with(ratings, U, V, biases, dtype):
    """A fitted model (zero epochs) whose factors and biases are set to the given ones."""
    model = latentmf.MatrixFactorization(factors=U.shape[1], epochs=0, biases=biases is not None,
                                         dtype=np.dtype(dtype).name, clip=False).fit(ratings)
    model.U[...] = U
    model.V[...] = V
    if biases is not None:
        model._state().native.global_mean = biases[0]
        model.user_bias_[...] = biases[1]
        model.item_bias_[...] = biases[2]
    return model


@_budget("predict")
@given(problem=problems(), pairs=st.integers(0, 200))
def test_predict(problem, pairs):
    ratings, U, V, biases, dtype, rng = problem
    model = _model_with(ratings, U, V, biases, dtype)
    users, items = rng.integers(0, len(U), pairs), rng.integers(0, len(V), pairs)
    predicted = model.predict(users, items)
    assert predicted.dtype == dtype and predicted.shape == (pairs,)
    native_biases = None if biases is None else (model.global_mean_, model.user_bias_, model.item_bias_)
    assert_close(predicted, reference.predict(model.U, model.V, users, items, native_biases), dtype)


def _brute_force_top_k(scores, seen, k):
    """Per row: the k best items by score, higher score first and then lower item; seen items left
    out; rows padded with item -1 and score NaN."""
    items = np.full((len(scores), k), -1, dtype=np.int64)
    best = np.full((len(scores), k), np.nan, dtype=scores.dtype)
    for row, (row_scores, row_seen) in enumerate(zip(scores, seen)):
        candidates = np.flatnonzero(~row_seen)
        ranked = candidates[np.lexsort((candidates, -row_scores[candidates]))][:k]
        items[row, :len(ranked)] = ranked
        best[row, :len(ranked)] = row_scores[ranked]
    return items, best


@_budget("top_k")
@given(problem=problems(max_side=40), k=st.integers(1, 45), exclude_seen=st.booleans(), levels=st.integers(1, 4))
def test_top_k_against_brute_force(problem, k, exclude_seen, levels):
    """Factors of small integers make many scores tie exactly (and sums of them are exact in
    float32): ties must go to the lower item."""
    ratings, U, V, biases, dtype, rng = problem
    U = rng.integers(-levels, levels + 1, U.shape).astype(dtype)
    V = rng.integers(-levels, levels + 1, V.shape).astype(dtype)
    if biases is not None:
        biases = (3.5, rng.integers(-2, 3, len(U)).astype(dtype), rng.integers(-2, 3, len(V)).astype(dtype))
    model = _model_with(ratings, U, V, biases, dtype)
    scores = U @ V.T
    if biases is not None:
        scores = scores + (biases[0] + biases[1][:, None] + biases[2][None, :]).astype(dtype)
    seen = np.zeros(scores.shape, dtype=bool)
    if exclude_seen:
        seen[ratings.users, ratings.items] = True
    want_items, want_scores = _brute_force_top_k(scores, seen, k)
    items, got_scores = model.recommend_all(k=k, exclude_seen=exclude_seen)
    np.testing.assert_array_equal(items.mask, want_items < 0)
    np.testing.assert_array_equal(got_scores.mask, want_items < 0)
    np.testing.assert_array_equal(items.filled(-1), want_items)
    np.testing.assert_array_equal(got_scores.filled(np.nan), want_scores)
    user = int(rng.integers(len(U)))
    single_items, single_scores = model.recommend(user, k=k, exclude_seen=exclude_seen)
    found = want_items[user] >= 0
    np.testing.assert_array_equal(single_items, want_items[user][found])
    np.testing.assert_array_equal(single_scores, want_scores[user][found])

