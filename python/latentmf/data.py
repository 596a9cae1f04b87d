"""Observed ratings as validated COO triples (user index, item index, value)."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from . import _core

_INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
_VALUE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_MAX_INDEX = np.iinfo(np.int32).max


def _one_dimensional(x: Any, name: str) -> np.ndarray:
    array = np.asarray(x)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {array.shape}")
    return array


def _as_is_or_converted(array: np.ndarray, native_dtypes: tuple[np.dtype, ...], fallback: Any) -> np.ndarray:
    """`array` itself when it is contiguous with one of the native dtypes, else a converted copy."""
    if array.dtype in native_dtypes and array.dtype.isnative and array.flags.c_contiguous:
        return array
    native = array.dtype.newbyteorder("=")
    return np.ascontiguousarray(array, dtype=native if native in native_dtypes else fallback)


def _index_array(x: Any, name: str) -> np.ndarray:
    """An int32 or int64 array, without a copy when `x` already is one (contiguous, native order)."""
    array = _one_dimensional(x, name)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer indices, got dtype {array.dtype}")
    if array.dtype.kind == "u" and array.dtype.itemsize == 8 and array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds {array.max()}, beyond the int64 range")
    return _as_is_or_converted(array, _INDEX_DTYPES, np.int32 if array.dtype.itemsize < 4 else np.int64)


def _value_array(x: Any, name: str) -> np.ndarray:
    """A float32 or float64 array, without a copy when `x` already is one."""
    array = _one_dimensional(x, name)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    small_float = array.dtype.kind == "f" and array.dtype.itemsize < 4
    return _as_is_or_converted(array, _VALUE_DTYPES, np.float32 if small_float else np.float64)


def _count(value: Any, name: str, minimum: int) -> int:
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if count < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {count}")
    return count


class Ratings:
    """Observed ratings: ``values[k]`` is the rating of user ``users[k]`` on item ``items[k]``.

    Parameters
    ----------
    users, items : array_like of int
        Dense 0-based indices. int32 and int64 arrays are used as they are, without a copy
        (users and items must then share a dtype, or the int32 one is widened); other integer
        types are converted once.
    values : array_like of float
        The ratings. float32 and float64 arrays are used without a copy; integers are converted
        to float64. Every value must be finite.
    n_users, n_items : int, optional
        The number of users and items; by default one more than the largest index. Give them
        when some users or items have no rating in this set.

    The arrays are not copied, so do not modify them while this object is in use: the orderings
    it caches for training would no longer match them.
    """

    __slots__ = ("users", "items", "values", "n_users", "n_items", "_cache")

    def __init__(
        self,
        users: Any,
        items: Any,
        values: Any,
        n_users: int | None = None,
        n_items: int | None = None,
    ) -> None:
        arrays = [_one_dimensional(x, name) for x, name in ((users, "users"), (items, "items"), (values, "values"))]
        if not (len(arrays[0]) == len(arrays[1]) == len(arrays[2])):
            raise ValueError("users, items and values must have the same length, got "
                             f"{len(arrays[0])}, {len(arrays[1])} and {len(arrays[2])}")
        if len(arrays[0]) == 0:
            raise ValueError("users, items and values are empty: at least one rating is needed")
        users = _index_array(arrays[0], "users")
        items = _index_array(arrays[1], "items")
        values = _value_array(arrays[2], "values")
        if users.dtype != items.dtype:
            users, items = users.astype(np.int64), items.astype(np.int64)
        self.users = users
        self.items = items
        self.values = values
        self.n_users = int(users.max()) + 1 if n_users is None else _count(n_users, "n_users", 1)
        self.n_items = int(items.max()) + 1 if n_items is None else _count(n_items, "n_items", 1)
        for name, count in (("n_users", self.n_users), ("n_items", self.n_items)):
            if count > _MAX_INDEX:
                raise ValueError(f"{name} = {count} exceeds the supported maximum {_MAX_INDEX}: indices "
                                 "must fit in int32 (map sparse ids to dense indices first)")
        self._cache: dict[Any, Any] = {}
        _core.check_ratings(users, items, values, self.n_users, self.n_items, 0)

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"Ratings({len(self)} ratings, n_users={self.n_users}, n_items={self.n_items})"

    @property
    def mean(self) -> float:
        """The mean rating (computed in float64)."""
        return float(np.mean(self.values, dtype=np.float64))

    def take(self, selection: Any) -> Ratings:
        """The ratings picked by an index array or boolean mask, with the same n_users and n_items."""
        return Ratings(
            self.users[selection], self.items[selection], self.values[selection], self.n_users, self.n_items
        )

    def split(self, test_size: float = 0.2, seed: int = 0) -> tuple[Ratings, Ratings]:
        """A random (train, test) split by rating, reproducible from `seed`.

        `test_size` is a fraction in (0, 1) or a number of ratings. Both parts keep this set's
        n_users and n_items and the input order of their ratings.
        """
        n = len(self)
        if isinstance(test_size, float):
            if not 0.0 < test_size < 1.0:
                raise ValueError(f"test_size must be in (0, 1) as a fraction, got {test_size}")
            n_test = int(round(test_size * n))
        else:
            n_test = _count(test_size, "test_size", 1)
        if not 0 < n_test < n:
            raise ValueError(f"test_size={test_size} leaves {n - n_test} training and {n_test} test ratings "
                             f"of {n}: both parts need at least one")
        is_test = np.zeros(n, dtype=bool)
        is_test[np.random.default_rng(_count(seed, "seed", 0)).permutation(n)[:n_test]] = True
        return self.take(~is_test), self.take(is_test)

    def _index(self, dtype: str) -> Any:
        """The native by-user and by-item orderings (for loss and gradients), built once per dtype."""
        key = ("index", dtype)
        if key not in self._cache:
            self._cache[key] = _core.index_ratings(
                self.users, self.items, self.values, self.n_users, self.n_items, dtype, 0
            )
        return self._cache[key]

    def _grid(self, dtype: str, blocks: int, seed: int, threads: int) -> Any:
        """The native block grid for SGD; only the most recent one is kept (it is as large as the data).
        `threads` is the binding's count (0 for all cores)."""
        key = ("grid", dtype, blocks, seed)
        if key not in self._cache:
            for old in [k for k in self._cache if k[0] == "grid"]:
                del self._cache[old]
            self._cache[key] = _core.block_grid(
                self.users, self.items, self.values, self.n_users, self.n_items, blocks, seed, dtype, threads
            )
        return self._cache[key]

    def _items_by_user(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, items): the items user n rated are items[offsets[n]:offsets[n + 1]]."""
        if "by_user" not in self._cache:
            self._cache["by_user"] = _core.group_by_row(self.users, self.items, self.n_users, self.n_items)
        return self._cache["by_user"]


def as_ratings(data: Any, n_users: int | None = None, n_items: int | None = None) -> Ratings:
    """`data` itself when it is a Ratings, else Ratings(*data, n_users, n_items) for a (users, items, values) triple."""
    if isinstance(data, Ratings):
        if n_users is not None and data.n_users != n_users:
            raise ValueError(f"the ratings have n_users={data.n_users} but U has {n_users} rows")
        if n_items is not None and data.n_items != n_items:
            raise ValueError(f"the ratings have n_items={data.n_items} but V has {n_items} rows")
        return data
    if isinstance(data, tuple) and len(data) == 3:
        return Ratings(*data, n_users=n_users, n_items=n_items)
    raise TypeError(f"ratings must be a latentmf.Ratings or a (users, items, values) tuple, got {type(data).__name__}")
