"""MatrixFactorization: the estimator that owns a native model, trains it, and answers in raw ids."""

from __future__ import annotations

import _thread
import functools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

import numpy as np

from . import _core
from ._checks import MAX_SEED, as_integer, as_real, as_threads, check_memory, check_representable
from .data import Ratings, _value_array, as_ratings
from .functions import DEFAULT_BLOCKS
from .idmap import IdMap, as_id_array

SOLVERS = ("sgd", "adagrad", "gd")
DTYPES = ("float32", "float64")
UNKNOWN_POLICIES = ("error", "mean")

#: Steps when none is given (AdaGrad's tuned with the other defaults on MovieLens 100k; plain
#: SGD's is its best on the same data); GD's depends on the data (see _default_gd_learning_rate).
DEFAULT_LEARNING_RATE = {"sgd": 0.015, "adagrad": 0.05}

#: Without biases the initial factors are positive on average, so that predictions start at this
#: fraction of the mean rating: from a zero mean, SGD first spends epochs finding the direction
#: that carries the mean rating.
INITIAL_PREDICTION_FRACTION = 0.1

#: The settings a model is built with; continuing training (warm_start, partial_fit) needs the same.
STRUCTURAL_SETTINGS = ("factors", "dtype", "biases", "solver")

HISTORY_KEYS = ("epoch", "loss", "train_rmse", "validation_rmse", "seconds")

Callback = Callable[["MatrixFactorization", dict[str, float]], Any]


class NotFittedError(ValueError, AttributeError):
    """The model was used before `fit`."""


class UserFactors(NamedTuple):
    """What `fold_in` computes for a user the model was not trained on: the factor vector (F,) and
    the user bias (0.0 for a model without biases)."""

    factors: np.ndarray
    bias: float


class _Guard:
    """Who is using one model at the moment: one thread training it (fit, partial_fit), or any
    number of threads reading it (predict, recommend, save, ...).

    A call that conflicts with one under way in another thread raises RuntimeError at once: it
    never waits (so it cannot deadlock), and a training never runs beside another training or a
    reader of the factors it is changing. The thread that is training may read its own model
    (a callback may predict, recommend or save); it may not start a second training inside the
    first.
    """

    def __init__(self) -> None:
        # _thread rather than threading: the same lock, without 2 ms of import on `import latentmf`.
        self._lock = _thread.allocate_lock()
        self._trainer: tuple[int, str] | None = None  # (thread, method)
        self._readers: dict[int, list[str]] = {}  # thread -> the methods it is in

    @contextmanager
    def training(self, method: str) -> Iterator[None]:
        me = _thread.get_ident()
        with self._lock:
            if self._trainer is not None:
                thread, other = self._trainer
                where = "this thread (a callback cannot start another training)" if thread == me else "another thread"
                raise RuntimeError(f"{method}: this model is already being trained by {other} in {where}; one model "
                                   "trains in one thread at a time (use one model per thread, or wait for "
                                   f"{other} to return)")
            if self._readers:
                other = next(iter(self._readers.values()))[0]
                raise RuntimeError(f"{method}: this model is in use by {other} in another thread; it cannot be "
                                   f"trained until {other} returns (use one model per thread, or wait)")
            self._trainer = (me, method)
        try:
            yield
        finally:
            with self._lock:
                self._trainer = None

    @contextmanager
    def reading(self, method: str) -> Iterator[None]:
        me = _thread.get_ident()
        with self._lock:
            if self._trainer is not None and self._trainer[0] != me:
                raise RuntimeError(f"{method}: this model is being trained by {self._trainer[1]} in another thread, "
                                   f"which is changing its factors; call {method} after {self._trainer[1]} returns "
                                   "(or on another model)")
            self._readers.setdefault(me, []).append(method)
        try:
            yield
        finally:
            with self._lock:
                methods = self._readers[me]
                methods.pop()
                if not methods:
                    del self._readers[me]


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _trains(method: _Method) -> _Method:
    """Marks a method that changes the model: it runs in one thread at a time, with no reader."""

    @functools.wraps(method)
    def guarded(self: MatrixFactorization, *args: Any, **kwargs: Any) -> Any:
        with self._guard().training(method.__name__):
            return method(self, *args, **kwargs)

    return guarded  # type: ignore[return-value]


def _reads(method: _Method) -> _Method:
    """Marks a method that reads the learned state: any number at once, but not beside a training."""

    @functools.wraps(method)
    def guarded(self: MatrixFactorization, *args: Any, **kwargs: Any) -> Any:
        with self._guard().reading(method.__name__):
            return method(self, *args, **kwargs)

    return guarded  # type: ignore[return-value]


def _default_gd_learning_rate(data: Ratings) -> float:
    """Half the step at which plain gradient descent stops being stable for the busiest row,
    whose gradient sums the most ratings."""
    busiest = max(np.bincount(data.users).max(), np.bincount(data.items).max())
    return 0.5 / float(busiest)


class MatrixFactorization:
    """A latent-factor model of ratings, fitted to the observed ratings only.

    It predicts r_hat = mu + b_n + c_m + u_n . v_m with biases (the default), or u_n . v_m without,
    and minimises the squared error plus an L2 penalty charged once per observed rating
    (DESIGN.md): L = 1/2 sum [(r - r_hat)^2 + regularization (|u_n|^2 + |v_m|^2 + b_n^2 + c_m^2)].

    Users and items are the dense indices of the training `Ratings`, or, when those ratings carry
    id maps (`Ratings.from_dataframe`, `Ratings.from_ids`), the raw ids: predict, recommend,
    recommend_all, similar_items and fold_in then take and return the user's own ids.

    It follows scikit-learn's estimator rules (`get_params`, `set_params`, `clone`), and besides
    ``fit(ratings)`` accepts ``fit(X, y)`` with X an (n, 2) array of (user, item) ids and y the
    ratings, ``predict(X)`` and ``score(X, y)``, so GridSearchCV and cross_val_score work.

    Parameters
    ----------
    factors : int
        F, the number of latent factors (columns of U and V).
    solver : {"adagrad", "sgd", "gd"}
        "sgd": stochastic gradient descent over the stratified block grid of DESIGN.md, in
        parallel, with results that do not depend on the number of threads. "adagrad": the same
        with steps per row and group of factors (AdaGrad after LIBMF's schedule, with a first
        epoch on the leading 16 factors; see `latentmf.sgd_epoch`): fewer epochs, notably
        without biases. "gd": full-batch gradient descent on the masked batch gradients.
    epochs : int
        Passes over the ratings (SGD) or gradient steps (GD) per call of fit.
    learning_rate : float, optional
        The step eta. Default: 0.05 for AdaGrad, 0.015 for SGD; for GD, 0.5 divided by the largest
        number of ratings of one user or item (plain GD diverges beyond about twice that).
    learning_rate_decay : float
        Epoch t (from 0, counted over the model's whole training) uses
        eta / (1 + learning_rate_decay * t); 0 keeps the step fixed.
    regularization : float
        lambda, the L2 weight per rating.
    biases : bool
        Learn the global mean mu (fixed to the mean rating) and user and item biases.
    init_std, init_mean : float
        U and V start as independent N(init_mean, init_std^2) draws from
        numpy.random.default_rng(seed); the biases start at 0. init_mean=None means 0 with biases,
        and without biases sqrt(0.1 * mean rating / factors), so that predictions start at a tenth
        of the mean rating.
    dtype : {"float32", "float64"}
        Precision of the factors and of the arithmetic.
    threads : int, optional
        Threads for the native loops; None uses all cores. Never changes the result. predict()
        and recommend_all() use the value set when they are called. More threads than the
        machine has processors run as one per processor.
    blocks : int, optional
        B, the blocks per side of the SGD grid (default 8). The result depends on it.
    seed : int
        Seeds the initial factors and the SGD grid; the same seed gives the same model.
    verbose : bool
        Print one line per epoch (loss, RMSE, seconds).
    early_stopping : int, optional
        Patience: with a validation set, stop once the validation RMSE has not improved for this
        many epochs, and in any case end with the factors of the best epoch (``best_epoch_``).
        None trains for all the epochs and keeps the last.
    warm_start : bool
        When True, calling fit on a fitted model continues training it for `epochs` more epochs
        (same native model, AdaGrad state kept) instead of starting afresh (scikit-learn's
        convention). `partial_fit` always continues.
    progress : bool
        Show a progress bar over the epochs (tqdm, when installed; without it, one line per epoch).
    unknown : {"error", "mean"}
        What predict and recommend do with a user or item id the training data did not have.
        "error": raise ValueError naming it. "mean": predict the mean training rating plus the
        bias of whichever side is known (no factor term), and recommend to an unknown user the
        items with the highest item bias (in item order without biases); unknown items in fold_in
        are skipped. similar_items always raises for an unknown item.

    Threads
    -------
    The native loops release the GIL, so models in different threads train and predict in
    parallel. One model is used by one thread at a time for training: fit and partial_fit are
    exclusive, while predict, score, recommend, recommend_all, similar_items, fold_in,
    recommend_for, predict_for, save and pickling may run in many threads at once. A call that
    conflicts with one under way in another thread (fit beside fit, or predict beside fit)
    raises RuntimeError immediately; it never waits and never reads factors that are being
    changed. The thread that trains may read its own model from a callback. The arrays U, V and
    the biases are views of the model's memory: reading them in one thread while another trains
    the model sees values in the middle of an update, and writing them while any call runs is
    the caller's race.

    Failures
    --------
    Hyper-parameters and data are checked before anything changes: bad ones raise ValueError or
    TypeError naming the argument and leave a fitted model as it was. A model that would not fit
    in physical memory raises MemoryError with the size before anything is allocated. A loss
    that stops being finite raises FloatingPointError and the model keeps its last finite epoch;
    Ctrl-C (KeyboardInterrupt) stops within one sub-epoch and the model keeps its last finished
    epoch, with history_ to match.

    Attributes (after fit)
    ----------------------
    U, V : numpy.ndarray
        The factors, as arrays that view the model's own memory (no copy; writes change the model).
        Row n of U belongs to user ``user_ids_.ids[n]`` (or user index n without an id map).
    user_bias_, item_bias_ : numpy.ndarray or None
        The biases (views as well), None without biases.
    global_mean_ : float
        mu with biases, 0.0 without.
    mean_rating_ : float
        The mean training rating (what unknown ids are predicted from).
    user_ids_, item_ids_ : IdMap or None
        The raw ids of the rows of U and V, None when the training ratings used dense indices.
    history_ : dict of lists
        Per epoch: "epoch" (counted over the whole training), "loss", "train_rmse",
        "validation_rmse" (NaN without validation), "seconds" (wall time, evaluation included).
    best_epoch_ : int or None
        With early_stopping, the epoch whose factors the model keeps; None otherwise.
    """

    # Learned state that is not public (set by fit, partial_fit, latentmf.load and unpickling).
    _native: Any
    _training: Ratings | None
    _seen: tuple[np.ndarray, np.ndarray] | None
    _settings_used: dict[str, Any]
    _default_learning_rate: float

    def __init__(
        self,
        factors: int = 32,
        *,
        solver: str = "adagrad",
        epochs: int = 20,
        learning_rate: float | None = None,
        learning_rate_decay: float = 0.0,
        regularization: float = 0.07,
        biases: bool = True,
        init_std: float = 0.01,
        init_mean: float | None = None,
        dtype: str = "float32",
        threads: int | None = None,
        blocks: int | None = None,
        seed: int = 0,
        verbose: bool = False,
        early_stopping: int | None = None,
        warm_start: bool = False,
        progress: bool = False,
        unknown: str = "error",
    ) -> None:
        self.factors = factors
        self.solver = solver
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.learning_rate_decay = learning_rate_decay
        self.regularization = regularization
        self.biases = biases
        self.init_std = init_std
        self.init_mean = init_mean
        self.dtype = dtype
        self.threads = threads
        self.blocks = blocks
        self.seed = seed
        self.verbose = verbose
        self.early_stopping = early_stopping
        self.warm_start = warm_start
        self.progress = progress
        self.unknown = unknown

    def __repr__(self) -> str:
        return f"MatrixFactorization(factors={self.factors!r}, solver={self.solver!r}, epochs={self.epochs!r})"

    @classmethod
    def _parameter_names(cls) -> tuple[str, ...]:
        """The __init__ arguments, in order (read from its code, so they cannot drift apart)."""
        code = cls.__init__.__code__
        return code.co_varnames[1:code.co_argcount + code.co_kwonlyargcount]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyper-parameters, by name (scikit-learn's estimator interface)."""
        return {name: getattr(self, name) for name in self._parameter_names()}

    def set_params(self, **params: Any) -> MatrixFactorization:
        """Set hyper-parameters by name; they are checked when fit runs. Returns self."""
        valid = self._parameter_names()
        for name in params:
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for MatrixFactorization; valid parameters are "
                                 f"{', '.join(valid)}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self) -> Any:
        # Only scikit-learn calls this, so only then is scikit-learn imported.
        from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags

        return Tags(estimator_type="regressor", target_tags=TargetTags(required=True),
                    regressor_tags=RegressorTags(), input_tags=InputTags(two_d_array=True, string=True))

    def _settings(self) -> dict[str, Any]:
        """The hyper-parameters, checked; raises before anything is changed."""
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        try:
            dtype = np.dtype(self.dtype).name
        except TypeError:
            dtype = repr(self.dtype)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        for name in ("biases", "warm_start", "progress", "verbose"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"unknown must be one of {UNKNOWN_POLICIES}, got {self.unknown!r}")
        settings: dict[str, Any] = {
            "factors": as_integer(self.factors, "factors", 1, 1 << 20),
            "solver": self.solver,
            "epochs": as_integer(self.epochs, "epochs", 0),
            "learning_rate": None if self.learning_rate is None
            else as_real(self.learning_rate, "learning_rate", 0.0, strict=True),
            "decay": as_real(self.learning_rate_decay, "learning_rate_decay", 0.0),
            "regularization": as_real(self.regularization, "regularization", 0.0),
            "biases": bool(self.biases),
            "init_std": as_real(self.init_std, "init_std", 0.0),
            "init_mean": None if self.init_mean is None else as_real(self.init_mean, "init_mean", -np.inf),
            "dtype": dtype,
            "threads": as_threads(self.threads),
            "blocks": DEFAULT_BLOCKS if self.blocks is None else as_integer(self.blocks, "blocks", 1, 1024),
            "seed": as_integer(self.seed, "seed", 0, MAX_SEED),
            "early_stopping": None if self.early_stopping is None
            else as_integer(self.early_stopping, "early_stopping", 1),
        }
        # The model computes in `dtype`: values it cannot hold are refused here, by name.
        if settings["learning_rate"] is not None:
            check_representable(settings["learning_rate"], "learning_rate", dtype, positive=True)
        for name in ("regularization", "init_std", "init_mean"):
            if settings[name] is not None:
                check_representable(settings[name], name, dtype)
        return settings

    # Training

    @_trains
    def fit(self, ratings: Any, validation: Any = None, *,
            callbacks: Iterable[Callback] | None = None) -> MatrixFactorization:
        """Fit to `ratings` (a Ratings or a (users, items, values) tuple); returns self.

        `validation`, if given, is scored after every epoch (history_["validation_rmse"]); it must
        use the training ratings' ids (split it from the same Ratings, or build it with
        ``ids_from=``). scikit-learn's form ``fit(X, y)`` also works: X an (n, 2) array-like of
        (user, item) ids (raw ids are mapped as in `Ratings.from_ids`) and y the n ratings.

        `callbacks` are called after every epoch as ``callback(model, record)``, with record the
        epoch's entries of history_; one that returns True stops training.

        Each fit starts from a fresh model (arrays taken from an earlier fit keep the old values),
        unless warm_start is set and the model is fitted: then it continues. Bad arguments raise
        before anything changes. If the loss stops being finite, fit restores the last finite
        epoch and raises FloatingPointError; on KeyboardInterrupt it restores the last finished
        epoch and re-raises. Another thread using this model meanwhile gets a RuntimeError.
        """
        settings = self._settings()
        data, held_out = _training_data(ratings, validation)
        hooks = _checked_callbacks(callbacks)
        _check_early_stopping(settings, held_out)
        if self.warm_start and self._is_fitted():
            trainer = self._continue_on(data, settings, settings["epochs"])
        else:
            trainer = self._start(data, settings, settings["epochs"])
        self._train(trainer, data, held_out, settings, settings["epochs"], hooks)
        return self

    @_trains
    def partial_fit(self, ratings: Any = None, epochs: int = 1, *, validation: Any = None,
                    callbacks: Iterable[Callback] | None = None) -> MatrixFactorization:
        """Continue training for `epochs` more epochs; returns self.

        `ratings` defaults to the ratings of the last fit; other ratings must have the same users
        and items (n_users, n_items and id maps). The native model, its AdaGrad accumulators and
        the epoch count carry on (so AdaGrad's warm-up epoch does not run again, and the learning
        rate decay continues). On an unfitted model it starts one from `ratings`. After
        `latentmf.load` or unpickling, the training ratings are not kept: pass them.
        """
        settings = self._settings()
        epochs = as_integer(epochs, "epochs", 0)
        hooks = _checked_callbacks(callbacks)
        if ratings is None:
            data = getattr(self, "_training", None)
            if data is None:
                raise ValueError("partial_fit needs ratings: this model has none of its own (it is not fitted, "
                                 "or was loaded or unpickled, which keeps no training ratings)")
        else:
            data = as_ratings(ratings)
        held_out = None if validation is None else _check_validation(as_ratings(validation), data)
        _check_early_stopping(settings, held_out)
        if self._is_fitted():
            trainer = self._continue_on(data, settings, epochs)
        else:
            trainer = self._start(data, settings, epochs)
        self._train(trainer, data, held_out, settings, epochs, hooks)
        return self

    def _guard(self) -> _Guard:
        """This model's _Guard, made on first use (so that __init__ only stores hyper-parameters,
        and unpickled or cloned models get their own)."""
        guard = self.__dict__.get("_use")
        if guard is None:
            guard = self.__dict__.setdefault("_use", _Guard())
        return guard

    def _is_fitted(self) -> bool:
        return getattr(self, "_native", None) is not None

    def _continue_on(self, data: Ratings, settings: dict[str, Any], epochs: int) -> _Trainer:
        """Check that training can continue on `data` for `epochs` more epochs, then make it the
        training data (whose items recommend leaves out); returns the trainer."""
        used = self._settings_used
        for name in STRUCTURAL_SETTINGS:
            if settings[name] != used[name]:
                raise ValueError(f"{name} is {settings[name]!r} but the fitted model has {used[name]!r}: training "
                                 "can only continue with the same factors, dtype, biases and solver (set "
                                 "warm_start=False to fit anew)")
        native = self._native
        if (data.n_users, data.n_items) != (native.n_users, native.n_items):
            raise ValueError(f"the ratings have n_users={data.n_users}, n_items={data.n_items} but the fitted model "
                             f"has {native.n_users} and {native.n_items}: training can only continue on the same "
                             "users and items")
        if data.user_ids != self.user_ids_ or data.item_ids != self.item_ids_:
            raise ValueError("the ratings map ids differently from the fitted model: build them with "
                             "ids_from=model to continue training")
        first = _next_epoch(self.history_)
        _check_steps(settings["learning_rate"] or self._default_learning_rate, settings, first, epochs)
        _check_training_memory(settings, native.n_users, native.n_items, new_model=False)
        trainer = _new_trainer(native, data, settings)
        self._training, self._seen = data, None
        return trainer

    def _start(self, data: Ratings, settings: dict[str, Any], epochs: int) -> _Trainer:
        """A fresh native model, initialised, and its trainer; only then is the learned state
        replaced, all at once, so that a failure before changes nothing."""
        solver = settings["solver"]
        default_learning_rate = _default_gd_learning_rate(data) if solver == "gd" else DEFAULT_LEARNING_RATE[solver]
        _check_steps(settings["learning_rate"] or default_learning_rate, settings, 0, epochs)
        _check_training_memory(settings, data.n_users, data.n_items, new_model=True)
        native = _new_native(settings["dtype"], data.n_users, data.n_items, settings["factors"])
        _initialize(native, data, settings)
        trainer = _new_trainer(native, data, settings)
        self._adopt(native, data, settings, default_learning_rate)
        return trainer

    def _adopt(self, native: Any, data: Ratings, settings: dict[str, Any], default_learning_rate: float) -> None:
        """Make `native`, a model of `data` (initialised, or trained elsewhere), this estimator's
        state, with an empty history."""
        self._native, self._training, self._seen, self._settings_used = native, data, None, settings
        self._default_learning_rate = default_learning_rate
        self.mean_rating_ = data.mean
        self.user_ids_: IdMap | None = data.user_ids
        self.item_ids_: IdMap | None = data.item_ids
        self.history_: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
        self.best_epoch_: int | None = None

    def _train(self, trainer: _Trainer, data: Ratings, held_out: Ratings | None, settings: dict[str, Any],
               epochs: int, callbacks: list[Callback]) -> None:
        """`epochs` epochs after those already run, with early stopping, callbacks and progress."""
        learning_rate = settings["learning_rate"] or self._default_learning_rate
        patience = settings["early_stopping"]
        first = _next_epoch(self.history_)
        best: tuple[int, float, list[np.ndarray]] | None = None
        reporter = _Reporter(first, first + epochs, bool(self.verbose), bool(self.progress))
        try:
            for epoch in range(first, first + epochs):
                step = learning_rate / (1.0 + settings["decay"] * epoch)
                record = self._run_epoch(trainer, epoch, step, data, held_out, settings)
                reporter.report(record)
                stop = False
                if patience is not None:
                    if best is None or record["validation_rmse"] < best[1]:
                        best = (epoch, record["validation_rmse"], trainer.snapshot())
                    stop = epoch - best[0] >= patience
                # Every callback sees every epoch, even when an earlier one asks to stop.
                stop = any([callback(self, record) is True for callback in callbacks]) or stop
                if stop:
                    break
        finally:
            reporter.close()
        if best is not None:
            trainer.restore(best[2])
            self.best_epoch_ = best[0]

    def _run_epoch(self, trainer: _Trainer, epoch: int, step: float, data: Ratings, held_out: Ratings | None,
                   settings: dict[str, Any]) -> dict[str, float]:
        """One epoch, recorded in history_; or, if it fails, none: the factors go back to the
        snapshot taken before it, so that they always match history_."""
        start = time.perf_counter()
        snapshot = trainer.checkpoint()
        try:
            finite = trainer.run_epoch(epoch, step)
            squared_errors, penalty = trainer.objective() if finite else (math.inf, math.inf)
            loss = 0.5 * (squared_errors + settings["regularization"] * penalty)
            if not math.isfinite(loss):
                trainer.restore(snapshot)
                raise FloatingPointError(self._divergence_message(trainer, epoch, loss, step, settings))
            record = {
                "epoch": epoch,
                "loss": loss,
                "train_rmse": math.sqrt(squared_errors / len(data)),
                "validation_rmse": math.nan if held_out is None else self._rmse(held_out),
                "seconds": time.perf_counter() - start,
            }
            history = {key: [*self.history_[key], record[key]] for key in HISTORY_KEYS}
        except KeyboardInterrupt:
            trainer.restore(snapshot)
            raise
        # One assignment commits the epoch: Ctrl-C lands before it (and the factors went back) or
        # after it, never between the factors and their history.
        self.history_ = history
        return record

    def _divergence_message(self, trainer: _Trainer, epoch: int, loss: float, step: float,
                            settings: dict[str, Any]) -> str:
        """What FloatingPointError says, once the factors are back at the last finite epoch."""
        if not self.history_["epoch"]:
            squared_errors, penalty = trainer.objective()
            start = 0.5 * (squared_errors + settings["regularization"] * penalty)
            if not math.isfinite(start):
                return (f"the loss is not finite ({start}) even before training: the ratings or the initial "
                        f"factors (init_std={settings['init_std']}, init_mean={settings['init_mean']}) are too "
                        f"large to square in {settings['dtype']}")
        return (f"training diverged in epoch {epoch}: the loss became {loss}; the model keeps the last finite "
                f"epoch ({'none: the initial factors' if not self.history_['epoch'] else self.history_['epoch'][-1]}"
                f"). Lower the learning rate (it was {step:g}).")

    # Learned state

    def _fitted(self) -> Any:
        native = getattr(self, "_native", None)
        if native is None:
            raise NotFittedError("this MatrixFactorization is not fitted yet: call fit first")
        return native

    def _threads(self) -> int:
        """The binding's thread count from the current `threads` (it never changes a result, so
        predict and recommend follow set_params(threads=...) after fit)."""
        return as_threads(self.threads)

    def _bias_arguments(self) -> tuple[float, Any, Any]:
        native = self._fitted()
        if not self._settings_used["biases"]:
            return 0.0, None, None
        return native.global_mean, native.user_bias, native.item_bias

    @property
    def U(self) -> np.ndarray:
        """The user factors (n_users x F), a writeable view of the model's memory."""
        return self._fitted().U

    @property
    def V(self) -> np.ndarray:
        """The item factors (n_items x F), a writeable view of the model's memory."""
        return self._fitted().V

    @property
    def user_bias_(self) -> np.ndarray | None:
        return self._fitted().user_bias if self._settings_used["biases"] else None

    @property
    def item_bias_(self) -> np.ndarray | None:
        return self._fitted().item_bias if self._settings_used["biases"] else None

    @property
    def global_mean_(self) -> float:
        return self._fitted().global_mean if self._settings_used["biases"] else 0.0

    @property
    def n_users_(self) -> int:
        return int(self._fitted().n_users)

    @property
    def n_items_(self) -> int:
        return int(self._fitted().n_items)

    def _seen_lists(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, items): the training items of user n are items[offsets[n]:offsets[n + 1]]."""
        if self._seen is None:
            # Only a loaded or unpickled model lacks its training ratings, and it has its seen lists.
            assert self._training is not None
            self._seen = self._training._items_by_user()
        return self._seen

    # Ids in and out

    def _indices(self, values: Any, side: str, name: str, *, unknown: str | None = None) -> np.ndarray:
        """Dense int64 indices of user or item ids (raw ids when the model has an id map).

        Ids the model does not know raise ValueError under the "error" policy; under "mean" they
        come back as -1.
        """
        self._fitted()
        ids: IdMap | None = self.user_ids_ if side == "user" else self.item_ids_
        count = self.n_users_ if side == "user" else self.n_items_
        policy = self.unknown if unknown is None else unknown
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
            hint = (" (MatrixFactorization(unknown='mean') predicts unknown ids from the mean rating and biases "
                    "instead)") if unknown is None else ""
            raise ValueError(f"{where} = {shown}{hint}")
        return np.where(known, indices, -1)

    def _item_ids_out(self, items: np.ndarray) -> np.ndarray:
        """Dense item indices (-1 for padding) as the model's raw item ids (-1, or "" for strings)."""
        if self.item_ids_ is None:
            return items
        raw = self.item_ids_.to_ids(np.maximum(items, 0))
        raw[items < 0] = "" if self.item_ids_.kind == "str" else -1
        return raw

    # Prediction

    @_reads
    def predict(self, users: Any, items: Any = None) -> np.ndarray:
        """The predicted ratings for the pairs (users[k], items[k]), in the model's dtype.

        Ids are raw ids when the model has id maps. ``predict(X)`` with X an (n, 2) array of
        (user, item) pairs is scikit-learn's form. Unknown ids follow the `unknown` policy.
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
        predictions = np.empty(len(known), dtype=self._settings_used["dtype"])
        predictions[known] = self._predict_indices(user_indices[known], item_indices[known])
        predictions[~known] = self._predict_unknown(user_indices[~known], item_indices[~known])
        return predictions

    def _predict_indices(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        native = self._fitted()
        if users.dtype != items.dtype:
            users, items = users.astype(np.int64), items.astype(np.int64)
        global_mean, user_bias, item_bias = self._bias_arguments()
        return _core.predict(native.U, native.V, users, items, global_mean, user_bias, item_bias,
                             self._threads())

    def _predict_unknown(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The "mean" policy: the mean rating plus the bias of each side that is known (-1: unknown)."""
        predictions = np.full(len(users), self.mean_rating_)
        if self._settings_used["biases"]:
            native = self._fitted()
            predictions += np.where(users >= 0, native.user_bias[np.maximum(users, 0)], 0.0)
            predictions += np.where(items >= 0, native.item_bias[np.maximum(items, 0)], 0.0)
        return predictions

    def _rmse(self, data: Ratings, chunk: int = 1 << 20) -> float:
        """RMSE on `data`, a chunk at a time: whole-array temporaries would cost 16+ bytes per rating."""
        squared = 0.0
        for start in range(0, len(data), chunk):
            part = slice(start, start + chunk)
            errors = np.subtract(self._predict_indices(data.users[part], data.items[part]), data.values[part],
                                 dtype=np.float64)
            squared += float(errors @ errors)
        return math.sqrt(squared / len(data))

    @_reads
    def score(self, X: Any, y: Any) -> float:
        """R^2 of predict(X) against the ratings y: 1 - sum (y - y_hat)^2 / sum (y - mean y)^2.

        scikit-learn's regressor convention (higher is better, 1 is perfect), which GridSearchCV
        and cross_val_score use by default. For RMSE use `latentmf.metrics.rmse`.
        """
        truth = _value_array(y, "y").astype(np.float64)
        predictions = self.predict(X).astype(np.float64)
        if len(truth) != len(predictions):
            raise ValueError(f"X and y must have the same length, got {len(predictions)} and {len(truth)}")
        residual = float(np.sum((truth - predictions) ** 2))
        total = float(np.sum((truth - truth.mean()) ** 2))
        if total == 0.0:
            return 1.0 if residual == 0.0 else 0.0
        return 1.0 - residual / total

    # Top-N

    @_reads
    def recommend(self, user: Any, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The k items with the highest predicted rating for `user`, best first, as (items, scores).

        With exclude_seen, items the user rated in the training data are left out (so fewer than
        k may come back). Ties are broken by the lower item index. `user` and the items returned
        are raw ids when the model has id maps.
        """
        if np.ndim(user) != 0:
            raise TypeError(f"user must be a single id, got shape {np.shape(user)}: use recommend_all for many users")
        k = as_integer(k, "k", 1)
        items, scores = self._recommend(self._indices(user, "user", "user"), k, exclude_seen)
        found = items[0] >= 0
        return self._item_ids_out(items[0][found]), scores[0][found]

    @_reads
    def recommend_all(self, users: Any = None, k: int = 10,
                      exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The k best items for each of `users` (default: every user, in the order of the rows of U)
        at once, in native code on `threads` threads: (items, scores), each of shape (len(users), k),
        best first, ties by the lower item index. Where fewer than k items are left after
        excluding seen ones, the rest of the row holds item -1 (or "" for string ids) and score NaN.
        """
        native = self._fitted()
        k = as_integer(k, "k", 1)
        indices = (np.arange(native.n_users, dtype=np.int64) if users is None
                   else self._indices(users, "user", "users"))
        items, scores = self._recommend(indices, k, exclude_seen)
        return self._item_ids_out(items), scores

    def _recommend(self, users: np.ndarray, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """Dense (items, scores) of the top k for user indices, -1 marking unknown users."""
        native = self._fitted()
        global_mean, user_bias, item_bias = self._bias_arguments()
        seen_offsets, seen_items = self._seen_lists() if exclude_seen else (None, None)
        known = users >= 0
        items, scores = _core.top_items(native.U, native.V, users[known], k, global_mean, user_bias, item_bias,
                                        seen_offsets, seen_items, self._threads())
        if not known.all():
            # Unknown users (the "mean" policy) share one list: a user with zero factors and bias,
            # scored as predict scores them (the mean rating, plus the item bias).
            cold_items, cold_scores = self._top_for_factors(np.zeros(native.n_factors), 0.0, k,
                                                            np.empty(0, dtype=np.int64))
            if not self._settings_used["biases"]:
                cold_scores += cold_scores.dtype.type(self.mean_rating_)
            items = _fill_rows(items, known, cold_items)
            scores = _fill_rows(scores, known, cold_scores)
        return items, scores

    def _top_for_factors(self, factors: np.ndarray, bias: float, k: int,
                         exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The native top k (dense items, scores) of one user given by a factor vector and bias
        instead of a row of U, leaving out the item indices in `exclude` (-1 entries ignored)."""
        native = self._fitted()
        dtype = self._settings_used["dtype"]
        excluded = np.unique(exclude[exclude >= 0]).astype(np.int32)
        offsets = np.array([0, len(excluded)], dtype=np.int64)
        global_mean, user_bias, item_bias = self._bias_arguments()
        if user_bias is not None:
            user_bias = np.full(1, bias, dtype=dtype)  # the one user's bias, in place of the model's
        items, scores = _core.top_items(np.ascontiguousarray(factors[None, :], dtype=dtype), native.V,
                                        np.zeros(1, dtype=np.int64), k, global_mean, user_bias, item_bias, offsets,
                                        excluded, self._threads())
        return items[0], scores[0]

    @_reads
    def similar_items(self, item: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The k items whose factor vectors are closest to `item`'s by cosine similarity, best first,
        as (items, similarities), leaving out `item` itself. Items with all-zero factors have
        similarity 0. `item` and the result are raw ids when the model has id maps."""
        native = self._fitted()
        k = as_integer(k, "k", 1)
        index = self._indices(item, "item", "item", unknown="error")
        V = native.V
        norms = np.linalg.norm(V, axis=1, keepdims=True)
        unit = np.ascontiguousarray(V / np.where(norms > 0, norms, 1), dtype=V.dtype)
        items, scores = _core.top_items(unit[index], unit, np.zeros(1, dtype=np.int64), k, 0.0, None, None,
                                        np.array([0, 1], dtype=np.int64), index.astype(np.int32),
                                        self._threads())
        found = items[0] >= 0
        return self._item_ids_out(items[0][found]), scores[0][found]

    # New users without retraining

    @_reads
    def fold_in(self, items: Any, values: Any) -> UserFactors:
        """Factors for a user the model was not trained on, from their ratings, V held fixed.

        Solves the model's own regularised least squares for that one user,
        min over u (and b) of 1/2 sum_m [(r_m - r_hat_m)^2 + regularization (|u|^2 + b^2)], that is
        (V_I^T V_I + regularization * c * I) u = V_I^T (r - mu - c_I) with c the number of ratings
        (the bias joins u as a column of ones with biases). `items` are item ids (raw when the
        model has id maps); unknown items raise, or are skipped under unknown="mean". With no
        (known) ratings the user gets zero factors and bias. Use the result with
        `recommend_for` and `predict_for`; the model itself is not changed.
        """
        native = self._fitted()
        indices = self._indices(items, "item", "items")
        ratings = _value_array(np.atleast_1d(values), "values").astype(np.float64)
        if len(indices) != len(ratings):
            raise ValueError(f"items and values must have the same length, got {len(indices)} and {len(ratings)}")
        if not np.isfinite(ratings).all():
            raise ValueError("values must be finite numbers")
        known = indices >= 0
        indices, ratings = indices[known], ratings[known]
        biases = self._settings_used["biases"]
        design = native.V[indices].astype(np.float64)
        if biases:
            ratings = ratings - native.global_mean - native.item_bias[indices]
            design = np.hstack([design, np.ones((len(indices), 1))])
        solution = np.zeros(design.shape[1])
        if len(indices):
            penalty = self._settings_used["regularization"] * len(indices)
            gram = design.T @ design + penalty * np.eye(design.shape[1])
            # lstsq, not solve: without regularization and with fewer ratings than factors the
            # system is singular, and the least-norm solution is the sensible answer.
            solution = np.linalg.lstsq(gram, design.T @ ratings, rcond=None)[0]
        factors = solution[:native.n_factors].astype(self._settings_used["dtype"])
        return UserFactors(factors, float(solution[-1]) if biases else 0.0)

    def _user_factors(self, user: Any) -> tuple[np.ndarray, float]:
        """The (factors, bias) pair of fold_in, checked."""
        n_factors = self._fitted().n_factors
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

    @_reads
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

    @_reads
    def predict_for(self, user: UserFactors | tuple[Any, float], items: Any) -> np.ndarray:
        """Predicted ratings of `items` for a user given by `fold_in`'s (factors, bias)."""
        factors, bias = self._user_factors(user)
        indices = self._indices(items, "item", "items")
        native = self._fitted()
        known = indices >= 0
        predictions = np.full(len(indices), self.mean_rating_ + bias if self._settings_used["biases"]
                              else self.mean_rating_)
        scores = native.V[indices[known]].astype(np.float64) @ factors.astype(np.float64)
        if self._settings_used["biases"]:
            scores += native.global_mean + bias + native.item_bias[indices[known]]
        predictions[known] = scores
        return predictions.astype(self._settings_used["dtype"])

    # Persistence

    @_reads
    def save(self, path: Any) -> None:
        """Write the model to `path` (see `latentmf.persistence` for the format), atomically:
        a reader never sees a half-written file. Any file name works; ".npz" is the convention."""
        from .persistence import save

        save(self, path)

    @_reads
    def __getstate__(self) -> dict[str, Any]:
        """Hyper-parameters, plus the fitted state in the model file's form (no native object)."""
        state: dict[str, Any] = {"params": self.get_params()}
        if self._is_fitted():
            from .persistence import model_state

            state["model"] = model_state(self)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.set_params(**{name: value for name, value in state["params"].items()})
        if "model" in state:
            from .persistence import restore_state

            header, arrays = state["model"]
            restore_state(self, header, arrays)


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


def _is_sklearn_input(ratings: Any, validation: Any) -> bool:
    """fit(X, y): neither argument is a Ratings or a (users, items, values) tuple, and y is given."""
    return (validation is not None and not isinstance(ratings, (Ratings, tuple))
            and not isinstance(validation, (Ratings, tuple)))


def _training_data(ratings: Any, validation: Any) -> tuple[Ratings, Ratings | None]:
    if _is_sklearn_input(ratings, validation):
        pairs = _pairs_array(ratings, "X")
        truth = np.asarray(validation)
        if truth.ndim != 1 or len(truth) != len(pairs):
            raise ValueError(f"y must be 1-dimensional with one rating per row of X ({len(pairs)}), got shape "
                             f"{truth.shape}")
        return Ratings.from_ids(pairs[:, 0], pairs[:, 1], truth), None
    try:
        data = as_ratings(ratings)
    except TypeError as error:
        raise TypeError(f"{error}; for a data frame use latentmf.Ratings.from_dataframe, or fit(X, y) with X an "
                        "(n, 2) array of (user, item) ids") from None
    held_out = None if validation is None else _check_validation(as_ratings(validation), data)
    return data, held_out


def _checked_callbacks(callbacks: Iterable[Callback] | None) -> list[Callback]:
    hooks = [] if callbacks is None else list(callbacks)
    for position, hook in enumerate(hooks):
        if not callable(hook):
            raise TypeError(f"callbacks[{position}] must be callable, got {type(hook).__name__}")
    return hooks


def _check_early_stopping(settings: dict[str, Any], held_out: Ratings | None) -> None:
    if settings["early_stopping"] is not None and held_out is None:
        raise ValueError("early_stopping needs a validation set: fit(ratings, validation=...)")


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


class _Reporter:
    """Per-epoch output: a tqdm bar (progress with tqdm installed) and one line per epoch (verbose,
    or progress without tqdm)."""

    def __init__(self, first: int, end: int, verbose: bool, progress: bool) -> None:
        self.end = end
        self.bar = None
        self.lines = verbose
        if progress:
            try:
                from tqdm import tqdm
            except ImportError:
                self.lines = True
            else:
                self.bar = tqdm(total=end - first, unit="epoch", desc="fit", dynamic_ncols=True)

    def report(self, record: dict[str, float]) -> None:
        validation = record["validation_rmse"]
        if self.lines:
            shown = "" if math.isnan(validation) else f"  validation RMSE {validation:.4f}"
            line = (f"epoch {record['epoch'] + 1:3d}/{self.end}  loss {record['loss']:.6g}  train RMSE "
                    f"{record['train_rmse']:.4f}{shown}  {record['seconds']:.2f}s")
            if self.bar is not None:
                self.bar.write(line)
            else:
                print(line, flush=True)
        if self.bar is not None:
            postfix = {"train_rmse": f"{record['train_rmse']:.4f}"}
            if not math.isnan(validation):
                postfix["validation_rmse"] = f"{validation:.4f}"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _new_native(dtype: str, n_users: int, n_items: int, factors: int) -> Any:
    native_class = _core.ModelFloat32 if dtype == "float32" else _core.ModelFloat64
    return native_class(n_users, n_items, factors)


def _next_epoch(history: dict[str, list[float]]) -> int:
    """The number of the epoch after those in `history` (epochs count over the whole training)."""
    return int(history["epoch"][-1]) + 1 if history["epoch"] else 0


def _check_steps(learning_rate: float, settings: dict[str, Any], first: int, epochs: int) -> None:
    """Every step of epochs [first, first + epochs) must be a positive number in the model's dtype;
    the last is the smallest (the decay only lowers it)."""
    if epochs == 0:
        return
    dtype = settings["dtype"]
    check_representable(learning_rate, "learning_rate", dtype, positive=True)
    last = first + epochs - 1
    step = learning_rate / (1.0 + settings["decay"] * last)
    if not np.dtype(dtype).type(step) > 0:
        raise ValueError(f"learning_rate_decay={settings['decay']!r} makes the step of epoch {last}, learning_rate / "
                         f"(1 + learning_rate_decay * {last}) = {step:g}, 0 in {dtype}: use a smaller "
                         "learning_rate_decay")


def _check_training_memory(settings: dict[str, Any], n_users: int, n_items: int, *, new_model: bool) -> None:
    """MemoryError, before anything is allocated, when training would need more than the physical
    memory for the factors: the native model (U, V, two biases and two AdaGrad accumulators per row),
    when it is new, plus the copies training falls back on (one per epoch, and the best epoch's with
    early stopping)."""
    itemsize = np.dtype(settings["dtype"]).itemsize
    rows = n_users + n_items
    factors = settings["factors"]
    model = rows * (factors + 3) * itemsize
    copied = factors + (1 if settings["biases"] else 0) + (2 if settings["solver"] == "adagrad" else 0)
    copies = 2 if settings["early_stopping"] is not None else 1
    need = (model if new_model else 0) + copies * rows * copied * itemsize
    check_memory(need, f"the factors (factors={factors} for {n_users} users and {n_items} items, "
                       f"{settings['dtype']}) and the copies that training falls back on",
                 hint=": use fewer factors")


def _new_trainer(native: Any, data: Ratings, settings: dict[str, Any]) -> _Trainer:
    return (_GdTrainer if settings["solver"] == "gd" else _SgdTrainer)(native, data, settings)


def _initialize(native: Any, data: Ratings, settings: dict[str, Any]) -> None:
    """U, V ~ N(init_mean, init_std^2) from default_rng(seed), drawn straight into the model's memory;
    AdaGrad's accumulators start at 1."""
    mean = settings["init_mean"]
    if mean is None:
        mean = 0.0 if settings["biases"] else math.sqrt(max(INITIAL_PREDICTION_FRACTION * data.mean, 0.0)
                                                        / settings["factors"])
    rng = np.random.default_rng(settings["seed"])
    with np.errstate(over="ignore", invalid="ignore"):
        for factors in (native.U, native.V):
            rng.standard_normal(out=factors, dtype=factors.dtype)
            factors *= settings["init_std"]
            factors += mean
    if not (np.isfinite(native.U).all() and np.isfinite(native.V).all()):
        raise ValueError(f"init_std={settings['init_std']!r} and init_mean={settings['init_mean']!r} give initial "
                         f"factors that {settings['dtype']} cannot hold: lower them")
    # |u . v| <= F max|u| max|v|: initial predictions must stay far from overflowing the dtype, or
    # the first loss is not finite (that would be refused only after a fitted model was replaced).
    largest = _largest_magnitude(native.U) * _largest_magnitude(native.V) * settings["factors"]
    if largest > float(np.finfo(settings["dtype"]).max) / 4:
        raise ValueError(f"init_std={settings['init_std']!r} and init_mean={settings['init_mean']!r} give initial "
                         f"predictions up to {largest:.3g}, which overflow {settings['dtype']}: lower them")
    native.global_mean = data.mean if settings["biases"] else 0.0
    if settings["solver"] == "adagrad":
        native.user_accumulators[...] = 1
        native.item_accumulators[...] = 1


def _largest_magnitude(array: np.ndarray) -> float:
    """max |a| without a temporary array as large as `array`."""
    return max(float(array.max()), -float(array.min())) if array.size else 0.0


class _Trainer:
    """What both solvers share: the model's arrays and a copy of them to fall back on."""

    def __init__(self, native: Any, settings: dict[str, Any]) -> None:
        self.U, self.V = native.U, native.V
        self.biases = settings["biases"]
        self.user_bias = native.user_bias if self.biases else None
        self.item_bias = native.item_bias if self.biases else None
        self.global_mean = native.global_mean if self.biases else 0.0
        self.regularization = settings["regularization"]
        self.threads = settings["threads"]
        self._fallback: list[np.ndarray] | None = None

    def _arrays(self) -> list[np.ndarray]:
        return [a for a in (self.U, self.V, self.user_bias, self.item_bias) if a is not None]

    def snapshot(self) -> list[np.ndarray]:
        return [a.copy() for a in self._arrays()]

    def checkpoint(self) -> list[np.ndarray]:
        """The arrays as they are now, for an epoch to fall back on: copied into the same buffers
        each time (a fresh copy of a large U every epoch cost more in page faults than in copying)."""
        if self._fallback is None:
            self._fallback = self.snapshot()
        else:
            for saved, array in zip(self._fallback, self._arrays()):
                np.copyto(saved, array)
        return self._fallback

    def restore(self, snapshot: list[np.ndarray]) -> None:
        for target, saved in zip(self._arrays(), snapshot):
            target[...] = saved

    def run_epoch(self, epoch: int, learning_rate: float) -> bool:
        """One epoch in place; False when it stopped early on a value that is not finite."""
        raise NotImplementedError

    def objective(self) -> tuple[float, float]:
        """(squared errors, penalty) of the training ratings at the current factors."""
        raise NotImplementedError


class _SgdTrainer(_Trainer):
    """SGD over the block grid, with a fixed step ("sgd") or per-row AdaGrad steps ("adagrad")."""

    def __init__(self, native: Any, data: Ratings, settings: dict[str, Any]) -> None:
        super().__init__(native, settings)
        self.grid = data._grid(settings["dtype"], settings["blocks"], settings["seed"], self.threads)
        self.adagrad = settings["solver"] == "adagrad"
        self.accumulators: tuple[Any, Any] = ((native.user_accumulators, native.item_accumulators)
                                              if self.adagrad else (None, None))

    def _arrays(self) -> list[np.ndarray]:
        return super()._arrays() + [a for a in self.accumulators if a is not None]

    def run_epoch(self, epoch: int, learning_rate: float) -> bool:
        """One epoch; False, stopping early, as soon as a sub-epoch leaves a non-finite value."""
        # AdaGrad's first epoch of the model's training warms up the leading factors only (see
        # sgd_epoch); a continued training never repeats it.
        warm_up = self.adagrad and epoch == 0
        # One native call per sub-epoch, so that Ctrl-C is seen within one sub-epoch.
        for sub_epoch in range(self.grid.blocks):
            squared_errors = _core.sgd_grid(self.grid, self.U, self.V, learning_rate, self.regularization, epoch,
                                            sub_epoch, self.global_mean, self.user_bias, self.item_bias,
                                            *self.accumulators, warm_up, self.threads)
            # AdaGrad's accumulators can overflow before any error does.
            if not math.isfinite(squared_errors) or (
                    self.adagrad and not all(np.isfinite(a).all() for a in self.accumulators)):
                return False
        return True

    def objective(self) -> tuple[float, float]:
        return _core.grid_objective(self.grid, self.U, self.V, self.global_mean, self.user_bias,
                                    self.item_bias, self.threads)


class _GdTrainer(_Trainer):
    def __init__(self, native: Any, data: Ratings, settings: dict[str, Any]) -> None:
        super().__init__(native, settings)
        self.index = data._index(settings["dtype"])

    def run_epoch(self, epoch: int, learning_rate: float) -> bool:
        steps = _core.gradients(self.index, self.U, self.V, self.regularization, self.global_mean,
                                self.user_bias, self.item_bias, self.threads)
        # A step too large overflows: the objective then is not finite, and fit rolls the epoch back.
        with np.errstate(over="ignore", invalid="ignore"):
            for target, gradient in zip(self._arrays(), steps):
                target -= target.dtype.type(learning_rate) * gradient
        return True

    def objective(self) -> tuple[float, float]:
        return _core.objective(self.index, self.U, self.V, self.global_mean, self.user_bias, self.item_bias,
                               self.threads)
