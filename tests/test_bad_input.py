"""Bad input raises an error that names the argument, and changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

import latentmf

from conftest import random_factors, random_ratings

GOOD = dict(users=[0, 1, 2], items=[1, 0, 1], values=[4.0, 3.0, 5.0])


def _ratings(**changes):
    arguments = {**GOOD, **changes}
    return latentmf.Ratings(arguments.pop("users"), arguments.pop("items"), arguments.pop("values"), **arguments)


@pytest.mark.parametrize(
    "changes, error, match",
    [
        (dict(users=[0, -1, 2]), ValueError, r"users\[1\] = -1 is outside \[0, n_users=3\)"),
        (dict(items=[1, 0, 7], n_items=2), ValueError, r"items\[2\] = 7 is outside \[0, n_items=2\)"),
        (dict(users=[0, 1, 5], n_users=3), ValueError, r"users\[2\] = 5 is outside"),
        (dict(values=[4.0, np.nan, 5.0]), ValueError, r"values\[1\] = nan is not a finite number"),
        (dict(values=[4.0, 3.0, np.inf]), ValueError, r"values\[2\] = inf"),
        (dict(values=[4.0, 3.0]), ValueError, "same length"),
        (dict(users=[[0, 1, 2]]), ValueError, "users must be 1-dimensional"),
        (dict(values=np.ones((3, 1))), ValueError, "values must be 1-dimensional"),
        (dict(users=["a", "b", "c"]), TypeError, "users must hold integer indices"),
        (dict(users=[0.0, 1.0, 2.0]), TypeError, "users must hold integer indices"),
        (dict(items=[True, False, True]), TypeError, "items must hold integer indices"),
        (dict(values=["4", "3", "5"]), TypeError, "values must hold real numbers"),
        (dict(users=[], items=[], values=[]), ValueError, "empty"),
        (dict(n_users=0), ValueError, "n_users must be >= 1"),
        (dict(n_items=1.5), TypeError, "n_items must be an integer"),
        (dict(users=np.array([0, 1, 2**40])), ValueError, "n_users = 1099511627777 exceeds the supported maximum"),
    ],
)
def test_bad_ratings(changes, error, match):
    with pytest.raises(error, match=match):
        _ratings(**changes)


def test_non_contiguous_inputs_are_read_correctly():
    users = np.arange(12)[::2]
    values = np.arange(12, dtype=np.float64)[::2] / 10
    ratings = latentmf.Ratings(users, users[::-1], values)
    np.testing.assert_array_equal(ratings.users, [0, 2, 4, 6, 8, 10])
    np.testing.assert_array_equal(ratings.items, [10, 8, 6, 4, 2, 0])
    np.testing.assert_array_equal(ratings.values, values)
    U = np.asfortranarray(np.ones((11, 2)))
    with pytest.raises(TypeError, match="U must be C-contiguous"):
        latentmf.loss(ratings, U, np.ones((11, 2)))


def test_big_endian_and_small_integer_inputs_are_converted():
    ratings = latentmf.Ratings(np.array([0, 2], dtype=">i4"), np.array([1, 0], dtype=np.uint8),
                               np.array([1.5, 2.5], dtype=">f8"))
    np.testing.assert_array_equal(ratings.users, [0, 2])
    np.testing.assert_array_equal(ratings.values, [1.5, 2.5])
    assert ratings.values.dtype.isnative


class TestFunctions:
    @pytest.fixture
    def problem(self, rng):
        ratings = random_ratings(rng, 10, 8, 30)
        U, V = random_factors(rng, 10, 8, 3)
        return ratings, U, V

    @pytest.mark.parametrize(
        "make_U, make_V, error, match",
        [
            (lambda U: U[:9], lambda V: V, ValueError, "the ratings have n_users=10 but U has 9 rows"),
            (lambda U: U, lambda V: V[:, :2].copy(), ValueError, "same number of columns"),
            (lambda U: U[:, :0], lambda V: V[:, :0], ValueError, "at least one column"),
            (lambda U: U.astype(np.float32), lambda V: V, TypeError, "U and V must both be float32 or both float64"),
            (lambda U: U.astype(np.int64), lambda V: V.astype(np.int64), TypeError, "float32 or both float64"),
            (lambda U: U.ravel(), lambda V: V, ValueError, "2-dimensional"),
            (lambda U: U.tolist(), lambda V: V, TypeError, "U must be a numpy.ndarray"),
            (lambda U: U[:, ::-1], lambda V: V, TypeError, "U must be C-contiguous"),
        ],
    )
    def test_bad_factors(self, problem, make_U, make_V, error, match):
        ratings, U, V = problem
        for call in (lambda u, v: latentmf.loss(ratings, u, v), lambda u, v: latentmf.gradients(ratings, u, v)):
            with pytest.raises(error, match=match):
                call(make_U(U), make_V(V))

    def test_sgd_rejects_bad_arguments_and_changes_nothing(self, problem):
        ratings, U, V = problem
        U0, V0 = U.copy(), V.copy()
        read_only = U.copy()
        read_only.flags.writeable = False
        bad_calls = [
            (lambda: latentmf.sgd_epoch(ratings, U, V, -0.1), ValueError, "learning_rate must be a finite number > 0"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.0), ValueError, "learning_rate"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, np.nan), ValueError, "learning_rate"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, -1.0), ValueError, "regularization must be"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, order=np.arange(29)), ValueError, "order has length 29"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, order=np.r_[np.arange(29), 0]), ValueError,
             r"order\[29\] = 0 repeats"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, order=np.r_[np.arange(29), 30]), ValueError,
             r"order\[29\] = 30 is outside"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, order=np.arange(30.0)), TypeError, "order must hold integer"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, order=np.arange(30), threads=2), ValueError,
             "one thread"),
            (lambda: latentmf.sgd_epoch(ratings, read_only, V, 0.1), ValueError, "U must be writeable"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, blocks=0), ValueError, "blocks must be >= 1"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, threads=0), ValueError, "threads must be >= 1"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, seed=-1), ValueError, "seed must be >= 0"),
            (lambda: latentmf.sgd_epoch(ratings, U, U, 0.1), ValueError, "the ratings have n_items=8|share memory"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, biases=(3.0, np.zeros(10), None)), ValueError,
             "user_bias and item_bias must be given together"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, biases=(3.0, np.zeros(9), np.zeros(8))), ValueError,
             "user_bias has length 9"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, biases=(np.nan, np.zeros(10), np.zeros(8))),
             ValueError, "global_mean"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, biases=(3.0, np.zeros(10, np.float32), np.zeros(8))),
             TypeError, "user_bias must have dtype float64"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, adagrad=(np.ones((10, 2)), np.zeros((8, 2)))),
             ValueError, r"item_accumulators\[0, 0\] = 0.000000 must be a finite number > 0"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, adagrad=(np.full((10, 2), np.nan), np.ones((8, 2)))),
             ValueError, r"user_accumulators\[0, 0\] = nan"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, adagrad=(np.ones((10, 2)), None)), ValueError,
             "user_accumulators and item_accumulators must be given together"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, adagrad=(np.ones((9, 2)), np.ones((8, 2)))), ValueError,
             r"user_accumulators must have shape \(10, 2\), got \(9, 2\)"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, adagrad=(np.ones(10), np.ones((8, 2)))), ValueError,
             "user_accumulators must be 2-dimensional"),
            (lambda: latentmf.sgd_epoch(ratings, U, V, 0.1, adagrad=np.ones(10)), TypeError,
             "adagrad must be None or a"),
        ]
        for call, error, match in bad_calls:
            with pytest.raises(error, match=match):
                call()
            np.testing.assert_array_equal(U, U0)
            np.testing.assert_array_equal(V, V0)

    def test_shared_memory_between_updated_arrays_is_refused(self, rng):
        ratings = random_ratings(rng, 8, 8, 20)
        both = np.ones((16, 3))
        with pytest.raises(ValueError, match="U and V must not share memory"):
            latentmf.sgd_epoch(ratings, both[:8], both[7:15], 0.1)
        U, V, flat = np.ones((8, 3)), np.ones((8, 3)), np.ones(16)
        with pytest.raises(ValueError, match="user_bias and item_bias must not share memory"):
            latentmf.sgd_epoch(ratings, U, V, 0.1, biases=(3.0, flat[:8], flat[4:12]))
        with pytest.raises(ValueError, match="V and item_accumulators must not share memory"):
            latentmf.sgd_epoch(ratings, U, V, 0.1, adagrad=(np.ones((8, 2)), V.reshape(-1)[:16].reshape(8, 2)))

    def test_dense_gradients_reject_bad_input(self, rng):
        U, V = random_factors(rng, 4, 3, 2)
        R = np.ones((4, 3))
        with pytest.raises(ValueError, match=r"R has shape \(3, 3\)"):
            latentmf.gradients_dense(R[:3], U, V)
        with pytest.raises(ValueError, match=r"R\[0, 1\] = inf is infinite"):
            latentmf.gradients_dense(np.where(np.eye(4, 3, 1) > 0, np.inf, 1.0), U, V)
        with pytest.raises(ValueError, match=r"R\[0, 0\] = nan is observed"):
            latentmf.gradients_dense(np.where(np.eye(4, 3) > 0, np.nan, 1.0), U, V, np.ones((4, 3), bool))
        with pytest.raises(TypeError, match="mask must have dtype bool"):
            latentmf.gradients_dense(R, U, V, np.ones((4, 3)))
        with pytest.raises(ValueError, match="mask must have the shape of R"):
            latentmf.gradients_dense(R, U, V, np.ones((3, 3), bool))
        with pytest.raises(TypeError, match="R must hold real numbers"):
            latentmf.gradients_dense(R.astype(str), U, V)


class TestModel:
    @pytest.mark.parametrize(
        "params, error, match",
        [
            (dict(factors=0), ValueError, "factors must be >= 1"),
            (dict(factors=2.5), TypeError, "factors must be an integer"),
            (dict(solver="als"), ValueError, "solver must be one of"),
            (dict(epochs=-1), ValueError, "epochs must be >= 0"),
            (dict(learning_rate=-0.01), ValueError, "learning_rate must be a finite number > 0"),
            (dict(learning_rate=float("nan")), ValueError, "learning_rate"),
            (dict(regularization=-1), ValueError, "regularization must be a finite number >= 0"),
            (dict(regularization=float("inf")), ValueError, "regularization"),
            (dict(learning_rate_decay=-1), ValueError, "learning_rate_decay"),
            (dict(init_std=-1), ValueError, "init_std"),
            (dict(dtype="float16"), ValueError, "dtype must be 'float32' or 'float64'"),
            (dict(dtype="nonsense"), ValueError, "dtype must be"),
            (dict(threads=0), ValueError, "threads must be >= 1"),
            (dict(blocks=0), ValueError, "blocks must be >= 1"),
            (dict(blocks=5000), ValueError, "blocks must be >= 1 and <= 1024"),
            (dict(seed=-3), ValueError, "seed must be >= 0"),
            (dict(biases="yes"), TypeError, "biases must be True or False"),
        ],
    )
    def test_bad_hyper_parameters_leave_a_fitted_model_unchanged(self, rng, params, error, match):
        ratings = random_ratings(rng, 20, 10, 60)
        model = latentmf.MatrixFactorization(factors=3, epochs=2).fit(ratings)
        before = model.U.copy(), model.history_
        for name, value in params.items():
            setattr(model, name, value)
        with pytest.raises(error, match=match):
            model.fit(ratings)
        np.testing.assert_array_equal(model.U, before[0])
        assert model.history_ is before[1]

    def test_bad_data_for_fit(self, rng):
        model = latentmf.MatrixFactorization(factors=3, epochs=1)
        with pytest.raises(TypeError, match="ratings must be a latentmf.Ratings"):
            model.fit(np.ones((5, 3)))
        train = random_ratings(rng, 20, 10, 60)
        with pytest.raises(ValueError, match="validation has user 24"):
            model.fit(train, validation=latentmf.Ratings([24], [0], [3.0]))

    def test_bad_predict_and_recommend_arguments(self, rng):
        model = latentmf.MatrixFactorization(factors=3, epochs=1).fit(random_ratings(rng, 20, 10, 60))
        with pytest.raises(ValueError, match=r"users\[1\] = 20 is outside \[0, n_users=20\)"):
            model.predict([0, 20], [0, 1])
        with pytest.raises(ValueError, match=r"items\[0\] = -1 is outside"):
            model.predict([0], [-1])
        with pytest.raises(ValueError, match="same length"):
            model.predict([0, 1], [0])
        with pytest.raises(TypeError, match="users must hold integer"):
            model.predict([0.5], [0])
        with pytest.raises(ValueError, match=r"user = 20 is outside \[0, n_users=20\)"):
            model.recommend(20)
        with pytest.raises(ValueError, match="k must be >= 1"):
            model.recommend(0, k=0)

    def test_divergence_restores_the_last_finite_epoch(self, rng):
        ratings = random_ratings(rng, 30, 20, 300)
        model = latentmf.MatrixFactorization(factors=4, epochs=50, learning_rate=5.0)
        with pytest.raises(FloatingPointError, match="Lower the learning rate"):
            model.fit(ratings)
        assert np.isfinite(model.U).all() and np.isfinite(model.V).all()
        assert all(np.isfinite(model.history_["loss"]))
