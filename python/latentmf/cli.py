"""The `latentmf` command (also `python -m latentmf`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence

import numpy as np

from . import __version__, build_info
from .datasets import synthetic
from .model import MatrixFactorization


def _demo(args: argparse.Namespace) -> int:
    print(f"Building synthetic MovieLens-shaped ratings: {args.users} users, {args.items} items, "
          f"{args.ratings} ratings (seed {args.seed}) ...", flush=True)
    train, test = synthetic(args.users, args.items, args.ratings, seed=args.seed).split(0.1, seed=args.seed)
    print(f"Training on {len(train)} ratings, holding out {len(test)}.", flush=True)
    model = MatrixFactorization(factors=args.factors, epochs=args.epochs, threads=args.threads,
                                seed=args.seed, verbose=True)
    start = time.perf_counter()
    model.fit(train, validation=test)
    seconds = time.perf_counter() - start
    baseline = float(np.sqrt(np.mean((test.values - train.mean) ** 2)))
    print(f"Held-out RMSE {model.history_['validation_rmse'][-1]:.4f} (predicting the mean rating: "
          f"{baseline:.4f}) after {args.epochs} epochs in "
          f"{seconds:.2f}s ({seconds / args.epochs / len(train) * 1e9:.1f} ns per rating and epoch, "
          f"evaluation included).")
    items, scores = model.recommend(0, k=5)
    print("Top 5 items for user 0: " + ", ".join(f"{i} ({s:.2f})" for i, s in zip(items, scores)))
    return 0


def _info(args: argparse.Namespace) -> int:
    print(json.dumps({"version": __version__, **build_info()}, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentmf",
        description="Latent-factor (matrix factorization) models of ratings.",
    )
    parser.add_argument("--version", action="version", version=f"latentmf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="fit a model on built-in synthetic data (no download) and show the results",
        description="Builds MovieLens-shaped synthetic ratings in memory, fits a model with the default "
                    "settings while printing each epoch, then prints the held-out RMSE, the time and the "
                    "top-5 recommendations for user 0.")
    demo.add_argument("--users", type=int, default=6040, help="number of users (default: %(default)s)")
    demo.add_argument("--items", type=int, default=3706, help="number of items (default: %(default)s)")
    demo.add_argument("--ratings", type=int, default=1_000_000, help="number of ratings (default: %(default)s)")
    demo.add_argument("--factors", type=int, default=32, help="latent factors (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=20, help="training epochs (default: %(default)s)")
    demo.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.set_defaults(run=_demo)

    info = commands.add_parser("info", help="print the version and how the native core was built",
                               description="Prints the version, OpenMP, compiler, Eigen version and "
                                           "instruction sets of the native core, as JSON.")
    info.set_defaults(run=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, MemoryError) as error:
        print(f"latentmf {args.command}: error: {error}", file=sys.stderr)
        return 2
