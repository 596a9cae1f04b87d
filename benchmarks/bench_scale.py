"""Large-scale figures against LIBMF-AVX in the same run: fitting a Netflix-sized set, evaluating,
and top-N for every user.

1. Netflix-sized set: latentmf.datasets.synthetic(480189, 17770, 100_000_000, rank=16, noise=0.5,
   seed=0) split 90/10 (90M train / 10M test; see _common.py; generating it takes a few minutes
   and ~5 GB once). The whole fit of 20 AdaGrad epochs, F = 32, L2 = 0.05, no biases, at each
   thread count, each run in a fresh process that holds the caller's arrays (int32 users and
   items, float32 ratings: used without a copy), interleaved with LIBMF-AVX's mf_train on the same
   arrays (see _race.fit_table): seconds per round, the block-grid set-up's share, test RMSE, peak
   memory, speed-ups as medians of the per-round ratios. Needs ~10 GB of memory.
2. On the 9M set: the test RMSE of a model for 1M random pairs, latentmf's predict() and LIBMF's
   calc_rmse (mf_predict over the pairs, in parallel), interleaved; and latentmf's top-10 for every
   user with seen items excluded (LIBMF has no top-N).

    python benchmarks/bench_scale.py [--threads 1,2] [--skip-netflix]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import _libmf
import latentmf
from _common import (NETFLIX, TEN_MILLION, best_seconds, load_split, print_context, print_table, synthetic_split,
                     threads_list)
from _race import (FACTORS, LIBMF_STEP, REGULARIZATION, chunked_rmse, fit_table, interleaved, ratio_text,
                   rounds_text)


def evaluation_table(folder: str | None, threads: list[int], rounds: int, libmf: _libmf.Libmf | None) -> None:
    """Table 2: both systems' models of 2 epochs; per round the RMSE of 1M random pairs (against the
    test values of random test ratings) by each, interleaved; then latentmf's top-10."""
    train, test = load_split(synthetic_split(TEN_MILLION, folder))
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(test), 1_000_000)
    pairs = latentmf.Ratings(test.users[pick], test.items[pick], test.values[pick], test.n_users, test.n_items)
    model = latentmf.MatrixFactorization(FACTORS, epochs=2).fit(train)
    theirs = None
    if libmf is not None:
        nodes, pair_nodes = _libmf.Nodes(train), _libmf.Nodes(pairs)
        _, theirs = libmf.train(nodes, libmf.parameter(factors=FACTORS, threads=max(threads), learning_rate=LIBMF_STEP,
                                                       regularization=REGULARIZATION, iterations=2))
    model.recommend(0)  # builds the per-user seen items once
    rows = []
    for t in threads:
        model.threads = t  # predict() and recommend_all() use the threads set at call time
        runs: dict[str, Any] = {"latentmf": lambda: timed(lambda: chunked_rmse(model.predict, pairs))}
        if theirs is not None:
            runs["libmf"] = lambda: timed(lambda: libmf.rmse(theirs, pair_nodes, t))
        r = interleaved(rounds, runs)
        ours_ns = [s / len(pairs) * 1e9 for s in r["latentmf"]]
        row = [t, rounds_text(ours_ns)]
        if theirs is not None:
            libmf_ns = [s / len(pairs) * 1e9 for s in r["libmf"]]
            row += [rounds_text(libmf_ns), ratio_text(libmf_ns, ours_ns)]
        top = best_seconds(lambda: model.recommend_all(k=10), 1)
        row += [f"{top:.2f}", f"{2 * train.n_users * train.n_items * FACTORS / top / 1e9:.0f}"]
        rows.append(row)
    if theirs is not None:
        libmf.destroy(theirs)
    header = ["threads", "latentmf ns/pair"]
    if libmf is not None:
        header += ["LIBMF calc_rmse ns/pair", "speed-up"]
    header += ["latentmf recommend_all s", "scoring GFLOP/s"]
    print_table(f"On the 9M set ({train.n_users:,} users, {train.n_items:,} items), F = {FACTORS}: the RMSE of 1M "
                f"random pairs per round ({rounds} rounds, interleaved; speed-up = LIBMF / latentmf, median of the "
                f"rounds), and top-10 for every user with seen items excluded (latentmf only: LIBMF has no top-N)",
                header, rows)


def timed(call: Any) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--netflix-data", help="folder with train.npz/test.npz of the Netflix-sized set as "
                                               "_common.write_split writes them (default: generated once into the "
                                               "temporary directory)")
    parser.add_argument("--data", help="the same for the 9M set")
    parser.add_argument("--threads", type=threads_list, default=[2],
                        help="comma-separated thread counts of the Netflix-sized fit (default: 2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per table (default: 3)")
    parser.add_argument("--skip-netflix", action="store_true", help="only the evaluation and top-N part")
    args = parser.parse_args()
    print_context()
    libmf = _libmf.load()
    if not args.skip_netflix:
        folder = str(synthetic_split(NETFLIX, args.netflix_data))  # generated before any timing
        fit_table(folder, "Netflix-sized set (90M training ratings)", args.threads, args.rounds, libmf is not None)
    evaluation_table(args.data, sorted({1, max(args.threads)}), args.rounds, libmf)


if __name__ == "__main__":
    main()
