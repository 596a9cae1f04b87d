"""The contract of every model class, tested once for all of them.

Each entry of ESTIMATORS is a model class with small hyper-parameters; every test here runs against
each, so a new model class (or solver) gets the whole contract tested by adding one line: fitting,
the fitted state and its views, ids in and out, predict, recommend, recommend_all, similar items
and users, fold-in, model files and pickles, scikit-learn's parameters, determinism across thread
counts, continuing a fit, callbacks, Ctrl-C and the thread guard.
"""

from __future__ import annotations

import pickle
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

import latentmf
from latentmf import Ratings

from conftest import random_ratings


@dataclass
class Estimator:
    """One model class (or solver) under the contract: how to make one, and its training data."""

    name: str
    make: Callable[..., Any]
    params: dict[str, Any] = field(default_factory=dict)

    def __call__(self, **overrides: Any) -> Any:
        return self.make(**{**self.params, **overrides})


ESTIMATORS = [
    Estimator("MatrixFactorization(adagrad)", latentmf.MatrixFactorization, {"factors": 4, "epochs": 3, "seed": 1}),
    Estimator("MatrixFactorization(sgd)", latentmf.MatrixFactorization,
              {"factors": 4, "epochs": 3, "seed": 1, "solver": "sgd", "biases": False}),
    Estimator("MatrixFactorization(gd)", latentmf.MatrixFactorization,
              {"factors": 3, "epochs": 3, "seed": 1, "solver": "gd", "dtype": "float64"}),
    Estimator("MatrixFactorization(als)", latentmf.MatrixFactorization,
              {"factors": 4, "epochs": 3, "seed": 1, "solver": "als", "init_std": 0.1}),
    Estimator("MatrixFactorization(gibbs)", latentmf.MatrixFactorization,
              {"factors": 3, "epochs": 3, "seed": 1, "solver": "gibbs", "burn_in": 1, "init_std": 0.1}),
    Estimator("ImplicitMatrixFactorization(cg)", latentmf.ImplicitMatrixFactorization,
              {"factors": 4, "epochs": 3, "seed": 1, "init_std": 0.1}),
    Estimator("ImplicitMatrixFactorization(exact)", latentmf.ImplicitMatrixFactorization,
              {"factors": 4, "epochs": 3, "seed": 1, "init_std": 0.1, "solver": "exact", "nu": 1.0,
               "regularization": 1e-3, "confidence": "log"}),
    Estimator("BayesianPersonalizedRanking", latentmf.BayesianPersonalizedRanking,
              {"factors": 4, "epochs": 3, "seed": 1, "blocks": 3}),
    Estimator("BayesianPersonalizedRanking(no biases)", latentmf.BayesianPersonalizedRanking,
              {"factors": 16, "epochs": 3, "seed": 1, "biases": False, "dtype": "float64"}),
]


@pytest.fixture(params=ESTIMATORS, ids=lambda estimator: estimator.name)
def estimator(request):
    return request.param


@pytest.fixture(scope="module")
def data():
    """(train, test) ratings with users and items of no rating among them."""
    return random_ratings(np.random.default_rng(5), 40, 30, 500).split(0.2, seed=1)


def _arrays(model):
    state = model._state()
    return [np.array(array) for array in state.arrays().values()]


def _assert_same_fit(a, b):
    """The same bits. A model that sizes its arrays by the epochs asked for (a Gibbs model keeps a
    slot per sample to come) may hold more columns than the other: they must then be zeros."""
    for x, y in zip(_arrays(a), _arrays(b), strict=True):
        if x.ndim == 2 and x.shape != y.shape:
            x, y = (x, y) if x.shape[1] < y.shape[1] else (y, x)
            assert not y[:, x.shape[1]:].any()
            y = y[:, :x.shape[1]]
        np.testing.assert_array_equal(x, y)
    for name, array in a._state().solver_state.items():
        np.testing.assert_array_equal(array, b._state().solver_state[name])
    assert a.history_["epoch"] == b.history_["epoch"]
    np.testing.assert_array_equal(a.history_["loss"], b.history_["loss"])


class TestFitting:
    def test_fit_returns_the_model_and_views_its_state(self, estimator, data):
        model = estimator()
        assert model.fit(data[0]) is model
        U, V = model.U, model.V
        assert U.shape == (40, model._state().n_factors) and V.shape == (30, U.shape[1])
        assert U.shape[1] % model.factors == 0  # F, or F per sample a model keeps
        assert U.base is model._state().native and np.shares_memory(U, model.U)
        assert model.history_["epoch"] == [0, 1, 2] and np.isfinite(model.history_["loss"]).all()
        assert (model.n_users_, model.n_items_) == (40, 30)

    def test_an_unfitted_model_says_so(self, estimator):
        model = estimator()
        for use in (lambda: model.U, lambda: model.predict([0], [0]), lambda: model.recommend(0),
                    lambda: model.save("unused.npz"), lambda: model.history_):
            with pytest.raises(latentmf.NotFittedError, match="not fitted yet"):
                use()

    def test_the_same_seed_gives_the_same_bits_for_any_thread_count(self, estimator, data):
        one = estimator(threads=1).fit(data[0])
        two = estimator(threads=2).fit(data[0])
        _assert_same_fit(one, two)
        other = estimator(seed=2).fit(data[0])
        assert not np.array_equal(one.U, other.U)

    @pytest.mark.parametrize("dtype", ["float32", "float64"])
    def test_both_precisions(self, estimator, data, dtype):
        model = estimator(dtype=dtype).fit(data[0])
        assert model.U.dtype == dtype and model.predict([1], [2]).dtype == dtype

    def test_continuing_equals_fitting_in_one_go(self, estimator, data):
        whole = estimator(epochs=4).fit(data[0])
        parts = estimator(epochs=2).fit(data[0]).partial_fit(epochs=2)
        _assert_same_fit(whole, parts)
        warm = estimator(epochs=2, warm_start=True).fit(data[0])
        _assert_same_fit(whole, warm.fit(data[0]))

    def test_callbacks_see_every_epoch_and_can_stop(self, estimator, data):
        records = []
        model = estimator(epochs=5).fit(data[0], callbacks=[lambda m, r: records.append(r) or r["epoch"] == 1])
        assert [r["epoch"] for r in records] == [0, 1] and model.history_["epoch"] == [0, 1]
        assert set(records[0]) == set(model.history_)

    def test_ctrl_c_in_an_epoch_keeps_the_epochs_before_it(self, estimator, data, monkeypatch):
        model = estimator(epochs=5)
        calls = []

        def validation(held_out):
            calls.append(1)
            if len(calls) == 3:  # in the third epoch, after its updates: they must be undone
                raise KeyboardInterrupt
            return real(held_out)

        real = model._validation
        monkeypatch.setattr(model, "_validation", validation)
        with pytest.raises(KeyboardInterrupt):
            model.fit(data[0], validation=data[1])
        assert model.history_["epoch"] == [0, 1]
        _assert_same_fit(model, estimator(epochs=2).fit(data[0], validation=data[1]))

    def test_bad_data_is_refused_and_changes_nothing(self, estimator, data):
        model = estimator().fit(data[0])
        before = _arrays(model)
        with pytest.raises(ValueError, match="users"):
            model.fit((np.array([0, -1]), np.array([0, 1]), np.array([1.0, 2.0])))
        for a, b in zip(before, _arrays(model), strict=True):
            np.testing.assert_array_equal(a, b)

    def test_a_fit_in_another_thread_excludes_readers(self, estimator, data):
        model = estimator(epochs=3).fit(data[0])
        started, release = threading.Event(), threading.Event()

        def slow(m, record):
            started.set()
            release.wait(10)

        worker = threading.Thread(target=lambda: model.partial_fit(epochs=1, callbacks=[slow]))
        worker.start()
        try:
            assert started.wait(10)
            with pytest.raises(RuntimeError, match="being trained by partial_fit in another thread"):
                model.recommend(0)
        finally:
            release.set()
            worker.join()


class TestAnswers:
    @pytest.fixture
    def model(self, estimator, data):
        return estimator(epochs=4).fit(data[0])

    def test_recommend_ranks_by_the_predicted_scores_and_leaves_out_seen_items(self, model, data):
        train = data[0]
        user = int(train.users[0])
        items, scores = model.recommend(user, k=5)
        seen = set(train.items[train.users == user].tolist())
        assert len(items) == 5 and not seen & set(items.tolist())
        np.testing.assert_allclose(scores, model.predict(np.full(5, user), items), rtol=1e-5)
        assert (np.diff(scores) <= 0).all()
        everything = model.recommend(user, k=30, exclude_seen=False)[0]
        assert sorted(everything.tolist()) == list(range(30))

    def test_recommend_all_rows_are_recommend_masked_where_short(self, model, data):
        users = [0, 5, 39]
        items, scores = model.recommend_all(users, k=29)
        for row, user in enumerate(users):
            single_items, single_scores = model.recommend(user, k=29)
            np.testing.assert_array_equal(items[row].compressed(), single_items)
            np.testing.assert_array_equal(scores[row].compressed(), single_scores)
        assert items.mask.any()  # 29 > the items most users have not seen

    def test_similar_items_and_users_by_cosine(self, model):
        for similar, factors, n in ((model.similar_items, model.V, 30), (model.similar_users, model.U, 40)):
            found, scores = similar(3, k=4)
            unit = factors / np.linalg.norm(factors, axis=1, keepdims=True)
            cosine = unit @ unit[3]
            cosine[3] = -np.inf
            expected = np.argsort(-cosine, kind="stable")[:4]
            np.testing.assert_array_equal(found, expected)
            np.testing.assert_allclose(scores, cosine[expected], rtol=1e-4, atol=1e-6)
            with pytest.raises(ValueError, match="outside"):
                similar(n)

    def test_a_user_folded_in_is_scored_like_the_model_scores(self, model, data):
        train = data[0]
        mine = train.users == 7
        user = model.fold_in(train.items[mine], train.values[mine])
        assert user.factors.shape == (model.U.shape[1],) and np.isfinite(user.factors).all()
        items, scores = model.recommend_for(user, k=4, exclude=train.items[mine])
        assert not set(items.tolist()) & set(train.items[mine].tolist())
        np.testing.assert_allclose(model.predict_for(user, items), scores, rtol=1e-5, atol=1e-6)

    def test_raw_ids_in_and_out(self, estimator, data):
        dense = data[0]
        raw = Ratings.from_ids(np.char.add("u", dense.users.astype(str)), dense.items.astype(np.int64) * 3 + 100,
                               dense.values)
        model = estimator().fit(raw)
        twin = estimator().fit(Ratings(raw.users, raw.items, raw.values))
        items, scores = model.recommend("u7", k=3)
        twin_items, twin_scores = twin.recommend(int(model.user_ids_.to_index(np.array(["u7"]), "user")[0]), k=3)
        np.testing.assert_array_equal(items, model.item_ids_.to_ids(twin_items))
        np.testing.assert_array_equal(scores, twin_scores)
        assert model.similar_items(int(items[0]), k=2)[0].dtype == np.int64
        with pytest.raises(ValueError, match="'nobody' is not among the users"):
            model.recommend("nobody")


class TestPersistence:
    def test_a_saved_model_loads_as_it_was(self, estimator, data, tmp_path):
        model = estimator().fit(data[0], validation=data[1])
        model.save(tmp_path / "model.npz")
        loaded = latentmf.load(tmp_path / "model.npz")
        assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
        _assert_same_fit(model, loaded)
        for a, b in zip(model.recommend(3, k=5), loaded.recommend(3, k=5)):
            np.testing.assert_array_equal(a, b)
        # continuing after loading goes on as the original does
        loaded.partial_fit(data[0], epochs=1)
        _assert_same_fit(model.partial_fit(epochs=1), loaded)

    def test_pickling_round_trips(self, estimator, data):
        model = estimator().fit(data[0])
        copy = pickle.loads(pickle.dumps(model))
        _assert_same_fit(model, copy)
        unfitted = pickle.loads(pickle.dumps(estimator()))
        assert not unfitted._is_fitted() and unfitted.get_params() == estimator().get_params()

    def test_scikit_learn_parameters_and_clone(self, estimator, data):
        base = pytest.importorskip("sklearn.base")
        model = estimator().fit(data[0])
        copy = base.clone(model)
        assert copy.get_params() == model.get_params() and not copy._is_fitted()
        assert copy.set_params(epochs=1) is copy and copy.epochs == 1
        with pytest.raises(ValueError, match="invalid parameter 'nonsense'"):
            copy.set_params(nonsense=1)
