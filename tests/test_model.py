"""MatrixFactorization: training, determinism, zero-copy views, predict and recommend."""

from __future__ import annotations

import gc
import pickle
import warnings
import weakref

import numpy as np
import pytest

import latentmf
from latentmf import reference
from latentmf.rating_solvers import SOLVER_SPECIFIC, SOLVERS

from conftest import low_rank_ratings, random_ratings


def _fit(ratings, **params):
    return latentmf.MatrixFactorization(**{"factors": 8, "epochs": 5, **params}).fit(ratings)


def _state(model):
    arrays = [model.U, model.V]
    if model.user_bias_ is not None:
        arrays += [model.user_bias_, model.item_bias_]
    return [a.copy() for a in arrays]


@pytest.mark.parametrize("solver", ["sgd", "adagrad", "gd"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("biases", [False, True])
def test_fit_is_bit_identical_across_threads_and_runs(rng, solver, dtype, biases):
    ratings = random_ratings(rng, 200, 150, 4000)
    runs = [_fit(ratings, solver=solver, dtype=dtype, biases=biases, threads=t) for t in (1, 2, 2)]
    for other in runs[1:]:
        for a, b in zip(_state(runs[0]), _state(other)):
            np.testing.assert_array_equal(a, b)
        assert runs[0].history_["loss"] == other.history_["loss"]


def test_seed_and_blocks_change_the_result(rng):
    ratings = random_ratings(rng, 100, 80, 2000)
    base = _fit(ratings).U
    assert not np.array_equal(base, _fit(ratings, seed=1).U)
    assert not np.array_equal(base, _fit(ratings, blocks=4).U)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradient_descent_with_a_small_step_decreases_the_loss_monotonically(rng, dtype):
    ratings = random_ratings(rng, 60, 40, 800)
    model = _fit(ratings, solver="gd", epochs=40, dtype=dtype, regularization=0.05, init_std=0.1)
    losses = np.array(model.history_["loss"])
    assert np.all(np.diff(losses) < 0), losses
    assert losses[-1] < 0.5 * losses[0]


def test_gradient_descent_step_matches_the_reference(rng):
    ratings = random_ratings(rng, 30, 20, 200)
    model = _fit(ratings, solver="gd", epochs=0, dtype="float64", biases=False)
    U, V = model.U.copy(), model.V.copy()
    dU, dV = reference.gradients(ratings, U, V, 0.2)
    model2 = _fit(ratings, solver="gd", epochs=1, dtype="float64", biases=False, learning_rate=0.01,
                  regularization=0.2)
    np.testing.assert_allclose(model2.U, U - 0.01 * dU, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model2.V, V - 0.01 * dV, rtol=1e-12, atol=1e-12)


def test_sgd_reaches_a_low_training_rmse_on_noiseless_low_rank_data(rng):
    ratings = low_rank_ratings(rng, 80, 60, rank=3, density=0.5)
    model = latentmf.MatrixFactorization(factors=3, solver="sgd", epochs=150, learning_rate=0.03,
                                         regularization=0.0, biases=False, init_std=0.3, init_mean=0.0,
                                         dtype="float64").fit(ratings)
    assert model.history_["train_rmse"][-1] < 0.02
    assert model.history_["train_rmse"][-1] < 0.05 * model.history_["train_rmse"][0]


def test_learning_rate_decay_shrinks_the_step(rng):
    ratings = random_ratings(rng, 50, 40, 600)
    fixed = _fit(ratings, learning_rate=0.02)
    decayed = _fit(ratings, learning_rate=0.02, learning_rate_decay=1.0)
    first = _fit(ratings, learning_rate=0.02, epochs=1)
    # the first epoch runs at the full step either way; later ones differ
    np.testing.assert_array_equal(_fit(ratings, learning_rate=0.02, learning_rate_decay=1.0, epochs=1).U, first.U)
    assert not np.array_equal(fixed.U, decayed.U)


def test_history_records_every_epoch(rng):
    train = random_ratings(rng, 50, 40, 600)
    test = random_ratings(rng, 50, 40, 100)
    model = latentmf.MatrixFactorization(factors=4, epochs=6, exact_loss=True).fit(train, validation=test)
    history = model.history_
    assert history["epoch"] == list(range(6))
    assert all(len(history[key]) == 6 for key in ("loss", "train_rmse", "validation_rmse", "seconds"))
    assert all(s >= 0 for s in history["seconds"])
    expected_rmse = np.sqrt(np.mean((model.predict(test.users, test.items) - test.values) ** 2))
    assert history["validation_rmse"][-1] == pytest.approx(expected_rmse, rel=1e-6)
    biases = (model.global_mean_, model.user_bias_, model.item_bias_)
    assert history["loss"][-1] == pytest.approx(
        reference.loss(train, model.U, model.V, model.settings_["regularization"], biases=biases), rel=1e-5)
    train_rmse = np.sqrt(np.mean((model.predict(train.users, train.items) - train.values) ** 2))
    assert history["train_rmse"][-1] == pytest.approx(train_rmse, rel=1e-5)
    assert np.isnan(_fit(train).history_["validation_rmse"]).all()


@pytest.mark.parametrize("solver", ["sgd", "adagrad"])
def test_by_default_the_history_holds_the_errors_seen_during_the_epoch(rng, solver):
    """No extra pass over the ratings: the squared errors are those sgd_epoch returns (each before
    its update), the penalty is that of the factors at the end of the epoch."""
    train = random_ratings(rng, 50, 40, 600)
    params = {"factors": 4, "epochs": 3, "solver": solver, "biases": False, "blocks": 3, "seed": 4}
    model = latentmf.MatrixFactorization(**params).fit(train)
    replay = latentmf.MatrixFactorization(**{**params, "epochs": 0}).fit(train)
    U, V = replay.U.copy(), replay.V.copy()
    adagrad = (np.ones((50, 2), np.float32), np.ones((40, 2), np.float32)) if solver == "adagrad" else None
    rate, regularization = model.settings_["learning_rate"], model.settings_["regularization"]
    for epoch in range(3):
        seen = latentmf.sgd_epoch(train, U, V, rate, regularization, adagrad=adagrad, blocks=3, seed=4,
                                  epoch=epoch, warm_up=solver == "adagrad" and epoch == 0)
        penalty = latentmf.loss(train, U, V, 1.0) - latentmf.loss(train, U, V, 0.0)
        assert model.history_["train_rmse"][epoch] == pytest.approx(np.sqrt(seen / len(train)), rel=1e-6)
        assert model.history_["loss"][epoch] == pytest.approx(0.5 * seen + regularization * penalty, rel=1e-5)
    np.testing.assert_array_equal(U, model.U)


def test_verbose_prints_one_line_per_epoch(rng, capsys):
    _fit(random_ratings(rng, 20, 20, 100), epochs=3, verbose=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch   1/3")


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_initial_draws_span_several_streams_the_same_for_any_thread_count(threads):
    # 40,000 users: U from three streams, V from the fourth.
    users = np.arange(40_000, dtype=np.int32)
    ratings = latentmf.Ratings(users, users % 7, np.ones(len(users), np.float32), 40_000, 7)
    model = _fit(ratings, factors=2, epochs=0, dtype="float64", init_std=0.5, seed=3, threads=threads)
    U, V = documented_draws(3, [(40_000, 2), (7, 2)])
    np.testing.assert_array_equal(model.U, 0.5 * U)
    np.testing.assert_array_equal(model.V, 0.5 * V)
    implicit = latentmf.ImplicitMatrixFactorization(factors=2, epochs=0, init_std=0.5, seed=3, threads=threads,
                                                    dtype="float64").fit(ratings)
    np.testing.assert_array_equal(implicit.U, 0.5 * U)


def test_biases_start_from_the_global_mean(rng):
    ratings = random_ratings(rng, 30, 20, 200)
    model = _fit(ratings, epochs=0)
    assert model.global_mean_ == pytest.approx(float(np.mean(ratings.values)))
    np.testing.assert_array_equal(model.user_bias_, 0)
    assert _fit(ratings, biases=False).user_bias_ is None


def documented_draws(seed: int, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    """docs/model.md's initial draws: each 16,384 rows of each array from the next child stream
    of SeedSequence(seed)."""
    rows_per_stream = 16_384
    counts = [-(-rows // rows_per_stream) for rows, _ in shapes]
    streams = iter(np.random.SeedSequence(seed).spawn(sum(counts)))
    return [np.concatenate([np.random.default_rng(next(streams)).standard_normal((min(rows_per_stream, rows - start), F))
                            for start in range(0, rows, rows_per_stream)]) for rows, F in shapes]


def test_initial_factors_are_the_documented_normal_draws(rng):
    ratings = random_ratings(rng, 30, 20, 200)
    model = _fit(ratings, epochs=0, dtype="float64", init_std=0.25, seed=9)
    U, V = documented_draws(9, [(30, 8), (20, 8)])
    np.testing.assert_array_equal(model.U, 0.25 * U)
    np.testing.assert_array_equal(model.V, 0.25 * V)
    # without biases the factors start around sqrt(0.1 * mean rating / factors)
    plain = _fit(ratings, epochs=0, dtype="float64", init_std=0.25, seed=9, biases=False)
    mean = np.sqrt(0.1 * np.mean(ratings.values) / 8)
    np.testing.assert_allclose(plain.U, model.U + mean, rtol=1e-15, atol=1e-15)
    assert _fit(ratings, epochs=0, biases=False, init_mean=-0.5, init_std=0.0).U.max() == np.float32(-0.5)


class TestZeroCopy:
    def test_factors_view_the_model_memory(self, rng):
        model = _fit(random_ratings(rng, 30, 20, 200))
        # Two reads of the property are two views of one buffer, owned by the native model.
        first, second = model.U, model.U
        assert first is not second and np.shares_memory(first, second)
        assert first.base is model._state().native and second.base is model._state().native
        assert not model.U.flags.owndata and model.U.flags.writeable and model.U.flags.c_contiguous
        assert model.U.shape == (30, 8) and model.V.shape == (20, 8)

    def test_a_write_through_the_view_changes_predictions(self, rng):
        model = _fit(random_ratings(rng, 30, 20, 200), biases=False, clip=False)
        before = model.predict([3], [4])[0]
        model.U[3] *= 2
        assert model.predict([3], [4])[0] == pytest.approx(2 * before, rel=1e-6)
        model.V[4] = 0
        assert model.predict([3], [4])[0] == 0

    def test_the_view_outlives_the_model(self, rng):
        model = _fit(random_ratings(rng, 30, 20, 200))
        U, bias = model.U, model.user_bias_
        saved = U.copy()
        alive = weakref.ref(model)
        del model
        gc.collect()
        assert alive() is None
        np.testing.assert_array_equal(U, saved)
        U[:] += 1  # still writable memory owned by the native model the view keeps alive
        assert bias.shape == (30,)

    def test_refitting_does_not_change_old_views(self, rng):
        model = _fit(random_ratings(rng, 30, 20, 200))
        old = model.U
        saved = old.copy()
        model.fit(random_ratings(rng, 50, 20, 300))
        np.testing.assert_array_equal(old, saved)
        assert model.U.shape == (50, 8)

    def test_ratings_use_native_arrays_without_copying(self, rng):
        users = np.array([0, 1, 2], dtype=np.int32)
        items = np.array([1, 0, 1], dtype=np.int64)
        values = np.array([1.0, 2.0, 3.0], dtype=np.float32)
        ratings = latentmf.Ratings(users.astype(np.int64), items, values)
        assert ratings.items is items and ratings.values is values
        same = latentmf.Ratings(users, users, values.astype(np.float64))
        assert same.users is users


class TestPredictAndRecommend:
    def test_predict_matches_the_model_formula(self, rng):
        model = _fit(random_ratings(rng, 30, 20, 200), dtype="float64")
        expected = model.global_mean_ + model.user_bias_[5] + model.item_bias_[7] + model.U[5] @ model.V[7]
        assert model.predict(5, 7)[0] == pytest.approx(expected, rel=1e-12)

    def test_recommend_returns_the_best_unseen_items_in_order(self, rng):
        ratings = random_ratings(rng, 30, 40, 300)
        model = _fit(ratings)
        seen = set(ratings.items[ratings.users == 4].tolist())
        items, scores = model.recommend(4, k=5)
        assert len(items) == 5 and not seen & set(items.tolist())
        assert np.all(np.diff(scores) <= 0)
        all_scores = model.predict(np.full(40, 4), np.arange(40))
        unseen = [m for m in range(40) if m not in seen]
        best = sorted(unseen, key=lambda m: (-all_scores[m], m))[:5]
        assert items.tolist() == best
        np.testing.assert_allclose(scores, all_scores[items], rtol=1e-6)

    def test_recommend_can_include_seen_items_and_caps_k(self, rng):
        ratings = random_ratings(rng, 10, 6, 40)
        model = _fit(ratings)
        items, _ = model.recommend(2, k=100, exclude_seen=False)
        assert sorted(items.tolist()) == list(range(6))
        seen = np.unique(ratings.items[ratings.users == 2])
        assert len(model.recommend(2, k=100)[0]) == 6 - len(seen)

    def test_unfitted_model_says_so(self):
        model = latentmf.MatrixFactorization()
        for use in (lambda: model.U, lambda: model.predict([0], [0]), lambda: model.recommend(0)):
            with pytest.raises(latentmf.NotFittedError, match="fit"):
                use()


def test_split_is_seeded_and_disjoint(rng):
    ratings = random_ratings(rng, 40, 30, 500)
    train, test = ratings.split(0.2, seed=1)
    assert len(train) + len(test) == 500 and len(test) == 100
    assert (train.n_users, train.n_items) == (40, 30)
    pairs = lambda r: set(zip(r.users.tolist(), r.items.tolist()))
    assert not pairs(train) & pairs(test)
    again = ratings.split(0.2, seed=1)[1]
    np.testing.assert_array_equal(again.users, test.users)
    assert len(ratings.split(25, seed=1)[1]) == 25


def test_predictions_are_clipped_to_the_training_range_and_top_n_scores_are_not(rng):
    ratings = random_ratings(rng, 30, 20, 300, low=1.0, high=5.0)
    model = _fit(ratings, biases=False, clip=True)
    model.U[...] = 3.0  # every prediction far above 5
    low, high = ratings.value_range
    assert (model.predict(ratings.users, ratings.items) == np.float32(high)).all()
    model.U[...] = -3.0
    assert (model.predict(ratings.users, ratings.items) == np.float32(low)).all()
    items, scores = model.recommend(0, k=3)
    np.testing.assert_allclose(scores, model.U[0] @ model.V[items].T, rtol=1e-6)  # the formula's own values
    unclipped = model.set_params(clip=False).predict(ratings.users[:5], ratings.items[:5])
    assert (unclipped < low).all()


def test_ratings_the_dtype_cannot_hold_are_named():
    ratings = latentmf.Ratings([0, 1, 2], [0, 1, 1], np.array([3.0, 1e40, 2.0]))
    with pytest.raises(ValueError, match=r"values\[1\] = 1e\+40 does not fit in float32, the model's dtype"):
        latentmf.MatrixFactorization(factors=2).fit(ratings)
    assert latentmf.MatrixFactorization(factors=2, epochs=1, dtype="float64", regularization=0.0,
                                        learning_rate=1e-90, solver="sgd").fit(ratings)._is_fitted()


@pytest.mark.parametrize("biases", [False, True])
def test_als_never_increases_the_loss_and_needs_no_step(rng, biases):
    ratings = random_ratings(rng, 40, 30, 500)
    model = latentmf.MatrixFactorization(factors=5, solver="als", epochs=6, biases=biases, dtype="float64",
                                         init_std=0.1, exact_loss=True).fit(ratings)
    losses = model.history_["loss"]
    assert all(later <= earlier * (1 + 1e-12) for earlier, later in zip(losses, losses[1:]))
    assert "default_learning_rate" not in model._state().derived
    # the history's loss is the model's objective (latentmf.loss) at the end of each epoch
    arguments = {"biases": (model.global_mean_, model.user_bias_, model.item_bias_)} if biases else {}
    regularization = model.settings_["regularization"]
    assert losses[-1] == pytest.approx(latentmf.loss(ratings, model.U, model.V, regularization, **arguments),
                                       rel=1e-10)


#: The defaults MatrixFactorization's docstring states, by (solver, biases): epochs, regularization,
#: learning_rate (GD's: its scale over the most ratings of one user or item) and burn_in.
DOCUMENTED_DEFAULTS = {
    ("adagrad", True): (15, 0.03, 0.03, None), ("adagrad", False): (30, 0.05, 0.05, None),
    ("sgd", True): (30, 0.03, 0.01, None), ("sgd", False): (40, 0.05, 0.01, None),
    ("gd", True): (200, 0.07, 1.0, None), ("gd", False): (200, 0.03, 0.5, None),
    ("als", True): (15, 0.12, None, None), ("als", False): (10, 0.12, None, None),
    ("gibbs", True): (100, 0.12, None, 20), ("gibbs", False): (100, 0.12, None, 20),
}


#: A value other than "not given" for each hyper-parameter that only some solvers read.
SOLVER_SPECIFIC_VALUES = {"learning_rate": 0.01, "learning_rate_decay": 0.1, "blocks": 2, "init_mean": 0.1,
                          "burn_in": 1, "implicit_links": 0.5, "init": "spectral"}


@pytest.mark.parametrize("solver", SOLVERS)
def test_fit_warns_of_each_hyper_parameter_its_solver_ignores_and_of_no_other(rng, solver):
    assert set(SOLVER_SPECIFIC_VALUES) == set(SOLVER_SPECIFIC)
    ratings = random_ratings(rng, 30, 20, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        latentmf.MatrixFactorization(4, solver=solver, epochs=2).fit(ratings)
    for name, value in SOLVER_SPECIFIC_VALUES.items():
        model = latentmf.MatrixFactorization(4, solver=solver, epochs=2, **{name: value})
        if solver in SOLVER_SPECIFIC[name][0]:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                model.fit(ratings).partial_fit(epochs=1)
        else:
            readers = ", ".join(map(repr, SOLVER_SPECIFIC[name][0]))
            message = f"^solver='{solver}' ignores {name}={value!r} \\({name} is for {readers}\\)$"
            with pytest.warns(UserWarning, match=message):
                model.fit(ratings)
            with pytest.warns(UserWarning, match=message):
                model.partial_fit(epochs=1)
            assert model.settings_[name] == value


@pytest.mark.parametrize("solver, biases", list(DOCUMENTED_DEFAULTS))
def test_each_solver_resolves_the_documented_defaults_and_explicit_values_override_them(rng, solver, biases):
    ratings = random_ratings(rng, 30, 20, 200)
    epochs, regularization, learning_rate, burn_in = DOCUMENTED_DEFAULTS[solver, biases]
    model = latentmf.MatrixFactorization(4, solver=solver, biases=biases).fit(ratings)
    settings = model.settings_
    assert len(model.history_["epoch"]) == settings["epochs"] == epochs
    assert settings["regularization"] == regularization and settings["burn_in"] == burn_in
    if solver == "gd":
        busiest = max(np.bincount(ratings.users).max(), np.bincount(ratings.items).max())
        assert settings["learning_rate"] == pytest.approx(learning_rate / busiest)
    else:
        assert settings["learning_rate"] == learning_rate
    if solver == "gibbs":
        # The kept samples sit side by side in U: the burn-in was applied.
        assert model.U.shape[1] == 4 * (epochs - burn_in)
    if solver in ("gd", "als"):
        # Their history's loss is the objective at the end, with the regularization they used.
        arguments = {"biases": (model.global_mean_, model.user_bias_, model.item_bias_)} if biases else {}
        assert model.history_["loss"][-1] == pytest.approx(
            latentmf.loss(ratings, model.U, model.V, regularization, **arguments), rel=1e-4)
    assert settings["init_std"] == (0.1 if solver == "gibbs" else 0.01)
    assert (model.epochs, model.regularization, model.learning_rate, model.burn_in, model.init_std) == (None,) * 5
    # A model file (and a pickle, which holds the same) keeps the values the fit used.
    assert pickle.loads(pickle.dumps(model)).settings_ == settings

    given = {"epochs": 3, "regularization": 0.2, "burn_in": 1, "learning_rate": 0.001, "init_std": 0.05}
    # burn_in is Gibbs's alone, learning_rate that of the solvers that step: given to another solver,
    # fit warns that it ignores it, and settings_ still shows the value given.
    ignored = [name for name in ("learning_rate", "burn_in") if solver not in SOLVER_SPECIFIC[name][0]]
    with pytest.warns(UserWarning, match=f"solver='{solver}' ignores {', '.join(f'{n}={given[n]}' for n in ignored)} "):
        explicit = latentmf.MatrixFactorization(4, solver=solver, biases=biases, **given).fit(ratings)
    assert {name: explicit.settings_[name] for name in given} == given
    assert len(explicit.history_["epoch"]) == 3
