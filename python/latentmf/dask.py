"""Stratified SGD on a Dask cluster that reproduces local training bit for bit.

`fit(model, data, client)` trains a `MatrixFactorization` on the workers of a
`distributed.Client` over the same B x B block grid as local training (DESIGN.md):

- worker w owns the user groups p with ``p * W // B == w``: their ratings (as a grid shard with
  local indices) and their rows of U (with the biases and AdaGrad accumulators), which never move;
- in sub-epoch s of epoch t, the worker runs the blocks (p, (p + shift_s) mod B) of its groups in
  one native call on all its threads; the item groups q = p + shift_s come from the tasks that
  last updated them, so the rows of V move from worker to worker, one group at a time;
- the schedule is a graph of tasks, each depending only on the tasks that produced its inputs
  (no barrier per sub-epoch); every task is pinned to the worker that owns its user groups.

Each block runs the same native `sgd_block` on the same ratings in the same order, with U and V
rows that hold the same bits, so U, V and the biases equal those of `model.fit` on the same data
(with the same hyper-parameters, seed and B) exactly, for any number of workers from 1 to B. The
per-epoch history (loss, train RMSE) is computed from per-block sums added in the local order and
equals local training's too.

Importing this module imports dask and distributed: `import latentmf` never does.
"""

from __future__ import annotations

import math
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

try:
    import dask
    import distributed
    from distributed import Client, Future
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("latentmf.dask needs dask and distributed: pip install 'latentmf[dask]'") from error

from . import _core
from .data import Ratings, _index_array, _value_array
from .idmap import IdMap, as_id_array
from .model import DEFAULT_LEARNING_RATE, MatrixFactorization, _initialize, _new_native

__all__ = ["DaskFitReport", "WorkerLostError", "fit"]

#: Seconds between checks that the workers of a fit are still there while it waits for results.
POLL_SECONDS = 0.5


class WorkerLostError(RuntimeError):
    """A worker of a distributed fit left, and the fit could not be completed with the same result."""


@dataclass
class DaskFitReport:
    """What one distributed fit did (`model.dask_report_`).

    V bytes are the bytes of item-group states (rows of V, with item biases and AdaGrad
    accumulators when used) that moved between workers, by the epoch that produced them:
    `v_bytes_predicted` from the schedule, `v_bytes_measured` from the workers' transfer logs.
    `u_bytes_moved` and `other_bytes_moved` count transfers of user-group states and of ratings
    (and anything else of the fit) between workers after set-up: both must be 0.
    """

    blocks: int
    workers: list[str]
    user_groups: dict[str, list[int]]
    n_ratings: int
    block_ratings: np.ndarray
    v_bytes_predicted: list[int] = field(default_factory=list)
    v_bytes_measured: list[int] = field(default_factory=list)
    u_bytes_moved: int = 0
    other_bytes_moved: int = 0
    setup_bytes: int = 0
    result_bytes: int = 0
    setup_seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    compute_seconds: float = 0.0
    worker_threads: int = 0
    restarts: int = 0
    #: False when a worker's transfer log was full at a read: v_bytes_measured may then miss some.
    transfer_log_complete: bool = True

    @property
    def ratings_per_block(self) -> tuple[int, float, int]:
        """(min, mean, max) ratings of the B x B blocks."""
        b = self.block_ratings
        return int(b.min()), float(b.mean()), int(b.max())

    @property
    def utilization(self) -> float:
        """Compute seconds (in the training tasks) over training wall seconds times the workers' threads."""
        capacity = self.wall_seconds * max(self.worker_threads, 1)
        return self.compute_seconds / capacity if capacity > 0 else math.nan

    def __str__(self) -> str:
        low, mean, high = self.ratings_per_block
        epochs = len(self.epoch_seconds)
        per_epoch = self.wall_seconds / epochs if epochs else math.nan
        predicted = np.mean(self.v_bytes_predicted) if self.v_bytes_predicted else 0.0
        measured = np.mean(self.v_bytes_measured) if self.v_bytes_measured else 0.0
        return "\n".join([
            f"B = {self.blocks}, {len(self.workers)} workers ({self.worker_threads} threads), "
            f"{self.n_ratings} ratings",
            f"ratings per block: min {low}, mean {mean:.1f}, max {high}",
            f"V bytes moved per epoch: predicted {predicted:,.0f}, measured {measured:,.0f}",
            f"U bytes moved: {self.u_bytes_moved}, other bytes moved after set-up: {self.other_bytes_moved}",
            f"set-up {self.setup_seconds:.3f} s, {self.setup_bytes:,} bytes; result {self.result_bytes:,} bytes",
            f"training wall {self.wall_seconds:.3f} s ({per_epoch:.3f} s per epoch), "
            f"compute {self.compute_seconds:.3f} s (utilization {self.utilization:.0%} of the workers' threads)",
        ])


# ---------------------------------------------------------------------------------------------
# The schedule (no dask): who owns which group, and where the item groups go.


class _Plan:
    """Owners and moves of the block grid with B blocks on W workers."""

    def __init__(self, blocks: int, n_workers: int, seed: int, epochs: int) -> None:
        self.blocks, self.n_workers, self.seed, self.epochs = blocks, n_workers, seed, epochs
        # Contiguous ranges of user groups: a shift that changes by one then moves few item groups.
        self.owner = [p * n_workers // blocks for p in range(blocks)]
        self.groups = [[p for p in range(blocks) if self.owner[p] == w] for w in range(n_workers)]
        self._shifts = [list(_core.sub_epoch_shifts(blocks, seed, t)) for t in range(epochs)]

    def shift(self, epoch: int, sub_epoch: int) -> int:
        return self._shifts[epoch][sub_epoch]

    def item_group(self, p: int, epoch: int, sub_epoch: int) -> int:
        return (p + self.shift(epoch, sub_epoch)) % self.blocks

    def holder(self, q: int, epoch: int, sub_epoch: int) -> int:
        """The worker that updates item group q in that sub-epoch."""
        return self.owner[(q - self.shift(epoch, sub_epoch)) % self.blocks]

    def consumers(self, q: int, epoch: int, sub_epoch: int, evaluate: bool) -> set[int]:
        """The workers that read item group q's state made in (epoch, sub_epoch)."""
        B = self.blocks
        if sub_epoch + 1 < B:
            return {self.holder(q, epoch, sub_epoch + 1)}
        readers = set(range(self.n_workers)) if evaluate else set()
        if epoch + 1 < self.epochs:
            readers.add(self.holder(q, epoch + 1, 0))
        return readers

    def moved_groups(self, epoch: int, evaluate: bool) -> list[tuple[int, int]]:
        """(item group, copies sent to other workers) for the states made in `epoch`."""
        moves = []
        for s in range(self.blocks):
            for q in range(self.blocks):
                copies = len(self.consumers(q, epoch, s, evaluate) - {self.holder(q, epoch, s)})
                if copies:
                    moves.append((q, copies))
        return moves


def _state_length(rows: int, factors: int, biases: bool, adagrad: bool) -> int:
    return rows * (factors + int(biases) + 2 * int(adagrad))


def predicted_v_bytes(plan: _Plan, item_group_sizes: Sequence[int], factors: int, biases: bool, adagrad: bool,
                      itemsize: int, evaluate: bool) -> list[int]:
    """Bytes of item-group states sent between workers, per epoch, as the schedule says."""
    return [sum(copies * _state_length(int(item_group_sizes[q]), factors, biases, adagrad) * itemsize
                for q, copies in plan.moved_groups(t, evaluate)) for t in range(plan.epochs)]


# ---------------------------------------------------------------------------------------------
# Work done on the workers. Every task is a pure function of its inputs (it copies what it
# updates), so Dask may run it again and get the same bits.


class _Shard:
    """The ratings of one user group as a native grid shard (local indices), which stays on the
    worker that built it. It is not picklable: it must never move."""

    def __init__(self, grid: Any, n_ratings: int, itemsize: int) -> None:
        self.grid = grid
        self.n_ratings = n_ratings
        self._bytes = n_ratings * (4 + itemsize) + n_ratings * 12 // 4

    def __sizeof__(self) -> int:
        return self._bytes

    def __reduce__(self) -> Any:
        raise TypeError("a latentmf grid shard stays on the worker that built it and cannot be pickled")


def _aligned_copy(array: np.ndarray) -> np.ndarray:
    """A copy of a 1-D array starting on a 64-byte boundary (rows of U and V then straddle as few
    cache lines as in the model's own memory)."""
    buffer = np.empty(array.nbytes + 64, dtype=np.uint8)
    offset = -buffer.ctypes.data % 64
    copy = buffer[offset:offset + array.nbytes].view(array.dtype)
    copy[...] = array
    return copy


def _worker_threads(threads: int) -> int:
    if threads > 0:
        return threads
    try:
        return max(1, int(distributed.get_worker().state.nthreads))
    except ValueError:
        return 0


def _use_isa(isa: str) -> str:
    """Runs the driver's instruction-set level on this worker (the same bits need the same code)."""
    _core.select_isa(isa)
    return str(_core.build_info()["isa"])


def _split_partition(columns: tuple[np.ndarray, np.ndarray, np.ndarray], user_groups: np.ndarray,
                     blocks: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The ratings of one partition split by user group, each piece in the partition's order."""
    users, items, values = columns
    groups = user_groups[users]
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(blocks + 1))
    pieces = []
    for p in range(blocks):
        chosen = order[bounds[p]:bounds[p + 1]]
        pieces.append((users[chosen], items[chosen], values[chosen]))
    return pieces


def _build_shard(pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_users: int, n_items: int, blocks: int,
                 seed: int, user_group: int, dtype: str, threads: int,
                 keep_seen: bool) -> tuple[_Shard, dict[str, Any]]:
    """The shard of one user group from its pieces (in the global order), and what the driver needs
    to know of it: block sizes, rating counts (users of the group, all items), seen items."""
    users = np.concatenate([piece[0] for piece in pieces]) if pieces else np.empty(0, np.int64)
    items = np.concatenate([piece[1] for piece in pieces]) if pieces else np.empty(0, np.int64)
    values = np.concatenate([piece[2] for piece in pieces]) if pieces else np.empty(0, np.float64)
    if users.dtype != items.dtype:
        users, items = users.astype(np.int64), items.astype(np.int64)
    grid = _core.shard_grid(users, items, values, n_users, n_items, blocks, seed, user_group, dtype,
                            _worker_threads(threads))
    info: dict[str, Any] = {
        "block_sizes": grid.block_sizes()[user_group].copy(),
        "user_counts": grid.user_counts()[np.flatnonzero(grid.user_groups() == user_group)],
        "item_counts": grid.item_counts(),
    }
    if keep_seen:
        order = np.lexsort((items, users))
        info["seen"] = (users[order].astype(np.int32), items[order].astype(np.int32))
    return _Shard(grid, len(values), np.dtype(dtype).itemsize), info


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0]


def _second(pair: tuple[Any, Any]) -> Any:
    return pair[1]


def _pick(result: Any, *path: int) -> Any:
    for index in path:
        result = result[index]
    return result


@dataclass(frozen=True)
class _Settings:
    """What every training task needs besides its arrays."""

    factors: int
    regularization: float
    global_mean: float
    biases: bool
    adagrad: bool
    threads: int


_Stats = tuple[list[float], bool, float]


def _sgd_task(shards: list[_Shard], previous: Any, item_states: list[np.ndarray], item_groups: list[int],
              learning_rate: float, warm_up: bool,
              settings: _Settings) -> tuple[list[np.ndarray], list[np.ndarray], list[_Stats]]:
    """One worker's blocks of one sub-epoch, on copies of the states it is given.

    `previous` is the worker's user-group states (a list), or the result of its task of the
    sub-epoch before, whose states it continues from and whose statistics it carries on, so that
    neither needs a task of its own per sub-epoch. Returns (user states, item states,
    [(block errors, all finite, seconds) of each sub-epoch of the epoch so far]).
    """
    start = time.perf_counter()
    if isinstance(previous, tuple):
        user_states, stats = previous[0], list(previous[2])
    else:
        user_states, stats = previous, []
    users = [_aligned_copy(state) for state in user_states]
    items = [_aligned_copy(state) for state in item_states]
    errors = _core.sgd_shards([shard.grid for shard in shards], users, items, list(item_groups), settings.factors,
                              learning_rate, settings.regularization, settings.global_mean, settings.biases,
                              settings.adagrad, warm_up, _worker_threads(settings.threads))
    finite = all(math.isfinite(e) for e in errors)
    if finite and settings.adagrad:
        # AdaGrad's accumulators (each state's last 2 n entries) can overflow before any error does.
        row = settings.factors + int(settings.biases) + 2
        finite = all(np.isfinite(state[len(state) // row * (row - 2):]).all() for state in users + items)
    stats.append((list(errors), finite, time.perf_counter() - start))
    return users, items, stats


def _evaluate_task(shards: list[_Shard], user_states: list[np.ndarray], item_states: list[np.ndarray],
                   own_items: list[int], settings: _Settings) -> dict[str, Any]:
    """The squared errors of every block of this worker's user groups after an epoch, and the
    squared norms (and biases) of its user groups' rows and of the item groups in `own_items`."""
    start = time.perf_counter()
    blocks = len(item_states)
    threads = _worker_threads(settings.threads)
    grids = [shard.grid for shard in shards for _ in range(blocks)]
    users = [state for state in user_states for _ in range(blocks)]
    errors = _core.shard_errors(grids, users, list(item_states) * len(shards), list(range(blocks)) * len(shards),
                                settings.factors, settings.global_mean, settings.biases, settings.adagrad, threads)

    def rows(state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        n = len(state) // (settings.factors + int(settings.biases) + 2 * int(settings.adagrad))
        norms = _core.row_squared_norms(state, n, settings.factors, threads)
        bias = state[n * settings.factors:n * (settings.factors + 1)].copy() if settings.biases else None
        return norms, bias

    return {
        "errors": list(errors),
        "users": [rows(state) for state in user_states],
        "items": {q: rows(item_states[q]) for q in own_items},
        "seconds": time.perf_counter() - start,
    }


# ---------------------------------------------------------------------------------------------
# Inputs: a Ratings (on the driver), a Dask DataFrame (raw ids allowed) or partitioned arrays.


class _Inputs:
    """The ratings as partitions on the cluster (or on the driver), with what the driver must know."""

    def __init__(self) -> None:
        self.local: Ratings | None = None  # the data, when it is on the driver
        self.partitions: list[Future] = []  # futures of (users, items, values)
        self.n_users = self.n_items = self.size = 0
        self.mean = 0.0
        self.user_ids: IdMap | None = None
        self.item_ids: IdMap | None = None
        self.setup_bytes = 0


def _frame_columns(frame: Any, user: str, item: str, rating: str, user_ids: IdMap | None,
                   item_ids: IdMap | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, values) of one pandas partition, ids mapped to indices when maps are given."""
    columns = []
    for name, ids in ((user, user_ids), (item, item_ids)):
        column = as_id_array(frame[name].to_numpy(), name)
        columns.append(ids.to_index(column, name) if ids is not None else _index_array(column, name))
    values = _value_array(frame[rating].to_numpy(), rating)
    return columns[0], columns[1], values


def _array_columns(users: np.ndarray, items: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    return _index_array(users, "users"), _index_array(items, "items"), _value_array(values, "values")


def _column_summary(columns: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, Any]:
    users, items, values = columns
    return {
        "size": len(values),
        "min_user": int(users.min()) if len(users) else 0, "max_user": int(users.max()) if len(users) else -1,
        "min_item": int(items.min()) if len(items) else 0, "max_item": int(items.max()) if len(items) else -1,
        "values": values,
    }


def _distinct(frame: Any, column: str) -> np.ndarray:
    """The distinct ids of one column of one partition, sorted (checked as `Ratings.from_ids` checks them)."""
    return np.unique(as_id_array(frame[column].to_numpy(), column))


def _id_map(distinct: list[np.ndarray]) -> IdMap | None:
    """The map `IdMap.encode` would make of the whole column, from each partition's distinct ids:
    None when the ids are integers that are already 0..n-1, else the sorted distinct ids."""
    ids = np.unique(np.concatenate(distinct))
    dense = ids.dtype.kind == "i" and ids.size > 0 and ids[0] == 0 and ids[-1] == ids.size - 1
    return None if dense else IdMap(ids)


def _inputs(data: Any, client: Client, user: str, item: str, rating: str) -> _Inputs:
    inputs = _Inputs()
    if isinstance(data, tuple) and len(data) == 3 and all(isinstance(x, np.ndarray) for x in data):
        data = Ratings(*data)
    if isinstance(data, Ratings):
        inputs.local = data
        inputs.n_users, inputs.n_items, inputs.size, inputs.mean = data.n_users, data.n_items, len(data), data.mean
        return inputs
    if hasattr(data, "to_delayed") and hasattr(data, "columns"):
        missing = [name for name in (user, item, rating) if name not in data.columns]
        if missing:
            raise ValueError(f"the DataFrame has no column {missing[0]!r} (columns: {list(data.columns)}); "
                             "name the columns with user=, item=, rating=")
        frames = client.compute(data[[user, item, rating]].to_delayed())
        maps: dict[str, Any] = {}
        for name in (user, item):
            # Ids mapped as Ratings.from_dataframe maps them (IdMap.encode), from the distinct ids.
            distinct = client.gather([client.submit(_distinct, f, name, pure=False) for f in frames])
            inputs.setup_bytes += sum(d.nbytes for d in distinct)
            id_map = _id_map(distinct)
            setattr(inputs, "user_ids" if name == user else "item_ids", id_map)
            if id_map is not None:
                maps[name] = client.scatter(id_map, broadcast=True, hash=False)
                inputs.setup_bytes += id_map.ids.nbytes * len(client.scheduler_info(**_all_workers(client))["workers"])
        inputs.partitions = [client.submit(_frame_columns, f, user, item, rating, maps.get(user), maps.get(item),
                                           pure=False) for f in frames]
    elif isinstance(data, tuple) and len(data) == 3 and all(hasattr(x, "to_delayed") for x in data):
        users, items, values = data
        if not (users.chunks == items.chunks == values.chunks) or users.ndim != 1:
            raise ValueError("users, items and values must be 1-dimensional dask arrays with the same chunks")
        inputs.partitions = client.compute([dask.delayed(_array_columns)(u, i, v) for u, i, v in
                                            zip(users.to_delayed().ravel(), items.to_delayed().ravel(),
                                                values.to_delayed().ravel())])
    else:
        raise TypeError("data must be a latentmf.Ratings, a (users, items, values) tuple of NumPy or Dask arrays, "
                        f"or a Dask DataFrame, got {type(data).__name__}")
    if not inputs.partitions:
        raise ValueError("the ratings are empty: at least one rating is needed")
    summaries = client.gather(client.map(_column_summary, inputs.partitions, pure=False))
    inputs.size = sum(s["size"] for s in summaries)
    if inputs.size == 0:
        raise ValueError("the ratings are empty: at least one rating is needed")
    values = np.concatenate([s["values"] for s in summaries if s["size"]])
    inputs.setup_bytes += values.nbytes
    # The mean as Ratings.mean computes it, over the ratings in the partitions' order.
    inputs.mean = float(np.mean(values, dtype=np.float64))
    del values
    for side, id_map in (("user", inputs.user_ids), ("item", inputs.item_ids)):
        low = min(s[f"min_{side}"] for s in summaries if s["size"])
        if low < 0:
            raise ValueError(f"{side} indices must be >= 0, got {low}")
        count = len(id_map) if id_map is not None else max(s[f"max_{side}"] for s in summaries) + 1
        setattr(inputs, f"n_{side}s", int(count))
    return inputs


# ---------------------------------------------------------------------------------------------
# The driver.


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
    available = sorted(client.scheduler_info(**_all_workers(client))["workers"])
    if not available:
        raise ValueError("the Dask cluster has no workers")
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


def _all_workers(client: Client) -> dict[str, int]:
    """scheduler_info's argument for listing every worker (newer versions list 5 by default)."""
    import inspect

    return {"n_workers": -1} if "n_workers" in inspect.signature(client.scheduler_info).parameters else {}


class _WorkerLost(Exception):
    pass


class _Training:
    """One attempt at a distributed fit on a fixed set of workers."""

    def __init__(self, client: Client, inputs: _Inputs, settings: dict[str, Any], workers: list[str],
                 evaluate: bool, keep_seen: bool, after_epoch: Callable[[int], None] | None,
                 verbose: bool) -> None:
        self.client, self.inputs, self.settings, self.workers = client, inputs, settings, workers
        # With the ratings on the driver, recommend() reads the seen items there.
        keep_seen = keep_seen and inputs.local is None
        self.evaluate, self.keep_seen, self.after_epoch, self.verbose = evaluate, keep_seen, after_epoch, verbose
        self.log_complete = True
        self.B = settings["blocks"]
        self.plan = _Plan(self.B, len(workers), settings["seed"], settings["epochs"])
        self.token = uuid.uuid4().hex[:12]
        self.held: list[Future] = []
        self.seen_logs: set[tuple[Any, ...]] = set()
        self.moved: dict[str, int] = {"v": 0, "u": 0, "other": 0}
        self.v_measured = [0] * settings["epochs"]
        self.last: list[Any] = [None] * len(workers)
        self.setup_seconds = 0.0

    # -- helpers ---------------------------------------------------------------------------------

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
        present = set(self.client.scheduler_info(**_all_workers(self.client))["workers"])
        lost = [w for w in self.workers if w not in present]
        if lost:
            raise _WorkerLost(f"a worker left the cluster during training ({lost[0]})")

    # -- set-up ------------------------------------------------------------------------------------

    def setup(self) -> None:
        client, settings, B = self.client, self.settings, self.B
        inputs = self.inputs
        dtype = settings["dtype"]
        isa = str(_core.build_info()["isa"])
        try:
            client.run(_use_isa, isa, workers=self.workers)
        except ValueError as error:
            raise ValueError(f"a worker cannot run the driver's instruction-set level {isa!r}, which the result "
                             f"must be computed with: {error}. Select a level every machine supports on the "
                             "driver (latentmf._core.select_isa or LATENTMF_ISA) before fitting") from error
        self.user_groups, self.user_members = _core.grid_groups(inputs.n_users, B, settings["seed"], "users")
        self.item_groups, self.item_members = _core.grid_groups(inputs.n_items, B, settings["seed"], "items")
        self.user_rows = [np.flatnonzero(self.user_groups == p) for p in range(B)]
        self.item_rows = [np.flatnonzero(self.item_groups == q) for q in range(B)]
        setup_bytes = inputs.setup_bytes
        # Pieces of ratings per user group, on the group's owner.
        if inputs.local is not None:
            data = inputs.local
            pieces = _split_partition((data.users, data.items, data.values), self.user_groups, B)
            piece_futures = []
            for p in range(B):
                owner = self.workers[self.plan.owner[p]]
                piece_futures.append([client.scatter(pieces[p], workers=[owner], hash=False)])
                setup_bytes += sum(a.nbytes for a in pieces[p])
        else:
            groups = client.scatter(self.user_groups, broadcast=True, hash=False)
            splits = [client.submit(_split_partition, part, groups, B, pure=False) for part in inputs.partitions]
            # Each piece is picked where its partition was split, so only the piece moves to its owner.
            piece_futures = [[client.submit(_pick, split, p, pure=False) for split in splits] for p in range(B)]
        threads = settings["threads"]
        shard_futures = [self.submit(_build_shard, piece_futures[p], inputs.n_users, inputs.n_items, B,
                                     settings["seed"], p, dtype, threads, self.keep_seen,
                                     key=self.key("shard-info", p), worker=self.plan.owner[p]) for p in range(B)]
        self.shards = [self.submit(_first, f, key=self.key("shard", p), worker=self.plan.owner[p])
                       for p, f in enumerate(shard_futures)]
        infos = self.wait([self.submit(_second, f, key=self.key("info", p), worker=self.plan.owner[p])
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
        # The initial state, drawn on the driver exactly as MatrixFactorization.fit draws it.
        native = _new_native(dtype, inputs.n_users, inputs.n_items, settings["factors"])
        _initialize(native, inputs, settings)  # type: ignore[arg-type]  # it reads only .mean
        self.native = native
        self.global_mean = native.global_mean if settings["biases"] else 0.0
        self.task_settings = _Settings(settings["factors"], settings["regularization"], self.global_mean,
                                       settings["biases"], settings["solver"] == "adagrad", threads)
        self.u_states: list[Any] = []
        for w in range(len(self.workers)):
            states = [self.pack(native.U, None if not settings["biases"] else native.user_bias, self.user_rows[p])
                      for p in self.plan.groups[w]]
            setup_bytes += sum(s.nbytes for s in states)
            self.u_states.append(client.scatter(states, workers=[self.workers[w]], hash=False))
        self.v_states: list[Any] = [None] * B
        for q in range(B):
            state = self.pack(native.V, None if not settings["biases"] else native.item_bias, self.item_rows[q])
            setup_bytes += state.nbytes
            self.v_states[q] = client.scatter(state, workers=[self.workers[self.plan.holder(q, 0, 0)]], hash=False) \
                if settings["epochs"] else state
        self.setup_bytes = setup_bytes
        self.read_transfer_logs()  # set-up transfers are not counted as training moves

    def pack(self, factors: np.ndarray, bias: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
        parts = [factors[rows].ravel()]
        if bias is not None:
            parts.append(bias[rows])
        if self.settings["solver"] == "adagrad":
            parts.append(np.ones(2 * len(rows), dtype=factors.dtype))
        return _aligned_copy(np.concatenate(parts).astype(factors.dtype, copy=False))

    def unpack(self, state: np.ndarray, rows: np.ndarray, factors: np.ndarray, bias: np.ndarray | None,
               accumulators: np.ndarray) -> None:
        n, F = len(rows), self.settings["factors"]
        factors[rows] = state[:n * F].reshape(n, F)
        offset = n * F
        if bias is not None:
            bias[rows] = state[offset:offset + n]
            offset += n
        if self.settings["solver"] == "adagrad":
            accumulators[rows] = state[offset:offset + 2 * n].reshape(n, 2)

    # -- training ----------------------------------------------------------------------------------

    def submit_epoch(self, t: int, learning_rate: float) -> dict[str, Any]:
        """The tasks of epoch t (and its evaluation): futures of its statistics and end state."""
        plan, B = self.plan, self.B
        warm_up = self.settings["solver"] == "adagrad" and t == 0
        stats = []
        for s in range(B):
            new_v: list[Any] = [None] * B
            for w, groups in enumerate(plan.groups):
                items = [plan.item_group(p, t, s) for p in groups]
                # The first task of an epoch starts from the user states alone (no statistics).
                previous = self.u_states[w] if s == 0 else self.last[w]
                result = self.submit(_sgd_task, self.shards_of(w), previous, [self.v_states[q] for q in items],
                                     items, learning_rate, warm_up, self.task_settings,
                                     key=self.key("sgd", t, s, w), worker=w)
                self.last[w] = result
                for i, q in enumerate(items):
                    new_v[q] = self.submit(_pick, result, 1, i, key=self.key("v", t, s, q), worker=w)
            self.v_states = new_v
        for w in range(len(self.workers)):
            stats.append(self.submit(_pick, self.last[w], 2, key=self.key("stats", t, w), worker=w))
            self.u_states[w] = self.submit(_pick, self.last[w], 0, key=self.key("u", t, w), worker=w)
        evaluation = []
        if self.evaluate:
            for w in range(len(self.workers)):
                own = [q for q in range(B) if plan.holder(q, t, B - 1) == w]
                evaluation.append(self.submit(_evaluate_task, self.shards_of(w), self.u_states[w], list(self.v_states),
                                              own, self.task_settings, key=self.key("eval", t, w), worker=w))
        return {"stats": stats, "evaluation": evaluation, "u": list(self.u_states), "v": list(self.v_states)}

    def shards_of(self, w: int) -> list[Future]:
        return [self.shards[p] for p in self.plan.groups[w]]

    def run(self, learning_rate: float) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """All epochs; returns the per-epoch records and the last good end state."""
        epochs = self.settings["epochs"]
        records: list[dict[str, Any]] = []
        steps = [learning_rate / (1.0 + self.settings["decay"] * t) for t in range(epochs)]
        pending: dict[int, dict[str, Any]] = {}
        ahead = 2  # epochs submitted ahead of the one being waited for: no barrier between epochs
        for t in range(min(ahead, epochs)):
            pending[t] = self.submit_epoch(t, steps[t])
        good: dict[str, Any] | None = None
        last = time.perf_counter()
        for t in range(epochs):
            epoch = pending.pop(t)
            # (block errors, finite, seconds) of every task of the epoch
            stats = [entry for per_worker in self.wait(epoch["stats"]) for entry in per_worker]
            evaluation = self.wait(epoch["evaluation"]) if epoch["evaluation"] else []
            now = time.perf_counter()
            record = {"stats": stats, "evaluation": evaluation, "seconds": now - last, "step": steps[t],
                      "loss": math.nan, "train_rmse": math.nan}
            last = now
            self.read_transfer_logs()
            record["diverged"] = not all(finite for _, finite, _ in stats)
            if evaluation and not record["diverged"]:
                squared_errors, penalty = _objective(self, evaluation)
                record["loss"] = 0.5 * (squared_errors + self.settings["regularization"] * penalty)
                record["train_rmse"] = math.sqrt(squared_errors / self.inputs.size)
                record["diverged"] = not math.isfinite(record["loss"])
            records.append(record)
            if record["diverged"]:
                return records, good
            if self.verbose:
                print(f"epoch {t + 1:3d}/{epochs}  loss {record['loss']:.6g}  train RMSE {record['train_rmse']:.4f}  "
                      f"{record['seconds']:.2f}s", file=sys.stdout, flush=True)
            good = {"u": epoch["u"], "v": epoch["v"]}
            if t + ahead < epochs:
                pending[t + ahead] = self.submit_epoch(t + ahead, steps[t + ahead])
            if self.after_epoch is not None:
                self.after_epoch(t)
        return records, good

    def read_transfer_logs(self) -> None:
        """Adds up, from the workers' logs, the bytes of this fit's keys sent between workers."""
        prefix = f"-{self.token}"
        logs = self.client.run(_transfer_log, prefix, workers=self.workers)
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

    def release(self) -> None:
        for name in ("shards", "u_states", "v_states", "last"):
            setattr(self, name, [])


def _transfer_log(prefix: str, dask_worker: Any = None) -> tuple[list[dict[str, Any]], bool]:
    """This worker's incoming transfers of keys whose name contains `prefix`, and whether its log
    is full (older entries then fall off)."""
    entries = []
    log = dask_worker.transfer_incoming_log
    for entry in list(log):
        keys = [(key, int(nbytes)) for key, nbytes in entry["keys"].items()
                if isinstance(key, tuple) and prefix in str(key[0])]
        if keys:
            entries.append({"start": entry["start"], "who": entry["who"], "keys": keys})
    return entries, log.maxlen is not None and len(log) >= log.maxlen


def fit(model: MatrixFactorization, data: Any, client: Client | None = None, user: str = "user", item: str = "item",
        rating: str = "rating", *, workers: int | Sequence[str] | None = None, history: bool = True,
        keep_seen: bool = True, restarts: int = 2,
        _after_epoch: Callable[[int], None] | None = None) -> MatrixFactorization:
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

    After the fit, `model.dask_report_` (a DaskFitReport) holds the accounting: B, workers,
    ratings per block, V bytes moved per epoch (predicted and measured), U bytes moved (0), set-up
    and result bytes, wall and compute seconds.
    """
    if not isinstance(model, MatrixFactorization):
        raise TypeError(f"model must be a latentmf.MatrixFactorization, got {type(model).__name__}")
    settings = model._settings()
    if settings["solver"] == "gd":
        raise ValueError("latentmf.dask.fit trains the SGD solvers ('sgd', 'adagrad'), not 'gd'")
    if settings.get("early_stopping") is not None:
        raise ValueError("early_stopping needs validation ratings, which latentmf.dask.fit does not take: set "
                         "early_stopping=None")
    if getattr(model, "warm_start", False) and model._is_fitted():
        raise ValueError("latentmf.dask.fit always starts a fresh fit: set warm_start=False (continuing a fit "
                         "on a cluster is not supported)")
    restarts = int(restarts)
    client = _default_client(client)
    inputs = _inputs(data, client, user, item, rating)
    learning_rate = settings["learning_rate"]
    if learning_rate is None:
        learning_rate = DEFAULT_LEARNING_RATE[settings["solver"]]
    attempt = 0
    while True:
        chosen = _choose_workers(client, workers, settings["blocks"], strict=attempt == 0)
        training = _Training(client, inputs, settings, chosen, history, keep_seen, _after_epoch if attempt == 0
                             else None, bool(model.verbose))
        start = time.perf_counter()
        try:
            training.setup()
            training.setup_seconds = time.perf_counter() - start
            start = time.perf_counter()
            records, good = training.run(learning_rate)
            _finish(model, training, inputs, records, good, time.perf_counter() - start, attempt)
            return model
        except _WorkerLost as lost:
            training.release()
            if attempt >= restarts:
                raise WorkerLostError(f"{lost}; gave up after {attempt} restart(s). Nothing was changed in the "
                                      "model. The training tasks are pure, so fitting again gives the same "
                                      "result.") from None
            attempt += 1
            if inputs.local is None and any(f.status == "error" for f in inputs.partitions):
                raise WorkerLostError(f"{lost}, and the ratings held by that worker cannot be recomputed") from None
            _wait_for_workers(client, 1)


def _wait_for_workers(client: Client, n: int, timeout: float = 30.0) -> None:
    try:
        client.wait_for_workers(n, timeout=timeout)
    except (TimeoutError, distributed.TimeoutError) as error:
        raise WorkerLostError("no worker is left to train on") from error


def _finish(model: MatrixFactorization, training: _Training, inputs: _Inputs, records: list[dict[str, Any]],
            good: dict[str, Any] | None, wall: float, attempt: int) -> None:
    """Brings the state back into an ordinary model, with history and report."""
    settings = training.settings
    native = training.native
    biases = settings["biases"]
    adagrad = settings["solver"] == "adagrad"
    if adagrad:
        native.user_accumulators[...] = 1
        native.item_accumulators[...] = 1
    if good is not None:
        u_lists = training.wait(good["u"])
        v_states = training.wait(good["v"])
        for w, states in enumerate(u_lists):
            for p, state in zip(training.plan.groups[w], states):
                training.unpack(state, training.user_rows[p], native.U, native.user_bias if biases else None,
                                native.user_accumulators)
        for q, state in enumerate(v_states):
            training.unpack(state, training.item_rows[q], native.V, native.item_bias if biases else None,
                            native.item_accumulators)
        training.result_bytes += sum(s.nbytes for states in u_lists for s in states) + \
            sum(s.nbytes for s in v_states)
    history: dict[str, list[float]] = {"epoch": [], "loss": [], "train_rmse": [], "validation_rmse": [], "seconds": []}
    compute = 0.0
    diverged = None
    for t, record in enumerate(records):
        compute += sum(seconds for _, _, seconds in record["stats"])
        compute += sum(e["seconds"] for e in record["evaluation"])
        if record["diverged"]:
            diverged = (t, record["step"])
            break
        history["epoch"].append(t)
        history["loss"].append(record["loss"])
        history["train_rmse"].append(record["train_rmse"])
        history["validation_rmse"].append(math.nan)
        history["seconds"].append(record["seconds"])
    itemsize = np.dtype(settings["dtype"]).itemsize
    report = DaskFitReport(
        blocks=training.B, workers=list(training.workers),
        user_groups={w: training.plan.groups[i] for i, w in enumerate(training.workers)},
        n_ratings=inputs.size, block_ratings=training.block_ratings,
        v_bytes_predicted=predicted_v_bytes(training.plan, [len(r) for r in training.item_rows], settings["factors"],
                                            biases, adagrad, itemsize, training.evaluate)[:len(history["epoch"])],
        v_bytes_measured=training.v_measured[:len(history["epoch"])],
        u_bytes_moved=training.moved["u"], other_bytes_moved=training.moved["other"],
        setup_bytes=training.setup_bytes, result_bytes=training.result_bytes, setup_seconds=training.setup_seconds,
        epoch_seconds=list(history["seconds"]), wall_seconds=wall, compute_seconds=compute,
        worker_threads=_total_threads(training), restarts=attempt,
        transfer_log_complete=training.log_complete,
    )
    # The model's state as a local fit sets it up (id maps, mean rating, ...), then the trained arrays.
    remote = None if inputs.local is not None else _RemoteRatings(inputs)
    model._adopt(native, inputs.local if inputs.local is not None else remote,  # type: ignore[arg-type]
                 settings, DEFAULT_LEARNING_RATE[settings["solver"]])
    if remote is not None:
        model._seen = remote.seen_lists(training.seen)
    model.history_ = history
    fitted: Any = model  # an attribute only a distributed fit sets
    fitted.dask_report_ = report
    training.release()
    if diverged is not None:
        epoch, step = diverged
        raise FloatingPointError(f"training diverged in epoch {epoch}: the loss became non-finite; the model keeps "
                                 f"the last finite epoch. Lower the learning rate (it was {step:g}).")


def _total_threads(training: _Training) -> int:
    """Threads of the fit's workers (the model's threads per worker when it sets them)."""
    if training.settings["threads"]:
        return training.settings["threads"] * len(training.workers)
    info = training.client.scheduler_info(**_all_workers(training.client))["workers"]
    return sum(int(info.get(w, {}).get("nthreads", 1)) for w in training.workers)


def _objective(training: _Training, evaluation: list[dict[str, Any]]) -> tuple[float, float]:
    """(squared_errors, penalty) of the epoch's end state, added as grid_objective adds them."""
    B, plan = training.B, training.plan
    block_errors = [0.0] * (B * B)
    dtype = np.dtype(training.settings["dtype"])
    biases = training.settings["biases"]
    user_norms = np.zeros(training.inputs.n_users, dtype)
    item_norms = np.zeros(training.inputs.n_items, dtype)
    user_bias = np.zeros(training.inputs.n_users, dtype) if biases else None
    item_bias = np.zeros(training.inputs.n_items, dtype) if biases else None
    for w, result in enumerate(evaluation):
        for i, p in enumerate(plan.groups[w]):
            block_errors[p * B:(p + 1) * B] = result["errors"][i * B:(i + 1) * B]
            norms, bias = result["users"][i]
            user_norms[training.user_rows[p]] = norms
            if user_bias is not None:
                user_bias[training.user_rows[p]] = bias
        for q, (norms, bias) in result["items"].items():
            item_norms[training.item_rows[q]] = norms
            if item_bias is not None:
                item_bias[training.item_rows[q]] = bias
    squared_errors = 0.0
    for error in block_errors:
        squared_errors += error
    threads = training.settings["threads"]
    penalty = _core.penalty_of_norms(user_norms, user_bias, training.user_counts, threads) + \
        _core.penalty_of_norms(item_norms, item_bias, training.item_counts, threads)
    return squared_errors, penalty


class _RemoteRatings:
    """What the model keeps of ratings that stay on the cluster: their shape, mean and id maps, and
    the items each user rated (for recommend), but not the ratings themselves."""

    def __init__(self, inputs: _Inputs) -> None:
        self.n_users, self.n_items, self._size, self.mean = inputs.n_users, inputs.n_items, inputs.size, inputs.mean
        self.user_ids, self.item_ids = inputs.user_ids, inputs.item_ids

    def __len__(self) -> int:
        return self._size

    def seen_lists(self, pairs: list[tuple[np.ndarray, np.ndarray]] | None) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, items) of the seen items, from each shard's sorted (user, item) pairs; empty
        lists (recommend then excludes nothing) when they were not kept."""
        if pairs is None:
            return np.zeros(self.n_users + 1, dtype=np.int64), np.empty(0, dtype=np.int32)
        users = np.concatenate([pair[0] for pair in pairs])
        items = np.concatenate([pair[1] for pair in pairs])
        return _core.group_by_row(users, items, self.n_users, self.n_items)

    def _unavailable(self, *args: Any) -> Any:
        raise ValueError("the ratings of a latentmf.dask fit stay on the cluster: pass them to partial_fit, "
                         "or fit again with latentmf.dask.fit")

    _items_by_user = _grid = _index = _unavailable
