"""ImplicitMatrixFactorization: iALS, the latent-factor model of implicit feedback (plays, clicks,
purchases), on the native row solver."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from . import metrics
from ._checks import as_integer, as_real, as_threads, check_memory, check_representable
from .base import FactorModel
from .data import Ratings, as_interactions
from .functions import implicit_loss, solve_rows
from .state import DataSummary, FittedState, SeenItems, draw_normal, empty_history, new_native
from .training import Trainer

SOLVERS = ("cg", "exact")
CONFIDENCES = ("linear", "log")

#: Settings that continuing a fit (warm_start, partial_fit) must keep.
STRUCTURAL_SETTINGS = ("factors", "dtype")

HISTORY_KEYS = ("epoch", "loss", "validation_ndcg", "seconds")

#: The list length of the validation NDCG in history_.
VALIDATION_K = 10


class RankingModel(FactorModel):
    """What the implicit-feedback models share: interactions as training data (see
    `latentmf.data.as_interactions`), factors drawn from N(0, init_std^2), the history of
    HISTORY_KEYS with validation by NDCG@10, and early stopping on it. A model supplies its
    hyper-parameters, its layout and its trainer (`_new_trainer`)."""

    _HISTORY_KEYS = HISTORY_KEYS
    _MONITOR = ("validation_ndcg", True)
    #: Settings that continuing a fit (warm_start, partial_fit) must keep.
    _STRUCTURAL_SETTINGS: tuple[str, ...] = STRUCTURAL_SETTINGS

    def _new_trainer(self, native: Any, data: Ratings, settings: dict[str, Any]) -> Trainer:
        raise NotImplementedError

    def _training_data(self, X: Any, y: Any) -> Ratings:
        """The interactions of fit(X): see the class documentation."""
        return as_interactions(X, y, type(self).__name__)

    def _start(self, data: Ratings, settings: dict[str, Any], epochs: int) -> tuple[FittedState, Trainer]:
        """A fresh native model, initialised, and its trainer (nothing of this model changes yet)."""
        check_factor_memory(settings, data.n_users, data.n_items, new_model=True)
        native = new_native(settings["dtype"], data.n_users, data.n_items, settings["factors"])
        draw_normal((native.U, native.V), settings["seed"], settings["init_std"], 0.0, as_threads(settings["threads"]))
        state = FittedState(native, settings, self._layout(settings), DataSummary.of(data), SeenItems(ratings=data),
                            empty_history(HISTORY_KEYS), training=data)
        return state, self._new_trainer(native, data, settings)

    def _continue(self, state: FittedState, data: Ratings, settings: dict[str, Any],
                  epochs: int) -> tuple[FittedState, Trainer]:
        self._check_continuable(state, data, settings, self._STRUCTURAL_SETTINGS)
        check_factor_memory(settings, data.n_users, data.n_items, new_model=False)
        return state, self._new_trainer(state.native, data, settings)

    def _validation(self, held_out: Ratings) -> dict[str, float]:
        return {"validation_ndcg": validation_ndcg(self, held_out)}


class ImplicitMatrixFactorization(RankingModel):
    """A latent-factor model of implicit feedback: which items each user chose, and how strongly.

    iALS (Hu, Koren and Volinsky 2008) over every (user, item) pair, observed or not: with
    r the strength of an interaction (1 for a table of events; a count, a rating, ...),
    preference p = 1 and confidence c = 1 + alpha r on observed pairs (or 1 + alpha log(1 + r /
    epsilon)), p = 0 and c = 1 on all the others, it minimises::

        L = sum over all (n, m) of c_nm (p_nm - u_n . v_m)^2 + sum_n lambda_n |u_n|^2 + sum_m lambda_m |v_m|^2

    with lambda_n = regularization * (n_items + sum_m (c_nm - 1)) ** nu, the total confidence of
    the row to the power nu: nu = 0 is the plain L2 of Hu et al., nu = 1 the frequency-scaled
    regularization of Rendle, Krichene, Zhang and Koren (2021). Each epoch solves every user's row
    with V fixed, then every item's with U fixed (`latentmf.solve_rows`), exactly or by a few
    steps of conjugate gradient; the unobserved pairs enter through the Gramians, never one by
    one. Users and items are ranked by u_n . v_m: recommend lists the items of highest score.

    Inputs: a `Ratings` (its values are the strengths; build one from a table without a rating
    column with ``Ratings.from_dataframe(df, rating=None)``), a (users, items) or (users, items,
    values) tuple of index arrays, an (n, 2) array of (user, item) ids, or a SciPy sparse matrix
    (users x items). Repeated (user, item) pairs are one interaction of their summed strength.

    Parameters
    ----------
    factors : int
        F, the number of latent factors.
    epochs : int
        Iterations (a user half-step and an item half-step each) per call of fit.
    regularization : float
        lambda.
    alpha : float
        The confidence of observed pairs grows with their strength at this rate.
    confidence : {"linear", "log"}
        c = 1 + alpha r, or c = 1 + alpha log(1 + r / epsilon) for strengths with a long tail.
    epsilon : float
        The scale of the strengths in the "log" confidence.
    nu : float
        The exponent of the frequency-scaled regularization (0: plain lambda).
    solver : {"cg", "exact"}
        "cg": `cg_steps` steps of conjugate gradient per row, started from the row's current
        factors (fast). "exact": the exact solution of each row's system (Cholesky).
    cg_steps : int
        Conjugate-gradient steps per row and half-step.
    init_std : float
        U and V start as N(0, init_std^2) draws, each 16,384 rows from its own stream of
        numpy.random.SeedSequence(seed), the same for any thread count.
    dtype : {"float32", "float64"}
        Precision of the factors and of the arithmetic.
    threads : int, optional
        Threads of the native loops (None: all cores); never changes the result.
    seed : int
        Seeds the initial factors; the same seed gives the same model.
    verbose, progress : bool
        One line per epoch; a progress bar (tqdm, when installed).
    early_stopping : int, optional
        With a validation set, stop once the validation NDCG@10 has not improved for this many
        epochs, and keep the factors of the best epoch (``best_epoch_``).
    warm_start : bool
        fit on a fitted model continues it for `epochs` more epochs.

    Attributes (after fit)
    ----------------------
    U, V : numpy.ndarray
        The factors, views of the model's memory.
    user_ids_, item_ids_ : IdMap or None
        The raw ids of the rows of U and V.
    history_ : dict of lists
        Per epoch: "epoch", "loss" (L above, after the epoch), "validation_ndcg" (NDCG@10 of the
        validation users' top-10 lists, their training items left out; NaN without validation),
        "seconds".

    The defaults are the setting of best NDCG@10 on a validation split of MovieLens 100k's
    u1.base, among those whose top-10 lists cover at least a quarter of the items
    (benchmarks/tune_implicit.py prints the grid).

    The shared behaviour (threads, failures, ids, recommend, recommend_all, similar_items,
    similar_users, files and pickles) is that of every latentmf model: see `FactorModel`.
    ``fold_in(items, values=None)`` solves the row of a new user (strength 1 per item by
    default) with V fixed, as an epoch would.
    """

    _FORMAT = "latentmf.ImplicitMatrixFactorization"

    def __init__(
        self,
        factors: int = 128,
        *,
        epochs: int = 15,
        regularization: float = 0.02,
        alpha: float = 15.0,
        confidence: str = "linear",
        epsilon: float = 1.0,
        nu: float = 1.0,
        solver: str = "cg",
        cg_steps: int = 3,
        init_std: float = 0.01,
        dtype: str = "float32",
        threads: int | None = None,
        seed: int = 0,
        verbose: bool = False,
        early_stopping: int | None = None,
        warm_start: bool = False,
        progress: bool = False,
    ) -> None:
        self.factors = factors
        self.epochs = epochs
        self.regularization = regularization
        self.alpha = alpha
        self.confidence = confidence
        self.epsilon = epsilon
        self.nu = nu
        self.solver = solver
        self.cg_steps = cg_steps
        self.init_std = init_std
        self.dtype = dtype
        self.threads = threads
        self.seed = seed
        self.verbose = verbose
        self.early_stopping = early_stopping
        self.warm_start = warm_start
        self.progress = progress

    def _settings(self) -> dict[str, Any]:
        for name, choices in (("solver", SOLVERS), ("confidence", CONFIDENCES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        settings = self._shared_settings()
        dtype = settings["dtype"]
        settings.update({
            "regularization": as_real(self.regularization, "regularization", 0.0),
            "alpha": as_real(self.alpha, "alpha", 0.0),
            "confidence": self.confidence,
            "epsilon": as_real(self.epsilon, "epsilon", 0.0, strict=True),
            "nu": as_real(self.nu, "nu", 0.0),
            "solver": self.solver,
            "cg_steps": as_integer(self.cg_steps, "cg_steps", 1, 1 << 16),
        })
        for name in ("regularization", "alpha", "init_std"):
            check_representable(settings[name], name, dtype)
        return settings

    @classmethod
    def _layout(cls, settings: Mapping[str, Any]) -> tuple[str, ...]:
        return ("U", "V")

    def _new_trainer(self, native: Any, data: Ratings, settings: dict[str, Any]) -> Trainer:
        return ImplicitTrainer(native, data, settings)

    def _solve_user(self, items: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        """The row of a new user, solved with V fixed as an epoch solves a user's row."""
        state = self._state()
        settings = state.settings
        one = Ratings(np.zeros(len(items), dtype=np.int64), items.astype(np.int64), values, 1, state.data.n_items)
        U = np.zeros((1, state.n_factors), dtype=state.dtype)
        solve_rows(one, U, state.native.V, side="users", rule="implicit", regularization=settings["regularization"],
                   regularization_exponent=settings["nu"], alpha=settings["alpha"],
                   confidence=settings["confidence"], epsilon=settings["epsilon"], method="exact",
                   threads=self.threads)
        return U[0], 0.0

    def _fold_in_values(self, values: Any, count: int) -> np.ndarray:
        """Strength 1 for each item unless given."""
        strengths = np.ones(count) if values is None else super()._fold_in_values(values, count)
        if (strengths < 0).any():
            raise ValueError("values (interaction strengths) must be >= 0")
        return strengths


def validation_ndcg(model: FactorModel, held_out: Ratings) -> float:
    """NDCG@10 of the held-out users' top-10 lists (training items left out) against their held-out
    interactions."""
    users = np.unique(held_out.users)
    raw = users if held_out.user_ids is None else held_out.user_ids.to_ids(users)
    lists = model.recommend_all(raw, k=VALIDATION_K)
    return metrics.ndcg_at_k(lists, held_out, VALIDATION_K, users=raw)


def check_factor_memory(settings: Mapping[str, Any], n_users: int, n_items: int, *, new_model: bool) -> None:
    """MemoryError before anything is allocated when the model and the copy of U and V that an
    epoch falls back on would not fit in physical memory."""
    itemsize = np.dtype(settings["dtype"]).itemsize
    rows = n_users + n_items
    need = rows * settings["factors"] * itemsize * (2 if new_model else 1)
    check_memory(need, f"the factors (factors={settings['factors']} for {n_users} users and {n_items} items, "
                       f"{settings['dtype']}) and the copy that training falls back on", hint=": use fewer factors")


class ImplicitTrainer(Trainer):
    """iALS epochs: the users' rows with V fixed, then the items' rows with U fixed."""

    def __init__(self, native: Any, data: Ratings, settings: Mapping[str, Any]) -> None:
        super().__init__([native.U, native.V])
        self.U, self.V = native.U, native.V
        self.data = data
        self.options = {"regularization": settings["regularization"], "regularization_exponent": settings["nu"],
                        "alpha": settings["alpha"], "confidence": settings["confidence"],
                        "epsilon": settings["epsilon"], "threads": settings["threads"]}
        self.method = settings["solver"]
        self.cg_steps = settings["cg_steps"]

    def run_epoch(self, epoch: int) -> dict[str, float]:
        for side in ("users", "items"):
            solve_rows(self.data, self.U, self.V, side=side, rule="implicit", method=self.method,
                       cg_steps=self.cg_steps, **self.options)
        loss = sum(implicit_loss(self.data, self.U, self.V, **self.options))
        return {"loss": loss}

    def divergence_message(self, epoch: int, loss: float, last: int | None) -> str:
        return (f"{super().divergence_message(epoch, loss, last)}. The strengths or alpha are too large for "
                "the model's dtype: scale them down, or use dtype='float64'.")

