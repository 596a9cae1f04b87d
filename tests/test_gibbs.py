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


def _links(rng, n_users, n_items, order):
    return 0.2 * rng.standard_normal((n_items, order)), 0.2 * rng.standard_normal((n_users, order))


@pytest.mark.parametrize("dtype, biases, threads, sides", [
    (np.float64, False, 1, "both"), (np.float64, True, 3, "both"), (np.float32, True, 2, "both"),
    (np.float32, False, 1, "both"), (np.float64, True, 2, "users"), (np.float32, False, 2, "items")])
def test_a_native_sweep_with_implicit_links_equals_the_reference(rng, dtype, biases, threads, sides):
    # 25 items for 20 that have ratings, and users without ratings: links and rows of empty columns too.
    ratings = random_ratings(rng, 30, 25, 250, value_dtype=dtype)
    ratings = latentmf.Ratings(ratings.users[ratings.users < 27], ratings.items[ratings.users < 27],
                               ratings.values[ratings.users < 27], 30, 25)
    U, V, bias = _chain(rng, 30, 25, 4, dtype, biases)
    start = U.copy(), V.copy(), None if bias is None else (bias[0], bias[1].copy(), bias[2].copy())
    links = _links(rng, 30, 25, 4 + biases)
    links = (links[0] if sides != "items" else None, links[1] if sides != "users" else None)
    twin_U, twin_V = U.copy(), V.copy()
    twin_links = tuple(None if link is None else link.copy() for link in links)
    twin_bias = None if bias is None else (bias[0], bias[1].copy(), bias[2].copy())
    native = latentmf.gibbs_sweep(ratings, U, V, np.random.default_rng(7), noise_precision=2.0, biases=bias,
                                  links=links, link_regularization=1.5, threads=threads)
    expected = reference.gibbs_sweep(ratings, twin_U, twin_V, np.random.default_rng(7), noise_precision=2.0,
                                     biases=twin_bias, links=twin_links, link_regularization=1.5)
    assert_close(native[0], expected[0], dtype)
    assert_close(native[1], expected[1], dtype)
    present = [link for link in links if link is not None]
    twin_present = [link for link in twin_links if link is not None]
    for got, want in zip((U, V, *present) + (() if bias is None else bias[1:]), (twin_U, twin_V, *twin_present) + (
            () if twin_bias is None else twin_bias[1:])):
        assert_close(got, want, dtype, scale=float(np.abs(want).max()) + 1.0)
    # From the same start and draws, the sweep without links gives another sample.
    latentmf.gibbs_sweep(ratings, start[0], start[1], np.random.default_rng(7), noise_precision=2.0, biases=start[2])
    assert not (np.allclose(start[0], U) and np.allclose(start[1], V))


@pytest.mark.parametrize("side", ["users", "items"])
def test_the_link_kernels_equal_the_reference(rng, side):
    ratings = random_ratings(rng, 40, 30, 300)
    n_rows, n_cols = (40, 30) if side == "users" else (30, 40)
    index = ratings.native_index("float64")
    links = rng.standard_normal((n_cols, 5))
    products = [latentmf._core.link_product(index, side, links, threads) for threads in (1, 2, 3)]
    np.testing.assert_allclose(products[0], reference.link_product(ratings, side, links, n_rows), rtol=1e-12,
                               atol=1e-12)
    for product in products[1:]:
        np.testing.assert_array_equal(product, products[0])
    A, noise = rng.standard_normal((n_rows, 5)), rng.standard_normal((n_cols, 5))
    residual = A - reference.link_product(ratings, side, links, n_rows)
    twin_residual, twin_links = residual.copy(), links.copy()
    latentmf._core.link_sweep(index, side, residual, links, noise, 0.7)
    reference.link_sweep(ratings, side, twin_residual, twin_links, noise, 0.7)
    np.testing.assert_allclose(links, twin_links, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(residual, twin_residual, rtol=1e-10, atol=1e-10)
    # On return the residuals are A - X L of the new links.
    np.testing.assert_allclose(residual, A - reference.link_product(ratings, side, links, n_rows), atol=1e-10)


def test_a_link_draw_has_its_conditional_mean_and_variance():
    # One item rated by users of weights w = c^{-1/2}: given R, the link is drawn from
    # N((w . R + s l) / (s + lambda), Lambda^{-1} / (s + lambda)) with s = |w|^2 (Lambda = I here).
    users = np.array([0, 1, 1, 2, 2, 2])
    items = np.array([0, 0, 1, 0, 1, 2])
    ratings = latentmf.Ratings(users, items, np.ones(6), 3, 3)
    index = ratings.native_index("float64")
    A = np.array([[1.0, -2.0], [0.5, 0.5], [3.0, 1.0]])
    w = 1 / np.sqrt([1.0, 2.0, 3.0])
    start = np.zeros((3, 2))
    start[1:] = [[0.3, 0.1], [-0.2, 0.4]]
    start_residual = A - reference.link_product(ratings, "users", start, 3)
    draws = []
    rng = np.random.default_rng(5)
    for _ in range(20000):
        links, residual = start.copy(), start_residual.copy()
        noise = np.zeros((3, 2))
        noise[0] = rng.standard_normal(2)
        latentmf._core.link_sweep(index, "users", residual, links, noise, 2.0)
        draws.append(links[0].copy())
    # The residuals without link 0: user 1 also rated item 1, user 2 items 1 and 2.
    others = A - np.array([[0.0, 0.0], w[1] * start[1], w[2] * (start[1] + start[2])])
    s = float(w @ w)
    np.testing.assert_allclose(np.mean(draws, axis=0), w @ others / (s + 2.0), atol=0.02)
    np.testing.assert_allclose(np.var(draws, axis=0), 1 / (s + 2.0), rtol=0.05)


def test_the_normal_wishart_draw_counts_the_links():
    """E[Lambda] = nu* W* with the links' scatter in W*^-1 and their count in nu*."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 2)) + [1.0, -1.0]
    links = 0.5 * rng.standard_normal((12, 2))
    draws = [reference.normal_wishart_draw(X, rng, links=links, link_regularization=3.0)[1] for _ in range(4000)]
    N, D = X.shape
    centered = X - X.mean(axis=0)
    inverse = np.eye(D) + centered.T @ centered + (2.0 * N / (2.0 + N)) * np.outer(X.mean(0), X.mean(0))
    expected = (D + N + 12) * np.linalg.inv(inverse + 3.0 * links.T @ links)
    np.testing.assert_allclose(np.mean(draws, axis=0), expected, rtol=0.05, atol=0.05 * np.abs(expected).max())


@pytest.mark.parametrize("links, error, match", [
    ((np.zeros((20, 4)),), TypeError, "tuple"),
    ((np.zeros((20, 4), np.float32), np.zeros((30, 4))), TypeError, "user links"),
    ((np.zeros((20, 5)), np.zeros((30, 4))), ValueError, "user links"),
    ((np.zeros((20, 4)), np.full((30, 4), np.nan)), ValueError, "item links"),
    ((np.zeros((20, 4)), np.zeros((30, 8))[:, ::2]), ValueError, "item links"),
])
def test_bad_links_are_refused_and_change_nothing(rng, links, error, match):
    ratings = random_ratings(rng, 30, 20, 250)
    U, V, _ = _chain(rng, 30, 20, 4, np.float64, False)
    before = U.copy(), V.copy()
    with pytest.raises(error, match=match):
        latentmf.gibbs_sweep(ratings, U, V, np.random.default_rng(0), noise_precision=1.0, links=links)
    with pytest.raises(ValueError, match="link_regularization"):
        latentmf.gibbs_sweep(ratings, U, V, np.random.default_rng(0), noise_precision=1.0,
                             links=(np.zeros((20, 4)), np.zeros((30, 4))), link_regularization=0.0)
    np.testing.assert_array_equal(U, before[0])
    np.testing.assert_array_equal(V, before[1])


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


def _planted_split(seed, n_users, n_items, rank, density, noise):
    """Ratings r = u . v + noise N(0, 1) of a planted rank-`rank` model on a random `density` of the
    pairs, split 80/20 into train and test."""
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n_users, rank)), rng.standard_normal((n_items, rank))
    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    values = np.sum(X[users] * Y[items], axis=1) + noise * rng.standard_normal(len(users))
    return latentmf.Ratings(users.astype(np.int32), items.astype(np.int32), values, n_users, n_items).split(
        0.2, seed=1)


@pytest.fixture(scope="module")
def planted():
    """Ratings r = u . v + 0.5 N(0, 1) of a rank-3 model, split into train and test."""
    return _planted_split(11, 150, 120, 3, 0.35, 0.5)


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


def test_a_gibbs_model_saved_before_the_links_loads_and_continues_without_them(planted, tmp_path):
    import json

    train, _ = planted
    params = {"solver": "gibbs", "burn_in": 2, "dtype": "float64", "seed": 4, "implicit_links": 0.0}
    model = latentmf.MatrixFactorization(3, epochs=4, **params).fit(train)
    path = tmp_path / "old.npz"
    model.save(str(path))
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(str(archive["header"][()]))
        arrays = {name: archive[name] for name in archive.files if name != "header"}
    del header["params"]["implicit_links"], header["state"]["settings"]["implicit_links"]
    np.savez(path, header=np.array(json.dumps(header)), **arrays)
    loaded = latentmf.load(path)
    assert loaded.get_params()["implicit_links"] == 0.0
    whole = latentmf.MatrixFactorization(3, epochs=6, **params).fit(train)
    np.testing.assert_array_equal(loaded.partial_fit(train, epochs=2).predict(train.users, train.items),
                                  whole.predict(train.users, train.items))


def test_links_leave_the_factors_free_when_one_side_has_many_more_rows():
    # 4000 users for 20 items: links on the items' prior (4000 of them, one per user) decided the
    # draw of Lambda_V, which drifted and pinned the item factors near zero (test RMSE 1.88). Only
    # the users' prior gets links here, and the chain fits the planted model as well as without.
    train, test = _planted_split(12, 4000, 20, 2, 0.3, 0.3)

    def rmse(links):
        model = latentmf.MatrixFactorization(2, solver="gibbs", epochs=30, burn_in=10, biases=False,
                                             dtype="float64", clip=False, implicit_links=links).fit(train)
        return float(np.sqrt(np.mean((model.predict(test.users, test.items) - test.values) ** 2)))

    with_links = rmse(1.0)
    assert with_links < 1.05 * rmse(0.0)
    assert with_links < 0.7  # pinned item factors gave 1.88
