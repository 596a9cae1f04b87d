"""Peak memory of fit on the 10M-rating set, against the size of the ratings plus the factors.

On the MovieLens-shaped synthetic set (latentmf.datasets.synthetic(200000, 20000, 10_000_000,
rank=16, noise=0.5, seed=0) split 90/10: 9.0M train / 1.0M test; see _common.py), each
configuration runs in a fresh process that loads the caller's arrays as they were written (int32
users and items, float32 ratings: used without a copy), then fits.
It prints, in MiB:

- before: the process after loading the data (interpreter, NumPy, latentmf, the caller's arrays);
- ratings: the caller's training arrays; factors: the native model (U, V, biases, AdaGrad
  accumulators, all allocated at once);
- peak: the whole-process peak resident memory of the fit; fit's share is peak - before;
- what fit holds on top of the factors: the ratings in its own order (the block grid for SGD: an
  item index and a value per rating; the by-user and by-item orderings for GD: twice that), the
  copy of the factors it rolls an epoch back to (two with early stopping), and the validation
  RMSE's chunk of predictions;
- fit / (ratings + factors): the ratio the issue asks to stay near 1.

    python benchmarks/bench_memory.py [--data DIR] [--epochs 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import latentmf
from _common import TEN_MILLION, isolated, load_split, peak_rss_mib, print_context, print_table, synthetic_split

MIB = 2**20

CONFIGURATIONS = [
    # (label, hyper-parameters, with validation)
    ("adagrad F=32", dict(factors=32), False),
    ("adagrad F=32, validation", dict(factors=32), True),
    ("adagrad F=32, early stopping", dict(factors=32, early_stopping=2), True),
    ("sgd F=128", dict(factors=128, solver="sgd", learning_rate=0.005), False),
    ("adagrad F=32 float64", dict(factors=32, dtype="float64"), False),
    ("gd F=32", dict(factors=32, solver="gd"), False),
]


def fit(folder: str | None, params: dict[str, Any], validation: bool, epochs: int) -> dict[str, Any]:
    train, test = load_split(synthetic_split(TEN_MILLION, folder))
    before = peak_rss_mib()
    ratings = (train.users.nbytes + train.items.nbytes + train.values.nbytes) / MIB
    model = latentmf.MatrixFactorization(epochs=epochs, seed=0, **params)
    start = time.perf_counter()
    model.fit(train, validation=test if validation else None)
    seconds = time.perf_counter() - start
    native = model._native
    factors = sum(a.nbytes for a in (native.U, native.V, native.user_bias, native.item_bias,
                                     native.user_accumulators, native.item_accumulators)) / MIB
    return {"before": before, "ratings": ratings, "factors": factors, "seconds": seconds, "n": len(train)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="folder with train.npz/test.npz of the 10M set as _common.write_split writes "
                                       "them (default: generated once into the temporary directory)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit (the peak is reached in the first)")
    args = parser.parse_args()
    print_context()
    synthetic_split(TEN_MILLION, args.data)  # generate before measuring
    rows = []
    for label, params, validation in CONFIGURATIONS:
        r = isolated(fit, args.data, params, validation, args.epochs)
        share = r["peak_rss_mib"] - r["before"]
        rows.append([label, f"{r['before']:.0f}", f"{r['ratings']:.0f}", f"{r['factors']:.0f}",
                     f"{r['peak_rss_mib']:.0f}", f"{share:.0f}", f"{share - r['factors']:.0f}",
                     f"{share / (r['ratings'] + r['factors']):.2f}", f"{r['seconds']:.1f}"])
    print_table(f"Peak memory of fit on {r['n']:,} ratings (MiB; fit's share = peak - before; {args.epochs} epochs)",
                ["configuration", "before", "ratings", "factors", "peak", "fit's share", "share - factors",
                 "share / (ratings + factors)", "fit s"], rows)


if __name__ == "__main__":
    main()
