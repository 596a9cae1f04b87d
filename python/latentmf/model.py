"""MatrixFactorization: the latent-factor model of ratings, with its solvers' hyper-parameters."""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np

from . import gibbs, rating_solvers
from ._checks import as_integer, as_real, check_representable
from .answers import TopItems, UnknownIdWarning, UserFactors, _pairs_array
from .base import FactorModel, NotFittedError
from .data import Ratings, as_ratings, value_array
from .functions import DEFAULT_BLOCKS
from .guard import reads
from .rating_solvers import SOLVERS
from .state import DataSummary, FittedState, SeenItems, empty_history, new_native
from .training import Trainer

__all__ = ["MatrixFactorization", "NotFittedError", "TopItems", "UnknownIdWarning", "UserFactors"]

UNKNOWN_POLICIES = ("warn", "mean", "error")
#: The starts of the factors (init): "spectral" is ALS's (rating_solvers.spectral_start).
INITS = ("random", "spectral")

#: The settings a model is built with; continuing training (warm_start, partial_fit) needs the same.
STRUCTURAL_SETTINGS = ("factors", "dtype", "biases", "solver")

HISTORY_KEYS = ("epoch", "loss", "train_rmse", "validation_rmse", "seconds")


class MatrixFactorization(FactorModel):
    """A latent-factor model of ratings, fitted to the observed ratings only.

    It predicts r_hat = mu + b_n + c_m + u_n . v_m with biases (the default), or u_n . v_m without,
    and minimises the squared error plus an L2 penalty charged once per observed rating
    (docs/model.md): ``L = 1/2 sum [(r - r_hat)^2 + regularization (|u_n|^2 + |v_m|^2 + b_n^2 + c_m^2)]``.

    Users and items are the dense indices of the training `Ratings`, or, when those ratings carry
    id maps (`Ratings.from_dataframe`, `Ratings.from_ids`), the raw ids: predict, recommend,
    recommend_all, similar_items and fold_in then take and return the user's own ids.

    recommend and recommend_all rank the items by their predicted rating. That favours items of
    high predicted rating however few users chose them, and ranks poorly as a top-N list: for
    recommendations, ImplicitMatrixFactorization, which learns from which items each user rated,
    ranks far better (benchmarks/bench_implicit.py, docs/performance.md).

    It follows scikit-learn's estimator rules (`get_params`, `set_params`, `clone`), and besides
    ``fit(ratings)`` accepts ``fit(X, y)`` with X an (n, 2) array of (user, item) ids and y the
    ratings, ``predict(X)`` and ``score(X, y)``, so GridSearchCV and cross_val_score work.

    Parameters
    ----------
    factors : int
        F, the number of latent factors (columns of U and V). 32 for every solver: more gain at most
        0.4% in validation RMSE on MovieLens 100k (benchmarks/tune_rating.py).
    solver : {"adagrad", "sgd", "gd", "als", "gibbs"}
        "sgd": stochastic gradient descent over the stratified block grid of docs/model.md, in
        parallel, with results that do not depend on the number of threads. "adagrad": the same
        with steps per row and group of factors (AdaGrad after LIBMF's schedule, with a first
        epoch on the leading 16 factors; see `latentmf.sgd_epoch`): fewer epochs, notably
        without biases. "gd": full-batch gradient descent on the masked batch gradients. "als":
        alternating least squares, the exact minimiser of the loss for each user's row (factors
        and bias) with the items fixed, then for each item's; no learning rate, and the loss
        never increases. "gibbs": Bayesian PMF (Salakhutdinov and Mnih 2008), a Gibbs sampler
        with Normal-Wishart hyperpriors on each side's factors (and biases) and a Gamma prior on
        the noise precision, all sampled (`latentmf.gibbs_sweep`); `regularization` plays no part in
        training (fold_in uses it). Each epoch is one sweep; after `burn_in` sweeps every sample is
        kept, and predictions (and top-N lists) are the posterior mean over the kept samples,
        exactly (see `latentmf.gibbs`: U and V then hold the kept samples side by side, factors *
        kept wide).
    epochs : int, optional
        Passes over the ratings (SGD), gradient steps (GD), alternations (ALS) or sweeps (Gibbs)
        per call of fit. None: the solver's default (see Defaults).
    learning_rate : float, optional
        The step eta of "adagrad", "sgd" and "gd". None: the solver's default (see Defaults).
    learning_rate_decay : float
        Epoch t (from 0, counted over the model's whole training) uses
        eta / (1 + learning_rate_decay * t); 0 keeps the step fixed.
    regularization : float, optional
        lambda, the L2 weight per rating. None: the solver's default (see Defaults).
    biases : bool
        Learn the global mean mu (fixed to the mean rating) and user and item biases.
    init_std, init_mean : float, optional
        U and V start as independent N(init_mean, init_std^2) draws, each 16,384 rows from its
        own stream of numpy.random.SeedSequence(seed) (Gibbs: from numpy.random.default_rng(seed)),
        the same for any thread count; the biases start at 0. init_std=None means 0.1 for Gibbs
        and 0.01 for the other solvers (see Defaults). init_mean=None means 0 with biases,
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
    unknown : {"warn", "mean", "error"}
        What the model does with a user or item id its training data did not have (scikit-learn's
        cross-validation folds hold such ids). "warn" (the default): predict (and score) predict
        such pairs from the mean training rating plus the bias of whichever side is known (no
        factor term), and warn once per call with the number of such pairs; recommend and
        recommend_all raise ValueError for an unknown user, and fold_in for an unknown item.
        "mean": the same predictions without a warning; recommend to an unknown user the items
        with the highest item bias (in item order without biases); fold_in skips unknown items.
        "error": raise ValueError naming the id. similar_items and similar_users always raise
        for an unknown id.
    clip : bool
        Clip predictions (predict, score, predict_for, the validation RMSE of ``history_``) to the
        range of the training ratings, which the model's formula can leave (5.2 on a 5-star
        scale). Scores of recommend, recommend_all and recommend_for are the formula's own
        values, never clipped: clipping would tie the best items and lose their order.
    burn_in : int, optional
        solver="gibbs": the sweeps before the first kept sample. None: 20 (see Defaults).
    implicit_links : float, optional
        solver="gibbs": the implicit feedback of SVD++ as links of the prior. A user's prior mean
        becomes mu_U plus c^{-1/2} times the sum of a link vector of each item it rated (c: its
        ratings), an item's likewise from the users who rated it, the links sampled too with the
        prior N(0, (implicit_links Lambda)^-1) (`latentmf.gibbs_sweep`). Which items a user rated
        then informs its factors, and which users rated an item the item's. A side's prior gets
        links only when it has at least as many rows as links (the users' when there are no more
        items than users, the items' when there are no more users than items): with more links
        than rows the chain can pin the factors near zero (docs/model.md). On MovieLens 100k's u1
        split the test RMSE goes from 0.905 to 0.891. 0 turns the links off. None: 1.0. The
        links are drawn one after the other on one thread: on 9M synthetic ratings (whose rated
        pairs carry no signal) a sweep took about 1.4 s with them and 0.7 s without (2 threads),
        for a test RMSE of 0.6752 against 0.6713.
    init : {"random", "spectral"}
        solver="als": how U and V start. "random": the draws of init_std and init_mean (above).
        "spectral": after those draws, V becomes a basis of the leading singular subspace of the
        residuals of the biases' start (two rounds of subspace iteration), U becomes 0 and the
        biases take their ridge solves with the factors at 0 (docs/model.md, "The spectral start
        of ALS"). ALS then needs fewer epochs: on 9M synthetic ratings (lambda 0.04) its test RMSE
        after 2 epochs was 0.709 against 0.930 from the random start, for about one epoch's time.
        Needs at least `factors` users and items.
    exact_loss : bool
        How the SGD solvers fill ``history_``'s "loss" and "train_rmse". False: from the errors seen
        during the epoch, each before its update, and the penalty of the factors at the end of
        the epoch (no pass over the ratings besides the epoch's own; as LIBMF reports it). True:
        the objective at the end of the epoch (as `latentmf.loss` computes it), which costs one
        more pass over the ratings per epoch. "gd" always reports the objective at the end.

    Some hyper-parameters are read by some solvers only: learning_rate and learning_rate_decay by
    "adagrad", "sgd" and "gd"; blocks by "adagrad" and "sgd"; init_mean by all but "gibbs";
    burn_in and implicit_links by "gibbs"; init by "als". Given to another solver (a value other
    than None, "random" for init, or 0 for learning_rate_decay), fit and partial_fit warn
    (UserWarning) that they ignore it: not an error, so that one grid search may try several
    solvers.

    Defaults
    --------
    epochs, learning_rate, regularization, burn_in, implicit_links and init_std given as None (their
    defaults) take values that depend on the solver and on biases; ``get_params()`` keeps None, and
    ``settings_`` holds the values a fit used. With biases / without:

    - "adagrad": 15 epochs, step 0.03, lambda 0.03 / 30 epochs, step 0.05, lambda 0.05.
    - "sgd": 30 epochs, step 0.01, lambda 0.03 / 40 epochs, step 0.01, lambda 0.05.
    - "gd": 200 steps, lambda 0.07 / 0.03; the step is 1.0 / 0.5 divided by the most ratings of one
      user or item, as the busiest row's gradient sums that many terms.
    - "als": lambda 0.12; 15 alternations / 10.
    - "gibbs": 100 sweeps, burn_in 20, init_std 0.1, implicit_links 1.0 (both); lambda 0.12
      (ALS's) for fold_in.

    The other solvers start from init_std 0.01.

    Why: each is the setting of best validation RMSE on a split of MovieLens 100k's u1.base at 32
    factors or, among those within 0.3% of it, the best on a split of a 9M synthetic set
    (benchmarks/tune_rating.py prints the grids). The SGD solvers overfit MovieLens 100k once they
    converge at any lambda that suits them early on, so their epochs and step come as a pair that
    stops near the validation optimum; without biases the factors must also carry the mean rating
    and the biases, which takes more epochs and a larger lambda. ALS converges to the penalised
    optimum itself, so it needs a larger lambda (0.07 gives 3.5% more error). GD's larger step with
    biases reaches the optimum in 200 steps, while without biases it oscillates as the factors grow
    to carry the mean. Gibbs's posterior mean changes by less than 0.2% from 100 to 300 sweeps,
    and keeping the samples from sweep 20 on beats a burn-in of 50 by about 0.5%; U and V hold the
    80 kept samples (factors * 80 columns). From factors of 0.01 the chain on the 9M set had not
    left the fit of the biases after 100 sweeps (the sampled prior precision holds tiny factors
    small); from 0.1 it got within 3% of ALS's best in 40, for 0.2% on MovieLens 100k. One lambda
    cannot suit both data sets: the synthetic set's best is 0.02 to 0.04, and its error with these
    defaults is up to 14% above its best (docs/guide/training.md has the figures).

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
    epoch, with ``history_`` to match.

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
        Per epoch: "epoch" (counted over the whole training), "loss" and "train_rmse" (see
        exact_loss), "validation_rmse" (NaN without validation), "seconds" (wall time,
        evaluation included).
    best_epoch_ : int or None
        With early_stopping, the epoch whose factors the model keeps; None otherwise.
    settings_ : dict
        The hyper-parameters the fit ran with, each one given as None resolved (see Defaults);
        a model file and a pickle keep them.
    fit_report_ : object or None
        What a training back-end reported of the fit (`latentmf.dask.DaskFitReport`), else None.
    """

    _FORMAT = "latentmf.MatrixFactorization"
    _HISTORY_KEYS = HISTORY_KEYS
    predicts_ratings = True

    def __init__(
        self,
        factors: int = 32,
        *,
        solver: str = "adagrad",
        epochs: int | None = None,
        learning_rate: float | None = None,
        learning_rate_decay: float = 0.0,
        regularization: float | None = None,
        biases: bool = True,
        init_std: float | None = None,
        init_mean: float | None = None,
        dtype: str = "float32",
        threads: int | None = None,
        blocks: int | None = None,
        seed: int = 0,
        verbose: bool = False,
        early_stopping: int | None = None,
        warm_start: bool = False,
        progress: bool = False,
        unknown: str = "warn",
        clip: bool = True,
        exact_loss: bool = False,
        burn_in: int | None = None,
        implicit_links: float | None = None,
        init: str = "random",
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
        self.clip = clip
        self.exact_loss = exact_loss
        self.burn_in = burn_in
        self.implicit_links = implicit_links
        self.init = init

    def __sklearn_tags__(self) -> Any:
        # Only scikit-learn calls this, so only then is scikit-learn imported.
        from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags

        return Tags(estimator_type="regressor", target_tags=TargetTags(required=True),
                    regressor_tags=RegressorTags(), input_tags=InputTags(two_d_array=True, string=True))

    def _settings(self) -> dict[str, Any]:
        """The hyper-parameters, checked; raises before anything is changed."""
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"unknown must be one of {UNKNOWN_POLICIES}, got {self.unknown!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        settings = self._shared_settings(flags=("biases", "clip", "exact_loss"), defaulted=("epochs", "init_std"))
        dtype = settings["dtype"]
        settings.update({
            "solver": self.solver,
            "learning_rate": None if self.learning_rate is None
            else as_real(self.learning_rate, "learning_rate", 0.0, strict=True),
            "learning_rate_decay": as_real(self.learning_rate_decay, "learning_rate_decay", 0.0),
            "regularization": None if self.regularization is None
            else as_real(self.regularization, "regularization", 0.0),
            "init_mean": None if self.init_mean is None else as_real(self.init_mean, "init_mean", -np.inf),
            "blocks": DEFAULT_BLOCKS if self.blocks is None else as_integer(self.blocks, "blocks", 1, 1024),
            "unknown": self.unknown,
            "burn_in": None if self.burn_in is None else as_integer(self.burn_in, "burn_in", 0),
            "implicit_links": None if self.implicit_links is None
            else as_real(self.implicit_links, "implicit_links", 0.0),
            "init": self.init,
        })
        settings = rating_solvers.with_defaults(settings)
        # The model computes in `dtype`: values it cannot hold are refused here, by name.
        if settings["learning_rate"] is not None:
            check_representable(settings["learning_rate"], "learning_rate", dtype, positive=True)
        for name in ("regularization", "init_std", "init_mean"):
            if settings[name] is not None:
                check_representable(settings[name], name, dtype)
        return settings

    def _unused_settings(self, settings: Mapping[str, Any]) -> str | None:
        return rating_solvers.unused_settings(settings["solver"], self.get_params())

    @classmethod
    def _layout(cls, settings: Mapping[str, Any]) -> tuple[str, ...]:
        return rating_solvers.layout(settings)

    def _training_data(self, X: Any, y: Any) -> Ratings:
        """fit(ratings) with a Ratings or a (users, items, values) tuple, or scikit-learn's fit(X, y)
        with X an (n, 2) array-like of (user, item) ids (raw ids mapped as in Ratings.from_ids)."""
        if y is not None:
            if isinstance(X, (Ratings, tuple)):
                raise TypeError("y is for scikit-learn's fit(X, y), with X an (n, 2) array of (user, item) ids; "
                                f"with {'a Ratings' if isinstance(X, Ratings) else 'a (users, items, values) tuple'} "
                                "as X, pass no y (a validation set is the keyword argument validation=)")
            pairs = _pairs_array(X, "X")
            truth = np.asarray(y)
            if truth.ndim != 1 or len(truth) != len(pairs):
                raise ValueError(f"y must be 1-dimensional with one rating per row of X ({len(pairs)}), got shape "
                                 f"{truth.shape}")
            return Ratings.from_ids(pairs[:, 0], pairs[:, 1], truth)
        try:
            return as_ratings(X)
        except TypeError as error:
            raise TypeError(f"{error}; for a data frame use latentmf.Ratings.from_dataframe, or fit(X, y) with X an "
                            "(n, 2) array of (user, item) ids") from None

    def _start(self, data: Ratings, settings: dict[str, Any], epochs: int) -> tuple[FittedState, Trainer]:
        """A fresh native model, initialised, and its trainer (nothing of this model changes yet)."""
        rating_solvers.check_values(data, settings["dtype"])
        learning_rate = rating_solvers.default_learning_rate(settings, data)
        rating_solvers.check_steps(settings, settings["learning_rate"] or learning_rate, 0, epochs)
        rating_solvers.check_training_memory(settings, data.n_users, data.n_items, new_model=True)
        rating_solvers.check_spectral(data, settings)
        summary = DataSummary.of(data)
        derived = {} if math.isnan(learning_rate) else {"default_learning_rate": learning_rate}
        width, chain = settings["factors"], {}
        if settings["solver"] == "gibbs":
            samples = gibbs.slots(settings, epochs)
            gibbs.check_memory_of(settings, data.n_users, data.n_items, samples)
            width, derived = settings["factors"] * samples, {"slots": float(samples)}
        native = new_native(settings["dtype"], data.n_users, data.n_items, width)
        if settings["solver"] == "gibbs":
            chain = gibbs.new_chain(native, summary, settings)
        else:
            rating_solvers.initialize(native, summary, settings)
            if rating_solvers.starts_spectrally(settings):
                rating_solvers.spectral_start(native, data, settings)
        state = FittedState(native, settings, self._layout(settings), summary, SeenItems(ratings=data),
                            empty_history(HISTORY_KEYS), derived=derived, training=data, solver_state=chain)
        return state, self._trainer(state, data, settings)

    def _continue(self, state: FittedState, data: Ratings, settings: dict[str, Any],
                  epochs: int) -> tuple[FittedState, Trainer]:
        """Checks that training can continue on `data` for `epochs` more epochs; the trainer."""
        structural = STRUCTURAL_SETTINGS + (("burn_in", "implicit_links") if settings["solver"] == "gibbs" else ())
        self._check_continuable(state, data, settings, structural)
        rating_solvers.check_values(data, settings["dtype"])
        rating_solvers.check_steps(settings, self._learning_rate(state, settings), state.epochs_run, epochs)
        rating_solvers.check_training_memory(settings, data.n_users, data.n_items, new_model=False)
        if settings["solver"] == "gibbs":
            samples = gibbs.slots(settings, state.epochs_run + epochs)
            gibbs.check_memory_of(settings, data.n_users, data.n_items, samples)
            state = gibbs.widened(state, samples)
        return state, self._trainer(state, data, settings)

    def _trainer(self, state: FittedState, data: Ratings, settings: dict[str, Any]) -> Trainer:
        if settings["solver"] == "gibbs":
            return gibbs.GibbsTrainer(state, data)
        return rating_solvers.new_trainer(state.native, data, settings, self._learning_rate(state, settings))

    @classmethod
    def _native_width(cls, settings: Mapping[str, Any], derived: Mapping[str, float]) -> int:
        """F, or F times the samples a Gibbs model holds (see latentmf.gibbs)."""
        if settings["solver"] == "gibbs":
            return int(settings["factors"] * derived.get("slots", 1))
        return int(settings["factors"])

    def _check_solver_state(self, state: FittedState) -> None:
        if state.settings["solver"] != "gibbs":
            super()._check_solver_state(state)
            return
        expected = gibbs.chain_layout(state.settings, state.data.n_users, state.data.n_items)
        found = {name: (array.shape, array.dtype.name) for name, array in state.solver_state.items()}
        if found != expected:
            raise ValueError(f"the Gibbs chain must be the arrays {expected} (shape, dtype), got {found}")

    @property
    def settings_(self) -> dict[str, Any]:
        """The hyper-parameters the fit ran with: get_params()'s, checked, with each default given as
        None resolved (epochs, regularization, burn_in; learning_rate for the solvers that step)."""
        state = self._state()
        settings = dict(state.settings)
        if settings["solver"] in rating_solvers.STEPPED:
            settings["learning_rate"] = self._learning_rate(state, settings)
        return settings

    @staticmethod
    def _learning_rate(state: FittedState, settings: Mapping[str, Any]) -> float:
        return settings["learning_rate"] or state.derived.get("default_learning_rate", math.nan)

    def _validation(self, held_out: Ratings) -> dict[str, float]:
        return {"validation_rmse": self._rmse(held_out)}

    # Unknown ids

    def _unknown_policy(self, use: str) -> str:
        if self.unknown == "mean" or (self.unknown == "warn" and use == "predict"):
            return "mean"
        return "error"

    def _unknown_hint(self, side: str) -> str:
        return " (MatrixFactorization(unknown='mean') answers unknown ids from the mean rating and biases instead)"

    def _note_unknown(self, count: int, total: int) -> None:
        if self.unknown == "warn":
            warnings.warn(f"{count} of {total} pairs have a user or item the model was not trained on: predicted "
                          "from the mean rating and the known biases (unknown='mean' silences this, "
                          "unknown='error' refuses them)", UnknownIdWarning, stacklevel=3)

    def _output(self, predictions: np.ndarray) -> np.ndarray:
        """Predictions clipped to the training ratings' range (with clip)."""
        if self.clip:
            data = self._state().data
            np.clip(predictions, data.low, data.high, out=predictions)
        return predictions

    def _predict_unknown(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The "mean" policy: the mean rating plus the bias of each side that is known (-1: unknown)."""
        state = self._state()
        predictions = np.full(len(users), state.data.mean)
        if state.biases:
            predictions += np.where(users >= 0, state.native.user_bias[np.maximum(users, 0)], 0.0)
            predictions += np.where(items >= 0, state.native.item_bias[np.maximum(items, 0)], 0.0)
        return predictions

    def _cold_top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Unknown users (the "mean" policy) share one list: a user with zero factors and bias,
        scored as predict scores them (the mean rating, plus the item bias)."""
        state = self._state()
        items, scores = self._top_for_factors(np.zeros(state.n_factors), 0.0, k, np.empty(0, dtype=np.int64))
        if not state.biases:
            scores += scores.dtype.type(state.data.mean)
        return items, scores

    @reads
    def score(self, X: Any, y: Any) -> float:
        """R^2 of predict(X) against the ratings y: 1 - sum (y - y_hat)^2 / sum (y - mean y)^2.

        scikit-learn's regressor convention (higher is better, 1 is perfect), which GridSearchCV
        and cross_val_score use by default. For RMSE use `latentmf.metrics.rmse`.
        """
        truth = value_array(y, "y").astype(np.float64)
        predictions = self.predict(X).astype(np.float64)
        if len(truth) != len(predictions):
            raise ValueError(f"X and y must have the same length, got {len(predictions)} and {len(truth)}")
        residual = float(np.sum((truth - predictions) ** 2))
        total = float(np.sum((truth - truth.mean()) ** 2))
        if total == 0.0:
            return 1.0 if residual == 0.0 else 0.0
        return 1.0 - residual / total

    # New users

    def _solve_user(self, items: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        """The model's own regularised least squares for one user with V (and the item biases) fixed,
        min over u (and b) of 1/2 sum_m [(r_m - r_hat_m)^2 + regularization (|u|^2 + b^2)], that is
        (V_I^T V_I + regularization * c * I) u = V_I^T (r - mu - c_I) with c the number of ratings
        (the bias joins u as a column of ones with biases)."""
        state = self._state()
        native = state.native
        design = native.V[items].astype(np.float64)
        ratings = values
        if state.biases:
            ratings = ratings - native.global_mean - native.item_bias[items]
            design = np.hstack([design, np.ones((len(items), 1))])
        solution = np.zeros(design.shape[1])
        if len(items):
            penalty = state.settings["regularization"] * len(items)
            gram = design.T @ design + penalty * np.eye(design.shape[1])
            # lstsq, not solve: without regularization and with fewer ratings than factors the
            # system is singular, and the least-norm solution is the sensible answer.
            solution = np.linalg.lstsq(gram, design.T @ ratings, rcond=None)[0]
        return solution[:state.n_factors], float(solution[-1]) if state.biases else 0.0
