"""How BayesianPersonalizedRanking's defaults were chosen: a grid on a validation split of MovieLens
100k's u1.base, never on u1.test.

20% of each user's u1.base interactions are held out for validation; lists of 10 items for 459
validation users drawn at random (as many users as u1.test has, so that coverage compares with
the benchmark's protocol), their other u1.base items left out. Each setting is fitted once for the
largest epoch count and scored after each count of EPOCHS (a fit of n epochs is the first n
epochs of a longer one, bit for bit). The defaults are the setting of best validation NDCG@10
among those whose lists cover at least --coverage of the items.

    python benchmarks/tune_bpr.py [--coverage 0.25]
"""

from __future__ import annotations

import argparse
import itertools
import json

import latentmf
from _common import ranking_validation

GRID = {
    "factors": [32, 64, 128],
    "learning_rate": [0.01, 0.03, 0.1],
    "regularization": [0.001, 0.003, 0.01, 0.03],
    "biases": [True, False],
    "init_std": [0.01, 0.1],
}
EPOCHS = [10, 20, 30, 50, 75, 100, 150, 200]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coverage", type=float, default=0.25)
    args = parser.parse_args()
    split = ranking_validation()
    if split is None:
        return
    results = []
    for values in itertools.product(*GRID.values()):
        params = dict(zip(GRID, values))

        def score(model: latentmf.BayesianPersonalizedRanking, record: dict[str, float],
                  params: dict[str, object] = params) -> None:
            epochs = int(record["epoch"]) + 1
            if epochs not in EPOCHS:
                return
            lists = model.recommend_all(split.users, k=10)
            result = {**split.scores(lists), **params, "epochs": epochs}
            results.append(result)
            print(json.dumps({key: round(value, 4) if isinstance(value, float) else value
                              for key, value in result.items()}), flush=True)

        latentmf.BayesianPersonalizedRanking(**params, epochs=max(EPOCHS)).fit(split.fit_part, callbacks=[score])
    eligible = [r for r in results if r["coverage"] >= args.coverage]
    best = max(eligible, key=lambda r: r["ndcg@10"])
    print(f"\nBest validation NDCG@10 with coverage >= {args.coverage}: {json.dumps(best)}")


if __name__ == "__main__":
    main()
