"""Threads: native loops release the GIL, models in different threads train in parallel, and one
model used from two threads at once either shares safely (readers) or refuses (a training)."""

from __future__ import annotations

import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import latentmf
from latentmf import _core

from conftest import random_ratings

#: How long a test waits for the other thread before it fails instead of hanging.
PATIENCE = 60


def _state(model):
    arrays = [model.U, model.V] + ([model.user_bias_, model.item_bias_] if model.user_bias_ is not None else [])
    return [a.copy() for a in arrays] + [{key: list(values) for key, values in model.history_.items()}]


def _assert_same(a, b):
    for x, y in zip(a[:-1], b[:-1], strict=True):
        np.testing.assert_array_equal(x, y)
    assert a[-1]["loss"] == b[-1]["loss"] and a[-1]["epoch"] == b[-1]["epoch"]


def _ticks_while(call):
    """Run call() while another Python thread counts; return (t0, t1, times at which it counted)."""
    ticks, started, stop = [], threading.Event(), threading.Event()

    def count():
        n = 0
        while not stop.is_set():
            n += 1
            if n % 200 == 0:
                ticks.append(time.perf_counter())
                started.set()

    counter = threading.Thread(target=count)
    counter.start()
    try:
        assert started.wait(PATIENCE)
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
    finally:
        stop.set()
        counter.join()
    return t0, t1, np.array(ticks)


@pytest.fixture(scope="module")
def big():
    """Ratings and factors wide enough (F = 1024) that each native call takes a while on one thread."""
    rng = np.random.default_rng(7)
    ratings = random_ratings(rng, 1500, 800, 300_000)
    U = 0.01 * rng.standard_normal((1500, 1024))
    V = 0.01 * rng.standard_normal((800, 1024))
    return ratings, U, V


def _native_calls(big):
    ratings, U, V = big
    order = np.random.default_rng(0).permutation(len(ratings))
    R = np.full((1500, 800), np.nan)
    R[ratings.users, ratings.items] = ratings.values
    narrow_U, narrow_V = np.ascontiguousarray(U[:, :256]), np.ascontiguousarray(V[:, :256])
    pair_users, pair_items = np.tile(ratings.users, 4), np.tile(ratings.items, 4)
    users = np.tile(np.arange(1500, dtype=np.int64), 8)
    return {
        "sgd over the grid": lambda: latentmf.sgd_epoch(ratings, U, V, 1e-4, threads=1),
        "sgd in an order": lambda: latentmf.sgd_epoch(ratings, U, V, 1e-4, order=order),
        "gradients": lambda: latentmf.gradients(ratings, U, V, 0.1, threads=1),
        "dense gradients": lambda: latentmf.gradients_dense(R, narrow_U, narrow_V, threads=1),
        "predict": lambda: _core.predict(U, V, pair_users, pair_items, 0.0, None, None, 1),
        "top-k": lambda: _core.top_items(U, V, users, 10, 0.0, None, None, None, None, 1),
        "a new model": lambda: _core.ModelFloat64(400_000, 100_000, 96),
    }


@pytest.mark.parametrize("name", ["sgd over the grid", "sgd in an order", "gradients", "dense gradients", "predict",
                                  "top-k", "a new model"])
def test_native_loops_release_the_gil(big, name):
    """While one thread is inside the native call, another keeps running Python. A call that held
    the GIL would let it count nothing at all between the call's start and end."""
    call = _native_calls(big)[name]
    call()  # warm up: grids and orderings are built and cached on the first call
    t0, t1, ticks = _ticks_while(call)
    middle = ticks[(ticks > t0 + 0.25 * (t1 - t0)) & (ticks < t1 - 0.25 * (t1 - t0))]
    assert len(middle) > 0, f"no Python ran during the {t1 - t0:.3f} s of {name}"


def _fit(ratings, seed, threads=1, **params):
    return latentmf.MatrixFactorization(factors=16, epochs=4, seed=seed, threads=threads, **params).fit(ratings)


def test_two_models_fit_in_two_threads_as_they_would_one_after_the_other(rng):
    first, second = random_ratings(rng, 400, 300, 20_000), random_ratings(rng, 300, 500, 20_000)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(_fit, first, 1), pool.submit(_fit, second, 2, solver="gd"),
                   pool.submit(_fit, first, 3, dtype="float64")]
        together = [f.result(timeout=PATIENCE) for f in futures]
    alone = [_fit(first, 1), _fit(second, 2, solver="gd"), _fit(first, 3, dtype="float64")]
    for a, b in zip(together, alone):
        _assert_same(_state(a), _state(b))


class _Paused:
    """A fit that stops inside its second epoch's callback until released, so that another thread
    can act on the model while a training is certainly under way."""

    def __init__(self, model, ratings):
        self.model, self.ratings = model, ratings
        self.inside, self.release = threading.Event(), threading.Event()

    def callback(self, model, record):
        if record["epoch"] == 1:
            self.inside.set()
            assert self.release.wait(PATIENCE)

    def __enter__(self):
        self.pool = ThreadPoolExecutor(1)
        self.future = self.pool.submit(self.model.fit, self.ratings, callbacks=[self.callback])
        assert self.inside.wait(PATIENCE)
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.future.result(timeout=PATIENCE)
        self.pool.shutdown()


@pytest.fixture
def fitted(rng):
    ratings = random_ratings(rng, 60, 40, 1000)
    return latentmf.MatrixFactorization(factors=4, epochs=4, seed=5, unknown="error").fit(ratings), ratings


@pytest.mark.parametrize("call, match", [
    (lambda m, r: m.fit(r), "fit: this model is already being trained by fit in another thread"),
    (lambda m, r: m.partial_fit(r), "partial_fit: this model is already being trained by fit in another thread"),
    (lambda m, r: m.predict([0, 1], [2, 3]), "predict: this model is being trained by fit in another thread"),
    (lambda m, r: m.recommend(0), "recommend: this model is being trained by fit"),
    (lambda m, r: m.recommend_all(k=3), "recommend_all: this model is being trained by fit"),
    (lambda m, r: m.similar_items(0), "similar_items: this model is being trained"),
    (lambda m, r: m.fold_in([1], [3.0]), "fold_in: this model is being trained"),
    (lambda m, r: m.score(np.array([[0, 1]]), [3.0]), "score: this model is being trained"),
    (lambda m, r: m.save("never-written.npz"), "save: this model is being trained"),
    (lambda m, r: pickle.dumps(m), "__getstate__: this model is being trained"),
], ids=["fit", "partial_fit", "predict", "recommend", "recommend_all", "similar_items", "fold_in", "score", "save",
        "pickle"])
def test_using_a_model_while_another_thread_trains_it_is_refused(fitted, call, match, tmp_path, monkeypatch):
    """Refused at once with RuntimeError, never waiting and never reading half-updated factors; the
    training goes on undisturbed and ends as it would have alone."""
    model, ratings = fitted
    monkeypatch.chdir(tmp_path)
    with _Paused(model, ratings):
        start = time.perf_counter()
        with pytest.raises(RuntimeError, match=match):
            call(model, ratings)
        refused_after = time.perf_counter() - start
    assert refused_after < PATIENCE  # it did not wait for the training to end
    assert not (tmp_path / "never-written.npz").exists()
    alone = latentmf.MatrixFactorization(factors=4, epochs=4, seed=5).fit(ratings)
    _assert_same(_state(model), _state(alone))
    model.predict([0], [1])  # and, once the training is over, the model is free again


def test_a_training_is_refused_while_another_thread_reads_the_model(fitted):
    model, ratings = fitted
    before = _state(model)
    entered, leave = threading.Event(), threading.Event()

    def reader():
        with model._guard().reading("recommend_all"):
            entered.set()
            assert leave.wait(PATIENCE)

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(reader)
        assert entered.wait(PATIENCE)
        try:
            with pytest.raises(RuntimeError, match="fit: this model is in use by recommend_all in another thread"):
                model.fit(ratings)
            model.predict([0], [1])  # readers share the model
        finally:
            leave.set()
        future.result(timeout=PATIENCE)
    _assert_same(before, _state(model))
    model.fit(ratings)


def test_many_threads_read_one_model_at_once(fitted):
    model, _ = fitted
    users = np.arange(60)
    expected = model.predict(users, users % 40), model.recommend_all(k=5)

    def read(_):
        return model.predict(users, users % 40), model.recommend_all(k=5)

    with ThreadPoolExecutor(4) as pool:
        for predictions, (items, scores) in pool.map(read, range(40)):
            np.testing.assert_array_equal(predictions, expected[0])
            np.testing.assert_array_equal(items, expected[1][0])


def test_the_training_thread_may_read_its_model_but_not_train_it_again(fitted, tmp_path):
    model, ratings = fitted
    seen = []

    def reads(m, record):
        seen.append((m.predict([0], [1])[0], m.recommend(0, k=2)[0].tolist()))
        m.save(tmp_path / f"epoch{record['epoch']}.npz")

    model.fit(ratings, callbacks=[reads])
    assert len(seen) == 4 and (tmp_path / "epoch3.npz").exists()
    with pytest.raises(RuntimeError, match="in this thread \\(a callback cannot start another training\\)"):
        model.fit(ratings, callbacks=[lambda m, r: m.partial_fit(ratings)])
    # the epoch that ran before the callback is kept, and the model is usable again
    assert model.history_["epoch"] == [0]
    model.partial_fit(epochs=1)
    assert model.history_["epoch"] == [0, 1]


def test_a_failed_call_leaves_the_model_free(fitted):
    model, ratings = fitted
    with pytest.raises(ValueError):
        model.set_params(epochs=-1).fit(ratings)
    with pytest.raises(ValueError):
        model.predict([10**6], [0])
    model.set_params(epochs=1).fit(ratings)
    model.predict([0], [0])
