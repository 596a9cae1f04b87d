"""How ImplicitMatrixFactorization's defaults were chosen: a grid on a validation split of MovieLens
100k's u1.base, never on u1.test.

20% of each user's u1.base interactions are held out for validation; lists of 10 items for 459
validation users drawn at random (as many users as u1.test has, so that coverage compares with
the benchmark's protocol), their other u1.base items left out. The defaults are the setting of
best validation NDCG@10 among those whose lists cover at least --coverage of the items.

    python benchmarks/tune_implicit.py [--coverage 0.25]
"""

from __future__ import annotations

import argparse
import itertools
import json

import latentmf
from _common import ranking_validation

GRID = {
    "factors": [32, 64, 128],
    "alpha": [3.0, 5.0, 7.0, 10.0, 15.0],
    "regularization": [0.01, 0.02, 0.03, 0.05],
    "nu": [1.0],
    "epochs": [10, 15],
}
#: A second, smaller grid with the plain regularization of Hu et al. (nu = 0).
PLAIN = {"factors": [64], "alpha": [0.3, 1.0, 3.0, 10.0], "regularization": [1.0, 3.0, 10.0, 30.0], "nu": [0.0],
         "epochs": [15]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coverage", type=float, default=0.25)
    args = parser.parse_args()
    split = ranking_validation()
    if split is None:
        return
    results = []
    for grid in (GRID, PLAIN):
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values))
            lists = latentmf.ImplicitMatrixFactorization(**params).fit(split.fit_part).recommend_all(split.users, k=10)
            result = {**split.scores(lists), **params}
            results.append(result)
            print(json.dumps({key: round(value, 4) if isinstance(value, float) else value
                              for key, value in result.items()}), flush=True)
    eligible = [r for r in results if r["coverage"] >= args.coverage]
    best = max(eligible, key=lambda r: r["ndcg@10"])
    print(f"\nBest validation NDCG@10 with coverage >= {args.coverage}: {json.dumps(best)}")


if __name__ == "__main__":
    main()
