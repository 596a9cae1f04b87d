"""MatrixFactorization: the estimator that owns a native model and trains it."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np

from . import _core
from ._checks import as_integer, as_real, as_threads
from .data import Ratings, _index_array, as_ratings
from .functions import DEFAULT_BLOCKS

SOLVERS = ("sgd", "adagrad", "gd")
DTYPES = ("float32", "float64")

#: Steps when none is given (AdaGrad's tuned with the other defaults on MovieLens 100k; plain
#: SGD's is its best on the same data); GD's depends on the data (see _default_gd_learning_rate).
DEFAULT_LEARNING_RATE = {"sgd": 0.015, "adagrad": 0.05}

#: Without biases the initial factors are positive on average, so that predictions start at this
#: fraction of the mean rating: from a zero mean, SGD first spends epochs finding the direction
#: that carries the mean rating.
INITIAL_PREDICTION_FRACTION = 0.1


class NotFittedError(ValueError, AttributeError):
    """The model was used before `fit`."""


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

    Parameters
    ----------
    factors : int
        F, the number of latent factors (columns of U and V).
    solver : {"adagrad", "sgd", "gd"}
        "sgd": stochastic gradient descent over the stratified block grid of DESIGN.md, in
        parallel, with results that do not depend on the number of threads. "adagrad": the same
        with steps per row and group of factors (AdaGrad after LIBMF's schedule, with a first
        epoch on the leading 16 factors; see `latentmf.sgd_epoch`): fewer epochs, notably
        without biases. "gd": full-batch
        gradient descent on the masked batch gradients.
    epochs : int
        Passes over the ratings (SGD) or gradient steps (GD).
    learning_rate : float, optional
        The step eta. Default: 0.05 for AdaGrad, 0.015 for SGD; for GD, 0.5 divided by the largest number of
        ratings of one user or item (plain GD diverges beyond about twice that).
    learning_rate_decay : float
        Epoch t (from 0) uses eta / (1 + learning_rate_decay * t); 0 keeps the step fixed.
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
        and recommend_all() use the value set when they are called.
    blocks : int, optional
        B, the blocks per side of the SGD grid (default 8). The result depends on it.
    seed : int
        Seeds the initial factors and the SGD grid; the same seed gives the same model.
    verbose : bool
        Print one line per epoch (loss, RMSE, seconds).

    Attributes (after fit)
    ----------------------
    U, V : numpy.ndarray
        The factors, as arrays that view the model's own memory (no copy; writes change the model).
    user_bias_, item_bias_ : numpy.ndarray or None
        The biases (views as well), None without biases.
    global_mean_ : float
    history_ : dict of lists
        Per epoch: "epoch", "loss", "train_rmse", "validation_rmse" (NaN without validation),
        "seconds" (wall time of the epoch, evaluation included).
    """

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

    def __repr__(self) -> str:
        return f"MatrixFactorization(factors={self.factors!r}, solver={self.solver!r}, epochs={self.epochs!r})"

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
        if not isinstance(self.biases, (bool, np.bool_)):
            raise TypeError(f"biases must be True or False, got {self.biases!r}")
        return {
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
            "seed": as_integer(self.seed, "seed", 0),
        }

    def fit(self, ratings: Any, validation: Any = None) -> MatrixFactorization:
        """Fit to `ratings` (a Ratings or a (users, items, values) tuple); returns self.

        `validation`, if given, is scored after every epoch (history_["validation_rmse"]).
        Each fit starts from a fresh model: arrays taken from an earlier fit keep the old values.
        If the loss stops being finite, fit restores the last finite epoch and raises
        FloatingPointError; on KeyboardInterrupt it restores the last finished epoch and re-raises.
        """
        settings = self._settings()
        data = as_ratings(ratings)
        held_out = None if validation is None else _check_validation(as_ratings(validation), data)
        native = _new_native(settings["dtype"], data.n_users, data.n_items, settings["factors"])
        _initialize(native, data, settings)
        trainer = (_GdTrainer if settings["solver"] == "gd" else _SgdTrainer)(native, data, settings)
        learning_rate = settings["learning_rate"]
        if learning_rate is None:
            solver = settings["solver"]
            learning_rate = _default_gd_learning_rate(data) if solver == "gd" else DEFAULT_LEARNING_RATE[solver]
        self._native, self._training, self._settings_used = native, data, settings
        self.history_: dict[str, list[float]] = {
            "epoch": [], "loss": [], "train_rmse": [], "validation_rmse": [], "seconds": []
        }
        for epoch in range(settings["epochs"]):
            step = learning_rate / (1.0 + settings["decay"] * epoch)
            self._run_epoch(trainer, epoch, step, data, held_out, settings)
        return self

    def _run_epoch(self, trainer: Any, epoch: int, step: float, data: Ratings, held_out: Ratings | None,
                   settings: dict[str, Any]) -> None:
        start = time.perf_counter()
        snapshot = trainer.snapshot()
        try:
            finite = trainer.run_epoch(epoch, step)
            squared_errors, penalty = trainer.objective() if finite else (math.inf, math.inf)
        except KeyboardInterrupt:
            trainer.restore(snapshot)
            raise
        loss = 0.5 * (squared_errors + settings["regularization"] * penalty)
        if not math.isfinite(loss):
            trainer.restore(snapshot)
            raise FloatingPointError(
                f"training diverged in epoch {epoch}: the loss became {loss}; the model keeps the "
                f"last finite epoch. Lower the learning rate (it was {step:g})."
            )
        validation_rmse = math.nan if held_out is None else self._rmse(held_out)
        record = self.history_
        record["epoch"].append(epoch)
        record["loss"].append(loss)
        record["train_rmse"].append(math.sqrt(squared_errors / len(data)))
        record["validation_rmse"].append(validation_rmse)
        record["seconds"].append(time.perf_counter() - start)
        if self.verbose:
            shown = "" if held_out is None else f"  validation RMSE {validation_rmse:.4f}"
            print(f"epoch {epoch + 1:3d}/{settings['epochs']}  loss {loss:.6g}  train RMSE "
                  f"{record['train_rmse'][-1]:.4f}{shown}  {record['seconds'][-1]:.2f}s", file=sys.stdout,
                  flush=True)

    def _fitted(self) -> Any:
        native = getattr(self, "_native", None)
        if native is None:
            raise NotFittedError("this MatrixFactorization is not fitted yet: call fit first")
        return native

    def _bias_arguments(self) -> tuple[float, Any, Any]:
        native = self._fitted()
        if not self._settings_used["biases"]:
            return 0.0, None, None
        return native.global_mean, native.user_bias, native.item_bias

    def _rmse(self, data: Ratings, chunk: int = 1 << 20) -> float:
        """RMSE on `data`, a chunk at a time: whole-array temporaries would cost 16+ bytes per rating."""
        squared = 0.0
        for start in range(0, len(data), chunk):
            part = slice(start, start + chunk)
            errors = self._predict_indices(data.users[part], data.items[part]).astype(np.float64) - data.values[part]
            squared += float(errors @ errors)
        return math.sqrt(squared / len(data))

    def _predict_indices(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        native = self._fitted()
        if users.dtype != items.dtype:
            users, items = users.astype(np.int64), items.astype(np.int64)
        global_mean, user_bias, item_bias = self._bias_arguments()
        return _core.predict(native.U, native.V, users, items, global_mean, user_bias, item_bias,
                             as_threads(self.threads))

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

    def predict(self, users: Any, items: Any) -> np.ndarray:
        """The predicted ratings for the pairs (users[k], items[k]), in the model's dtype."""
        users = _index_array(np.atleast_1d(users), "users")
        items = _index_array(np.atleast_1d(items), "items")
        if len(users) != len(items):
            raise ValueError(f"users and items must have the same length, got {len(users)} and {len(items)}")
        return self._predict_indices(users, items)

    def recommend(self, user: int, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The k items with the highest predicted rating for `user`, best first, as (items, scores).

        With exclude_seen, items the user rated in the training data are left out (so fewer than
        k may come back). Ties are broken by the lower item index.
        """
        native = self._fitted()
        user = as_integer(user, "user", 0, native.n_users - 1)
        items, scores = self.recommend_all([user], k, exclude_seen)
        found = items[0] >= 0
        return items[0][found], scores[0][found]

    def recommend_all(self, users: Any = None, k: int = 10,
                      exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The k best items for each of `users` (default: every user) at once, in native code on all
        threads: (items, scores), each of shape (len(users), k), best first, ties by the lower item.
        Where fewer than k items are left after excluding seen ones, the rest of the row holds
        item -1 and score NaN.
        """
        native = self._fitted()
        k = as_integer(k, "k", 1)
        if users is None:
            users = np.arange(native.n_users, dtype=np.int64)
        else:
            users = _index_array(np.atleast_1d(users), "users").astype(np.int64, copy=False)
        global_mean, user_bias, item_bias = self._bias_arguments()
        seen_offsets, seen_items = self._training._items_by_user() if exclude_seen else (None, None)
        return _core.top_items(native.U, native.V, users, k, global_mean, user_bias, item_bias, seen_offsets,
                               seen_items, as_threads(self.threads))


def _check_validation(held_out: Ratings, data: Ratings) -> Ratings:
    if held_out.users.max() >= data.n_users:
        raise ValueError(f"validation has user {held_out.users.max()}, but the training ratings "
                         f"have n_users={data.n_users}")
    if held_out.items.max() >= data.n_items:
        raise ValueError(f"validation has item {held_out.items.max()}, but the training ratings "
                         f"have n_items={data.n_items}")
    return held_out


def _new_native(dtype: str, n_users: int, n_items: int, factors: int) -> Any:
    native_class = _core.ModelFloat32 if dtype == "float32" else _core.ModelFloat64
    return native_class(n_users, n_items, factors)


def _initialize(native: Any, data: Ratings, settings: dict[str, Any]) -> None:
    """U, V ~ N(init_mean, init_std^2) from default_rng(seed), drawn straight into the model's memory."""
    mean = settings["init_mean"]
    if mean is None:
        mean = 0.0 if settings["biases"] else math.sqrt(max(INITIAL_PREDICTION_FRACTION * data.mean, 0.0)
                                                        / settings["factors"])
    rng = np.random.default_rng(settings["seed"])
    for factors in (native.U, native.V):
        rng.standard_normal(out=factors, dtype=factors.dtype)
        factors *= settings["init_std"]
        factors += mean
    native.global_mean = data.mean if settings["biases"] else 0.0


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

    def _arrays(self) -> list[np.ndarray]:
        return [a for a in (self.U, self.V, self.user_bias, self.item_bias) if a is not None]

    def snapshot(self) -> list[np.ndarray]:
        return [a.copy() for a in self._arrays()]

    def restore(self, snapshot: list[np.ndarray]) -> None:
        for target, saved in zip(self._arrays(), snapshot):
            target[...] = saved


class _SgdTrainer(_Trainer):
    """SGD over the block grid, with a fixed step ("sgd") or per-row AdaGrad steps ("adagrad")."""

    def __init__(self, native: Any, data: Ratings, settings: dict[str, Any]) -> None:
        super().__init__(native, settings)
        self.grid = data._grid(settings["dtype"], settings["blocks"], settings["seed"], self.threads)
        self.accumulators = (native.user_accumulators, native.item_accumulators)
        self.adagrad = settings["solver"] == "adagrad"
        if self.adagrad:
            for accumulator in self.accumulators:
                accumulator[...] = 1
        else:
            self.accumulators = (None, None)

    def _arrays(self) -> list[np.ndarray]:
        return super()._arrays() + [a for a in self.accumulators if a is not None]

    def run_epoch(self, epoch: int, learning_rate: float) -> bool:
        """One epoch; False, stopping early, as soon as a sub-epoch leaves a non-finite value."""
        # AdaGrad's first epoch warms up the leading factors only (see sgd_epoch).
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
        for target, gradient in zip(self._arrays(), steps):
            target -= target.dtype.type(learning_rate) * gradient
        return True

    def objective(self) -> tuple[float, float]:
        return _core.objective(self.index, self.U, self.V, self.global_mean, self.user_bias, self.item_bias,
                               self.threads)
