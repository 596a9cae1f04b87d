"""SGD speed and convergence of latentmf against LIBMF-AVX, measured in the same run.

Data: latentmf.datasets.synthetic(200000, 20000, 10_000_000, rank=16, noise=0.5, seed=0), split
90/10 (9.0M train / 1.0M test ratings; see _common.py), float32. LIBMF-AVX is LIBMF built from
its source with its Makefile's AVX and OpenMP options and called in memory (see _libmf.py); it is
skipped, with the reason printed, where it cannot be built. Every table alternates the two
systems for --rounds rounds and gives each round's times and the median of the per-round ratios
(the only figures that mean anything on a shared machine). Settings: F = 32, L2 = 0.05 per
rating, no biases, AdaGrad (latentmf's default solver, LIBMF's only one); latentmf's step 0.15,
LIBMF's its default 0.1.

1. The SGD epoch alone, ns per rating update at each thread count: latentmf's sgd_epoch over its
   (cached) grid, against LIBMF's (time of 1 + E iterations - time of 1) / E per rating, which
   leaves out its set-up and its first, half-sized iteration.
2. The whole fit of 20 epochs at each thread count, each in a fresh process: latentmf's fit()
   (its block-grid set-up also timed alone), against LIBMF's mf_train, and against LIBMF's
   training without its set-up (20 iterations - 1 iteration); test RMSE, peak memory, and the
   1 -> 2 thread scaling of each.
3. Convergence: test RMSE per epoch of both (untimed runs), epochs to --target, and the time to
   reach it from the timed rounds of table 2.
4. In cache: MovieLens 100k (from ../shared/data, skipped when absent), as table 1.

    python benchmarks/bench_sgd.py                 # generates the data set once (~10 s)
    python benchmarks/bench_sgd.py --quick         # tables 1 and 4 only
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import _libmf
import latentmf
from _common import (TEN_MILLION, isolated, load_movielens_100k, load_split, print_context, print_table,
                     synthetic_split, threads_list)
from _race import (EPOCHS, FACTORS, INIT_STD, LATENTMF_STEP, LIBMF_STEP, REGULARIZATION, FitSettings, epochs_to,
                   fit_table, interleaved, latentmf_fit, libmf_fit, median_ratio, ratio_text, rounds_text)

#: latentmf's fixed step for plain SGD (the best of 0.005, 0.01, 0.02 on the 9M set).
SGD_STEP = 0.02


class LatentmfEpochs:
    """latentmf's epochs of one solver over one data set's cached grid, from a model fitted for zero
    epochs (so that U and V are the aligned, huge-page arrays fit() uses)."""

    def __init__(self, ratings: latentmf.Ratings, solver: str, threads: int) -> None:
        self.ratings, self.solver, self.threads = ratings, solver, threads
        model = latentmf.MatrixFactorization(FACTORS, epochs=0, biases=False, init_std=INIT_STD).fit(ratings)
        self.U, self.V = model.U, model.V
        self.accumulators = None
        if solver == "adagrad":
            self.accumulators = (np.ones((len(self.U), 2), np.float32), np.ones((len(self.V), 2), np.float32))
        self.epoch = 1  # epoch 0 would be AdaGrad's warm-up
        self.run(1)  # builds and caches the grid

    def run(self, epochs: int) -> float:
        """ns per rating update of `epochs` epochs."""
        start = time.perf_counter()
        for _ in range(epochs):
            latentmf.sgd_epoch(self.ratings, self.U, self.V, LATENTMF_STEP if self.solver == "adagrad" else SGD_STEP,
                               REGULARIZATION, threads=self.threads, adagrad=self.accumulators, epoch=self.epoch)
            self.epoch += 1
        return (time.perf_counter() - start) / epochs / len(self.ratings) * 1e9


class LibmfEpochs:
    """LIBMF-AVX's iterations on the same ratings, per rating update without its set-up."""

    def __init__(self, libmf: _libmf.Libmf, ratings: latentmf.Ratings, threads: int) -> None:
        self.libmf, self.nodes, self.threads, self.size = libmf, _libmf.Nodes(ratings), threads, len(ratings)

    def seconds(self, iterations: int) -> float:
        parameter = self.libmf.parameter(factors=FACTORS, threads=self.threads, regularization=REGULARIZATION,
                                         learning_rate=LIBMF_STEP, iterations=iterations)
        seconds, model = self.libmf.train(self.nodes, parameter)
        self.libmf.destroy(model)
        return seconds


def epoch_table(title: str, ratings: latentmf.Ratings, args: argparse.Namespace, libmf: _libmf.Libmf | None,
                extra: int) -> None:
    """Table 1 (and 4): per round LIBMF 1 iteration, latentmf AdaGrad, LIBMF 1 + extra iterations,
    latentmf fixed-step SGD."""
    rows = []
    for threads in args.threads:
        adagrad, sgd = LatentmfEpochs(ratings, "adagrad", threads), LatentmfEpochs(ratings, "sgd", threads)
        runs: dict[str, Any] = {"adagrad": lambda: adagrad.run(args.epochs), "sgd": lambda: sgd.run(args.epochs)}
        if libmf is not None:
            theirs = LibmfEpochs(libmf, ratings, threads)
            runs = {"libmf 1": lambda: theirs.seconds(1), "adagrad": runs["adagrad"],
                    "libmf more": lambda: theirs.seconds(1 + extra), "sgd": runs["sgd"]}
        r = interleaved(args.rounds, runs)
        row = [threads, rounds_text(r["adagrad"]), rounds_text(r["sgd"])]
        if libmf is not None:
            libmf_ns = [(more - one) / extra / len(ratings) * 1e9 for one, more in zip(r["libmf 1"], r["libmf more"])]
            row += [rounds_text(libmf_ns), ratio_text(libmf_ns, r["adagrad"])]
        rows.append(row)
    header = ["threads", "latentmf AdaGrad ns/update", "latentmf fixed-step ns/update"]
    if libmf is not None:
        header += ["LIBMF-AVX ns/update", "latentmf AdaGrad speed-up"]
    print_table(f"{title}: ns per rating update of one epoch, F = {FACTORS}, per round ({args.rounds} rounds, "
                f"interleaved); LIBMF's is (T(1 + {extra} iterations) - T(1)) / {extra}; speed-up = LIBMF / latentmf "
                f"AdaGrad, median of the rounds (then each round's)", header, rows)


def convergence_table(folder: str, args: argparse.Namespace, libmf: _libmf.Libmf | None, timed: dict[str, Any]) -> None:
    """Table 3: the test RMSE after each epoch (one untimed run of each, validating every epoch),
    and the time to --target from the timed rounds of the fit table at the most threads."""
    t = max(args.threads)
    ours = isolated(latentmf_fit, FitSettings(folder, t, validate=True))["validation_rmse"]
    lines = [("latentmf", ours)]
    k = epochs_to(ours, args.target)
    rows = []
    if k is not None:
        # The fit's set-up, then its first k epochs (the timed fits did not validate).
        times = [x["fit_seconds"] - sum(x["epoch_seconds"]) + sum(x["epoch_seconds"][:k])
                 for x in timed[f"latentmf {t}"]]
        rows.append(["latentmf", t, k, rounds_text(times)])
    if libmf is not None:
        theirs = isolated(libmf_fit, FitSettings(folder, t, validate=True))["validation_rmse"]
        lines.append(("LIBMF-AVX", theirs))
        j = epochs_to(theirs, args.target)
        if j is not None:
            # Its set-up and first iteration, then j - 1 of its later iterations.
            libmf_times = [one["fit_seconds"] + (j - 1) * (x["fit_seconds"] - one["fit_seconds"]) / (EPOCHS - 1)
                           for x, one in zip(timed[f"libmf {t}"], timed[f"libmf one {t}"])]
            rows.append(["LIBMF-AVX", t, j, rounds_text(libmf_times)])
            if k is not None:
                rows.append(["latentmf / LIBMF time", t, "", f"{median_ratio(times, libmf_times):.2f} (median)"])
    print_table(f"Convergence: epochs and seconds to test RMSE {args.target} (seconds per round of the timed fits)",
                ["system", "threads", f"epochs to {args.target}", f"s to {args.target}"], rows)
    for name, rmse in lines:
        print(f"  {name}, test RMSE per epoch: " + " ".join(f"{x:.4f}" for x in rmse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="folder with train.npz/test.npz of the 9M set as _common.write_split writes "
                                       "them (default: generated once into the temporary directory)")
    parser.add_argument("--threads", type=threads_list, default=[1, 2], help="comma-separated (default: 1,2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per table (default: 3)")
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per round of table 1 (default: 4)")
    parser.add_argument("--libmf-epochs", type=int, default=8,
                        help="LIBMF's extra iterations per round of table 1 (default: 8)")
    parser.add_argument("--target", type=float, default=0.71, help="test RMSE to reach (default: 0.71)")
    parser.add_argument("--quick", action="store_true", help="tables 1 and 4 only")
    args = parser.parse_args()
    print_context()
    libmf = _libmf.load()
    folder = str(synthetic_split(TEN_MILLION, args.data))
    train, _ = load_split(synthetic_split(TEN_MILLION, args.data))
    print(f"\nData: {len(train):,} training ratings, {train.n_users:,} users, {train.n_items:,} items")
    epoch_table("9M synthetic ratings", train, args, libmf, args.libmf_epochs)
    movielens = load_movielens_100k()
    if movielens is not None:
        epoch_table(f"In cache, MovieLens 100k ({len(movielens):,} ratings)", movielens, args, libmf, 50)
    if not args.quick:
        del train
        timed = fit_table(folder, "9M synthetic ratings", args.threads, args.rounds, libmf is not None)
        convergence_table(folder, args, libmf, timed)


if __name__ == "__main__":
    main()
