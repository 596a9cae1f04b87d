"""The work done on the workers of a distributed fit. Every task is a pure function of its inputs
(it copies what it updates), so Dask may run it again and get the same bits."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import distributed
import numpy as np

from .. import _core
from .plan import StateLayout, aligned_copy


class Shard:
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


@dataclass(frozen=True)
class TaskSettings:
    """What every training task needs besides its arrays."""

    layout: StateLayout
    regularization: float
    global_mean: float
    threads: int
    #: Whether the evaluation after an epoch computes the squared errors of every block (the
    #: objective at the end of the epoch) besides the norms of the rows.
    exact: bool = False


def worker_threads(threads: int) -> int:
    """The threads of a task: the model's count, or the worker's own (0 when not on a worker)."""
    if threads > 0:
        return threads
    try:
        return max(1, int(distributed.get_worker().state.nthreads))
    except ValueError:
        return 0


def use_isa(isa: str) -> str:
    """Runs the driver's instruction-set level on this worker (the same bits need the same code)."""
    _core.select_isa(isa)
    return str(_core.build_info()["isa"])


def split_partition(columns: tuple[np.ndarray, np.ndarray, np.ndarray], user_groups: np.ndarray,
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


def build_shard(pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_users: int, n_items: int, blocks: int,
                seed: int, user_group: int, dtype: str, threads: int,
                keep_seen: bool) -> tuple[Shard, dict[str, Any]]:
    """The shard of one user group from its pieces (in the global order), and what the driver needs
    to know of it: block sizes, rating counts (users of the group, all items), seen items."""
    users = np.concatenate([piece[0] for piece in pieces]) if pieces else np.empty(0, np.int64)
    items = np.concatenate([piece[1] for piece in pieces]) if pieces else np.empty(0, np.int64)
    values = np.concatenate([piece[2] for piece in pieces]) if pieces else np.empty(0, np.float64)
    if users.dtype != items.dtype:
        users, items = users.astype(np.int64), items.astype(np.int64)
    grid = _core.shard_grid(users, items, values, n_users, n_items, blocks, seed, user_group, dtype,
                            worker_threads(threads))
    info: dict[str, Any] = {
        "block_sizes": grid.block_sizes()[user_group].copy(),
        "user_counts": grid.user_counts()[np.flatnonzero(grid.user_groups() == user_group)],
        "item_counts": grid.item_counts(),
    }
    if keep_seen:
        order = np.lexsort((items, users))
        info["seen"] = (users[order].astype(np.int32), items[order].astype(np.int32))
    return Shard(grid, len(values), np.dtype(dtype).itemsize), info


def pick(result: Any, *path: int) -> Any:
    """result[path[0]][path[1]]...: one part of another task's result, as a task of its own."""
    for index in path:
        result = result[index]
    return result


#: (block errors, all finite, seconds) of one sub-epoch's task.
Stats = tuple[list[float], bool, float]


def sgd_task(shards: list[Shard], previous: Any, item_states: list[np.ndarray], item_groups: list[int],
             learning_rate: float, warm_up: bool,
             settings: TaskSettings) -> tuple[list[np.ndarray], list[np.ndarray], list[Stats]]:
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
    users = [aligned_copy(state) for state in user_states]
    items = [aligned_copy(state) for state in item_states]
    layout = settings.layout
    errors = _core.sgd_shards([shard.grid for shard in shards], users, items, list(item_groups), layout.factors,
                              learning_rate, settings.regularization, settings.global_mean, layout.biases,
                              layout.adagrad, warm_up, worker_threads(settings.threads))
    finite = all(math.isfinite(e) for e in errors)
    if finite and layout.adagrad:
        # AdaGrad's accumulators can overflow before any error does.
        finite = all(_finite(layout.accumulators_of(state)) for state in users + items)
    stats.append((list(errors), finite, time.perf_counter() - start))
    return users, items, stats


def _finite(array: np.ndarray | None) -> bool:
    return array is None or bool(np.isfinite(array).all())


def evaluate_task(shards: list[Shard], user_states: list[np.ndarray], item_states: list[np.ndarray],
                  own_items: list[int], settings: TaskSettings) -> dict[str, Any]:
    """The squared norms (and biases) of this worker's user groups' rows and of the item groups in
    `own_items` after an epoch, and with settings.exact the squared errors of every block of its
    user groups."""
    start = time.perf_counter()
    blocks = len(item_states)
    threads = worker_threads(settings.threads)
    layout = settings.layout
    errors: list[float] = []
    if settings.exact:
        grids = [shard.grid for shard in shards for _ in range(blocks)]
        users = [state for state in user_states for _ in range(blocks)]
        errors = _core.shard_errors(grids, users, list(item_states) * len(shards),
                                    list(range(blocks)) * len(shards), layout.factors, settings.global_mean,
                                    layout.biases, layout.adagrad, threads)

    def rows(state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        norms = _core.row_squared_norms(state, layout.rows(state), layout.factors, threads)
        bias = layout.bias_of(state)
        return norms, None if bias is None else bias.copy()

    return {
        "errors": list(errors),
        "users": [rows(state) for state in user_states],
        "items": {q: rows(item_states[q]) for q in own_items},
        "seconds": time.perf_counter() - start,
    }


def transfer_log(prefix: str, dask_worker: Any = None) -> tuple[list[dict[str, Any]], bool]:
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
