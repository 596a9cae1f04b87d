"""The solvers of the rating model (MatrixFactorization): SGD and AdaGrad over the stratified block
grid, and full-batch gradient descent; with what starting and continuing a fit checks first."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from . import _core
from ._checks import as_threads, check_memory, check_representable
from .data import Ratings
from .state import DataSummary, draw_normal
from .functions import gradients, gramian, solve_rows
from .training import Trainer

SOLVERS = ("adagrad", "sgd", "gd", "als", "gibbs")
#: The solvers that take a step (a learning rate).
STEPPED = ("adagrad", "sgd", "gd")

#: The hyper-parameters that only some solvers read: the solvers that read each, and the value that
#: means "not given" (any other value given to another solver is ignored, and fit says so).
SOLVER_SPECIFIC: dict[str, tuple[tuple[str, ...], Any]] = {
    "learning_rate": (STEPPED, None),
    "learning_rate_decay": (STEPPED, 0.0),
    "blocks": (("adagrad", "sgd"), None),
    "init_mean": (("adagrad", "sgd", "gd", "als"), None),
    "burn_in": (("gibbs",), None),
    "implicit_links": (("gibbs",), None),
    "init": (("als",), "random"),
}


def unused_settings(solver: str, params: Mapping[str, Any]) -> str | None:
    """A warning naming the hyper-parameters given in `params` that `solver` does not read (None if
    there are none): a grid search over several solvers may set them, so they are not an error."""
    unused = [(name, params[name], readers) for name, (readers, not_given) in SOLVER_SPECIFIC.items()
              if solver not in readers and params[name] is not None and params[name] != not_given]
    if not unused:
        return None
    given = ", ".join(f"{name}={value!r}" for name, value, _ in unused)
    readers = "; ".join(f"{name} is for {', '.join(map(repr, solvers))}" for name, _, solvers in unused)
    return f"solver={solver!r} ignores {given} ({readers})"

#: The defaults of the hyper-parameters given as None, by (solver, biases), as `with_defaults`
#: resolves them; MatrixFactorization's docstring says why each. They were chosen on a validation
#: split of MovieLens 100k's u1.base at the default factors (32), the 9M synthetic set deciding
#: between settings within 0.3% of the best (benchmarks/tune_rating.py). No burn_in or
#: implicit_links outside "gibbs"; "gibbs"'s regularization, ALS's, serves fold_in only (its ridge
#: solve for a new user's row).
DEFAULTS: dict[tuple[str, bool], dict[str, Any]] = {
    ("adagrad", True): {"epochs": 15, "regularization": 0.03, "init_std": 0.01},
    ("adagrad", False): {"epochs": 30, "regularization": 0.05, "init_std": 0.01},
    ("sgd", True): {"epochs": 30, "regularization": 0.03, "init_std": 0.01},
    ("sgd", False): {"epochs": 40, "regularization": 0.05, "init_std": 0.01},
    ("gd", True): {"epochs": 200, "regularization": 0.07, "init_std": 0.01},
    ("gd", False): {"epochs": 200, "regularization": 0.03, "init_std": 0.01},
    ("als", True): {"epochs": 15, "regularization": 0.12, "init_std": 0.01},
    ("als", False): {"epochs": 10, "regularization": 0.12, "init_std": 0.01},
    ("gibbs", True): {"epochs": 100, "regularization": 0.12, "burn_in": 20, "init_std": 0.1, "implicit_links": 1.0},
    ("gibbs", False): {"epochs": 100, "regularization": 0.12, "burn_in": 20, "init_std": 0.1, "implicit_links": 1.0},
}

#: The steps of AdaGrad and SGD when none is given, by (solver, biases).
DEFAULT_LEARNING_RATE = {("adagrad", True): 0.03, ("adagrad", False): 0.05,
                         ("sgd", True): 0.01, ("sgd", False): 0.01}

#: GD's default step is this number divided by the most ratings of one user or item (the busiest
#: row's gradient sums that many terms), by biases. Without biases 1.0 oscillates while the factors
#: grow to carry the mean rating (and 1.5 diverges on MovieLens 100k); with biases the mean is
#: carried from the start, and 1.0 reaches the validation optimum in 200 steps where 0.5 does not.
GD_STEP_SCALE = {True: 1.0, False: 0.5}

#: Without biases the initial factors are positive on average, so that predictions start at this
#: fraction of the mean rating: from a zero mean, SGD first spends epochs finding the direction
#: that carries the mean rating.
INITIAL_PREDICTION_FRACTION = 0.1


def layout(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The native arrays a rating model of these settings uses."""
    names: tuple[str, ...] = ("U", "V")
    if settings["biases"]:
        names += ("user_bias", "item_bias")
    if settings["solver"] == "adagrad":
        names += ("user_accumulators", "item_accumulators")
    return names


def with_defaults(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings with each hyper-parameter given as None (epochs, regularization, burn_in,
    init_std) replaced by the default of the solver and biases (DEFAULTS)."""
    defaults = DEFAULTS[settings["solver"], settings["biases"]]
    return {**settings, **{name: value for name, value in defaults.items() if settings[name] is None}}


def default_learning_rate(settings: Mapping[str, Any], data: Ratings | None) -> float:
    """The step when none is given (NaN for a solver without one); `data` is needed by "gd" only,
    whose step is GD_STEP_SCALE over the most ratings of one user or item."""
    solver = settings["solver"]
    if solver not in STEPPED:
        return math.nan
    if solver != "gd":
        return DEFAULT_LEARNING_RATE[solver, settings["biases"]]
    if data is None:
        raise ValueError("the default step of solver='gd' depends on the ratings")
    busiest = max(np.bincount(data.users).max(), np.bincount(data.items).max())
    return GD_STEP_SCALE[settings["biases"]] / float(busiest)


def step(settings: Mapping[str, Any], learning_rate: float, epoch: int) -> float:
    """The step of `epoch`: learning_rate / (1 + learning_rate_decay * epoch)."""
    return learning_rate / (1.0 + settings["learning_rate_decay"] * epoch)


def check_steps(settings: Mapping[str, Any], learning_rate: float, first: int, epochs: int) -> None:
    """Every step of epochs [first, first + epochs) must be a positive number in the model's dtype;
    the last is the smallest (the decay only lowers it)."""
    if epochs == 0 or settings["solver"] not in STEPPED:
        return
    dtype = settings["dtype"]
    check_representable(learning_rate, "learning_rate", dtype, positive=True)
    last = first + epochs - 1
    smallest = step(settings, learning_rate, last)
    if not np.dtype(dtype).type(smallest) > 0:
        raise ValueError(f"learning_rate_decay={settings['learning_rate_decay']!r} makes the step of epoch {last}, "
                         f"learning_rate / (1 + learning_rate_decay * {last}) = {smallest:g}, 0 in {dtype}: use a "
                         "smaller learning_rate_decay")


def check_values(data: Ratings, dtype: str) -> None:
    """Every rating must be a number the model's dtype can hold (1e40 is inf in float32)."""
    low, high = data.value_range
    largest = float(np.finfo(dtype).max)
    if max(-low, high) > largest:
        k = int(np.flatnonzero(np.abs(data.values) > largest)[0])
        raise ValueError(f"values[{k}] = {data.values[k]:g} does not fit in {dtype}, the model's dtype (largest "
                         f"{largest:.4g}): rescale the ratings, or use dtype='float64'")


def check_training_memory(settings: Mapping[str, Any], n_users: int, n_items: int, *, new_model: bool) -> None:
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


def initialize(native: Any, data: DataSummary, settings: Mapping[str, Any]) -> None:
    """U, V ~ N(init_mean, init_std^2) drawn straight into the model's memory (draw_normal);
    AdaGrad's accumulators start at 1; the global mean is the mean rating with biases."""
    mean = settings["init_mean"]
    if mean is None:
        mean = 0.0 if settings["biases"] else math.sqrt(max(INITIAL_PREDICTION_FRACTION * data.mean, 0.0)
                                                        / settings["factors"])
    largest_u, largest_v = draw_normal((native.U, native.V), settings["seed"], settings["init_std"], mean,
                                       as_threads(settings["threads"]))
    if not (math.isfinite(largest_u) and math.isfinite(largest_v)):
        raise ValueError(f"init_std={settings['init_std']!r} and init_mean={settings['init_mean']!r} give initial "
                         f"factors that {settings['dtype']} cannot hold: lower them")
    # |u . v| <= F max|u| max|v|: initial predictions must stay far from overflowing the dtype, or
    # the first loss is not finite (that would be refused only after a fitted model was replaced).
    largest = largest_u * largest_v * settings["factors"]
    if largest > float(np.finfo(settings["dtype"]).max) / 4:
        raise ValueError(f"init_std={settings['init_std']!r} and init_mean={settings['init_mean']!r} give initial "
                         f"predictions up to {largest:.3g}, which overflow {settings['dtype']}: lower them")
    native.global_mean = data.mean if settings["biases"] else 0.0
    if settings["solver"] == "adagrad":
        native.user_accumulators[...] = 1
        native.item_accumulators[...] = 1


#: Rounds of subspace iteration of init="spectral" (each: E Y, then E^T X). On the 9M synthetic set
#: (lambda 0.04) ALS's test RMSE after its 2nd epoch was 0.787 from 1 round, 0.709 from 2 and 0.701
#: from 3, against 0.930 from the random start (which needs 5 epochs to pass 0.73); a round costs
#: about a third of an ALS epoch there.
SPECTRAL_ROUNDS = 2
#: The drawn start's weight in each product of init="spectral", relative to the product's size: it
#: keeps every basis of full rank (E of lower rank than F, or 0), so that its Gram matrix, rounded
#: to float32, still has a Cholesky factor, and moves the subspace by about this much.
SPECTRAL_SHIFT = 1e-2


def starts_spectrally(settings: Mapping[str, Any]) -> bool:
    """Whether a fit of these settings starts with spectral_start (init="spectral" is ALS's)."""
    return settings["solver"] == "als" and settings["init"] == "spectral"


def check_spectral(data: Ratings, settings: Mapping[str, Any]) -> None:
    """init="spectral" needs bases of F columns on both sides, started from nonzero draws."""
    if not starts_spectrally(settings):
        return
    F = settings["factors"]
    if min(data.n_users, data.n_items) < F:
        raise ValueError(f"init='spectral' needs at least factors={F} users and items, got {data.n_users} users "
                         f"and {data.n_items} items: use fewer factors or init='random'")
    if settings["init_std"] == 0:
        raise ValueError("init='spectral' starts its subspace iteration from the random draws: init_std must be "
                         "positive")


def _basis(product: np.ndarray, start: np.ndarray, threads: int | None) -> np.ndarray:
    """An orthonormal basis of the columns of Z = product + s start, s = SPECTRAL_SHIFT |product| /
    |start| (1 for a zero product): Z L^-T with L L^T = Z^T Z (Cholesky QR; Householder QR took
    0.2 s at 200,000 rows of 32). The same bits for any thread count. `product` is overwritten:
    first divided by its largest magnitude, so that its norm and Gram matrix cannot overflow."""
    if not np.isfinite(product).all():
        raise FloatingPointError(f"init='spectral': the products of the residuals overflow: the ratings are too "
                                 f"large for {product.dtype}: rescale them, or use dtype='float64'")
    peak = float(np.abs(product).max())
    if peak > 0:
        product /= np.asarray(peak, dtype=product.dtype)
    size = float(np.linalg.norm(product))
    product += np.asarray((SPECTRAL_SHIFT * size if size > 0 else 1.0) / float(np.linalg.norm(start)),
                          dtype=product.dtype) * start
    L = np.linalg.cholesky(gramian(product, threads=threads).astype(np.float64))
    return product @ np.linalg.inv(L).T.astype(product.dtype)


def spectral_start(native: Any, data: Ratings, settings: Mapping[str, Any]) -> None:
    """init="spectral" (ALS), after initialize() has drawn U_0 and V_0 into U and V: V becomes a
    basis of the leading right singular subspace of the residuals E, and U becomes 0 (ALS solves it
    first). docs/model.md, "The spectral start of ALS", states it; its twin is
    `latentmf.reference.spectral_start`.

    With biases, each side's biases first take their exact ridge solve with the factors and the
    other side's biases at 0 (both from one pass; an alternation, users then items, gave the same
    RMSE after ALS's epochs on the 9M set for one more pass); E holds r - mu - b_u - b_i on the
    rated pairs (r without biases). Then SPECTRAL_ROUNDS rounds of subspace iteration from
    Y = basis(V_0): X = basis(E Y + s U_0), Y = basis(E^T X + s V_0) (see _basis), and
    V = Y sqrt(n_items / F), rows of norm near 1. The products are `latentmf.gradients` with one
    side 0, in the model's dtype: the same bits for any thread count."""
    threads, dtype = settings["threads"], settings["dtype"]
    U0, V0 = native.U.copy(), native.V.copy()
    native.U[...] = 0
    # U stays 0 until ALS's first half-step, so it is the zero side of the products E Y.
    zero_U, zero_V = native.U, np.zeros_like(V0)
    biases = None
    if settings["biases"]:
        biases = (native.global_mean, native.user_bias, native.item_bias)
        index = data.native_index(dtype)
        # With every bias at 0, the bias gradients are sum_j (mu - r_j) over each row's ratings.
        sums = gradients(data, zero_U, zero_V, biases=biases, threads=threads)[2:]
        for bias, counts, row_sums in zip(biases[1:], (index.user_counts(), index.item_counts()), sums):
            counts = counts * (1.0 + settings["regularization"])
            bias[...] = -np.divide(row_sums, counts, out=np.zeros(len(bias)), where=counts > 0)
    Y = _basis(np.zeros_like(V0), V0, threads)
    for _ in range(SPECTRAL_ROUNDS):
        X = _basis(gradients(data, zero_U, Y, biases=biases, threads=threads)[0], U0, threads)
        Y = _basis(gradients(data, X, zero_V, biases=biases, threads=threads)[1], V0, threads)
    native.V[...] = Y * np.asarray(math.sqrt(data.n_items / settings["factors"]), dtype=Y.dtype)


def new_trainer(native: Any, data: Ratings, settings: Mapping[str, Any], learning_rate: float) -> Trainer:
    trainer_class = {"gd": GdTrainer, "als": AlsTrainer}.get(settings["solver"], SgdTrainer)
    return trainer_class(native, data, settings, learning_rate)


class RatingTrainer(Trainer):
    """What the rating solvers share: the model's arrays, its step schedule, and the loss
    L = 1/2 (squared errors + regularization * penalty) of docs/model.md."""

    def __init__(self, native: Any, settings: Mapping[str, Any], learning_rate: float,
                 names: tuple[str, ...]) -> None:
        super().__init__([getattr(native, name) for name in names])
        self.native = native
        self.settings = settings
        self.learning_rate = learning_rate
        self.biases = settings["biases"]
        self.U, self.V = native.U, native.V
        self.user_bias = native.user_bias if self.biases else None
        self.item_bias = native.item_bias if self.biases else None
        self.global_mean = native.global_mean if self.biases else 0.0
        self.regularization = settings["regularization"]
        self.threads = as_threads(settings["threads"])
        self.n_ratings = 0

    def record(self, squared_errors: float, penalty: float) -> dict[str, float]:
        loss = 0.5 * (squared_errors + self.regularization * penalty)
        return {"loss": loss, "train_rmse": math.sqrt(squared_errors / self.n_ratings)}

    def objective(self) -> tuple[float, float]:
        """(squared errors, penalty) of the training ratings at the current factors."""
        raise NotImplementedError

    def divergence_message(self, epoch: int, loss: float, last: int | None) -> str:
        if last is None:
            squared_errors, penalty = self.objective()
            start = 0.5 * (squared_errors + self.regularization * penalty)
            if not math.isfinite(start):
                return (f"the loss is not finite ({start}) even before training: the ratings or the initial "
                        f"factors (init_std={self.settings['init_std']}, init_mean={self.settings['init_mean']}) "
                        f"are too large to square in {self.settings['dtype']}")
        return (f"{super().divergence_message(epoch, loss, last)}. Lower the learning rate (it was "
                f"{step(self.settings, self.learning_rate, epoch):g}).")


def side_penalty(factors: np.ndarray, bias: np.ndarray | None, counts: np.ndarray, threads: int) -> float:
    """sum_n count_n (|x_n|^2 + bias_n^2) of one side, as the exact objective adds it (the same bits)."""
    norms = _core.row_squared_norms(factors.reshape(-1), len(factors), factors.shape[1], threads)
    return _core.penalty_of_norms(norms, bias, counts, threads)


class SgdTrainer(RatingTrainer):
    """SGD over the block grid, with a fixed step ("sgd") or per-row AdaGrad steps ("adagrad")."""

    def __init__(self, native: Any, data: Ratings, settings: Mapping[str, Any], learning_rate: float) -> None:
        super().__init__(native, settings, learning_rate, layout(settings))
        self.grid = data.native_grid(settings["dtype"], settings["blocks"], settings["seed"], self.threads)
        self.n_ratings = len(data)
        self.exact = settings["exact_loss"]
        self.counts = (self.grid.user_counts(), self.grid.item_counts())
        self.adagrad = settings["solver"] == "adagrad"
        self.accumulators: tuple[Any, Any] = ((native.user_accumulators, native.item_accumulators)
                                              if self.adagrad else (None, None))

    def run_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch, stopping early as soon as a sub-epoch leaves a value that is not finite.

        The record's squared errors are those seen during the epoch, each before its update (no
        pass over the ratings besides the epoch's own), and its penalty is that of the factors at
        the end; with exact_loss, both are the objective at the end of the epoch."""
        learning_rate = step(self.settings, self.learning_rate, epoch)
        # AdaGrad's first epoch of the model's training warms up the leading factors only (see
        # sgd_epoch); a continued training never repeats it.
        warm_up = self.adagrad and epoch == 0
        seen = 0.0
        # One native call per sub-epoch, so that Ctrl-C is seen within one sub-epoch.
        for sub_epoch in range(self.grid.blocks):
            squared_errors = _core.sgd_grid(self.grid, self.U, self.V, learning_rate, self.regularization, epoch,
                                            sub_epoch, self.global_mean, self.user_bias, self.item_bias,
                                            *self.accumulators, warm_up, self.threads)
            if not math.isfinite(squared_errors):
                return {"loss": math.inf}
            seen += squared_errors
        # AdaGrad's accumulators can overflow before any error does; an infinite one only stops
        # its row (a step of 0) until the epoch ends and is rolled back.
        if self.adagrad and not all(math.isfinite(float(a.max())) for a in self.accumulators):
            return {"loss": math.inf}
        if self.exact:
            return self.record(*self.objective())
        # The penalty of factors that overflowed is not finite: divergence is still caught at once.
        return self.record(seen, self.penalty())

    def penalty(self) -> float:
        return (side_penalty(self.U, self.user_bias, self.counts[0], self.threads)
                + side_penalty(self.V, self.item_bias, self.counts[1], self.threads))

    def objective(self) -> tuple[float, float]:
        return _core.grid_objective(self.grid, self.U, self.V, self.global_mean, self.user_bias,
                                    self.item_bias, self.threads)


class GdTrainer(RatingTrainer):
    """Full-batch gradient descent on the masked batch gradients."""

    def __init__(self, native: Any, data: Ratings, settings: Mapping[str, Any], learning_rate: float) -> None:
        super().__init__(native, settings, learning_rate, layout(settings))
        self.index = data.native_index(settings["dtype"])
        self.n_ratings = len(data)

    def run_epoch(self, epoch: int) -> dict[str, float]:
        learning_rate = step(self.settings, self.learning_rate, epoch)
        steps = _core.gradients(self.index, self.U, self.V, self.regularization, self.global_mean,
                                self.user_bias, self.item_bias, self.threads)
        # A step too large overflows: the loss then is not finite, and the loop rolls the epoch back.
        with np.errstate(over="ignore", invalid="ignore"):
            for target, gradient in zip(self.arrays, steps):
                target -= target.dtype.type(learning_rate) * gradient
        return self.record(*self.objective())

    def objective(self) -> tuple[float, float]:
        return _core.objective(self.index, self.U, self.V, self.global_mean, self.user_bias, self.item_bias,
                               self.threads)


class AlsTrainer(RatingTrainer):
    """Alternating least squares: each epoch gives every user row (factors and bias) the exact
    minimiser of the loss with V and the item biases fixed, then every item row likewise
    (`latentmf.solve_rows`), so the loss never increases. No step."""

    def __init__(self, native: Any, data: Ratings, settings: Mapping[str, Any], learning_rate: float) -> None:
        super().__init__(native, settings, learning_rate, layout(settings))
        self.data = data
        self.index = data.native_index(settings["dtype"])
        self.n_ratings = len(data)

    def run_epoch(self, epoch: int) -> dict[str, float]:
        biases = (self.global_mean, self.user_bias, self.item_bias) if self.biases else None
        for side in ("users", "items"):
            solve_rows(self.data, self.U, self.V, side=side, rule="explicit", regularization=self.regularization,
                       biases=biases, threads=self.settings["threads"])
            # A half-step that overflows leaves rows that are not finite, which the other side's
            # solve would refuse as input: the epoch's loss reports it instead (a divergence).
            if side == "users" and not np.isfinite(self.U).all():
                break
        return self.record(*self.objective())

    def objective(self) -> tuple[float, float]:
        return _core.objective(self.index, self.U, self.V, self.global_mean, self.user_bias, self.item_bias,
                               self.threads)

    def divergence_message(self, epoch: int, loss: float, last: int | None) -> str:
        return (f"{Trainer.divergence_message(self, epoch, loss, last)}. The ratings are too large to square in "
                f"{self.settings['dtype']}: rescale them, or use dtype='float64'.")
