"""What the benchmark scripts share: data sets, isolated runs with peak memory, tables, context.

Nothing here asserts anything; the scripts print what they measure.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import latentmf

#: MovieLens 100k, read from the shared data folder beside the repository when it is there (never
#: committed here).
ML100K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"

#: The data sets of the performance targets, as latentmf.datasets.synthetic's (n_users, n_items,
#: n_ratings, rank, noise, seed): MovieLens-shaped (9.0M train / 1.0M test after the split) ...
TEN_MILLION = (200_000, 20_000, 10_000_000, 16, 0.5, 0)
#: ... and Netflix-sized (90M train / 10M test).
NETFLIX = (480_189, 17_770, 100_000_000, 16, 0.5, 0)
#: The share of the ratings held out as the test set.
TEST_FRACTION = 0.1


def synthetic_split(shape: Sequence[float], data_dir: str | None) -> Path:
    """A folder with train.npz and test.npz of the synthetic set `shape` (see TEN_MILLION): `data_dir`
    when it already holds them, else a cache folder under the system's temporary directory, made
    once (in a child process, so that the generator's memory is not this process's)."""
    name = "latentmf-synthetic-" + "-".join(map(str, shape))
    folder = Path(data_dir) if data_dir else Path(tempfile.gettempdir()) / name
    if not (folder / "train.npz").exists():
        print(f"Generating {folder} with latentmf.datasets.synthetic{tuple(shape)} ...", flush=True)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            pool.apply(write_split, (tuple(shape), str(folder)))
    return folder


def write_split(shape: Sequence[float], folder: str) -> None:
    """synthetic(*shape) split at random (seeded) into TEST_FRACTION test and the rest training, the
    test ratings whose user or item has no training rating dropped, written as npz files."""
    n_users, n_items, n_ratings, rank, noise, seed = shape
    ratings = latentmf.datasets.synthetic(int(n_users), int(n_items), int(n_ratings), rank=int(rank), noise=noise,
                                          seed=int(seed))
    is_test = np.zeros(len(ratings), bool)
    is_test[np.random.default_rng(seed).permutation(len(ratings))[:int(TEST_FRACTION * len(ratings))]] = True
    train = {"user": ratings.users[~is_test], "item": ratings.items[~is_test], "rating": ratings.values[~is_test]}
    test = {"user": ratings.users[is_test], "item": ratings.items[is_test], "rating": ratings.values[is_test]}
    del ratings, is_test
    known = (np.bincount(train["user"], minlength=n_users)[test["user"]] > 0) & (
        np.bincount(train["item"], minlength=n_items)[test["item"]] > 0)
    test = {key: value[known] for key, value in test.items()}
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for name, arrays in (("test", test), ("train", train)):
        # Written under a temporary name and renamed, train.npz (what a run looks for) last: an
        # interrupted run leaves no half set.
        np.savez(path / f"{name}.partial.npz", **arrays, n_users=n_users, n_items=n_items)
        os.replace(path / f"{name}.partial.npz", path / f"{name}.npz")


def load_split(folder: Path) -> tuple[latentmf.Ratings, latentmf.Ratings]:
    """(train, test) from write_split's npz files, as the int32/int32/float32 arrays it wrote (no copy)."""
    train, test = np.load(folder / "train.npz"), np.load(folder / "test.npz")
    n_users, n_items = int(train["n_users"]), int(train["n_items"])
    return (latentmf.Ratings(train["user"], train["item"], train["rating"], n_users, n_items),
            latentmf.Ratings(test["user"], test["item"], test["rating"], n_users, n_items))


def load_movielens_100k() -> latentmf.Ratings | None:
    path = ML100K / "u.data"
    if not path.exists():
        print(f"Skipping MovieLens 100k: {path} is absent.")
        return None
    table = np.loadtxt(path, dtype=np.int64, usecols=(0, 1, 2))
    return latentmf.Ratings((table[:, 0] - 1).astype(np.int32), (table[:, 1] - 1).astype(np.int32),
                            table[:, 2].astype(np.float32))


@dataclass
class RankingValidation:
    """The validation protocol of the implicit-feedback models' tuning scripts, on u1.base only
    (never u1.test): 20% of each user's interactions held out, and the lists of `users`, as many
    users drawn at random as u1.test has (459), so that coverage compares with the benchmark's."""
    base: latentmf.Ratings
    fit_part: latentmf.Ratings
    validation: latentmf.Ratings
    users: np.ndarray

    def scores(self, lists: Any) -> dict[str, float]:
        """NDCG@10, P@10 and coverage of the users' top-10 lists."""
        metrics = latentmf.metrics
        return {"ndcg@10": metrics.ndcg_at_k(lists, self.validation, 10, users=self.users),
                "p@10": metrics.precision_at_k(lists, self.validation, 10, users=self.users),
                "coverage": metrics.coverage(lists, self.base.n_items)}


def ranking_validation(users: int = 459) -> RankingValidation | None:
    """The split of RankingValidation, or None (with a message) without MovieLens 100k."""
    if not (ML100K / "u1.base").exists():
        print(f"MovieLens 100k is not at {ML100K}: nothing to tune on.")
        return None
    table = np.loadtxt(ML100K / "u1.base", dtype=np.int64, usecols=(0, 1))
    base = latentmf.Ratings(table[:, 0] - 1, table[:, 1] - 1, np.ones(len(table), np.float32), 943, 1682)
    fit_part, validation = base.split_by_user(0.2, seed=0)
    chosen = np.random.default_rng(0).choice(np.unique(validation.users), size=users, replace=False)
    return RankingValidation(base, fit_part, validation, chosen)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far. On Linux it is VmHWM, the peak of this
    process's own memory: getrusage's ru_maxrss carries the parent's peak at the fork into a child
    (so every fresh process of a script that had loaded a data set reported the script's peak)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def isolated(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """function(*args) in a fresh process, so that its "peak_rss_mib" is its own, whole-process peak."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measured, (function, args))


def _measured(function: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> dict[str, Any]:
    result = function(*args)
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def best_seconds(call: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A title, then columns right-aligned to their widest cell."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *cells)]
    print(f"\n{title}")
    for row in (list(header), ["-" * width for width in widths], *cells):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths)))
    sys.stdout.flush()


def print_context() -> None:
    """What the numbers depend on: the build, the machine and NumPy."""
    info = {"latentmf": latentmf.__version__}
    for key, value in latentmf.build_info().items():
        info[key] = ", ".join(value) if isinstance(value, list) else str(value)
    info.update(numpy=np.__version__, python=platform.python_version(), platform=platform.platform(),
                cpus=str(os.cpu_count()))
    width = max(map(len, info))
    print("Machine and build")
    for key, value in info.items():
        print(f"  {key.ljust(width)}  {value}")
    sys.stdout.flush()


def threads_list(text: str) -> list[int]:
    return sorted({int(part) for part in text.split(",")})
