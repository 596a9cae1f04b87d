"""Time the native SGD epoch and batch gradients against their NumPy reference twins.

For each data set, number of factors F and thread count this prints, in float32:

- SGD: nanoseconds per rating update of one `latentmf.sgd_epoch` over the stratified block grid,
  and of `latentmf.reference.sgd_epoch` (a Python loop, timed on a random subset of ratings);
- batch gradients: seconds per pass and nanoseconds per rating of `latentmf.gradients` and of
  `latentmf.reference.gradients` (on all ratings when a pass fits the time budget, else a subset);

with the native/reference time ratio and the speed-up over the smallest thread count, all
measured in this run. Each number is the best of --repeats timed calls. Nothing is asserted.

    python benchmarks/bench_core.py --quick
    python benchmarks/bench_core.py --datasets synthetic --synthetic-ratings 20000000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import latentmf
import latentmf.functions
from latentmf import reference

#: MovieLens 100k, when the shared data folder is beside the repository (never committed here).
ML100K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"

DATASETS = ("ml-100k", "synthetic")

#: Usual MovieLens hyper-parameters. They keep the factors bounded, so no timed step runs into
#: inf, NaN or denormal arithmetic, whose cost differs from that of ordinary numbers.
LEARNING_RATE = 0.005
REGULARIZATION = 0.02
INIT_STD = 0.1

#: Ratings in the first, untimed reference gradient pass that predicts the cost of a full pass.
#: Large, because the reference also pays a cost per row of U and V that a small probe would
#: scale up with it (50,000 ratings overestimated a full pass of the synthetic set by 2x).
PROBE_RATINGS = 500_000

#: Defaults of the options that --quick shrinks; an option given on the command line wins.
FULL: dict[str, Any] = {
    "factors": [16, 32, 64, 128],
    "repeats": 3,
    "synthetic_ratings": 5_000_000,
    "synthetic_users": 100_000,
    "synthetic_items": 10_000,
    "reference_sgd_ratings": 20_000,
    "reference_seconds": 30.0,
}
QUICK: dict[str, Any] = {
    "factors": [16, 64],
    "repeats": 1,
    "synthetic_ratings": 200_000,
    "synthetic_users": 20_000,
    "synthetic_items": 2_000,
    "reference_sgd_ratings": 2_000,
    "reference_seconds": 2.0,
}


def _int_list(text: str) -> list[int]:
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if min(numbers) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return numbers


def _positive(convert: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: `convert`, then a check that the number is > 0."""
    def parse(text: str) -> float:
        try:
            number = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
        return number
    return parse


def _dataset_list(text: str) -> list[str]:
    names = text.split(",")
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown data set {', '.join(unknown)}; "
                                         f"choose from {', '.join(DATASETS)}")
    return names


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    def default(name: str) -> str:
        full, quick = (",".join(map(str, v)) if isinstance(v, list) else str(v) for v in (FULL[name], QUICK[name]))
        return f"(default: {full}; {quick} with --quick)"

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=_dataset_list, default=list(DATASETS),
                        help=f"comma-separated data sets (default: {','.join(DATASETS)})")
    parser.add_argument("--factors", type=_int_list, help=f"comma-separated F values {default('factors')}")
    parser.add_argument("--threads", type=_int_list, default=[1, 2],
                        help="comma-separated thread counts; speed-ups are relative to the smallest "
                             "(default: 1,2)")
    parser.add_argument("--repeats", type=_positive(int),
                        help=f"timed calls per measurement, the best kept {default('repeats')}")
    parser.add_argument("--synthetic-ratings", type=_positive(int),
                        help=f"ratings of the synthetic set {default('synthetic_ratings')}")
    parser.add_argument("--synthetic-users", type=_positive(int),
                        help=f"users of the synthetic set {default('synthetic_users')}")
    parser.add_argument("--synthetic-items", type=_positive(int),
                        help=f"items of the synthetic set {default('synthetic_items')}")
    parser.add_argument("--reference-sgd-ratings", type=_positive(int),
                        help=f"ratings the reference SGD loop visits {default('reference_sgd_ratings')}")
    parser.add_argument("--reference-seconds", type=_positive(float),
                        help=f"longest predicted reference gradient pass on all ratings before a subset is "
                             f"used instead {default('reference_seconds')}")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the synthetic set, the factors and the subsets (default: 0)")
    parser.add_argument("--quick", action="store_true", help="a small, fast smoke run")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.threads = sorted(set(args.threads))
    return args


def _print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A title, then columns right-aligned to their widest cell."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    print(f"\n{title}")
    for row in (header, ["-" * width for width in widths], *rows):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths)))


def _print_context() -> None:
    """What the numbers depend on: how the core was built, NumPy (the reference) and the CPUs."""
    info = {"latentmf": latentmf.__version__}
    for key, value in latentmf.build_info().items():
        info[key] = ", ".join(value) if isinstance(value, list) else str(value)
    info["numpy"] = np.__version__
    info["python"] = platform.python_version()
    info["platform"] = platform.platform()
    info["os.cpu_count()"] = str(os.cpu_count())
    if hasattr(os, "sched_getaffinity"):
        info["CPUs usable here"] = str(len(os.sched_getaffinity(0)))
    width = max(map(len, info))
    print("Machine")
    for key, value in info.items():
        print(f"  {key.ljust(width)}  {value}")


def _movielens_100k() -> latentmf.Ratings | None:
    path = ML100K / "u.data"
    if not path.exists():
        print(f"\nSkipping ml-100k: {path} is absent.")
        return None
    # Tab-separated user, item, rating, timestamp with 1-based ids.
    table = np.loadtxt(path, dtype=np.int64, usecols=(0, 1, 2))
    return latentmf.Ratings((table[:, 0] - 1).astype(np.int32), (table[:, 1] - 1).astype(np.int32),
                            table[:, 2].astype(np.float32))


def _load(name: str, args: argparse.Namespace) -> latentmf.Ratings | None:
    if name == "ml-100k":
        return _movielens_100k()
    return latentmf.datasets.synthetic(args.synthetic_users, args.synthetic_items, args.synthetic_ratings,
                                       seed=args.seed)


def _best_time(repeats: int, call: Callable[[], object], reset: Callable[[], None] = lambda: None) -> float:
    """The shortest of `repeats` timings of call(), each after an untimed reset()."""
    best = float("inf")
    for _ in range(repeats):
        reset()
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def _initial_factors(ratings: latentmf.Ratings, n_factors: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    U = (INIT_STD * rng.standard_normal((ratings.n_users, n_factors))).astype(np.float32)
    V = (INIT_STD * rng.standard_normal((ratings.n_items, n_factors))).astype(np.float32)
    return U, V


def _best_times(repeats: int, threads: Sequence[int], call: Callable[[int], object],
                reset: Callable[[], None] = lambda: None) -> dict[int, float]:
    """The shortest of `repeats` timings of call(t) for each thread count t, after one untimed
    call each. The counts take turns, so a slow spell of this shared machine cannot fall on one
    count only and fake a speed-up (runs of 2-thread epochs alone varied by 2x here)."""
    for t in threads:
        call(t)
    best = dict.fromkeys(threads, float("inf"))
    for _ in range(repeats):
        for t in threads:
            best[t] = min(best[t], _best_time(1, lambda: call(t), reset))
    return best


def _native_sgd_seconds(ratings: latentmf.Ratings, U0: np.ndarray, V0: np.ndarray, threads: Sequence[int],
                        repeats: int) -> dict[int, float]:
    U, V = U0.copy(), V0.copy()

    def reset() -> None:
        # Every timed epoch starts from the same factors, so all repeats and thread counts do the
        # same arithmetic (the grid makes the result independent of the thread count).
        U[...], V[...] = U0, V0

    # The untimed first epoch builds the block grid, which `ratings` then caches.
    return _best_times(repeats, threads, lambda t: latentmf.sgd_epoch(ratings, U, V, LEARNING_RATE,
                                                                      REGULARIZATION, threads=t), reset)


def _native_gradient_seconds(ratings: latentmf.Ratings, U: np.ndarray, V: np.ndarray, threads: Sequence[int],
                             repeats: int) -> dict[int, float]:
    # The untimed first call builds the by-user and by-item orderings, which `ratings` then caches.
    return _best_times(repeats, threads, lambda t: latentmf.gradients(ratings, U, V, REGULARIZATION, threads=t))


def _reference_sgd_seconds(ratings: latentmf.Ratings, U0: np.ndarray, V0: np.ndarray, order: np.ndarray,
                           repeats: int) -> float:
    U, V = U0.copy(), V0.copy()

    def reset() -> None:
        # As for the native epoch: every repeat starts from the same factors.
        U[...], V[...] = U0, V0

    return _best_time(repeats, lambda: reference.sgd_epoch(ratings, U, V, LEARNING_RATE, REGULARIZATION, order),
                      reset)


def _subset(ratings: latentmf.Ratings, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ratings at `positions` as the (users, items, values) triple the reference takes."""
    return ratings.users[positions], ratings.items[positions], ratings.values[positions]


def _reference_gradient_positions(ratings: latentmf.Ratings, U: np.ndarray, V: np.ndarray, order: np.ndarray,
                                  budget: float) -> np.ndarray:
    """All positions when one reference pass is predicted to take at most `budget` seconds, else a
    random sample that should, kept in input order like the full set. The prediction scales an
    untimed pass over PROBE_RATINGS ratings linearly."""
    probe = np.sort(order[:PROBE_RATINGS])
    start = time.perf_counter()
    reference.gradients(_subset(ratings, probe), U, V, REGULARIZATION)
    predicted = (time.perf_counter() - start) * len(ratings) / len(probe)
    if predicted <= budget:
        return np.arange(len(ratings))
    size = max(1, int(len(ratings) * budget / predicted))
    return np.sort(order[:size])


def _ns_per_rating(seconds: float, n_ratings: int) -> float:
    return seconds / n_ratings * 1e9


def _sgd_rows(ratings: latentmf.Ratings, U: np.ndarray, V: np.ndarray, reference_order: np.ndarray,
              args: argparse.Namespace) -> list[list[str]]:
    """F, threads, native ns, speed-up, reference ns, native/reference: one row per thread count."""
    n_factors, base = U.shape[1], args.threads[0]
    reference_ns = _ns_per_rating(_reference_sgd_seconds(ratings, U, V, reference_order, args.repeats),
                                  len(reference_order))
    seconds = _native_sgd_seconds(ratings, U, V, args.threads, args.repeats)
    rows = []
    for t in args.threads:
        native_ns = _ns_per_rating(seconds[t], len(ratings))
        rows.append([str(n_factors), str(t), f"{native_ns:.1f}", f"{seconds[base] / seconds[t]:.2f}x",
                     f"{reference_ns:.0f}", f"{native_ns / reference_ns:.2e}"])
    return rows


def _gradient_rows(ratings: latentmf.Ratings, U: np.ndarray, V: np.ndarray, order: np.ndarray,
                   args: argparse.Namespace) -> list[list[str]]:
    """F, threads, native s and ns, speed-up, reference ratings, s and ns, native/reference."""
    n_factors, base = U.shape[1], args.threads[0]
    positions = _reference_gradient_positions(ratings, U, V, order, args.reference_seconds)
    subset = _subset(ratings, positions)
    reference_seconds = _best_time(args.repeats, lambda: reference.gradients(subset, U, V, REGULARIZATION))
    reference_ns = _ns_per_rating(reference_seconds, len(positions))
    seconds = _native_gradient_seconds(ratings, U, V, args.threads, args.repeats)
    rows = []
    for t in args.threads:
        native_ns = _ns_per_rating(seconds[t], len(ratings))
        rows.append([str(n_factors), str(t), f"{seconds[t]:.4f}", f"{native_ns:.1f}",
                     f"{seconds[base] / seconds[t]:.2f}x", f"{len(positions):,}", f"{reference_seconds:.3f}",
                     f"{reference_ns:.0f}", f"{native_ns / reference_ns:.2e}"])
    return rows


def _benchmark(name: str, ratings: latentmf.Ratings, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    # One random order per data set: its first ratings are the reference subsets.
    order = rng.permutation(len(ratings))
    reference_order = order[:args.reference_sgd_ratings]
    sgd_rows, gradient_rows = [], []
    for n_factors in args.factors:
        U, V = _initial_factors(ratings, n_factors, rng)
        sgd_rows += _sgd_rows(ratings, U, V, reference_order, args)
        gradient_rows += _gradient_rows(ratings, U, V, order, args)
    base, blocks = args.threads[0], latentmf.functions.DEFAULT_BLOCKS
    timing = (f"Best of {args.repeats} (native: after 1 untimed call, thread counts taking turns); "
              f"speed-up is the time on {base} thread{'s' if base > 1 else ''} over the time on this many.")
    _print_table(
        f"{name}: SGD epoch, float32. {timing}\n"
        f"Native: all ratings on the {blocks}x{blocks} block grid. Reference: a Python loop on one thread, "
        f"timed on only the first {len(reference_order):,} ratings of a random order.",
        ["F", "threads", "native ns/update", "speed-up", "reference ns/update", "native/reference"],
        sgd_rows)
    _print_table(
        f"{name}: batch gradients, float32. {timing}\n"
        f"Native: all ratings. Reference: NumPy on one thread, on 'ref ratings' ratings (a random "
        f"subset when a full pass is predicted to take over {args.reference_seconds:g} s).",
        ["F", "threads", "native s/pass", "native ns/rating", "speed-up", "ref ratings", "ref s/pass",
         "ref ns/rating", "native/reference"],
        gradient_rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    _print_context()
    for name in args.datasets:
        start = time.perf_counter()
        ratings = _load(name, args)
        if ratings is None:
            continue
        print(f"\n{name}: {len(ratings):,} ratings, {ratings.n_users:,} users, {ratings.n_items:,} items "
              f"(loaded in {time.perf_counter() - start:.1f} s)", flush=True)
        _benchmark(name, ratings, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
