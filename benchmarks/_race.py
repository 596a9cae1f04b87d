"""latentmf against LIBMF-AVX in the same run: interleaved rounds, per-round ratios, and the fits
both benchmark scripts race.

Timings on a shared machine move by up to 2x between runs, so only ratios measured in one run
mean anything: every comparison here alternates the two systems (LIBMF, latentmf, LIBMF,
latentmf, ...) for several rounds and reports each round's times and the median of the per-round
ratios.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import latentmf
from _common import isolated, load_split, peak_rss_mib, print_table
from latentmf.functions import DEFAULT_BLOCKS

#: The settings of the race (README's convergence table): F = 32, L2 = 0.05 per rating, no
#: biases, float32, AdaGrad; latentmf's step tuned on the 9M set, LIBMF's its default.
FACTORS, REGULARIZATION, EPOCHS = 32, 0.05, 20
LATENTMF_STEP, LIBMF_STEP = 0.15, 0.1
#: Without biases, latentmf's factors start around a small positive mean (see MatrixFactorization).
INIT_STD = 0.01


def interleaved(rounds: int, runs: dict[str, Callable[[], Any]]) -> dict[str, list[Any]]:
    """Each of `runs` once per round, in the order given, for `rounds` rounds: their results."""
    results: dict[str, list[Any]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            results[name].append(run())
    return results


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of the per-round ratios numerator / denominator."""
    return statistics.median(n / d for n, d in zip(numerators, denominators))


def rounds_text(values: Sequence[float], digits: int = 2) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values)


def ratio_text(numerators: Sequence[float], denominators: Sequence[float]) -> str:
    """The median of the per-round ratios, then the rounds' ratios."""
    ratios = [n / d for n, d in zip(numerators, denominators)]
    return f"{statistics.median(ratios):.2f}x ({' '.join(f'{r:.2f}' for r in ratios)})"


def chunked_rmse(predict: Callable[[np.ndarray, np.ndarray], np.ndarray], test: latentmf.Ratings,
                 chunk: int = 1 << 20) -> float:
    """The RMSE of predict(users, items) on the test set, a chunk at a time (little extra memory)."""
    squared = 0.0
    for start in range(0, len(test), chunk):
        part = slice(start, start + chunk)
        errors = np.subtract(predict(test.users[part], test.items[part]), test.values[part], dtype=np.float64)
        squared += float(errors @ errors)
    return math.sqrt(squared / len(test))


@dataclass
class FitSettings:
    """One fit of the race: the data set's folder, threads and epochs."""
    folder: str
    threads: int
    epochs: int = EPOCHS
    validate: bool = False  # test RMSE after every epoch (untimed runs only)


def latentmf_fit(settings: FitSettings) -> dict[str, Any]:
    """A fit of the default solver in this process (run it in a fresh one: see _common.isolated),
    timed, with the process's peak memory after it; then its block-grid set-up alone (a second
    build of the same grid) and its test RMSE."""
    train, test = load_split(Path(settings.folder))
    model = latentmf.MatrixFactorization(FACTORS, epochs=settings.epochs, biases=False, learning_rate=LATENTMF_STEP,
                                         regularization=REGULARIZATION, init_std=INIT_STD, threads=settings.threads)
    start = time.perf_counter()
    model.fit(train, validation=test if settings.validate else None)
    fit_seconds = time.perf_counter() - start
    result = {"fit_seconds": fit_seconds, "epoch_seconds": list(model.history_["seconds"]),
              "validation_rmse": list(model.history_["validation_rmse"]), "fit_peak_rss_mib": peak_rss_mib()}
    start = time.perf_counter()
    latentmf._core.block_grid(train.users, train.items, train.values, train.n_users, train.n_items,
                              DEFAULT_BLOCKS, model.get_params()["seed"], "float32", settings.threads)
    result["grid_seconds"] = time.perf_counter() - start
    result["test_rmse"] = chunked_rmse(model.predict, test)
    return result


def libmf_fit(settings: FitSettings) -> dict[str, Any]:
    """LIBMF-AVX's mf_train on the same arrays in this process (run it in a fresh one), timed; its
    test RMSE (calc_rmse); with `validate`, its test RMSE after every iteration from its own table."""
    import _libmf

    libmf = _libmf.load()
    if libmf is None:
        return {"skipped": True}
    train, test = load_split(Path(settings.folder))
    nodes, test_nodes = _libmf.Nodes(train), _libmf.Nodes(test)
    del train
    parameter = libmf.parameter(factors=FACTORS, threads=settings.threads, regularization=REGULARIZATION,
                                learning_rate=LIBMF_STEP, iterations=settings.epochs)
    if settings.validate:
        return {"validation_rmse": libmf.validation_rmse(nodes, test_nodes, parameter)}
    seconds, model = libmf.train(nodes, parameter)
    result = {"fit_seconds": seconds, "test_rmse": libmf.rmse(model, test_nodes)}
    libmf.destroy(model)
    return result


def epochs_to(rmse: Sequence[float], target: float) -> int | None:
    """The number of epochs after which the test RMSE first is <= target, if ever."""
    return next((i + 1 for i, r in enumerate(rmse) if r <= target), None)


def fit_table(folder: str, title: str, threads: Sequence[int], rounds: int, libmf: bool) -> dict[str, Any]:
    """The whole fit at each thread count: per round and thread count LIBMF's mf_train of EPOCHS
    iterations, latentmf's fit, LIBMF's mf_train of 1 iteration (when `libmf`), each in a fresh
    process; prints the table (and the thread scaling). Returns the results by run."""
    runs: dict[str, Any] = {}
    for t in threads:
        if libmf:
            runs[f"libmf {t}"] = lambda t=t: isolated(libmf_fit, FitSettings(folder, t))
        runs[f"latentmf {t}"] = lambda t=t: isolated(latentmf_fit, FitSettings(folder, t))
        if libmf:
            runs[f"libmf one {t}"] = lambda t=t: isolated(libmf_fit, FitSettings(folder, t, epochs=1))
    r = interleaved(rounds, runs)
    rows = []
    for t in threads:
        ours = r[f"latentmf {t}"]
        fit = [x["fit_seconds"] for x in ours]
        grid = [x["grid_seconds"] for x in ours]
        setup = [x["fit_seconds"] - sum(x["epoch_seconds"]) for x in ours]
        row = [t, rounds_text(fit), rounds_text(grid, 3), f"{100 * median_ratio(grid, fit):.1f}%",
               f"{100 * median_ratio(setup, fit):.1f}%", f"{ours[0]['test_rmse']:.4f}",
               f"{statistics.median(x['fit_peak_rss_mib'] for x in ours):.0f}"]
        if libmf:
            theirs, one = r[f"libmf {t}"], r[f"libmf one {t}"]
            total = [x["fit_seconds"] for x in theirs]
            training = [x["fit_seconds"] - y["fit_seconds"] for x, y in zip(theirs, one)]
            row += [rounds_text(total), rounds_text(training), ratio_text(total, fit), ratio_text(training, fit),
                    f"{theirs[0]['test_rmse']:.4f}", f"{statistics.median(x['peak_rss_mib'] for x in theirs):.0f}"]
        rows.append(row)
    header = ["threads", "latentmf fit s", "grid set-up s", "grid share", "all set-up share", "test RMSE", "peak MiB"]
    if libmf:
        header += ["LIBMF mf_train s", "LIBMF training s", "speed-up vs mf_train", "speed-up vs training",
                   "LIBMF test RMSE", "LIBMF peak MiB"]
    print_table(f"{title}: whole fit, {EPOCHS} epochs, F = {FACTORS}, L2 = {REGULARIZATION}, no biases, "
                f"AdaGrad, each run in a fresh process, per round ({rounds} rounds, interleaved). "
                f"latentmf's grid set-up is the block grid built alone after the fit; all set-up = fit - its epochs. "
                f"LIBMF training = mf_train(20) - mf_train(1), leaving out its set-up and one iteration. "
                f"speed-up = LIBMF / latentmf fit, median of the rounds (then each round's)", header, rows)
    if len(threads) > 1:
        lo, hi = min(threads), max(threads)
        scaling = [["latentmf fit", ratio_text([x["fit_seconds"] for x in r[f"latentmf {lo}"]],
                                               [x["fit_seconds"] for x in r[f"latentmf {hi}"]])]]
        if libmf:
            scaling.append(["LIBMF mf_train", ratio_text([x["fit_seconds"] for x in r[f"libmf {lo}"]],
                                                         [x["fit_seconds"] for x in r[f"libmf {hi}"]])])
        print_table(f"{title}: thread scaling of the fit, time at {lo} thread(s) / time at {hi} (same rounds as "
                    f"above)", ["system", f"{lo} -> {hi} threads"], scaling)
    return r
