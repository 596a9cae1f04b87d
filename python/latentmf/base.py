"""FactorModel: what every latent-factor model of latentmf shares.

A model class adds a solver and its hyper-parameters (see `MatrixFactorization`); this base owns
the rest: scikit-learn's parameter interface, the fitted state (one `FittedState`, set through
`_set_state` only), the training entry points and their epoch loop (`latentmf.training`), the
thread guard, ids in and out, predictions, top-N lists, similar items and users, fold-in of new
users, model files and pickling.

A subclass provides:

- ``__init__`` storing its keyword hyper-parameters, and ``_settings()`` checking them;
- ``_layout(settings)``: the native arrays its models use (see `latentmf.state.NATIVE_ARRAYS`);
- ``_start(data, settings, epochs)`` and ``_continue(state, data, settings, epochs)``: the
  initial state and the solver's `Trainer`;
- ``_validation(held_out)``: the validation entries of the history after an epoch;
- ``_solve_user(items, values)``: the factors and bias of a user folded in from interactions;
- the class attributes below.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar, Mapping, NamedTuple

import numpy as np

from . import _core, training
from ._checks import as_integer, as_real, as_threads
from .data import Ratings, value_array, as_ratings
from .guard import Guarded, reads, trains
from .idmap import IdMap, as_id_array
from .state import FittedState, SeenItems, empty_history


class NotFittedError(ValueError, AttributeError):
    """The model was used before `fit`."""


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


#: Every model class by its model-file format name (filled by FactorModel.__init_subclass__).
MODEL_CLASSES: dict[str, type[FactorModel]] = {}


class FactorModel(Guarded):
    """The base of latentmf's models: see the module's documentation."""

    #: The format name of the class's model files and pickles.
    _FORMAT: ClassVar[str]
    #: The entries of history_, per epoch.
    _HISTORY_KEYS: ClassVar[tuple[str, ...]]
    #: Early stopping watches this entry of the history; True when larger is better.
    _MONITOR: ClassVar[tuple[str, bool]] = ("validation_rmse", False)

    _state_: FittedState | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_FORMAT" in cls.__dict__:
            MODEL_CLASSES[cls._FORMAT] = cls

    # scikit-learn's parameter interface

    @classmethod
    def _parameter_names(cls) -> tuple[str, ...]:
        """The __init__ arguments, in order (read from its code, so they cannot drift apart)."""
        code = cls.__init__.__code__
        return code.co_varnames[1:code.co_argcount + code.co_kwonlyargcount]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyper-parameters, by name (scikit-learn's estimator interface)."""
        return {name: getattr(self, name) for name in self._parameter_names()}

    def set_params(self, **params: Any) -> FactorModel:
        """Set hyper-parameters by name; they are checked when fit runs. Returns self."""
        valid = self._parameter_names()
        for name in params:
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid parameters are "
                                 f"{', '.join(valid)}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._parameter_names()[:3])
        return f"{type(self).__name__}({shown})"

    # Hooks of the model classes

    def _settings(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _layout(cls, settings: Mapping[str, Any]) -> tuple[str, ...]:
        raise NotImplementedError

    def _start(self, data: Ratings, settings: dict[str, Any], epochs: int) -> tuple[FittedState, training.Trainer]:
        raise NotImplementedError

    def _continue(self, state: FittedState, data: Ratings, settings: dict[str, Any],
                  epochs: int) -> training.Trainer:
        raise NotImplementedError

    def _validation(self, held_out: Ratings) -> dict[str, float]:
        raise NotImplementedError

    def _solve_user(self, items: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    def _training_data(self, X: Any, y: Any) -> Ratings:
        """The training ratings of fit(X) or fit(X, y)."""
        if y is not None:
            raise TypeError(f"{type(self).__name__}.fit takes no y: pass the interactions as X (validation is a "
                            "keyword argument)")
        return as_ratings(X)

    def _unknown_policy(self) -> str:
        """What ids the training data did not have become: "error" raises, "mean" marks them -1."""
        return "error"

    # Fitted state

    def _set_state(self, state: FittedState) -> None:
        """Make `state` this model's fitted state: the only way anything becomes fitted state."""
        expected = self._layout(state.settings)
        if tuple(state.layout) != expected:
            raise ValueError(f"the state's arrays {list(state.layout)} are not those of a {type(self).__name__} with "
                             f"its settings ({list(expected)})")
        if tuple(state.history) != self._HISTORY_KEYS:
            raise ValueError(f"history must have the keys {list(self._HISTORY_KEYS)}, got {list(state.history)}")
        self.__dict__["_state_"] = state

    def _state(self) -> FittedState:
        state = self.__dict__.get("_state_")
        if state is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit first")
        return state

    def _is_fitted(self) -> bool:
        return self.__dict__.get("_state_") is not None

    # Training

    @trains
    def fit(self, X: Any = None, y: Any = None, *, validation: Any = None,
            callbacks: Iterable[training.Callback] | None = None, backend: Any = None) -> FactorModel:
        """Fit to `X`; returns self.

        `validation`, if given, is scored after every epoch (see history_); it must use the
        training data's ids (split it from the same Ratings, or build it with ``ids_from=``).
        `callbacks` are called after every epoch as ``callback(model, record)``, with record the
        epoch's entries of history_; one that returns True stops training. `backend` trains
        elsewhere than in this process (`latentmf.dask.DaskBackend`); X is then not given.

        Each fit starts from a fresh model (arrays taken from an earlier fit keep the old values),
        unless warm_start is set and the model is fitted: then it continues. Bad arguments raise
        before anything changes. If the loss stops being finite, fit restores the last finite
        epoch and raises FloatingPointError; on KeyboardInterrupt it restores the last finished
        epoch and re-raises. Another thread using this model meanwhile gets a RuntimeError.
        """
        settings = self._settings()
        hooks = _checked_callbacks(callbacks)
        epochs = settings["epochs"]
        if backend is not None:
            if X is not None or y is not None or validation is not None:
                raise ValueError("fit(backend=...) takes its data from the back-end: pass no X, y or validation")
            if settings.get("warm_start") and self._is_fitted():
                raise ValueError(f"{type(backend).__name__} always starts a fresh fit: set warm_start=False")
            _check_early_stopping(settings, None)
            state, trainer = backend.start(settings, self._layout(settings), empty_history(self._HISTORY_KEYS))
            previous = self.__dict__.get("_state_")
            self._set_state(state)
            try:
                self._train(state, trainer, None, settings, epochs, hooks)
            except training.StateLost:
                self.__dict__["_state_"] = previous
                raise
            return self
        data = self._training_data(X, y)
        held_out = None if validation is None else _check_validation(as_ratings(validation), data)
        _check_early_stopping(settings, held_out)
        if settings.get("warm_start") and self._is_fitted():
            state = self._state()
            trainer = self._continue(state, data, settings, epochs)
            state = state.replace(training=data, seen=SeenItems(ratings=data))
        else:
            state, trainer = self._start(data, settings, epochs)
        self._set_state(state)
        self._train(state, trainer, held_out, settings, epochs, hooks)
        return self

    @trains
    def partial_fit(self, X: Any = None, epochs: int = 1, *, validation: Any = None,
                    callbacks: Iterable[training.Callback] | None = None) -> FactorModel:
        """Continue training for `epochs` more epochs; returns self.

        `X` defaults to the training data of the last fit; other data must have the same users and
        items (n_users, n_items and id maps). The native model, its solver state and the epoch count
        carry on. On an unfitted model it starts one from `X`. After `latentmf.load` or unpickling,
        the training data is not kept: pass it.
        """
        settings = self._settings()
        epochs = as_integer(epochs, "epochs", 0)
        hooks = _checked_callbacks(callbacks)
        fitted = self._is_fitted()
        if X is None:
            data = self._state().training if fitted else None
            if data is None:
                raise ValueError("partial_fit needs training data: this model has none of its own (it is not fitted, "
                                 "or was loaded, unpickled or fitted on a cluster, which keeps no training data)")
        else:
            data = self._training_data(X, None)
        held_out = None if validation is None else _check_validation(as_ratings(validation), data)
        _check_early_stopping(settings, held_out)
        if fitted:
            state = self._state()
            trainer = self._continue(state, data, settings, epochs)
            state = state.replace(training=data, seen=SeenItems(ratings=data))
        else:
            state, trainer = self._start(data, settings, epochs)
        self._set_state(state)
        self._train(state, trainer, held_out, settings, epochs, hooks)
        return self

    def _train(self, state: FittedState, trainer: training.Trainer, held_out: Ratings | None,
               settings: Mapping[str, Any], epochs: int, callbacks: list[training.Callback]) -> None:
        patience = settings.get("early_stopping")
        key, larger_is_better = self._MONITOR
        plan = training.Plan(
            epochs=epochs, history_keys=self._HISTORY_KEYS, callbacks=callbacks,
            validate=None if held_out is None else lambda: self._validation(held_out),
            early_stopping=None if patience is None else (patience, key, larger_is_better),
            verbose=bool(settings.get("verbose")), progress=bool(settings.get("progress")))
        training.run(state, trainer, plan, self, self._set_state)

    def _check_continuable(self, state: FittedState, data: Ratings, settings: Mapping[str, Any],
                           structural: tuple[str, ...]) -> None:
        """Training can continue only with the same structure and on the same users and items."""
        for name in structural:
            if settings[name] != state.settings[name]:
                raise ValueError(f"{name} is {settings[name]!r} but the fitted model has {state.settings[name]!r}: "
                                 f"training can only continue with the same {', '.join(structural)} (set "
                                 "warm_start=False to fit anew)")
        if (data.n_users, data.n_items) != (state.data.n_users, state.data.n_items):
            raise ValueError(f"the ratings have n_users={data.n_users}, n_items={data.n_items} but the fitted model "
                             f"has {state.data.n_users} and {state.data.n_items}: training can only continue on the "
                             "same users and items")
        if not state.data.same_ids(data):
            raise ValueError("the ratings map ids differently from the fitted model: build them with "
                             "ids_from=model to continue training")

    # Learned state, as attributes

    @property
    def U(self) -> np.ndarray:
        """The user factors (n_users x F), a writeable view of the model's memory."""
        return self._state().native.U

    @property
    def V(self) -> np.ndarray:
        """The item factors (n_items x F), a writeable view of the model's memory."""
        return self._state().native.V

    @property
    def user_bias_(self) -> np.ndarray | None:
        state = self._state()
        return state.native.user_bias if state.biases else None

    @property
    def item_bias_(self) -> np.ndarray | None:
        state = self._state()
        return state.native.item_bias if state.biases else None

    @property
    def global_mean_(self) -> float:
        state = self._state()
        return float(state.native.global_mean) if state.biases else 0.0

    @property
    def mean_rating_(self) -> float:
        return self._state().data.mean

    @property
    def n_users_(self) -> int:
        return self._state().data.n_users

    @property
    def n_items_(self) -> int:
        return self._state().data.n_items

    @property
    def user_ids_(self) -> IdMap | None:
        return self._state().data.user_ids

    @property
    def item_ids_(self) -> IdMap | None:
        return self._state().data.item_ids

    @property
    def history_(self) -> dict[str, list[float]]:
        return self._state().history

    @property
    def best_epoch_(self) -> int | None:
        return self._state().best_epoch

    @property
    def fit_report_(self) -> Any:
        """What the training back-end reported of the fit (a latentmf.dask.DaskFitReport), or None."""
        return self._state().report

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

    def _indices(self, values: Any, side: str, name: str, *, unknown: str | None = None) -> np.ndarray:
        """Dense int64 indices of user or item ids (raw ids when the model has an id map).

        Ids the model does not know raise ValueError under the "error" policy; under "mean" they
        come back as -1.
        """
        data = self._state().data
        ids = data.user_ids if side == "user" else data.item_ids
        count = data.n_users if side == "user" else data.n_items
        policy = self._unknown_policy() if unknown is None else unknown
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
            raise ValueError(f"{where} = {shown}{self._unknown_hint(side) if unknown is None else ''}")
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
            return self._predict_indices(user_indices, item_indices)
        predictions = np.empty(len(known), dtype=self._state().dtype)
        predictions[known] = self._predict_indices(user_indices[known], item_indices[known])
        predictions[~known] = self._predict_unknown(user_indices[~known], item_indices[~known])
        return predictions

    def _predict_indices(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        native = self._state().native
        if users.dtype != items.dtype:
            users, items = users.astype(np.int64), items.astype(np.int64)
        global_mean, user_bias, item_bias = self._bias_arguments()
        return _core.predict(native.U, native.V, users, items, global_mean, user_bias, item_bias, self._threads())

    def _rmse(self, data: Ratings, chunk: int = 1 << 20) -> float:
        """RMSE of the predictions for `data` (indices of this model), a chunk at a time:
        whole-array temporaries would cost 16+ bytes per rating."""
        squared = 0.0
        for start in range(0, len(data), chunk):
            part = slice(start, start + chunk)
            errors = np.subtract(self._predict_indices(data.users[part], data.items[part]), data.values[part],
                                 dtype=np.float64)
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
        items, scores = self._recommend(self._indices(user, "user", "user"), k, exclude_seen)
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
        indices = (np.arange(self.n_users_, dtype=np.int64) if users is None
                   else self._indices(users, "user", "users"))
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
        indices = self._indices(items, "item", "items")
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
        return predictions.astype(state.dtype)

    # Model files and pickles

    @reads
    def save(self, path: Any) -> None:
        """Write the model to `path` (see `latentmf.persistence` for the format), atomically:
        a reader never sees a half-written file. Any file name works; ".npz" is the convention."""
        from . import persistence

        persistence.save(path, self._FORMAT, self.get_params(), self._state())

    @reads
    def __getstate__(self) -> dict[str, Any]:
        """Hyper-parameters, plus the fitted state in the model file's form (no native object)."""
        state: dict[str, Any] = {"params": self.get_params()}
        if self._is_fitted():
            from . import persistence

            state["model"] = persistence.state_members(self._FORMAT, self._state())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.set_params(**state["params"])
        if "model" in state:
            from . import persistence

            header, arrays = state["model"]
            self._set_state(persistence.restore_state(self._FORMAT, header, arrays))


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


def _checked_callbacks(callbacks: Iterable[training.Callback] | None) -> list[training.Callback]:
    hooks = [] if callbacks is None else list(callbacks)
    for position, hook in enumerate(hooks):
        if not callable(hook):
            raise TypeError(f"callbacks[{position}] must be callable, got {type(hook).__name__}")
    return hooks


def _check_early_stopping(settings: Mapping[str, Any], held_out: Ratings | None) -> None:
    if settings.get("early_stopping") is not None and held_out is None:
        raise ValueError("early_stopping needs a validation set: fit(..., validation=...)")


def _check_validation(held_out: Ratings, data: Ratings) -> Ratings:
    if held_out.user_ids != data.user_ids or held_out.item_ids != data.item_ids:
        raise ValueError("validation must map ids like the training ratings: split both from one Ratings, or "
                         "build validation with Ratings.from_dataframe(..., ids_from=training_ratings)")
    if held_out.users.max() >= data.n_users:
        raise ValueError(f"validation has user {held_out.users.max()}, but the training ratings "
                         f"have n_users={data.n_users}")
    if held_out.items.max() >= data.n_items:
        raise ValueError(f"validation has item {held_out.items.max()}, but the training ratings "
                         f"have n_items={data.n_items}")
    return held_out




# What model files (latentmf.persistence) need of the model classes.


def model_class(format_name: Any) -> type[FactorModel]:
    """The model class of a model-file format name; ValueError for a name no class has."""
    if not isinstance(format_name, str) or format_name not in MODEL_CLASSES:
        raise ValueError(f"the header does not describe a latentmf model (format {format_name!r}; known: "
                         f"{', '.join(sorted(MODEL_CLASSES))})")
    return MODEL_CLASSES[format_name]


def fitted_settings(format_name: str, params: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The checked settings of a model of that format with those hyper-parameters, and the native
    arrays it uses; ValueError (or TypeError) for hyper-parameters the class refuses."""
    cls = model_class(format_name)
    unknown = set(params) - set(cls._parameter_names())
    if unknown:
        raise ValueError(f"unknown hyper-parameters {sorted(unknown)}")
    settings = cls(**params)._settings()
    return settings, cls._layout(settings)


def new_model(format_name: str, params: Mapping[str, Any], state: FittedState) -> FactorModel:
    """A model of that format with those hyper-parameters and that fitted state."""
    model = model_class(format_name)(**params)
    model._settings()
    model._set_state(state)
    return model
