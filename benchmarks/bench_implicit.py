"""Top-N quality and speed of latentmf's implicit-feedback models against the peers, in one run.

1. Quality on MovieLens 100k, split u1 (read from ../shared/data, skipped when absent): relevant =
   the items a user has in u1.test, whatever the rating; the user's u1.base items left out; k = 10;
   the 459 users of u1.test. P@10, R@10, NDCG@10 and coverage for latentmf's models with their
   defaults (the rating model ranks by predicted rating), the most popular items, and, when
   installed, implicit's ALS (factors 64, 15 iterations, the best of regularization {0.05, 0.1} x
   alpha {1, 10, 40}, as its users tune it) and BPR (factors 64), and LightFM WARP (64 components,
   30 epochs).
2. Speed on --interactions interactions (10M by default: latentmf.datasets.synthetic(200000,
   20000, 10_000_000); a smaller count keeps 50 interactions per user and 500 per item), every
   rating an interaction, F = 64, on --threads threads: one iALS iteration (both half-steps) of
   latentmf (conjugate gradient, the default; and the exact solve) against implicit's ALS (its
   conjugate gradient), and one BPR epoch against implicit's BPR (each as its own training loop
   times an epoch, and the whole call that runs one), measured in the same run, alternating
   (A B A B ...) for --rounds rounds: times per round, ns per interaction, and the median of the
   per-round ratios. The re-partition of the items that starts each latentmf BPR epoch (the
   grid's re-bucketing, part of its epoch) is timed on its own and printed as a share of the
   epoch.

    python benchmarks/bench_implicit.py [--rounds 3] [--threads 2] [--interactions 10000000]
                                        [--skip-quality] [--skip-speed] [--skip-ials]
"""

from __future__ import annotations

import os

# implicit's ALS as its users run it: one BLAS thread (it warns otherwise), set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

import latentmf  # noqa: E402
from latentmf import _core  # noqa: E402
from _common import ML100K, print_context, print_table  # noqa: E402
from latentmf import metrics  # noqa: E402

K = 10
FACTORS = 64
#: The contestant that times the re-partition of the items alone.
REBUCKETING = "latentmf BPR re-bucketing (in its epoch)"


def read_u1(name: str, values: bool = True) -> latentmf.Ratings:
    table = np.loadtxt(ML100K / name, dtype=np.int64, usecols=(0, 1, 2))
    strengths = table[:, 2].astype(np.float32) if values else np.ones(len(table), dtype=np.float32)
    return latentmf.Ratings(table[:, 0] - 1, table[:, 1] - 1, strengths, 943, 1682)


def scores_of(lists: Any, test: latentmf.Ratings, train: latentmf.Ratings, users: np.ndarray) -> list[str]:
    """P@10, R@10, NDCG@10 and coverage of each user's first 10 items that are not in train."""
    items = np.ma.filled(lists[0] if isinstance(lists, tuple) else lists, -1)
    unseen = _first_unseen(np.asarray(items), train, users)
    found = [metrics.precision_at_k(unseen, test, K, users=users), metrics.recall_at_k(unseen, test, K, users=users),
             metrics.ndcg_at_k(unseen, test, K, users=users), metrics.coverage(unseen, train.n_items)]
    return [f"{value:.3f}" for value in found]


def _first_unseen(items: np.ndarray, train: latentmf.Ratings, users: np.ndarray) -> np.ndarray:
    """Each row's first K items (>= 0) that its user does not have in train, -1 after them."""
    offsets, seen = train.items_by_user()
    unseen = np.full((len(users), K), -1, dtype=np.int64)
    for row, (user, candidates) in enumerate(zip(users, items)):
        own = set(seen[offsets[user]:offsets[user + 1]].tolist())
        kept = [item for item in candidates.tolist() if item >= 0 and item not in own][:K]
        unseen[row, :len(kept)] = kept
    return unseen


def quality() -> None:
    if not (ML100K / "u1.base").exists():
        print(f"\nSkipping the quality table: MovieLens 100k is not at {ML100K}.")
        return
    train, test = read_u1("u1.base"), read_u1("u1.test")
    interactions = read_u1("u1.base", values=False)
    users = np.unique(test.users)
    rows = []

    def measure(name: str, lists: Callable[[], Any]) -> None:
        start = time.perf_counter()
        result = lists()
        rows.append([name, *scores_of(result, test, train, users), f"{time.perf_counter() - start:.1f}"])
        print(f"  {name}: done", flush=True)

    measure("latentmf MatrixFactorization() (ranks by predicted rating)",
            lambda: latentmf.MatrixFactorization().fit(train).recommend_all(users, k=K))
    measure("latentmf ImplicitMatrixFactorization()",
            lambda: latentmf.ImplicitMatrixFactorization().fit(interactions).recommend_all(users, k=K))
    measure("latentmf BayesianPersonalizedRanking()",
            lambda: latentmf.BayesianPersonalizedRanking().fit(interactions).recommend_all(users, k=K))
    popular = np.argsort(-np.bincount(train.items, minlength=train.n_items), kind="stable")
    measure("most popular", lambda: np.tile(popular, (len(users), 1)))
    peers = _peer_quality(interactions, users)
    for name, lists in peers:
        measure(name, lists)
    print_table("Top-10 on MovieLens 100k u1 (relevant: every u1.test item; u1.base items left out; 459 users)",
                ["system", "P@10", "R@10", "NDCG@10", "coverage", "seconds"], rows)


def _csr(ratings: latentmf.Ratings) -> Any:
    from scipy.sparse import csr_matrix

    return csr_matrix((ratings.values.astype(np.float32), (ratings.users, ratings.items)),
                      shape=(ratings.n_users, ratings.n_items))


def _peer_quality(interactions: latentmf.Ratings, users: np.ndarray) -> list[tuple[str, Callable[[], Any]]]:
    peers: list[tuple[str, Callable[[], Any]]] = []
    try:
        import implicit  # noqa: F401
    except ImportError:
        print("  (implicit is not installed: its rows are left out)")
    else:
        peers.append(("implicit ALS, factors 64, best of 6 settings", lambda: _implicit_als_best(interactions, users)))
        peers.append((f"implicit BPR, factors {FACTORS}", lambda: _implicit_lists(_implicit_bpr(), interactions, users)))
    try:
        import lightfm  # noqa: F401
    except ImportError:
        print("  (lightfm is not installed: its row is left out)")
    else:
        peers.append(("LightFM WARP, 64 components, 30 epochs", lambda: _lightfm_lists(interactions, users)))
    return peers


def _implicit_als(regularization: float, alpha: float, threads: int = 0, iterations: int = 15) -> Any:
    from implicit.cpu.als import AlternatingLeastSquares

    return AlternatingLeastSquares(factors=FACTORS, regularization=regularization, alpha=alpha,
                                   iterations=iterations, random_state=0, num_threads=threads)


def _implicit_bpr(threads: int = 0, iterations: int = 100) -> Any:
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    return BayesianPersonalizedRanking(factors=FACTORS, iterations=iterations, random_state=0, num_threads=threads)


def _implicit_lists(model: Any, interactions: latentmf.Ratings, users: np.ndarray) -> np.ndarray:
    matrix = _csr(interactions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(matrix, show_progress=False)
    ids, _ = model.recommend(users, matrix[users], N=K, filter_already_liked_items=True)
    return ids


def _implicit_als_best(interactions: latentmf.Ratings, users: np.ndarray) -> np.ndarray:
    """The best NDCG@10 of the grid, scored on u1.test as the issue's table was made."""
    test = read_u1("u1.test")
    best: tuple[float, Any] = (-1.0, None)
    for regularization in (0.05, 0.1):
        for alpha in (1.0, 10.0, 40.0):
            lists = _implicit_lists(_implicit_als(regularization, alpha), interactions, users)
            ndcg = metrics.ndcg_at_k(lists, test, K, users=users)
            best = max(best, (ndcg, lists), key=lambda pair: pair[0])
    return best[1]


def _lightfm_lists(interactions: latentmf.Ratings, users: np.ndarray) -> np.ndarray:
    from lightfm import LightFM

    model = LightFM(no_components=64, loss="warp", random_state=0)
    model.fit(_csr(interactions).tocoo(), epochs=30, num_threads=2)
    offsets, seen = interactions.items_by_user()
    lists = []
    for user in users:
        scores = model.predict(int(user), np.arange(interactions.n_items), num_threads=2)
        scores[seen[offsets[user]:offsets[user + 1]]] = -np.inf
        lists.append(np.argsort(-scores, kind="stable")[:K])
    return np.array(lists)


def synthetic_interactions(size: int) -> latentmf.Ratings:
    """`size` interactions of size / 50 users on size / 500 items (10M: the 200,000 x 20,000 set),
    generated once into a cache file."""
    n_users, n_items = size // 50, size // 500
    path = Path(tempfile.gettempdir()) / f"latentmf-implicit-{size}.npz"
    if not path.exists():
        print(f"Generating {size} interactions into {path} ...", flush=True)
        ratings = latentmf.datasets.synthetic(n_users, n_items, size, seed=0)
        np.savez(path, users=ratings.users, items=ratings.items)
    arrays = np.load(path)
    return latentmf.Ratings(arrays["users"], arrays["items"], np.ones(len(arrays["users"]), dtype=np.float32),
                            n_users, n_items)


def interleaved(contestants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each contestant's seconds in each round, running them in turn (A B A B ...)."""
    times: dict[str, list[float]] = {name: [] for name in contestants}
    for _ in range(rounds):
        for name, run in contestants.items():
            times[name].append(run())
    return times


def speed(rounds: int, threads: int, size: int, ials: bool) -> None:
    data = synthetic_interactions(size)
    matrix = _csr(data)
    nnz = len(data)
    contestants: dict[str, Callable[[], float]] = {}
    #: The peer each latentmf contestant is measured against.
    peers: dict[str, str] = {}
    for solver in ("cg", "exact") if ials else ():
        model = latentmf.ImplicitMatrixFactorization(FACTORS, epochs=1, solver=solver, threads=threads)
        model.fit(data)  # builds the native orderings once, as repeated fits on one Ratings share them

        def iteration(model: Any = model) -> float:
            start = time.perf_counter()
            model.partial_fit(epochs=1)
            return time.perf_counter() - start

        contestants[f"latentmf iALS ({solver})"] = iteration
        peers[f"latentmf iALS ({solver})"] = "implicit ALS (cg)"
    contestants.update(_bpr_contestants(data, threads))
    peers.update({"latentmf BPR epoch": "implicit BPR epoch", "latentmf BPR call": "implicit BPR call"})
    try:
        import implicit  # noqa: F401
    except ImportError:
        print("\n(implicit is not installed: latentmf's iteration times alone)")
    else:
        if ials:
            contestants["implicit ALS (cg)"] = _implicit_als_contestant(matrix, threads)
        contestants.update(_implicit_bpr_contestants(matrix, threads))
    times = interleaved(contestants, rounds)
    rows = []
    for name, seconds in times.items():
        baseline = times.get(peers.get(name, ""))
        ratio = "" if baseline is None else f"{statistics.median(s / b for s, b in zip(seconds, baseline)):.3f}"
        rows.append([name, " ".join(f"{s:.3f}" for s in seconds), f"{statistics.median(seconds) / nnz * 1e9:.1f}",
                     peers.get(name, ""), ratio])
    print_table(f"One iteration (epoch) on {nnz:,} interactions of {data.n_users:,} users and {data.n_items:,} items, "
                f"F = {FACTORS}, {threads} threads, {rounds} rounds interleaved",
                ["system", "seconds per round", "ns per nonzero (median)", "against", "time / its (median ratio)"],
                rows)
    rebucketing = times[REBUCKETING]
    share = statistics.median(b / e for b, e in zip(rebucketing, times["latentmf BPR epoch"]))
    print(f"\nThe items' re-partition per BPR epoch (re-bucketing the grid): {statistics.median(rebucketing):.3f} s "
          f"(median), {share:.1%} of latentmf's BPR epoch (median of the per-round shares).")


def _implicit_als_contestant(matrix: Any, threads: int) -> Callable[[], float]:
    """One iteration of implicit's ALS: the whole fit(iterations=1) call."""
    peer = _implicit_als(0.1, 1.0, threads=threads, iterations=1)

    def peer_iteration() -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            peer.fit(matrix, show_progress=False)
            return time.perf_counter() - start

    return peer_iteration


def _bpr_contestants(data: latentmf.Ratings, threads: int) -> dict[str, Callable[[], float]]:
    """latentmf's BPR epoch as the training loop times it (history_'s seconds: the re-bucketing,
    the B sub-epochs and the fall-back copy of the factors), the whole partial_fit call around it
    (which also copies the positives into a new grid), and the re-bucketing alone."""
    model = latentmf.BayesianPersonalizedRanking(FACTORS, epochs=1, threads=threads)
    model.fit(data)
    calls: list[float] = []

    def epoch() -> float:
        start = time.perf_counter()
        model.partial_fit(epochs=1)
        calls.append(time.perf_counter() - start)
        return model.history_["seconds"][-1]

    grid = _core.BprGrid(*data.items_by_user(), data.n_items, model.blocks, model.seed)
    epochs = iter(range(1 << 30))

    def bucket() -> float:
        start = time.perf_counter()
        grid.bucket(next(epochs), threads)
        return time.perf_counter() - start

    return {"latentmf BPR epoch": epoch, "latentmf BPR call": lambda: calls[-1], REBUCKETING: bucket}


def _implicit_bpr_contestants(matrix: Any, threads: int) -> dict[str, Callable[[], float]]:
    """implicit's BPR epoch as its fit times it (its callback's elapsed seconds: the sampling and the
    updates), and the whole fit(iterations=1) call around it."""
    peer = _implicit_bpr(threads=threads, iterations=1)
    calls: list[float] = []

    def epoch() -> float:
        elapsed: list[float] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            peer.fit(matrix, show_progress=False, callback=lambda _, seconds, *rest: elapsed.append(seconds))
            calls.append(time.perf_counter() - start)
        return elapsed[0]

    return {"implicit BPR epoch": epoch, "implicit BPR call": lambda: calls[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-ials", action="store_true", help="time the BPR epochs only")
    parser.add_argument("--interactions", type=int, default=10_000_000,
                        help="interactions of the speed section's synthetic set (default: %(default)s)")
    args = parser.parse_args()
    print_context()
    if not args.skip_quality:
        quality()
    if not args.skip_speed:
        speed(args.rounds, args.threads, args.interactions, not args.skip_ials)


if __name__ == "__main__":
    main()
