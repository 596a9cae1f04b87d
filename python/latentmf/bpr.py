"""BayesianPersonalizedRanking: the pairwise ranking model of implicit feedback (Rendle et al.
2009), trained by SGD on the stratified block grid: parallel, lock-free and deterministic."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from . import _core
from ._checks import as_integer, as_real, as_threads, check_representable
from .data import Ratings
from .functions import DEFAULT_BLOCKS, solve_rows
from .implicit import RankingModel
from .training import Trainer


class BayesianPersonalizedRanking(RankingModel):
    """A latent-factor model of implicit feedback that learns to rank each user's items above the
    others: Bayesian personalized ranking (Rendle, Freudenthaler, Gantner and Schmidt-Thieme 2009).

    For a user n, an item i of the user's interactions (a positive) and an item j drawn from the
    others (a negative), x = u_n . (v_i - v_j) (+ c_i - c_j with item biases) is how far the model
    ranks i above j. Training maximises the sum of ln sigma(x) over such triples, with L2
    regularization of the rows each triple touches: every epoch visits each positive once, with a
    fresh negative, and takes one SGD step on the triple's loss::

        l = -ln sigma(x) + regularization / 2 (|u_n|^2 + |v_i|^2 + |v_j|^2 [+ c_i^2 + c_j^2])

    (`latentmf.bpr_sub_epoch` states the step). Users and items are ranked by u_n . v_m (+ c_m):
    recommend lists the items of highest score.

    The epoch runs on the stratified block grid of docs/model.md: users in `blocks` fixed groups,
    items in `blocks` groups drawn anew every epoch (so that every item is contrasted with every
    other across epochs), the negative of a positive drawn from its item group. The blocks of a
    sub-epoch share no rows and run in parallel without locks: the model is the same bits for any
    `threads`, and for any split of the epochs between fit and partial_fit.

    Inputs as for `ImplicitMatrixFactorization`: a `Ratings`, a (users, items) or (users, items,
    values) tuple of index arrays, an (n, 2) array of (user, item) ids, or a SciPy sparse matrix
    (users x items). Every listed (user, item) pair is a positive, whatever its strength; repeated
    pairs count once.

    Parameters
    ----------
    factors : int
        F, the number of latent factors.
    epochs : int
        Epochs per call of fit: each visits every positive once.
    learning_rate : float
        eta, the SGD step.
    regularization : float
        lambda.
    biases : bool
        Learn an item bias c_m (a popularity term) beside the factors.
    blocks : int
        B, the groups per side of the block grid: the parallelism of a sub-epoch, and part of
        what the result depends on (with the seed), never the thread count.
    init_std : float
        U and V start as N(0, init_std^2) draws, each 16,384 rows from its own stream of
        numpy.random.SeedSequence(seed), the same for any thread count.
    dtype : {"float32", "float64"}
        Precision of the factors and of the arithmetic.
    threads : int, optional
        Threads of the native loops (None: all cores); never changes the result.
    seed : int
        Seeds the initial factors, the grid and the negatives; the same seed gives the same model.
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
    item_bias_ : numpy.ndarray or None
        c, with biases.
    user_ids_, item_ids_ : IdMap or None
        The raw ids of the rows of U and V.
    history_ : dict of lists
        Per epoch: "epoch", "loss" (the sum of l over the epoch's triples, each with the values
        before its step), "validation_ndcg" (NDCG@10 of the validation users' top-10 lists, their
        training items left out; NaN without validation), "seconds".

    The defaults (factors=128, epochs=200, learning_rate=0.03, regularization=0.01, biases=True,
    init_std=0.1) are the setting of best NDCG@10 on a validation split of MovieLens 100k's u1.base
    (20% of each user's interactions held out, u1.test never looked at) among those whose top-10
    lists cover at least a quarter of the items, from a grid of factors {32, 64, 128},
    learning_rate {0.01, 0.03, 0.1}, regularization {0.001, 0.003, 0.01, 0.03}, biases, init_std
    {0.01, 0.1} and epochs {10, ..., 200}: ``python benchmarks/tune_bpr.py`` prints the grid.
    regularization=0.01 won at every size; more factors and more epochs ranked better up to the
    grid's largest; the same setting after 100 epochs, in half the time, ranks a little worse
    (validation NDCG@10 0.293 against 0.303).

    The shared behaviour (threads, failures, ids, recommend, recommend_all, similar_items,
    similar_users, files and pickles) is that of every latentmf model: see `FactorModel`.
    ``fold_in(items)`` gives a new user the least-squares fit of their items against V: the u
    minimising sum over all items m of (p_m - u . v_m)^2 + lambda |u|^2, with p_m = 1 for the
    user's items and 0 for the others (with biases, p_m - c_m - b, b an offset of the user's that
    ranking ignores). It ranks like a trained user without SGD steps for the user, whose outcome
    would depend on their number and order; values, if given, are ignored like the strengths of
    training.
    """

    _FORMAT = "latentmf.BayesianPersonalizedRanking"
    _STRUCTURAL_SETTINGS = ("factors", "dtype", "biases")

    def __init__(
        self,
        factors: int = 128,
        *,
        epochs: int = 200,
        learning_rate: float = 0.03,
        regularization: float = 0.01,
        biases: bool = True,
        blocks: int = DEFAULT_BLOCKS,
        init_std: float = 0.1,
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
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.biases = biases
        self.blocks = blocks
        self.init_std = init_std
        self.dtype = dtype
        self.threads = threads
        self.seed = seed
        self.verbose = verbose
        self.early_stopping = early_stopping
        self.warm_start = warm_start
        self.progress = progress

    def _settings(self) -> dict[str, Any]:
        settings = self._shared_settings(flags=("biases",))
        dtype = settings["dtype"]
        settings.update({
            "learning_rate": as_real(self.learning_rate, "learning_rate", 0.0, strict=True),
            "regularization": as_real(self.regularization, "regularization", 0.0),
            "blocks": as_integer(self.blocks, "blocks", 1, 1024),
        })
        check_representable(settings["learning_rate"], "learning_rate", dtype, positive=True)
        for name in ("regularization", "init_std"):
            check_representable(settings[name], name, dtype)
        return settings

    @classmethod
    def _layout(cls, settings: Mapping[str, Any]) -> tuple[str, ...]:
        return ("U", "V", "item_bias") if settings["biases"] else ("U", "V")

    def _new_trainer(self, native: Any, data: Ratings, settings: dict[str, Any]) -> Trainer:
        return BprTrainer(native, data, settings)

    def _solve_user(self, items: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        """The least-squares fit of a new user's items against V (see the class documentation): the
        row solve of iALS with confidence 1 everywhere."""
        state = self._state()
        one = Ratings(np.zeros(len(items), dtype=np.int64), items.astype(np.int64), np.ones(len(items)), 1,
                      state.data.n_items)
        U = np.zeros((1, state.n_factors), dtype=state.dtype)
        biases = (0.0, np.zeros(1, dtype=state.dtype), state.native.item_bias) if state.biases else None
        solve_rows(one, U, state.native.V, side="users", rule="implicit", alpha=0.0,
                   regularization=state.settings["regularization"], biases=biases, method="exact",
                   threads=self.threads)
        return U[0], 0.0

    def _fold_in_values(self, values: Any, count: int) -> np.ndarray:
        """Every item is a positive: values are ignored."""
        return np.ones(count)


class BprTrainer(Trainer):
    """BPR epochs: the grid's positives arranged into the epoch's blocks, then its B sub-epochs,
    one native call each (so that Ctrl-C is seen within one sub-epoch)."""

    def __init__(self, native: Any, data: Ratings, settings: Mapping[str, Any]) -> None:
        self.item_bias = native.item_bias if settings["biases"] else None
        super().__init__([native.U, native.V] + ([] if self.item_bias is None else [self.item_bias]))
        self.U, self.V = native.U, native.V
        offsets, items = data.items_by_user()
        self.grid = _core.BprGrid(offsets, items, data.n_items, settings["blocks"], settings["seed"])
        self.learning_rate = settings["learning_rate"]
        self.regularization = settings["regularization"]
        self.threads = as_threads(settings["threads"])

    def run_epoch(self, epoch: int) -> dict[str, float]:
        self.grid.bucket(epoch, self.threads)
        loss = 0.0
        for sub_epoch in range(self.grid.blocks):
            loss += _core.bpr_sub_epoch(self.grid, self.U, self.V, self.item_bias, self.learning_rate,
                                        self.regularization, epoch, sub_epoch, self.threads)
        return {"loss": loss}

    def divergence_message(self, epoch: int, loss: float, last: int | None) -> str:
        return f"{super().divergence_message(epoch, loss, last)}. Use a smaller learning_rate."
