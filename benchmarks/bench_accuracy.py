"""Rating accuracy of every latentmf solver with its defaults against the peers, in one run.

1. MovieLens 100k, split u1 (read from ../shared/data, skipped when absent): held-out RMSE with
   predictions clipped to the rating range, and fit seconds, for MatrixFactorization with each
   solver at its defaults, and, when installed, myFM (Bayesian FM of user and item one-hot, rank
   10, 200 Gibbs iterations; and with each user's rated items as implicit features, SVD++-like),
   Surprise (SVD, SVD++) and cmfrec (CMF, k 32, the best regularization of a small grid chosen on
   the test set, as its table in the issue was made).
2. The cost of one Gibbs sweep against one myFM iteration at the same rank (10), measured in the
   same run, alternating, --rounds rounds: seconds per iteration and the median ratio; without
   implicit feedback, then with it on both sides.
3. With --synthetic: on latentmf.datasets.synthetic(200000, 20000, 10_000_000) split 90/10 (9M
   ratings; benchmarks/_common.py's cached split), the default SGD fit's test RMSE, the epochs ALS
   (lambda 0.04) needs to reach it from its random and from its spectral start, and whole fits of
   each timed in --rounds interleaved rounds, with the median ratio of each to the default fit.

    python benchmarks/bench_accuracy.py [--rounds 3] [--synthetic]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Any, Callable

import numpy as np

import latentmf
from _common import ML100K, TEN_MILLION, load_split, print_context, print_table, synthetic_split
from latentmf import metrics

SOLVERS = ("adagrad", "sgd", "gd", "als", "gibbs")


def read_u1(name: str) -> latentmf.Ratings:
    table = np.loadtxt(ML100K / name, dtype=np.int64, usecols=(0, 1, 2))
    return latentmf.Ratings(table[:, 0] - 1, table[:, 1] - 1, table[:, 2].astype(np.float32), 943, 1682)


def clipped_rmse(truth: np.ndarray, predictions: np.ndarray) -> float:
    return metrics.rmse(truth, np.clip(predictions, 1.0, 5.0))


def timed(fit: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fit()
    return result, time.perf_counter() - start


def movielens(rounds: int) -> None:
    if not (ML100K / "u1.base").exists():
        print(f"\nSkipping MovieLens 100k: it is not at {ML100K}.")
        return
    train, test = read_u1("u1.base"), read_u1("u1.test")
    rows = []
    for solver in SOLVERS:
        model, seconds = timed(lambda: latentmf.MatrixFactorization(solver=solver).fit(train))
        rows.append([f"latentmf MatrixFactorization(solver={solver!r})",
                     f"{clipped_rmse(test.values, model.predict(test.users, test.items)):.4f}", f"{seconds:.1f}"])
        print(f"  {rows[-1][0]}: {rows[-1][1]}", flush=True)
    for name, run in _peers(train, test):
        rmse, seconds = run()
        rows.append([name, f"{rmse:.4f}", f"{seconds:.1f}"])
        print(f"  {name}: {rows[-1][1]}", flush=True)
    print_table("Held-out RMSE on MovieLens 100k u1 (predictions clipped to [1, 5])",
                ["system", "RMSE", "fit seconds"], rows)
    sweep_cost(train, rounds)


def _peers(train: latentmf.Ratings, test: latentmf.Ratings) -> list[tuple[str, Callable[[], tuple[float, float]]]]:
    peers: list[tuple[str, Callable[[], tuple[float, float]]]] = []
    try:
        import myfm  # noqa: F401
    except ImportError:
        print("  (myfm is not installed: its rows are left out)")
    else:
        peers.append(("myFM Bayesian FM, rank 10, 200 iterations", lambda: _myfm(train, test, implicit=False)))
        peers.append(("myFM with the rated items as implicit features", lambda: _myfm(train, test, implicit=True)))
    try:
        import surprise  # noqa: F401
    except ImportError:
        print("  (surprise is not installed: its rows are left out)")
    else:
        peers.append(("Surprise SVD", lambda: _surprise("SVD", train, test)))
        peers.append(("Surprise SVD++", lambda: _surprise("SVDpp", train, test)))
    try:
        import cmfrec  # noqa: F401
    except ImportError:
        print("  (cmfrec is not installed: its row is left out)")
    else:
        peers.append(("cmfrec CMF, k 32, best lambda of 4 on the test set", lambda: _cmfrec(train, test)))
    return peers


def _features(users: np.ndarray, items: np.ndarray, train: latentmf.Ratings, implicit: bool) -> Any:
    """One-hot user and item columns, and with `implicit` each user's rated items, normalised."""
    import scipy.sparse as sparse

    n = len(users)
    blocks = [sparse.csr_matrix((np.ones(n), (np.arange(n), users)), shape=(n, train.n_users)),
              sparse.csr_matrix((np.ones(n), (np.arange(n), items)), shape=(n, train.n_items))]
    if implicit:
        rated = sparse.csr_matrix((np.ones(len(train)), (train.users, train.items)),
                                  shape=(train.n_users, train.n_items))
        counts = np.maximum(np.asarray(rated.sum(axis=1)).ravel(), 1)
        rated = sparse.diags(1.0 / np.sqrt(counts)) @ rated
        blocks.append(rated[users])
    return sparse.hstack(blocks).tocsr()


def _quiet_myfm(X: Any, y: np.ndarray, n_iter: int, kept: int) -> Any:
    """A fitted myFM regressor of rank 10, without its progress bar (it writes one to stderr)."""
    import contextlib
    import io

    import myfm

    with contextlib.redirect_stderr(io.StringIO()):
        return myfm.MyFMRegressor(rank=10, random_seed=0).fit(X, y, n_iter=n_iter, n_kept_samples=kept)


def _myfm(train: latentmf.Ratings, test: latentmf.Ratings, implicit: bool, n_iter: int = 200) -> tuple[float, float]:
    X = _features(train.users, train.items, train, implicit)
    model, seconds = timed(lambda: _quiet_myfm(X, train.values, n_iter, n_iter - 5))
    predictions = model.predict(_features(test.users, test.items, train, implicit))
    return clipped_rmse(test.values, predictions), seconds


def _surprise(name: str, train: latentmf.Ratings, test: latentmf.Ratings) -> tuple[float, float]:
    import pandas as pd
    import surprise

    frame = pd.DataFrame({"user": train.users, "item": train.items, "rating": train.values})
    data = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5))).build_full_trainset()
    algorithm = getattr(surprise, name)(random_state=0)
    _, seconds = timed(lambda: algorithm.fit(data))
    predictions = np.array([algorithm.predict(int(u), int(i)).est for u, i in zip(test.users, test.items)])
    return clipped_rmse(test.values, predictions), seconds


def _cmfrec(train: latentmf.Ratings, test: latentmf.Ratings) -> tuple[float, float]:
    import pandas as pd
    from cmfrec import CMF

    frame = pd.DataFrame({"UserId": train.users, "ItemId": train.items, "Rating": train.values})
    best = (np.inf, 0.0)
    for regularization in (1.0, 5.0, 10.0, 25.0):
        model, seconds = timed(lambda: CMF(k=32, lambda_=regularization, verbose=False).fit(frame))
        predictions = model.predict(user=test.users, item=test.items)
        best = min(best, (clipped_rmse(test.values, predictions), seconds))
    return best


def sweep_cost(train: latentmf.Ratings, rounds: int) -> None:
    """Seconds per Gibbs iteration at rank 10: latentmf's sweep (on every core, its default, and on
    one) against myFM's (which runs on one core), interleaved; without implicit feedback
    (implicit_links=0 against user and item one-hot) and with it (the default links against myFM
    with each user's rated items as features)."""
    try:
        import myfm  # noqa: F401
    except ImportError:
        return
    iterations = 50

    def ours(threads: int | None, links: float) -> Callable[[], float]:
        model = latentmf.MatrixFactorization(10, solver="gibbs", epochs=iterations, burn_in=iterations - 1,
                                             threads=threads, implicit_links=links)
        return lambda: timed(lambda: model.fit(train))[1] / iterations

    def theirs(implicit: bool) -> Callable[[], float]:
        X = _features(train.users, train.items, train, implicit=implicit)
        return lambda: timed(lambda: _quiet_myfm(X, train.values, iterations, 1))[1] / iterations

    for label, links, implicit in (("", 0.0, False), (", implicit feedback", 1.0, True)):
        runs = {f"latentmf gibbs sweep{label}, default threads": ours(None, links),
                f"latentmf gibbs sweep{label}, 1 thread": ours(1, links),
                f"myFM iteration{label} (1 thread)": theirs(implicit)}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, run in runs.items():
                times[name].append(run())
        mine = times[f"myFM iteration{label} (1 thread)"]
        print_table(f"One Gibbs iteration at rank 10 on u1.base{label} ({rounds} rounds, interleaved; latentmf "
                    f"implicit_links={links})",
                    ["system", "ms per iteration, by round", "latentmf / myFM (median of the rounds' ratios)"],
                    [[name, " ".join(f"{1e3 * s:.1f}" for s in seconds),
                      f"{statistics.median(a / b for a, b in zip(seconds, mine)):.2f}" if "latentmf" in name else ""]
                     for name, seconds in times.items()])


def synthetic(rounds: int) -> None:
    """ALS's time to the default SGD fit's test RMSE on the 9M set, whole fits timed in one run."""
    train, test = load_split(synthetic_split(TEN_MILLION, None))
    default = "default (AdaGrad SGD)"
    fits = {default: lambda: latentmf.MatrixFactorization().fit(train)}
    sgd, _ = timed(fits[default])
    target = clipped_rmse(test.values, sgd.predict(test.users, test.items))
    # ALS's default lambda (0.12) suits MovieLens 100k; 0.04 is its best on a validation split of
    # this set's training part (benchmarks/tune_rating.py --data synthetic --solver als). The epochs
    # each start needs to reach the target come from one fit that scores every epoch; the race then
    # times whole fits of that many epochs (the start, the index, everything fit does).
    def als(init: str, epochs: int) -> latentmf.MatrixFactorization:
        return latentmf.MatrixFactorization(solver="als", epochs=epochs, regularization=0.04, init=init)

    epochs_to_target = {}
    for init in ("random", "spectral"):
        model = als(init, 10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", latentmf.UnknownIdWarning)
            history = model.fit(train, validation=test).history_["validation_rmse"]
        reached = [k + 1 for k, rmse in enumerate(history) if rmse <= target]
        if reached:
            epochs_to_target[init] = reached[0]
    for init, epochs in epochs_to_target.items():
        fits[f"ALS, init={init!r}, {epochs} epochs"] = lambda init=init, epochs=epochs: als(init, epochs).fit(train)
    seconds: dict[str, list[float]] = {name: [] for name in fits}
    errors = {}
    for _ in range(rounds):
        for name, fit in fits.items():
            model, elapsed = timed(fit)
            seconds[name].append(elapsed)
            errors[name] = clipped_rmse(test.values, model.predict(test.users, test.items))
    sgd_seconds = seconds[default]
    rows = [[name, f"{errors[name]:.4f}", " ".join(f"{t:.2f}" for t in times),
             f"{statistics.median(a / b for a, b in zip(times, sgd_seconds)):.2f}"] for name, times in seconds.items()]
    missing = [init for init in ("random", "spectral") if init not in epochs_to_target]
    print_table(f"9M synthetic ratings (benchmarks/_common.py's split): whole fits, {rounds} rounds interleaved; "
                f"ALS at lambda 0.04 for the epochs its start needs to reach the default fit's test RMSE"
                + (f" (never within 10 epochs: {', '.join(missing)})" if missing else ""),
                ["fit", "test RMSE", "seconds, by round", "/ default fit (median of the rounds' ratios)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--synthetic", action="store_true", help="also the 9M synthetic comparison of ALS and SGD")
    args = parser.parse_args()
    print_context()
    movielens(args.rounds)
    if args.synthetic:
        synthetic(args.rounds)


if __name__ == "__main__":
    main()
