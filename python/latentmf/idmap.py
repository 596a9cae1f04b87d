"""IdMap: the raw ids of users or items (strings or sparse integers) to dense indices and back."""

from __future__ import annotations

from typing import Any

import numpy as np

_INT32_MAX = np.iinfo(np.int32).max


def as_id_array(values: Any, name: str) -> np.ndarray:
    """`values` as a 1-D int64 or str (fixed-width unicode) array; anything else is a TypeError.

    Object arrays (what pandas and polars give for text columns) must hold only str or only
    integers: a mixed or float column is refused rather than guessed at.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {array.shape}")
    kind = array.dtype.kind
    if array.size == 0 and kind != "U":
        return array.astype(np.int64)  # np.asarray([]) is float64: an empty list of ids is no error
    if kind in "iu":
        if kind == "u" and array.dtype.itemsize == 8 and array.size and array.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} holds {array.max()}, beyond the int64 range")
        return array.astype(np.int64, copy=False)
    if kind == "U":
        return array
    if kind == "S":
        return array.astype(str)
    if kind == "O":
        types = set(map(type, array.tolist()))
        if types <= {str}:
            return array.astype(str)
        if all(issubclass(t, (int, np.integer)) and not issubclass(t, (bool, np.bool_)) for t in types):
            return array.astype(np.int64)
        found = ", ".join(sorted(t.__name__ for t in types))
        raise TypeError(f"{name} must hold integers or strings, got values of type {found}"
                        " (missing ids show up as None, NaN or NA)")
    hint = " (a float column of ids often means some are missing)" if kind == "f" else ""
    raise TypeError(f"{name} must hold integers or strings, got dtype {array.dtype}{hint}")


def _is_dense(ids: np.ndarray) -> bool:
    """True when the integer ids are exactly 0..n-1 (each at least once): they are indices already."""
    if ids.dtype.kind != "i" or ids.size == 0:
        return False
    low, high = int(ids.min()), int(ids.max())
    return low == 0 and high < ids.size and bool(np.bincount(ids, minlength=high + 1).all())


class IdMap:
    """The distinct raw ids of one side (users or items), sorted: dense index k stands for ``ids[k]``.

    Ids are integers (kept as int64) or strings (kept as a fixed-width unicode array, never as
    Python objects, so that a model file stays plain data). Build one from a column of raw ids
    with `IdMap.encode`; `Ratings.from_ids` and `Ratings.from_dataframe` do this for you, and the
    model keeps the maps of its training data to translate ids on the way in and out.
    """

    __slots__ = ("_ids",)

    def __init__(self, ids: Any) -> None:
        array = as_id_array(ids, "ids")
        if array.size == 0:
            raise ValueError("ids must not be empty")
        if array.size > 1 and not bool(np.all(array[1:] > array[:-1])):
            raise ValueError("ids must be sorted increasing without repeats")
        if array.size > _INT32_MAX:
            raise ValueError(f"{array.size} ids exceed the supported maximum {_INT32_MAX}")
        self._ids = np.array(array, copy=True)
        self._ids.flags.writeable = False

    @classmethod
    def encode(cls, values: Any, name: str = "ids") -> tuple[np.ndarray, IdMap | None]:
        """(indices, map) for a column of raw ids: ``map.ids[indices]`` gives the column back.

        Integer ids that are already 0..n-1 need no map: they come back as they are, with None.
        Indices are int32 (int64 past 2**31 - 1 distinct ids). The distinct ids are found by one
        stable argsort and a mask of changes, since np.unique is many times slower on large arrays.
        """
        array = as_id_array(values, name)
        if _is_dense(array):
            return array, None
        if array.size == 0:
            raise ValueError(f"{name} is empty")
        order = np.argsort(array, kind="stable")
        ordered = array[order]
        starts = np.empty(array.size, dtype=bool)
        starts[0] = True
        # The operator, not np.not_equal: NumPy before 2.0 has no string loop for the ufunc.
        starts[1:] = ordered[1:] != ordered[:-1]
        codes = np.cumsum(starts, dtype=np.int64) - 1
        indices = np.empty(array.size, dtype=np.int32 if codes[-1] < _INT32_MAX else np.int64)
        indices[order] = codes
        id_map = cls.__new__(cls)
        id_map._ids = ordered[starts]
        id_map._ids.flags.writeable = False
        return indices, id_map

    @property
    def ids(self) -> np.ndarray:
        """The raw ids, sorted (read-only)."""
        return self._ids

    @property
    def kind(self) -> str:
        """"int" or "str"."""
        return "str" if self._ids.dtype.kind == "U" else "int"

    def __len__(self) -> int:
        return int(self._ids.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdMap):
            return NotImplemented
        return self is other or (self._ids.dtype.kind == other._ids.dtype.kind
                                 and np.array_equal(self._ids, other._ids))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        first, last = self._ids[0].item(), self._ids[-1].item()
        return f"IdMap({len(self)} {self.kind} ids, {first!r} .. {last!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (IdMap, (self._ids,))

    def to_index(self, values: Any, name: str = "ids", *, unknown: str = "error") -> np.ndarray:
        """The dense indices (int64) of raw ids; ids not in the map raise ValueError naming the first,
        or, with ``unknown="ignore"``, come back as -1."""
        query = as_id_array(values, name)
        if query.size == 0:
            return np.empty(0, dtype=np.int64)
        if (query.dtype.kind == "U") != (self._ids.dtype.kind == "U"):
            expected = "strings" if self.kind == "str" else "integers"
            raise TypeError(f"{name} must hold {expected} like the ids this map was built from, "
                            f"got dtype {query.dtype}")
        positions = np.searchsorted(self._ids, query)
        np.minimum(positions, self._ids.size - 1, out=positions)
        found = self._ids[positions] == query
        if not found.all():
            if unknown != "ignore":
                missing = int(np.flatnonzero(~found)[0])
                raise ValueError(f"{name}[{missing}] = {query[missing].item()!r} is not a known id")
            positions[~found] = -1
        return positions.astype(np.int64, copy=False)

    def to_ids(self, indices: Any) -> np.ndarray:
        """The raw ids of dense indices (a new array)."""
        return self._ids[np.asarray(indices)]
