"""The fitted state of a factor model: one object that holds everything a fit produces.

A `FittedState` is made by training (`latentmf.training`), by a distributed fit
(`latentmf.dask`) and by reading a model file (`latentmf.persistence`); an estimator takes it
through one method and never has its fitted attributes written by anyone else. A state is
replaced as a whole (a new epoch gives a new state sharing the native model), so that what an
estimator holds is always consistent: its factors and its history describe the same epoch.
"""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from . import _core
from .data import Ratings
from .idmap import IdMap

#: The arrays a native model holds, with their shapes as (rows side, columns): "users" and "items"
#: stand for n_users and n_items, "factors" for F; an array without a second entry is a vector.
NATIVE_ARRAYS: dict[str, tuple[str, ...]] = {
    "U": ("users", "factors"),
    "V": ("items", "factors"),
    "user_bias": ("users",),
    "item_bias": ("items",),
    "user_accumulators": ("users", "2"),
    "item_accumulators": ("items", "2"),
}


@dataclass(frozen=True)
class DataSummary:
    """What a fitted model keeps of its training ratings: their shape, statistics and id maps, not
    the ratings themselves (those may be gone: a loaded model, or a fit on a cluster)."""

    n_users: int
    n_items: int
    n_ratings: int
    #: The mean, smallest and largest training rating (interaction strength for implicit models).
    mean: float
    low: float
    high: float
    user_ids: IdMap | None = None
    item_ids: IdMap | None = None

    @classmethod
    def of(cls, ratings: Ratings) -> DataSummary:
        low, high = ratings.value_range
        return cls(ratings.n_users, ratings.n_items, len(ratings), ratings.mean, low, high, ratings.user_ids,
                   ratings.item_ids)

    def same_ids(self, ratings: Ratings) -> bool:
        """Whether `ratings` has this summary's users and items under the same ids."""
        return ((ratings.n_users, ratings.n_items) == (self.n_users, self.n_items)
                and ratings.user_ids == self.user_ids and ratings.item_ids == self.item_ids)


class SeenItems:
    """The items each user interacted with in training, as the native top-N code reads them:
    (offsets, items), user n's items being items[offsets[n]:offsets[n + 1]], sorted. Built from the
    training ratings the first time they are needed, or given (a model file, a cluster fit)."""

    def __init__(self, *, ratings: Ratings | None = None,
                 lists: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        if (ratings is None) == (lists is None):
            raise ValueError("SeenItems needs either the training ratings or the lists")
        self._ratings = ratings
        self._lists = lists

    @classmethod
    def none(cls, n_users: int) -> SeenItems:
        """No seen items (recommend then excludes nothing)."""
        return cls(lists=(np.zeros(n_users + 1, dtype=np.int64), np.empty(0, dtype=np.int32)))

    @classmethod
    def of_pairs(cls, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> SeenItems:
        """The seen items of (user, item) index pairs, in any order."""
        return cls(lists=_core.group_by_row(users, items, n_users, n_items))

    def lists(self) -> tuple[np.ndarray, np.ndarray]:
        if self._lists is None:
            assert self._ratings is not None
            self._lists = self._ratings.items_by_user()
        return self._lists


def empty_history(keys: tuple[str, ...]) -> dict[str, list[float]]:
    return {key: [] for key in keys}


@dataclass(frozen=True)
class FittedState:
    """Everything a fit produced.

    Attributes
    ----------
    native
        the native model (latentmf._core.ModelFloat32 or ModelFloat64) that owns U, V, the
        biases and the accumulators; `arrays()` views those of `layout`.
    settings
        the checked hyper-parameters the model was fitted with, by parameter name (the
        estimator's own may have changed since, through set_params).
    layout
        the names of the native arrays this model uses (see NATIVE_ARRAYS).
    data
        what the model keeps of its training data.
    seen
        the items each user had in training.
    history
        per epoch, the estimator's history keys (lists of one length).
    best_epoch
        the epoch whose factors the model holds, with early stopping; else None.
    derived
        numbers the fit derived from the data and that continuing it needs (e.g. a default
        learning rate).
    training
        the training ratings, kept for continuing without passing them again (None after
        loading a file or a cluster fit).
    report
        what a training back-end reports of the fit (a latentmf.dask.DaskFitReport), or None.
    solver_state
        arrays a solver keeps besides the native model's to continue (a Gibbs chain's current
        sample), by name; saved with the model.
    """

    native: Any
    settings: Mapping[str, Any]
    layout: tuple[str, ...]
    data: DataSummary
    seen: SeenItems
    history: dict[str, list[float]]
    best_epoch: int | None = None
    derived: Mapping[str, float] = field(default_factory=dict)
    training: Ratings | None = None
    report: Any = None
    solver_state: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def dtype(self) -> str:
        return str(self.native.U.dtype)

    @property
    def n_factors(self) -> int:
        return int(self.native.n_factors)

    @property
    def biases(self) -> bool:
        """Whether scores add biases: global_mean + b_n + c_m. A layout with item biases only (BPR)
        keeps b_n and the mean at 0."""
        return "item_bias" in self.layout

    @property
    def epochs_run(self) -> int:
        """The number of the next epoch: epochs count over the whole training of the model."""
        epochs = self.history.get("epoch", [])
        return int(epochs[-1]) + 1 if epochs else 0

    def arrays(self) -> dict[str, np.ndarray]:
        """The native model's arrays of this layout, by name (views, not copies)."""
        return {name: getattr(self.native, name) for name in self.layout}

    def with_epoch(self, record: Mapping[str, float]) -> FittedState:
        """This state after one more epoch, whose record has a value for every history key."""
        history = {key: [*values, record[key]] for key, values in self.history.items()}
        return dataclasses.replace(self, history=history)

    def replace(self, **changes: Any) -> FittedState:
        return dataclasses.replace(self, **changes)


def array_shape(name: str, n_users: int, n_items: int, n_factors: int) -> tuple[int, ...]:
    """The shape of the native array `name` of a model of that size."""
    sizes = {"users": n_users, "items": n_items, "factors": n_factors, "2": 2}
    return tuple(sizes[dimension] for dimension in NATIVE_ARRAYS[name])


def new_native(dtype: str, n_users: int, n_items: int, n_factors: int) -> Any:
    """A native model (zeroed) of that size and precision."""
    native_class = _core.ModelFloat32 if dtype == "float32" else _core.ModelFloat64
    return native_class(n_users, n_items, n_factors)


#: Rows of factors drawn from one random stream by draw_normal: the streams, not the threads, fix
#: the draws, so that they are the same for any thread count.
ROWS_PER_STREAM = 1 << 14


def draw_normal(arrays: tuple[np.ndarray, ...], seed: int, std: float, mean: float, threads: int) -> list[float]:
    """Fills each 2-D array in place with N(mean, std^2) draws; returns each array's largest
    magnitude (not finite when a draw is not). Every ROWS_PER_STREAM rows of each array have their
    own stream of SeedSequence(seed), drawn on up to `threads` threads (0: all cores): NumPy
    releases the GIL while it draws, and one stream drawing U of 200,000 x 32 took 55 ms."""
    parts = [(index, start) for index, array in enumerate(arrays) for start in range(0, len(array), ROWS_PER_STREAM)]
    slices = [arrays[index][start:start + ROWS_PER_STREAM] for index, start in parts]
    streams = np.random.SeedSequence(seed).spawn(len(parts))

    def fill(part: np.ndarray, stream: np.random.SeedSequence) -> float:
        np.random.default_rng(stream).standard_normal(out=part, dtype=part.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            part *= std
            part += mean
        # max and min are NaN when any draw is: a NaN is not lost.
        return max(float(part.max()), -float(part.min()))

    workers = min(len(parts), threads if threads > 0 else _core.available_threads())
    if workers <= 1:
        magnitudes = list(map(fill, slices, streams))
    else:
        with ThreadPoolExecutor(workers) as pool:
            magnitudes = list(pool.map(fill, slices, streams))
    largest = [0.0] * len(arrays)
    for (index, _), magnitude in zip(parts, magnitudes):
        # NaN wins: max() would keep whichever came first.
        largest[index] = magnitude if math.isnan(magnitude) or magnitude > largest[index] else largest[index]
    return largest
