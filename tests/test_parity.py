"""The backbone: every native routine against its twin in latentmf.reference, at every kernel level,
for every dtype and shape; the options of each routine (threads, biases, ...) are spread over the
shapes so that every value of every option, and every pair of option values, is tried at each
level and dtype without trying their whole product (`spread`).

Random shapes, patterns and hyper-parameters (property-based) are in test_fuzz.py."""



from __future__ import annotations

import itertools
import numpy as np
import pytest

import latentmf
from latentmf import reference

from conftest import DTYPES, INDEX_DTYPES, assert_close, random_biases, random_factors, random_ratings

# Every test here runs once per kernel level this CPU supports (generic, avx2, avx512, ...).
pytestmark = pytest.mark.usefixtures("isa")

# (n_users, n_items, n_ratings, F): users and items without ratings, F = 1, one rating, a full row.
SHAPES = [(20, 15, 90, 4), (40, 3, 60, 1), (1, 1, 1, 1), (3, 50, 150, 7), (64, 64, 300, 33)]


def spread(shapes, **options):
    """(shape, option values...) cases: the shapes in turn, each with the next combination of the
    options' values, cycling through all the combinations (each one at least once, when there are
    no more combinations than shapes; else the shapes repeat until every combination has come)."""
    combinations = list(itertools.product(*options.values()))
    count = max(len(shapes), len(combinations))
    return [(shapes[i % len(shapes)], *combinations[i % len(combinations)]) for i in range(count)]


def _problem(rng, shape, dtype, index_dtype=np.int32, with_biases=False):
    n_users, n_items, n_ratings, F = shape
    ratings = random_ratings(rng, n_users, n_items, n_ratings, index_dtype, dtype)
    U, V = random_factors(rng, n_users, n_items, F, dtype)
    biases = random_biases(rng, n_users, n_items, dtype) if with_biases else None
    return ratings, U, V, biases


@pytest.mark.parametrize("shape, threads, with_biases", spread(SHAPES, threads=[1, 2], with_biases=[False, True]))
@pytest.mark.parametrize("dtype", DTYPES)
def test_loss(rng, shape, dtype, threads, with_biases):
    ratings, U, V, biases = _problem(rng, shape, dtype, with_biases=with_biases)
    native = latentmf.loss(ratings, U, V, 0.3, biases=biases, threads=threads)
    expected = reference.loss(ratings, U, V, 0.3, biases=biases)
    assert_close(native, expected, dtype)


@pytest.mark.parametrize("shape, index_dtype, threads, with_biases",
                         spread(SHAPES, index_dtype=INDEX_DTYPES, threads=[1, 2], with_biases=[False, True]))
@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients(rng, shape, dtype, index_dtype, threads, with_biases):
    ratings, U, V, biases = _problem(rng, shape, dtype, index_dtype, with_biases)
    native = latentmf.gradients(ratings, U, V, 0.2, biases=biases, threads=threads)
    expected = reference.gradients(ratings, U, V, 0.2, biases=biases)
    assert len(native) == len(expected) == (4 if with_biases else 2)
    for got, want in zip(native, expected):
        assert got.dtype == dtype
        assert got.shape == want.shape
        assert_close(got, want, dtype)


# Enough ratings per item that the item gradients come from per-group partials of the user pass
# (one group, three, and eight groups of several chunks each), against 8 per item or fewer.
@pytest.mark.parametrize("shape, threads, with_biases",
                         spread([(40, 3, 100, 5), (300, 20, 6000, 33), (2000, 50, 40000, 8), (500, 400, 3000, 8)],
                                threads=[1, 3], with_biases=[False, True]))
@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_with_many_ratings_per_item(rng, shape, dtype, threads, with_biases):
    ratings, U, V, biases = _problem(rng, shape, dtype, with_biases=with_biases)
    native = latentmf.gradients(ratings, U, V, 0.2, biases=biases, threads=threads)
    expected = reference.gradients(ratings, U, V, 0.2, biases=biases)
    for got, want in zip(native, expected):
        assert_close(got, want, dtype)
    assert_close(latentmf.loss(ratings, U, V, 0.2, biases=biases, threads=threads),
                 reference.loss(ratings, U, V, 0.2, biases=biases), dtype)


@pytest.mark.parametrize("shape, threads, use_mask", spread(SHAPES, threads=[1, 2], use_mask=[False, True]))
@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_dense(rng, shape, dtype, threads, use_mask):
    ratings, U, V, _ = _problem(rng, shape, dtype)
    observed = np.zeros((len(U), len(V)), dtype=bool)
    observed[ratings.users, ratings.items] = True
    R = np.where(observed, 0, np.nan).astype(dtype)
    R[ratings.users, ratings.items] = ratings.values
    mask = observed if use_mask else None
    if use_mask:
        R[~observed] = 1e30  # unobserved values must be ignored, whatever they are
    native = latentmf.gradients_dense(R, U, V, mask, 0.2, threads=threads)
    expected = reference.gradients_dense(R, U, V, mask, 0.2)
    for got, want in zip(native, expected):
        assert got.dtype == dtype
        assert_close(got, want, dtype)
    # the dense and sparse entry points compute the same gradients
    for dense, sparse in zip(native, latentmf.gradients(ratings, U, V, 0.2)):
        assert_close(dense, sparse, dtype)


@pytest.mark.parametrize("shape, with_biases", spread(SHAPES, with_biases=[False, True]))
@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_epoch_in_given_order(rng, shape, dtype, with_biases):
    ratings, U, V, biases = _problem(rng, shape, dtype, with_biases=with_biases)
    order = rng.permutation(len(ratings))
    native_biases = None if biases is None else (biases[0], biases[1].copy(), biases[2].copy())
    U_native, V_native = U.copy(), V.copy()
    native = latentmf.sgd_epoch(ratings, U_native, V_native, 0.05, 0.1, order=order, biases=native_biases)
    expected = reference.sgd_epoch(ratings, U, V, 0.05, 0.1, order=order, biases=biases)
    assert_close(native, expected, dtype)
    assert_close(U_native, U, dtype)
    assert_close(V_native, V, dtype)
    if biases is not None:
        assert_close(native_biases[1], biases[1], dtype)
        assert_close(native_biases[2], biases[2], dtype)


@pytest.mark.parametrize("shape, with_biases", spread(SHAPES, with_biases=[False, True]))
@pytest.mark.parametrize("dtype", DTYPES)
def test_warm_up_epoch(rng, shape, dtype, with_biases):
    """The warm-up epoch (the first 16 of 40 factors move) of plain SGD; AdaGrad's is in test_adagrad_epoch."""
    ratings, U, V, biases = _problem(rng, (shape[0], shape[1], shape[2], 40), dtype, with_biases=with_biases)
    native_biases = None if biases is None else (biases[0], biases[1].copy(), biases[2].copy())
    U_native, V_native = U.copy(), V.copy()
    order = rng.permutation(len(ratings))
    latentmf.sgd_epoch(ratings, U_native, V_native, 0.05, 0.1, order=order, biases=native_biases, warm_up=True)
    reference.sgd_epoch(ratings, U, V, 0.05, 0.1, order=order, biases=biases, warm_up=True)
    assert_close(U_native, U, dtype)
    assert_close(V_native, V, dtype)
    if biases is not None:
        assert_close(native_biases[1], biases[1], dtype)
        assert_close(native_biases[2], biases[2], dtype)


@pytest.mark.parametrize("shape, with_biases, grid, warm_up",
                         spread(SHAPES + [(20, 15, 90, 64), (20, 15, 90, 20)], with_biases=[False, True],
                                grid=[False, True], warm_up=[False, True]))
@pytest.mark.parametrize("dtype", DTYPES)
def test_adagrad_epoch(rng, shape, dtype, with_biases, grid, warm_up):
    ratings, U, V, biases = _problem(rng, shape, dtype, with_biases=with_biases)
    accumulators = (rng.uniform(1, 2, (len(U), 2)).astype(dtype), rng.uniform(1, 2, (len(V), 2)).astype(dtype))
    native_biases = None if biases is None else (biases[0], biases[1].copy(), biases[2].copy())
    native_accumulators = (accumulators[0].copy(), accumulators[1].copy())
    U_native, V_native = U.copy(), V.copy()
    if grid:
        latentmf.sgd_epoch(ratings, U_native, V_native, 0.1, 0.05, threads=2, biases=native_biases,
                           adagrad=native_accumulators, warm_up=warm_up, blocks=3, seed=5)
        order = latentmf.sgd_order(ratings, blocks=3, seed=5)
    else:
        order = rng.permutation(len(ratings))
        latentmf.sgd_epoch(ratings, U_native, V_native, 0.1, 0.05, order=order, biases=native_biases,
                           adagrad=native_accumulators, warm_up=warm_up)
    reference.sgd_epoch(ratings, U, V, 0.1, 0.05, order=order, biases=biases, adagrad=accumulators, warm_up=warm_up)
    for got, want in zip((U_native, V_native) + native_accumulators, (U, V) + accumulators):
        assert_close(got, want, dtype)
    if biases is not None:
        assert_close(native_biases[1], biases[1], dtype)
        assert_close(native_biases[2], biases[2], dtype)


@pytest.mark.parametrize("blocks, threads, with_biases", [
    (blocks, threads, with_biases) for blocks, (threads, with_biases) in
    zip([1, 2, 3, 8], itertools.product([1, 2], [False, True]))])
@pytest.mark.parametrize("dtype", DTYPES)
def test_grid_epoch_equals_reference_in_the_grid_order(rng, dtype, blocks, threads, with_biases):
    ratings, U, V, biases = _problem(rng, (30, 25, 200, 5), dtype, with_biases=with_biases)
    native_biases = None if biases is None else (biases[0], biases[1].copy(), biases[2].copy())
    U_native, V_native = U.copy(), V.copy()
    native = latentmf.sgd_epoch(ratings, U_native, V_native, 0.05, 0.1, threads=threads, biases=native_biases,
                                blocks=blocks, seed=7, epoch=3)
    order = latentmf.sgd_order(ratings, blocks=blocks, seed=7, epoch=3)
    expected = reference.sgd_epoch(ratings, U, V, 0.05, 0.1, order=order, biases=biases)
    assert_close(native, expected, dtype)
    assert_close(U_native, U, dtype)
    assert_close(V_native, V, dtype)
    if biases is not None:
        assert_close(native_biases[1], biases[1], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict(rng, dtype):
    ratings, U, V, biases = _problem(rng, (20, 15, 90, 4), dtype, with_biases=True)
    model = latentmf.MatrixFactorization(factors=4, epochs=1, dtype=np.dtype(dtype).name).fit(ratings)
    users = rng.integers(0, 20, size=50)
    items = rng.integers(0, 15, size=50)
    expected = reference.predict(model.U, model.V, users, items,
                                 (model.global_mean_, model.user_bias_, model.item_bias_))
    assert_close(model.predict(users, items), expected, dtype)



# BPR: the shapes above, and widths whose rows the kernels hold as whole SIMD vectors at every level.
BPR_SHAPES = SHAPES + [(30, 40, 400, 16), (25, 30, 300, 64), (12, 200, 600, 32)]


@pytest.mark.parametrize("shape, blocks, threads, with_biases",
                         spread(BPR_SHAPES, blocks=[1, 3, 8], threads=[1, 2], with_biases=[False, True]))
@pytest.mark.parametrize("dtype", DTYPES)
def test_bpr_sub_epoch_equals_reference_on_its_triples(rng, shape, dtype, blocks, threads, with_biases):
    ratings, U, V, _ = _problem(rng, shape, dtype)
    item_bias = (0.3 * rng.standard_normal(len(V))).astype(dtype) if with_biases else None
    arguments = {"epoch": 2, "blocks": blocks, "seed": 5}
    for sub_epoch in range(blocks):
        triples = latentmf.bpr_triples(ratings, sub_epoch=sub_epoch, **arguments)
        U_native, V_native = U.copy(), V.copy()
        bias_native = None if item_bias is None else item_bias.copy()
        native = latentmf.bpr_sub_epoch(ratings, U_native, V_native, 0.1, 0.05, item_bias=bias_native,
                                        sub_epoch=sub_epoch, threads=threads, **arguments)
        expected = reference.bpr_sub_epoch(triples, U, V, 0.1, 0.05, item_bias=item_bias)
        assert_close(native, expected, dtype)
        assert_close(U_native, U, dtype)
        assert_close(V_native, V, dtype)
        if item_bias is not None:
            assert_close(bias_native, item_bias, dtype)
