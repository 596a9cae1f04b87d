"""The executable specification: the math of DESIGN.md in plain NumPy, written to be read.

Every native routine of latentmf has a twin here with the same name and arguments, and the tests
compare the two. Nothing here is fast; nothing here imports anything but NumPy.

Notation (DESIGN.md): R is n_users x n_items, observed on the set Omega of (n, m) pairs;
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
    """L = 1/2 sum_(n,m) in Omega [ (r_nm - r_hat_nm)^2 + lambda (|u_n|^2 + |v_m|^2 [+ b_n^2 + c_m^2]) ].

    The L2 term is charged once per observed rating, so a user with c_n ratings pays
    lambda c_n |u_n|^2 (the convention of LIBMF, Surprise, Spark and ALS-WR).
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
    then G_user[n, D] += |e v_m[D] - lambda u_n[D]|^2 / |D|; likewise for item m. The biases move
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
