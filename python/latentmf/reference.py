"""The executable specification: the math of docs/model.md in plain NumPy, written to be read.

Every native routine of latentmf has a twin here with the same name and arguments, and the tests
compare the two. Nothing here is fast; nothing here imports anything but NumPy.

Notation (docs/model.md): R is n_users x n_items, observed on the set Omega of (n, m) pairs;
U is n_users x F, V is n_items x F; the plain model predicts r_hat_nm = u_n . v_m.
With biases (mu, b, c) it predicts r_hat_nm = mu + b_n + c_m + u_n . v_m.

`ratings` is anything with 1-D arrays `.users`, `.items` and `.values` (a latentmf.Ratings, say),
or a (users, items, values) tuple. `biases` is None or a (global_mean, user_bias, item_bias) tuple.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _triples(ratings: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(ratings, tuple):
        users, items, values = ratings
    else:
        users, items, values = ratings.users, ratings.items, ratings.values
    return np.asarray(users), np.asarray(items), np.asarray(values)


def predict(U: np.ndarray, V: np.ndarray, users: Any, items: Any, biases: Any = None) -> np.ndarray:
    """r_hat for each (users[k], items[k]) pair."""
    users, items = np.asarray(users), np.asarray(items)
    # u_n . v_m for every pair: the row-wise dot product of the gathered rows.
    r_hat = np.sum(U[users] * V[items], axis=1)
    if biases is not None:
        global_mean, user_bias, item_bias = biases
        r_hat = r_hat + (global_mean + user_bias[users] + item_bias[items])
    return r_hat


def loss(ratings: Any, U: np.ndarray, V: np.ndarray, regularization: float = 0.0, *, biases: Any = None) -> float:
    """``L = 1/2 sum_(n,m) in Omega [ (r_nm - r_hat_nm)^2 + lambda (|u_n|^2 + |v_m|^2 [+ b_n^2 + c_m^2]) ]``.

    The L2 term is charged once per observed rating, so a user with c_n ratings pays
    ``lambda c_n |u_n|^2`` (the convention of LIBMF, Surprise, Spark and ALS-WR).
    """
    users, items, values = _triples(ratings)
    U64, V64 = U.astype(np.float64), V.astype(np.float64)
    b64 = None if biases is None else (float(biases[0]), biases[1].astype(np.float64), biases[2].astype(np.float64))
    # Squared errors over the observed pairs only.
    e = predict(U64, V64, users, items, b64) - values
    data_term = np.sum(e**2)
    # The regularization term, one charge per rating.
    penalty = np.sum(U64[users] ** 2) + np.sum(V64[items] ** 2)
    if b64 is not None:
        penalty += np.sum(b64[1][users] ** 2) + np.sum(b64[2][items] ** 2)
    return float(0.5 * (data_term + regularization * penalty))


def gradients(
    ratings: Any, U: np.ndarray, V: np.ndarray, regularization: float = 0.0, *, biases: Any = None
) -> tuple[np.ndarray, ...]:
    """The batch gradients of `loss`:

        dL/dU = E V + lambda diag(c) U        dL/dV = E^T U + lambda diag(d) V

    with E = R_hat - R on Omega (0 elsewhere), c_n the number of ratings of user n and d_m of
    item m. With biases also dL/db = E 1 + lambda diag(c) b and dL/dc = E^T 1 + lambda diag(d) c,
    and the result is (dU, dV, d_user_bias, d_item_bias) instead of (dU, dV).
    """
    users, items, values = _triples(ratings)
    n_users, n_items = U.shape[0], V.shape[0]
    # The nonzero entries of E, one per observed rating.
    e = predict(U, V, users, items, biases) - values
    c = np.bincount(users, minlength=n_users).astype(U.dtype)
    d = np.bincount(items, minlength=n_items).astype(V.dtype)
    # (E V)_n = sum over the ratings of user n of e_nm v_m; np.add.at sums repeated rows.
    dU = np.zeros_like(U)
    np.add.at(dU, users, e[:, None] * V[items])
    dU += regularization * c[:, None] * U
    # (E^T U)_m = sum over the ratings of item m of e_nm u_n.
    dV = np.zeros_like(V)
    np.add.at(dV, items, e[:, None] * U[users])
    dV += regularization * d[:, None] * V
    if biases is None:
        return dU, dV
    _, user_bias, item_bias = biases
    d_user_bias = np.bincount(users, weights=e, minlength=n_users).astype(U.dtype) + regularization * c * user_bias
    d_item_bias = np.bincount(items, weights=e, minlength=n_items).astype(V.dtype) + regularization * d * item_bias
    return dU, dV, d_user_bias, d_item_bias


def gradients_dense(
    R: np.ndarray, U: np.ndarray, V: np.ndarray, mask: np.ndarray | None = None, regularization: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The same gradients for a dense R, exactly as the plain formulation states them:

        E = mask * (U V^T - R),   dL/dU = E V + lambda diag(c) U,   dL/dV = E^T U + lambda diag(d) V

    `mask` is true where R is observed; without it, NaN marks the missing entries.
    """
    R = np.asarray(R)
    observed = ~np.isnan(R) if mask is None else np.asarray(mask, dtype=bool)
    # Missing entries count as zero in both R and R_hat.
    E = np.where(observed, U @ V.T - np.where(observed, R, 0), 0).astype(U.dtype)
    c = observed.sum(axis=1).astype(U.dtype)
    d = observed.sum(axis=0).astype(V.dtype)
    dU = E @ V + regularization * c[:, None] * U
    dV = E.T @ U + regularization * d[:, None] * V
    return dU, dV


def sgd_epoch(
    ratings: Any,
    U: np.ndarray,
    V: np.ndarray,
    learning_rate: float,
    regularization: float = 0.0,
    *,
    order: Any = None,
    biases: Any = None,
    adagrad: Any = None,
    warm_up: bool = False,
) -> float:
    """One epoch of SGD, in place, visiting ratings[order[0]], ratings[order[1]], ...
    (input order when `order` is None). For each rating, with e = r_nm - r_hat_nm:

        u_n <- u_n + eta (e v_m - lambda u_n)      v_m <- v_m + eta (e u_n - lambda v_m)

    both from the values before the step; with biases b_n <- b_n + eta (e - lambda b_n) and
    c_m <- c_m + eta (e - lambda c_m). With `warm_up` only the leading factors (the first
    min(16, F)) move. Returns the sum of e^2 seen before each step.

    With `adagrad` = (G_user, G_item), arrays of shapes (n_users, 2) and (n_items, 2) updated in
    place, each row gets its own steps (AdaGrad, after LIBMF's schedule). The factors form two
    groups, the leading ones (column 0 of G) and the rest (column 1). For each group D, user n's
    factors move with eta / sqrt(G_user[n, D]) in place of eta, using G before this update, and
    then ``G_user[n, D] += |e v_m[D] - lambda u_n[D]|^2 / |D|``; likewise for item m. The biases move
    with the leading group's steps. In a warm-up epoch only the leading group moves.
    """
    users, items, values = _triples(ratings)
    order = np.arange(len(values)) if order is None else np.asarray(order)
    lam, n_factors = regularization, U.shape[1]
    lead = min(n_factors, 16)
    groups = [(0, slice(0, lead))] + ([] if warm_up or lead == n_factors else [(1, slice(lead, n_factors))])
    squared_errors = 0.0
    for k in order:
        n, m, r = users[k], items[k], values[k]
        u, v = U[n].copy(), V[m].copy()
        r_hat = u @ v
        if biases is not None:
            global_mean, user_bias, item_bias = biases
            r_hat += global_mean + user_bias[n] + item_bias[m]
        e = r - r_hat
        squared_errors += float(e) ** 2
        for group, D in groups:
            # The descent directions of the two rows' factors in D (minus the gradients).
            g_u, g_v = e * v[D] - lam * u[D], e * u[D] - lam * v[D]
            eta_u = eta_v = learning_rate
            if adagrad is not None:
                G_user, G_item = adagrad
                eta_u = learning_rate / np.sqrt(G_user[n, group])
                eta_v = learning_rate / np.sqrt(G_item[m, group])
                G_user[n, group] += (g_u @ g_u) / g_u.size
                G_item[m, group] += (g_v @ g_v) / g_v.size
            U[n, D] = u[D] + eta_u * g_u
            V[m, D] = v[D] + eta_v * g_v
            if group == 0:
                bias_steps = eta_u, eta_v
        if biases is not None:
            user_bias[n] = user_bias[n] + bias_steps[0] * (e - lam * user_bias[n])
            item_bias[m] = item_bias[m] + bias_steps[1] * (e - lam * item_bias[m])
    return squared_errors


def _confidence_weight(r: np.ndarray, alpha: float, confidence: str, epsilon: float) -> np.ndarray:
    """w = c - 1 for the implicit rule: c = 1 + alpha r, or 1 + alpha log(1 + r / epsilon)."""
    if confidence == "linear":
        return alpha * r
    return alpha * np.log1p(r / epsilon)


def _row_regularization(regularization: Any, exponent: float, weight: np.ndarray) -> np.ndarray:
    """lambda_n = regularization * weight_n ** exponent, or the given per-row values."""
    if isinstance(regularization, (np.ndarray, list, tuple)):
        return np.asarray(regularization, dtype=np.float64)
    return regularization * weight**exponent


def _least_norm(A: np.ndarray, b: np.ndarray, z: np.ndarray | None, tolerance: float) -> np.ndarray:
    """x = A^+ b for a symmetric positive semi-definite A that is singular, from A = Q diag(e) Q^T,
    eigenvalues <= tolerance * max(e) taken as 0; with z, a draw from N(A^+ b, A^+)."""
    e, Q = np.linalg.eigh(A)
    keep = e > tolerance * max(e.max(), 0.0)
    coefficients = np.zeros_like(b)
    coefficients[keep] = (Q.T @ b)[keep] / e[keep]
    if z is not None:
        coefficients[keep] += (Q.T @ z)[keep] / np.sqrt(e[keep])
    return Q @ coefficients


def _cholesky(A: np.ndarray, tolerance: float) -> np.ndarray | None:
    """The lower Cholesky factor L of A, or None when A is not numerically positive definite: a
    pivot L_kk^2 at most tolerance * A_kk means row k is, to rounding, a combination of the rows
    before it."""
    try:
        L = np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        return None
    return L if np.all(np.diag(L) ** 2 > tolerance * np.diag(A)) else None


def _conjugate_gradient(apply_A: Any, b: np.ndarray, x: np.ndarray, steps: int) -> np.ndarray:
    """`steps` steps of conjugate gradient on A x = b from x; stops early when the residual is 0 or
    p^T A p is not positive (A singular along p), keeping the iterate."""
    r = b - apply_A(x)
    p = r.copy()
    rr = r @ r
    for _ in range(steps):
        if not rr > 0:
            break
        q = apply_A(p)
        pq = p @ q
        if not pq > 0:
            break
        step = rr / pq
        x = x + step * p
        r = r - step * q
        rr_next = r @ r
        p = r + (rr_next / rr) * p
        rr = rr_next
    return x


def solve_rows(
    ratings: Any,
    U: np.ndarray,
    V: np.ndarray,
    *,
    side: str,
    rule: str,
    regularization: Any = 0.0,
    regularization_exponent: float | None = None,
    alpha: float = 1.0,
    confidence: str = "linear",
    epsilon: float = 1.0,
    precision: float = 1.0,
    biases: Any = None,
    shared_matrix: Any = None,
    shared_vector: Any = None,
    row_vectors: Any = None,
    method: str = "exact",
    cg_steps: int = 3,
    noise: Any = None,
) -> int:
    """The row solver of docs/model.md, one row at a time, in place. For each row n of `side` (U's rows
    given Y = V for "users", V's given Y = U for "items") and its ratings j (value r_j):

        A_n = P + lambda_n I + sum_j w_j y~_j y~_j^T,   b_n = h + sum_j t_j y~_j,   x_n = A_n^{-1} b_n

    with y~_j = y_j, or [y_j, 1] with biases (x_n = [x_n, bias_n]); o_j = mu + (other bias of j);
    `row_vectors` (n_rows x F') adds row n's own vector to h.
    ::

        rule "implicit": c_j = 1 + w_j, w_j = alpha r_j or alpha log(1 + r_j / epsilon),
                         t_j = c_j - w_j o_j, P = Y~^T Y~, h = -Y~^T o by default.
        rule "explicit": w_j = precision, t_j = precision (r_j - o_j), P = 0, h = 0 by default.

    lambda_n = regularization * weight_n ** exponent, weight_n = n_cols + sum_j w_j (implicit) or
    the number of ratings (explicit); the exponent defaults to 0 (implicit) or 1 (explicit).

    method "exact": x_n = A_n^{-1} b_n, plus R_n^{-1} z_n (A_n = R_n^T R_n) when `noise` is given.
    method "cg": `cg_steps` steps of conjugate gradient from the current row (rows without
    ratings, and rows singular by construction, take the exact path). A system that is not
    positive definite gets the least-norm solution. Returns the number of such rows.
    """
    users, items, values = _triples(ratings)
    rows, cols = (users, items) if side == "users" else (items, users)
    X, Y = (U, V) if side == "users" else (V, U)
    n_rows, F = X.shape
    n_cols = Y.shape[0]
    values = values.astype(np.float64)
    Y64 = Y.astype(np.float64)

    # y~: Y with a column of ones when the rows have biases; o: the offset of every column.
    if biases is not None:
        global_mean, user_bias, item_bias = biases
        own_bias, other_bias = (user_bias, item_bias) if side == "users" else (item_bias, user_bias)
        Y_tilde = np.hstack([Y64, np.ones((n_cols, 1))])
        offsets = float(global_mean) + other_bias.astype(np.float64)
    else:
        own_bias = None
        Y_tilde = Y64
        offsets = np.zeros(n_cols)
    order = Y_tilde.shape[1]

    # Entry weights and targets.
    if rule == "implicit":
        w = _confidence_weight(values, alpha, confidence, epsilon)
        t = (1.0 + w) - w * offsets[cols]
    else:
        w = np.full(len(values), float(precision))
        t = precision * (values - offsets[cols])

    # The terms every row shares.
    if shared_matrix is not None:
        P = np.asarray(shared_matrix, dtype=np.float64)
        P = (P + P.T) / 2
    elif rule == "implicit":
        P = Y_tilde.T @ Y_tilde  # all entries with confidence 1
    else:
        P = np.zeros((order, order))
    if shared_vector is not None:
        h = np.asarray(shared_vector, dtype=np.float64)
    elif rule == "implicit":
        h = -Y_tilde.T @ offsets  # all entries: preference 0, minus the offsets
    else:
        h = np.zeros(order)

    # Per-row regularization.
    if rule == "implicit":
        weight = n_cols + np.bincount(rows, weights=w, minlength=n_rows)
        exponent = 0.0 if regularization_exponent is None else regularization_exponent
    else:
        weight = np.bincount(rows, minlength=n_rows).astype(np.float64)
        exponent = 1.0 if regularization_exponent is None else regularization_exponent
    lam = _row_regularization(regularization, exponent, weight)

    tolerance = 2 * order * np.finfo(X.dtype).eps
    has_shared_matrix = shared_matrix is not None or rule == "implicit"
    least_norm_rows = 0
    for n in range(n_rows):
        mine = np.flatnonzero(rows == n)
        Yn, wn, tn = Y_tilde[cols[mine]], w[mine], t[mine]
        A = P + lam[n] * np.eye(order) + (Yn * wn[:, None]).T @ Yn
        b = h + Yn.T @ tn
        if row_vectors is not None:
            b = b + np.asarray(row_vectors[n], dtype=np.float64)
        singular_by_construction = not has_shared_matrix and lam[n] == 0 and len(mine) < order
        if method == "cg" and len(mine) > 0 and not singular_by_construction:
            start = X[n].astype(np.float64)
            if own_bias is not None:
                start = np.append(start, float(own_bias[n]))
            x = _conjugate_gradient(lambda p: A @ p, b, start, cg_steps)
        else:
            z = None if noise is None else np.asarray(noise[n], dtype=np.float64)
            L = _cholesky(A, tolerance)
            if L is not None:
                # A = L L^T = R^T R with R = L^T: x = A^{-1} b (+ R^{-1} z).
                x = np.linalg.solve(A, b)
                if z is not None:
                    x = x + np.linalg.solve(L.T, z)
            else:
                x = _least_norm(A, b, z, tolerance)
                least_norm_rows += 1
        X[n] = x[:F]
        if own_bias is not None:
            own_bias[n] = x[F]
    return least_norm_rows


def gramian(Y: np.ndarray, *, bias_column: bool = False) -> np.ndarray:
    """G = Y^T Y, or [Y 1]^T [Y 1] with a bias column, in Y's dtype."""
    Y64 = Y.astype(np.float64)
    if bias_column:
        Y64 = np.hstack([Y64, np.ones((Y.shape[0], 1))])
    return (Y64.T @ Y64).astype(Y.dtype)


def implicit_loss(
    ratings: Any,
    U: np.ndarray,
    V: np.ndarray,
    regularization: Any = 0.0,
    *,
    regularization_exponent: float = 0.0,
    alpha: float = 1.0,
    confidence: str = "linear",
    epsilon: float = 1.0,
    biases: Any = None,
) -> tuple[float, float, float]:
    """The iALS objective over every (user, item) pair, by its definition (dense, small data only)::

        L = sum_(n,m) c_nm (p_nm - r_hat_nm)^2 + sum_n lambda_n |u~_n|^2 + sum_m lambda_m |v~_m|^2

    p = 1 and c = 1 + w on the rated pairs, p = 0 and c = 1 elsewhere; u~ and v~ include the biases.
    Returned as (all_entries, observed, penalty): the sum of r_hat^2 over all pairs, the sum over
    the rated pairs of c (1 - r_hat)^2 - r_hat^2, and the penalty; L is their sum.
    """
    users, items, values = _triples(ratings)
    n_users, n_items = U.shape[0], V.shape[0]
    U64, V64 = U.astype(np.float64), V.astype(np.float64)
    # Every prediction, rated or not.
    R_hat = U64 @ V64.T
    if biases is not None:
        global_mean, user_bias, item_bias = biases
        R_hat += float(global_mean) + user_bias.astype(np.float64)[:, None] + item_bias.astype(np.float64)[None, :]
    # Preference and confidence of every pair.
    w = _confidence_weight(values.astype(np.float64), alpha, confidence, epsilon)
    C = np.ones((n_users, n_items))
    C[users, items] = 1.0 + w
    P = np.zeros((n_users, n_items))
    P[users, items] = 1.0
    # The data term sum C (P - R_hat)^2, split as the native code takes it: on an unrated pair the
    # term is r_hat^2, on a rated one c (1 - r_hat)^2 = r_hat^2 + [c (1 - r_hat)^2 - r_hat^2].
    all_entries = np.sum(C * (P - R_hat) ** 2 * (P == 0)) + np.sum(R_hat[P == 1] ** 2)
    r = R_hat[users, items]
    observed = np.sum((1.0 + w) * (1.0 - r) ** 2 - r**2)
    # Regularization: per-row lambdas from the total confidence of each user and item.
    if isinstance(regularization, tuple):
        lam_users, lam_items = (np.asarray(x, dtype=np.float64) for x in regularization)
    else:
        lam_users = regularization * (n_items + np.bincount(users, weights=w, minlength=n_users)) ** regularization_exponent
        lam_items = regularization * (n_users + np.bincount(items, weights=w, minlength=n_items)) ** regularization_exponent
    user_norms, item_norms = np.sum(U64**2, axis=1), np.sum(V64**2, axis=1)
    if biases is not None:
        user_norms = user_norms + user_bias.astype(np.float64) ** 2
        item_norms = item_norms + item_bias.astype(np.float64) ** 2
    penalty = float(lam_users @ user_norms + lam_items @ item_norms)
    return float(all_entries), float(observed), penalty


#: The hyperpriors of Bayesian PMF (Salakhutdinov and Mnih 2008): each side's rows x_n (with the
#: bias as a last coordinate) are N(mu, Lambda^-1) with (mu, Lambda) ~ Normal-Wishart(mu0 = 0,
#: beta0, W0 = I, nu0 = D) for D coordinates; the noise precision alpha ~ Gamma(a0, b0).
GIBBS_PRIOR = {"beta0": 2.0, "a0": 1.0, "b0": 1.0}


def spectral_start(ratings: Any, U0: np.ndarray, V0: np.ndarray, regularization: float = 0.0, *,
                   global_mean: float | None = None, rounds: int = 2,
                   shift: float = 1e-2) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The start of MatrixFactorization(solver="als", init="spectral") from the draws U0, V0 (the
    twin of latentmf.rating_solvers.spectral_start): (U, V, user_bias, item_bias), the biases None
    without `global_mean`.

    With biases (global_mean mu given), each side's biases take their exact ridge solve with the
    factors and the other side's biases at 0 (lambda per rating): b_n = sum (r - mu) / (c_n (1 +
    lambda)) over user n's ratings and c_m = sum (r - mu) / (d_m (1 + lambda)) over item m's (0
    without ratings).
    E holds the errors of that start, r_hat - r, on Omega. Then `rounds` rounds of subspace
    iteration from Y = basis(V0): X = basis(E Y, U0), Y = basis(E^T X, V0), where basis(P, S) is
    the Q of the QR factorisation (R's diagonal positive) of P + s S, s = shift norm(P) / norm(S)
    (1 / norm(S) when P is 0). V = Y sqrt(n_items / F); U = 0.
    """
    users, items, values = _triples(ratings)
    n_users, n_items, F = U0.shape[0], V0.shape[0], U0.shape[1]
    r = values.astype(np.float64)
    user_bias = item_bias = biases = None
    if global_mean is not None:
        shrink = 1.0 + regularization
        c = np.bincount(users, minlength=n_users) * shrink
        user_bias = np.divide(np.bincount(users, r - global_mean, n_users), c, out=np.zeros(n_users), where=c > 0)
        d = np.bincount(items, minlength=n_items) * shrink
        item_bias = np.divide(np.bincount(items, r - global_mean, n_items), d, out=np.zeros(n_items), where=d > 0)
        biases = (global_mean, user_bias, item_bias)

    def basis(P: np.ndarray, S: np.ndarray) -> np.ndarray:
        size = np.linalg.norm(P)
        Q, R = np.linalg.qr(P + (shift * size if size > 0 else 1.0) / np.linalg.norm(S) * S)
        return Q * np.sign(np.diag(R))

    # E Y and E^T X are the gradients' products with the other side's factors at 0 (and lambda 0).
    zero_U, zero_V = np.zeros((n_users, F)), np.zeros((n_items, F))
    Y = basis(zero_V, V0)
    for _ in range(rounds):
        X = basis(gradients((users, items, r), zero_U, Y, biases=biases)[0], U0)
        Y = basis(gradients((users, items, r), X, zero_V, biases=biases)[1], V0)
    return zero_U, Y * np.sqrt(n_items / F), user_bias, item_bias


def normal_wishart_draw(X: np.ndarray, rng: np.random.Generator, beta0: float = 2.0, links: np.ndarray | None = None,
                        link_regularization: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(mu, Lambda) drawn from their posterior given the rows of X (N x D), under the prior
    Normal-Wishart(0, beta0, I, D):

        x_bar = mean of the rows,  S = (1/N) sum (x - x_bar)(x - x_bar)^T
        beta* = beta0 + N,  nu* = D + N,  mu* = N x_bar / beta*
        W*^-1 = I + N S + (beta0 N / beta*) x_bar x_bar^T
        Lambda ~ Wishart(W*, nu*),  mu ~ N(mu*, (beta* Lambda)^-1)

    With `links` (K x D rows l_k of prior N(0, (link_regularization Lambda)^-1), `gibbs_sweep`'s
    implicit links), Lambda is drawn given them too: nu* = D + N + K and W*^-1 gains
    link_regularization sum_k l_k l_k^T.

    The draws, in this order: the Bartlett factor of the Wishart (D chi-square values with
    nu* - i degrees of freedom, then the D (D - 1) / 2 normals below its diagonal, row by row),
    then D normals for mu."""
    X = np.asarray(X, dtype=np.float64)
    N, D = X.shape
    mean = X.mean(axis=0) if N else np.zeros(D)
    centered = X - mean
    beta = beta0 + N
    inverse_scale = np.eye(D) + centered.T @ centered + (beta0 * N / beta) * np.outer(mean, mean)
    degrees = D + N
    if links is not None:
        links = np.asarray(links, dtype=np.float64)
        inverse_scale += link_regularization * (links.T @ links)
        degrees += len(links)
    scale_factor = np.linalg.cholesky(np.linalg.inv(inverse_scale))  # W* = L L^T
    bartlett = np.zeros((D, D))
    bartlett[np.diag_indices(D)] = np.sqrt(rng.chisquare(degrees - np.arange(D)))
    bartlett[np.tril_indices(D, -1)] = rng.standard_normal(D * (D - 1) // 2)
    root = scale_factor @ bartlett
    precision = root @ root.T  # Lambda = L A A^T L^T
    mu = N * mean / beta + np.linalg.solve(np.linalg.cholesky(beta * precision).T, rng.standard_normal(D))
    return mu, precision


def _link_entries(ratings: Any, side: str, n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, w) of one side's links: each rating joins its row (the user for "users") to its
    column (the item), with the row's weight w_n = c_n^{-1/2} (c_n: the row's ratings)."""
    users, items, _ = _triples(ratings)
    rows, cols = (users, items) if side == "users" else (items, users)
    counts = np.bincount(rows, minlength=n_rows).astype(np.float64)
    weight = np.divide(1.0, np.sqrt(counts), out=np.zeros(n_rows), where=counts > 0)
    return rows, cols, weight


def link_product(ratings: Any, side: str, links: np.ndarray, n_rows: int) -> np.ndarray:
    """X L (n_rows x D): row n gets w_n times the sum of the links of the columns of its ratings
    (links: one row per column: per item for side="users")."""
    rows, cols, weight = _link_entries(ratings, side, n_rows)
    out = np.zeros((n_rows, links.shape[1]))
    np.add.at(out, rows, weight[rows][:, None] * np.asarray(links, dtype=np.float64)[cols])
    return out


def link_sweep(ratings: Any, side: str, residual: np.ndarray, links: np.ndarray, noise: np.ndarray,
               regularization: float) -> None:
    """One sweep over the implicit links of `side`'s prior, in place (cpp/include/latentmf/links.hpp):
    `residual` holds A - X L (A: the rows minus mu; X L: `link_product`) and gets A - X L with the
    new links. Column j after column j - 1, each drawn given the others: with s_j = sum over its
    ratings' rows of w_n^2,

        l_j <- (sum_n w_n R_n + s_j l_j) / (s_j + lambda) + noise_j / sqrt(s_j + lambda)

    and R updated at once."""
    rows, cols, weight = _link_entries(ratings, side, len(residual))
    for j in range(len(links)):
        mine = rows[cols == j]
        w = weight[mine]
        s = float(w @ w)
        precision = s + regularization
        drawn = (w @ residual[mine] + s * links[j]) / precision + noise[j] / np.sqrt(precision)
        residual[mine] -= np.outer(w, drawn - links[j])
        links[j] = drawn


def gibbs_sweep(ratings: Any, U: np.ndarray, V: np.ndarray, rng: np.random.Generator, *,
                noise_precision: float, biases: Any = None, links: Any = None,
                link_regularization: float = 1.0) -> tuple[float, float]:
    """One sweep of the Gibbs sampler of Bayesian PMF, in place; returns (the new noise precision,
    the squared errors of the new sample it was drawn from).

    With x_n = [u_n, b_n] (u_n alone without biases) and likewise y_m, in this order:

    1. (mu_U, Lambda_U) given the user rows (`normal_wishart_draw`);
    2. each user row given V, the item biases, alpha, mu_U and Lambda_U, from N(A^-1 b, A^-1) with
       ``A = Lambda_U + alpha sum_m y~_m y~_m^T`` and ``b = Lambda_U mu_U + alpha sum_m (r_nm - mu
       - c_m) y~_m``: ``solve_rows(rule="explicit", precision=alpha, shared_matrix=Lambda_U,
       shared_vector=Lambda_U mu_U, regularization=0, noise=z)`` with z an N x D array of
       standard normals;
    3. (mu_V, Lambda_V) given the item rows;
    4. each item row, as the users' were, given the new user rows;
    5. alpha given the residuals, from Gamma(a0 + n / 2, rate b0 + sum (r - r_hat)^2 / 2).

    With `links` = (user links, item links) (float64 arrays of n_items x D and n_users x D, changed
    in place; either None for a side without), each row's prior mean is mu + its implicit offset
    p_n = w_n sum_j l_j over the columns j of its ratings (`link_product`; the items a user rated,
    the users who rated an item), the links having the prior N(0, (link_regularization Lambda)^-1).
    Then step 1 draws from the rows minus their offsets and the links (normal_wishart_draw's
    `links`), step 2 adds row_vectors = p_n Lambda_U, and after it the links are drawn
    (`link_sweep`, from the new rows minus mu_U and p_n, with noise e = z C^-1 for Lambda_U = C C^T
    and z an n_items x D array of standard normals in float64); likewise for the items.

    The draws come from `rng` in that order (numpy's standard_normal for z, in U's dtype, and
    gamma for alpha)."""
    prior = GIBBS_PRIOR
    sides = (("users", U, None if biases is None else biases[1], None if links is None else links[0]),
             ("items", V, None if biases is None else biases[2], None if links is None else links[1]))
    for side, factors, bias, link in sides:
        rows = factors if bias is None else np.column_stack([factors, bias])
        offsets = None if link is None else link_product(ratings, side, link, len(rows))
        mu, precision = normal_wishart_draw(rows if offsets is None else rows - offsets, rng, prior["beta0"], link,
                                            link_regularization)
        noise = rng.standard_normal(rows.shape, dtype=factors.dtype)
        solve_rows(ratings, U, V, side=side, rule="explicit", regularization=0.0, precision=noise_precision,
                   biases=biases, shared_matrix=precision.astype(factors.dtype),
                   shared_vector=(precision @ mu).astype(factors.dtype),
                   row_vectors=None if offsets is None else (offsets @ precision).astype(factors.dtype), noise=noise)
        if link is not None:
            rows = factors if bias is None else np.column_stack([factors, bias])
            link_noise = link_draws(rng, precision, len(link))
            link_sweep(ratings, side, rows.astype(np.float64) - mu - offsets, link, link_noise, link_regularization)
    squared_errors = 2.0 * loss(ratings, U, V, 0.0, biases=biases)
    n = len(_triples(ratings)[2])
    return float(rng.gamma(prior["a0"] + n / 2.0, 1.0 / (prior["b0"] + squared_errors / 2.0))), squared_errors


def link_draws(rng: np.random.Generator, precision: np.ndarray, count: int) -> np.ndarray:
    """`count` draws of N(0, precision^-1), as rows: z C^-1 with precision = C C^T (C lower
    triangular) and z standard normals (count x D, float64, from `rng`)."""
    z = rng.standard_normal((count, len(precision)))
    return z @ np.linalg.inv(np.linalg.cholesky(precision))


def bpr_sub_epoch(
    triples: Any,
    U: np.ndarray,
    V: np.ndarray,
    learning_rate: float,
    regularization: float = 0.0,
    *,
    item_bias: np.ndarray | None = None,
) -> float:
    """SGD of Bayesian personalized ranking (Rendle et al. 2009) over `triples` = (users,
    positives, negatives), one triple (n, i, j) after the other, in place (`latentmf.bpr_triples`
    gives those of a native sub-epoch). With c the item biases (0 without item_bias)::

        x = u_n . (v_i - v_j) + c_i - c_j,   g = sigma(-x) = 1 / (1 + e^x)
        u_n <- u_n + eta (g (v_i - v_j) - lambda u_n)
        v_i <- v_i + eta (g u_n - lambda v_i)          c_i <- c_i + eta (g - lambda c_i)
        v_j <- v_j + eta (-g u_n - lambda v_j)         c_j <- c_j + eta (-g - lambda c_j)

    all from the values before the step. Returns the sum over the triples of their loss, of which
    the step is the gradient step (values before each step)::

        l = -ln sigma(x) + lambda / 2 (|u_n|^2 + |v_i|^2 + |v_j|^2 + c_i^2 + c_j^2)
    """
    users, positives, negatives = (np.asarray(a) for a in triples)
    eta, lam = learning_rate, regularization
    total = 0.0
    for n, i, j in zip(users, positives, negatives):
        u, a, b = U[n].copy(), V[i].copy(), V[j].copy()
        bi, bj = (item_bias[i], item_bias[j]) if item_bias is not None else (0.0, 0.0)
        x = u @ (a - b) + (bi - bj)
        # sigma(-x) and -ln sigma(x) = ln(1 + e^-x), through e^-|x| <= 1 so that neither overflows.
        e = np.exp(-np.abs(x))
        g = (e if x >= 0 else 1.0) / (1.0 + e)
        log_loss = max(-x, 0.0) + np.log1p(e)
        squares = u @ u + a @ a + b @ b + float(bi) ** 2 + float(bj) ** 2
        total += float(log_loss) + 0.5 * lam * float(squares)
        U[n] = u + eta * (g * (a - b) - lam * u)
        V[i] = a + eta * (g * u - lam * a)
        V[j] = b + eta * (-g * u - lam * b)
        if item_bias is not None:
            item_bias[i] = bi + eta * (g - lam * bi)
            item_bias[j] = bj + eta * (-g - lam * bj)
    return total
