"""Model files (save / load, no unpickling, checked on load) and pickling."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import latentmf
from latentmf import Ratings, _checks

from conftest import peak_memory_growth, random_ratings


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
    return latentmf.MatrixFactorization(factors=5, epochs=4, early_stopping=2, seed=3).fit(train, validation=test)


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
    with pytest.raises(ValueError, match="partial_fit needs training data"):
        loaded.partial_fit()
    loaded.partial_fit(ratings, epochs=2)
    model.partial_fit(epochs=2)
    _assert_same_model(model, loaded)


def test_the_file_is_plain_data_with_a_json_header(tmp_path, model):
    model.save(_path(tmp_path))
    with np.load(_path(tmp_path), allow_pickle=False) as archive:
        header = json.loads(str(archive["header"][()]))
        assert header["format"] == "latentmf.MatrixFactorization" and header["version"] == 2
        state = header["state"]
        assert header["params"]["factors"] == 5 and state["settings"]["factors"] == 5
        assert set(state["arrays"]) | {"header", "seen_offsets", "seen_items", "user_ids", "item_ids"} >= set(
            archive.files) >= set(state["arrays"]) | {"header", "seen_offsets", "seen_items"}
        assert all(archive[name].dtype != object for name in archive.files)
        offsets, items = archive["seen_offsets"], archive["seen_items"]
        assert offsets.dtype == np.int64 and items.dtype == np.int32 and offsets[-1] == len(items)


def test_a_file_of_version_1_is_read(tmp_path, model):
    """Version 1 had the state's entries at the top of the header and no settings of its own."""
    model.save(_path(tmp_path))

    def to_version_1(header, arrays):
        state = header.pop("state")
        header.update(version=1, arrays=sorted(arrays), default_learning_rate=state["derived"]["default_learning_rate"],
                      **{name: state[name] for name in ("dtype", "n_users", "n_items", "factors", "global_mean",
                                                       "mean_rating", "history", "best_epoch")})

    _rewrite(_path(tmp_path), to_version_1)
    loaded = latentmf.load(_path(tmp_path))
    _assert_same_model(model, loaded)
    assert loaded.history_["loss"] == model.history_["loss"] and loaded.best_epoch_ == model.best_epoch_


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
        (lambda h, a: h.update(version=3), "version 3 is not one this latentmf"),
        (lambda h, a: h.update(format="other"), "does not describe"),
        (lambda h, a: a.update(U=a["U"][:-1]), "U must have shape"),
        (lambda h, a: a.update(V=a["V"].astype(np.float64)), "V must have shape .* and dtype float32"),
        (lambda h, a: a["V"].__setitem__((0, 0), np.nan), "V holds values that are not finite"),
        (lambda h, a: a.pop("item_bias"), "the arrays are .*item_bias missing"),
        (lambda h, a: a.update(extra=np.zeros(2)), "the arrays are"),
        (lambda h, a: h["state"].update(n_users=10**12), "n_users = 1000000000000 is outside"),
        (lambda h, a: h["state"]["settings"].update(factors=7), "disagree with the settings"),
        (lambda h, a: h["state"]["settings"].update(biases=False), "a model of its settings has"),
        (lambda h, a: h["params"].update(nonsense=1), "unknown hyper-parameters"),
        (lambda h, a: h["state"]["settings"].update(nonsense=1), "unknown hyper-parameters"),
        (lambda h, a: h["params"].update(solver="magic"), "solver must be one of"),
        (lambda h, a: h["state"].update(global_mean="x"), "global_mean must be a finite number"),
        (lambda h, a: a["seen_offsets"].__setitem__(1, -5), "seen_offsets must rise"),
        (lambda h, a: a.update(seen_items=a["seen_items"][::-1].copy()), "sorted within each user"),
        (lambda h, a: a.update(seen_items=a["seen_items"] + 1000), "seen_items must be item indices"),
        (lambda h, a: a.update(user_ids=a["user_ids"][::-1].copy()), "user_ids: ids must be sorted"),
        (lambda h, a: h["state"]["history"].update(loss=[]), "lists of one length"),
        (lambda h, a: h["state"]["history"].pop("loss"), "history must have the keys"),
        (lambda h, a: h["state"].update(rating_range=[5, 1]), "rating_range must be"),
        (lambda h, a: h["state"]["derived"].update(default_learning_rate="x"), "must be a finite number"),
        # shapes that disagree with each other or with the header
        (lambda h, a: a.update(user_ids=a["user_ids"][:-1]), "user_ids must be 30 integer or string ids, got shape"),
        (lambda h, a: a.update(seen_offsets=a["seen_offsets"][:-1]), "seen_offsets must be int64 of shape"),
        (lambda h, a: a.update(seen_items=a["seen_items"].astype(np.int64)), "seen_items must be a 1-dimensional int32"),
        (lambda h, a: a.update(user_bias=a["user_bias"][:, None]), "user_bias must have shape"),
        (lambda h, a: h["state"].update(dtype="float64"), "disagree with the settings"),
        # huge declared sizes: refused from the shapes alone, nothing of that size is allocated
        (lambda h, a: h["state"].update(n_users=2**31 - 1), r"U must have shape \(2147483647, 2\)"),
        (lambda h, a: (h["state"].update(factors=2**20), h["state"]["settings"].update(factors=2**20)),
         r"U must have shape \(30, 1048576\)"),
        (lambda h, a: h["state"].update(n_items=2**40), "n_items = 1099511627776 is outside"),
        (lambda h, a: h["state"].update(best_epoch=True), "best_epoch must be an integer or null"),
        (lambda h, a: h.update(version="1"), "model file version '1' is not one"),
        (lambda h, a: h["state"].update(mean_rating=float("inf")), "mean_rating must be a finite number"),
    ],
)
def test_a_damaged_file_is_refused_with_a_clear_error(tmp_path, rng, change, match):
    dense = random_ratings(rng, 30, 20, 200)
    ratings = Ratings.from_ids(dense.users.astype(np.int64) + 7, dense.items, dense.values)
    latentmf.MatrixFactorization(factors=2, epochs=1).fit(ratings).save(_path(tmp_path))
    _rewrite(_path(tmp_path), change)
    with peak_memory_growth() as growth, pytest.raises(ValueError, match=match):
        latentmf.load(_path(tmp_path))
    assert growth.bytes < 2**24


def test_files_that_are_not_models(tmp_path):
    not_zip = tmp_path / "text.npz"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match="text.npz is not a readable latentmf model file: File is not a zip file"):
        latentmf.load(not_zip)
    single = tmp_path / "array.npy"
    np.save(single, np.ones(3))
    with pytest.raises(ValueError, match=r"holds a single array \(.npy\), not a model's .npz archive"):
        latentmf.load(single)
    no_header = tmp_path / "plain.npz"
    np.savez(no_header, U=np.ones(2))
    with pytest.raises(ValueError, match="has no header"):
        latentmf.load(no_header)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("notes.txt", "not an array")
    with pytest.raises(ValueError, match="member 'notes.txt' is not an array of a model file"):
        latentmf.load(other)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="is not a readable latentmf model file"):
        latentmf.load(empty)


def test_paths_that_cannot_be_read_raise_the_systems_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        latentmf.load(tmp_path / "missing.npz")
    with pytest.raises(IsADirectoryError if os.name != "nt" else PermissionError):
        latentmf.load(tmp_path)


def test_saving_an_unfitted_model_says_so(tmp_path):
    with pytest.raises(latentmf.NotFittedError):
        latentmf.MatrixFactorization().save(_path(tmp_path))


class TestPickle:
    def test_pickling_round_trips_exactly(self, model):
        again = pickle.loads(pickle.dumps(model))
        _assert_same_model(model, again)
        for a, b in zip(model.recommend_all(k=5), again.recommend_all(k=5)):
            np.testing.assert_array_equal(a, b)
        assert again._state().native is not model._state().native

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


class TestHostileFiles:
    """A model file from a stranger is data: whatever it holds, loading it raises ValueError naming
    the problem (or MemoryError for a consistent model this machine cannot hold), never runs code,
    never allocates what the file merely declares, and never returns a model other than the one
    saved."""

    @pytest.fixture
    def saved(self, tmp_path, model):
        model.save(_path(tmp_path))
        return _path(tmp_path), _path(tmp_path).read_bytes(), model

    @pytest.mark.parametrize("fraction", [0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999])
    def test_a_truncated_file_is_refused(self, saved, fraction):
        path, content, _ = saved
        path.write_bytes(content[:int(len(content) * fraction)])
        with pytest.raises(ValueError, match="is not a readable latentmf model file"):
            latentmf.load(path)

    @pytest.mark.parametrize("cut", [1, 22, 46, 100])
    def test_a_file_missing_its_last_bytes_is_refused(self, saved, cut):
        path, content, _ = saved
        path.write_bytes(content[:-cut])
        with pytest.raises(ValueError, match="is not a readable latentmf model file"):
            latentmf.load(path)

    def test_a_flipped_bit_anywhere_is_refused_or_harmless(self, saved):
        """Every member is covered by its CRC-32 and its declared size, the directory by the zip
        structure: a bit flipped in the data is refused; one flipped in a field that means nothing to
        the reader (a timestamp, say) gives back exactly the saved model."""
        path, content, model = saved
        offsets = sorted(set(np.linspace(0, len(content) - 1, 160).astype(int).tolist()) | set(range(0, 64, 3)))
        refused = 0
        for offset in offsets:
            damaged = bytearray(content)
            damaged[offset] ^= 1 << (offset % 8)
            path.write_bytes(bytes(damaged))
            try:
                loaded = latentmf.load(path)
            except ValueError:
                refused += 1
            else:
                _assert_same_model(loaded, model)
        assert refused >= 0.8 * len(offsets)

    def test_a_pickled_object_array_is_refused_unread(self, saved, tmp_path):
        """The payload would create a file if it were unpickled."""
        path, _, _ = saved
        marker = tmp_path / "payload-ran"

        class Payload:
            def __reduce__(self):
                return open, (str(marker), "w")

        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        for member in ("U", "header", "user_ids"):
            hostile = {**arrays, member: np.array([Payload()], dtype=object)}
            with open(path, "wb") as file:
                np.savez(file, **hostile)
            with pytest.raises(ValueError, match=f"member '{member}' holds Python objects \\(pickled data\\)"):
                latentmf.load(path)
            assert not marker.exists()

    def test_declared_shapes_larger_than_the_data_are_refused_unallocated(self, saved):
        """A member whose .npy header declares 8 PiB but holds a few bytes."""
        path, _, _ = saved
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (2**31 - 1, 2**20)})
        with zipfile.ZipFile(path, "w") as archive:
            for name, array in arrays.items():
                if name != "U":
                    buffer = io.BytesIO()
                    np.save(buffer, array)
                    archive.writestr(f"{name}.npy", buffer.getvalue())
            archive.writestr("U.npy", header.getvalue() + b"\0" * 64)
        with peak_memory_growth() as growth:
            with pytest.raises(ValueError, match=r"member 'U' declares shape \(2147483647, 1048576\) of float32 "
                                                 r"\(9007199250546688 bytes\) but holds 64 bytes: the file is "
                                                 "truncated or damaged"):
                latentmf.load(path)
        assert growth.bytes < 2**24

    def test_a_consistent_model_too_large_for_this_machine_is_a_memory_error(self, saved, monkeypatch):
        path, _, _ = saved
        monkeypatch.setattr(_checks, "physical_memory", lambda: 1024)
        with peak_memory_growth() as growth:
            with pytest.raises(MemoryError, match=r"the arrays of the model file need \d+\.\d MiB, more than the "
                                                  r"0\.0 MiB of physical memory"):
                latentmf.load(path)
        assert growth.bytes < 2**24

    def test_a_huge_header_member_is_refused(self, saved):
        path, _, _ = saved
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files if name != "header"}
        with open(path, "wb") as file:
            np.savez(file, header=np.array("x" * (17 * 2**20)), **arrays)
        with pytest.raises(ValueError, match="its header must be one string of at most"):
            latentmf.load(path)
        with open(path, "wb") as file:
            np.savez(file, header=np.array(["{}", "{}"]), **arrays)
        with pytest.raises(ValueError, match="its header must be one string"):
            latentmf.load(path)
        with open(path, "wb") as file:
            np.savez(file, header=np.array("{not json"), **arrays)
        with pytest.raises(ValueError, match="is not a readable latentmf model file: Expecting property name"):
            latentmf.load(path)

    def test_a_repeated_member_is_refused(self, saved):
        path, content, _ = saved
        with zipfile.ZipFile(path, "a") as archive, pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("U.npy", b"")
        with pytest.raises(ValueError, match="member 'U.npy' is not an array of a model file \\(or repeats one\\)"):
            latentmf.load(path)


class TestAtomicSave:
    def test_an_interrupted_save_keeps_the_old_file_and_leaves_nothing(self, tmp_path, model, monkeypatch):
        path = _path(tmp_path)
        model.save(path)
        before = path.read_bytes()

        def interrupted(file, **arrays):
            file.write(b"half a model")
            raise KeyboardInterrupt

        monkeypatch.setattr(np, "savez", interrupted)
        with pytest.raises(KeyboardInterrupt):
            model.save(path)
        assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]

    def test_the_new_file_is_on_disk_before_it_replaces_the_old(self, tmp_path, model, monkeypatch):
        events = []
        real_fsync, real_replace = os.fsync, os.replace
        monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
        monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
        model.save(_path(tmp_path))
        assert events[:2] == ["fsync", "replace"]

    def test_saving_over_a_directory_fails_and_leaves_nothing(self, tmp_path, model):
        target = tmp_path / "folder"
        target.mkdir()
        with pytest.raises(OSError):
            model.save(target)
        assert os.listdir(tmp_path) == ["folder"] and os.listdir(target) == []

    @pytest.mark.skipif(sys.platform == "win32", reason="os._exit mid-write is a POSIX crash model")
    def test_a_process_killed_while_saving_never_destroys_the_previous_file(self, tmp_path, model):
        """The child saves a second model over the first and dies (os._exit, no cleanup) in the
        middle of writing it."""
        path = _path(tmp_path)
        model.save(path)
        before = path.read_bytes()
        code = (
            "import os, sys, numpy as np, latentmf\n"
            "model = latentmf.load(sys.argv[1])\n"
            "def dying(file, **arrays):\n"
            "    file.write(b'PK half of a new model')\n"
            "    file.flush()\n"
            "    os._exit(9)\n"
            "np.savez = dying\n"
            "model.save(sys.argv[1])\n"
        )
        result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=120)
        assert result.returncode == 9, result.stderr
        assert path.read_bytes() == before
        _assert_same_model(latentmf.load(path), model)
        leftovers = [name for name in os.listdir(tmp_path) if name != "model.npz"]
        assert len(leftovers) == 1 and leftovers[0].startswith("model.npz.") and leftovers[0].endswith(".tmp")
