"""Model files (save / load, no unpickling, checked on load) and pickling."""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest

import latentmf
from latentmf import Ratings

from conftest import random_ratings


def _arrays(model):
    arrays = [model.U, model.V]
    if model.user_bias_ is not None:
        arrays += [model.user_bias_, model.item_bias_]
    return arrays


def _assert_same_model(a, b):
    for x, y in zip(_arrays(a), _arrays(b), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    assert a.get_params() == b.get_params()
    assert a.global_mean_ == b.global_mean_ and a.mean_rating_ == b.mean_rating_
    assert a.user_ids_ == b.user_ids_ and a.item_ids_ == b.item_ids_
    np.testing.assert_array_equal(a.history_["loss"], b.history_["loss"])
    np.testing.assert_array_equal(a.history_["validation_rmse"], b.history_["validation_rmse"])
    assert a.best_epoch_ == b.best_epoch_


@pytest.fixture(params=["raw ids", "indices"])
def model(request, rng):
    ratings = random_ratings(rng, 30, 25, 300)
    if request.param == "raw ids":
        users = np.array([f"user {n}" for n in range(30)])[ratings.users]
        ratings = Ratings.from_ids(users, ratings.items.astype(np.int64) * 10 + 3, ratings.values)
    train, test = ratings.split(0.2, seed=0)
    return latentmf.MatrixFactorization(factors=5, epochs=4, early_stopping=2, seed=3).fit(train, test)


def _path(tmp_path):
    return tmp_path / "model.npz"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver, biases", [("adagrad", True), ("sgd", False), ("gd", True)])
def test_save_and_load_round_trip_exactly(tmp_path, rng, dtype, solver, biases):
    ratings = random_ratings(rng, 20, 15, 150)
    model = latentmf.MatrixFactorization(factors=3, epochs=3, dtype=dtype, solver=solver, biases=biases).fit(ratings)
    model.save(_path(tmp_path))
    loaded = latentmf.load(_path(tmp_path))
    _assert_same_model(model, loaded)
    np.testing.assert_array_equal(loaded.predict([0, 1], [2, 3]), model.predict([0, 1], [2, 3]))


def test_a_loaded_model_recommends_with_raw_ids_and_excludes_seen_items(tmp_path, model):
    model.save(_path(tmp_path))
    loaded = latentmf.load(_path(tmp_path))
    _assert_same_model(model, loaded)
    for a, b in zip(model.recommend_all(k=30), loaded.recommend_all(k=30)):
        np.testing.assert_array_equal(a, b)
    user = model.user_ids_.ids[4] if model.user_ids_ is not None else 4
    np.testing.assert_array_equal(loaded.similar_items(loaded.recommend(user)[0][0])[1],
                                  model.similar_items(model.recommend(user)[0][0])[1])


def test_a_loaded_model_continues_training_like_the_original(tmp_path, rng):
    ratings = random_ratings(rng, 20, 15, 150)
    model = latentmf.MatrixFactorization(factors=3, epochs=2).fit(ratings)
    model.save(_path(tmp_path))
    loaded = latentmf.load(_path(tmp_path))
    with pytest.raises(ValueError, match="partial_fit needs ratings"):
        loaded.partial_fit()
    loaded.partial_fit(ratings, epochs=2)
    model.partial_fit(epochs=2)
    _assert_same_model(model, loaded)


def test_the_file_is_plain_data_with_a_json_header(tmp_path, model):
    model.save(_path(tmp_path))
    with np.load(_path(tmp_path), allow_pickle=False) as archive:
        header = json.loads(str(archive["header"][()]))
        assert header["format"] == "latentmf.MatrixFactorization" and header["version"] == 1
        assert header["params"]["factors"] == 5 and header["arrays"] == sorted(set(archive.files) - {"header"})
        assert all(archive[name].dtype != object for name in archive.files)
        offsets, items = archive["seen_offsets"], archive["seen_items"]
        assert offsets.dtype == np.int64 and items.dtype == np.int32 and offsets[-1] == len(items)


def test_saving_is_atomic_and_leaves_no_temporary_file(tmp_path, model, monkeypatch):
    path = _path(tmp_path)
    path.write_bytes(b"old")

    def broken_savez(file, **arrays):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.npz"]
    monkeypatch.undo()
    model.save(str(path))
    assert latentmf.load(path).n_users_ == model.n_users_ and os.listdir(tmp_path) == ["model.npz"]


def _rewrite(path, change):
    """Save a changed copy of the model file: change(header, arrays) edits them in place."""
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(str(archive["header"][()]))
        arrays = {name: archive[name] for name in archive.files if name != "header"}
    change(header, arrays)
    np.savez(path, header=np.array(json.dumps(header)), **arrays)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda h, a: h.update(version=2), "version 2 is not one this latentmf"),
        (lambda h, a: h.update(format="other"), "does not describe"),
        (lambda h, a: a.update(U=a["U"][:-1]), "U must have shape"),
        (lambda h, a: a.update(V=a["V"].astype(np.float64)), "V must have shape .* and dtype float32"),
        (lambda h, a: a["V"].__setitem__((0, 0), np.nan), "V holds values that are not finite"),
        (lambda h, a: a.pop("item_bias"), "the arrays are"),
        (lambda h, a: a.update(extra=np.zeros(2)), "the arrays are"),
        (lambda h, a: h.update(n_users=10**12), "n_users = 1000000000000 is outside"),
        (lambda h, a: h["params"].update(factors=7), "disagree with the hyper-parameters"),
        (lambda h, a: h["params"].update(nonsense=1), "unknown hyper-parameters"),
        (lambda h, a: h["params"].update(solver="magic"), "solver must be one of"),
        (lambda h, a: h.update(global_mean="x"), "global_mean must be a finite number"),
        (lambda h, a: a["seen_offsets"].__setitem__(1, -5), "seen_offsets must rise"),
        (lambda h, a: a.update(seen_items=a["seen_items"][::-1].copy()), "sorted within each user"),
        (lambda h, a: a.update(seen_items=a["seen_items"] + 1000), "seen_items must be item indices"),
        (lambda h, a: a.update(user_ids=a["user_ids"][::-1].copy()), "user_ids: ids must be sorted"),
        (lambda h, a: h["history"].update(loss=[]), "lists of one length"),
    ],
)
def test_a_damaged_file_is_refused_with_a_clear_error(tmp_path, rng, change, match):
    dense = random_ratings(rng, 30, 20, 200)
    ratings = Ratings.from_ids(dense.users.astype(np.int64) + 7, dense.items, dense.values)
    latentmf.MatrixFactorization(factors=2, epochs=1).fit(ratings).save(_path(tmp_path))
    _rewrite(_path(tmp_path), change)
    with pytest.raises(ValueError, match=match):
        latentmf.load(_path(tmp_path))


def test_files_that_are_not_models(tmp_path):
    not_zip = tmp_path / "text.npz"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match="is not a latentmf model file"):
        latentmf.load(not_zip)
    single = tmp_path / "array.npy"
    np.save(single, np.ones(3))
    with pytest.raises(ValueError, match="holds a single array"):
        latentmf.load(single)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, header=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(ValueError, match="not a readable latentmf model file"):
        latentmf.load(pickled)
    no_header = tmp_path / "plain.npz"
    np.savez(no_header, U=np.ones(2))
    with pytest.raises(ValueError, match="has no header"):
        latentmf.load(no_header)
    with pytest.raises(FileNotFoundError):
        latentmf.load(tmp_path / "missing.npz")


def test_saving_an_unfitted_model_says_so(tmp_path):
    with pytest.raises(latentmf.NotFittedError):
        latentmf.MatrixFactorization().save(_path(tmp_path))


class TestPickle:
    def test_pickling_round_trips_exactly(self, model):
        again = pickle.loads(pickle.dumps(model))
        _assert_same_model(model, again)
        for a, b in zip(model.recommend_all(k=5), again.recommend_all(k=5)):
            np.testing.assert_array_equal(a, b)
        assert again._native is not model._native

    def test_an_unfitted_model_pickles_its_parameters(self):
        model = latentmf.MatrixFactorization(factors=7, unknown="mean")
        again = pickle.loads(pickle.dumps(model))
        assert again.get_params() == model.get_params()
        with pytest.raises(latentmf.NotFittedError):
            again.U

    def test_joblib_round_trip(self, model):
        joblib = pytest.importorskip("joblib")
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        buffer.seek(0)
        _assert_same_model(model, joblib.load(buffer))
