"""The scikit-learn estimator interface: params, clone, fit(X, y), predict(X), score, model selection."""

from __future__ import annotations

import numpy as np
import pytest

import latentmf

from conftest import random_ratings


def _xy(ratings):
    return np.column_stack([ratings.users, ratings.items]), ratings.values


def test_get_and_set_params_without_scikit_learn():
    model = latentmf.MatrixFactorization(factors=4, regularization=0.1)
    params = model.get_params()
    assert params["factors"] == 4 and params["regularization"] == 0.1 and params["unknown"] == "warn"
    assert list(params) == list(latentmf.MatrixFactorization._parameter_names())
    assert model.set_params(epochs=3, solver="sgd") is model and (model.epochs, model.solver) == (3, "sgd")
    with pytest.raises(ValueError, match="invalid parameter 'factor' for MatrixFactorization"):
        model.set_params(factor=3)


def test_clone_copies_the_parameters_and_not_the_fit(rng):
    base = pytest.importorskip("sklearn.base")
    model = latentmf.MatrixFactorization(factors=4, epochs=2, early_stopping=3, unknown="mean")
    model.fit(random_ratings(rng, 20, 10, 80), validation=random_ratings(rng, 20, 10, 20))
    copy = base.clone(model)
    assert copy.get_params() == model.get_params()
    with pytest.raises(latentmf.NotFittedError):
        copy.U
    assert base.is_regressor(model)


def test_fit_with_x_and_y_equals_fit_with_ratings(rng):
    ratings = random_ratings(rng, 30, 20, 300)
    X, y = _xy(ratings)
    by_pairs = latentmf.MatrixFactorization(factors=3, epochs=3).fit(X, y)
    by_ratings = latentmf.MatrixFactorization(factors=3, epochs=3).fit(ratings)
    np.testing.assert_array_equal(by_pairs.U, by_ratings.U)
    np.testing.assert_array_equal(by_pairs.predict(X[:7]), by_ratings.predict(X[:7, 0], X[:7, 1]))
    model = latentmf.MatrixFactorization(factors=3, epochs=2).fit(ratings, validation=ratings)
    assert not np.isnan(model.history_["validation_rmse"]).any()


def test_validation_is_keyword_only_and_y_is_named_when_misused(rng):
    """fit(ratings, y) used to take y as a validation set, and fit((u, i, v), y) blamed validation."""
    ratings = random_ratings(rng, 30, 20, 300)
    model = latentmf.MatrixFactorization(factors=3, epochs=2)
    with pytest.raises(TypeError, match="pass no y .*validation="):
        model.fit(ratings, ratings)
    triple = (ratings.users, ratings.items, ratings.values)
    with pytest.raises(TypeError, match=r"y is for scikit-learn's fit\(X, y\).*tuple"):
        model.fit(triple, ratings.values)
    assert not model._is_fitted()


def test_fit_with_raw_ids_in_x():
    X = np.array([["ann", 10], ["bob", 20], ["ann", 20], ["cy", 10]], dtype=object)
    model = latentmf.MatrixFactorization(factors=2, epochs=2).fit(X, [4.0, 3.0, 5.0, 2.0])
    assert model.user_ids_.ids.tolist() == ["ann", "bob", "cy"] and model.item_ids_.ids.tolist() == [10, 20]
    assert model.predict(X).shape == (4,)


def test_score_is_r_squared(rng):
    ratings = random_ratings(rng, 30, 20, 300)
    X, y = _xy(ratings)
    model = latentmf.MatrixFactorization(factors=3, epochs=5).fit(X, y)
    predictions = model.predict(X).astype(np.float64)
    expected = 1 - np.sum((y - predictions) ** 2) / np.sum((y - y.mean()) ** 2)
    assert model.score(X, y) == pytest.approx(expected, rel=1e-12)
    metrics = pytest.importorskip("sklearn.metrics")
    assert model.score(X, y) == pytest.approx(metrics.r2_score(y, predictions), rel=1e-12)
    assert model.score(X[:2], [3.0, 3.0]) in (0.0, 1.0)


def test_bad_x_and_y(rng):
    model = latentmf.MatrixFactorization(factors=3, epochs=1)
    with pytest.raises(ValueError, match=r"X must be an \(n, 2\) array"):
        model.fit(np.ones((4, 3), dtype=int), np.ones(4))
    with pytest.raises(ValueError, match="y must be 1-dimensional with one rating per row of X"):
        model.fit(np.ones((4, 2), dtype=int), np.ones(3))
    with pytest.raises(TypeError, match="Ratings.from_dataframe"):
        model.fit({"user": [1]})
    model.fit(*_xy(random_ratings(rng, 10, 5, 30)))
    with pytest.raises(ValueError, match=r"X must be an \(n, 2\) array"):
        model.predict(np.ones((3, 3), dtype=int))
    with pytest.raises(ValueError, match="X and y must have the same length"):
        model.score(np.zeros((3, 2), dtype=int), [1.0, 2.0])


def test_cross_val_score_and_grid_search_work_unchanged(rng):
    model_selection = pytest.importorskip("sklearn.model_selection")
    ratings = random_ratings(rng, 40, 30, 900)
    X, y = _xy(ratings)
    estimator = latentmf.MatrixFactorization(factors=2, epochs=3, unknown="mean")
    scores = model_selection.cross_val_score(estimator, X, y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    search = model_selection.GridSearchCV(estimator, {"regularization": [0.01, 0.1], "factors": [1, 2]}, cv=2,
                                          scoring="neg_root_mean_squared_error")
    search.fit(X, y)
    assert set(search.best_params_) == {"regularization", "factors"}
    assert search.best_estimator_.U.shape[1] == search.best_params_["factors"]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_default_estimators_score_folds_with_users_and_items_the_training_folds_lack(rng):
    """Real data has items rated once: some test folds hold ids their training folds lack, and the
    scores used to be NaN (the default refused unknown ids)."""
    model_selection = pytest.importorskip("sklearn.model_selection")
    ratings = random_ratings(rng, 60, 50, 400)
    X, y = _xy(ratings)
    X[:10, 1] = np.arange(1000, 1010)  # ten items rated once: in a test fold, never in its training folds
    with pytest.warns(latentmf.UnknownIdWarning, match="pairs have a user or item the model was not trained on"):
        scores = model_selection.cross_val_score(latentmf.MatrixFactorization(), X, y, cv=3)
    assert np.isfinite(scores).all()
    search = model_selection.GridSearchCV(latentmf.MatrixFactorization(epochs=3), {"factors": [2, 4]}, cv=3,
                                          scoring="neg_root_mean_squared_error")
    with pytest.warns(latentmf.UnknownIdWarning):
        search.fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
