"""Early stopping, callbacks, warm start and partial_fit, progress output."""

from __future__ import annotations

import builtins
import sys

import numpy as np
import pytest

import latentmf

from conftest import random_ratings


@pytest.fixture
def data(rng):
    ratings = random_ratings(rng, 60, 40, 1200)
    return ratings.split(0.2, seed=0)


def _model(**params):
    return latentmf.MatrixFactorization(**{"factors": 6, "epochs": 6, "dtype": "float64", **params})


def _state(model):
    return [model.U.copy(), model.V.copy(), model.user_bias_.copy(), model.item_bias_.copy()]


class TestEarlyStopping:
    def test_it_stops_after_patience_and_restores_the_best_epoch(self, data):
        train, test = data
        # a large step on noise overfits after a few epochs
        model = _model(epochs=60, early_stopping=3, learning_rate=0.3, regularization=0.0).fit(train, validation=test)
        rmse = model.history_["validation_rmse"]
        best = int(np.argmin(rmse))
        assert model.best_epoch_ == best and len(rmse) == best + 4 < 60
        reference = _model(epochs=best + 1, learning_rate=0.3, regularization=0.0).fit(train, validation=test)
        for a, b in zip(_state(model), _state(reference)):
            np.testing.assert_array_equal(a, b)
        assert model._rmse(test) == rmse[best]

    def test_it_needs_a_validation_set_and_leaves_the_model_alone(self, data):
        train, _ = data
        model = _model().fit(train)
        before = _state(model)
        model.set_params(early_stopping=2)
        with pytest.raises(ValueError, match="early_stopping needs a validation set"):
            model.fit(train)
        for a, b in zip(before, _state(model)):
            np.testing.assert_array_equal(a, b)
        with pytest.raises(ValueError, match="early_stopping must be >= 1"):
            _model(early_stopping=0).fit(data[0], validation=data[1])

    def test_without_it_there_is_no_best_epoch(self, data):
        assert _model().fit(data[0], validation=data[1]).best_epoch_ is None


class TestCallbacks:
    def test_each_callback_sees_every_epoch_record(self, data):
        seen = []
        model = _model(epochs=4).fit(data[0], validation=data[1], callbacks=[lambda m, record: seen.append((m, dict(record)))])
        assert [record["epoch"] for _, record in seen] == [0, 1, 2, 3]
        assert all(m is model for m, _ in seen)
        assert seen[-1][1]["loss"] == model.history_["loss"][-1]
        assert set(seen[0][1]) == {"epoch", "loss", "train_rmse", "validation_rmse", "seconds"}

    def test_a_callback_returning_true_stops_training(self, data):
        calls = []
        model = _model(epochs=10).fit(data[0], callbacks=[lambda m, r: r["epoch"] == 2,
                                                         lambda m, r: calls.append(r["epoch"])])
        assert model.history_["epoch"] == [0, 1, 2] and calls == [0, 1, 2]

    def test_callbacks_must_be_callable(self, data):
        with pytest.raises(TypeError, match=r"callbacks\[1\] must be callable"):
            _model().fit(data[0], callbacks=[print, 3])


class TestWarmStart:
    def test_a_second_fit_starts_afresh_by_default(self, data):
        train, _ = data
        model = _model(epochs=3).fit(train)
        native, first = model._state().native, _state(model)
        model.fit(train)
        assert model._state().native is not native and model.history_["epoch"] == [0, 1, 2]
        for a, b in zip(first, _state(model)):
            np.testing.assert_array_equal(a, b)

    @pytest.mark.parametrize("solver", ["adagrad", "sgd", "gd"])
    def test_continuing_equals_training_in_one_go(self, data, solver):
        train, test = data
        whole = _model(epochs=6, solver=solver, learning_rate_decay=0.5).fit(train, validation=test)
        warm = _model(epochs=2, solver=solver, learning_rate_decay=0.5, warm_start=True).fit(train, validation=test)
        native = warm._state().native
        warm.fit(train, validation=test)
        warm.set_params(epochs=2).fit(train, validation=test)
        assert warm._state().native is native
        partial = _model(epochs=3, solver=solver, learning_rate_decay=0.5).fit(train, validation=test)
        partial.partial_fit(epochs=1).partial_fit(train, epochs=2, validation=test)
        for model in (warm, partial):
            for a, b in zip(_state(whole), _state(model)):
                np.testing.assert_array_equal(a, b)
            assert model.history_["epoch"] == list(range(6))
            assert model.history_["loss"] == whole.history_["loss"]

    def test_views_of_a_continued_model_see_the_new_values(self, data):
        model = _model(epochs=2).fit(data[0])
        U = model.U
        before = U.copy()
        model.partial_fit(epochs=1)
        assert np.shares_memory(U, model.U) and not np.array_equal(U, before)

    def test_partial_fit_on_an_unfitted_model_starts_one(self, data):
        model = _model().partial_fit(data[0], epochs=2)
        np.testing.assert_array_equal(model.U, _model(epochs=2).fit(data[0]).U)
        with pytest.raises(ValueError, match="partial_fit needs training data"):
            _model().partial_fit()

    def test_continuing_needs_the_same_structure_and_ids(self, data, rng):
        train, _ = data
        model = _model(epochs=2).fit(train)
        before = _state(model)
        with pytest.raises(ValueError, match="factors is 3 but the fitted model has 6"):
            model.set_params(factors=3).partial_fit()
        model.set_params(factors=6)
        with pytest.raises(ValueError, match="n_users=61"):
            model.partial_fit(random_ratings(rng, 61, 40, 300))
        with pytest.raises(ValueError, match="map ids differently"):
            model.partial_fit(latentmf.Ratings.from_ids(train.users + 5, train.items, train.values))
        with pytest.raises(ValueError, match="epochs must be >= 0"):
            model.partial_fit(epochs=-1)
        for a, b in zip(before, _state(model)):
            np.testing.assert_array_equal(a, b)


class TestProgress:
    def test_progress_uses_tqdm_when_installed(self, data, capsys):
        pytest.importorskip("tqdm")
        _model(epochs=3, progress=True).fit(data[0], validation=data[1])
        captured = capsys.readouterr()
        assert "3/3" in captured.err and "epoch" in captured.err and captured.out == ""

    def test_progress_without_tqdm_prints_one_line_per_epoch(self, data, capsys, monkeypatch):
        real_import = builtins.__import__

        def no_tqdm(name, *args, **kwargs):
            if name == "tqdm":
                raise ImportError("No module named 'tqdm'")
            return real_import(name, *args, **kwargs)

        monkeypatch.delitem(sys.modules, "tqdm", raising=False)
        monkeypatch.setattr(builtins, "__import__", no_tqdm)
        _model(epochs=3, progress=True).fit(data[0], validation=data[1])
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 3 and lines[2].startswith("epoch   3/3") and "validation RMSE" in lines[2]

    def test_verbose_lines_number_epochs_over_the_whole_training(self, data, capsys):
        model = _model(epochs=2, verbose=True).fit(data[0])
        model.partial_fit(epochs=2)
        lines = capsys.readouterr().out.strip().splitlines()
        assert [line.split()[1] for line in lines] == ["1/2", "2/2", "3/4", "4/4"]

    def test_progress_must_be_a_bool(self, data):
        with pytest.raises(TypeError, match="progress must be True or False"):
            _model(progress="yes").fit(data[0])
