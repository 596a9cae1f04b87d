"""Training on a Dask cluster (latentmf.dask) gives the local fit's bits, and says what it moved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import latentmf  # noqa: E402
import latentmf.dask as ldask  # noqa: E402
from latentmf.dask import driver  # noqa: E402
from latentmf.dask.inputs import all_workers  # noqa: E402
from latentmf.dask.plan import Plan, StateLayout  # noqa: E402


@pytest.fixture(scope="module")
def client():
    """A real cluster of 3 worker processes (one thread each), shared by the tests of this module."""
    with distributed.LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None,
                                  memory_limit="2GiB") as cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(3, timeout=120)  # a loaded machine may start them after the client
        yield client


@pytest.fixture(scope="module")
def ratings():
    return latentmf.datasets.synthetic(300, 200, 6000, seed=1)


def _model(**settings):
    base = {"factors": 16, "epochs": 3, "seed": 3, "blocks": 4}
    base.update(settings)
    return latentmf.MatrixFactorization(**base)


def assert_same_model(local, distributed_model):
    np.testing.assert_array_equal(local.U, distributed_model.U)
    np.testing.assert_array_equal(local.V, distributed_model.V)
    if local.user_bias_ is None:
        assert distributed_model.user_bias_ is None
    else:
        np.testing.assert_array_equal(local.user_bias_, distributed_model.user_bias_)
        np.testing.assert_array_equal(local.item_bias_, distributed_model.item_bias_)
    assert local.global_mean_ == distributed_model.global_mean_


@pytest.mark.parametrize("blocks", [2, 4, 5])
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_equals_local_fit(client, ratings, blocks, workers, dtype):
    local = _model(blocks=blocks, dtype=dtype).fit(ratings)
    fitted = ldask.fit(_model(blocks=blocks, dtype=dtype), ratings, client, workers=workers)
    assert_same_model(local, fitted)
    # the history adds the same per-block sums in the same order
    assert fitted.history_["loss"] == local.history_["loss"]
    assert fitted.history_["train_rmse"] == local.history_["train_rmse"]
    report = fitted.fit_report_
    assert report.blocks == blocks and len(report.workers) == workers
    assert report.block_ratings.sum() == len(ratings)


@pytest.mark.parametrize("solver, biases, factors, dtype", [
    ("sgd", False, 5, "float64"),
    ("sgd", True, 32, "float32"),
    ("adagrad", False, 20, "float32"),
    ("adagrad", True, 20, "float64"),
])
def test_equals_local_fit_for_each_solver_and_width(client, ratings, solver, biases, factors, dtype):
    # The history from the errors seen during each epoch (the default), or from the objective at
    # its end (exact_loss): either way, the local fit's bits.
    settings = {"solver": solver, "biases": biases, "factors": factors, "dtype": dtype, "blocks": 5,
                "learning_rate_decay": 0.1, "exact_loss": biases}
    local = _model(**settings).fit(ratings)
    fitted = ldask.fit(_model(**settings), ratings, client, workers=2)
    assert_same_model(local, fitted)
    assert fitted.history_["loss"] == local.history_["loss"]
    assert fitted.history_["train_rmse"] == local.history_["train_rmse"]


@pytest.mark.parametrize("blocks, workers", [(4, 2), (5, 3), (8, 8)])
def test_schedule_is_a_dependency_graph_without_barriers(blocks, workers):
    """Each training task reads only its worker's previous task, its worker's shards and the item
    groups of its blocks, each from the task that last updated that group."""
    submitted = {}

    class Recorder(driver._Cluster):
        def submit(self, fn, *args, key, worker):
            submitted[key] = (fn, args, worker)
            return key

    training = Recorder.__new__(Recorder)
    training.B, training.workers, training.token = blocks, [f"w{w}" for w in range(workers)], "t"
    training.plan = Plan(blocks, workers, seed=7, epochs=2)
    training.layout = StateLayout(4, False, True)
    training.task_settings = None
    training.evaluate = False
    training.shards = [("shard", p) for p in range(blocks)]
    training.initial = {"u": [("u0", w) for w in range(workers)], "v": [("v0", q) for q in range(blocks)]}
    training.last = [None] * workers
    for t in range(2):
        training.submit_epoch(t, 0.1)
    plan = training.plan
    last_update = {q: ("v0", q) for q in range(blocks)}
    for t in range(2):
        for s in range(blocks):
            for w, groups in enumerate(plan.groups):
                fn, args, worker = submitted[training.key("sgd", t, s, w)]
                shards, previous, item_states, items = args[:4]
                assert worker == w and shards == [("shard", p) for p in groups]
                assert previous == (training.key("sgd", t, s - 1, w) if s else
                                    (("u0", w) if t == 0 else training.key("u", t - 1, w)))
                assert items == [plan.item_group(p, t, s) for p in groups]
                assert item_states == [last_update[q] for q in items]
                for q in items:  # the pick of each updated group runs where it was updated
                    pick = training.key("v", t, s, q)
                    assert submitted[pick][1][0] == training.key("sgd", t, s, w) and submitted[pick][2] == w
            for q in range(blocks):
                last_update[q] = training.key("v", t, s, q)


@pytest.mark.parametrize("blocks, workers", [(4, 2), (5, 2), (5, 3), (2, 2)])
def test_measured_v_bytes_equal_the_prediction_and_nothing_else_moves(client, ratings, blocks, workers):
    fitted = ldask.fit(_model(blocks=blocks), ratings, client, workers=workers)
    report = fitted.fit_report_
    assert report.v_bytes_measured == report.v_bytes_predicted
    assert all(moved > 0 for moved in report.v_bytes_predicted)
    assert report.u_bytes_moved == 0
    assert report.other_bytes_moved == 0  # no ratings, shards or anything else after set-up


def test_prediction_formula_when_every_worker_has_one_group(client, ratings):
    """With W = B every item group changes worker whenever the shift changes: B - 1 times inside an
    epoch, and once more into the next epoch unless its first shift is the last one again."""
    B, F, epochs = 3, 16, 3
    fitted = ldask.fit(_model(blocks=B, factors=F, epochs=epochs), ratings, client, workers=B, history=False)
    state_bytes = ratings.n_items * (F + 1 + 2) * 4  # factors, bias, 2 AdaGrad accumulators; float32
    shifts = [latentmf._core.sub_epoch_shifts(B, 3, t) for t in range(epochs)]
    moves = [B - 1 + (t + 1 < epochs and shifts[t][-1] != shifts[t + 1][0]) for t in range(epochs)]
    report = fitted.fit_report_
    assert report.v_bytes_predicted == [m * state_bytes for m in moves]
    assert report.v_bytes_measured == report.v_bytes_predicted
    assert all(np.isnan(fitted.history_["loss"]))
    with_history = ldask.fit(_model(blocks=B, factors=F, epochs=epochs), ratings, client, workers=B).fit_report_
    # the evaluation of each epoch sends every group's final state to the B - 1 other workers; the
    # next epoch's first sub-epoch then finds its group already there
    assert with_history.v_bytes_predicted == [(B - 1 + B - 1) * state_bytes] * epochs
    assert with_history.v_bytes_measured == with_history.v_bytes_predicted


def test_workers_run_the_drivers_instruction_set_level(client, ratings):
    info = latentmf.build_info()
    levels = info["isa_levels_supported"]
    if len(levels) < 2:
        pytest.skip("this CPU supports one instruction-set level only")
    best = _model(factors=32, epochs=2).fit(ratings)
    latentmf._core.select_isa(levels[0])
    try:
        local = _model(factors=32, epochs=2).fit(ratings)
        fitted = ldask.fit(_model(factors=32, epochs=2), ratings, client, workers=2)
    finally:
        latentmf._core.select_isa(info["isa"])
    assert_same_model(local, fitted)
    # the levels round differently, so running the workers at another level would show
    assert not np.array_equal(best.V, fitted.V)
    assert_same_model(best, ldask.fit(_model(factors=32, epochs=2), ratings, client, workers=2))


def test_fitted_model_predicts_and_recommends_as_usual(client, ratings):
    local = _model().fit(ratings)
    fitted = ldask.fit(_model(), ratings, client, workers=2)
    users, items = ratings.users[:50], ratings.items[:50]
    np.testing.assert_array_equal(local.predict(users, items), fitted.predict(users, items))
    for a, b in zip(local.recommend(7, k=5), fitted.recommend(7, k=5)):
        np.testing.assert_array_equal(a, b)


def test_dataframe_with_raw_ids_equals_local_fit(client, ratings, tmp_path):
    """Ids are mapped as Ratings.from_dataframe maps them: strings and sparse integers get an IdMap."""
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    frame = pd.DataFrame({
        "who": np.char.add("u", ratings.users.astype(str)),
        "what": ratings.items.astype(np.int64) * 7 + 1000,  # sparse integer ids
        "stars": ratings.values,
    })
    fitted = ldask.fit(_model(), dd.from_pandas(frame, npartitions=3, sort=False), client, user="who",
                       item="what", rating="stars", workers=2)
    local = _model().fit(latentmf.Ratings.from_dataframe(frame, user="who", item="what", rating="stars"))
    assert fitted.user_ids_ == local.user_ids_ and fitted.user_ids_ is not None
    assert fitted.item_ids_ == local.item_ids_ and fitted.item_ids_ is not None
    assert_same_model(local, fitted)
    assert fitted.history_["loss"] == local.history_["loss"]
    for a, b in zip(local.recommend("u3", k=5), fitted.recommend("u3", k=5)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(local.predict(["u3", "u5"], [1007, 1014]),
                                  fitted.predict(["u3", "u5"], [1007, 1014]))
    # an ordinary model: saved and loaded, it answers the same
    fitted.save(tmp_path / "model.npz")
    loaded = latentmf.load(tmp_path / "model.npz")
    assert_same_model(local, loaded)
    for a, b in zip(local.recommend("u3", k=5), loaded.recommend("u3", k=5)):
        np.testing.assert_array_equal(a, b)
    # without the seen items, recommend excludes nothing
    bare = ldask.fit(_model(epochs=1), dd.from_pandas(frame, npartitions=2), client, user="who", item="what",
                     rating="stars", workers=1, keep_seen=False)
    assert len(bare.recommend("u3", k=len(bare.item_ids_))[0]) == len(bare.item_ids_)


def test_dataframe_of_indices_and_dask_arrays_equal_local_fit(client, ratings):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    da = pytest.importorskip("dask.array")
    frame = pd.DataFrame({"user": ratings.users, "item": ratings.items, "rating": ratings.values})
    local = _model(blocks=5).fit(latentmf.Ratings.from_dataframe(frame))
    fitted = ldask.fit(_model(blocks=5), dd.from_pandas(frame, npartitions=4, sort=False), client, workers=2)
    assert fitted.user_ids_ == local.user_ids_ and fitted.item_ids_ == local.item_ids_
    assert_same_model(local, fitted)
    for a, b in zip(local.recommend(3, k=5), fitted.recommend(3, k=5)):
        np.testing.assert_array_equal(a, b)
    local = _model(blocks=5).fit(ratings)
    arrays = tuple(da.from_array(a, chunks=1700) for a in (ratings.users, ratings.items, ratings.values))
    assert_same_model(local, ldask.fit(_model(blocks=5), arrays, client, workers=2))


@pytest.mark.parametrize("history", [True, False])
def test_divergence_keeps_the_last_finite_epoch_like_local_fit(client, ratings, history):
    settings = {"solver": "sgd", "learning_rate": 2.0, "epochs": 4, "biases": False}
    local = _model(**settings)
    with pytest.raises(FloatingPointError) as local_error:
        local.fit(ratings)
    fitted = _model(**settings)
    with pytest.raises(FloatingPointError, match="diverged in epoch") as error:
        ldask.fit(fitted, ratings, client, workers=2, history=history)
    if history:  # the same epoch is found to diverge: the same model is kept
        assert str(error.value).split(":")[0] == str(local_error.value).split(":")[0]
        assert_same_model(local, fitted)
        assert fitted.history_["loss"] == local.history_["loss"]
    assert np.isfinite(fitted.U).all() and np.isfinite(fitted.V).all()


def test_configurations_that_cannot_work_are_refused(client, ratings):
    with pytest.raises(ValueError, match="3 workers but only blocks=2"):
        ldask.fit(_model(blocks=2), ratings, client)
    for solver in ("gd", "als", "gibbs"):
        with pytest.raises(ValueError, match=f"not '{solver}'"):
            ldask.fit(_model(solver=solver, blocks=None), ratings, client)
    with pytest.raises(ValueError, match="workers=4"):
        ldask.fit(_model(), ratings, client, workers=4)
    with pytest.raises(ValueError, match="early_stopping"):
        ldask.fit(_model(early_stopping=2), ratings, client, workers=1)
    fitted = _model(epochs=1, warm_start=True).fit(ratings)
    with pytest.raises(ValueError, match="warm_start"):
        ldask.fit(fitted, ratings, client, workers=1)
    # a bad rating found on a worker (while it builds its shard) comes back as the same ValueError
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    frame = pd.DataFrame({"user": [0, 1, 2, 3], "item": [0, 1, 2, 0], "rating": [1.0, np.nan, 3.0, 4.0]})
    model = _model()
    with pytest.raises(ValueError, match="not a finite number"):
        ldask.fit(model, dd.from_pandas(frame, npartitions=2), client, workers=1)
    assert not hasattr(model, "history_")


def test_default_client_is_the_current_one(client, ratings):
    local = _model(epochs=1).fit(ratings)
    with client.as_current():
        assert_same_model(local, ldask.fit(_model(epochs=1), ratings, workers=1))


def test_import_latentmf_does_not_import_dask():
    code = "import sys, latentmf; print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def _kill_one_worker(client, addresses):
    """SIGKILL the process of the last of `addresses` (its nanny starts a new one, at a new address)."""
    victim = addresses[-1]
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)


# The worker-loss tests kill a worker of the shared cluster: they run last in this module.
def test_worker_killed_during_training_gives_the_same_model(client, ratings):
    local = _model(epochs=4, blocks=4).fit(ratings)
    workers = sorted(client.scheduler_info(**all_workers(client))["workers"])
    assert len(workers) == 3

    def kill_after_first_epoch(model, record):
        if record["epoch"] == 0:
            _kill_one_worker(client, workers)

    fitted = ldask.fit(_model(epochs=4, blocks=4), ratings, client, callbacks=[kill_after_first_epoch])
    assert_same_model(local, fitted)
    assert fitted.history_["loss"] == local.history_["loss"]
    assert fitted.fit_report_.restarts == 1
    client.wait_for_workers(3, timeout=60)


def test_worker_killed_without_restarts_is_a_clear_error(client, ratings):
    client.wait_for_workers(3, timeout=60)
    workers = sorted(client.scheduler_info(**all_workers(client))["workers"])
    model = _model(epochs=4, blocks=4)

    def kill_after_first_epoch(model, record):
        if record["epoch"] == 0:
            _kill_one_worker(client, workers)

    with pytest.raises(ldask.WorkerLostError, match="a worker left the cluster during training"):
        ldask.fit(model, ratings, client, restarts=0, callbacks=[kill_after_first_epoch])
    assert not hasattr(model, "history_")
    client.wait_for_workers(3, timeout=60)
