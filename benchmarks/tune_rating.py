"""How MatrixFactorization's defaults were chosen: for each solver, with biases and without, a grid
on validation splits, never on a test set.

- MovieLens 100k: u1.base split at random by rating (seed 0) into 80% to fit and 20% to validate,
  as u1.test is split from the whole set; u1.test is used only to report the defaults' RMSE (the
  targets), never to choose.
- The 9M synthetic set (latentmf.datasets.synthetic(200000, 20000, 10_000_000, rank=16, noise=0.5),
  split 90/10 as benchmarks/_common.py does): its 9M training ratings split at random (seed 0) into
  90% to fit and 10% to validate. Each fit costs seconds to minutes, so its grids have few points.

Epochs are not an axis of the grid: each point fits for the largest number of epochs with the
validation set, and ``history_`` holds the validation RMSE (predictions clipped) after every
epoch, read at each checkpoint (for "gibbs" the posterior mean after that many sweeps, with
its burn_in). A fit that diverges counts as infinitely bad. A point is printed as its
hyper-parameters and the validation RMSE at each checkpoint; then the best, the defaults' validation
RMSE (a fit of MatrixFactorization(solver=..., biases=...) alone, with the values it resolved)
and its gap to the best in %, and for MovieLens the defaults' RMSE on u1.test.

The defaults (rating_solvers.DEFAULTS) were read off these grids: for each solver and biases, the
point of best validation RMSE on MovieLens 100k at 32 factors (the default) or, among the points
within 0.3% of it, the one best on the 9M set. The two sets want different lambdas (the 9M set
0.02 to 0.04, MovieLens 100k more), so no single point of the AdaGrad, ALS or Gibbs grids is within
1% of the best on both; docs/guide/training.md has the defaults' figures. ALS's grids also try
init="spectral": it reaches each lambda's optimum in fewer epochs (on the 9M set the best point
at 32 factors, 0.7149, is its 3rd epoch at lambda 0.04, where the random start's best is 0.7192),
but the rule still picks lambda 0.12 and 15 epochs with biases, where the two starts differ by
0.0001 on the 9M set, so ALS keeps init="random" by default. Gibbs's init_std (0.1,
not 0.01) was tried by hand, outside the grid: on the 9M set the chain from factors of 0.01 had not
left the fit of the biases after 100 sweeps (0.976), from 0.1 it reached 0.713 in 40; on
MovieLens 100k it costs 0.2%.

    python benchmarks/tune_rating.py --data ml100k [--solver adagrad,sgd,gd,als,gibbs] [--biases on,off]
    python benchmarks/tune_rating.py --data synthetic --solver adagrad,sgd,als [--biases on,off]

--defaults-only fits the defaults alone (their validation RMSE, and u1.test's), without the grid.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

import latentmf
from _common import ML100K, TEN_MILLION, load_split, synthetic_split
from latentmf import metrics

SOLVERS = ("adagrad", "sgd", "gd", "als", "gibbs")

#: Per data set and solver: the axes of the grid, and the epochs at which each point is read. "gd"'s
#: steps are given as `step_scale`, the step times the largest number of ratings of one user or item
#: (as rating_solvers.GD_STEP_SCALE gives its default).
GRIDS: dict[str, dict[str, tuple[dict[str, list[Any]], list[int]]]] = {
    "ml100k": {
        "adagrad": ({"factors": [16, 32, 64], "regularization": [0.03, 0.05, 0.07, 0.1],
                     "learning_rate": [0.02, 0.03, 0.05, 0.1]}, [5, 10, 15, 20, 30, 40]),
        "sgd": ({"factors": [32, 64], "regularization": [0.03, 0.05, 0.07, 0.1],
                 "learning_rate": [0.005, 0.01, 0.015, 0.02]}, [10, 20, 30, 40, 60]),
        "gd": ({"factors": [16, 32], "regularization": [0.03, 0.07, 0.15], "step_scale": [0.5, 1.0, 1.5]},
               [20, 50, 100, 200]),
        "als": ({"factors": [16, 32, 64, 128], "regularization": [0.05, 0.1, 0.12, 0.15, 0.2, 0.3],
                 "init": ["random", "spectral"]}, [2, 3, 5, 10, 15, 20]),
        "gibbs": ({"factors": [10, 16, 32, 64], "burn_in": [20, 50]}, [60, 100, 150, 200, 300]),
    },
    "synthetic": {
        "adagrad": ({"factors": [32, 64], "regularization": [0.02, 0.03, 0.05, 0.07, 0.1],
                     "learning_rate": [0.02, 0.03, 0.05, 0.1]}, [5, 10, 15, 20, 30, 40]),
        "sgd": ({"factors": [32, 64], "regularization": [0.03, 0.05, 0.07, 0.1],
                 "learning_rate": [0.01, 0.015, 0.02]}, [10, 20, 30, 40, 60]),
        "gd": ({"factors": [32], "regularization": [0.03], "step_scale": [0.5, 1.0]}, [50, 100, 200]),
        "als": ({"factors": [16, 32], "regularization": [0.02, 0.04, 0.07, 0.12, 0.15], "init": ["random", "spectral"]},
                [2, 3, 5, 10, 15]),
        "gibbs": ({"factors": [16], "burn_in": [20]}, [40, 60, 100]),
    },
}


def read_u1(name: str) -> latentmf.Ratings:
    table = np.loadtxt(ML100K / name, dtype=np.int64, usecols=(0, 1, 2))
    return latentmf.Ratings(table[:, 0] - 1, table[:, 1] - 1, table[:, 2].astype(np.float32), 943, 1682)


def data_sets(name: str) -> tuple[latentmf.Ratings, latentmf.Ratings, latentmf.Ratings, latentmf.Ratings | None]:
    """(training, test, the part of training to fit, the part to validate); no test for synthetic."""
    if name == "ml100k":
        train, test = read_u1("u1.base"), read_u1("u1.test")
        return (train, test, *train.split(0.2, seed=0))
    train, _ = load_split(synthetic_split(TEN_MILLION, None))
    return (train, None, *train.split(0.1, seed=0))


def validation_curve(params: dict[str, Any], fit: latentmf.Ratings, validation: latentmf.Ratings,
                     threads: int) -> tuple[list[float], dict[str, Any]]:
    """The validation RMSE after every epoch of a fit with `params`, and the settings it ran with;
    a fit that diverges reads as inf from the epoch it failed."""
    model = latentmf.MatrixFactorization(**params, threads=threads, unknown="mean")
    try:
        model.fit(fit, validation=validation)
    except FloatingPointError:
        pass
    curve = list(model.history_["validation_rmse"])
    epochs = params.get("epochs") or len(curve)
    return curve + [math.inf] * (epochs - len(curve)), model.settings_ if curve else {}


def grid_points(axes: dict[str, list[Any]], fit: latentmf.Ratings) -> list[dict[str, Any]]:
    """Every combination of the axes' values; `step_scale` becomes GD's learning_rate on `fit`."""
    points: list[dict[str, Any]] = [{}]
    for name, values in axes.items():
        points = [{**point, name: value} for point in points for value in values]
    busiest = max(np.bincount(fit.users).max(), np.bincount(fit.items).max())
    for point in points:
        if "step_scale" in point:
            point["learning_rate"] = point["step_scale"] / float(busiest)
    return points


def tune(solver: str, biases: bool, data: str, sets: tuple[Any, ...], threads: int, grid: bool) -> None:
    train, test, fit, validation = sets
    axes, checkpoints = GRIDS[data][solver]
    print(f"\n{data}, solver={solver!r}, biases={biases}: validation RMSE at epochs {checkpoints}", flush=True)
    best = (math.inf, {})
    for point in grid_points(axes, fit) if grid else []:
        params = {key: value for key, value in point.items() if key != "step_scale"}
        start = time.perf_counter()
        curve, _ = validation_curve({**params, "solver": solver, "biases": biases, "epochs": max(checkpoints)},
                                    fit, validation, threads)
        read = {epochs: curve[epochs - 1] for epochs in checkpoints
                if solver != "gibbs" or epochs > point["burn_in"]}
        shown = {key: value for key, value in point.items() if key != "learning_rate" or "step_scale" not in point}
        print(f"  {shown}: " + " ".join(f"{value:.4f}" for value in read.values())
              + f"  ({time.perf_counter() - start:.0f} s)", flush=True)
        for epochs, value in read.items():
            if value < best[0]:
                best = (value, {**shown, "epochs": epochs})
    default, settings = validation_curve({"solver": solver, "biases": biases}, fit, validation, threads)
    resolved = {key: settings.get(key) for key in ("factors", "epochs", "regularization", "learning_rate",
                                                    "burn_in", "init_std", "init")}
    print(f"  defaults {resolved}: {default[-1]:.4f}")
    if grid:
        print(f"  best: {best[0]:.4f} at {best[1]}; the defaults are "
              f"{100 * (default[-1] / min(best[0], default[-1]) - 1):+.2f}% from it")
    if test is not None:
        model = latentmf.MatrixFactorization(solver=solver, biases=biases, threads=threads).fit(train)
        print(f"  defaults on u1.test: {metrics.rmse(test.values, model.predict(test.users, test.items)):.4f}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("ml100k", "synthetic"), default="ml100k")
    parser.add_argument("--solver", default=",".join(SOLVERS), help="comma-separated solvers")
    parser.add_argument("--biases", default="on,off", help="on, off or on,off")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--defaults-only", action="store_true", help="fit the defaults alone, without the grid")
    args = parser.parse_args()
    if args.data == "ml100k" and not (ML100K / "u1.base").exists():
        print(f"MovieLens 100k is not at {ML100K}: nothing to tune on.")
        return
    sets = data_sets(args.data)
    for solver in args.solver.split(","):
        for biases in args.biases.split(","):
            tune(solver, biases == "on", args.data, sets, args.threads, grid=not args.defaults_only)


if __name__ == "__main__":
    main()
