"""The reference is the specification, so it is checked on its own: by hand and by finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import latentmf
from latentmf import reference

from conftest import random_biases, random_factors, random_ratings

# R = [[5, ?], [3, 4]] with F = 1, U = [1, 2]^T, V = [2, 1]^T, so R_hat = [[2, 1], [4, 2]]
# and E = R_hat - R on the observed entries = [[-3, 0], [1, -2]].
HAND = ((np.array([0, 1, 1]), np.array([0, 0, 1]), np.array([5.0, 3.0, 4.0])),
        np.array([[1.0], [2.0]]), np.array([[2.0], [1.0]]))


def test_loss_by_hand():
    ratings, U, V = HAND
    assert reference.loss(ratings, U, V) == 7.0  # (9 + 1 + 4) / 2
    # penalty per rating: (1 + 4) + (4 + 4) + (4 + 1) = 18, so L = (14 + 0.5 * 18) / 2
    assert reference.loss(ratings, U, V, 0.5) == 11.5


def test_gradients_by_hand():
    ratings, U, V = HAND
    dU, dV = reference.gradients(ratings, U, V)
    np.testing.assert_array_equal(dU, [[-6.0], [0.0]])   # E V
    np.testing.assert_array_equal(dV, [[-1.0], [-4.0]])  # E^T U
    # c = [1, 2] ratings per user and d = [2, 1] per item weigh the L2 term
    dU, dV = reference.gradients(ratings, U, V, 0.5)
    np.testing.assert_array_equal(dU, [[-5.5], [2.0]])
    np.testing.assert_array_equal(dV, [[1.0], [-3.5]])


def test_dense_gradients_by_hand():
    _, U, V = HAND
    R = np.array([[5.0, np.nan], [3.0, 4.0]])
    dU, dV = reference.gradients_dense(R, U, V, regularization=0.5)
    np.testing.assert_array_equal(dU, [[-5.5], [2.0]])
    np.testing.assert_array_equal(dV, [[1.0], [-3.5]])
    masked = reference.gradients_dense(np.nan_to_num(R, nan=99.0), U, V, ~np.isnan(R), 0.5)
    np.testing.assert_array_equal(masked[0], dU)
    np.testing.assert_array_equal(masked[1], dV)


def test_sgd_step_by_hand():
    ratings, U, V = HAND
    U, V = U.copy(), V.copy()
    # rating (0, 0) = 5: e = 5 - 2 = 3, u_0 <- 1 + 0.1 * 3 * 2, v_0 <- 2 + 0.1 * 3 * 1
    squared = reference.sgd_epoch(ratings, U, V, 0.1, order=[0])
    assert squared == 9.0
    np.testing.assert_allclose(U, [[1.6], [2.0]])
    np.testing.assert_allclose(V, [[2.3], [1.0]])


def test_sgd_step_with_regularization_and_biases_by_hand():
    ratings, U, V = HAND
    U, V = U.copy(), V.copy()
    user_bias, item_bias = np.array([0.5, 0.0]), np.array([-0.5, 0.0])
    # r_hat = 1 + 0.5 - 0.5 + 2 = 3, e = 2; eta = 0.1, lambda = 0.2
    reference.sgd_epoch(ratings, U, V, 0.1, 0.2, order=[0], biases=(1.0, user_bias, item_bias))
    np.testing.assert_allclose(U[0], [1 + 0.1 * (2 * 2 - 0.2 * 1)])
    np.testing.assert_allclose(V[0], [2 + 0.1 * (2 * 1 - 0.2 * 2)])
    np.testing.assert_allclose(user_bias, [0.5 + 0.1 * (2 - 0.2 * 0.5), 0.0])
    np.testing.assert_allclose(item_bias, [-0.5 + 0.1 * (2 + 0.2 * 0.5), 0.0])


def _finite_difference(f, x, h=1e-6):
    """Central differences of the scalar f with respect to every entry of x (changed in place)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + h
        up = f()
        x[index] = saved - h
        down = f()
        x[index] = saved
        grad[index] = (up - down) / (2 * h)
    return grad


@pytest.mark.parametrize("with_biases", [False, True])
def test_gradients_match_finite_differences(rng, with_biases):
    ratings = random_ratings(rng, 6, 5, 17)
    U, V = random_factors(rng, 6, 5, 3)
    biases = random_biases(rng, 6, 5) if with_biases else None
    lam = 0.3
    analytic = reference.gradients(ratings, U, V, lam, biases=biases)
    variables = [U, V] + ([biases[1], biases[2]] if with_biases else [])
    for variable, gradient in zip(variables, analytic):
        numeric = _finite_difference(lambda: reference.loss(ratings, U, V, lam, biases=biases), variable)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-6)


def test_sparse_and_dense_references_agree(rng):
    ratings = random_ratings(rng, 7, 9, 30)
    U, V = random_factors(rng, 7, 9, 4)
    R = np.full((7, 9), np.nan)
    R[ratings.users, ratings.items] = ratings.values
    for sparse, dense in zip(reference.gradients(ratings, U, V, 0.2), reference.gradients_dense(R, U, V, None, 0.2)):
        np.testing.assert_allclose(sparse, dense, rtol=1e-12, atol=1e-12)


def test_sgd_epoch_descends_on_average(rng):
    ratings = random_ratings(rng, 10, 8, 50)
    U, V = random_factors(rng, 10, 8, 3)
    before = reference.loss(ratings, U, V, 0.05)
    for _ in range(5):
        reference.sgd_epoch(ratings, U, V, 0.02, 0.05, order=rng.permutation(len(ratings)))
    assert reference.loss(ratings, U, V, 0.05) < before


def test_twins_share_their_signatures():
    """A native function and its reference twin take the same arguments, with the same kinds
    (positional or keyword-only), so that tests and users can call one in place of the other;
    the native one may add `threads` and the grid's settings."""
    import inspect

    native_only = {"threads", "blocks", "seed", "epoch"}
    for name in ("loss", "gradients", "gradients_dense", "sgd_epoch"):
        native = inspect.signature(getattr(latentmf, name)).parameters
        twin = inspect.signature(getattr(reference, name)).parameters
        shared = [(p.name, p.kind) for p in native.values() if p.name not in native_only]
        assert shared == [(p.name, p.kind) for p in twin.values()], name
        assert all(native[p].kind is inspect.Parameter.KEYWORD_ONLY for p in native_only & set(native)), name
