"""What a fitted factor model answers, in the ids of its training data: predictions, top-N lists,
similar items and users, and users folded in without retraining. A mixin of `FactorModel`, which
holds the fitted state these read."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from . import _core
from ._checks import as_integer, as_real, as_threads
from .data import Ratings, value_array
from .guard import reads
from .idmap import as_id_array
from .state import FittedState


class UserFactors(NamedTuple):
    """What `fold_in` computes for a user the model was not trained on: the factor vector (F,) and
    the user bias (0.0 for a model without biases)."""

    factors: np.ndarray
    bias: float


class TopItems(NamedTuple):
    """Top-N lists of many users (`recommend_all`): items and scores of shape (users, k), best
    first. Where fewer than k items are left for a user, the rest of the row is masked (numpy
    masked arrays): no value of the item dtype stands for "no item", so padding can never be
    mistaken for a real item id. Row n without its masked entries is what `recommend` gives."""

    items: np.ma.MaskedArray
    scores: np.ma.MaskedArray


class UnknownIdError(ValueError):
    """An id the model's training data did not have. `problem` names the id, `hint` (possibly
    empty) says how the model could answer it instead; the message is both."""

    def __init__(self, problem: str, hint: str = "") -> None:
        super().__init__(problem + hint)
        self.problem, self.hint = problem, hint


class UnknownIdWarning(UserWarning):
    """A prediction met user or item ids the model was not trained on, and answered them from what
    it knows (see MatrixFactorization's `unknown`)."""


class Answers:
    """Predictions, top-N, similarity and fold-in over a model's fitted state.

    A model class may override: ``_unknown_policy(use)`` (what unknown ids become in predict,
    recommend or fold_in), ``_unknown_hint(side)``, ``_note_unknown(count, total)`` (after a
    prediction that met unknown ids), ``_predict_unknown(users, items)`` and ``_cold_top(k)``
    (answers for unknown ids under a policy that keeps them), ``_output(predictions)`` (what
    predictions become, e.g. clipped), and must provide ``_solve_user(items, values)`` (the row
    solve of fold_in).
    """

    def _state(self) -> FittedState:
        raise NotImplementedError

    def _solve_user(self, items: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    def _unknown_policy(self, use: str) -> str:
        """What ids the training data did not have become in `use` ("predict", "recommend" or
        "fold_in"): "error" raises, "mean" marks them -1 for the method to answer them."""
        return "error"

    def _note_unknown(self, count: int, total: int) -> None:
        """Called when a prediction of `total` pairs answered `count` with unknown ids."""

    def _output(self, predictions: np.ndarray) -> np.ndarray:
        """Predictions as predict returns them (in place)."""
        return predictions

    def _threads(self) -> int:
        """The binding's thread count from the current `threads` (it never changes a result, so
        predict and recommend follow set_params(threads=...) after fit)."""
        return as_threads(getattr(self, "threads", None))

    def _bias_arguments(self) -> tuple[float, Any, Any]:
        state = self._state()
        if not state.biases:
            return 0.0, None, None
        return state.native.global_mean, state.native.user_bias, state.native.item_bias

    # Ids in and out

    def _indices(self, values: Any, side: str, name: str, *, use: str = "predict",
                 unknown: str | None = None) -> np.ndarray:
        """Dense int64 indices of user or item ids (raw ids when the model has an id map).

        Ids the model does not know raise ValueError under the "error" policy; under "mean" they
        come back as -1. The policy is `unknown`, or the model's for `use`.
        """
        data = self._state().data
        ids = data.user_ids if side == "user" else data.item_ids
        count = data.n_users if side == "user" else data.n_items
        policy = self._unknown_policy(use) if unknown is None else unknown
        if np.ndim(values) > 1:
            raise ValueError(f"{name} must be one id or a 1-dimensional array of ids, got shape {np.shape(values)}")
        array = np.atleast_1d(np.asarray(values))
        if ids is None:
            indices = as_id_array(array, name)
            if indices.dtype.kind != "i":
                raise TypeError(f"{name} must hold integer indices (the model was trained on {side} indices, not "
                                f"raw ids), got dtype {indices.dtype}")
            known = (indices >= 0) & (indices < count)
        else:
            indices = ids.to_index(array, name, unknown="ignore")
            known = indices >= 0
        if known.all():
            # Columns of an (n, 2) X are strided; the native code reads contiguous arrays.
            return np.ascontiguousarray(indices)
        first = int(np.flatnonzero(~known)[0])
        if policy == "error":
            where = f"{name}[{first}]" if np.ndim(values) else name
            shown = (f"{array[first].item()!r} is not among the {side}s of the training data" if ids is not None
                     else f"{array[first].item()} is outside [0, n_{side}s={count})")
            raise UnknownIdError(f"{where} = {shown}", self._unknown_hint(side) if unknown is None else "")
        return np.where(known, indices, -1)

    def _unknown_hint(self, side: str) -> str:
        """What the error for an unknown id adds (how to get another behaviour)."""
        return ""

    def _item_ids_out(self, items: np.ndarray) -> np.ndarray:
        """Dense item indices (>= 0) as the model's raw item ids."""
        ids = self._state().data.item_ids
        return items if ids is None else ids.to_ids(items)

    def _top_items_out(self, items: np.ndarray, scores: np.ndarray) -> TopItems:
        """Native top-k results (item -1 and score NaN where a row is short) as masked raw ids."""
        padding = items < 0
        raw = self._item_ids_out(np.where(padding, 0, items))
        return TopItems(np.ma.MaskedArray(raw, mask=padding), np.ma.MaskedArray(scores, mask=padding))

    # Predictions

    @reads
    def predict(self, users: Any, items: Any = None) -> np.ndarray:
        """The model's scores for the pairs (users[k], items[k]), in the model's dtype.

        Ids are raw ids when the model has id maps. ``predict(X)`` with X an (n, 2) array of
        (user, item) pairs is scikit-learn's form.
        """
        if items is None:
            pairs = _pairs_array(users, "X")
            users, items = pairs[:, 0], pairs[:, 1]
        user_indices = self._indices(users, "user", "users")
        item_indices = self._indices(items, "item", "items")
        if len(user_indices) != len(item_indices):
            raise ValueError(f"users and items must have the same length, got {len(user_indices)} and "
                             f"{len(item_indices)}")
        known = (user_indices >= 0) & (item_indices >= 0)
        if known.all():
            return self._output(self._predict_indices(user_indices, item_indices))
        predictions = np.empty(len(known), dtype=self._state().dtype)
        predictions[known] = self._predict_indices(user_indices[known], item_indices[known])
        predictions[~known] = self._predict_unknown(user_indices[~known], item_indices[~known])
        self._note_unknown(int(np.count_nonzero(~known)), len(known))
        return self._output(predictions)

    def _predict_indices(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        native = self._state().native
        if users.dtype != items.dtype:
            users, items = users.astype(np.int64), items.astype(np.int64)
        global_mean, user_bias, item_bias = self._bias_arguments()
        return _core.predict(native.U, native.V, users, items, global_mean, user_bias, item_bias, self._threads())

    def _rmse(self, data: Ratings, chunk: int = 1 << 20) -> float:
        """RMSE of predict's predictions for `data` (indices of this model), a chunk at a time:
        whole-array temporaries would cost 16+ bytes per rating."""
        squared = 0.0
        for start in range(0, len(data), chunk):
            part = slice(start, start + chunk)
            predictions = self._output(self._predict_indices(data.users[part], data.items[part]))
            errors = np.subtract(predictions, data.values[part], dtype=np.float64)
            squared += float(errors @ errors)
        return math.sqrt(squared / len(data))

    def _predict_unknown(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores of pairs with an unknown side (-1), under a policy that keeps them."""
        raise NotImplementedError

    # Top-N

    @reads
    def recommend(self, user: Any, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The k items with the highest scores for `user`, best first, as (items, scores).

        With exclude_seen, items the user had in the training data are left out (so fewer than k
        may come back). Ties are broken by the lower item index. `user` and the items returned
        are raw ids when the model has id maps.
        """
        if np.ndim(user) != 0:
            raise TypeError(f"user must be a single id, got shape {np.shape(user)}: use recommend_all for many users")
        k = as_integer(k, "k", 1)
        items, scores = self._recommend(self._indices(user, "user", "user", use="recommend"), k, exclude_seen)
        found = items[0] >= 0
        return self._item_ids_out(items[0][found]), scores[0][found]

    @reads
    def recommend_all(self, users: Any = None, k: int = 10, exclude_seen: bool = True) -> TopItems:
        """The k best items for each of `users` (default: every user, in the order of the rows of U)
        at once, in native code on `threads` threads: a TopItems (items, scores), each of shape
        (len(users), k), best first, ties by the lower item index. Row n holds what
        ``recommend(users[n], k, exclude_seen)`` gives; where that is shorter than k, the rest of
        the row is masked."""
        k = as_integer(k, "k", 1)
        indices = (np.arange(self._state().data.n_users, dtype=np.int64) if users is None
                   else self._indices(users, "user", "users", use="recommend"))
        return self._top_items_out(*self._recommend(indices, k, exclude_seen))

    def _recommend(self, users: np.ndarray, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """Dense (items, scores) of the top k for user indices, -1 marking unknown users."""
        state = self._state()
        native = state.native
        global_mean, user_bias, item_bias = self._bias_arguments()
        seen_offsets, seen_items = state.seen.lists() if exclude_seen else (None, None)
        known = users >= 0
        items, scores = _core.top_items(native.U, native.V, users[known], k, global_mean, user_bias, item_bias,
                                        seen_offsets, seen_items, self._threads())
        if not known.all():
            cold_items, cold_scores = self._cold_top(k)
            items = _fill_rows(items, known, cold_items)
            scores = _fill_rows(scores, known, cold_scores)
        return items, scores

    def _cold_top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top k of a user the model does not know, under a policy that keeps them."""
        raise NotImplementedError

    def _top_for_factors(self, factors: np.ndarray, bias: float, k: int,
                         exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The native top k (dense items, scores) of one user given by a factor vector and bias
        instead of a row of U, leaving out the item indices in `exclude` (-1 entries ignored)."""
        state = self._state()
        excluded = np.unique(exclude[exclude >= 0]).astype(np.int32)
        offsets = np.array([0, len(excluded)], dtype=np.int64)
        global_mean, user_bias, item_bias = self._bias_arguments()
        if user_bias is not None:
            user_bias = np.full(1, bias, dtype=state.dtype)  # the one user's bias, in place of the model's
        items, scores = _core.top_items(np.ascontiguousarray(factors[None, :], dtype=state.dtype), state.native.V,
                                        np.zeros(1, dtype=np.int64), k, global_mean, user_bias, item_bias, offsets,
                                        excluded, self._threads())
        return items[0], scores[0]

    @reads
    def similar_items(self, item: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The k items whose factor vectors are closest to `item`'s by cosine similarity, best first,
        as (items, similarities), leaving out `item` itself. Items with all-zero factors have
        similarity 0. `item` and the result are raw ids when the model has id maps."""
        k = as_integer(k, "k", 1)
        index = self._indices(item, "item", "item", unknown="error")
        items, scores = self._most_similar(self._state().native.V, index, k)
        return self._item_ids_out(items), scores

    @reads
    def similar_users(self, user: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The k users whose factor vectors are closest to `user`'s by cosine similarity, best first,
        as (users, similarities), leaving out `user` itself (as similar_items does for items)."""
        k = as_integer(k, "k", 1)
        index = self._indices(user, "user", "user", unknown="error")
        users, scores = self._most_similar(self._state().native.U, index, k)
        ids = self._state().data.user_ids
        return (users if ids is None else ids.to_ids(users)), scores

    def _most_similar(self, factors: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosine similarities) of the k rows of `factors` closest to row `index`, without it."""
        norms = np.linalg.norm(factors, axis=1, keepdims=True)
        unit = np.ascontiguousarray(factors / np.where(norms > 0, norms, 1), dtype=factors.dtype)
        rows, scores = _core.top_items(unit[index], unit, np.zeros(1, dtype=np.int64), k, 0.0, None, None,
                                       np.array([0, 1], dtype=np.int64), index.astype(np.int32), self._threads())
        found = rows[0] >= 0
        return rows[0][found], scores[0][found]

    # New users without retraining

    @reads
    def fold_in(self, items: Any, values: Any = None) -> UserFactors:
        """Factors for a user the model was not trained on, from their items (and values), with V
        held fixed: the model's own row solve for that one user (see the model class). `items` are
        item ids (raw when the model has id maps); unknown items raise, or are skipped under a
        policy that keeps unknown ids. With no (known) items the user gets the solve of an empty
        row. Use the result with `recommend_for` and `predict_for`; the model is not changed."""
        indices = self._indices(items, "item", "items", use="fold_in")
        ratings = self._fold_in_values(values, len(indices))
        known = indices >= 0
        factors, bias = self._solve_user(indices[known], ratings[known])
        return UserFactors(factors.astype(self._state().dtype), bias)

    def _fold_in_values(self, values: Any, count: int) -> np.ndarray:
        if values is None:
            raise TypeError(f"{type(self).__name__}.fold_in needs the user's values (ratings) of the items")
        ratings = value_array(np.atleast_1d(values), "values").astype(np.float64)
        if len(ratings) != count:
            raise ValueError(f"items and values must have the same length, got {count} and {len(ratings)}")
        if not np.isfinite(ratings).all():
            raise ValueError("values must be finite numbers")
        return ratings

    def _user_factors(self, user: Any) -> tuple[np.ndarray, float]:
        """The (factors, bias) pair of fold_in, checked."""
        n_factors = self._state().n_factors
        try:
            factors, bias = user
        except (TypeError, ValueError):
            raise TypeError("user must be the (factors, bias) pair fold_in returns, got "
                            f"{type(user).__name__}") from None
        vector = np.asarray(factors)
        if vector.shape != (n_factors,) or vector.dtype.kind not in "fiu":
            raise ValueError(f"user must be the (factors, bias) pair fold_in returns, with {n_factors} factors; got "
                             f"factors of shape {vector.shape} and dtype {vector.dtype}")
        return vector, as_real(bias, "bias", -np.inf)

    @reads
    def recommend_for(self, user: UserFactors | tuple[Any, float], k: int = 10,
                      exclude: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The k best items, as (items, scores), for a user given by `fold_in`'s (factors, bias),
        leaving out the items in `exclude` (ids; typically the items the user just rated, which
        the model has no record of). Unknown ids in `exclude` are ignored."""
        factors, bias = self._user_factors(user)
        k = as_integer(k, "k", 1)
        excluded = (np.empty(0, dtype=np.int64) if exclude is None
                    else self._indices(exclude, "item", "exclude", unknown="mean"))
        items, scores = self._top_for_factors(factors, bias, k, excluded)
        found = items >= 0
        return self._item_ids_out(items[found]), scores[found]

    @reads
    def predict_for(self, user: UserFactors | tuple[Any, float], items: Any) -> np.ndarray:
        """The scores of `items` for a user given by `fold_in`'s (factors, bias)."""
        factors, bias = self._user_factors(user)
        indices = self._indices(items, "item", "items")
        state = self._state()
        known = indices >= 0
        scores = state.native.V[indices[known]].astype(np.float64) @ factors.astype(np.float64)
        predictions = np.empty(len(indices))
        if state.biases:
            scores += state.native.global_mean + bias + state.native.item_bias[indices[known]]
            predictions[~known] = state.data.mean + bias
        else:
            predictions[~known] = state.data.mean
        predictions[known] = scores
        if not known.all():
            self._note_unknown(int(np.count_nonzero(~known)), len(known))
        return self._output(predictions.astype(state.dtype))


def _fill_rows(known_rows: np.ndarray, known: np.ndarray, row: np.ndarray) -> np.ndarray:
    """An array with `known_rows` where `known` is true and `row` in every other row."""
    full = np.empty((len(known), len(row)), dtype=known_rows.dtype)
    full[known] = known_rows
    full[~known] = row
    return full


def _pairs_array(X: Any, name: str) -> np.ndarray:
    pairs = np.asarray(X)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"{name} must be an (n, 2) array of (user, item) ids, got shape {pairs.shape}")
    return pairs


