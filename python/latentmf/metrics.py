"""Accuracy and ranking metrics, computed for all users at once with array operations.

Rating accuracy: `rmse`, `mae`. Ranking quality of top-k lists against held-out ratings:
`precision_at_k`, `recall_at_k`, `ndcg_at_k`, `map_at_k`, and catalogue `coverage`. `evaluate`
does it all for a model and a test set.

The ranking metrics take ``recommended``, the output of a model's `recommend_all`: the
(items, scores) pair of (n_rows, K) arrays, or the items alone. Padding (where a list is shorter
than K) is what recommend_all masks; in arrays that are not masked, a NaN score marks padding, and
so does a negative entry when the items are dense indices (``relevant`` without id maps): no raw
id is ever taken for padding. Row r holds the list of user ``users[r]``
(default: user index r, as recommend_all gives for all users). ``relevant`` is a `Ratings` of held
out ratings: an item is relevant to a user when the pair is in it with a value >= ``threshold``
(any value when threshold is None). Ids are those of ``relevant``: raw ids when it has id maps
(build it with the model's maps: split it from the training Ratings, or ``ids_from=model``).

Padding, and with ``exclude`` (a `Ratings`, typically the training set) each user's items in it,
are removed from a list before it is cut to its first k: this filters seen items out of lists
made without ``exclude_seen``. The averages are over the users with at least one relevant item. The
definitions, for a user with relevant set R and list L cut to k, hit_j = [L_j in R]:

- precision@k = ``|L ∩ R| / k``; recall@k = ``|L ∩ R| / |R|``
- NDCG@k = sum_j hit_j / log2(j + 2) divided by the same sum for ``min(|R|, k)`` hits in front
- AP@k = ``sum_j hit_j * precision@(j + 1) / min(|R|, k)``; MAP@k is its mean
- coverage = distinct items recommended / n_items (over all lists, padding aside)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import as_integer
from .data import Ratings

__all__ = ["coverage", "evaluate", "map_at_k", "mae", "ndcg_at_k", "precision_at_k", "recall_at_k", "rmse"]


def _paired(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(y_true, dtype=np.float64)
    predicted = np.asarray(y_pred, dtype=np.float64)
    if truth.ndim != 1 or truth.shape != predicted.shape or truth.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty 1-dimensional arrays of one length, got shapes "
                         f"{truth.shape} and {predicted.shape}")
    return truth, predicted


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error: sqrt(mean((y_true - y_pred)^2))."""
    truth, predicted = _paired(y_true, y_pred)
    return float(np.sqrt(np.mean((truth - predicted) ** 2)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error: ``mean(|y_true - y_pred|)``."""
    truth, predicted = _paired(y_true, y_pred)
    return float(np.mean(np.abs(truth - predicted)))


def _items_and_padding(recommended: Any) -> tuple[np.ndarray, np.ndarray]:
    """(items, padding mask) of recommend_all's items array or (items, scores) pair."""
    scores = None
    if isinstance(recommended, tuple):
        if len(recommended) != 2:
            raise TypeError("recommended must be an items array or the (items, scores) pair of recommend_all")
        recommended, scores = recommended
    padding = np.ma.getmaskarray(recommended)
    items = np.ma.getdata(recommended)
    if items.ndim != 2:
        raise ValueError(f"recommended must be 2-dimensional (one row per user), got shape {items.shape}")
    if scores is not None:
        score_values = np.asarray(np.ma.getdata(scores), dtype=np.float64)
        if score_values.shape != items.shape:
            raise ValueError(f"scores must have the shape of items {items.shape}, got {score_values.shape}")
        padding = padding | np.ma.getmaskarray(scores) | np.isnan(score_values)
    return items, padding


class _Lists:
    """Recommendation lists as dense item indices (-1: padding or unknown) and the user of each row,
    with the relevant pairs of `relevant` as sorted keys user * n_items + item."""

    def __init__(self, recommended: Any, relevant: Ratings, k: int, users: Any, threshold: float | None,
                 exclude: Ratings | None) -> None:
        if not isinstance(relevant, Ratings):
            raise TypeError(f"relevant must be a latentmf.Ratings, got {type(relevant).__name__}")
        self.k = as_integer(k, "k", 1)
        self.n_items = relevant.n_items
        raw_items, padding = _items_and_padding(recommended)
        items = _dense(raw_items, relevant.item_ids, relevant.n_items, "recommended")
        items[padding] = -1
        self.users = self._row_users(users, relevant, len(items))
        dropped = items < 0
        if exclude is not None:
            dropped |= self._excluded(items, exclude, relevant)
        self.items = _first_columns(_compacted(items, dropped), self.k)
        keep = np.ones(len(relevant), dtype=bool) if threshold is None else relevant.values >= threshold
        self.relevant_keys = _sorted_unique(relevant.users[keep].astype(np.int64) * self.n_items
                                            + relevant.items[keep])
        self.n_relevant = np.bincount(self.relevant_keys // self.n_items, minlength=relevant.n_users)[self.users]
        self.hits = _contains(self.relevant_keys, self._keys(self.items)) & (self.items >= 0)

    @staticmethod
    def _row_users(users: Any, relevant: Ratings, rows: int) -> np.ndarray:
        if users is None:
            if rows > relevant.n_users:
                raise ValueError(f"recommended has {rows} rows but relevant has n_users={relevant.n_users}: pass "
                                 "users= (the user of each row)")
            return np.arange(rows, dtype=np.int64)
        dense = _dense(np.atleast_1d(np.asarray(users)), relevant.user_ids, relevant.n_users, "users")
        if len(dense) != rows:
            raise ValueError(f"users must name the user of each of the {rows} rows, got {len(dense)}")
        if (dense < 0).any():
            raise ValueError(f"users[{int(np.flatnonzero(dense < 0)[0])}] is not a user of relevant")
        return dense

    def _keys(self, items: np.ndarray) -> np.ndarray:
        return self.users[:, None] * self.n_items + items

    def _excluded(self, items: np.ndarray, exclude: Ratings, relevant: Ratings) -> np.ndarray:
        """Where the lists hold an item of their user in `exclude`."""
        if not isinstance(exclude, Ratings):
            raise TypeError(f"exclude must be a latentmf.Ratings, got {type(exclude).__name__}")
        if (exclude.user_ids != relevant.user_ids or exclude.item_ids != relevant.item_ids
                or (exclude.n_users, exclude.n_items) != (relevant.n_users, relevant.n_items)):
            raise ValueError("exclude must use the ids of relevant (split both from one Ratings)")
        excluded_keys = _sorted_unique(exclude.users.astype(np.int64) * self.n_items + exclude.items)
        return _contains(excluded_keys, self._keys(items))

    def averaged(self, per_user: np.ndarray) -> float:
        """The mean of a per-row metric over the rows whose user has a relevant item."""
        counted = self.n_relevant > 0
        if not counted.any():
            raise ValueError("no user of recommended has a relevant item in relevant: the metric is undefined")
        return float(np.mean(per_user[counted]))


def _dense(values: np.ndarray, ids: Any, count: int, name: str) -> np.ndarray:
    """Ids as dense int64 indices through an id map (unknown ids: -1), or checked indices without one."""
    if ids is not None:
        return ids.to_index(values.ravel(), name, unknown="ignore").reshape(values.shape)
    if values.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer indices (relevant has no id map), got dtype {values.dtype}")
    dense = values.astype(np.int64)
    dense[(dense < 0) | (dense >= count)] = -1
    return dense


def _compacted(items: np.ndarray, dropped: np.ndarray) -> np.ndarray:
    """Each row without its dropped entries, the rest moved to the front in order, -1 after them."""
    # A stable sort on the drop mask moves the kept items to the front of each row, in order.
    order = np.argsort(dropped, axis=1, kind="stable")
    moved = np.take_along_axis(items, order, axis=1)
    moved[np.take_along_axis(dropped, order, axis=1)] = -1
    return moved


def _first_columns(items: np.ndarray, k: int) -> np.ndarray:
    """The first k columns, padded with -1 when there are fewer."""
    if items.shape[1] >= k:
        return items[:, :k]
    return np.hstack([items, np.full((len(items), k - items.shape[1]), -1, dtype=items.dtype)])


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct keys by sort and mask (np.unique is much slower on large arrays)."""
    keys = np.sort(keys)
    if keys.size:
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    return keys


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Elementwise: is each of `keys` in `sorted_keys`?"""
    if sorted_keys.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    positions = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[positions] == keys


def precision_at_k(recommended: Any, relevant: Ratings, k: int = 10, *, users: Any = None,
                   threshold: float | None = None, exclude: Ratings | None = None) -> float:
    """Mean over users of ``|top-k ∩ relevant| / k`` (see the module docstring for the arguments)."""
    lists = _Lists(recommended, relevant, k, users, threshold, exclude)
    return lists.averaged(lists.hits.sum(axis=1) / lists.k)


def recall_at_k(recommended: Any, relevant: Ratings, k: int = 10, *, users: Any = None,
                threshold: float | None = None, exclude: Ratings | None = None) -> float:
    """Mean over users of ``|top-k ∩ relevant| / |relevant|``."""
    lists = _Lists(recommended, relevant, k, users, threshold, exclude)
    return lists.averaged(lists.hits.sum(axis=1) / np.maximum(lists.n_relevant, 1))


def ndcg_at_k(recommended: Any, relevant: Ratings, k: int = 10, *, users: Any = None,
              threshold: float | None = None, exclude: Ratings | None = None) -> float:
    """Mean over users of DCG@k / ideal DCG@k, with binary relevance and gain 1 / log2(rank + 1)."""
    lists = _Lists(recommended, relevant, k, users, threshold, exclude)
    discounts = 1.0 / np.log2(np.arange(2, lists.k + 2))
    dcg = lists.hits @ discounts
    ideal = np.cumsum(discounts)[np.clip(lists.n_relevant, 1, lists.k) - 1]
    return lists.averaged(dcg / ideal)


def map_at_k(recommended: Any, relevant: Ratings, k: int = 10, *, users: Any = None,
             threshold: float | None = None, exclude: Ratings | None = None) -> float:
    """Mean over users of AP@k = sum over hits of the precision at the hit's rank, / ``min(|relevant|, k)``."""
    lists = _Lists(recommended, relevant, k, users, threshold, exclude)
    precision_at_rank = np.cumsum(lists.hits, axis=1) / np.arange(1, lists.k + 1)
    average_precision = (precision_at_rank * lists.hits).sum(axis=1) / np.clip(lists.n_relevant, 1, lists.k)
    return lists.averaged(average_precision)


def coverage(recommended: Any, n_items: int) -> float:
    """The share of the catalogue's `n_items` items that appear in at least one list. Padding is
    what recommend_all masks (or a NaN score); in an integer array that is not masked, negative
    entries are padding too (dense indices)."""
    n_items = as_integer(n_items, "n_items", 1)
    items, padding = _items_and_padding(recommended)
    if not np.ma.isMaskedArray(recommended if not isinstance(recommended, tuple) else recommended[0]):
        if items.dtype.kind in "iu":
            padding = padding | (items < 0)
    shown = items[~padding]
    distinct = len(_sorted_unique(shown)) if shown.size else 0
    return distinct / n_items


def evaluate(model: Any, test: Ratings, k: int = 10, *, threshold: float | None = None) -> dict[str, float]:
    """Every metric of a fitted model on a held-out `test` set that uses the model's ids.

    The ranking metrics of the top-k lists that `model.recommend_all` gives the test users, leaving
    out what they had in training: precision, recall, NDCG and MAP at k, with the test pairs as the
    relevant items (those rated at least `threshold`, when given), and the coverage of those lists
    over the model's items. For a model that predicts ratings (``model.predicts_ratings``), also
    RMSE and MAE of its predictions for the test pairs.
    """
    if not isinstance(test, Ratings):
        raise TypeError(f"test must be a latentmf.Ratings, got {type(test).__name__}")
    if test.user_ids != model.user_ids_ or test.item_ids != model.item_ids_:
        raise ValueError("test must map ids like the model: split it from the training Ratings, or build it "
                         "with ids_from=model")
    report: dict[str, float] = {}
    if model.predicts_ratings:
        raw_users = test.users if test.user_ids is None else test.user_ids.to_ids(test.users)
        raw_items = test.items if test.item_ids is None else test.item_ids.to_ids(test.items)
        predictions = model.predict(raw_users, raw_items)
        report.update(rmse=rmse(test.values, predictions), mae=mae(test.values, predictions))
    users = _sorted_unique(test.users.astype(np.int64))
    row_users = users if test.user_ids is None else test.user_ids.to_ids(users)
    lists = model.recommend_all(row_users, k=k, exclude_seen=True)
    report.update({
        f"precision@{k}": precision_at_k(lists, test, k, users=row_users, threshold=threshold),
        f"recall@{k}": recall_at_k(lists, test, k, users=row_users, threshold=threshold),
        f"ndcg@{k}": ndcg_at_k(lists, test, k, users=row_users, threshold=threshold),
        f"map@{k}": map_at_k(lists, test, k, users=row_users, threshold=threshold),
        "coverage": coverage(lists, model.n_items_),
    })
    return report
