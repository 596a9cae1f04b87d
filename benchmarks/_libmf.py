"""LIBMF built with its own AVX and OpenMP options, trained in memory through its C API (ctypes).

The `libmf` package on PyPI compiles LIBMF without its SSE/AVX kernels and without OpenMP, about
half as fast as LIBMF built as its authors recommend. The benchmarks therefore take LIBMF's
source (src_cpp/mf.cpp and mf.h) from that package's sdist, compile it once with the flags of
LIBMF's Makefile and its AVX choice, cache the shared library, and call mf_train on the same
arrays latentmf gets, as an array of LIBMF's mf_node records built before any timing.

Nothing of LIBMF is kept in this repository; without a compiler or the sdist the LIBMF rows are
skipped with a printed reason.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: The PyPI package whose sdist carries LIBMF's C++ source.
SDIST_VERSION = "0.9.2"
#: Where the sdist and the compiled library are kept between runs.
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "latentmf-bench"
#: LIBMF's Makefile: CXXFLAGS = -O3 -pthread -std=c++0x -march=native; its AVX choice sets
#: DFLAG = -DUSEAVX and adds -mavx; its OpenMP choice adds -DUSEOMP and -fopenmp. (Its -Wall only
#: warns.) -march=native gives LIBMF every instruction this machine has, as its own build does.
MAKEFILE_FLAGS = ["-O3", "-pthread", "-std=c++0x", "-march=native", "-DUSEAVX", "-mavx", "-DUSEOMP", "-fopenmp"]


# The C structures of mf.h (the sdist's version): field order and types must match exactly, or
# ctypes passes garbage without complaint. Libmf() checks them against mf_get_default_param().
class Node(ctypes.Structure):
    _fields_ = [("u", ctypes.c_int), ("v", ctypes.c_int), ("r", ctypes.c_float)]


class Problem(ctypes.Structure):
    _fields_ = [("m", ctypes.c_int), ("n", ctypes.c_int), ("nnz", ctypes.c_longlong), ("R", ctypes.POINTER(Node))]


class Parameter(ctypes.Structure):
    _fields_ = [("fun", ctypes.c_int), ("k", ctypes.c_int), ("nr_threads", ctypes.c_int), ("nr_bins", ctypes.c_int),
                ("nr_iters", ctypes.c_int), ("lambda_p1", ctypes.c_float), ("lambda_p2", ctypes.c_float),
                ("lambda_q1", ctypes.c_float), ("lambda_q2", ctypes.c_float), ("eta", ctypes.c_float),
                ("do_nmf", ctypes.c_bool), ("quiet", ctypes.c_bool), ("copy_data", ctypes.c_bool)]


class Model(ctypes.Structure):
    _fields_ = [("fun", ctypes.c_int), ("m", ctypes.c_int), ("n", ctypes.c_int), ("k", ctypes.c_int),
                ("b", ctypes.c_float), ("P", ctypes.POINTER(ctypes.c_float)), ("Q", ctypes.POINTER(ctypes.c_float))]


#: mf_get_default_param() of this LIBMF version, as mf.cpp sets it: read back through Parameter,
#: it proves the layout (a shifted field would show another value).
DEFAULTS = {"fun": 0, "k": 8, "nr_threads": 12, "nr_bins": 26, "nr_iters": 20, "lambda_p1": 0.0, "lambda_p2": 0.1,
            "lambda_q1": 0.0, "lambda_q2": 0.1, "eta": 0.1, "do_nmf": False, "quiet": False, "copy_data": True}

NODE_DTYPE = np.dtype([("u", np.int32), ("v", np.int32), ("r", np.float32)])


class Unavailable(Exception):
    """LIBMF cannot be had here (no compiler, no sdist): the message says why."""


def _sdist(cache: Path) -> Path:
    folder = cache / "sdist"
    found = sorted(folder.glob(f"libmf-{SDIST_VERSION}.tar.gz"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", f"libmf=={SDIST_VERSION}", "--no-binary", ":all:",
               "--no-deps", "--quiet", "-d", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True)
    found = sorted(folder.glob(f"libmf-{SDIST_VERSION}.tar.gz"))
    if result.returncode != 0 or not found:
        raise Unavailable(f"pip could not download the libmf=={SDIST_VERSION} sdist: "
                          f"{(result.stderr or result.stdout).strip().splitlines()[-1:] or 'no output'}")
    return found[0]


def _extract_source(sdist: Path, into: Path) -> Path:
    """src_cpp/mf.cpp and mf.h of the sdist, written into `into`; returns mf.cpp's path."""
    with tarfile.open(sdist) as archive:
        for name in ("mf.cpp", "mf.h"):
            member = f"libmf-{SDIST_VERSION}/src_cpp/{name}"
            try:
                source = archive.extractfile(member)
            except KeyError:
                source = None
            if source is None:
                raise Unavailable(f"{sdist.name} holds no {member}: its layout changed")
            (into / name).write_bytes(source.read())
    return into / "mf.cpp"


def _compiler() -> str:
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        raise Unavailable("no C++ compiler found (set CXX)")
    return compiler


def _build(cache: Path) -> Path:
    """The cached shared library, compiled first if this compiler and these flags have none yet."""
    compiler = _compiler()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    key = hashlib.sha256("\n".join([SDIST_VERSION, compiler, version, *MAKEFILE_FLAGS]).encode()).hexdigest()[:12]
    library = cache / f"libmf-avx-{SDIST_VERSION}-{key}.so"
    if library.exists():
        return library
    sdist = _sdist(cache)
    print(f"Compiling LIBMF from {sdist.name} with {' '.join(MAKEFILE_FLAGS)} ...", flush=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        source = _extract_source(sdist, Path(work))
        built = Path(work) / library.name
        result = subprocess.run([compiler, *MAKEFILE_FLAGS, "-shared", "-fPIC", "-o", str(built), str(source)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise Unavailable(f"{compiler} could not compile LIBMF: {result.stderr.strip()[-2000:]}")
        # A rename is atomic: a concurrent run sees the whole library or none.
        os.replace(built, library)
    return library


class Libmf:
    """LIBMF's mf_train, mf_predict and mf_destroy_model on in-memory ratings."""

    def __init__(self, library: Path) -> None:
        self.path = library
        lib = ctypes.CDLL(str(library))
        lib.mf_get_default_param.restype = Parameter
        lib.mf_get_default_param.argtypes = []
        lib.mf_train.restype = ctypes.POINTER(Model)
        lib.mf_train.argtypes = [ctypes.POINTER(Problem), Parameter]
        lib.mf_predict.restype = ctypes.c_float
        lib.mf_predict.argtypes = [ctypes.POINTER(Model), ctypes.c_int, ctypes.c_int]
        lib.mf_destroy_model.restype = None
        lib.mf_destroy_model.argtypes = [ctypes.POINTER(ctypes.POINTER(Model))]
        lib.calc_rmse.restype = ctypes.c_double
        lib.calc_rmse.argtypes = [ctypes.POINTER(Problem), ctypes.POINTER(Model)]
        lib.mf_train_with_validation.restype = ctypes.POINTER(Model)
        lib.mf_train_with_validation.argtypes = [ctypes.POINTER(Problem), ctypes.POINTER(Problem), Parameter]
        self._lib = lib
        defaults = lib.mf_get_default_param()
        read = {name: getattr(defaults, name) for name, _ in Parameter._fields_}
        if any(not np.isclose(read[name], value) for name, value in DEFAULTS.items()):
            raise Unavailable(f"{library.name}: mf_parameter does not have the layout this script expects: "
                              f"mf_get_default_param() reads as {read}")

    def parameter(self, *, factors: int, threads: int, regularization: float, learning_rate: float,
                  iterations: int) -> Parameter:
        """LIBMF's own defaults (squared loss, its number of bins) with these settings, quiet, no L1, no
        NMF, and training on the caller's nodes without a copy."""
        p = self._lib.mf_get_default_param()
        p.k, p.nr_threads, p.nr_iters, p.eta = factors, threads, iterations, learning_rate
        p.lambda_p1 = p.lambda_q1 = 0.0
        p.lambda_p2 = p.lambda_q2 = regularization
        p.do_nmf, p.quiet, p.copy_data = False, True, False
        p.nr_bins = max(p.nr_bins, 2 * threads + 1)
        return p

    def train(self, problem: "Nodes", parameter: Parameter) -> Any:
        """mf_train on `problem`, reset to the input order first (without copy_data, LIBMF trains on
        the caller's nodes and leaves them in its own order); returns (seconds, model)."""
        problem.reset()
        start = time.perf_counter()
        model = self._lib.mf_train(ctypes.byref(problem.struct), parameter)
        seconds = time.perf_counter() - start
        if not model:
            raise RuntimeError("LIBMF's mf_train rejected its parameters (see its message above)")
        return seconds, model

    def validation_rmse(self, problem: "Nodes", test: "Nodes", parameter: Parameter) -> list[float]:
        """The test RMSE after each iteration, from the table mf_train_with_validation prints when
        not quiet (LIBMF computes it between its iterations; it has no other way to report it)."""
        problem.reset()
        parameter.quiet = False
        with tempfile.TemporaryFile() as table:
            sys.stdout.flush()
            saved = os.dup(1)
            os.dup2(table.fileno(), 1)
            try:
                model = self._lib.mf_train_with_validation(ctypes.byref(problem.struct), ctypes.byref(test.struct),
                                                           parameter)
                self._libc_flush()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
            table.seek(0)
            lines = table.read().decode().splitlines()
        if not model:
            raise RuntimeError("LIBMF's mf_train_with_validation rejected its parameters")
        self.destroy(model)
        # Rows "iter tr_rmse va_rmse obj", after a header.
        return [float(line.split()[2]) for line in lines if line.split() and line.split()[0].isdigit()]

    def _libc_flush(self) -> None:
        """Flushes the C standard output, where LIBMF's table waits (std::cout flushes with it)."""
        ctypes.CDLL(None).fflush(None)

    def rmse(self, model: Any, test: "Nodes", threads: int | None = None) -> float:
        """The RMSE of mf_predict on `test`, by LIBMF's calc_rmse, on `threads` OpenMP threads (it
        asks for none: OpenMP's default, one per processor, unless given)."""
        if threads is not None:
            ctypes.CDLL("libgomp.so.1").omp_set_num_threads(threads)
        return float(self._lib.calc_rmse(ctypes.byref(test.struct), model))

    def predict(self, model: Any, user: int, item: int) -> float:
        return float(self._lib.mf_predict(model, user, item))

    def destroy(self, model: Any) -> None:
        self._lib.mf_destroy_model(ctypes.byref(model))


class Nodes:
    """Ratings as LIBMF's mf_problem: an array of mf_node records (made once, outside any timing)."""

    def __init__(self, ratings: Any) -> None:
        self._ratings = ratings
        self.array = np.empty(len(ratings), NODE_DTYPE)
        self.reset()
        self.struct = Problem(int(ratings.n_users), int(ratings.n_items), len(ratings),
                              self.array.ctypes.data_as(ctypes.POINTER(Node)))

    def reset(self) -> None:
        self.array["u"], self.array["v"], self.array["r"] = (self._ratings.users, self._ratings.items,
                                                             self._ratings.values)


def load(cache: Path = CACHE) -> Libmf | None:
    """LIBMF-AVX, compiled on first use; None, with the reason printed, when it cannot be had."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        return Libmf(_build(cache))
    except (Unavailable, OSError) as error:
        print(f"Skipping LIBMF-AVX: {error}", flush=True)
        return None
