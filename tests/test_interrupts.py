"""Ctrl-C during fit: training stops within one native call (a sub-epoch), and the model is left
at the last finished epoch, consistent with history_ and usable.

Python runs a signal's handler in the main thread between bytecodes, so KeyboardInterrupt comes
out of the first Python step after the native call under way returns. The in-process tests raise
it right after each kind of native call of an epoch; the subprocess test sends a real SIGINT.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import latentmf
from latentmf import _core

from conftest import random_ratings

#: The bound on the whole subprocess test, so that a hang fails instead of blocking CI.
PATIENCE = 120


@pytest.fixture(scope="module")
def data():
    return random_ratings(np.random.default_rng(11), 120, 80, 3000).split(0.2, seed=0)


def _model(**params):
    grid = params.get("solver", "adagrad") in ("adagrad", "sgd")
    return latentmf.MatrixFactorization(**{"factors": 6, "epochs": 6, "seed": 2, "blocks": 4 if grid else None,
                                           **params})


def _state(model):
    native = model._state().native
    return [native.U.copy(), native.V.copy(), native.user_bias.copy(), native.item_bias.copy(),
            native.user_accumulators.copy(), native.item_accumulators.copy()]


def _interrupt_after(monkeypatch, name, nth):
    """Make the nth call of _core.<name> (counting from 1) complete and then raise
    KeyboardInterrupt, as a SIGINT received during it would."""
    real = getattr(_core, name)
    calls = []

    def call(*args):
        result = real(*args)
        calls.append(name)
        if len(calls) == nth:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(_core, name, call)
    return calls


# (solver, native call, which call): every native call an epoch makes, early and late in training.
POINTS = [
    ("adagrad", "sgd_grid", 1),  # first sub-epoch of the first epoch
    ("adagrad", "sgd_grid", 11),  # third sub-epoch of the third epoch
    ("sgd", "sgd_grid", 8),  # the last sub-epoch of the second epoch
    ("adagrad", "penalty_of_norms", 5),  # the loss at the end of the third epoch (two per epoch)
    ("sgd", "predict", 2),  # the validation RMSE of the second epoch
    ("gd", "gradients", 4),  # the step of the fourth epoch
    ("gd", "objective", 1),  # the loss after the first step
]


@pytest.mark.parametrize("solver, native, nth", POINTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_interrupt_leaves_the_last_finished_epoch(data, monkeypatch, solver, native, nth, dtype):
    train, test = data
    model = _model(solver=solver, dtype=dtype)
    _interrupt_after(monkeypatch, native, nth)
    with pytest.raises(KeyboardInterrupt):
        model.fit(train, validation=test)
    monkeypatch.undo()
    k = len(model.history_["epoch"])
    assert all(len(values) == k for values in model.history_.values())
    finished = _model(solver=solver, dtype=dtype, epochs=k).fit(train, validation=test)
    for a, b in zip(_state(model), _state(finished)):
        np.testing.assert_array_equal(a, b)
    assert model.history_["loss"] == finished.history_["loss"]
    # usable, and training resumes exactly where it stopped
    model.predict([0], [1])
    model.partial_fit(epochs=6 - k, validation=test)
    whole = _model(solver=solver, dtype=dtype).fit(train, validation=test)
    for a, b in zip(_state(model), _state(whole)):
        np.testing.assert_array_equal(a, b)


def test_an_interrupt_in_a_callback_keeps_the_epoch_it_reported(data):
    train, _ = data
    model = _model()

    def interrupt(m, record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(train, callbacks=[interrupt])
    assert model.history_["epoch"] == [0, 1, 2]
    for a, b in zip(_state(model), _state(_model(epochs=3).fit(train))):
        np.testing.assert_array_equal(a, b)


CHILD = textwrap.dedent("""
    import sys, time
    import latentmf

    ratings = latentmf.datasets.synthetic(6000, 2000, 300_000, seed=0)
    model = latentmf.MatrixFactorization(factors=512, epochs=10_000, dtype="float64", seed=0)

    def report(model, record):
        print("epoch", record["epoch"], record["seconds"], flush=True)

    try:
        model.fit(ratings, callbacks=[report])
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)
        model.save(sys.argv[1])
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to a child process on Windows")
def test_ctrl_c_stops_a_long_fit_promptly_at_an_epoch_boundary(tmp_path):
    """A child fits for 10,000 epochs; after it reports 3, it gets SIGINT. It must raise
    KeyboardInterrupt within about one sub-epoch, and the model it saves must be exactly the model
    of a fit stopped after the epochs it had finished."""
    path = tmp_path / "interrupted.npz"
    # -X faulthandler: if the child does not stop, SIGABRT makes it print where each thread is.
    child = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        epoch_seconds = []
        deadline = time.monotonic() + PATIENCE
        while len(epoch_seconds) < 3 and time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line.startswith("epoch"), line + child.stderr.read()
            epoch_seconds.append(float(line.split()[2]))
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        try:
            out, err = child.communicate(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGABRT)
            out, err = child.communicate(timeout=30)
            pytest.fail(f"the child did not stop within {PATIENCE} s of SIGINT; it printed:\n{out}\n{err}")
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    lines = out.splitlines()
    assert lines[-1].startswith("interrupted") and "finished" not in out
    # It stopped within the epoch it was in (an epoch is 8 sub-epochs plus its loss): the time from
    # the signal to KeyboardInterrupt is at most about one epoch, not the 9,997 left.
    latency = float(lines[-1].split()[1]) - sent
    assert latency < 2 * max(epoch_seconds) + 1.0, (latency, epoch_seconds)
    saved = latentmf.load(path)
    k = len(saved.history_["epoch"])
    assert k >= 3 and saved.history_["epoch"] == list(range(k))
    ratings = latentmf.datasets.synthetic(6000, 2000, 300_000, seed=0)
    fresh = latentmf.MatrixFactorization(factors=512, epochs=k, dtype="float64", seed=0).fit(ratings)
    np.testing.assert_array_equal(saved.U, fresh.U)
    np.testing.assert_array_equal(saved.V, fresh.V)
    np.testing.assert_array_equal(saved.user_bias_, fresh.user_bias_)
    np.testing.assert_array_equal(saved._state().native.user_accumulators, fresh._state().native.user_accumulators)
    assert saved.history_["loss"] == fresh.history_["loss"]

