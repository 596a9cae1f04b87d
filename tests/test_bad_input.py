"""The bad-input catalogue: every public entry point, fed what it must refuse.

Each case is one bad input to one entry point. It must raise the specific exception with a message
that names the argument, and leave everything it touched as it was: the fitted models (factors,
biases, AdaGrad accumulators, history, the native model itself) and the caller's arrays. The
command line must exit with code 2 and one line naming the problem, leaving its output file alone.
`CATALOGUE` and `CLI_CATALOGUE` are the lists; `test_the_catalogue_is_large_and_covers_every_entry`
counts them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

import latentmf
from latentmf import Ratings, reference
from latentmf.cli import main

from conftest import random_factors, random_ratings


class World:
    """What a case may touch: small ratings and the caller's arrays for the functions of arrays,
    and fitted models (dense indices with AdaGrad and biases, raw ids with SGD and no biases)."""

    def __init__(self, rng: np.random.Generator, tmp_path: Any) -> None:
        self.tmp_path = tmp_path
        self.ratings = random_ratings(rng, 10, 8, 30)
        self.U, self.V = random_factors(rng, 10, 8, 3)
        self.user_bias, self.item_bias = np.zeros(10), np.zeros(8)
        self.biases = (3.0, self.user_bias, self.item_bias)
        self.adagrad = (np.ones((10, 2)), np.ones((8, 2)))
        self.float32 = tuple(a.astype(np.float32) for a in (self.U, self.V, self.user_bias, self.item_bias))
        self.train = random_ratings(rng, 20, 10, 60)
        # unknown="error": the catalogue is about what is refused (the default answers unknown ids
        # in predict, with a warning: see test_model.py)
        self.model = latentmf.MatrixFactorization(factors=3, epochs=2, seed=1, unknown="error").fit(self.train)
        raw = Ratings.from_ids(np.array([f"u{n}" for n in range(20)])[self.train.users],
                               self.train.items.astype(np.int64) * 10 + 7, self.train.values)
        self.raw_model = latentmf.MatrixFactorization(factors=3, epochs=2, solver="sgd", biases=False,
                                                      unknown="error").fit(raw)
        self.raw = raw

    def arrays(self) -> list[np.ndarray]:
        return [self.U, self.V, self.user_bias, self.item_bias, *self.adagrad, *self.float32]

    def state(self) -> list[Any]:
        """Copies of everything a bad call must leave alone."""
        state: list[Any] = [a.copy() for a in self.arrays()]
        for model in (self.model, self.raw_model):
            native = model._state().native
            state += [native, native.U.copy(), native.V.copy(), native.user_bias.copy(), native.item_bias.copy(),
                      native.user_accumulators.copy(), native.item_accumulators.copy(), native.global_mean,
                      {key: list(values) for key, values in model.history_.items()}, model.best_epoch_,
                      model.user_ids_, model.item_ids_, model._state().settings]
        return state


def _assert_unchanged(before: list[Any], after: list[Any]) -> None:
    assert len(before) == len(after)
    for a, b in zip(before, after):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        elif type(a).__module__ == "latentmf._core":
            assert a is b  # the same native model, not a new one
        else:
            assert a == b


@dataclass(frozen=True)
class Bad:
    entry: str  # the public entry point
    what: str  # what is wrong with the input
    call: Callable[[World], Any]
    error: type[BaseException]
    match: str  # names the argument


def _refit(**params: Any) -> Callable[[World], Any]:
    """fit with changed hyper-parameters on a fitted model (which must stay as it was)."""
    return lambda w: w.model.set_params(**params).fit(w.train)


def _fortran(a: np.ndarray) -> np.ndarray:
    return np.asfortranarray(a)


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def _text_file(w: World) -> str:
    path = w.tmp_path / "notes.npz"
    path.write_text("these are not factors")
    return str(path)


MF = latentmf.MatrixFactorization

CATALOGUE = [
    # Ratings: the constructor of every data set
    Bad("Ratings", "negative user", lambda w: Ratings([0, -1, 2], [1, 0, 1], [4.0, 3.0, 5.0]), ValueError,
        r"users\[1\] = -1 is outside \[0, n_users=3\)"),
    Bad("Ratings", "item beyond n_items", lambda w: Ratings([0, 1, 2], [1, 0, 7], [4.0, 3.0, 5.0], n_items=2),
        ValueError, r"items\[2\] = 7 is outside \[0, n_items=2\)"),
    Bad("Ratings", "user beyond n_users", lambda w: Ratings([0, 1, 5], [1, 0, 1], [4.0, 3.0, 5.0], n_users=3),
        ValueError, r"users\[2\] = 5 is outside"),
    Bad("Ratings", "NaN rating", lambda w: Ratings([0, 1, 2], [1, 0, 1], [4.0, np.nan, 5.0]), ValueError,
        r"values\[1\] = nan is not a finite number"),
    Bad("Ratings", "infinite rating", lambda w: Ratings([0, 1, 2], [1, 0, 1], [4.0, 3.0, np.inf]), ValueError,
        r"values\[2\] = inf"),
    Bad("Ratings", "lengths differ", lambda w: Ratings([0, 1, 2], [1, 0, 1], [4.0, 3.0]), ValueError,
        "users, items and values must have the same length"),
    Bad("Ratings", "2-D users", lambda w: Ratings([[0, 1, 2]], [1, 0, 1], [4.0, 3.0, 5.0]), ValueError,
        "users must be 1-dimensional"),
    Bad("Ratings", "2-D values", lambda w: Ratings([0, 1, 2], [1, 0, 1], np.ones((3, 1))), ValueError,
        "values must be 1-dimensional"),
    Bad("Ratings", "string users", lambda w: Ratings(["a", "b", "c"], [1, 0, 1], [4.0, 3.0, 5.0]), TypeError,
        "users must hold integer indices"),
    Bad("Ratings", "float users", lambda w: Ratings([0.0, 1.0, 2.0], [1, 0, 1], [4.0, 3.0, 5.0]), TypeError,
        "users must hold integer indices"),
    Bad("Ratings", "bool items", lambda w: Ratings([0, 1, 2], [True, False, True], [4.0, 3.0, 5.0]), TypeError,
        "items must hold integer indices"),
    Bad("Ratings", "string values", lambda w: Ratings([0, 1, 2], [1, 0, 1], ["4", "3", "5"]), TypeError,
        "values must hold real numbers"),
    Bad("Ratings", "complex values", lambda w: Ratings([0, 1, 2], [1, 0, 1], np.ones(3, complex)), TypeError,
        "values must hold real numbers"),
    Bad("Ratings", "empty", lambda w: Ratings([], [], []), ValueError, "users, items and values are empty"),
    Bad("Ratings", "n_users = 0", lambda w: Ratings([0], [0], [1.0], n_users=0), ValueError, "n_users must be >= 1"),
    Bad("Ratings", "fractional n_items", lambda w: Ratings([0], [0], [1.0], n_items=1.5), TypeError,
        "n_items must be an integer"),
    Bad("Ratings", "int64 ids beyond int32", lambda w: Ratings(np.array([0, 1, 2**40]), [1, 0, 1], [4.0, 3.0, 5.0]),
        ValueError, "n_users = 1099511627777 exceeds the supported maximum"),
    Bad("Ratings", "uint64 beyond int64", lambda w: Ratings(np.array([0, 2**64 - 1], np.uint64), [0, 1], [1.0, 2.0]),
        ValueError, "users holds 18446744073709551615, beyond the int64 range"),
    Bad("Ratings", "n_users beyond int32", lambda w: Ratings([0], [0], [1.0], n_users=2**31), ValueError,
        "n_users = 2147483648 exceeds the supported maximum"),
    Bad("Ratings", "timestamps of another length", lambda w: Ratings([0, 1], [0, 1], [1.0, 2.0], timestamps=[1]),
        ValueError, r"timestamps must have one entry per rating \(2\)"),
    Bad("Ratings.from_ids", "ids of another length", lambda w: Ratings.from_ids(["a", "b"], [1], [1.0, 2.0]),
        ValueError, "must have the same length"),
    Bad("Ratings.from_ids", "id unknown to ids_from", lambda w: Ratings.from_ids(["zz"], [17], [1.0], ids_from=w.raw),
        ValueError, r"users\[0\] = 'zz' is not a known id"),
    Bad("Ratings.from_dense", "3-D R", lambda w: Ratings.from_dense(np.ones((2, 2, 2))), ValueError,
        "R must be 2-dimensional"),
    Bad("Ratings.from_dense", "mask of another shape", lambda w: Ratings.from_dense(np.ones((2, 2)), np.ones(3, bool)),
        ValueError, "mask must have R's shape"),
    Bad("Ratings.from_dataframe", "missing column", lambda w: Ratings.from_dataframe({"user": [1], "item": [2]}),
        ValueError, "rating='rating' is not a column of df"),
    Bad("Ratings.split", "test_size 1.5", lambda w: w.train.split(1.5), ValueError, "test_size must be in"),

    # MatrixFactorization hyper-parameters, checked by fit before anything changes
    Bad("MatrixFactorization", "factors = 0", _refit(factors=0), ValueError, "factors must be >= 1"),
    Bad("MatrixFactorization", "factors = 10**9", _refit(factors=10**9), ValueError,
        "factors must be >= 1 and <= 1048576, got 1000000000"),
    Bad("MatrixFactorization", "fractional factors", _refit(factors=2.5), TypeError, "factors must be an integer"),
    Bad("MatrixFactorization", "unknown solver", _refit(solver="magic"), ValueError, "solver must be one of"),
    Bad("MatrixFactorization", "negative epochs", _refit(epochs=-1), ValueError, "epochs must be >= 0"),
    Bad("MatrixFactorization", "epochs as text", _refit(epochs="3"), TypeError, "epochs must be an integer"),
    Bad("MatrixFactorization", "learning_rate < 0", _refit(learning_rate=-0.01), ValueError,
        "learning_rate must be a finite number > 0"),
    Bad("MatrixFactorization", "learning_rate = 0", _refit(learning_rate=0.0), ValueError,
        "learning_rate must be a finite number > 0"),
    Bad("MatrixFactorization", "NaN learning_rate", _refit(learning_rate=float("nan")), ValueError,
        "learning_rate must be a finite number"),
    Bad("MatrixFactorization", "learning_rate beyond float32", _refit(learning_rate=1e300), ValueError,
        r"learning_rate=1e\+300 is inf in float32"),
    Bad("MatrixFactorization", "learning_rate below float32", _refit(learning_rate=1e-50), ValueError,
        "learning_rate=1e-50 is 0 in float32"),
    Bad("MatrixFactorization", "negative regularization", _refit(regularization=-1), ValueError,
        "regularization must be a finite number >= 0"),
    Bad("MatrixFactorization", "infinite regularization", _refit(regularization=float("inf")), ValueError,
        "regularization must be a finite number"),
    Bad("MatrixFactorization", "regularization beyond float32", _refit(regularization=1e39), ValueError,
        r"regularization=1e\+39 is inf in float32"),
    Bad("MatrixFactorization", "negative decay", _refit(learning_rate_decay=-1), ValueError, "learning_rate_decay"),
    Bad("MatrixFactorization", "decay that rounds steps to 0", _refit(learning_rate_decay=1e308), ValueError,
        r"learning_rate_decay=1e\+308 makes the step of epoch 1"),
    Bad("MatrixFactorization", "negative init_std", _refit(init_std=-1), ValueError, "init_std must be"),
    Bad("MatrixFactorization", "init_std that overflows", _refit(init_std=1e38), ValueError,
        r"init_std=1e\+38 and init_mean=None give initial (factors that float32 cannot hold|predictions up to)"),
    Bad("MatrixFactorization", "init_mean whose predictions overflow", _refit(init_mean=1e19), ValueError,
        r"init_std=0.01 and init_mean=1e\+19 give initial predictions up to 3e\+38, which overflow float32"),
    Bad("MatrixFactorization", "NaN init_mean", _refit(init_mean=float("nan")), ValueError, "init_mean must be"),
    Bad("MatrixFactorization", "float16 dtype", _refit(dtype="float16"), ValueError,
        "dtype must be 'float32' or 'float64'"),
    Bad("MatrixFactorization", "nonsense dtype", _refit(dtype="nonsense"), ValueError, "dtype must be"),
    Bad("MatrixFactorization", "integer dtype", _refit(dtype=np.int32), ValueError, "dtype must be"),
    Bad("MatrixFactorization", "threads = 0", _refit(threads=0), ValueError, "threads must be >= 1"),
    Bad("MatrixFactorization", "threads = True", _refit(threads=True), TypeError, "threads must be an integer"),
    Bad("MatrixFactorization", "blocks = 0", _refit(blocks=0), ValueError, "blocks must be >= 1"),
    Bad("MatrixFactorization", "blocks = 5000", _refit(blocks=5000), ValueError, "blocks must be >= 1 and <= 1024"),
    Bad("MatrixFactorization", "negative seed", _refit(seed=-3), ValueError, "seed must be >= 0"),
    Bad("MatrixFactorization", "seed beyond 64 bits", _refit(seed=2**70), ValueError,
        "seed must be >= 0 and <= 18446744073709551615"),
    Bad("MatrixFactorization", "biases as text", _refit(biases="yes"), TypeError, "biases must be True or False"),
    Bad("MatrixFactorization", "warm_start as text", _refit(warm_start="no"), TypeError,
        "warm_start must be True or False"),
    Bad("MatrixFactorization", "early_stopping = 0", _refit(early_stopping=0), ValueError,
        "early_stopping must be >= 1"),
    Bad("MatrixFactorization", "unknown policy", _refit(unknown="guess"), ValueError, "unknown must be one of"),
    Bad("MatrixFactorization.set_params", "no such parameter", lambda w: w.model.set_params(rank=3), ValueError,
        "invalid parameter 'rank'"),

    # fit and partial_fit: the data
    Bad("fit", "a matrix for ratings", lambda w: MF(factors=3).fit(np.ones((5, 3))), TypeError,
        "ratings must be a latentmf.Ratings"),
    Bad("fit", "validation with other users", lambda w: w.model.fit(w.train, validation=Ratings([24], [0], [3.0])),
        ValueError, "validation has user 24"),
    Bad("fit", "validation with other ids", lambda w: w.model.fit(w.train, validation=w.raw), ValueError,
        "validation must map ids like the training ratings"),
    Bad("fit", "early stopping without validation", lambda w: w.model.set_params(early_stopping=2).fit(w.train),
        ValueError, "early_stopping needs a validation set"),
    Bad("fit", "NaN in a tuple of arrays", lambda w: w.model.fit(([0, 1], [0, 1], [1.0, np.nan])), ValueError,
        r"values\[1\] = nan"),
    Bad("fit", "X of three columns", lambda w: w.model.fit(np.ones((4, 3)), np.ones(4)), ValueError,
        r"X must be an \(n, 2\) array"),
    Bad("fit", "y of another length", lambda w: w.model.fit(np.ones((4, 2), int), np.ones(3)), ValueError,
        "y must be 1-dimensional with one rating per row of X"),
    Bad("fit", "a callback that is not callable", lambda w: w.model.fit(w.train, callbacks=[print, 3]), TypeError,
        r"callbacks\[1\] must be callable"),
    Bad("partial_fit", "more users", lambda w: w.model.partial_fit(random_ratings(np.random.default_rng(0), 21, 10, 60)),
        ValueError, "the ratings have n_users=21, n_items=10 but the fitted model has 20"),
    Bad("partial_fit", "other factors", lambda w: w.model.set_params(factors=5).partial_fit(), ValueError,
        "factors is 5 but the fitted model has 3"),
    Bad("partial_fit", "negative epochs", lambda w: w.model.partial_fit(epochs=-2), ValueError,
        "epochs must be >= 0"),
    Bad("partial_fit", "ids mapped differently", lambda w: w.raw_model.partial_fit(
        Ratings(w.raw.users, w.raw.items, w.raw.values, w.raw.n_users, w.raw.n_items)), ValueError,
        "the ratings map ids differently from the fitted model"),

    # predict, score
    Bad("predict", "user beyond n_users", lambda w: w.model.predict([0, 20], [0, 1]), ValueError,
        r"users\[1\] = 20 is outside \[0, n_users=20\)"),
    Bad("predict", "negative item", lambda w: w.model.predict([0], [-1]), ValueError, r"items\[0\] = -1 is outside"),
    Bad("predict", "int64 id beyond int32", lambda w: w.model.predict(np.array([2**40]), [0]), ValueError,
        r"users\[0\] = 1099511627776 is outside"),
    Bad("predict", "lengths differ", lambda w: w.model.predict([0, 1], [0]), ValueError,
        "users and items must have the same length"),
    Bad("predict", "fractional ids", lambda w: w.model.predict([0.5], [0]), TypeError, "users must hold integer"),
    Bad("predict", "2-D ids", lambda w: w.model.predict([[0, 1]], [[0, 1]]), ValueError,
        "users must be one id or a 1-dimensional array"),
    Bad("predict", "X of three columns", lambda w: w.model.predict(np.zeros((2, 3), int)), ValueError,
        r"X must be an \(n, 2\) array"),
    Bad("predict", "unknown raw id", lambda w: w.raw_model.predict(["nobody"], [17]), ValueError,
        r"users\[0\] = 'nobody' is not among the users"),
    Bad("predict", "indices for a raw-id model", lambda w: w.raw_model.predict([0], [17]), TypeError,
        "users must hold strings like the ids this map was built from, got dtype int64"),
    Bad("predict", "unfitted model", lambda w: MF().predict([0], [0]), latentmf.NotFittedError, "not fitted yet"),
    Bad("score", "y of another length", lambda w: w.model.score(np.zeros((2, 2), int), [3.0]), ValueError,
        "X and y must have the same length"),

    # top-N
    Bad("recommend", "user beyond n_users", lambda w: w.model.recommend(20), ValueError,
        r"user = 20 is outside \[0, n_users=20\)"),
    Bad("recommend", "k = 0", lambda w: w.model.recommend(0, k=0), ValueError, "k must be >= 1"),
    Bad("recommend", "fractional k", lambda w: w.model.recommend(0, k=2.5), TypeError, "k must be an integer"),
    Bad("recommend", "many users", lambda w: w.model.recommend([0, 1]), TypeError, "user must be a single id"),
    Bad("recommend", "k whose lists cannot fit", lambda w: w.model.recommend(0, k=10**12), MemoryError,
        "MiB for the top-k items and scores"),
    Bad("recommend_all", "negative user", lambda w: w.model.recommend_all([3, -1]), ValueError,
        r"users\[1\] = -1 is outside"),
    Bad("recommend_all", "k = -1", lambda w: w.model.recommend_all(k=-1), ValueError, "k must be >= 1"),
    Bad("similar_items", "unknown item", lambda w: w.raw_model.similar_items(8), ValueError,
        "item = 8 is not among the items"),
    Bad("fold_in", "NaN rating", lambda w: w.model.fold_in([0], [np.nan]), ValueError, "values must be finite"),
    Bad("fold_in", "lengths differ", lambda w: w.model.fold_in([0, 1], [3.0]), ValueError,
        "items and values must have the same length"),
    Bad("recommend_for", "not a fold_in result", lambda w: w.model.recommend_for(np.ones(3)), TypeError,
        "user must be the"),
    Bad("predict_for", "factors of another width", lambda w: w.model.predict_for((np.ones(4), 0.0), [0]), ValueError,
        "with 3 factors"),

    # loss and gradients
    Bad("loss", "U with a row missing", lambda w: latentmf.loss(w.ratings, w.U[:9], w.V), ValueError,
        "the ratings have n_users=10 but U has 9 rows"),
    Bad("loss", "V of other width", lambda w: latentmf.loss(w.ratings, w.U, w.V[:, :2].copy()), ValueError,
        "U and V must have the same number of columns"),
    Bad("loss", "no factors", lambda w: latentmf.loss(w.ratings, w.U[:, :0], w.V[:, :0]), ValueError,
        "U and V must have at least one column"),
    Bad("loss", "U and V of two dtypes", lambda w: latentmf.loss(w.ratings, w.U.astype(np.float32), w.V), TypeError,
        "U and V must both be float32 or both float64"),
    Bad("loss", "integer factors", lambda w: latentmf.loss(w.ratings, w.U.astype(int), w.V.astype(int)), TypeError,
        "U and V must both be float32 or both float64"),
    Bad("loss", "big-endian factors", lambda w: latentmf.loss(w.ratings, w.U.astype(">f8"), w.V.astype(">f8")),
        TypeError, "U and V must both be float32 or both float64"),
    Bad("loss", "1-D U", lambda w: latentmf.loss(w.ratings, w.U.ravel(), w.V), ValueError,
        "U and V must be 2-dimensional"),
    Bad("loss", "U as a list", lambda w: latentmf.loss(w.ratings, w.U.tolist(), w.V), TypeError,
        "U must be a numpy.ndarray"),
    Bad("loss", "negative regularization", lambda w: latentmf.loss(w.ratings, w.U, w.V, -0.1), ValueError,
        "regularization must be a finite number >= 0"),
    Bad("gradients", "U view with reversed columns", lambda w: latentmf.gradients(w.ratings, w.U[:, ::-1], w.V),
        TypeError, "U must be C-contiguous"),
    Bad("gradients", "Fortran-ordered V", lambda w: latentmf.gradients(w.ratings, w.U, _fortran(w.V)), TypeError,
        "V must be C-contiguous"),
    Bad("gradients", "U view of the wrong shape", lambda w: latentmf.gradients(w.ratings, w.U.T, w.V), ValueError,
        "the ratings have n_users=10 but U has 3 rows"),
    Bad("gradients", "biases not a triple", lambda w: latentmf.gradients(w.ratings, w.U, w.V, biases=(3.0, 1.0)),
        TypeError, r"biases must be None or a \(global_mean, user_bias, item_bias\) tuple"),
    Bad("gradients", "item_bias too short", lambda w: latentmf.gradients(w.ratings, w.U, w.V,
                                                                          biases=(3.0, w.user_bias, np.zeros(7))),
        ValueError, "item_bias has length 7, expected n_items=8"),
    Bad("gradients", "NaN regularization", lambda w: latentmf.gradients(w.ratings, w.U, w.V, np.nan), ValueError,
        "regularization must be a finite number"),
    Bad("gradients", "threads = 0", lambda w: latentmf.gradients(w.ratings, w.U, w.V, threads=0), ValueError,
        "threads must be >= 1"),
    Bad("gradients", "ratings of other users", lambda w: latentmf.gradients(w.train, w.U, w.V), ValueError,
        "the ratings have n_users=20 but U has 10 rows"),
    Bad("gradients_dense", "R of another shape", lambda w: latentmf.gradients_dense(np.ones((9, 8)), w.U, w.V),
        ValueError, r"R has shape \(9, 8\)"),
    Bad("gradients_dense", "infinite R", lambda w: latentmf.gradients_dense(np.full((10, 8), np.inf), w.U, w.V),
        ValueError, r"R\[0, 0\] = inf is infinite"),
    Bad("gradients_dense", "NaN where the mask observes",
        lambda w: latentmf.gradients_dense(np.full((10, 8), np.nan), w.U, w.V, np.ones((10, 8), bool)), ValueError,
        r"R\[0, 0\] = nan is observed"),
    Bad("gradients_dense", "mask of floats", lambda w: latentmf.gradients_dense(np.ones((10, 8)), w.U, w.V,
                                                                                 np.ones((10, 8))),
        TypeError, "mask must have dtype bool"),
    Bad("gradients_dense", "mask of another shape", lambda w: latentmf.gradients_dense(np.ones((10, 8)), w.U, w.V,
                                                                                        np.ones((8, 10), bool)),
        ValueError, "mask must have the shape of R"),
    Bad("gradients_dense", "R of strings", lambda w: latentmf.gradients_dense(np.ones((10, 8)).astype(str), w.U, w.V),
        TypeError, "R must hold real numbers"),

    # sgd_epoch: it updates the caller's arrays, which must stay untouched when it refuses
    Bad("sgd_epoch", "learning_rate < 0", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, -0.1), ValueError,
        "learning_rate must be a finite number > 0"),
    Bad("sgd_epoch", "learning_rate = 0", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.0), ValueError,
        "learning_rate"),
    Bad("sgd_epoch", "NaN learning_rate", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, np.nan), ValueError,
        "learning_rate"),
    Bad("sgd_epoch", "learning_rate beyond float32",
        lambda w: latentmf.sgd_epoch(w.ratings, w.U.astype(np.float32), w.V.astype(np.float32), 1e300), ValueError,
        r"learning_rate must be a finite number > 0 in float32, got 1e\+300 \(inf as float32\)"),
    Bad("sgd_epoch", "global_mean beyond float32", lambda w: latentmf.sgd_epoch(
        w.ratings, w.float32[0], w.float32[1], 0.1, biases=(1e40, w.float32[2], w.float32[3])), ValueError,
        r"global_mean must be a finite number in float32, got 1e\+40 \(inf as float32\)"),
    Bad("sgd_epoch", "negative regularization", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1, -1.0),
        ValueError, "regularization must be"),
    Bad("sgd_epoch", "order too short", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1, order=np.arange(29)),
        ValueError, "order has length 29"),
    Bad("sgd_epoch", "order repeats", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1,
                                                                   order=np.r_[np.arange(29), 0]),
        ValueError, r"order\[29\] = 0 repeats"),
    Bad("sgd_epoch", "order out of range", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1,
                                                                        order=np.r_[np.arange(29), 30]),
        ValueError, r"order\[29\] = 30 is outside"),
    Bad("sgd_epoch", "order of floats", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1, order=np.arange(30.0)),
        TypeError, "order must hold integer"),
    Bad("sgd_epoch", "order with threads", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1, order=np.arange(30),
                                                                        threads=2),
        ValueError, "an explicit order runs on one thread"),
    Bad("sgd_epoch", "read-only U", lambda w: latentmf.sgd_epoch(w.ratings, _read_only(w.U), w.V, 0.1), ValueError,
        "U must be writeable"),
    Bad("sgd_epoch", "read-only item_bias", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1,
                                                                         biases=(3.0, w.user_bias,
                                                                                 _read_only(w.item_bias))),
        ValueError, "item_bias must be writeable"),
    Bad("sgd_epoch", "strided U view", lambda w: latentmf.sgd_epoch(w.ratings, w.U[:, ::2], w.V[:, ::2], 0.1),
        TypeError, "U must be C-contiguous"),
    Bad("sgd_epoch", "Fortran-ordered V", lambda w: latentmf.sgd_epoch(w.ratings, w.U, _fortran(w.V), 0.1), TypeError,
        "V must be C-contiguous"),
    Bad("sgd_epoch", "float16 factors", lambda w: latentmf.sgd_epoch(w.ratings, w.U.astype(np.float16),
                                                                     w.V.astype(np.float16), 0.1),
        TypeError, "U and V must both be float32 or both float64"),
    Bad("sgd_epoch", "blocks = 0", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1, blocks=0), ValueError,
        "blocks must be >= 1"),
    Bad("sgd_epoch", "threads = 0", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1, threads=0), ValueError,
        "threads must be >= 1"),
    Bad("sgd_epoch", "negative seed", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1, seed=-1), ValueError,
        "seed must be >= 0"),
    Bad("sgd_epoch", "seed beyond 64 bits", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1, seed=2**64),
        ValueError, "seed must be >= 0 and <= 18446744073709551615"),
    Bad("sgd_epoch", "epoch beyond 63 bits", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1, epoch=2**63),
        ValueError, "epoch must be >= 0 and <= 9223372036854775807"),
    Bad("sgd_epoch", "U for V", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.U, 0.1), ValueError,
        "the ratings have n_items=8 but V has 10 rows"),
    Bad("sgd_epoch", "U and V overlapping", lambda w: latentmf.sgd_epoch(
        Ratings(w.ratings.users % 8, w.ratings.items, w.ratings.values, 8, 8), w.U[:8], w.U[2:], 0.1), ValueError,
        "U and V must not share memory"),
    Bad("sgd_epoch", "biases overlapping", lambda w: latentmf.sgd_epoch(
        Ratings(w.ratings.users % 8, w.ratings.items, w.ratings.values, 8, 8), w.U[:8], w.V, 0.1,
        biases=(3.0, w.user_bias[:8], w.user_bias[2:])), ValueError, "user_bias and item_bias must not share memory"),
    Bad("sgd_epoch", "one bias vector", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1,
                                                                     biases=(3.0, w.user_bias, None)),
        ValueError, "user_bias and item_bias must be given together"),
    Bad("sgd_epoch", "user_bias too short", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1,
                                                                         biases=(3.0, w.user_bias[:9], w.item_bias)),
        ValueError, "user_bias has length 9"),
    Bad("sgd_epoch", "NaN global_mean", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1,
                                                                     biases=(np.nan, w.user_bias, w.item_bias)),
        ValueError, "global_mean"),
    Bad("sgd_epoch", "float32 user_bias", lambda w: latentmf.sgd_epoch(
        w.ratings, w.U, w.V, 0.1, biases=(3.0, w.user_bias.astype(np.float32), w.item_bias)), TypeError,
        "user_bias must have dtype float64"),
    Bad("sgd_epoch", "zero accumulator", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1,
                                                                      adagrad=(w.adagrad[0], np.zeros((8, 2)))),
        ValueError, r"item_accumulators\[0, 0\] = 0.000000 must be a finite number > 0"),
    Bad("sgd_epoch", "NaN accumulator", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1,
                                                                     adagrad=(np.full((10, 2), np.nan), w.adagrad[1])),
        ValueError, r"user_accumulators\[0, 0\] = nan"),
    Bad("sgd_epoch", "one accumulator", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1,
                                                                     adagrad=(w.adagrad[0], None)),
        ValueError, "user_accumulators and item_accumulators must be given together"),
    Bad("sgd_epoch", "accumulators of the wrong shape", lambda w: latentmf.sgd_epoch(
        w.ratings, w.U, w.V, 0.1, adagrad=(np.ones((9, 2)), w.adagrad[1])), ValueError,
        r"user_accumulators must have shape \(10, 2\), got \(9, 2\)"),
    Bad("sgd_epoch", "1-D accumulators", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1,
                                                                      adagrad=(np.ones(10), w.adagrad[1])),
        ValueError, "user_accumulators must be 2-dimensional"),
    Bad("sgd_epoch", "adagrad not a pair", lambda w: latentmf.sgd_epoch(w.ratings, w.U, w.V, 0.1, adagrad=np.ones(10)),
        TypeError, "adagrad must be None or a"),
    Bad("sgd_order", "blocks = 0", lambda w: latentmf.sgd_order(w.ratings, blocks=0), ValueError,
        "blocks must be >= 1"),
    Bad("sgd_order", "negative epoch", lambda w: latentmf.sgd_order(w.ratings, epoch=-1), ValueError,
        "epoch must be >= 0"),

    # load (damaged and hostile files in detail: test_persistence.py)
    Bad("load", "a text file", lambda w: latentmf.load(_text_file(w)), ValueError,
        "notes.npz is not a readable latentmf model file"),
    Bad("load", "a missing file", lambda w: latentmf.load(w.tmp_path / "absent.npz"), FileNotFoundError,
        "absent.npz"),
    Bad("load", "a directory", lambda w: latentmf.load(w.tmp_path), IsADirectoryError, str),
    Bad("save", "into a directory that does not exist", lambda w: w.model.save(w.tmp_path / "no" / "m.npz"),
        FileNotFoundError, "no such directory to save the model in: .*/no'"),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=[f"{c.entry}: {c.what}" for c in CATALOGUE])
def test_bad_input_is_refused_by_name_and_changes_nothing(case, rng, tmp_path):
    world = World(rng, tmp_path)
    before, params = world.state(), world.model.get_params()
    match = str(world.tmp_path.name) if case.match is str else case.match
    with pytest.raises(case.error, match=match):
        case.call(world)
    _assert_unchanged(before, world.state())
    # and the models still work (with the hyper-parameters set_params changed put back)
    world.model.set_params(**params).predict([0], [0])
    world.raw_model.recommend("u0", k=2)


def _ratings_csv(path, rng):
    dense = random_ratings(rng, 20, 15, 150)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["user", "item", "rating"])
        for u, i, r in zip(dense.users, dense.items, dense.values):
            writer.writerow([f"user{u}", 100 + 3 * int(i), round(float(r), 1)])


CLI_CATALOGUE = [
    (["train", "missing.csv", "-o", "{out}"], "No such file or directory"),
    (["train", "ratings.txt", "-o", "{out}"], "unknown file type .txt"),
    (["train", "{csv}", "-o", "{out}", "--rating-col", "stars"], "has no column 'stars'"),
    (["train", "{csv}", "-o", "{out}", "--dataset", "ml-100k"], "not both"),
    (["train", "-o", "{out}"], "give a ratings file or --dataset NAME"),
    (["train", "--dataset", "ml-5k", "-o", "{out}"], "name must be one of"),
    (["train", "{csv}", "-o", "{out}", "--early-stopping", "2"], "early_stopping needs a validation set"),
    (["train", "{csv}", "-o", "{out}", "--factors", "0"], "factors must be >= 1"),
    (["train", "{csv}", "-o", "{out}", "--factors", "1000000000"], "factors must be >= 1 and <= 1048576"),
    (["train", "{csv}", "-o", "{out}", "--learning-rate", "-1"], "learning_rate must be a finite number > 0"),
    (["train", "{csv}", "-o", "{out}", "--learning-rate", "nan"], "learning_rate must be a finite number"),
    (["train", "{csv}", "-o", "{out}", "--regularization", "inf"], "regularization must be a finite number"),
    (["train", "{csv}", "-o", "{out}", "--threads", "0"], "threads must be >= 1"),
    (["train", "{csv}", "-o", "{out}", "--epochs", "-3"], "epochs must be >= 0"),
    (["train", "{csv}", "-o", "{out}", "--split", "random", "--test-size", "1.5"], "test_size"),
    (["train", "nan.csv", "-o", "{out}"], "values[1] = nan is not a finite number"),
    (["recommend", "{model}", "--user", "nobody"], "'nobody' is not among the users"),
    (["recommend", "{model}"], "give --user"),
    (["recommend", "{model}", "--user", "user1", "-k", "0"], "k must be >= 1"),
    (["recommend", "{text}", "--user", "user1"], "is not a readable latentmf model file"),
    (["recommend", ".", "--user", "user1"], "Is a directory"),
    (["predict", "{model}", "--user", "user1"], "give a file of (user, item) pairs"),
    (["predict", "{model}", "--user", "user1", "--item", "abc"], "items must be integers for this model"),
    (["predict", "{model}", "--user", "user1", "--item", "99999"], "99999 is not among the items"),
    (["evaluate", "not-a-model.npz", "{csv}"], "No such file"),
    (["evaluate", "{model}", "small.csv", "-k", "0"], "k must be >= 1"),
]


@pytest.mark.parametrize("arguments, message", CLI_CATALOGUE, ids=[" ".join(a) for a, _ in CLI_CATALOGUE])
def test_the_command_line_refuses_bad_input_in_one_line(capsys, tmp_path, rng, monkeypatch, arguments, message):
    """Exit code 2, one line on stderr naming the problem, no traceback; and the model file that
    -o names is left as it was."""
    model = tmp_path / "model.npz"
    latentmf.MatrixFactorization(factors=2, epochs=1, unknown="error").fit(
        Ratings.from_ids(["user0", "user1"], [100, 103], [4.0, 3.0])).save(model)
    out = tmp_path / "existing.npz"
    out.write_bytes(model.read_bytes())
    monkeypatch.chdir(tmp_path)
    _ratings_csv(tmp_path / "ratings.csv", rng)
    (tmp_path / "ratings.txt").write_text("1,2,3\n")
    (tmp_path / "nan.csv").write_text("user,item,rating\n1,2,3\n1,3,nan\n")
    (tmp_path / "notes.npz").write_text("not a model")
    (tmp_path / "small.csv").write_text("user,item,rating\nuser0,100,4\nuser1,103,3\n")
    code = main([a.format(csv=tmp_path / "ratings.csv", model=model, out=out, text=tmp_path / "notes.npz")
                 for a in arguments])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"latentmf {arguments[0]}: error:") and message in err, err
    assert out.read_bytes() == model.read_bytes()


def test_the_catalogue_is_large_and_covers_every_entry():
    entries = {case.entry.split(".")[0] for case in CATALOGUE} | {"cli"}
    assert {"Ratings", "MatrixFactorization", "fit", "partial_fit", "predict", "recommend", "recommend_all",
            "similar_items", "fold_in", "loss", "gradients", "gradients_dense", "sgd_epoch", "sgd_order", "load",
            "save", "cli"} <= entries
    assert len(CATALOGUE) + len(CLI_CATALOGUE) >= 150
    assert len({(case.entry, case.what) for case in CATALOGUE}) == len(CATALOGUE)


# The entry points of training on a cluster (latentmf._core.sgd_shards and shard_errors, which
# latentmf.dask calls on its workers): refused by name, with the position in the lists, and leaving
# the group states alone.

class Shards:
    """One worker's sub-epoch of a 3 x 3 grid in float32: the shards of user groups 0, 1 and 2, each
    with item group (p + 1) mod 3, and the packed states of those groups (F factors, a bias and two
    AdaGrad accumulators per row)."""

    F = 4

    def __init__(self, rng: np.random.Generator) -> None:
        ratings = random_ratings(rng, 30, 24, 300)
        user_groups, _ = latentmf._core.grid_groups(30, 3, 5, "users")
        item_groups, _ = latentmf._core.grid_groups(24, 3, 5, "items")
        self.shards = []
        for p in range(3):
            mine = user_groups[ratings.users] == p
            self.shards.append(latentmf._core.shard_grid(ratings.users[mine], ratings.items[mine],
                                                         ratings.values[mine], 30, 24, 3, 5, p, "float32", 1))
        self.item_groups = [1, 2, 0]
        self.user_states = [self._state(rng, int(np.count_nonzero(user_groups == p))) for p in range(3)]
        self.item_states = [self._state(rng, int(np.count_nonzero(item_groups == q))) for q in self.item_groups]

    def _state(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        factors = 0.3 * rng.standard_normal(rows * self.F)
        return np.concatenate([factors, np.zeros(rows), np.ones(2 * rows)]).astype(np.float32)

    def sgd(self, user_states: list[np.ndarray] | None = None, item_states: list[np.ndarray] | None = None,
            learning_rate: float = 0.01, regularization: float = 0.05, global_mean: float = 3.0) -> list[float]:
        return latentmf._core.sgd_shards(self.shards, user_states or self.user_states, item_states or self.item_states,
                                         self.item_groups, self.F, learning_rate, regularization, global_mean, True,
                                         True, False, 1)

    def errors(self, global_mean: float = 3.0) -> list[float]:
        return latentmf._core.shard_errors(self.shards, self.user_states, self.item_states, self.item_groups, self.F,
                                           global_mean, True, True, 1)


def _bad_state(side: str, change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Shards], Any]:
    """sgd_shards with state 2 of `side` ("user_states" or "item_states") changed by `change`."""
    def call(shards: Shards) -> Any:
        states = list(getattr(shards, side))
        states[2] = change(states[2])
        return shards.sgd(user_states=states) if side == "user_states" else shards.sgd(item_states=states)
    return call


def _no_accumulator(state: np.ndarray) -> np.ndarray:
    bad = state.copy()
    bad[-1] = 0
    return bad


SHARD_CATALOGUE = [
    pytest.param(_bad_state("user_states", lambda state: state[:-1]), r"user_states\[2\] has length",
                 id="user state 2 too short"),
    pytest.param(_bad_state("item_states", lambda state: state[:-1]), r"item_states\[2\] has length",
                 id="item state 2 too short"),
    pytest.param(_bad_state("item_states", _no_accumulator),
                 r"item_states\[2\]: accumulator \d+ = 0\.000000 must be a finite number > 0",
                 id="item state 2 with a zero accumulator"),
    pytest.param(lambda s: s.sgd(learning_rate=1e-50),
                 r"learning_rate must be a finite number > 0 in float32, got 1e-50 \(0 as float32\)",
                 id="learning_rate 0 in float32"),
    pytest.param(lambda s: s.sgd(learning_rate=1e300),
                 r"learning_rate must be a finite number > 0 in float32, got 1e\+300 \(inf as float32\)",
                 id="learning_rate inf in float32"),
    pytest.param(lambda s: s.sgd(regularization=1e300),
                 r"regularization must be a finite number >= 0 in float32, got 1e\+300 \(inf as float32\)",
                 id="regularization inf in float32"),
    pytest.param(lambda s: s.sgd(global_mean=1e40),
                 r"global_mean must be a finite number in float32, got 1e\+40 \(inf as float32\)",
                 id="global_mean inf in float32"),
    pytest.param(lambda s: s.errors(global_mean=1e40),
                 r"global_mean must be a finite number in float32, got 1e\+40 \(inf as float32\)",
                 id="shard_errors: global_mean inf in float32"),
]


@pytest.mark.parametrize("call, match", SHARD_CATALOGUE)
def test_the_cluster_entry_points_refuse_bad_input_by_name_and_position(rng, call, match):
    shards = Shards(rng)
    before = [state.copy() for state in shards.user_states + shards.item_states]
    with pytest.raises(ValueError, match=match):
        call(shards)
    for state, copy in zip(shards.user_states + shards.item_states, before):
        np.testing.assert_array_equal(state, copy)
    # and the same states are accepted, and updated, once the input is good
    assert all(np.isfinite(shards.sgd()))
    assert not np.array_equal(shards.user_states[0], before[0])


# Inputs that are not bad: converted once, and read correctly.

def test_non_contiguous_inputs_are_read_correctly():
    users = np.arange(12)[::2]
    values = np.arange(12, dtype=np.float64)[::2] / 10
    ratings = Ratings(users, users[::-1], values)
    np.testing.assert_array_equal(ratings.users, [0, 2, 4, 6, 8, 10])
    np.testing.assert_array_equal(ratings.items, [10, 8, 6, 4, 2, 0])
    np.testing.assert_array_equal(ratings.values, values)
    U = np.ones((11, 2))
    assert latentmf.loss(ratings, U, U) == reference.loss(ratings, U, U)


def test_big_endian_and_small_integer_inputs_are_converted():
    ratings = Ratings(np.array([0, 2], dtype=">i4"), np.array([1, 0], dtype=np.uint8),
                      np.array([1.5, 2.5], dtype=">f8"))
    np.testing.assert_array_equal(ratings.users, [0, 2])
    np.testing.assert_array_equal(ratings.values, [1.5, 2.5])
    assert ratings.values.dtype.isnative
