"""The ratings of a distributed fit: a Ratings on the driver, a Dask DataFrame (raw ids allowed)
or partitioned Dask arrays, read into partitions on the cluster with what the driver must know."""

from __future__ import annotations

import inspect
from typing import Any

import dask
import numpy as np
from distributed import Client, Future

from ..data import Ratings, index_array, value_array
from ..idmap import IdMap, as_id_array
from ..state import DataSummary


class Inputs:
    """The ratings as partitions on the cluster (or on the driver), with what the driver must know."""

    def __init__(self) -> None:
        self.local: Ratings | None = None  # the data, when it is on the driver
        self.partitions: list[Future] = []  # futures of (users, items, values)
        self.n_users = self.n_items = self.size = 0
        self.mean = 0.0
        self.low = self.high = 0.0
        self.user_ids: IdMap | None = None
        self.item_ids: IdMap | None = None
        self.setup_bytes = 0


def _frame_columns(frame: Any, user: str, item: str, rating: str, user_ids: IdMap | None,
                   item_ids: IdMap | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, values) of one pandas partition, ids mapped to indices when maps are given."""
    columns = []
    for name, ids in ((user, user_ids), (item, item_ids)):
        column = as_id_array(frame[name].to_numpy(), name)
        columns.append(ids.to_index(column, name) if ids is not None else index_array(column, name))
    values = value_array(frame[rating].to_numpy(), rating)
    return columns[0], columns[1], values


def _array_columns(users: np.ndarray, items: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    return index_array(users, "users"), index_array(items, "items"), value_array(values, "values")


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


def read_inputs(data: Any, client: Client, user: str, item: str, rating: str) -> Inputs:
    inputs = Inputs()
    if isinstance(data, tuple) and len(data) == 3 and all(isinstance(x, np.ndarray) for x in data):
        data = Ratings(*data)
    if isinstance(data, Ratings):
        inputs.local = data
        inputs.n_users, inputs.n_items, inputs.size, inputs.mean = data.n_users, data.n_items, len(data), data.mean
        inputs.low, inputs.high = data.value_range
        inputs.user_ids, inputs.item_ids = data.user_ids, data.item_ids
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
                inputs.setup_bytes += id_map.ids.nbytes * len(client.scheduler_info(**all_workers(client))["workers"])
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
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"values[{bad[0]}] = {values[bad[0]]} is not a finite number (counting the ratings "
                         "partition by partition)")
    # The mean as Ratings.mean computes it, over the ratings in the partitions' order.
    inputs.mean = float(np.mean(values, dtype=np.float64))
    inputs.low, inputs.high = float(values.min()), float(values.max())
    del values
    for side, id_map in (("user", inputs.user_ids), ("item", inputs.item_ids)):
        low = min(s[f"min_{side}"] for s in summaries if s["size"])
        if low < 0:
            raise ValueError(f"{side} indices must be >= 0, got {low}")
        count = len(id_map) if id_map is not None else max(s[f"max_{side}"] for s in summaries) + 1
        setattr(inputs, f"n_{side}s", int(count))
    return inputs


def summary(inputs: Inputs) -> DataSummary:
    return DataSummary(inputs.n_users, inputs.n_items, inputs.size, inputs.mean, inputs.low, inputs.high,
                       inputs.user_ids, inputs.item_ids)


def all_workers(client: Client) -> dict[str, int]:
    """scheduler_info's argument for listing every worker (newer versions list 5 by default)."""
    return {"n_workers": -1} if "n_workers" in inspect.signature(client.scheduler_info).parameters else {}
