"""The native routines as functions of arrays: the same math as `latentmf.reference`, fast.

Each function here has a twin of the same name and arguments in `latentmf.reference`.
`ratings` is a `latentmf.Ratings` (whose native orderings are cached between calls) or a
(users, items, values) tuple. U (n_users x F) and V (n_items x F) must be C-contiguous
float32 or float64 arrays of one dtype. `biases` is None or (global_mean, user_bias, item_bias).
`threads=None` uses all cores; results do not depend on the thread count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._checks import MAX_SEED, as_integer, as_real, as_threads
from .data import Ratings, as_ratings

#: Blocks per side of the stratified SGD grid when none is given. A constant, so that results
#: never depend on the machine: B = 8 keeps each block's item rows small enough to stay in cache
#: and gives up to 8 threads work in every sub-epoch.
DEFAULT_BLOCKS = 8

_MAX_EPOCH = 2**63 - 1


def _factor_dtype(U: Any, V: Any) -> str:
    for name, array in (("U", U), ("V", V)):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(array).__name__}")
    if U.dtype != V.dtype or U.dtype not in (np.float32, np.float64):
        raise TypeError(f"U and V must both be float32 or both float64, got {U.dtype} and {V.dtype}")
    return str(U.dtype)


def _bias_arguments(biases: Any) -> tuple[float, Any, Any]:
    if biases is None:
        return 0.0, None, None
    if not (isinstance(biases, tuple) and len(biases) == 3):
        raise TypeError("biases must be None or a (global_mean, user_bias, item_bias) tuple")
    global_mean, user_bias, item_bias = biases
    return as_real(global_mean, "global_mean", -np.inf), user_bias, item_bias


def _accumulator_arguments(adagrad: Any) -> tuple[Any, Any]:
    if adagrad is None:
        return None, None
    if not (isinstance(adagrad, tuple) and len(adagrad) == 2):
        raise TypeError("adagrad must be None or a (user_accumulators, item_accumulators) tuple")
    return adagrad


def _prepare(ratings: Any, U: Any, V: Any) -> tuple[Ratings, str]:
    dtype = _factor_dtype(U, V)
    if U.ndim != 2 or V.ndim != 2:
        raise ValueError(f"U and V must be 2-dimensional, got shapes {U.shape} and {V.shape}")
    return as_ratings(ratings, U.shape[0], V.shape[0]), dtype


def loss(ratings: Any, U: np.ndarray, V: np.ndarray, regularization: float = 0.0, *,
         biases: Any = None, threads: int | None = None) -> float:
    """L = 1/2 sum over the observed (n, m) of (r_nm - r_hat_nm)^2 + lambda (|u_n|^2 + |v_m|^2),
    plus lambda (b_n^2 + c_m^2) per rating with biases (see DESIGN.md)."""
    data, dtype = _prepare(ratings, U, V)
    global_mean, user_bias, item_bias = _bias_arguments(biases)
    regularization = as_real(regularization, "regularization", 0.0)
    squared_errors, penalty = _core.objective(data.native_index(dtype), U, V, global_mean, user_bias, item_bias,
                                              as_threads(threads))
    return 0.5 * (squared_errors + regularization * penalty)


def gradients(ratings: Any, U: np.ndarray, V: np.ndarray, regularization: float = 0.0, *,
              biases: Any = None, threads: int | None = None) -> tuple[np.ndarray, ...]:
    """(dL/dU, dL/dV) = (E V + lambda diag(c) U, E^T U + lambda diag(d) V), as new arrays.

    With `biases`, returns (dU, dV, d_user_bias, d_item_bias).
    """
    data, dtype = _prepare(ratings, U, V)
    global_mean, user_bias, item_bias = _bias_arguments(biases)
    return _core.gradients(data.native_index(dtype), U, V, as_real(regularization, "regularization", 0.0),
                           global_mean, user_bias, item_bias, as_threads(threads))


def gradients_dense(R: Any, U: np.ndarray, V: np.ndarray, mask: Any = None, regularization: float = 0.0, *,
                    threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The same gradients for a dense R (n_users x n_items) with `mask` true where R is observed;
    without a mask, NaN marks the missing entries. E = mask * (U V^T - R)."""
    dtype = _factor_dtype(U, V)
    R = np.asarray(R)
    if R.dtype.kind not in "fiu":
        raise TypeError(f"R must hold real numbers, got dtype {R.dtype}")
    R = np.ascontiguousarray(R, dtype=dtype)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"mask must have dtype bool, got {mask.dtype}")
        mask = np.ascontiguousarray(mask)
    return _core.gradients_dense(R, U, V, mask, as_real(regularization, "regularization", 0.0),
                                 as_threads(threads))


def sgd_epoch(ratings: Any, U: np.ndarray, V: np.ndarray, learning_rate: float, regularization: float = 0.0, *,
              order: Any = None, threads: int | None = None, biases: Any = None, adagrad: Any = None,
              warm_up: bool = False, blocks: int | None = None, seed: int = 0, epoch: int = 0) -> float:
    """One SGD epoch, updating U and V (and the bias and accumulator arrays) in place.

    `adagrad`, a (user_accumulators, item_accumulators) pair of arrays of shapes (n_users, 2) and
    (n_items, 2) (start them at 1), gives each row its own steps (AdaGrad; see
    `reference.sgd_epoch`); None keeps the step fixed. With `warm_up` only the first 16 factors move.

    With `order` (a permutation of the ratings) the ratings are visited one after the other in
    that order on one thread, exactly as `reference.sgd_epoch` does. Without it the epoch runs
    over the stratified block grid of DESIGN.md (`blocks` per side, groups drawn from `seed`, the
    sub-epoch order drawn from `seed` and `epoch`) on `threads` threads; `sgd_order` gives the
    equivalent sequential order. U, V and the biases must be C-contiguous and writeable.
    Returns the sum of the squared errors seen before each update.

    Nothing here checks that the step converges: a step too large leaves inf or NaN in the
    arrays (MatrixFactorization.fit watches for that and rolls back). The arrays are the
    caller's: two calls updating the same arrays at once, in two threads, race (each call
    runs with the GIL released).
    """
    data, dtype = _prepare(ratings, U, V)
    global_mean, user_bias, item_bias = _bias_arguments(biases)
    user_accumulators, item_accumulators = _accumulator_arguments(adagrad)
    learning_rate = as_real(learning_rate, "learning_rate", 0.0, strict=True)
    regularization = as_real(regularization, "regularization", 0.0)
    if order is not None:
        if threads not in (None, 1):
            raise ValueError("an explicit order runs on one thread: pass threads=None or 1 with order")
        order = np.ascontiguousarray(_order_array(order))
        values = np.ascontiguousarray(data.values, dtype=dtype)
        return _core.sgd_ordered(data.users, data.items, values, order, U, V, learning_rate,
                                 regularization, global_mean, user_bias, item_bias, user_accumulators,
                                 item_accumulators, bool(warm_up))
    n_blocks = DEFAULT_BLOCKS if blocks is None else as_integer(blocks, "blocks", 1, 1024)
    grid = data.native_grid(dtype, n_blocks, as_integer(seed, "seed", 0, MAX_SEED), as_threads(threads))
    return _core.sgd_grid(grid, U, V, learning_rate, regularization, as_integer(epoch, "epoch", 0, _MAX_EPOCH), None,
                          global_mean, user_bias, item_bias, user_accumulators, item_accumulators,
                          bool(warm_up), as_threads(threads))


def _order_array(order: Any) -> np.ndarray:
    array = np.asarray(order)
    if array.dtype.kind not in "iu":
        raise TypeError(f"order must hold integer positions, got dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"order must be 1-dimensional, got shape {array.shape}")
    return array.astype(np.int64, copy=False)


def sgd_order(ratings: Any, *, blocks: int | None = None, seed: int = 0, epoch: int = 0,
              n_users: int | None = None, n_items: int | None = None) -> np.ndarray:
    """The positions of the ratings in the order one grid epoch of `sgd_epoch` visits them.

    Passing it as `order` to `reference.sgd_epoch` reproduces the parallel epoch. For a
    (users, items, values) tuple give n_users and n_items (the rows of U and V): the grid's
    groups depend on them.
    """
    data = as_ratings(ratings, n_users, n_items)
    n_blocks = DEFAULT_BLOCKS if blocks is None else as_integer(blocks, "blocks", 1, 1024)
    return _core.visiting_order(data.users, data.items, data.values, data.n_users, data.n_items, n_blocks,
                                as_integer(seed, "seed", 0, MAX_SEED), as_integer(epoch, "epoch", 0, _MAX_EPOCH), 0)
