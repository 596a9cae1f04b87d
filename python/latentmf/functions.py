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
    """``L = 1/2 sum over the observed (n, m) of (r_nm - r_hat_nm)^2 + lambda (|u_n|^2 + |v_m|^2)``,
    plus ``lambda (b_n^2 + c_m^2)`` per rating with biases (see docs/model.md)."""
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
    over the stratified block grid of docs/model.md (`blocks` per side, groups drawn from `seed`, the
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


_RULES = ("implicit", "explicit")
_CONFIDENCES = ("linear", "log")
_METHODS = ("exact", "cg")
_SIDES = ("users", "items")


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return str(value)


def _read_only(array: Any, name: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """An optional read-only input as a C-contiguous array of the factors' dtype and this shape."""
    if array is None:
        return None
    converted = np.asarray(array)
    if converted.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers, got dtype {converted.dtype}")
    if converted.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {converted.shape}")
    return np.ascontiguousarray(converted, dtype=dtype)


def _symmetric(matrix: np.ndarray | None, name: str) -> np.ndarray | None:
    """`matrix` made exactly symmetric, which the native code requires, when it is symmetric to
    rounding (a matrix computed as L @ L.T may not be exactly); else ValueError."""
    if matrix is None:
        return None
    if not np.allclose(matrix, matrix.T, rtol=1e-5, atol=0.0):
        raise ValueError(f"{name} must be symmetric")
    return np.ascontiguousarray((matrix + matrix.T) / 2)


def _regularization_arguments(regularization: Any, exponent: Any, default_exponent: float, name: str,
                              dtype: str, rows: int) -> tuple[float, float, np.ndarray | None]:
    """(lambda, nu, per-row array or None) for the binding."""
    if isinstance(regularization, (np.ndarray, list, tuple)):
        if exponent is not None:
            raise ValueError("regularization_exponent applies to a scalar regularization, not to per-row values")
        per_row = _read_only(regularization, name, dtype, (rows,))
        return 0.0, 0.0, per_row
    nu = default_exponent if exponent is None else as_real(exponent, "regularization_exponent", -np.inf)
    return as_real(regularization, name, 0.0), nu, None


def solve_rows(ratings: Any, U: np.ndarray, V: np.ndarray, *, side: str, rule: str, regularization: Any = 0.0,
               regularization_exponent: float | None = None, alpha: float = 1.0, confidence: str = "linear",
               epsilon: float = 1.0, precision: float = 1.0, biases: Any = None, shared_matrix: Any = None,
               shared_vector: Any = None, row_vectors: Any = None, method: str = "exact", cg_steps: int = 3,
               noise: Any = None, threads: int | None = None) -> int:
    """Solves every row of one side for the other side fixed, in place: the half-step of ALS, iALS
    and Gibbs sampling (docs/model.md, "The row solver").

    With side="users" each user row x_n = u_n is solved given Y = V (side="items": v_m given U).
    For the row's ratings j (value r_j), with y~_j = y_j, or [y_j, 1] when `biases` is given (x_n's
    last coordinate is then the row's bias, read from and written to the side's bias vector):

        A_n = P + lambda_n I + sum_j w_j y~_j y~_j^T,   b_n = h + sum_j t_j y~_j,   x_n = A_n^{-1} b_n

    rule="implicit" (iALS, Hu, Koren and Volinsky 2008): every rating is an interaction of strength
    r >= 0 with confidence c = 1 + alpha r (confidence="linear") or 1 + alpha log(1 + r / epsilon)
    ("log"); w_j = c_j - 1 and t_j = c_j - w_j o_j; P = Y~^T Y~ and h = -Y~^T o by default (the
    unobserved entries, preference 0 and confidence 1, summed through the Gramian). The solution
    minimises the row's share of `implicit_loss`.

    rule="explicit" (ALS; Gibbs): w_j = precision and t_j = precision (r_j - o_j); P = 0 and h = 0
    by default. With precision 1 and the default regularization this is the exact minimiser of
    `loss` over the row (lambda times the row's number of ratings on the diagonal, the bias
    included), so alternating half-steps never increase `loss`.

    Here o_j = global_mean + the other side's bias of j (0 without `biases`).

    regularization: lambda_n = regularization * weight_n ** regularization_exponent, with weight_n
    the row's total confidence n_cols + sum_j w_j (implicit; exponent nu > 0 gives the
    frequency-scaled regularization of Rendle et al. 2021) or its number of ratings (explicit). The
    exponent defaults to 0 for implicit (plain lambda I) and 1 for explicit (docs/model.md's per-rating
    L2). An array of n_rows values gives lambda_n directly.

    shared_matrix (P, F' x F' with F' = F + 1 with biases) and shared_vector (h, F'): for Gibbs
    sampling of Bayesian PMF (Salakhutdinov and Mnih 2008) the prior's precision Lambda and
    Lambda mu_0, with rule="explicit", precision = the noise precision and regularization=0.
    row_vectors (n_rows x F'): row n's own addition to h, for a prior whose mean differs by row
    (Lambda times the row's offset from mu_0: the implicit links of `gibbs_sweep`).

    method="exact": Cholesky A_n = R_n^T R_n and two triangular solves. With `noise` (n_rows x F',
    z ~ N(0, I) drawn by the caller, so that results never depend on threads) the row is a draw
    x_n = A_n^{-1} b_n + R_n^{-1} z_n ~ N(A_n^{-1} b_n, A_n^{-1}). method="cg": `cg_steps` steps of
    conjugate gradient from the current row, A_n applied without forming it (the fast path of iALS).

    A row without ratings gets A_n^{-1} h (0 for ALS, and for iALS without biases). A system that is
    not positive definite (possible only when lambda_n = 0, no shared matrix and fewer ratings than
    F': regularization 0, or a row without ratings under the per-rating regularization of ALS)
    gets its least-norm solution A_n^+ b_n (a draw from N(A_n^+ b_n, A_n^+)), never NaN; the count of
    such rows is returned. Conjugate gradient takes the exact path for those rows and for rows
    without ratings.

    U, V (and the bias arrays) must be C-contiguous of one float dtype; the side's own arrays are
    written, so they must be writeable. Everything is checked before anything is written. Rows are
    independent, so the result is the same bits for any `threads`.
    """
    data, dtype = _prepare(ratings, U, V)
    side = _choice(side, "side", _SIDES)
    rule = _choice(rule, "rule", _RULES)
    confidence = _choice(confidence, "confidence", _CONFIDENCES)
    method = _choice(method, "method", _METHODS)
    global_mean, user_bias, item_bias = _bias_arguments(biases)
    n_rows = data.n_users if side == "users" else data.n_items
    order = U.shape[1] + (0 if biases is None else 1)
    lam, nu, per_row = _regularization_arguments(regularization, regularization_exponent,
                                                 0.0 if rule == "implicit" else 1.0, "regularization", dtype, n_rows)
    shared_matrix = _symmetric(_read_only(shared_matrix, "shared_matrix", dtype, (order, order)), "shared_matrix")
    shared_vector = _read_only(shared_vector, "shared_vector", dtype, (order,))
    row_vectors = _read_only(row_vectors, "row_vectors", dtype, (n_rows, order))
    noise = _read_only(noise, "noise", dtype, (n_rows, order))
    if noise is not None and method != "exact":
        raise ValueError("noise (a Gibbs draw) needs method='exact'")
    return _core.solve_rows(data.native_index(dtype), side, U, V, rule, as_real(alpha, "alpha", 0.0), confidence,
                            as_real(epsilon, "epsilon", 0.0, strict=True),
                            as_real(precision, "precision", 0.0, strict=True), lam, nu, per_row, global_mean,
                            user_bias, item_bias, shared_matrix, shared_vector, row_vectors, method,
                            as_integer(cg_steps, "cg_steps", 1, 2**31 - 1), noise, as_threads(threads))


def gramian(Y: np.ndarray, *, bias_column: bool = False, threads: int | None = None) -> np.ndarray:
    """G = Y^T Y (F x F), or [Y 1]^T [Y 1] with `bias_column`, in Y's dtype: the sum over all rows of
    Y that every row of the implicit rule shares. Summed in double over fixed chunks of rows added
    in order, so the same bits for any `threads`."""
    if not isinstance(Y, np.ndarray) or Y.dtype not in (np.float32, np.float64):
        raise TypeError("Y must be a float32 or float64 numpy.ndarray")
    if Y.ndim != 2:
        raise ValueError(f"Y must be 2-dimensional, got shape {Y.shape}")
    return _core.gramian(np.ascontiguousarray(Y), bool(bias_column), as_threads(threads))


def implicit_loss(ratings: Any, U: np.ndarray, V: np.ndarray, regularization: Any = 0.0, *,
                  regularization_exponent: float = 0.0, alpha: float = 1.0, confidence: str = "linear",
                  epsilon: float = 1.0, biases: Any = None, threads: int | None = None) -> tuple[float, float, float]:
    """The iALS objective over all n_users x n_items entries, as its three parts
    (all_entries, observed, penalty), L being their sum::

        L = sum_(n,m) c_nm (p_nm - r_hat_nm)^2 + sum_n lambda_n |u_n|^2 + sum_m lambda_m |v_m|^2

    with p = 1 and c = 1 + alpha r (or 1 + alpha log(1 + r / epsilon)) on the rated pairs, p = 0
    and c = 1 elsewhere, r_hat = u_n . v_m (+ mu + b_n + c_m with `biases`, whose squares the
    penalty also charges). Computed without visiting the unrated pairs::

        all_entries = sum over all (n, m) of r_hat^2 = <U~^T U~, V~^T V~>_F
        observed    = sum over the rated (n, m) of c (1 - r_hat)^2 - r_hat^2
        penalty     = sum_n lambda_n |u~_n|^2 + sum_m lambda_m |v~_m|^2

    lambda_n = regularization * (n_items + sum_m (c_nm - 1)) ** regularization_exponent, likewise
    lambda_m, as `solve_rows` takes it; `regularization` may also be a (per-user, per-item) pair of
    arrays. Pairs must be distinct. `solve_rows(rule="implicit")` half-steps never increase L.
    """
    data, dtype = _prepare(ratings, U, V)
    global_mean, user_bias, item_bias = _bias_arguments(biases)
    confidence = _choice(confidence, "confidence", _CONFIDENCES)
    if isinstance(regularization, tuple):
        if len(regularization) != 2:
            raise TypeError("regularization must be a number or a (per-user, per-item) pair of arrays")
        users = _read_only(regularization[0], "user_regularization", dtype, (data.n_users,))
        items = _read_only(regularization[1], "item_regularization", dtype, (data.n_items,))
        lam, nu = 0.0, 0.0
    else:
        users = items = None
        lam = as_real(regularization, "regularization", 0.0)
        nu = as_real(regularization_exponent, "regularization_exponent", -np.inf)
    parts = _core.implicit_objective(data.native_index(dtype), U, V, as_real(alpha, "alpha", 0.0), confidence,
                                     as_real(epsilon, "epsilon", 0.0, strict=True), lam, nu, users, items,
                                     global_mean, user_bias, item_bias, as_threads(threads))
    return (float(parts[0]), float(parts[1]), float(parts[2]))


def gibbs_sweep(ratings: Any, U: np.ndarray, V: np.ndarray, rng: np.random.Generator, *,
                noise_precision: float, biases: Any = None, links: Any = None, link_regularization: float = 1.0,
                threads: int | None = None) -> tuple[float, float]:
    """One sweep of the Gibbs sampler of Bayesian PMF (Salakhutdinov and Mnih 2008), in place;
    returns (the new noise precision, the squared errors of the new sample it was drawn from). The
    steps and the order of the draws from `rng` are those of `reference.gibbs_sweep`; the rows are
    drawn by the native `solve_rows` (their Cholesky factors), the small Normal-Wishart draws of each
    side's hyperparameters in NumPy (`reference.normal_wishart_draw`).

    links: None, or (user links, item links), C-contiguous float64 arrays of n_items x F' and
    n_users x F' (F' = F + 1 with biases), either None for a side without, changed in place: the
    implicit feedback of SVD++ as links of the prior. A user's prior mean is then mu_U + c_n^{-1/2}
    times the sum of the user links of the items it rated (c_n: its ratings), an item's likewise
    from the users who rated it; the links have the prior N(0, (link_regularization Lambda)^-1)
    and are drawn one after the other (natively, on one thread) after each side's rows. The same
    `rng` state gives the same model for any `threads`."""
    from .reference import GIBBS_PRIOR, link_draws, normal_wishart_draw

    data, dtype = _prepare(ratings, U, V)
    noise_precision = as_real(noise_precision, "noise_precision", 0.0, strict=True)
    global_mean, user_bias, item_bias = _bias_arguments(biases)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    order = U.shape[1] + (0 if biases is None else 1)
    link_arrays = _links(links, order, data.n_items, data.n_users)
    if any(link is not None for link in link_arrays):
        link_regularization = as_real(link_regularization, "link_regularization", 0.0, strict=True)
    index = data.native_index(dtype)
    sides = (("users", U, user_bias, link_arrays[0]), ("items", V, item_bias, link_arrays[1]))
    for side, factors, bias, link in sides:
        rows = factors if bias is None else np.column_stack([factors, bias])
        offsets = None if link is None else _core.link_product(index, side, link, as_threads(threads))
        mu, precision = normal_wishart_draw(rows if offsets is None else rows - offsets, rng, GIBBS_PRIOR["beta0"],
                                            link, link_regularization)
        noise = rng.standard_normal(rows.shape, dtype=factors.dtype)
        solve_rows(data, U, V, side=side, rule="explicit", regularization=0.0, precision=noise_precision,
                   biases=biases, shared_matrix=precision.astype(dtype), shared_vector=(precision @ mu).astype(dtype),
                   row_vectors=None if offsets is None else (offsets @ precision).astype(dtype), noise=noise,
                   threads=threads)
        if link is not None:
            # The residuals A - X L of the new rows: the rows minus mu and their offsets.
            residual = (factors if bias is None else np.column_stack([factors, bias])).astype(np.float64)
            residual -= mu
            residual -= offsets
            _core.link_sweep(index, side, residual, link, link_draws(rng, precision, len(link)), link_regularization)
    squared_errors = 2.0 * loss(data, U, V, 0.0, biases=biases, threads=threads)
    shape = GIBBS_PRIOR["a0"] + len(data) / 2.0
    return float(rng.gamma(shape, 1.0 / (GIBBS_PRIOR["b0"] + squared_errors / 2.0))), squared_errors


def _links(links: Any, order: int, n_items: int, n_users: int) -> tuple[Any, Any]:
    """gibbs_sweep's (user links, item links), checked: each None or float64, C-contiguous,
    writeable, finite, of the shape the ratings and factors ask for; (None, None) without links."""
    if links is None:
        return None, None
    if not isinstance(links, tuple) or len(links) != 2:
        raise TypeError("links must be None or a (user links, item links) tuple")
    for name, link, rows in (("user links", links[0], n_items), ("item links", links[1], n_users)):
        if link is None:
            continue
        if not isinstance(link, np.ndarray) or link.dtype != np.float64:
            raise TypeError(f"{name} must be a float64 numpy.ndarray")
        if link.shape != (rows, order):
            raise ValueError(f"{name} must have shape {(rows, order)}, got {link.shape}")
        if not link.flags.c_contiguous or not link.flags.writeable:
            raise ValueError(f"{name} must be C-contiguous and writeable")
        if not np.isfinite(link).all():
            raise ValueError(f"{name} must be finite")
    return links


def _bpr_grid(interactions: Any, blocks: int | None, seed: int, n_users: int | None = None,
             n_items: int | None = None) -> Any:
    """The native grid of BPR's positives (every listed (user, item) pair, whatever its value,
    repeated pairs once) with `blocks` groups per side drawn from `seed`."""
    data = as_ratings(interactions, n_users, n_items)
    offsets, items = data.summed().items_by_user()
    n_blocks = DEFAULT_BLOCKS if blocks is None else as_integer(blocks, "blocks", 1, 1024)
    return _core.BprGrid(offsets, items, data.n_items, n_blocks, as_integer(seed, "seed", 0, MAX_SEED))


def bpr_sub_epoch(interactions: Any, U: np.ndarray, V: np.ndarray, learning_rate: float,
                  regularization: float = 0.0, *, item_bias: np.ndarray | None = None, epoch: int = 0,
                  sub_epoch: int = 0, blocks: int | None = None, seed: int = 0, threads: int | None = None) -> float:
    """One sub-epoch of the SGD of Bayesian personalized ranking (Rendle et al. 2009) on the block
    grid, updating U, V (and item_bias) in place. Returns the sum of the loss l of its triples.

    For each triple of a user n, a positive item i (an item of the user's interactions) and a
    negative item j, with c the item biases (0 without item_bias)::

        x = u_n . (v_i - v_j) + c_i - c_j,   g = sigma(-x) = 1 / (1 + e^x)
        u_n <- u_n + eta (g (v_i - v_j) - lambda u_n)
        v_i <- v_i + eta (g u_n - lambda v_i)          c_i <- c_i + eta (g - lambda c_i)
        v_j <- v_j + eta (-g u_n - lambda v_j)         c_j <- c_j + eta (-g - lambda c_j)
        l = -ln sigma(x) + lambda / 2 (|u_n|^2 + |v_i|^2 + |v_j|^2 + c_i^2 + c_j^2)

    all from the values before the step: stochastic gradient descent on l.

    The grid: users fall into `blocks` groups (B) by a permutation drawn from `seed`, items into
    B groups drawn anew for each `epoch` from (seed, epoch), so that across epochs every item is
    contrasted with every other. Sub-epoch `sub_epoch` (of B per epoch, in an order drawn from
    (seed, epoch)) runs the blocks (p, (p + shift) mod B), which touch disjoint rows, in parallel.
    In block (p, q) each positive of a user of group p on an item of group q gets a negative
    drawn uniformly from item group q, from a stream of the block's own, redrawn while it is a
    positive of the user (at most 16 draws; a positive whose draws all fail is skipped).
    `bpr_triples` gives the triples in the order they are applied, so that `reference.bpr_sub_epoch`
    reproduces this call. The result is the same bits for any `threads`.

    Every listed (user, item) pair is a positive, whatever its value; repeated pairs count once.
    U, V and item_bias must be C-contiguous, writeable and of one float dtype.
    """
    data, _ = _prepare(interactions, U, V)
    learning_rate = as_real(learning_rate, "learning_rate", 0.0, strict=True)
    regularization = as_real(regularization, "regularization", 0.0)
    epoch = as_integer(epoch, "epoch", 0, _MAX_EPOCH)
    grid = _bpr_grid(data, blocks, seed)
    sub_epoch = as_integer(sub_epoch, "sub_epoch", 0, grid.blocks - 1)
    grid.bucket(epoch, as_threads(threads))
    return _core.bpr_sub_epoch(grid, U, V, item_bias, learning_rate, regularization, epoch, sub_epoch,
                               as_threads(threads))


def bpr_triples(interactions: Any, *, epoch: int = 0, sub_epoch: int = 0, blocks: int | None = None, seed: int = 0,
                n_users: int | None = None, n_items: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, positives, negatives): the triples of `bpr_sub_epoch` with these arguments, in the
    order it applies them (int32 arrays). For a (users, items, values) tuple give n_users and
    n_items (the rows of U and V): the grid's groups depend on them."""
    grid = _bpr_grid(interactions, blocks, seed, n_users, n_items)
    epoch = as_integer(epoch, "epoch", 0, _MAX_EPOCH)
    sub_epoch = as_integer(sub_epoch, "sub_epoch", 0, grid.blocks - 1)
    grid.bucket(epoch, 0)
    return _core.bpr_triples(grid, epoch, sub_epoch)
