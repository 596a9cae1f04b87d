"""Divergence: a step that makes training blow up is caught in the epoch where it happens, fit
raises FloatingPointError with a hint, and the model keeps its last finite epoch, bit for bit."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import latentmf
from latentmf import _core

from conftest import random_ratings

SOLVERS = ["sgd", "adagrad", "gd"]
DTYPES = ["float32", "float64"]


@pytest.fixture(scope="module")
def ratings():
    return random_ratings(np.random.default_rng(3), 80, 60, 2000)


def _model(**params):
    return latentmf.MatrixFactorization(**{"factors": 8, "epochs": 30, "seed": 1, **params})


def _arrays(model):
    native = model._state().native
    arrays = [native.U, native.V, native.user_bias, native.item_bias]
    if model.solver == "adagrad":
        arrays += [native.user_accumulators, native.item_accumulators]
    return [a.copy() for a in arrays]


def _assert_same_model(model, reference):
    for a, b in zip(_arrays(model), _arrays(reference), strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.history_ == reference.history_ or _same_history(model.history_, reference.history_)


def _same_history(a, b):
    return all(key == "seconds" or a[key] == b[key] or all(map(_same_number, a[key], b[key])) for key in a)


def _same_number(x, y):
    return x == y or (math.isnan(x) and math.isnan(y))


@pytest.mark.parametrize("solver, params, diverges_in", [
    ("sgd", dict(learning_rate=0.3), 2),
    ("sgd", dict(learning_rate=0.2, biases=False), 3),
    ("gd", dict(learning_rate=0.1), 7),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_fit_that_diverges_keeps_its_last_finite_epoch(ratings, solver, params, diverges_in, dtype):
    model = _model(solver=solver, dtype=dtype, **params)
    with pytest.raises(FloatingPointError, match=r"training diverged in epoch (\d+): the loss became (inf|nan); the "
                                                 r"model keeps the last finite epoch \(\d+\)\. Lower the learning "
                                                 r"rate \(it was 0\.\d+\)") as caught:
        model.fit(ratings)
    k = len(model.history_["epoch"])
    assert k >= 1 and f"in epoch {k}:" in str(caught.value)  # caught in the epoch that blew up, not later
    assert abs(k - diverges_in) <= 1
    assert all(np.isfinite(model.history_["loss"])) and np.isfinite(model.U).all() and np.isfinite(model.V).all()
    # the model is the one a fit stopped after those k epochs gives, bit for bit, and usable
    _assert_same_model(model, _model(solver=solver, dtype=dtype, **{**params, "epochs": k}).fit(ratings))
    assert np.isfinite(model.predict([0, 1], [0, 1])).all()
    assert len(model.recommend(0, k=3)[0]) == 3


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("biases", [True, False])
def test_continuing_with_a_step_that_diverges_keeps_the_model_it_had(ratings, solver, dtype, biases):
    model = _model(solver=solver, dtype=dtype, biases=biases, epochs=3).fit(ratings)
    # a step the dtype holds, but whose first update overflows it
    step = 1e30 if dtype == "float32" else 1e300
    model.set_params(learning_rate=step)
    hint = rf"keeps the last finite epoch \(2\)\. Lower the learning rate \(it was {re.escape(f'{step:g}')}\)"
    with pytest.raises(FloatingPointError, match="training diverged in epoch 3: .* " + hint):
        model.partial_fit(epochs=5)
    _assert_same_model(model, _model(solver=solver, dtype=dtype, biases=biases, epochs=3).fit(ratings))
    # and it trains on from there with a sensible step
    model.set_params(learning_rate=None).partial_fit(epochs=2)
    assert model.history_["epoch"] == [0, 1, 2, 3, 4]
    _assert_same_model(model, _model(solver=solver, dtype=dtype, biases=biases, epochs=5).fit(ratings))


@pytest.mark.parametrize("solver", ["sgd", "adagrad"])
def test_sgd_stops_at_the_first_sub_epoch_that_is_not_finite(ratings, solver, monkeypatch):
    """The epoch runs one native call per sub-epoch, and none runs after one that blew up."""
    results = []
    real = _core.sgd_grid

    def recorded(*args):
        results.append(real(*args))
        return results[-1]

    monkeypatch.setattr(_core, "sgd_grid", recorded)
    model = _model(solver=solver, learning_rate=5.0 if solver == "sgd" else 1e4, blocks=8)
    with pytest.raises(FloatingPointError):
        model.fit(ratings)
    first_bad = next(i for i, value in enumerate(results) if not math.isfinite(value))
    assert first_bad == len(results) - 1
    assert len(results) < 8 * (len(model.history_["epoch"]) + 1)  # the epoch did not run to its end


def test_a_loss_that_is_not_finite_from_the_start_gets_its_own_hint():
    """Not the step's fault: the squares of these ratings overflow float64 before any update."""
    huge = latentmf.Ratings([0, 1, 2], [0, 1, 0], [1e200, -1e200, 1e200])
    model = _model(dtype="float64")
    with pytest.raises(FloatingPointError, match=r"the loss is not finite \(inf\) even before training: the ratings "
                                                 r"or the initial factors .* are too large to square in float64"):
        model.fit(huge)
    assert model.history_["epoch"] == []


@pytest.mark.parametrize("init", ["random", "spectral"])
def test_als_on_ratings_whose_products_overflow_says_so(init):
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 50, 3000), rng.integers(0, 40, 3000)
    huge = latentmf.Ratings(users, items, (rng.random(3000) * 3e38).astype(np.float32), 50, 40)
    model = latentmf.MatrixFactorization(4, solver="als", epochs=2, init=init)
    with pytest.raises(FloatingPointError, match="too large .*float32: rescale them, or use dtype='float64'"):
        model.fit(huge)
    if init == "random":  # it diverges in its first half-step and keeps the initial factors
        assert model.history_["epoch"] == [] and all(np.isfinite(a).all() for a in _arrays(model))
    else:  # the start fails before there is a model
        with pytest.raises(latentmf.NotFittedError):
            model.predict([0], [0])


def test_initial_factors_that_overflow_are_refused_before_training(ratings):
    with pytest.raises(ValueError, match=r"init_std=1e\+38 and init_mean=None give initial factors that float32 "
                                         "cannot hold"):
        _model(init_std=1e38, dtype="float32").fit(ratings)
    with pytest.raises(ValueError, match=r"init_std=1e\+20 and init_mean=None give initial predictions up to "
                                         r"\d.*e\+41, which overflow float32"):
        _model(init_std=1e20, dtype="float32").fit(ratings)


def test_a_failed_fit_of_a_fitted_model_with_bad_init_leaves_it_alone(ratings):
    model = _model(epochs=2).fit(ratings)
    before = _arrays(model)
    with pytest.raises(ValueError, match="init_std"):
        model.set_params(init_std=1e38).fit(ratings)
    for a, b in zip(before, _arrays(model)):
        np.testing.assert_array_equal(a, b)
    assert model.history_["epoch"] == [0, 1]
