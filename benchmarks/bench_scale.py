"""Large-scale figures: fitting a Netflix-sized set, predicting, and top-N for every user.

1. Netflix-sized synthetic set (gen_synth.py 480189 17770 100000000 16 0.5 0: 90.0M train /
   10.0M test), F = 32, 20 AdaGrad epochs without biases, L2 = 0.05: fit seconds (split into the
   set-up before the first epoch and the epochs, each epoch including its training loss, and its
   test RMSE in the runs that pass the test set as validation; one more run at the most threads
   passes none and computes the test RMSE after the fit),
   test RMSE and the whole-process peak memory, in a fresh process that holds the caller's arrays
   as gen_synth wrote them (int32 users and items, float32 ratings: used without a copy).
2. On the 10M set: predict() for 1M random pairs (ns per pair) and recommend_all() top-10 for every
   user with seen items excluded, at each thread count.

    python benchmarks/bench_scale.py [--netflix-data DIR] [--data DIR] [--skip-netflix]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

import latentmf
from _common import (NETFLIX, TEN_MILLION, best_seconds, isolated, load_split, print_context, print_table,
                     synthetic_split, threads_list)


def chunked_rmse(model: latentmf.MatrixFactorization, test: latentmf.Ratings, chunk: int = 1 << 20) -> float:
    """The test RMSE, a chunk at a time (as fit computes it), so that it adds little to the peak memory."""
    squared = 0.0
    for start in range(0, len(test), chunk):
        part = slice(start, start + chunk)
        errors = np.subtract(model.predict(test.users[part], test.items[part]), test.values[part], dtype=np.float64)
        squared += float(errors @ errors)
    return math.sqrt(squared / len(test))


def netflix_fit(folder: str, threads: int, epochs: int, validate: bool) -> dict[str, Any]:
    """One fit; with `validate` the test RMSE is part of every epoch (as a user watching it would
    run it), else it is computed once after the timed fit."""
    train, test = load_split(synthetic_split(NETFLIX, folder))
    caller_mib = (train.users.nbytes + train.items.nbytes + train.values.nbytes) / 2**20
    model = latentmf.MatrixFactorization(32, solver="adagrad", epochs=epochs, biases=False, learning_rate=0.15,
                                         regularization=0.05, init_std=0.01, threads=threads)
    start = time.perf_counter()
    model.fit(train, validation=test if validate else None)
    fit_seconds = time.perf_counter() - start
    rmse = model.history_["validation_rmse"][-1] if validate else chunked_rmse(model, test)
    return {"fit_seconds": fit_seconds, "epoch_seconds": sum(model.history_["seconds"]),
            "rmse": rmse, "caller_mib": caller_mib, "ratings": len(train)}


def predict_and_top_n(folder: str | None, threads: list[int], repeats: int) -> None:
    train, _ = load_split(synthetic_split(TEN_MILLION, folder))
    model = latentmf.MatrixFactorization(32, epochs=2).fit(train)
    rng = np.random.default_rng(0)
    users = rng.integers(0, train.n_users, 1_000_000).astype(np.int32)
    items = rng.integers(0, train.n_items, 1_000_000).astype(np.int32)
    model.recommend(0)  # builds the per-user seen items once
    rows = []
    for t in threads:
        model.threads = t  # predict() and recommend_all() use the threads set at call time
        predict = best_seconds(lambda: model.predict(users, items), repeats)
        top = best_seconds(lambda: model.recommend_all(k=10), 1)
        rows.append([t, f"{predict / len(users) * 1e9:.2f}", f"{top:.2f}",
                     f"{2 * train.n_users * train.n_items * 32 / top / 1e9:.0f}"])
    print_table(f"On the 10M set ({train.n_users:,} users, {train.n_items:,} items), F = 32: predict() for 1M "
                f"random pairs, and top-10 for every user with seen items excluded",
                ["threads", "predict ns/pair", "recommend_all s", "scoring GFLOP/s"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--netflix-data", help="folder with gen_synth.py's output for the Netflix-sized set "
                                               "(default: generated once into the temporary directory; ~2 min)")
    parser.add_argument("--data", help="folder with gen_synth.py's output for the 10M set")
    parser.add_argument("--threads", type=threads_list, default=[1, 2], help="comma-separated (default: 1,2)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the Netflix-sized fit (default: 20)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (default: 3)")
    parser.add_argument("--skip-netflix", action="store_true", help="only the predict and top-N part")
    args = parser.parse_args()
    print_context()
    if not args.skip_netflix:
        synthetic_split(NETFLIX, args.netflix_data)  # generate before any timing
        rows = []
        for t, validate in [(t, True) for t in args.threads] + [(max(args.threads), False)]:
            r = isolated(netflix_fit, args.netflix_data, t, args.epochs, validate)
            rows.append([t, "every epoch" if validate else "after fit", f"{r['fit_seconds']:.1f}", f"{r['fit_seconds'] - r['epoch_seconds']:.1f}",
                         f"{r['epoch_seconds'] / args.epochs:.2f}",
                         f"{r['epoch_seconds'] / args.epochs / r['ratings'] * 1e9:.1f}", f"{r['rmse']:.4f}",
                         f"{r['peak_rss_mib']:.0f}", f"{r['caller_mib']:.0f}"])
        print_table(f"Netflix-sized fit: 90M ratings, F = 32, {args.epochs} AdaGrad epochs, no biases, L2 = 0.05",
                    ["threads", "test RMSE computed", "fit s", "set-up s", "s/epoch", "ns/rating/epoch", "test RMSE", "peak MiB",
                     "caller's arrays MiB"], rows)
    predict_and_top_n(args.data, args.threads, args.repeats)


if __name__ == "__main__":
    main()
