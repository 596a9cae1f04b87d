"""MatrixFactorization(solver="als", init="spectral"): the start against its NumPy twin
(latentmf.reference.spectral_start), the same bits for any thread count, degenerate data, bad
input, and that the start pays on a planted low-rank model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import latentmf
from latentmf import reference

from conftest import low_rank_ratings, random_ratings


def _start(ratings, init, **settings):
    """The model right after its start (0 epochs)."""
    model = latentmf.MatrixFactorization(solver="als", epochs=0, init=init, **settings)
    return model.fit(ratings)


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-9), ("float32", 2e-3)])
@pytest.mark.parametrize("biases", [True, False])
@pytest.mark.parametrize("shape", [(40, 30, 500, 4), (25, 60, 300, 8), (12, 12, 144, 12)])
def test_the_start_matches_the_reference(rng, dtype, tolerance, biases, shape):
    n_users, n_items, n_ratings, factors = shape
    ratings = random_ratings(rng, n_users, n_items, n_ratings)
    settings = {"factors": factors, "dtype": dtype, "biases": biases, "regularization": 0.1, "seed": 5}
    drawn = _start(ratings, "random", **settings)
    model = _start(ratings, "spectral", **settings)
    U, V, user_bias, item_bias = reference.spectral_start(
        ratings, drawn.U.astype(np.float64), drawn.V.astype(np.float64), 0.1,
        global_mean=model.global_mean_ if biases else None)
    assert np.all(model.U == 0) and model.U.dtype == dtype
    np.testing.assert_allclose(model.V, V, rtol=tolerance, atol=tolerance)
    if biases:
        np.testing.assert_allclose(model.user_bias_, user_bias, rtol=tolerance, atol=tolerance)
        np.testing.assert_allclose(model.item_bias_, item_bias, rtol=tolerance, atol=tolerance)
    # V's columns are orthogonal, each of squared norm n_items / F (rows of norm near 1).
    np.testing.assert_allclose(model.V.T.astype(np.float64) @ model.V, n_items / factors * np.eye(factors),
                               atol=50 * tolerance * n_items / factors)


def test_the_start_is_the_same_bits_for_any_thread_count(rng):
    ratings = random_ratings(rng, 300, 200, 6000)
    starts = [_start(ratings, "spectral", factors=8, threads=threads) for threads in (1, 2, 3)]
    for other in starts[1:]:
        for name in ("V", "user_bias_", "item_bias_"):
            np.testing.assert_array_equal(getattr(starts[0], name), getattr(other, name))
    fits = [latentmf.MatrixFactorization(8, solver="als", epochs=3, init="spectral", threads=t).fit(ratings)
            for t in (1, 2)]
    np.testing.assert_array_equal(fits[0].U, fits[1].U)
    np.testing.assert_array_equal(fits[0].V, fits[1].V)


@pytest.mark.parametrize("biases", [True, False])
def test_ratings_without_structure_still_give_a_full_rank_start(biases):
    # Every rating the same: with biases the residuals are all 0 and the basis comes from the draws;
    # the ratings of one user only: E has rank 1 < F.
    users, items = np.divmod(np.arange(200), 20)
    for ratings in (latentmf.Ratings(users.astype(np.int32), items.astype(np.int32), np.full(200, 3.0)),
                    latentmf.Ratings(np.zeros(20, np.int32), np.arange(20, dtype=np.int32),
                                     np.linspace(1, 5, 20), n_users=10)):
        model = _start(ratings, "spectral", factors=6, biases=biases)
        gram = model.V.T.astype(np.float64) @ model.V
        assert np.all(np.isfinite(model.V))
        np.testing.assert_allclose(gram, gram[0, 0] * np.eye(6), atol=1e-2 * gram[0, 0])
        fitted = latentmf.MatrixFactorization(6, solver="als", epochs=2, init="spectral", biases=biases).fit(ratings)
        assert np.all(np.isfinite(fitted.predict(ratings.users, ratings.items)))


def test_bad_starts_are_refused_before_anything_changes(rng):
    ratings = random_ratings(rng, 30, 10, 200)
    model = latentmf.MatrixFactorization(4, solver="als", epochs=1).fit(ratings)
    before = model.V.copy()
    for settings, message in (({"factors": 12}, "needs at least factors=12 users and items, got 30 users and 10"),
                              ({"init_std": 0.0}, "init_std must be positive"),
                              ({"init": "svd"}, r"init must be one of \('random', 'spectral'\), got 'svd'")):
        model.set_params(**{"factors": 4, "init": "spectral", "init_std": None, **settings})
        with pytest.raises(ValueError, match=message):
            model.fit(ratings)
        np.testing.assert_array_equal(model.V, before)


def test_other_solvers_warn_that_they_ignore_it(rng):
    ratings = random_ratings(rng, 30, 20, 200)
    with pytest.warns(UserWarning, match=r"solver='adagrad' ignores init='spectral' \(init is for 'als'\)"):
        model = latentmf.MatrixFactorization(4, init="spectral", epochs=1).fit(ratings)
    plain = latentmf.MatrixFactorization(4, epochs=1).fit(ratings)
    np.testing.assert_array_equal(model.U, plain.U)


def test_the_start_pays_on_a_planted_low_rank_model(rng):
    # The first epochs from the spectral start beat those from the random one: the start already
    # spans the planted factors, which the random start has to find.
    ratings = low_rank_ratings(rng, 600, 400, 4, 0.1)
    train, test = ratings.split(0.1, seed=1)
    history = {}
    for init in ("random", "spectral"):
        model = latentmf.MatrixFactorization(8, solver="als", epochs=3, init=init, regularization=0.02)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", latentmf.UnknownIdWarning)
            history[init] = model.fit(train, validation=test).history_["validation_rmse"]
    assert history["spectral"][1] < 0.8 * history["random"][1]
    assert history["spectral"][2] <= history["random"][2]
