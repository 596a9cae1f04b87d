"""The driver of a distributed fit: a training back-end for `MatrixFactorization.fit`.

`DaskBackend.start` reads the ratings into partitions on the cluster, draws the initial model on
the driver exactly as a local fit draws it, and returns a `Trainer` whose epochs run as task
graphs on the workers; the model's own epoch loop drives it (history, callbacks, divergence,
Ctrl-C), so a distributed fit ends in the same state as a local one.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Mapping

import distributed
import numpy as np
from distributed import Client, Future

from .. import _core, rating_solvers
from .._checks import as_integer, as_threads
from ..state import FittedState, SeenItems, new_native
from ..training import StateLost, Trainer
from . import tasks
from .inputs import Inputs, all_workers, read_inputs, summary
from .plan import Plan, StateLayout, predicted_v_bytes
from .report import DaskFitReport

#: Seconds between checks that the workers of a fit are still there while it waits for results.
POLL_SECONDS = 0.5
#: Seconds a fit waits for a cluster without workers to have one.
WORKER_WAIT = 30.0
#: Epochs submitted ahead of the one being waited for: no barrier between epochs.
AHEAD = 2


class WorkerLostError(RuntimeError, StateLost):
    """A worker of a distributed fit left, and the fit could not be completed with the same result;
    the model is left as it was before the fit."""


class _WorkerLost(Exception):
    pass


class DaskBackend:
    """Trains a `MatrixFactorization` on the workers of a `distributed.Client`, over the same block
    grid as local training: ``model.fit(backend=DaskBackend(data, client))`` (or
    `latentmf.dask.fit`). See `latentmf.dask.fit` for the arguments."""

    def __init__(self, data: Any, client: Client | None = None, user: str = "user", item: str = "item",
                 rating: str = "rating", *, workers: int | Sequence[str] | None = None, history: bool = True,
                 keep_seen: bool = True, restarts: int = 2) -> None:
        self.data, self.client = data, client
        self.columns = (user, item, rating)
        self.workers, self.history, self.keep_seen = workers, bool(history), bool(keep_seen)
        self.restarts = as_integer(restarts, "restarts", 0)

    def start(self, settings: Mapping[str, Any], layout: tuple[str, ...],
              history: dict[str, list[float]]) -> tuple[FittedState, Trainer]:
        """The initial state of a model with `settings` (its checked hyper-parameters), native
        arrays `layout` and an empty `history`, and the trainer of its epochs on the cluster."""
        if settings["solver"] not in ("sgd", "adagrad"):
            raise ValueError(f"latentmf.dask trains the SGD solvers ('sgd', 'adagrad'), not {settings['solver']!r}")
        client = _default_client(self.client)
        inputs = read_inputs(self.data, client, *self.columns)
        learning_rate = rating_solvers.default_learning_rate(settings, None)
        rating_solvers.check_steps(settings, settings["learning_rate"] or learning_rate, 0, settings["epochs"])
        rating_solvers.check_training_memory(settings, inputs.n_users, inputs.n_items, new_model=True)
        data = summary(inputs)
        native = new_native(settings["dtype"], data.n_users, data.n_items, settings["factors"])
        rating_solvers.initialize(native, data, settings)
        state = FittedState(native, settings, layout, data, SeenItems.none(data.n_users), history,
                            derived={"default_learning_rate": learning_rate}, training=inputs.local)
        trainer = DaskTrainer(client, inputs, settings, native, settings["learning_rate"] or learning_rate, self)
        return state, trainer


def fit(model: Any, data: Any, client: Client | None = None, user: str = "user", item: str = "item",
        rating: str = "rating", *, workers: int | Sequence[str] | None = None, history: bool = True,
        keep_seen: bool = True, restarts: int = 2, callbacks: Iterable[Callable[..., Any]] | None = None) -> Any:
    """Fit `model` on a Dask cluster; returns the model, fitted as `model.fit(data)` would fit it.

    Parameters
    ----------
    model : MatrixFactorization
        Its hyper-parameters, `seed` and `blocks` (B) are used; solver "sgd" or "adagrad".
    data : Ratings, (users, items, values) tuple of NumPy or Dask arrays, or Dask DataFrame
        A DataFrame has the columns `user`, `item` and `rating`, whose ids are mapped as
        `Ratings.from_dataframe` maps them (integer ids 0..n-1 are indices; other ids get an
        `IdMap`, kept as `model.user_ids_` / `model.item_ids_`), so the local twin of a Dask
        DataFrame `ddf` is `Ratings.from_dataframe(ddf.compute())`: its rows, partition by
        partition, are the input order local training sees. Arrays hold indices, as in `Ratings`.
    client : distributed.Client, optional
        Default: the current client.
    workers : int or list of str, optional
        The workers to train on (default: all). At most B: each owns at least one user group.
    history : bool
        Compute the loss and train RMSE after every epoch, equal to local training's (each item
        group's state then also goes once to every worker per epoch). Without it,
        history_["loss"] and ["train_rmse"] hold NaN.
    keep_seen : bool
        Bring the (user, item) pairs back to the driver at the end, so that `recommend` can leave
        out seen items (8 bytes per rating, for data that is not on the driver already). Without
        them `recommend` excludes nothing.
    restarts : int
        When a worker leaves during training, start again from the initial state on the workers
        left (the result is the same), at most this many times; then raise WorkerLostError.
    callbacks : list of callables, optional
        Called after every epoch as ``callback(model, record)``, as in `fit`; the model's factors
        are brought back from the cluster when the fit ends, not after every epoch.

    After the fit, `model.fit_report_` (a DaskFitReport) holds the accounting: B, workers,
    ratings per block, V bytes moved per epoch (predicted and measured), U bytes moved (0), set-up
    and result bytes, wall and compute seconds.
    """
    from ..model import MatrixFactorization

    if not isinstance(model, MatrixFactorization):
        raise TypeError(f"model must be a latentmf.MatrixFactorization, got {type(model).__name__}")
    backend = DaskBackend(data, client, user, item, rating, workers=workers, history=history, keep_seen=keep_seen,
                          restarts=restarts)
    return model.fit(backend=backend, callbacks=callbacks)


def _default_client(client: Client | None) -> Client:
    if client is not None:
        return client
    try:
        return distributed.default_client()
    except ValueError:
        raise ValueError("no Dask client: pass client= or create a distributed.Client first") from None


def _choose_workers(client: Client, workers: int | Sequence[str] | None, blocks: int,
                    strict: bool = True) -> list[str]:
    """The workers to train on. After a worker was lost (strict=False) whatever workers there are
    will do, up to the number asked for and B: the result does not depend on them."""
    available = sorted(client.scheduler_info(**all_workers(client))["workers"])
    if not available:
        # A cluster still starting, or one whose workers a busy machine let miss a heartbeat.
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT)
        except (TimeoutError, distributed.TimeoutError):
            raise ValueError(f"the Dask cluster has no workers (waited {WORKER_WAIT:.0f} s for one)") from None
        available = sorted(client.scheduler_info(**all_workers(client))["workers"])
    if not strict:
        count = workers if isinstance(workers, int) else len(available) if workers is None else len(workers)
        return available[:max(1, min(count, len(available), blocks))]
    if workers is None:
        chosen = available
    elif isinstance(workers, int):
        if not 1 <= workers <= len(available):
            raise ValueError(f"workers={workers} but the cluster has {len(available)} workers")
        chosen = available[:workers]
    else:
        chosen = list(workers)
        unknown = [w for w in chosen if w not in available]
        if unknown:
            raise ValueError(f"worker {unknown[0]!r} is not in the cluster ({len(available)} workers)")
    if len(chosen) > blocks:
        raise ValueError(f"{len(chosen)} workers but only blocks={blocks} user groups: each worker needs at least "
                         f"one. Set the model's blocks to at least {len(chosen)}, or pass workers=<at most "
                         f"{blocks}> (the result depends on blocks, not on the workers)")
    return chosen


def _errors_seen(per_worker: list[list[tasks.Stats]]) -> float:
    """The squared errors seen during an epoch, added as a local fit adds them: each sub-epoch's
    blocks in user-group order (the workers own contiguous groups, in worker order), then the
    sub-epochs in order."""
    seen = 0.0
    for sub_epoch in range(len(per_worker[0])):
        errors = 0.0
        for entries in per_worker:
            for error in entries[sub_epoch][0]:
                errors += error
        seen += errors
    return seen


def _wait_for_workers(client: Client, n: int, timeout: float = 30.0) -> None:
    try:
        client.wait_for_workers(n, timeout=timeout)
    except (TimeoutError, distributed.TimeoutError) as error:
        raise WorkerLostError("no worker is left to train on") from error


class DaskTrainer(Trainer):
    """The epochs of a distributed fit, as the model's epoch loop drives them. The model's state
    lives on the workers during training: a checkpoint is the futures of a whole state, and
    `finish` brings the last good one back into the native model."""

    def __init__(self, client: Client, inputs: Inputs, settings: Mapping[str, Any], native: Any,
                 learning_rate: float, backend: DaskBackend) -> None:
        super().__init__([])
        self.client, self.inputs, self.settings, self.native = client, inputs, settings, native
        self.learning_rate, self.backend = learning_rate, backend
        self.attempt = 0
        self.lost = False
        self.start = time.perf_counter()
        self.cluster = self._new_cluster(strict=True)
        self.current: dict[str, Any] = self.cluster.initial
        self.pending: dict[int, dict[str, Any]] = {}
        self.records: list[dict[str, Any]] = []

    def _new_cluster(self, strict: bool) -> _Cluster:
        chosen = _choose_workers(self.client, self.backend.workers, self.settings["blocks"], strict=strict)
        cluster = _Cluster(self.client, self.inputs, self.settings, chosen, self.backend.history,
                           self.backend.keep_seen)
        start = time.perf_counter()
        cluster.setup(self.native)
        cluster.setup_seconds = time.perf_counter() - start
        return cluster

    def _step(self, epoch: int) -> float:
        return rating_solvers.step(self.settings, self.learning_rate, epoch)

    def run_epoch(self, epoch: int) -> dict[str, float]:
        while True:
            try:
                return self._run_epoch(epoch)
            except _WorkerLost as lost:
                self._restart(lost, epoch)

    def _run_epoch(self, epoch: int) -> dict[str, float]:
        epochs = self.settings["epochs"]
        for t in range(epoch, min(epoch + AHEAD, epochs)):
            if t not in self.pending:
                self.pending[t] = self.cluster.submit_epoch(t, self._step(t))
        submitted = self.pending.pop(epoch)
        # per worker, per sub-epoch: (errors of its blocks, all finite, seconds)
        per_worker = self.cluster.wait(submitted["stats"])
        stats = [entry for entries in per_worker for entry in entries]
        evaluation = self.cluster.wait(submitted["evaluation"]) if submitted["evaluation"] else []
        self.cluster.read_transfer_logs()
        compute = sum(seconds for _, _, seconds in stats) + sum(e["seconds"] for e in evaluation)
        self.records.append({"epoch": epoch, "compute": compute, "end": time.perf_counter()})
        self.current = {"u": submitted["u"], "v": submitted["v"]}
        if not all(finite for _, finite, _ in stats):
            return {"loss": math.inf, "train_rmse": math.inf}
        if not evaluation:
            return {"loss": math.nan, "train_rmse": math.nan}
        squared_errors = (self.cluster.errors_at_the_end(evaluation) if self.settings["exact_loss"]
                          else _errors_seen(per_worker))
        penalty = self.cluster.penalty(evaluation)
        return {"loss": 0.5 * (squared_errors + self.settings["regularization"] * penalty),
                "train_rmse": math.sqrt(squared_errors / self.inputs.size)}

    def diverged(self, entries: dict[str, float]) -> bool:
        return math.isinf(entries["loss"])

    def divergence_message(self, epoch: int, loss: float, last: int | None) -> str:
        return (f"{super().divergence_message(epoch, loss, last)}. Lower the learning rate (it was "
                f"{self._step(epoch):g}).")

    def _restart(self, lost: _WorkerLost, epoch: int) -> None:
        """After a worker left: start again from the initial state on the workers left, and submit
        the epochs before `epoch` again (they give the same bits)."""
        self.cluster.release()
        if self.attempt >= self.backend.restarts:
            self.lost = True
            raise WorkerLostError(f"{lost}; gave up after {self.attempt} restart(s). The model is left as it was "
                                  "before the fit. The training tasks are pure, so fitting again gives the same "
                                  "result.") from None
        self.attempt += 1
        if self.inputs.local is None and any(f.status == "error" for f in self.inputs.partitions):
            self.lost = True
            raise WorkerLostError(f"{lost}, and the ratings held by that worker cannot be recomputed") from None
        _wait_for_workers(self.client, 1)
        self.cluster = self._new_cluster(strict=False)
        self.pending = {}
        self.current = self.cluster.initial
        for t in range(epoch):
            submitted = self.cluster.submit_epoch(t, self._step(t))
            self.current = {"u": submitted["u"], "v": submitted["v"]}

    def checkpoint(self) -> Any:
        return self.cluster, self.current

    def snapshot(self) -> Any:
        return self.checkpoint()

    def restore(self, saved: Any) -> None:
        cluster, current = saved
        # A state of a cluster given up on (a worker left meanwhile) is gone; the restarted
        # cluster's state at the start of the epoch is the same.
        if cluster is self.cluster:
            self.current = current

    def finish(self) -> dict[str, Any]:
        """The last good state into the native model; the seen items and the report for the state."""
        self.pending.clear()
        if self.lost:
            return {}
        cluster = self.cluster
        settings = self.settings
        layout = cluster.layout
        native = self.native
        user_side = (native.U, native.user_bias if layout.biases else None,
                     native.user_accumulators if layout.adagrad else None)
        item_side = (native.V, native.item_bias if layout.biases else None,
                     native.item_accumulators if layout.adagrad else None)
        u_lists = cluster.wait(self.current["u"])
        v_states = cluster.wait(self.current["v"])
        for w, states in enumerate(u_lists):
            for p, state in zip(cluster.plan.groups[w], states):
                layout.unpack(state, cluster.user_rows[p], *user_side)
        for q, state in enumerate(v_states):
            layout.unpack(state, cluster.item_rows[q], *item_side)
        cluster.result_bytes += (sum(s.nbytes for states in u_lists for s in states) + sum(s.nbytes for s in v_states))
        seen = (SeenItems.none(self.inputs.n_users) if cluster.seen is None
                else SeenItems.of_pairs(np.concatenate([pair[0] for pair in cluster.seen]),
                                        np.concatenate([pair[1] for pair in cluster.seen]),
                                        self.inputs.n_users, self.inputs.n_items))
        if self.inputs.local is not None:
            seen = SeenItems(ratings=self.inputs.local)
        report = self._report(settings)
        cluster.release()
        return {"seen": seen, "report": report}

    def _report(self, settings: Mapping[str, Any]) -> DaskFitReport:
        cluster = self.cluster
        epochs = len(self.records)
        ends = [self.start + cluster.setup_seconds] + [record["end"] for record in self.records]
        itemsize = np.dtype(settings["dtype"]).itemsize
        return DaskFitReport(
            blocks=cluster.B, workers=list(cluster.workers),
            user_groups={w: cluster.plan.groups[i] for i, w in enumerate(cluster.workers)},
            n_ratings=self.inputs.size, block_ratings=cluster.block_ratings,
            v_bytes_predicted=predicted_v_bytes(cluster.plan, [len(r) for r in cluster.item_rows], cluster.layout,
                                                itemsize, cluster.evaluate)[:epochs],
            v_bytes_measured=cluster.v_measured[:epochs],
            u_bytes_moved=cluster.moved["u"], other_bytes_moved=cluster.moved["other"],
            setup_bytes=cluster.setup_bytes, result_bytes=cluster.result_bytes,
            setup_seconds=cluster.setup_seconds, epoch_seconds=list(np.diff(ends)),
            wall_seconds=ends[-1] - ends[0], compute_seconds=sum(record["compute"] for record in self.records),
            worker_threads=cluster.total_threads(), restarts=self.attempt, transfer_log_complete=cluster.log_complete)


class _Cluster:
    """One attempt at a distributed fit on a fixed set of workers: the shards and the task graph."""

    def __init__(self, client: Client, inputs: Inputs, settings: Mapping[str, Any], workers: list[str],
                 evaluate: bool, keep_seen: bool) -> None:
        self.client, self.inputs, self.settings, self.workers = client, inputs, settings, workers
        # With the ratings on the driver, recommend() reads the seen items there.
        self.evaluate, self.keep_seen = evaluate, keep_seen and inputs.local is None
        self.log_complete = True
        self.B = settings["blocks"]
        self.plan = Plan(self.B, len(workers), settings["seed"], settings["epochs"])
        self.layout = StateLayout(settings["factors"], settings["biases"], settings["solver"] == "adagrad")
        self.token = uuid.uuid4().hex[:12]
        self.seen_logs: set[tuple[Any, ...]] = set()
        self.moved: dict[str, int] = {"v": 0, "u": 0, "other": 0}
        self.v_measured = [0] * settings["epochs"]
        self.last: list[Any] = [None] * len(workers)
        # The end state of the epoch submitted last, which the next one continues from.
        self._last_u: list[Any] = []
        self._last_v: list[Any] = []
        self.setup_seconds = 0.0
        self.result_bytes = 0

    def key(self, kind: str, *parts: int) -> tuple[Any, ...]:
        return (f"latentmf-{kind}-{self.token}", *parts)

    def submit(self, fn: Callable[..., Any], *args: Any, key: tuple[Any, ...], worker: int) -> Future:
        return self.client.submit(fn, *args, key=key, workers=[self.workers[worker]], allow_other_workers=False,
                                  pure=False)

    def wait(self, futures: Any) -> Any:
        """client.gather that notices a worker of this fit leaving (instead of waiting forever for
        tasks pinned to it)."""
        futures_list = futures if isinstance(futures, list) else [futures]
        while True:
            try:
                distributed.wait(futures_list, timeout=POLL_SECONDS)
            except (TimeoutError, distributed.TimeoutError):
                self.check_workers()
                continue
            except Exception:
                self.check_workers()
                raise
            self.check_workers()
            try:
                return self.client.gather(futures)
            except Exception as error:
                if type(error).__name__ in ("KilledWorker", "FutureCancelledError", "CancelledError"):
                    # A result was lost with its worker (the scheduler may not list it as gone yet).
                    raise _WorkerLost(f"a worker left the cluster during training ({error})") from error
                raise

    def check_workers(self) -> None:
        present = set(self.client.scheduler_info(**all_workers(self.client))["workers"])
        lost = [w for w in self.workers if w not in present]
        if lost:
            raise _WorkerLost(f"a worker left the cluster during training ({lost[0]})")

    def setup(self, native: Any) -> None:
        """The shards of the ratings on their owners, and the initial states of `native`'s groups."""
        client, settings, B, inputs = self.client, self.settings, self.B, self.inputs
        isa = str(_core.build_info()["isa"])
        try:
            client.run(tasks.use_isa, isa, workers=self.workers)
        except ValueError as error:
            raise ValueError(f"a worker cannot run the driver's instruction-set level {isa!r}, which the result "
                             f"must be computed with: {error}. Select a level every machine supports on the "
                             "driver (latentmf.select_isa or LATENTMF_ISA) before fitting") from error
        self.user_groups, _ = _core.grid_groups(inputs.n_users, B, settings["seed"], "users")
        self.item_groups, _ = _core.grid_groups(inputs.n_items, B, settings["seed"], "items")
        self.user_rows = [np.flatnonzero(self.user_groups == p) for p in range(B)]
        self.item_rows = [np.flatnonzero(self.item_groups == q) for q in range(B)]
        setup_bytes = inputs.setup_bytes
        # Pieces of ratings per user group, on the group's owner.
        if inputs.local is not None:
            data = inputs.local
            pieces = tasks.split_partition((data.users, data.items, data.values), self.user_groups, B)
            piece_futures = []
            for p in range(B):
                owner = self.workers[self.plan.owner[p]]
                piece_futures.append([client.scatter(pieces[p], workers=[owner], hash=False)])
                setup_bytes += sum(a.nbytes for a in pieces[p])
        else:
            groups = client.scatter(self.user_groups, broadcast=True, hash=False)
            splits = [client.submit(tasks.split_partition, part, groups, B, pure=False) for part in inputs.partitions]
            # Each piece is picked where its partition was split, so only the piece moves to its owner.
            piece_futures = [[client.submit(tasks.pick, split, p, pure=False) for split in splits] for p in range(B)]
        threads = as_threads(settings["threads"])
        shard_futures = [self.submit(tasks.build_shard, piece_futures[p], inputs.n_users, inputs.n_items, B,
                                     settings["seed"], p, settings["dtype"], threads, self.keep_seen,
                                     key=self.key("shard-info", p), worker=self.plan.owner[p]) for p in range(B)]
        self.shards = [self.submit(tasks.pick, f, 0, key=self.key("shard", p), worker=self.plan.owner[p])
                       for p, f in enumerate(shard_futures)]
        infos = self.wait([self.submit(tasks.pick, f, 1, key=self.key("info", p), worker=self.plan.owner[p])
                           for p, f in enumerate(shard_futures)])
        del shard_futures, piece_futures
        self.block_ratings = np.array([info["block_sizes"] for info in infos])
        self.user_counts = np.zeros(inputs.n_users, dtype=np.int64)
        self.item_counts = np.zeros(inputs.n_items, dtype=np.int64)
        for p, info in enumerate(infos):
            self.user_counts[self.user_rows[p]] = info["user_counts"]
            self.item_counts += info["item_counts"]
        self.seen = [info["seen"] for info in infos] if self.keep_seen else None
        self.result_bytes = sum(a.nbytes for pair in (self.seen or []) for a in pair)
        self.task_settings = tasks.TaskSettings(self.layout, settings["regularization"],
                                                native.global_mean if settings["biases"] else 0.0, threads,
                                                settings["exact_loss"])
        self.initial, setup_bytes = self._scatter_states(native, setup_bytes)
        self.setup_bytes = setup_bytes
        self.read_transfer_logs()  # set-up transfers are not counted as training moves

    def _scatter_states(self, native: Any, setup_bytes: int) -> tuple[dict[str, Any], int]:
        """The initial user-group states on their owners and item-group states on their first holders."""
        layout, client = self.layout, self.client
        biases = self.settings["biases"]
        ones_u = np.ones((self.inputs.n_users, 2), dtype=native.U.dtype) if layout.adagrad else None
        ones_v = np.ones((self.inputs.n_items, 2), dtype=native.V.dtype) if layout.adagrad else None
        u_states: list[Any] = []
        for w in range(len(self.workers)):
            states = [layout.pack(native.U, native.user_bias if biases else None, ones_u, self.user_rows[p])
                      for p in self.plan.groups[w]]
            setup_bytes += sum(s.nbytes for s in states)
            u_states.append(client.scatter(states, workers=[self.workers[w]], hash=False))
        v_states: list[Any] = []
        for q in range(self.B):
            state = layout.pack(native.V, native.item_bias if biases else None, ones_v, self.item_rows[q])
            setup_bytes += state.nbytes
            v_states.append(client.scatter(state, workers=[self.workers[self.plan.holder(q, 0, 0)]], hash=False)
                            if self.settings["epochs"] else state)
        return {"u": u_states, "v": v_states}, setup_bytes

    def submit_epoch(self, t: int, learning_rate: float) -> dict[str, Any]:
        """The tasks of epoch t (and its evaluation): futures of its statistics and end state."""
        plan, B = self.plan, self.B
        warm_up = self.layout.adagrad and t == 0
        v_states = list(self.initial["v"]) if t == 0 else list(self._last_v)
        u_states = list(self.initial["u"]) if t == 0 else list(self._last_u)
        for s in range(B):
            new_v: list[Any] = [None] * B
            for w, groups in enumerate(plan.groups):
                items = [plan.item_group(p, t, s) for p in groups]
                # The first task of an epoch starts from the user states alone (no statistics).
                previous = u_states[w] if s == 0 else self.last[w]
                result = self.submit(tasks.sgd_task, self.shards_of(w), previous, [v_states[q] for q in items],
                                     items, learning_rate, warm_up, self.task_settings,
                                     key=self.key("sgd", t, s, w), worker=w)
                self.last[w] = result
                for i, q in enumerate(items):
                    new_v[q] = self.submit(tasks.pick, result, 1, i, key=self.key("v", t, s, q), worker=w)
            v_states = new_v
        stats = []
        for w in range(len(self.workers)):
            stats.append(self.submit(tasks.pick, self.last[w], 2, key=self.key("stats", t, w), worker=w))
            u_states[w] = self.submit(tasks.pick, self.last[w], 0, key=self.key("u", t, w), worker=w)
        evaluation = []
        if self.evaluate:
            for w in range(len(self.workers)):
                own = [q for q in range(B) if plan.holder(q, t, B - 1) == w]
                evaluation.append(self.submit(tasks.evaluate_task, self.shards_of(w), u_states[w], list(v_states),
                                              own, self.task_settings, key=self.key("eval", t, w), worker=w))
        self._last_u, self._last_v = u_states, v_states
        return {"stats": stats, "evaluation": evaluation, "u": list(u_states), "v": list(v_states)}

    def shards_of(self, w: int) -> list[Future]:
        return [self.shards[p] for p in self.plan.groups[w]]

    def errors_at_the_end(self, evaluation: list[dict[str, Any]]) -> float:
        """The squared errors of an epoch's end state, added as grid_objective adds them."""
        B, plan = self.B, self.plan
        block_errors = [0.0] * (B * B)
        for w, result in enumerate(evaluation):
            for i, p in enumerate(plan.groups[w]):
                block_errors[p * B:(p + 1) * B] = result["errors"][i * B:(i + 1) * B]
        squared_errors = 0.0
        for error in block_errors:
            squared_errors += error
        return squared_errors

    def penalty(self, evaluation: list[dict[str, Any]]) -> float:
        """The penalty of an epoch's end state, added as the local objective adds it."""
        plan = self.plan
        dtype = np.dtype(self.settings["dtype"])
        biases = self.settings["biases"]
        user_norms = np.zeros(self.inputs.n_users, dtype)
        item_norms = np.zeros(self.inputs.n_items, dtype)
        user_bias = np.zeros(self.inputs.n_users, dtype) if biases else None
        item_bias = np.zeros(self.inputs.n_items, dtype) if biases else None
        for w, result in enumerate(evaluation):
            for i, p in enumerate(plan.groups[w]):
                norms, bias = result["users"][i]
                user_norms[self.user_rows[p]] = norms
                if user_bias is not None:
                    user_bias[self.user_rows[p]] = bias
            for q, (norms, bias) in result["items"].items():
                item_norms[self.item_rows[q]] = norms
                if item_bias is not None:
                    item_bias[self.item_rows[q]] = bias
        threads = as_threads(self.settings["threads"])
        return (_core.penalty_of_norms(user_norms, user_bias, self.user_counts, threads)
                + _core.penalty_of_norms(item_norms, item_bias, self.item_counts, threads))

    def read_transfer_logs(self) -> None:
        """Adds up, from the workers' logs, the bytes of this fit's keys sent between workers."""
        prefix = f"-{self.token}"
        logs = self.client.run(tasks.transfer_log, prefix, workers=self.workers)
        for worker, (entries, full) in logs.items():
            # A full log may have dropped entries since the last read (distributed.admin.low-level-log-length).
            self.log_complete = self.log_complete and not full
            for entry in entries:
                identity = (worker, entry["start"], entry["who"], tuple(sorted(map(str, entry["keys"]))))
                if identity in self.seen_logs:
                    continue
                self.seen_logs.add(identity)
                for key, nbytes in entry["keys"]:
                    kind = key[0].split("-")[1]
                    if kind == "v":
                        self.moved["v"] += nbytes
                        self.v_measured[key[1]] += nbytes
                    elif kind in ("u", "sgd"):
                        self.moved["u"] += nbytes
                    else:
                        self.moved["other"] += nbytes

    def total_threads(self) -> int:
        """Threads of the fit's workers (the model's threads per worker when it sets them)."""
        if self.settings["threads"]:
            return self.settings["threads"] * len(self.workers)
        info = self.client.scheduler_info(**all_workers(self.client))["workers"]
        return sum(int(info.get(w, {}).get("nthreads", 1)) for w in self.workers)

    def release(self) -> None:
        for name in ("shards", "last", "_last_u", "_last_v"):
            setattr(self, name, [])
        self.initial = {"u": [], "v": []}
