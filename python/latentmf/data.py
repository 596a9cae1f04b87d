"""Observed ratings as validated COO triples (user index, item index, value), built from arrays,
data frames, SciPy sparse matrices or dense matrices, with the maps between raw ids and indices."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _core
from .idmap import IdMap

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


def index_array(x: Any, name: str) -> np.ndarray:
    """An int32 or int64 array, without a copy when `x` already is one (contiguous, native order)."""
    array = _one_dimensional(x, name)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer indices, got dtype {array.dtype}")
    if array.dtype.kind == "u" and array.dtype.itemsize == 8 and array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds {array.max()}, beyond the int64 range")
    return _as_is_or_converted(array, _INDEX_DTYPES, np.int32 if array.dtype.itemsize < 4 else np.int64)


def value_array(x: Any, name: str) -> np.ndarray:
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
        types are converted once. For raw ids (strings, sparse integers) use `Ratings.from_ids`
        or `Ratings.from_dataframe`, which map them to indices.
    values : array_like of float
        The ratings. float32 and float64 arrays are used without a copy; integers are converted
        to float64. Every value must be finite.
    n_users, n_items : int, optional
        The number of users and items; by default one more than the largest index (or the size of
        the id map). Give them when some users or items have no rating in this set.
    timestamps : array_like, optional
        When each rating was made (numbers or datetime64), for `split_by_time`.
    user_ids, item_ids : IdMap, optional
        The raw ids of the indices: user index n is ``user_ids.ids[n]``. A model fitted on these
        ratings keeps the maps and speaks raw ids in predict and recommend.

    The arrays are not copied, so do not modify them while this object is in use: the orderings
    it caches for training would no longer match them.
    """

    __slots__ = ("users", "items", "values", "n_users", "n_items", "timestamps", "user_ids", "item_ids",
                 "_cache")

    def __init__(
        self,
        users: Any,
        items: Any,
        values: Any,
        n_users: int | None = None,
        n_items: int | None = None,
        *,
        timestamps: Any = None,
        user_ids: IdMap | None = None,
        item_ids: IdMap | None = None,
    ) -> None:
        arrays = [_one_dimensional(x, name) for x, name in ((users, "users"), (items, "items"), (values, "values"))]
        if not (len(arrays[0]) == len(arrays[1]) == len(arrays[2])):
            raise ValueError("users, items and values must have the same length, got "
                             f"{len(arrays[0])}, {len(arrays[1])} and {len(arrays[2])}")
        if len(arrays[0]) == 0:
            raise ValueError("users, items and values are empty: at least one rating is needed")
        users = index_array(arrays[0], "users")
        items = index_array(arrays[1], "items")
        values = value_array(arrays[2], "values")
        if users.dtype != items.dtype:
            users, items = users.astype(np.int64), items.astype(np.int64)
        self.users = users
        self.items = items
        self.values = values
        self.n_users = _side_count(users, n_users, user_ids, "n_users", "user_ids")
        self.n_items = _side_count(items, n_items, item_ids, "n_items", "item_ids")
        for name, count in (("n_users", self.n_users), ("n_items", self.n_items)):
            if count > _MAX_INDEX:
                raise ValueError(f"{name} = {count} exceeds the supported maximum {_MAX_INDEX}: indices "
                                 "must fit in int32 (map sparse ids to dense indices first)")
        self.timestamps = None if timestamps is None else _timestamp_array(timestamps, len(values))
        self.user_ids = user_ids
        self.item_ids = item_ids
        self._cache: dict[Any, Any] = {}
        _core.check_ratings(users, items, values, self.n_users, self.n_items, 0)

    @classmethod
    def from_ids(cls, users: Any, items: Any, values: Any, *, timestamps: Any = None,
                 ids_from: Any = None) -> Ratings:
        """Ratings from raw ids: strings or integers of any range, mapped to dense indices once.

        Each side gets an `IdMap` (kept as ``user_ids`` / ``item_ids``) unless its ids are integers
        that are already 0..n-1. With ``ids_from`` (a Ratings or a fitted MatrixFactorization) the
        ids are mapped with its maps and counts instead, so that a test set lines up with the
        training set or the model; an id it does not know raises ValueError.
        """
        if ids_from is None:
            user_indices, user_ids = IdMap.encode(users, "users")
            item_indices, item_ids = IdMap.encode(items, "items")
            return cls(user_indices, item_indices, values, timestamps=timestamps, user_ids=user_ids,
                       item_ids=item_ids)
        user_ids, item_ids, n_users, n_items = _id_maps_of(ids_from)
        return cls(_map_with(user_ids, users, "users"), _map_with(item_ids, items, "items"), values, n_users,
                   n_items, timestamps=timestamps, user_ids=user_ids, item_ids=item_ids)

    @classmethod
    def from_dataframe(cls, df: Any, user: str = "user", item: str = "item", rating: str | None = "rating", *,
                       timestamp: str | None = None, ids_from: Any = None) -> Ratings:
        """Ratings from the columns of a table, with raw ids mapped as in `from_ids`.

        ``df`` is a pandas or polars DataFrame, a mapping of column names to arrays, or any object
        with the Arrow PyCapsule stream or DataFrame interchange protocol (read through pyarrow,
        which must then be installed). ``user``, ``item``, ``rating`` and ``timestamp`` name the
        columns; ``rating=None`` reads a table of interactions without one (plays, clicks,
        purchases): every row is an interaction of strength 1. Nothing is imported unless ``df``
        needs it.
        """
        wanted = {"user": user, "item": item}
        if rating is not None:
            wanted["rating"] = rating
        if timestamp is not None:
            wanted["timestamp"] = timestamp
        columns = _read_columns(df, wanted)
        values = columns["rating"] if rating is not None else np.ones(len(columns["user"]), dtype=np.float32)
        return cls.from_ids(columns["user"], columns["item"], values, timestamps=columns.get("timestamp"),
                            ids_from=ids_from)

    @classmethod
    def from_scipy(cls, sparse: Any) -> Ratings:
        """Ratings from a SciPy sparse matrix or array (COO, CSR, CSC, ...) of shape (n_users, n_items).

        Every stored entry is a rating, explicit zeros included; duplicate COO entries are summed,
        as SciPy reads them. The matrix is not modified.
        """
        if not (hasattr(sparse, "tocoo") and hasattr(sparse, "shape")):
            raise TypeError(f"sparse must be a SciPy sparse matrix or array, got {type(sparse).__name__}")
        if len(sparse.shape) != 2:
            raise ValueError(f"sparse must be 2-dimensional, got shape {sparse.shape}")
        coo = sparse.tocoo()
        if not coo.has_canonical_format:
            coo = coo.copy()
            coo.sum_duplicates()
        return cls(coo.row, coo.col, coo.data, int(sparse.shape[0]), int(sparse.shape[1]))

    @classmethod
    def from_dense(cls, R: Any, mask: Any = None) -> Ratings:
        """Ratings from a dense (n_users, n_items) matrix: the entries where ``mask`` is true, or
        without a mask the entries that are not NaN. The values keep R's float dtype."""
        matrix = np.asarray(R)
        if matrix.ndim != 2:
            raise ValueError(f"R must be 2-dimensional, got shape {matrix.shape}")
        if matrix.dtype.kind not in "fiu":
            raise TypeError(f"R must hold real numbers, got dtype {matrix.dtype}")
        if mask is None:
            observed = ~np.isnan(matrix) if matrix.dtype.kind == "f" else np.ones(matrix.shape, dtype=bool)
        else:
            observed = np.asarray(mask)
            if observed.dtype != np.bool_:
                raise TypeError(f"mask must have dtype bool, got {observed.dtype}")
            if observed.shape != matrix.shape:
                raise ValueError(f"mask must have R's shape {matrix.shape}, got {observed.shape}")
        users, items = np.nonzero(observed)
        index_dtype = np.int32 if max(matrix.shape) <= _MAX_INDEX else np.int64
        return cls(users.astype(index_dtype), items.astype(index_dtype), matrix[users, items], matrix.shape[0],
                   matrix.shape[1])

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        raw = [name for name, ids in (("user", self.user_ids), ("item", self.item_ids)) if ids is not None]
        shown = f", raw {' and '.join(raw)} ids" if raw else ""
        return f"Ratings({len(self)} ratings, n_users={self.n_users}, n_items={self.n_items}{shown})"

    @property
    def mean(self) -> float:
        """The mean rating (computed in float64, once)."""
        if "mean" not in self._cache:
            self._cache["mean"] = float(np.mean(self.values, dtype=np.float64))
        return self._cache["mean"]

    def take(self, selection: Any) -> Ratings:
        """The ratings picked by an index array or boolean mask, with the same n_users, n_items and id maps."""
        return Ratings(
            self.users[selection], self.items[selection], self.values[selection], self.n_users, self.n_items,
            timestamps=None if self.timestamps is None else self.timestamps[selection],
            user_ids=self.user_ids, item_ids=self.item_ids,
        )

    def split(self, test_size: float = 0.2, seed: int = 0) -> tuple[Ratings, Ratings]:
        """A random (train, test) split by rating, reproducible from `seed`.

        `test_size` is a fraction in (0, 1) or a number of ratings. Both parts keep this set's
        n_users, n_items and id maps and the input order of their ratings.
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

    def split_by_user(self, test_size: float | int = 0.2, seed: int = 0) -> tuple[Ratings, Ratings]:
        """A (train, test) split within each user: `test_size` of every user's ratings (a fraction
        in (0, 1), rounded, or a number of ratings per user), drawn at random from `seed`, go to test.

        Every user keeps at least one rating in train, so a user with a single rating has none in
        test. Both parts keep the input order, n_users, n_items and id maps.
        """
        rng = np.random.default_rng(_count(seed, "seed", 0))
        # Sorting by user with random keys shuffles each user's ratings.
        order = np.lexsort((rng.random(len(self)), self.users))
        return self._split_sorted(order, test_size, from_end=False)

    def split_by_time(self, test_size: float | int = 1) -> tuple[Ratings, Ratings]:
        """Leave-last-k-out: each user's latest `test_size` ratings (a number per user, or a fraction
        in (0, 1) of each user's ratings, rounded) go to test, by timestamp, equal times ordered by
        their position in the input. Every user keeps at least one rating in train.

        Needs timestamps (`from_dataframe(..., timestamp=...)`, or `load_movielens`).
        """
        if self.timestamps is None:
            raise ValueError("split_by_time needs timestamps: build the ratings with timestamps=... "
                             "(from_dataframe(..., timestamp='column'))")
        order = np.lexsort((np.arange(len(self)), self.timestamps, self.users))
        return self._split_sorted(order, test_size, from_end=True)

    def _split_sorted(self, order: np.ndarray, test_size: float | int, from_end: bool) -> tuple[Ratings, Ratings]:
        """Test = the first (or, from_end, the last) n_test(user) ratings of each user's run in
        `order`, a permutation that groups the ratings by user."""
        counts = np.bincount(self.users, minlength=self.n_users)
        if isinstance(test_size, float):
            if not 0.0 < test_size < 1.0:
                raise ValueError(f"test_size must be in (0, 1) as a fraction, got {test_size}")
            wanted = np.rint(test_size * counts).astype(np.int64)
        else:
            wanted = np.full(self.n_users, _count(test_size, "test_size", 1), dtype=np.int64)
        n_test = np.minimum(wanted, np.maximum(counts - 1, 0))
        if n_test.sum() == 0:
            raise ValueError(f"test_size={test_size} puts no rating in the test set: every user keeps at least "
                             "one rating for training")
        starts = np.cumsum(counts) - counts
        rank = np.arange(len(self)) - np.repeat(starts, counts)
        if from_end:
            rank = np.repeat(counts, counts) - 1 - rank
        is_test = np.empty(len(self), dtype=bool)
        is_test[order] = rank < np.repeat(n_test, counts)
        return self.take(~is_test), self.take(is_test)

    @property
    def value_range(self) -> tuple[float, float]:
        """The smallest and the largest rating (computed once)."""
        if "range" not in self._cache:
            self._cache["range"] = (float(self.values.min()), float(self.values.max()))
        return self._cache["range"]

    # The native orderings below are built on first use and cached with the ratings, so that
    # training several models, or one model several times, on one Ratings builds them once.

    def native_index(self, dtype: str) -> Any:
        """The native by-user and by-item orderings (for loss and gradients), built once per dtype."""
        key = ("index", dtype)
        if key not in self._cache:
            self._cache[key] = _core.index_ratings(
                self.users, self.items, self.values, self.n_users, self.n_items, dtype, 0
            )
        return self._cache[key]

    def native_grid(self, dtype: str, blocks: int, seed: int, threads: int) -> Any:
        """The native block grid for SGD; only the most recent one is kept (it is as large as the data).
        `threads` is the binding's count (0 for all cores)."""
        key = ("grid", dtype, blocks, seed)
        if key not in self._cache:
            # list() copies the keys in one step, and pop() tolerates a key another thread removed.
            for old in [k for k in list(self._cache) if k[0] == "grid"]:
                self._cache.pop(old, None)
            self._cache[key] = _core.block_grid(
                self.users, self.items, self.values, self.n_users, self.n_items, blocks, seed, dtype, threads
            )
        return self._cache[key]

    def summed(self) -> Ratings:
        """These ratings with each repeated (user, item) pair once, its values added (repeated plays
        of a song are one interaction of their total strength); itself when every pair is distinct.
        A new set is ordered by user, then item, and has no timestamps."""
        offsets, items = self.items_by_user()
        user_of = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(offsets))
        if not np.any((items[1:] == items[:-1]) & (user_of[1:] == user_of[:-1])):
            return self
        keys = self.users.astype(np.int64) * self.n_items + self.items
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
        values = np.add.reduceat(self.values[order].astype(np.float64), first).astype(self.values.dtype)
        return Ratings(self.users[order][first], self.items[order][first], values, self.n_users, self.n_items,
                       user_ids=self.user_ids, item_ids=self.item_ids)

    def items_by_user(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, items): the items user n rated are items[offsets[n]:offsets[n + 1]]."""
        if "by_user" not in self._cache:
            self._cache["by_user"] = _core.group_by_row(self.users, self.items, self.n_users, self.n_items)
        return self._cache["by_user"]


def _side_count(indices: np.ndarray, count: int | None, ids: IdMap | None, name: str, ids_name: str) -> int:
    """n_users or n_items: given, else the size of the id map, else one more than the largest index."""
    if ids is not None and not isinstance(ids, IdMap):
        raise TypeError(f"{ids_name} must be a latentmf.IdMap or None, got {type(ids).__name__}")
    if count is not None:
        count = _count(count, name, 1)
        if ids is not None and count != len(ids):
            raise ValueError(f"{name}={count} but {ids_name} maps {len(ids)} ids")
        return count
    return len(ids) if ids is not None else int(indices.max()) + 1


def _timestamp_array(x: Any, size: int) -> np.ndarray:
    array = _one_dimensional(x, "timestamps")
    if array.dtype.kind not in "iufM":
        raise TypeError(f"timestamps must hold numbers or datetime64, got dtype {array.dtype}")
    if len(array) != size:
        raise ValueError(f"timestamps must have one entry per rating ({size}), got {len(array)}")
    return array


def _id_maps_of(source: Any) -> tuple[IdMap | None, IdMap | None, int, int]:
    """(user_ids, item_ids, n_users, n_items) of a Ratings or a fitted model."""
    if isinstance(source, Ratings):
        return source.user_ids, source.item_ids, source.n_users, source.n_items
    if hasattr(source, "user_ids_") and hasattr(source, "n_users_"):
        return source.user_ids_, source.item_ids_, source.n_users_, source.n_items_
    raise TypeError(f"ids_from must be a latentmf.Ratings or a fitted MatrixFactorization, got "
                    f"{type(source).__name__}")


def _map_with(ids: IdMap | None, values: Any, name: str) -> np.ndarray:
    """Raw ids through an existing map; without a map they are indices already."""
    return index_array(values, name) if ids is None else ids.to_index(values, name)


def _read_columns(df: Any, wanted: dict[str, str]) -> dict[str, np.ndarray]:
    """{argument: 1-D array} for the named columns of a data frame (see Ratings.from_dataframe)."""
    if isinstance(df, Mapping):
        names, column = list(df), lambda name: np.asarray(df[name])
    elif hasattr(df, "columns") and hasattr(df, "__getitem__") and not hasattr(df, "column_names"):
        # pandas and polars: each column converts itself, without pyarrow.
        names, column = list(df.columns), lambda name: np.asarray(df[name].to_numpy())
    elif hasattr(df, "__arrow_c_stream__") or hasattr(df, "__dataframe__"):
        table = _arrow_table(df)
        names, column = list(table.column_names), lambda name: np.asarray(table.column(name).to_numpy())
    else:
        raise TypeError("df must be a pandas or polars DataFrame, a mapping of column names to arrays, or an "
                        "object with the Arrow PyCapsule or DataFrame interchange protocol; got "
                        f"{type(df).__name__}")
    for argument, name in wanted.items():
        if name not in names:
            raise ValueError(f"{argument}={name!r} is not a column of df (columns: {', '.join(map(str, names))})")
    return {argument: column(name) for argument, name in wanted.items()}


def _arrow_table(df: Any) -> Any:
    try:
        import pyarrow
    except ImportError:
        raise ImportError(f"reading a {type(df).__name__} needs pyarrow (pip install pyarrow), or pass a "
                          "pandas DataFrame or a mapping of columns") from None
    if hasattr(df, "__arrow_c_stream__"):
        return pyarrow.table(df)
    from pyarrow.interchange import from_dataframe

    return from_dataframe(df)


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


def as_interactions(X: Any, y: Any, model: str) -> Ratings:
    """The interactions that `model`'s fit(X, y) takes (the implicit-feedback models): a Ratings
    whose values are strengths >= 0, a (users, items) or (users, items, values) tuple of indices,
    an (n, 2) array of (user, item) ids or a SciPy sparse matrix (users x items). Repeated
    (user, item) pairs become one interaction of their summed strength."""
    if y is not None:
        raise TypeError(f"{model}.fit takes no y: the interactions' strengths are the values of X (a Ratings or a "
                        "(users, items, values) tuple); validation is a keyword argument")
    if isinstance(X, tuple) and len(X) == 2:
        X = (*X, np.ones(len(np.asarray(X[0])), dtype=np.float32))
    elif hasattr(X, "tocoo") and hasattr(X, "shape"):
        X = Ratings.from_scipy(X)
    elif isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == 2:
        X = Ratings.from_ids(X[:, 0], X[:, 1], np.ones(len(X), dtype=np.float32))
    try:
        data = as_ratings(X)
    except TypeError as error:
        raise TypeError(f"{error}; interactions may also be a (users, items) tuple, an (n, 2) array of "
                        "(user, item) ids or a SciPy sparse matrix, and a table is read with "
                        "latentmf.Ratings.from_dataframe(df, rating=None)") from None
    low, _ = data.value_range
    if low < 0:
        k = int(np.flatnonzero(data.values < 0)[0])
        raise ValueError(f"values[{k}] = {data.values[k]} is negative: interaction strengths must be >= 0")
    return data.summed()
