"""Real ratings: MovieLens 100k from ../shared/data (skipped when absent; never committed here)."""

from __future__ import annotations

import numpy as np
import pytest

import latentmf


def test_default_model_with_biases_reaches_the_target_held_out_rmse(movielens_u1):
    train, test = movielens_u1
    model = latentmf.MatrixFactorization(biases=True).fit(train, validation=test)
    rmse = model.history_["validation_rmse"][-1]
    assert rmse <= 0.93, rmse
    predictions = model.predict(test.users, test.items).astype(np.float64)
    assert np.sqrt(np.mean((predictions - test.values) ** 2)) == pytest.approx(rmse, rel=1e-12)


def test_the_model_beats_the_bias_only_baseline(movielens_u1):
    train, test = movielens_u1
    baseline = latentmf.MatrixFactorization(factors=1, init_std=0.0).fit(train, validation=test)
    model = latentmf.MatrixFactorization().fit(train, validation=test)
    assert model.history_["validation_rmse"][-1] < baseline.history_["validation_rmse"][-1] - 0.005


def test_gradient_descent_learns_on_real_data(movielens_u1):
    train, test = movielens_u1
    model = latentmf.MatrixFactorization(solver="gd", epochs=60).fit(train, validation=test)
    rmse = model.history_["validation_rmse"]
    assert np.all(np.diff(model.history_["loss"]) < 0)
    assert rmse[-1] < 0.98 and rmse[-1] < rmse[0]
