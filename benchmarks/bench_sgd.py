"""SGD speed and convergence of latentmf against its reference and the installed peers, in one run.

On the MovieLens-shaped synthetic set of the performance targets (gen_synth.py 200000 20000
10000000 16 0.5 0: 9.0M train / 1.0M test ratings), float32, it prints:

1. throughput: ns per rating update of one epoch (best of --repeats) for latentmf's fixed-step
   SGD and AdaGrad at each thread count and F, the NumPy reference on a subset, and the peers
   (LIBMF as pip installs it, Surprise's SVD on a subset) when installed;
2. convergence of the model without biases (F = 32, L2 = --regularization per rating,
   --epochs epochs): test RMSE per epoch, epochs and seconds to reach --target, fit seconds and
   whole-process peak memory, each system in a fresh process;
3. the in-cache case: MovieLens 100k (from ../shared/data, skipped when absent), F = 32.

    python benchmarks/bench_sgd.py                     # generates the data set once (~10 s)
    python benchmarks/bench_sgd.py --data DIR --quick  # DIR from gen_synth.py
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import time
from typing import Any

import numpy as np

import latentmf
from _common import (TEN_MILLION, best_seconds, isolated, load_movielens_100k, load_split, print_context,
                     print_table, synthetic_split, threads_list)

#: latentmf's step for each solver in this comparison (AdaGrad's tuned on this data set; plain
#: SGD's the best of 0.005, 0.01, 0.02).
LEARNING_RATE = {"adagrad": 0.15, "sgd": 0.02}
#: Without biases, factors start around a small positive mean (see MatrixFactorization).
INIT_STD = 0.01


def _native_factors(ratings: latentmf.Ratings, n_factors: int) -> Any:
    """A fitted-for-zero-epochs model: its U and V are the aligned, huge-page native arrays fit() uses."""
    return latentmf.MatrixFactorization(n_factors, epochs=0, biases=False, init_std=INIT_STD).fit(ratings)


def latentmf_ns_per_update(ratings: latentmf.Ratings, n_factors: int, solver: str, threads: int,
                           repeats: int) -> float:
    model = _native_factors(ratings, n_factors)
    U, V = model.U, model.V
    accumulators = None
    if solver == "adagrad":
        accumulators = (np.ones((len(U), 2), U.dtype), np.ones((len(V), 2), V.dtype))
    epoch = iter(range(10**9))

    def run() -> None:
        latentmf.sgd_epoch(ratings, U, V, LEARNING_RATE[solver], 0.05, threads=threads, adagrad=accumulators,
                           epoch=next(epoch))

    run()  # builds and caches the block grid
    return best_seconds(run, repeats) / len(ratings) * 1e9


def reference_ns_per_update(ratings: latentmf.Ratings, n_factors: int, subset: int) -> float:
    model = _native_factors(ratings, n_factors)
    U, V = model.U.copy(), model.V.copy()
    order = np.random.default_rng(0).permutation(len(ratings))[:subset]
    seconds = best_seconds(lambda: latentmf.reference.sgd_epoch(ratings, U, V, 0.01, 0.05, order=order), 1)
    return seconds / subset * 1e9


def _data(args: argparse.Namespace) -> tuple[latentmf.Ratings, latentmf.Ratings]:
    return load_split(synthetic_split(TEN_MILLION, args.data))


def latentmf_convergence(args: argparse.Namespace, solver: str, threads: int) -> dict[str, Any]:
    """A fresh process's fit of the model without biases; its history and timings."""
    train, test = _data(args)
    model = latentmf.MatrixFactorization(args.factors, solver=solver, epochs=args.epochs, biases=False,
                                         learning_rate=LEARNING_RATE[solver], regularization=args.regularization,
                                         init_std=INIT_STD, threads=threads)
    start = time.perf_counter()
    model.fit(train, validation=test)
    fit_seconds = time.perf_counter() - start
    epochs = model.history_["seconds"]
    # Time before the first epoch (checks, the block grid, initialisation) counts toward every target.
    elapsed = np.cumsum(epochs) + (fit_seconds - sum(epochs))
    return {"rmse": model.history_["validation_rmse"], "elapsed": list(elapsed), "fit_seconds": fit_seconds}


#: LIBMF through its pip wrapper, in a child whose standard output (LIBMF's per-iteration table) is parsed.
LIBMF_SCRIPT = """
import sys, time, numpy as np
from libmf import mf
folder, k, iters, l2, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
train, test = np.load(folder + "/train.npz"), np.load(folder + "/test.npz")
X = np.stack([train["user"], train["item"], train["rating"]], 1).astype(np.float32)
Y = np.stack([test["user"], test["item"], test["rating"]], 1).astype(np.float32)
model = mf.MF(k=k, nr_threads=threads, nr_iters=iters, lambda_p1=0.0, lambda_q1=0.0, lambda_p2=l2, lambda_q2=l2,
              eta=0.1, nr_bins=max(2 * threads, 20), quiet=False)
start = time.perf_counter()
model.mf_train_test(X, Y)
print("seconds", time.perf_counter() - start, flush=True)
import resource; print("peak_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
"""


def libmf_convergence(args: argparse.Namespace, threads: int) -> dict[str, Any] | None:
    if importlib.util.find_spec("libmf") is None:
        return None
    folder = synthetic_split(TEN_MILLION, args.data)
    out = subprocess.run([sys.executable, "-c", LIBMF_SCRIPT, str(folder), str(args.factors), str(args.epochs),
                          str(args.regularization), str(threads)], capture_output=True, text=True, check=True).stdout
    rmse = [float(match) for match in re.findall(r"^\s*\d+\s+[\d.]+\s+([\d.]+)", out, re.MULTILINE)]
    seconds = float(re.search(r"^seconds (\S+)", out, re.MULTILINE).group(1))
    # The wrapper reports only the total: spread it evenly over the iterations.
    elapsed = [seconds * (i + 1) / len(rmse) for i in range(len(rmse))]
    peak = float(re.search(r"^peak_kib (\S+)", out, re.MULTILINE).group(1)) / 1024
    return {"rmse": rmse, "elapsed": elapsed, "fit_seconds": seconds, "peak_rss_mib": peak}


def surprise_ns_per_update(args: argparse.Namespace) -> float | None:
    """Surprise's SVD, one epoch on a subset (its Python-level data set does not scale to 9M)."""
    if importlib.util.find_spec("surprise") is None or importlib.util.find_spec("pandas") is None:
        return None
    import pandas as pd
    import surprise

    train, _ = _data(args)
    subset = slice(0, args.surprise_ratings)
    frame = pd.DataFrame({"user": train.users[subset], "item": train.items[subset], "rating": train.values[subset]})
    data = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5))).build_full_trainset()
    algorithm = surprise.SVD(n_factors=args.factors, n_epochs=1, biased=False, reg_all=args.regularization)
    return best_seconds(lambda: algorithm.fit(data), 1) / data.n_ratings * 1e9


def _target_reached(result: dict[str, Any], target: float) -> tuple[str, str]:
    for epoch, (rmse, elapsed) in enumerate(zip(result["rmse"], result["elapsed"])):
        if rmse <= target:
            return str(epoch + 1), f"{elapsed:.2f}"
    return "-", "-"


def throughput_table(args: argparse.Namespace, train: latentmf.Ratings) -> None:
    rows = []
    for n_factors in args.factors_list:
        for solver in ("sgd", "adagrad"):
            timings = {t: latentmf_ns_per_update(train, n_factors, solver, t, args.repeats) for t in args.threads}
            base = timings[min(args.threads)]
            rows += [[f"latentmf {solver}", t, n_factors, f"{ns:.2f}", f"{base / ns:.2f}x"] for t, ns in timings.items()]
    rows.append(["numpy reference (20k ratings)", 1, args.factors,
                 f"{reference_ns_per_update(train, args.factors, 20_000):.0f}", "-"])
    surprise_ns = surprise_ns_per_update(args)
    rows.append(["surprise SVD (1 epoch, subset)", 1, args.factors,
                 "not installed" if surprise_ns is None else f"{surprise_ns:.0f}", "-"])
    print_table(f"SGD throughput, {len(train):,} ratings, float32: ns per rating update of one epoch "
                f"(best of {args.repeats}); speed-up against {min(args.threads)} thread(s)",
                ["system", "threads", "F", "ns/update", "speed-up"], rows)


def convergence_table(args: argparse.Namespace, n_ratings: int) -> None:
    rows = []
    for threads in args.threads:
        for solver in ("adagrad", "sgd"):
            result = isolated(latentmf_convergence, args, solver, threads)
            rows.append([f"latentmf {solver}", threads, result])
        libmf = libmf_convergence(args, threads)
        rows.append(["libmf (pip)", threads, libmf])
    table = []
    for name, threads, result in rows:
        if result is None:
            table.append([name, threads] + ["not installed"] + ["-"] * 5)
            continue
        epochs, seconds = _target_reached(result, args.target)
        ns = result["fit_seconds"] / len(result["rmse"]) / n_ratings * 1e9
        table.append([name, threads, f"{result['rmse'][-1]:.4f}", epochs, seconds, f"{result['fit_seconds']:.2f}",
                      f"{ns:.1f}", f"{result['peak_rss_mib']:.0f}"])
    print_table(f"Convergence without biases, F = {args.factors}, L2 = {args.regularization}, {args.epochs} "
                f"epochs (latentmf steps: {LEARNING_RATE}; LIBMF: eta 0.1, its default). Fit seconds include "
                f"evaluating the test RMSE every epoch; LIBMF's per-epoch times are its total spread evenly.",
                ["system", "threads", "test RMSE", f"epochs to {args.target}", f"s to {args.target}", "fit s",
                 "ns/rating/epoch", "peak MiB"], table)
    for name, threads, result in rows:
        if result is not None:
            print(f"  {name}, {threads} thread(s), test RMSE per epoch: "
                  + " ".join(f"{r:.4f}" for r in result["rmse"]))


def in_cache_table(args: argparse.Namespace) -> None:
    ratings = load_movielens_100k()
    if ratings is None:
        return
    rows = [[solver, t, f"{latentmf_ns_per_update(ratings, 32, solver, t, args.repeats * 5):.2f}"]
            for solver in ("sgd", "adagrad") for t in args.threads]
    print_table(f"In cache: MovieLens 100k ({len(ratings):,} ratings), F = 32, float32, ns per update",
                ["latentmf solver", "threads", "ns/update"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="folder with gen_synth.py's train.npz/test.npz for the 10M set "
                                       "(default: generated once into the temporary directory)")
    parser.add_argument("--threads", type=threads_list, default=[1, 2], help="comma-separated (default: 1,2)")
    parser.add_argument("--factors", type=int, default=32, help="F for the convergence runs (default: 32)")
    parser.add_argument("--factors-list", type=threads_list, default=[16, 32, 64, 128],
                        help="F values of the throughput table (default: 16,32,64,128)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the convergence runs (default: 20)")
    parser.add_argument("--regularization", type=float, default=0.05, help="L2 per rating (default: 0.05)")
    parser.add_argument("--target", type=float, default=0.71, help="test RMSE to reach (default: 0.71)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per measurement (default: 3)")
    parser.add_argument("--surprise-ratings", type=int, default=1_000_000,
                        help="ratings Surprise trains on for its timing (default: 1000000)")
    parser.add_argument("--quick", action="store_true", help="throughput at F = 32 only, no convergence runs")
    args = parser.parse_args()
    if args.quick:
        args.factors_list = [32]
    print_context()
    train, _ = _data(args)
    print(f"\nData: {len(train):,} training ratings, {train.n_users:,} users, {train.n_items:,} items")
    throughput_table(args, train)
    in_cache_table(args)
    if not args.quick:
        convergence_table(args, len(train))


if __name__ == "__main__":
    main()
