"""The Gibbs sampler of Bayesian PMF: a native sweep against its reference twin given the same
draws, the Normal-Wishart draws against their distribution, and what the sampler learns."""

from __future__ import annotations

import numpy as np
import pytest

import latentmf
from latentmf import reference

from conftest import assert_close, random_ratings


def _chain(rng, n_users, n_items, F, dtype, biases):
    U = (0.3 * rng.standard_normal((n_users, F))).astype(dtype)
    V = (0.3 * rng.standard_normal((n_items, F))).astype(dtype)
    bias = (3.5, np.zeros(n_users, dtype), np.zeros(n_items, dtype)) if biases else None
    return U, V, bias


@pytest.mark.parametrize("dtype, biases, threads", [(np.float64, False, 1), (np.float64, True, 3),
                                                    (np.float32, True, 2), (np.float32, False, 1)])
def test_a_native_sweep_equals_the_reference_given_the_same_draws(rng, dtype, biases, threads):
    ratings = random_ratings(rng, 30, 20, 250, value_dtype=dtype)
    U, V, bias = _chain(rng, 30, 20, 4, dtype, biases)
    twin_U, twin_V = U.copy(), V.copy()
    twin_bias = None if bias is None else (bias[0], bias[1].copy(), bias[2].copy())
    native = latentmf.gibbs_sweep(ratings, U, V, np.random.default_rng(7), noise_precision=2.0, biases=bias,
                                  threads=threads)
    expected = reference.gibbs_sweep(ratings, twin_U, twin_V, np.random.default_rng(7), noise_precision=2.0,
                                     biases=twin_bias)
    assert_close(native[0], expected[0], dtype)
    assert_close(native[1], expected[1], dtype)
    for got, want in zip((U, V) + (() if bias is None else bias[1:]), (twin_U, twin_V) + (
            () if twin_bias is None else twin_bias[1:])):
        assert_close(got, want, dtype, scale=float(np.abs(want).max()) + 1.0)


def test_the_normal_wishart_draws_have_their_posterior_mean():
    """E[Lambda] = nu* W* and E[mu] = mu* (averaged over many draws, against the formulas)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 3)) @ np.array([[1.0, 0.3, 0.0], [0.0, 0.5, 0.2], [0.0, 0.0, 2.0]]) + [1, -2, 0.5]
    draws = [reference.normal_wishart_draw(X, rng) for _ in range(4000)]
    N, D = X.shape
    mean = X.mean(axis=0)
    centered = X - mean
    W = np.linalg.inv(np.eye(D) + centered.T @ centered + (2.0 * N / (2.0 + N)) * np.outer(mean, mean))
    np.testing.assert_allclose(np.mean([precision for _, precision in draws], axis=0), (D + N) * W, rtol=0.05,
                               atol=0.05 * np.abs((D + N) * W).max())
    np.testing.assert_allclose(np.mean([mu for mu, _ in draws], axis=0), N * mean / (2.0 + N), atol=0.05)


@pytest.fixture(scope="module")
def planted():
    """Ratings r = u . v + 0.5 N(0, 1) of a rank-3 model, split into train and test."""
    rng = np.random.default_rng(11)
    X, Y = rng.standard_normal((150, 3)), rng.standard_normal((120, 3))
    observed = rng.random((150, 120)) < 0.35
    users, items = np.nonzero(observed)
    values = np.sum(X[users] * Y[items], axis=1) + 0.5 * rng.standard_normal(len(users))
    return latentmf.Ratings(users.astype(np.int32), items.astype(np.int32), values, 150, 120).split(0.2, seed=1)


def test_the_sampler_recovers_the_planted_noise_level(planted):
    train, _ = planted
    model = latentmf.MatrixFactorization(3, solver="gibbs", epochs=80, burn_in=30, biases=False, dtype="float64",
                                         init_std=0.3, seed=2, clip=False).fit(train)
    noise = 1.0 / np.sqrt(model._state().derived["noise_precision"])
    assert 0.45 < noise < 0.56
    # the last sample's own fit is close to the noise too (neither overfitted nor underfitted)
    assert 0.42 < model.history_["train_rmse"][-1] < 0.55


def test_the_posterior_mean_predicts_better_than_one_sample(planted):
    train, test = planted
    params = {"solver": "gibbs", "burn_in": 20, "biases": False, "dtype": "float64", "init_std": 0.3, "seed": 2,
              "clip": False}
    averaged = latentmf.MatrixFactorization(8, epochs=80, **params).fit(train)
    single = latentmf.MatrixFactorization(8, epochs=21, **params).fit(train)  # one kept sample
    assert single.U.shape[1] == 8 and averaged.U.shape[1] == 8 * 60

    def rmse(model):
        return float(np.sqrt(np.mean((model.predict(test.users, test.items) - test.values) ** 2)))

    assert rmse(averaged) < 0.95 * rmse(single)
    assert rmse(averaged) < 0.6  # near the noise level 0.5 on held-out pairs


def test_a_continued_chain_equals_one_run_and_burn_in_must_stay(planted):
    train, _ = planted
    params = {"solver": "gibbs", "burn_in": 3, "dtype": "float64", "seed": 4}
    whole = latentmf.MatrixFactorization(4, epochs=8, **params).fit(train)
    parts = latentmf.MatrixFactorization(4, epochs=5, **params).fit(train).partial_fit(epochs=3)
    np.testing.assert_array_equal(whole.predict(train.users, train.items), parts.predict(train.users, train.items))
    assert parts.U.shape[1] == 4 * 5
    with pytest.raises(ValueError, match="burn_in is 4 but the fitted model has 3"):
        parts.set_params(burn_in=4).partial_fit(epochs=1)
