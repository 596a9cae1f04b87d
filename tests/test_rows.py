"""The row solver (solve_rows), the Gramian and the iALS objective: native against the reference
twins, the math they must satisfy (normal equations, monotone losses, the Gibbs draw's
distribution), determinism over threads, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import latentmf
from latentmf import Ratings, reference

from conftest import DTYPES, TOLERANCE, random_biases, random_factors, random_ratings

# The comparisons with the reference and the determinism tests run once per kernel level this CPU
# supports; the properties of the math (monotone losses, normal equations, the draws' distribution)
# and the bad-input catalogue run at the level chosen at import.
per_level = pytest.mark.usefixtures("isa")

# A solve amplifies the rounding of its inputs by the system's condition number. The systems below
# have condition numbers of a few hundred at most (regularization keeps them so), so float32
# results get that much room over the float32 tolerance; float64 stays at its own.
SOLVE_TOLERANCE = {np.float64: 1e-11, np.float32: 3e-4}

RULES = ["explicit", "implicit"]
METHODS = ["exact", "cg"]
SIDES = ["users", "items"]

# (n_users, n_items, n_ratings, F): F = 1, F not a multiple of any vector width, F = 16 and 64 (the
# unrolled kernels), users and items without ratings, one rating.
SHAPES = [(30, 20, 150, 5), (12, 40, 100, 1), (25, 18, 200, 16), (20, 30, 250, 64), (1, 1, 1, 3)]


def assert_solved_close(native, expected, dtype):
    expected = np.asarray(expected, dtype=np.float64)
    tolerance = SOLVE_TOLERANCE[np.dtype(dtype).type]
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(np.asarray(native, dtype=np.float64), expected, rtol=tolerance,
                               atol=tolerance * scale)


def _problem(rng, shape, dtype, with_biases=False, implicit=False):
    n_users, n_items, n_ratings, F = shape
    ratings = random_ratings(rng, n_users, n_items, n_ratings, value_dtype=dtype,
                             low=0.0 if implicit else 1.0, high=3.0 if implicit else 5.0)
    U, V = random_factors(rng, n_users, n_items, F, dtype, scale=0.3)
    biases = random_biases(rng, n_users, n_items, dtype) if with_biases else None
    return ratings, U, V, biases


def _copies(U, V, biases):
    return U.copy(), V.copy(), None if biases is None else (biases[0], biases[1].copy(), biases[2].copy())


def _solve_both(ratings, U, V, biases, threads=None, **options):
    """(native, reference) results, each (U, V, biases, count), from copies of the same inputs."""
    native = _copies(U, V, biases)
    count = latentmf.solve_rows(ratings, native[0], native[1], biases=native[2], threads=threads, **options)
    twin = _copies(U, V, biases)
    twin_count = reference.solve_rows(ratings, twin[0], twin[1], biases=twin[2], **options)
    return (*native, count), (*twin, twin_count)


def _assert_results_close(native, twin, dtype):
    assert native[3] == twin[3]
    for got, want in zip(native[:2], twin[:2]):
        assert got.dtype == dtype
        assert_solved_close(got, want, dtype)
    if twin[2] is not None:
        assert_solved_close(native[2][1], twin[2][1], dtype)
        assert_solved_close(native[2][2], twin[2][2], dtype)


def _options(rule, method, **more):
    options = dict(rule=rule, method=method, regularization=0.2 if rule == "explicit" else 1.0, alpha=2.0)
    options.update(more)
    return options


# Parity: every rule x method x dtype x bias column x side x threads, over the shapes.

@per_level
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_biases", [False, True])
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("threads", [1, 2])
def test_solve_rows_matches_reference(rng, shape, rule, method, dtype, with_biases, side, threads):
    ratings, U, V, biases = _problem(rng, shape, dtype, with_biases, implicit=rule == "implicit")
    native, twin = _solve_both(ratings, U, V, biases, threads, side=side, **_options(rule, method))
    _assert_results_close(native, twin, dtype)


@per_level
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_biases", [False, True])
@pytest.mark.parametrize("side", SIDES)
def test_gibbs_draw_matches_reference(rng, dtype, with_biases, side):
    ratings, U, V, biases = _problem(rng, (30, 25, 200, 6), dtype, with_biases)
    order = 6 + with_biases
    root = rng.standard_normal((order, order))
    prior = (root @ root.T + order * np.eye(order)).astype(dtype)
    mean = rng.standard_normal(order)
    n_rows = 30 if side == "users" else 25
    noise = rng.standard_normal((n_rows, order)).astype(dtype)
    options = dict(side=side, rule="explicit", method="exact", precision=2.5, regularization=0.0,
                   shared_matrix=prior, shared_vector=(prior @ mean).astype(dtype), noise=noise)
    native, twin = _solve_both(ratings, U, V, biases, **options)
    _assert_results_close(native, twin, dtype)


@per_level
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_biases", [False, True])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rule", RULES)
def test_row_vectors_match_reference(rng, dtype, with_biases, method, rule):
    # Rows 0 and 3 have no ratings: they get A^{-1} (h + row vector) alone.
    ratings, U, V, biases = _problem(rng, (30, 25, 200, 6), dtype, with_biases, implicit=rule == "implicit")
    order = 6 + with_biases
    row_vectors = rng.standard_normal((30, order)).astype(dtype)
    options = _options(rule, method, side="users", row_vectors=row_vectors)
    if method == "exact" and rule == "explicit":
        options["noise"] = rng.standard_normal((30, order)).astype(dtype)
    native, twin = _solve_both(ratings, U, V, biases, **options)
    _assert_results_close(native, twin, dtype)
    without = _solve_both(ratings, U, V, biases, **{**options, "row_vectors": None})[0]
    assert not np.allclose(without[0], native[0])


@per_level
@pytest.mark.parametrize("confidence", ["linear", "log"])
@pytest.mark.parametrize("exponent", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_implicit_confidence_and_frequency_scaled_regularization_match_reference(rng, confidence, exponent, method,
                                                                                 dtype):
    ratings, U, V, _ = _problem(rng, (30, 20, 150, 8), dtype, implicit=True)
    options = _options("implicit", method, confidence=confidence, epsilon=0.5, regularization=0.05,
                       regularization_exponent=exponent)
    native, twin = _solve_both(ratings, U, V, None, side="users", **options)
    _assert_results_close(native, twin, dtype)


@per_level
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_per_row_regularization_matches_reference(rng, dtype, method):
    ratings, U, V, _ = _problem(rng, (30, 20, 150, 8), dtype)
    per_row = rng.uniform(0.5, 2.0, size=30)
    native, twin = _solve_both(ratings, U, V, None, side="users", rule="explicit", method=method,
                               regularization=per_row)
    _assert_results_close(native, twin, dtype)


# Hand-computed cases of the reference and the native code.

Y_2x2 = np.array([[1.0, 0.0], [1.0, 1.0]])


@per_level
@pytest.mark.parametrize("solve", [latentmf.solve_rows, reference.solve_rows], ids=["native", "reference"])
def test_explicit_two_by_two_by_hand(solve):
    # One user rated item 0 with 1 and item 1 with 2; lambda_n = 0.5 * 2 ratings = 1:
    # A = I + [1 0; 0 0] + [1 1; 1 1] = [3 1; 1 2], b = 1 [1, 0] + 2 [1, 1] = [3, 2], x = [0.8, 0.6].
    ratings = Ratings([0, 0], [0, 1], [1.0, 2.0], 1, 2)
    U, V = np.zeros((1, 2)), Y_2x2.copy()
    assert solve(ratings, U, V, side="users", rule="explicit", regularization=0.5) == 0
    np.testing.assert_allclose(U, [[0.8, 0.6]], rtol=1e-14)


@per_level
@pytest.mark.parametrize("solve", [latentmf.solve_rows, reference.solve_rows], ids=["native", "reference"])
def test_implicit_two_by_two_by_hand(solve):
    # alpha = 1: c = [2, 3], w = [1, 2], t = c; P = Y^T Y = [2 1; 1 1]; lambda = 0:
    # A = P + 1 [1 0; 0 0] + 2 [1 1; 1 1] = [5 3; 3 3], b = 2 [1, 0] + 3 [1, 1] = [5, 3], x = [1, 0].
    ratings = Ratings([0, 0], [0, 1], [1.0, 2.0], 1, 2)
    U, V = np.zeros((1, 2)), Y_2x2.copy()
    assert solve(ratings, U, V, side="users", rule="implicit", alpha=1.0) == 0
    np.testing.assert_allclose(U, [[1.0, 0.0]], atol=1e-14)


# The math the solutions must satisfy.

def _system(ratings, Y, row, *, rule, regularization, alpha=1.0, biases_of_other=None, global_mean=0.0,
            precision=1.0):
    """A_n and b_n of one row (side "users"), from their definition."""
    mine = ratings.users == row
    items, r = ratings.items[mine], ratings.values[mine].astype(np.float64)
    Y_tilde = Y.astype(np.float64)
    offsets = np.full(len(Y), global_mean)
    if biases_of_other is not None:
        Y_tilde = np.hstack([Y_tilde, np.ones((len(Y), 1))])
        offsets = offsets + biases_of_other
    Yn = Y_tilde[items]
    if rule == "implicit":
        w = alpha * r
        t = 1 + w - w * offsets[items]
        A = Y_tilde.T @ Y_tilde + regularization * np.eye(Yn.shape[1])
        b = -Y_tilde.T @ offsets
    else:
        w = np.full(len(r), precision)
        t = precision * (r - offsets[items])
        A = regularization * len(r) * np.eye(Yn.shape[1])
        b = np.zeros(Yn.shape[1])
    return A + (Yn * w[:, None]).T @ Yn, b + Yn.T @ t


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("with_biases", [False, True])
def test_exact_solution_satisfies_the_normal_equations(rng, rule, with_biases):
    ratings, U, V, biases = _problem(rng, (25, 30, 200, 7), np.float64, with_biases, implicit=rule == "implicit")
    latentmf.solve_rows(ratings, U, V, side="users", biases=biases, **_options(rule, "exact", alpha=1.5))
    for n in range(25):
        A, b = _system(ratings, V, n, rule=rule, regularization=0.2 if rule == "explicit" else 1.0, alpha=1.5,
                       biases_of_other=None if biases is None else biases[2],
                       global_mean=0.0 if biases is None else biases[0])
        x = U[n] if biases is None else np.append(U[n], biases[1][n])
        np.testing.assert_allclose(A @ x, b, rtol=1e-10, atol=1e-10 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("with_biases", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_conjugate_gradient_with_many_steps_converges_to_the_exact_solution(rng, rule, with_biases, dtype):
    ratings, U, V, biases = _problem(rng, (20, 30, 200, 16), dtype, with_biases, implicit=rule == "implicit")
    exact = _copies(U, V, biases)
    latentmf.solve_rows(ratings, exact[0], exact[1], side="users", biases=exact[2], **_options(rule, "exact"))
    cg = _copies(U, V, biases)
    latentmf.solve_rows(ratings, cg[0], cg[1], side="users", biases=cg[2], **_options(rule, "cg", cg_steps=60))
    assert_solved_close(cg[0], exact[0], dtype)
    if biases is not None:
        assert_solved_close(cg[2][1], exact[2][1], dtype)


@per_level
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_biases", [False, True])
def test_conjugate_gradient_on_rows_longer_than_its_scratch_matches_reference(rng, rule, dtype, with_biases):
    # 20000 ratings in a row are more than conjugate gradient keeps gathered at any level and F = 4:
    # such rows form A and take the same steps with it.
    n_items = 20000
    users = np.repeat(np.arange(3), [n_items, n_items, 10])
    items = np.concatenate([np.arange(n_items), np.arange(n_items), np.arange(10)])
    values = rng.uniform(0.0, 3.0, len(users)).astype(dtype)
    ratings = Ratings(users, items, values, 3, n_items)
    U, V = random_factors(rng, 3, n_items, 4, dtype, scale=0.3)
    biases = random_biases(rng, 3, n_items, dtype) if with_biases else None
    native, twin = _solve_both(ratings, U, V, biases, side="users", **_options(rule, "cg", regularization=1.0))
    _assert_results_close(native, twin, dtype)


@per_level
def test_a_row_without_ratings_gets_the_solution_of_the_shared_terms(rng):
    ratings = Ratings([1, 1], [0, 2], [4.0, 5.0], 3, 3)
    U, V = random_factors(rng, 3, 3, 4)
    prior = np.diag([1.0, 2.0, 4.0, 8.0])
    shared_vector = np.array([1.0, 1.0, 1.0, 1.0])
    for method in METHODS:
        latentmf.solve_rows(ratings, U, V, side="users", rule="explicit", method=method, shared_matrix=prior,
                            shared_vector=shared_vector)
        np.testing.assert_allclose(U[0], [1.0, 0.5, 0.25, 0.125], rtol=1e-14)
        np.testing.assert_allclose(U[2], U[0], rtol=1e-14)
    for rule, method in [(r, m) for r in RULES for m in METHODS]:
        U[:] = 7.0
        latentmf.solve_rows(ratings, U, V, side="users", rule=rule, method=method, regularization=0.1)
        np.testing.assert_array_equal(U[[0, 2]], 0.0)


@per_level
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("with_biases", [False, True])
def test_singular_systems_get_the_least_norm_solution(rng, method, with_biases):
    # lambda = 0, no shared matrix and fewer ratings than unknowns: A_n is singular.
    ratings = Ratings([0, 1, 1, 2], [0, 1, 2, 3], [3.0, 4.0, 2.0, 5.0], 3, 4)
    U, V = random_factors(rng, 3, 4, 5)
    biases = random_biases(rng, 3, 4) if with_biases else None
    native, twin = _solve_both(ratings, U, V, biases, side="users", rule="explicit", method=method,
                               regularization=0.0)
    assert native[3] == twin[3] == 3
    _assert_results_close(native, twin, np.float64)
    assert np.all(np.isfinite(native[0]))
    for n in range(3):
        A, b = _system(ratings, V, n, rule="explicit", regularization=0.0,
                       biases_of_other=None if biases is None else biases[2],
                       global_mean=0.0 if biases is None else biases[0])
        x = native[0][n] if biases is None else np.append(native[0][n], native[2][1][n])
        np.testing.assert_allclose(x, np.linalg.pinv(A) @ b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("with_biases", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_als_half_steps_never_increase_the_loss(rng, with_biases, dtype):
    ratings, U, V, biases = _problem(rng, (60, 40, 600, 8), dtype, with_biases)
    regularization = 0.1
    losses = [latentmf.loss(ratings, U, V, regularization, biases=biases)]
    for _ in range(4):
        for side in SIDES:
            latentmf.solve_rows(ratings, U, V, side=side, rule="explicit", regularization=regularization,
                                biases=biases)
            losses.append(latentmf.loss(ratings, U, V, regularization, biases=biases))
    slack = 1e-5 if dtype == np.float32 else 1e-12
    assert all(b <= a * (1 + slack) for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("with_biases", [False, True])
@pytest.mark.parametrize("exponent", [0.0, 1.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_ials_half_steps_never_increase_the_implicit_loss(rng, method, with_biases, exponent, dtype):
    ratings, U, V, biases = _problem(rng, (60, 40, 500, 8), dtype, with_biases, implicit=True)
    options = dict(regularization=0.01, regularization_exponent=exponent, alpha=3.0)
    losses = [sum(latentmf.implicit_loss(ratings, U, V, biases=biases, **options))]
    for _ in range(4):
        for side in SIDES:
            latentmf.solve_rows(ratings, U, V, side=side, rule="implicit", method=method, biases=biases, **options)
            losses.append(sum(latentmf.implicit_loss(ratings, U, V, biases=biases, **options)))
    slack = 1e-5 if dtype == np.float32 else 1e-12
    assert all(b <= a * (1 + slack) for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.9 * losses[0]


def test_gibbs_draws_have_mean_a_inverse_b_and_covariance_a_inverse(rng):
    # Every user rated the same three items alike, so every row has the same A and b; their draws,
    # each from its own z, are a sample of N(A^{-1} b, A^{-1}).
    n_users, order = 20000, 3
    items = np.tile([0, 1, 2], n_users)
    users = np.repeat(np.arange(n_users), 3)
    values = np.tile([4.0, 2.0, 5.0], n_users)
    ratings = Ratings(users, items, values, n_users, 3)
    V = np.array([[1.0, 0.5], [0.2, -1.0], [0.7, 0.7]])
    U = np.zeros((n_users, 2))
    biases = (3.0, np.zeros(n_users), np.array([0.1, -0.2, 0.3]))
    prior = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]])
    shared_vector = prior @ np.array([0.5, -0.5, 0.2])
    noise = np.random.default_rng(7).standard_normal((n_users, order))
    latentmf.solve_rows(ratings, U, V, side="users", rule="explicit", precision=1.5, shared_matrix=prior,
                        shared_vector=shared_vector, biases=biases, noise=noise)
    A, b = _system(ratings, V, 0, rule="explicit", regularization=0.0, precision=1.5,
                   biases_of_other=biases[2], global_mean=biases[0])
    A, b = A + prior, b + shared_vector
    covariance = np.linalg.inv(A)
    draws = np.hstack([U, biases[1][:, None]])
    standard_error = np.sqrt(np.diag(covariance) / n_users)
    assert np.all(np.abs(draws.mean(axis=0) - covariance @ b) < 4 * standard_error)
    assert np.linalg.norm(np.cov(draws.T) - covariance) < 0.05 * np.linalg.norm(covariance)


# Determinism: the same bits for any thread count.

@per_level
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_biases", [False, True])
def test_results_do_not_depend_on_the_thread_count(rng, rule, method, dtype, with_biases):
    ratings, U, V, biases = _problem(rng, (3000, 400, 30000, 16), dtype, with_biases, implicit=rule == "implicit")
    results = []
    for threads in (1, 2, 3):
        U_t, V_t, biases_t = _copies(U, V, biases)
        for side in SIDES:
            latentmf.solve_rows(ratings, U_t, V_t, side=side, biases=biases_t, threads=threads,
                                **_options(rule, method))
        outputs = [U_t, V_t, np.array(latentmf.implicit_loss(ratings, U_t, V_t, 0.1, biases=biases_t, threads=threads)),
                   latentmf.gramian(U_t, bias_column=with_biases, threads=threads)]
        results.append(outputs + ([] if biases is None else [biases_t[1], biases_t[2]]))
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got, want)


# The Gramian and the iALS objective.

@per_level
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias_column", [False, True])
@pytest.mark.parametrize("shape", [(0, 3), (1, 1), (100, 5), (3000, 64)])
def test_gramian_matches_reference(rng, dtype, bias_column, shape):
    Y = rng.standard_normal(shape).astype(dtype)
    native = latentmf.gramian(Y, bias_column=bias_column)
    assert native.dtype == dtype
    np.testing.assert_array_equal(native, native.T)
    assert_solved_close(native, reference.gramian(Y, bias_column=bias_column), dtype)


@per_level
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_biases", [False, True])
@pytest.mark.parametrize("confidence", ["linear", "log"])
@pytest.mark.parametrize("exponent", [0.0, 0.7])
@pytest.mark.parametrize("threads", [1, 2])
def test_implicit_loss_matches_the_dense_definition(rng, dtype, with_biases, confidence, exponent, threads):
    ratings, U, V, biases = _problem(rng, (40, 30, 300, 6), dtype, with_biases, implicit=True)
    options = dict(regularization=0.3, regularization_exponent=exponent, alpha=2.0, confidence=confidence,
                   epsilon=0.5, biases=biases)
    native = latentmf.implicit_loss(ratings, U, V, threads=threads, **options)
    twin = reference.implicit_loss(ratings, U, V, **options)
    scale = max(abs(part) for part in twin)
    tolerance = TOLERANCE[np.dtype(dtype).type]
    np.testing.assert_allclose(native, twin, rtol=tolerance, atol=tolerance * scale)


def test_implicit_loss_takes_per_row_regularization(rng):
    ratings, U, V, _ = _problem(rng, (20, 10, 80, 4), np.float64, implicit=True)
    per_user, per_item = rng.uniform(0, 1, 20), rng.uniform(0, 1, 10)
    native = latentmf.implicit_loss(ratings, U, V, (per_user, per_item))
    twin = reference.implicit_loss(ratings, U, V, (per_user, per_item))
    np.testing.assert_allclose(native, twin, rtol=1e-12)


# Properties over random shapes: empty rows, F = 1, one rating.

@st.composite
def problems(draw):
    n_users, n_items = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    n_ratings = draw(st.integers(1, n_users * n_items))
    F = draw(st.integers(1, 20))
    seed = draw(st.integers(0, 2**32 - 1))
    return n_users, n_items, n_ratings, F, seed


@per_level
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(problem=problems(), rule=st.sampled_from(RULES), method=st.sampled_from(METHODS), with_biases=st.booleans(),
       side=st.sampled_from(SIDES), regularization=st.floats(0.05, 3.0), threads=st.sampled_from([1, 2]))
def test_solve_rows_matches_reference_on_random_shapes(problem, rule, method, with_biases, side, regularization,
                                                        threads):
    n_users, n_items, n_ratings, F, seed = problem
    rng = np.random.default_rng(seed)
    ratings, U, V, biases = _problem(rng, (n_users, n_items, n_ratings, F), np.float64, with_biases,
                                     implicit=rule == "implicit")
    native, twin = _solve_both(ratings, U, V, biases, threads, side=side,
                               **_options(rule, method, regularization=regularization))
    _assert_results_close(native, twin, np.float64)


# Bad input: refused by name, nothing changed.

class World:
    def __init__(self, rng):
        self.ratings = random_ratings(rng, 10, 8, 30)
        self.U, self.V = random_factors(rng, 10, 8, 3)
        self.biases = (3.0, np.zeros(10), np.zeros(8))

    def arrays(self):
        return [self.U, self.V, self.biases[1], self.biases[2]]


def _solve(w, **options):
    base = dict(side="users", rule="explicit")
    base.update(options)
    return latentmf.solve_rows(w.ratings, w.U, w.V, **base)


def _read_only(array):
    array = array.copy()
    array.flags.writeable = False
    return array


BAD = [
    ("side", lambda w: _solve(w, side="rows"), ValueError, "side"),
    ("rule", lambda w: _solve(w, rule="ratings"), ValueError, "rule"),
    ("method", lambda w: _solve(w, method="lu"), ValueError, "method"),
    ("confidence", lambda w: _solve(w, rule="implicit", confidence="sqrt"), ValueError, "confidence"),
    ("negative regularization", lambda w: _solve(w, regularization=-1.0), ValueError, "regularization"),
    ("nan regularization", lambda w: _solve(w, regularization=np.nan), ValueError, "regularization"),
    ("per-row regularization of the wrong length", lambda w: _solve(w, regularization=np.ones(3)), ValueError,
     "regularization"),
    ("negative per-row regularization", lambda w: _solve(w, regularization=-np.ones(10)), ValueError,
     "regularization"),
    ("exponent with per-row regularization", lambda w: _solve(w, regularization=np.ones(10),
                                                              regularization_exponent=1.0), ValueError,
     "regularization_exponent"),
    ("regularization that overflows", lambda w: _solve(w, regularization=1.0, regularization_exponent=1e4),
     ValueError, "regularization"),
    ("negative alpha", lambda w: _solve(w, rule="implicit", alpha=-1.0), ValueError, "alpha"),
    ("zero epsilon", lambda w: _solve(w, rule="implicit", epsilon=0.0), ValueError, "epsilon"),
    ("zero precision", lambda w: _solve(w, precision=0.0), ValueError, "precision"),
    ("zero cg_steps", lambda w: _solve(w, method="cg", cg_steps=0), ValueError, "cg_steps"),
    ("negative implicit values", lambda w: _solve(w, rule="implicit"), ValueError, "values"),
    ("noise with cg", lambda w: _solve(w, method="cg", noise=np.zeros((10, 3))), ValueError, "noise"),
    ("noise of the wrong shape", lambda w: _solve(w, noise=np.zeros((10, 4))), ValueError, "noise"),
    ("nan noise", lambda w: _solve(w, noise=np.full((10, 3), np.nan)), ValueError, "noise"),
    ("shared_matrix of the wrong shape", lambda w: _solve(w, shared_matrix=np.eye(4)), ValueError, "shared_matrix"),
    ("asymmetric shared_matrix", lambda w: _solve(w, shared_matrix=np.triu(np.ones((3, 3)))), ValueError,
     "shared_matrix"),
    ("nan shared_matrix", lambda w: _solve(w, shared_matrix=np.full((3, 3), np.nan)), ValueError, "shared_matrix"),
    ("shared_vector of the wrong shape", lambda w: _solve(w, shared_vector=np.ones(4)), ValueError, "shared_vector"),
    ("row_vectors of the wrong shape", lambda w: _solve(w, row_vectors=np.ones((2, 3))), ValueError, "row_vectors"),
    ("nan row_vectors", lambda w: _solve(w, row_vectors=np.full((w.U.shape[0], 3), np.nan)), ValueError,
     "row_vectors"),
    ("nan shared_vector", lambda w: _solve(w, shared_vector=np.array([0.0, np.nan, 0.0])), ValueError,
     "shared_vector"),
    ("nan in the other side", lambda w: latentmf.solve_rows(w.ratings, w.U, np.full_like(w.V, np.nan), side="users",
                                                            rule="explicit"), ValueError, "V"),
    ("nan starting point of cg", lambda w: latentmf.solve_rows(
        w.ratings, np.full_like(w.U, np.nan), w.V, side="users", rule="explicit", method="cg"), ValueError, "U"),
    ("read-only side", lambda w: latentmf.solve_rows(w.ratings, _read_only(w.U), w.V, side="users",
                                                     rule="explicit"), ValueError, "U"),
    ("U and V of different dtypes", lambda w: latentmf.solve_rows(w.ratings, w.U.astype(np.float32), w.V,
                                                                  side="users", rule="explicit"), TypeError, "U"),
    ("one bias vector of the wrong length", lambda w: _solve(w, biases=(3.0, np.zeros(9), np.zeros(8))), ValueError,
     "user_bias"),
    ("nan other-side bias", lambda w: _solve(w, biases=(3.0, np.zeros(10), np.full(8, np.nan))), ValueError,
     "item_bias"),
    ("U shared with the bias", lambda w: _solve(w, biases=(3.0, w.U.reshape(-1)[:10], np.zeros(8))), ValueError,
     "user_bias"),
    ("ratings beyond V", lambda w: latentmf.solve_rows(w.ratings, w.U, w.V[:5], side="users", rule="explicit"),
     ValueError, "n_items"),
    ("gramian of a vector", lambda w: latentmf.gramian(np.ones(3)), ValueError, "Y"),
    ("gramian of integers", lambda w: latentmf.gramian(np.ones((3, 3), dtype=np.int64)), TypeError, "Y"),
    ("implicit_loss with a negative value", lambda w: latentmf.implicit_loss(
        Ratings([0], [0], [-1.0], 10, 8), w.U, w.V), ValueError, "values"),
    ("implicit_loss with a bad per-row pair", lambda w: latentmf.implicit_loss(
        w.ratings, w.U, w.V, (np.ones(10), np.ones(3))), ValueError, "item_regularization"),
]


@pytest.mark.parametrize("what, call, error, match", BAD, ids=[case[0] for case in BAD])
def test_bad_input_is_refused_by_name_and_changes_nothing(rng, what, call, error, match):
    world = World(rng)
    if what == "negative implicit values":
        world.ratings = Ratings(world.ratings.users, world.ratings.items, world.ratings.values - 3.0, 10, 8)
    before = [a.copy() for a in world.arrays()]
    with pytest.raises(error, match=match):
        call(world)
    for got, want in zip(world.arrays(), before):
        np.testing.assert_array_equal(got, want)


def test_binding_checks_again_what_python_checks(rng):
    # The Python layer refuses these first; the native entry point must refuse them too.
    world = World(rng)
    index = world.ratings.native_index("float64")
    arguments = dict(index=index, side="users", U=world.U, V=world.V, rule="explicit", alpha=1.0,
                     confidence="linear", epsilon=1.0, precision=1.0, regularization=0.1,
                     regularization_exponent=1.0, row_regularization=None, global_mean=0.0, user_bias=None,
                     item_bias=None, shared_matrix=None, shared_vector=None, row_vectors=None, method="exact",
                     cg_steps=3, noise=None, threads=1)
    before = world.U.copy()
    for name, value, match in [("rule", "x", "rule"), ("side", "x", "side"), ("method", "x", "method"),
                               ("alpha", -1.0, "alpha"), ("epsilon", 0.0, "epsilon"), ("cg_steps", 0, "cg_steps"),
                               ("regularization", -1.0, "regularization"),
                               ("shared_matrix", np.triu(np.ones((3, 3))), "shared_matrix")]:
        with pytest.raises(ValueError, match=match):
            latentmf._core.solve_rows(**{**arguments, name: value, **({"method": "cg"} if name == "cg_steps" else {})})
    np.testing.assert_array_equal(world.U, before)
