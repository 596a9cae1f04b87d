"""Data factories, tolerances and paths shared by the tests."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import latentmf

#: Relative tolerance of native against reference, by dtype (STYLE.md).
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}

DTYPES = [np.float32, np.float64]
INDEX_DTYPES = [np.int32, np.int64]

#: MovieLens 100k, when the shared data folder is beside the repository (never committed here).
ML100K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"


def assert_close(native, reference, dtype, scale=None):
    """Equal to the dtype's tolerance, relative to the size of the reference values."""
    reference = np.asarray(reference, dtype=np.float64)
    tolerance = TOLERANCE[np.dtype(dtype).type]
    if scale is None:
        scale = max(1.0, float(np.max(np.abs(reference), initial=0.0)))
    np.testing.assert_allclose(np.asarray(native, dtype=np.float64), reference, rtol=tolerance,
                               atol=tolerance * scale)


def random_ratings(rng, n_users, n_items, n_ratings, index_dtype=np.int32, value_dtype=np.float64,
                   low=1.0, high=5.0):
    """Distinct (user, item) pairs in random order with uniform ratings; some rows may stay empty."""
    n_ratings = min(n_ratings, n_users * n_items)
    keys = rng.choice(n_users * n_items, size=n_ratings, replace=False)
    users = (keys // n_items).astype(index_dtype)
    items = (keys % n_items).astype(index_dtype)
    values = rng.uniform(low, high, size=n_ratings).astype(value_dtype)
    return latentmf.Ratings(users, items, values, n_users, n_items)


def random_factors(rng, n_users, n_items, n_factors, dtype=np.float64, scale=0.5):
    U = (scale * rng.standard_normal((n_users, n_factors))).astype(dtype)
    V = (scale * rng.standard_normal((n_items, n_factors))).astype(dtype)
    return U, V


def random_biases(rng, n_users, n_items, dtype=np.float64):
    return (3.5, (0.3 * rng.standard_normal(n_users)).astype(dtype),
            (0.3 * rng.standard_normal(n_items)).astype(dtype))


def low_rank_ratings(rng, n_users, n_items, rank, density, dtype=np.float64):
    """Noiseless ratings r = x_n . y_m of a known rank, observed on a random subset."""
    X = rng.standard_normal((n_users, rank))
    Y = rng.standard_normal((n_items, rank))
    observed = rng.random((n_users, n_items)) < density
    users, items = np.nonzero(observed)
    values = np.sum(X[users] * Y[items], axis=1).astype(dtype)
    return latentmf.Ratings(users.astype(np.int32), items.astype(np.int32), values, n_users, n_items)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


#: The kernel level chosen at import (the best this CPU runs, or what LATENTMF_ISA asked for), and
#: every level this CPU can run.
DEFAULT_ISA = latentmf.build_info()["isa"]
SUPPORTED_ISAS = latentmf.build_info()["isa_levels_supported"]


@pytest.fixture(scope="module", params=SUPPORTED_ISAS, ids=lambda level: f"isa={level}")
def isa(request):
    """Runs the module's tests once per kernel level this CPU supports (the tests of one level
    together), then restores the level chosen at import. Use with
    `pytestmark = pytest.mark.usefixtures("isa")`."""
    latentmf._core.select_isa(request.param)
    try:
        yield request.param
    finally:
        latentmf._core.select_isa(DEFAULT_ISA)


def _read_movielens(name):
    table = np.loadtxt(ML100K / name, dtype=np.int64)
    return latentmf.Ratings(table[:, 0] - 1, table[:, 1] - 1, table[:, 2].astype(np.float32), 943, 1682)


@pytest.fixture(scope="session")
def movielens_u1():
    """(u1.base, u1.test) of MovieLens 100k as Ratings, or a skip when the data is absent."""
    if not (ML100K / "u1.base").exists():
        pytest.skip(f"MovieLens 100k not found at {ML100K}")
    return _read_movielens("u1.base"), _read_movielens("u1.test")


class MemoryGrowth:
    """What `peak_memory_growth` measured: bytes by which the process's peak resident memory grew."""

    bytes = 0


def _status_bytes(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


@contextmanager
def peak_memory_growth():
    """Measures how far the process's peak resident memory rises inside the block: every allocation
    that is used counts, NumPy's and the native core's alike (tracemalloc sees only Python's).
    Linux only (the peak is reset through /proc/self/clear_refs); skips elsewhere."""
    clear = Path("/proc/self/clear_refs")
    if not clear.exists() or not os.access(clear, os.W_OK):
        pytest.skip("resetting the peak resident memory needs Linux's /proc/self/clear_refs")
    clear.write_text("5")
    start = _status_bytes("VmHWM")
    growth = MemoryGrowth()
    try:
        yield growth
    finally:
        growth.bytes = _status_bytes("VmHWM") - start
