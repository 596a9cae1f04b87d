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
  state to train (a fresh one, or the fitted one to continue) and the solver's `Trainer`;
- ``_native_width(settings, derived)`` and ``_check_solver_state(state)`` when its native model
  is not F wide or its solver keeps arrays of its own (both have defaults);
- ``_validation(held_out)``: the validation entries of the history after an epoch;
- ``_solve_user(items, values)``: the factors and bias of a user folded in from interactions;
- the class attributes below.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any, ClassVar, Mapping

import numpy as np

from . import training
from ._checks import MAX_SEED, as_integer, as_real, as_threads
from .answers import Answers
from .data import Ratings, as_ratings
from .guard import Guarded, reads, trains
from .idmap import IdMap
from .state import FittedState, SeenItems, empty_history


class NotFittedError(ValueError, AttributeError):
    """The model was used before `fit`."""


DTYPES = ("float32", "float64")

#: Every model class by its model-file format name (filled by FactorModel.__init_subclass__).
MODEL_CLASSES: dict[str, type[FactorModel]] = {}


class FactorModel(Answers, Guarded):
    """The base of latentmf's models: see the module's documentation."""

    #: The format name of the class's model files and pickles.
    _FORMAT: ClassVar[str]
    #: The entries of ``history_``, per epoch.
    _HISTORY_KEYS: ClassVar[tuple[str, ...]]
    #: Early stopping watches this entry of the history; True when larger is better.
    _MONITOR: ClassVar[tuple[str, bool]] = ("validation_rmse", False)
    #: Whether predict gives ratings (on the training ratings' scale), which RMSE can judge, or
    #: scores that only rank.
    predicts_ratings: ClassVar[bool] = False

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
        """The hyper-parameters, checked (raises before anything is changed), by name."""
        raise NotImplementedError

    def _unused_settings(self, settings: Mapping[str, Any]) -> str | None:
        """A warning naming given hyper-parameters that these settings do not read, or None."""
        return None

    def _shared_settings(self, flags: tuple[str, ...] = (), defaulted: tuple[str, ...] = ()) -> dict[str, Any]:
        """The checked hyper-parameters every model class has (factors, epochs, init_std, dtype,
        threads, seed, verbose, early_stopping, warm_start, progress) and the class's own
        True/False ones named in `flags`. Values stay valid hyper-parameters (threads None: all
        cores), so that a fit's settings make a model again. Those named in `defaulted` (epochs,
        init_std) may be None, for the class to resolve."""
        try:
            dtype = np.dtype(self.dtype).name  # type: ignore[attr-defined]
        except TypeError:
            dtype = repr(self.dtype)  # type: ignore[attr-defined]
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")  # type: ignore[attr-defined]
        for name in ("verbose", "warm_start", "progress", *flags):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        early_stopping = getattr(self, "early_stopping")
        threads = as_threads(getattr(self, "threads"))
        return {
            "factors": as_integer(getattr(self, "factors"), "factors", 1, 1 << 20),
            "epochs": None if "epochs" in defaulted and getattr(self, "epochs") is None
            else as_integer(getattr(self, "epochs"), "epochs", 0),
            "init_std": None if "init_std" in defaulted and getattr(self, "init_std") is None
            else as_real(getattr(self, "init_std"), "init_std", 0.0),
            "dtype": dtype,
            "threads": None if threads == 0 else threads,
            "seed": as_integer(getattr(self, "seed"), "seed", 0, MAX_SEED),
            "early_stopping": None if early_stopping is None else as_integer(early_stopping, "early_stopping", 1),
            **{name: bool(getattr(self, name)) for name in ("verbose", "warm_start", "progress", *flags)},
        }

    @classmethod
    def _layout(cls, settings: Mapping[str, Any]) -> tuple[str, ...]:
        raise NotImplementedError

    def _start(self, data: Ratings, settings: dict[str, Any], epochs: int) -> tuple[FittedState, training.Trainer]:
        raise NotImplementedError

    def _continue(self, state: FittedState, data: Ratings, settings: dict[str, Any],
                  epochs: int) -> tuple[FittedState, training.Trainer]:
        raise NotImplementedError

    @classmethod
    def _native_width(cls, settings: Mapping[str, Any], derived: Mapping[str, float]) -> int:
        """The columns of the native model's U and V."""
        return int(settings["factors"])

    def _check_solver_state(self, state: FittedState) -> None:
        """ValueError unless the state's solver arrays are what this model's solver keeps."""
        if state.solver_state:
            raise ValueError(f"a {type(self).__name__} keeps no solver arrays, got {sorted(state.solver_state)}")

    def _validation(self, held_out: Ratings) -> dict[str, float]:
        raise NotImplementedError

    def _training_data(self, X: Any, y: Any) -> Ratings:
        """The training ratings of fit(X) or fit(X, y)."""
        if y is not None:
            raise TypeError(f"{type(self).__name__}.fit takes no y: pass the interactions as X (validation is a "
                            "keyword argument)")
        return as_ratings(X)

    # Fitted state

    def _set_state(self, state: FittedState) -> None:
        """Make `state` this model's fitted state: the only way anything becomes fitted state."""
        expected = self._layout(state.settings)
        if tuple(state.layout) != expected:
            raise ValueError(f"the state's arrays {list(state.layout)} are not those of a {type(self).__name__} with "
                             f"its settings ({list(expected)})")
        if tuple(state.history) != self._HISTORY_KEYS:
            raise ValueError(f"history must have the keys {list(self._HISTORY_KEYS)}, got {list(state.history)}")
        width = self._native_width(state.settings, state.derived)
        if state.n_factors != width:
            raise ValueError(f"the state's factors are {state.n_factors} wide, but its settings make them {width}")
        self._check_solver_state(state)
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

        `validation`, if given, is scored after every epoch (see ``history_``); it must use the
        training data's ids (split it from the same Ratings, or build it with ``ids_from=``).
        `callbacks` are called after every epoch as ``callback(model, record)``, with record the
        epoch's entries of ``history_``; one that returns True stops training. `backend` trains
        elsewhere than in this process (`latentmf.dask.DaskBackend`); X is then not given.

        Each fit starts from a fresh model (arrays taken from an earlier fit keep the old values),
        unless warm_start is set and the model is fitted: then it continues. Bad arguments raise
        before anything changes. If the loss stops being finite, fit restores the last finite
        epoch and raises FloatingPointError; on KeyboardInterrupt it restores the last finished
        epoch and re-raises. Another thread using this model meanwhile gets a RuntimeError.
        """
        settings = self._training_settings()
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
        continuing = bool(settings.get("warm_start")) and self._is_fitted()
        self._fit_data(data, validation, settings, epochs, hooks, continuing=continuing)
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
        settings = self._training_settings()
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
        self._fit_data(data, validation, settings, epochs, hooks, continuing=fitted)
        return self

    def _training_settings(self) -> dict[str, Any]:
        """The checked settings of a fit; warns of given hyper-parameters that the fit will not read."""
        settings = self._settings()
        unused = self._unused_settings(settings)
        if unused is not None:
            # stacklevel: this method, fit or partial_fit, their guard's wrapper, then the caller.
            warnings.warn(unused, UserWarning, stacklevel=4)
        return settings

    def _fit_data(self, data: Ratings, validation: Any, settings: dict[str, Any], epochs: int,
                  callbacks: list[training.Callback], *, continuing: bool) -> None:
        """`epochs` epochs on `data`: continuing the fitted model, or from a fresh one."""
        held_out = None if validation is None else _check_validation(as_ratings(validation), data)
        _check_early_stopping(settings, held_out)
        if continuing:
            state, trainer = self._continue(self._state(), data, settings, epochs)
            state = state.replace(training=data, seen=SeenItems(ratings=data))
        else:
            state, trainer = self._start(data, settings, epochs)
        self._set_state(state)
        self._train(state, trainer, held_out, settings, epochs, callbacks)

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


def fitted_settings(format_name: str, params: Mapping[str, Any],
                    derived: Mapping[str, float]) -> tuple[dict[str, Any], tuple[str, ...], int]:
    """The checked settings of a model of that format with those hyper-parameters, the native
    arrays it uses and their width given what its fit `derived`; ValueError (or TypeError) for
    hyper-parameters the class refuses."""
    cls = model_class(format_name)
    unknown = set(params) - set(cls._parameter_names())
    if unknown:
        raise ValueError(f"unknown hyper-parameters {sorted(unknown)}")
    settings = cls(**params)._settings()
    return settings, cls._layout(settings), cls._native_width(settings, derived)


def new_model(format_name: str, params: Mapping[str, Any], state: FittedState) -> FactorModel:
    """A model of that format with those hyper-parameters and that fitted state."""
    model = model_class(format_name)(**params)
    model._settings()
    model._set_state(state)
    return model
