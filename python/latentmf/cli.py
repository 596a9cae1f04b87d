"""The `latentmf` command (also `python -m latentmf`): train, evaluate, predict, recommend, info, demo."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any, Sequence

import numpy as np

from . import __version__, build_info
from ._tables import column, numbers, read_table, write_rows
from .answers import UnknownIdError, UnknownIdWarning
from .base import FactorModel
from .bpr import BayesianPersonalizedRanking
from .data import Ratings
from .datasets import load_movielens, synthetic
from .implicit import ImplicitMatrixFactorization
from .model import MatrixFactorization
from .rating_solvers import STEPPED

EPILOG = """\
examples:
  latentmf train ratings.csv -o model.npz --split time --plot curve.png
  latentmf train --dataset ml-100k --data-dir ~/data -o model.npz
  latentmf evaluate model.npz --dataset ml-100k --data-dir ~/data --split time
  latentmf recommend model.npz --user 196 --user 186 -k 5
  latentmf predict model.npz --user 196 --item 242 --item 302 --format json

Run 'latentmf COMMAND --help' for the options of each command."""

DATA_HELP = """\
Ratings come from a file (.csv, .tsv or .parquet; Parquet needs pandas and pyarrow) with a header
row and columns for user, item and rating (found by name: user/userId/user_id, item/itemId/movieId,
rating/score; or name them with --user-col, --item-col, --rating-col), or from a named MovieLens
release with --dataset (downloaded once into --data-dir, or the LATENTMF_DATA directory, or
~/.cache/latentmf)."""


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("ratings")
    source.add_argument("data", nargs="?", metavar="DATA", help="ratings file: .csv, .tsv or .parquet (or use --dataset)")
    source.add_argument("--dataset", metavar="NAME",
                        help="a MovieLens release instead of a file: ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, "
                             "ml-32m, ml-latest-small, ml-latest")
    source.add_argument("--data-dir", metavar="DIR",
                        help="where named datasets are found or downloaded to (default: $LATENTMF_DATA or "
                             "~/.cache/latentmf)")
    source.add_argument("--no-header", action="store_true",
                        help="the file has no header row: its columns are user, item, rating[, timestamp]")
    for role in ("user", "item", "rating", "timestamp"):
        source.add_argument(f"--{role}-col", metavar="NAME", help=f"name of the {role} column")


def _add_split_arguments(parser: argparse.ArgumentParser) -> None:
    split = parser.add_argument_group("held-out ratings")
    split.add_argument("--split", choices=["none", "random", "user", "time"], default="none",
                       help="hold out ratings: at random, a share of every user, or every user's latest "
                            "(needs timestamps) (default: %(default)s)")
    split.add_argument("--test-size", type=float, default=None,
                       help="the share held out (random, user; default 0.2) or the ratings per user (time; "
                            "default 1)")
    split.add_argument("--seed", type=int, default=0, help="seed of the split and of the model (default: 0)")


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["csv", "json"], default="csv", help="output format (default: csv)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of the standard output")


def _add_unknown_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--unknown", choices=["warn", "mean", "error"], default=None,
                        help="ids the model was not trained on: predict them from the mean rating and biases with a "
                             "note (warn), or without (mean; recommend then lists the items of highest bias), or "
                             "refuse them (error) (default: the model's own setting)")


#: What the command line says of an unknown id instead of the Python API's hint.
UNKNOWN_HINT = " (--unknown mean answers unknown ids from the mean rating and biases)"


def _raw_columns(args: argparse.Namespace, rated: bool = True) -> dict[str, Any]:
    """The ratings as raw columns (user, item, rating, timestamp or None), from the file or dataset.
    Without `rated` the rating column may be absent: every row is then an interaction of strength 1."""
    if args.dataset is not None:
        if args.data is not None:
            raise ValueError("give a ratings file or --dataset, not both")
        ratings = load_movielens(args.dataset, cache_dir=args.data_dir)
        return {"user": _raw_ids(ratings.user_ids, ratings.users), "item": _raw_ids(ratings.item_ids, ratings.items),
                "rating": ratings.values, "timestamp": ratings.timestamps}
    if args.data is None:
        raise ValueError("give a ratings file or --dataset NAME")
    table = read_table(args.data, header=not args.no_header)
    required = {"user": True, "item": True, "rating": rated, "timestamp": False}
    columns = {role: column(table, role, getattr(args, f"{role}_col"), args.data, required=required[role])
               for role in required}
    if columns["rating"] is None:
        columns["rating"] = np.ones(len(columns["user"]), dtype=np.float32)
    columns["rating"] = numbers(columns["rating"], "rating", args.data, header=not args.no_header)
    return columns


def _raw_ids(ids: Any, indices: np.ndarray) -> np.ndarray:
    return indices if ids is None else ids.to_ids(indices)


def _ratings(args: argparse.Namespace, ids_from: Any = None, rated: bool = True) -> Ratings:
    raw = _raw_columns(args, rated)
    return Ratings.from_ids(raw["user"], raw["item"], raw["rating"], timestamps=raw["timestamp"],
                            ids_from=ids_from)


def _test_size(value: float) -> float | int:
    """--test-size as the splits take it: a fraction in (0, 1), or a whole number of ratings."""
    if value >= 1:
        if value != int(value):
            raise ValueError(f"test_size must be a fraction in (0, 1) or a whole number of ratings, got {value}")
        return int(value)
    return value


def _split(ratings: Ratings, args: argparse.Namespace) -> tuple[Ratings, Ratings | None]:
    if args.split == "none":
        return ratings, None
    if args.split == "time":
        return ratings.split_by_time(_test_size(1 if args.test_size is None else args.test_size))
    size = _test_size(0.2 if args.test_size is None else args.test_size)
    if args.split == "user":
        return ratings.split_by_user(size, seed=args.seed)
    return ratings.split(size, seed=args.seed)


def _new_model(args: argparse.Namespace) -> FactorModel:
    """The model that --model names, with the options given (the rest at the class's defaults)."""
    common = {"threads": args.threads, "seed": args.seed, "verbose": True, "progress": args.progress,
              "early_stopping": args.early_stopping}
    given = {name: getattr(args, name) for name in ("factors", "epochs", "regularization", "learning_rate", "alpha")
             if getattr(args, name) is not None}
    if args.model == "bpr":
        if args.solver is not None or "alpha" in given or args.init is not None:
            raise ValueError("--model bpr takes no --solver, --alpha or --init")
        return BayesianPersonalizedRanking(**given, **common, biases=not args.no_biases)
    if args.model == "implicit":
        refused = [f"--{name.replace('_', '-')}" for name in ("learning_rate",) if name in given]
        if args.solver is not None or args.no_biases or refused or args.init is not None:
            raise ValueError("--model implicit takes no --solver, --learning-rate, --no-biases or --init")
        return ImplicitMatrixFactorization(**given, **common)
    if "alpha" in given:
        raise ValueError("--alpha is for --model implicit")
    if "learning_rate" in given and args.solver not in (None, *STEPPED):
        raise ValueError(f"--solver {args.solver} takes no --learning-rate (it is for {', '.join(STEPPED)})")
    if args.init is not None and args.solver != "als":
        raise ValueError("--init is for --solver als")
    return MatrixFactorization(**given, **common, solver=args.solver or "adagrad", biases=not args.no_biases,
                               unknown=args.unknown, init=args.init or "random")


def _train(args: argparse.Namespace) -> int:
    train, test = _split(_ratings(args, rated=args.model == "rating"), args)
    model = _new_model(args)
    print(f"Training a {type(model).__name__} on {len(train)} ratings of {train.n_users} users and "
          f"{train.n_items} items"
          + ("" if test is None else f", holding out {len(test)}") + ".", flush=True)
    model.fit(train, validation=test)
    if model.best_epoch_ is not None:
        print(f"Kept epoch {model.best_epoch_ + 1}, the best on the held-out ratings.")
    model.save(args.output)
    print(f"Saved the model to {args.output}.")
    if args.plot is not None:
        _plot(model.history_, args.plot)
        print(f"Saved the learning curves to {args.plot}.")
    return 0


def _plot(history: dict[str, list[float]], path: str) -> None:
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'latentmf[plot]'") from None
    figure = Figure(figsize=(6, 4), layout="tight")
    axes = figure.subplots()
    epochs = np.asarray(history["epoch"]) + 1
    measure, curves = _curves(history)
    for label, values in curves.items():
        if not np.isnan(values).all():
            axes.plot(epochs, values, marker="o", label=label)
    axes.set(xlabel="epoch", ylabel=measure, title="Learning curves")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(path)


def _curves(history: dict[str, list[float]]) -> tuple[str, dict[str, list[float]]]:
    """What to plot of a history, and its name: a rating model's training and held-out RMSE; a
    ranking model's held-out NDCG@10, or its training loss when nothing was held out (it has no
    RMSE)."""
    if "train_rmse" in history:
        return "RMSE", {"training": history["train_rmse"], "held out": history["validation_rmse"]}
    if not np.isnan(history["validation_ndcg"]).all():
        return "NDCG@10", {"held out": history["validation_ndcg"]}
    return "loss", {"training": history["loss"]}


def _load_model(path: str) -> FactorModel:
    from .persistence import load

    return load(path)


def _evaluate(args: argparse.Namespace) -> int:
    from .metrics import evaluate

    model = _load_model(args.model)
    if args.split == "none":
        test = _ratings(args, ids_from=model, rated=model.predicts_ratings)
    else:
        held_out = _split(_ratings(args, rated=model.predicts_ratings), args)[1]
        assert held_out is not None  # a split always holds some ratings out
        test = held_out
        if test.user_ids != model.user_ids_ or test.item_ids != model.item_ids_:
            raise ValueError("the ratings have other users or items than the model: evaluate on the data the model "
                             "was trained from, with the same --split, --test-size and --seed")
    report = evaluate(model, test, k=args.k, threshold=args.threshold)
    if args.format == "json":
        text = json.dumps(report, indent=1) + "\n"
        if args.output is None:
            sys.stdout.write(text)
        else:
            with open(args.output, "w", encoding="utf-8") as file:
                file.write(text)
    else:
        write_rows(["metric", "value"], [list(report), list(report.values())], args.output, "csv")
    return 0


def _ids(model_ids: Any, values: Sequence[Any], name: str) -> np.ndarray:
    """Ids from the command line or a file in the type of the model's ids: strings if it has string
    ids, else integers."""
    array = np.asarray(values)
    if model_ids is not None and model_ids.kind == "str":
        return array.astype(str)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    try:
        return array.astype(str).astype(np.int64)
    except ValueError:
        raise ValueError(f"{name} must be integers for this model, got {array.tolist()[:3]}") from None


def _answering(args: argparse.Namespace) -> FactorModel:
    """The model of MODEL, with the --unknown policy when given."""
    model = _load_model(args.model)
    if args.unknown is not None:
        model.set_params(unknown=args.unknown)
    return model


def _predict(args: argparse.Namespace) -> int:
    model = _answering(args)
    if args.data is not None:
        table = read_table(args.data, header=not args.no_header)
        users = column(table, "user", args.user_col, args.data)
        items = column(table, "item", args.item_col, args.data)
    elif args.user and args.item:
        users, items = args.user, args.item
        if len(users) == 1:
            users = users * len(items)
        if len(users) != len(items):
            raise ValueError("give one --user, or as many --user as --item")
    else:
        raise ValueError("give a file of (user, item) pairs, or --user and --item")
    users = _ids(model.user_ids_, users, "users")
    items = _ids(model.item_ids_, items, "items")
    write_rows(["user", "item", "prediction"], [users, items, model.predict(users, items)], args.output,
               args.format)
    return 0


def _recommend(args: argparse.Namespace) -> int:
    model = _answering(args)
    if args.all:
        users = model.user_ids_.ids if model.user_ids_ is not None else np.arange(model.n_users_)
    elif args.users_file is not None:
        with open(args.users_file, encoding="utf-8") as file:
            users = _ids(model.user_ids_, [line.strip() for line in file if line.strip()], "users")
    elif args.user:
        users = _ids(model.user_ids_, args.user, "users")
    else:
        raise ValueError("give --user (one or more), --users-file or --all")
    items, scores = model.recommend_all(users, k=args.k, exclude_seen=not args.include_seen)
    found = ~np.ma.getmaskarray(items)
    rows = np.nonzero(found)
    ranks = np.broadcast_to(np.arange(1, args.k + 1), found.shape)[rows]
    write_rows(["user", "rank", "item", "score"],
               [np.asarray(users)[rows[0]], ranks, items.data[rows], scores.data[rows]], args.output, args.format)
    return 0


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
        prog="latentmf", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Latent-factor (matrix factorization) models of ratings: train a model on a table of "
                    "(user, item, rating), evaluate it, and get predictions and top-N recommendations in your "
                    "own user and item ids.",
    )
    parser.add_argument("--version", action="version", version=f"latentmf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    raw = argparse.RawDescriptionHelpFormatter

    train = commands.add_parser(
        "train", help="fit a model to ratings and save it", formatter_class=raw,
        description="Fits a model to the ratings, printing each epoch's loss and RMSE (with a progress bar "
                    "when tqdm is installed), and saves it to a model file for the other commands.\n\n" + DATA_HELP)
    _add_data_arguments(train)
    _add_split_arguments(train)
    model = train.add_argument_group("model")
    model.add_argument("--model", choices=["rating", "implicit", "bpr"], default="rating",
                       help="rating: predicts ratings (MatrixFactorization); implicit: ranks items from which ones "
                            "each user chose (ImplicitMatrixFactorization, iALS), what recommends best; bpr: ranks "
                            "them by pairwise comparisons (BayesianPersonalizedRanking); for these two the rating "
                            "column is optional (every row an interaction) (default: %(default)s)")
    model.add_argument("--factors", type=int, default=None, help="latent factors (default: the model's)")
    model.add_argument("--epochs", type=int, default=None, help="training epochs (default: the model's)")
    model.add_argument("--solver", choices=["adagrad", "sgd", "gd", "als", "gibbs"], default=None,
                       help="training algorithm of the rating model (default: adagrad)")
    model.add_argument("--learning-rate", type=float, default=None,
                       help="step size of the solvers adagrad, sgd and gd (default: the solver's)")
    model.add_argument("--regularization", type=float, default=None, help="L2 weight (default: the model's)")
    model.add_argument("--init", choices=["random", "spectral"], default=None,
                       help="--solver als: start from random factors, or V in the leading singular subspace of "
                            "the residuals, which needs fewer epochs (default: random)")
    model.add_argument("--alpha", type=float, default=None,
                       help="implicit model: how fast confidence grows with an interaction's strength "
                            "(default: the model's)")
    model.add_argument("--no-biases", action="store_true", help="leave out the mean rating and the biases")
    model.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                       help="with --split, stop when the held-out RMSE has not improved for PATIENCE epochs and "
                            "keep the best epoch")
    model.add_argument("--unknown", choices=["warn", "mean", "error"], default="warn",
                       help="what the model does with ids it was not trained on: predict from the mean rating and "
                            "biases with a note (warn), or without (mean), or refuse them (error) (default: "
                            "%(default)s)")
    model.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                       help="show a progress bar when tqdm is installed (default: on)")
    train.add_argument("--plot", metavar="PNG", help="save the learning curves there (RMSE per epoch; for implicit "
                                                     "and bpr the held-out NDCG@10, or the loss); needs matplotlib")
    train.add_argument("-o", "--output", metavar="MODEL", required=True, help="the model file to write (.npz)")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "evaluate", help="measure a model on held-out ratings", formatter_class=raw,
        description="Prints precision, recall, NDCG and MAP at k and coverage of the top-k lists (leaving out "
                    "what each user had in training) and, for a rating model, RMSE and MAE of its predictions; "
                    "the model file says which kind of model it is. Give the held-out ratings as a file or "
                    "dataset, or give the data the model was trained from with the same --split, --test-size and "
                    "--seed to evaluate on its held-out part.\n\n" + DATA_HELP)
    evaluate.add_argument("model", metavar="MODEL", help="a model file written by 'latentmf train'")
    _add_data_arguments(evaluate)
    _add_split_arguments(evaluate)
    evaluate.add_argument("-k", type=int, default=10, help="length of the top-k lists (default: %(default)s)")
    evaluate.add_argument("--threshold", type=float, default=None,
                          help="a held-out rating counts as relevant when at least this (default: any rating)")
    _add_output_arguments(evaluate)
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser(
        "predict", help="predicted ratings (or scores) for (user, item) pairs", formatter_class=raw,
        description="Prints the predicted rating (an implicit model: the score) of each (user, item) pair, in your "
                    "ids: from a file with user and item columns, or from --user and --item (one user with many "
                    "items, or pairs).")
    predict.add_argument("model", metavar="MODEL", help="a model file written by 'latentmf train'")
    predict.add_argument("data", nargs="?", metavar="PAIRS", help="a .csv, .tsv or .parquet file of pairs")
    predict.add_argument("--user", action="append", help="a user id (repeat for pairs)")
    predict.add_argument("--item", action="append", help="an item id (repeat for more)")
    predict.add_argument("--no-header", action="store_true", help="the file has no header: columns user, item")
    predict.add_argument("--user-col", metavar="NAME", help="name of the user column")
    predict.add_argument("--item-col", metavar="NAME", help="name of the item column")
    _add_unknown_argument(predict)
    _add_output_arguments(predict)
    predict.set_defaults(run=_predict)

    recommend = commands.add_parser(
        "recommend", help="top-k items for users", formatter_class=raw,
        description="Prints the k items of highest score for each user (rows of user, rank, item, score), "
                    "leaving out the items the user had in training: for a rating model the score is the predicted "
                    "rating, unclipped; for an implicit model it ranks items by how likely the user is to choose "
                    "them. The model file says which kind of model it is.")
    recommend.add_argument("model", metavar="MODEL", help="a model file written by 'latentmf train'")
    recommend.add_argument("--user", action="append", help="a user id (repeat for more users)")
    recommend.add_argument("--users-file", metavar="FILE", help="a file with one user id per line")
    recommend.add_argument("--all", action="store_true", help="every user of the model")
    recommend.add_argument("-k", type=int, default=10, help="items per user (default: %(default)s)")
    recommend.add_argument("--include-seen", action="store_true", help="keep the items each user rated in training")
    _add_unknown_argument(recommend)
    _add_output_arguments(recommend)
    recommend.set_defaults(run=_recommend)

    info = commands.add_parser("info", help="print the version and how the native core was built",
                               description="Prints the version, OpenMP, compiler, Eigen version and "
                                           "instruction sets of the native core, as JSON.")
    info.set_defaults(run=_info)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with _notes(args.command):
            return args.run(args)
    except BrokenPipeError:
        # The reader went away (`latentmf info | head -3`): nothing more to say, and nowhere to say it.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except UnknownIdError as error:
        hint = UNKNOWN_HINT if args.command in ("predict", "recommend") else ""
        print(f"latentmf {args.command}: error: {error.problem}{hint}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, MemoryError, OSError, ImportError, ArithmeticError) as error:
        print(f"latentmf {args.command}: error: {error}", file=sys.stderr)
        return 2


@contextlib.contextmanager
def _notes(command: str) -> Iterator[None]:
    """The model's warnings of unknown ids as one line each on stderr, not Python's warning format."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnknownIdWarning)
        try:
            yield
        finally:
            for warning in caught:
                if issubclass(warning.category, UnknownIdWarning):
                    print(f"latentmf {command}: note: {warning.message}", file=sys.stderr)
                else:
                    warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
