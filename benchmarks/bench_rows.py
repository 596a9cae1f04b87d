"""Speed of the row solver (latentmf.solve_rows) for iALS, against implicit's ALS, in one run.

On the 10M-interaction set of issue 12 (latentmf.datasets.synthetic(200000, 20000, 10_000_000,
seed=0), every rating an interaction of strength 1), float32, it prints:

1. ns per nonzero per iteration (both half-steps, each with its Gramian, as the estimator runs
   them) for the exact and the conjugate-gradient paths at F = 32, 64, 128 on 1 and 2 threads:
   the median of --rounds rounds, the configurations interleaved within each round;
2. latentmf's iALS iteration (CG, 3 steps) against implicit's ALS iteration (its CG, 3 steps;
   implicit.cpu.als.AlternatingLeastSquares, the same confidence 1 + alpha and regularization) at
   F = --factors on --threads threads, A B A B for --rounds rounds, with the ratio of each round
   and their median; also latentmf's exact path in the same rounds. implicit is timed on its two
   solver calls (what one iteration of its fit runs) and on fit(iterations=1) (which adds the
   transpose and the set-up a fit pays). Skipped when implicit is not installed.

The machine is shared: compare numbers from the same run only.

    python benchmarks/bench_rows.py                      # everything (a few minutes)
    python benchmarks/bench_rows.py --quick              # 1M interactions, F = 64 only
"""

from __future__ import annotations

import os

# implicit asks for a single-threaded BLAS (its threads are its own); it must be set before NumPy
# loads OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import importlib.util
import statistics
import time
from typing import Any, Callable

import numpy as np

import latentmf
from _common import print_context, print_table

#: Confidence c = 1 + ALPHA r for latentmf; implicit takes the confidence itself, 1 + ALPHA here.
ALPHA = 9.0
REGULARIZATION = 0.05


def interactions(n_users: int, n_items: int, n_ratings: int) -> latentmf.Ratings:
    """The synthetic ratings as interactions of strength 1, sorted by (user, item) once, as a fit
    would: both native orderings then visit the other side's rows in increasing order."""
    ratings = latentmf.datasets.synthetic(n_users, n_items, n_ratings, seed=0)
    order = np.argsort(ratings.users.astype(np.int64) * n_items + ratings.items, kind="stable")
    return latentmf.Ratings(ratings.users[order], ratings.items[order], np.ones(len(ratings), np.float32),
                            n_users, n_items)


def factors(ratings: latentmf.Ratings, n_factors: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return ((0.01 * rng.random((ratings.n_users, n_factors))).astype(np.float32),
            (0.01 * rng.random((ratings.n_items, n_factors))).astype(np.float32))


def latentmf_iteration(ratings: latentmf.Ratings, n_factors: int, method: str, threads: int) -> Callable[[], None]:
    U, V = factors(ratings, n_factors)
    options = dict(rule="implicit", alpha=ALPHA, regularization=REGULARIZATION, method=method, threads=threads)

    def iteration() -> None:
        latentmf.solve_rows(ratings, U, V, side="users", **options)
        latentmf.solve_rows(ratings, U, V, side="items", **options)

    return iteration


def implicit_iterations(ratings: latentmf.Ratings, n_factors: int, threads: int) -> dict[str, Callable[[], None]]:
    """implicit's ALS (CG, 3 steps): its two solver calls, and a fit of one iteration."""
    import scipy.sparse
    from implicit.cpu.als import AlternatingLeastSquares

    confidence = scipy.sparse.csr_matrix((np.full(len(ratings), 1.0 + ALPHA, np.float32),
                                          (ratings.users, ratings.items)), shape=(ratings.n_users, ratings.n_items))
    transposed = confidence.T.tocsr()
    model = AlternatingLeastSquares(factors=n_factors, regularization=REGULARIZATION, iterations=1, use_cg=True,
                                    num_threads=threads, random_state=0)
    model.fit(confidence, show_progress=False)

    def solver_calls() -> None:
        model.solver(confidence, model.user_factors, model.item_factors, REGULARIZATION, num_threads=threads)
        model.solver(transposed, model.item_factors, model.user_factors, REGULARIZATION, num_threads=threads)

    def fit() -> None:
        model.fit(confidence, show_progress=False)

    return {"implicit ALS (CG), two solver calls": solver_calls, "implicit ALS (CG), fit(iterations=1)": fit}


def interleaved(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each call in every round, the calls taking turns within a round."""
    for call in calls.values():
        call()  # builds the native orderings, warms the caches
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M interactions, F = 64 only")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of interleaved measurements (>= 3)")
    parser.add_argument("--factors", type=int, default=64, help="F of the comparison with implicit")
    parser.add_argument("--threads", type=int, default=2, help="threads of the comparison with implicit")
    args = parser.parse_args()
    print_context()

    shape = (20_000, 2_000, 1_000_000) if args.quick else (200_000, 20_000, 10_000_000)
    print(f"\nGenerating {shape[2]:,} interactions of {shape[0]:,} users x {shape[1]:,} items ...", flush=True)
    ratings = interactions(*shape)
    nnz = len(ratings)

    widths = [64] if args.quick else [32, 64, 128]
    calls = {(F, method, threads): latentmf_iteration(ratings, F, method, threads)
             for F in widths for method in ("exact", "cg") for threads in (1, 2)}
    seconds = interleaved(calls, args.rounds)
    rows = []
    for F in widths:
        for threads in (1, 2):
            exact = statistics.median(seconds[(F, "exact", threads)])
            cg = statistics.median(seconds[(F, "cg", threads)])
            rows.append([F, threads, f"{exact / nnz * 1e9:.1f}", f"{cg / nnz * 1e9:.1f}", f"{exact / cg:.2f}"])
    print_table(f"latentmf iALS iteration, ns per nonzero (median of {args.rounds} interleaved rounds, float32)",
                ["F", "threads", "exact", "CG (3 steps)", "exact / CG"], rows)

    if importlib.util.find_spec("implicit") is None:
        print("\nSkipping the comparison with implicit: it is not installed (pip install implicit).")
        return
    F, threads = args.factors, args.threads
    contenders = {"latentmf iALS (CG)": latentmf_iteration(ratings, F, "cg", threads),
                  "latentmf iALS (exact)": latentmf_iteration(ratings, F, "exact", threads)}
    contenders.update(implicit_iterations(ratings, F, threads))
    seconds = interleaved(contenders, args.rounds)
    ours = seconds["latentmf iALS (CG)"]
    rows = []
    for name, times in seconds.items():
        ratios = [a / b for a, b in zip(ours, times)]
        rows.append([name, f"{statistics.median(times) / nnz * 1e9:.1f}", " ".join(f"{t:.2f}" for t in times),
                     f"{statistics.median(ratios):.2f}"])
    print_table(f"One iteration at F = {F}, {threads} threads: ns per nonzero (median), seconds per round, and "
                "latentmf CG / this (median of the per-round ratios)",
                ["system", "ns/nnz", "seconds per round", "latentmf CG / this"], rows)


if __name__ == "__main__":
    main()
