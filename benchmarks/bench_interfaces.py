"""Time what a user of the Python interface waits for: `import latentmf` and top-N for every user.

Prints:

- the cost of `import latentmf` on top of NumPy: each run is a fresh interpreter with
  `-X importtime`, importing numpy and then latentmf; the number is latentmf's cumulative time in
  that run (NumPy already loaded), best and median of --runs. Run it on an installed (non-editable)
  latentmf with compiled bytecode: an editable install checks for a rebuild at import, and an
  environment with PYTHONDONTWRITEBYTECODE compiles the sources at every import.
- the time of `recommend_all` (k=10, seen items excluded) for all users of MovieLens 100k, after a
  default fit, per thread count, best of --repeats.

Nothing is asserted.

    python benchmarks/bench_interfaces.py --threads 1 2
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import latentmf

ML100K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"


def import_cost_ms(runs: int) -> list[float]:
    """latentmf's cumulative import time (ms) in fresh interpreters that imported numpy first."""
    costs = []
    for _ in range(runs):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import numpy; import latentmf"],
                             capture_output=True, text=True, check=True).stderr
        match = re.search(r"import time:\s+\d+ \|\s+(\d+) \| latentmf$", err, re.MULTILINE)
        assert match is not None, err
        costs.append(int(match.group(1)) / 1000)
    return costs


def recommend_all_seconds(threads: list[int], repeats: int) -> list[tuple[int, float]]:
    ratings = latentmf.datasets.load_movielens("100k", path=ML100K)
    model = latentmf.MatrixFactorization(seed=0).fit(ratings)
    timings = []
    for count in threads:
        model.set_params(threads=count)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            model.recommend_all(k=10)
            best = min(best, time.perf_counter() - start)
        timings.append((count, best))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="interpreters started for the import time")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts for recommend_all")
    parser.add_argument("--repeats", type=int, default=5, help="timed recommend_all calls per thread count")
    args = parser.parse_args()

    costs = import_cost_ms(args.runs)
    print(f"import latentmf on top of numpy: best {min(costs):.1f} ms, median {statistics.median(costs):.1f} ms "
          f"({args.runs} runs)")
    if not (ML100K / "u.data").exists():
        print(f"MovieLens 100k not found at {ML100K}: recommend_all not timed")
        return
    print("recommend_all(k=10) for all 943 users of MovieLens 100k (1682 items, 32 factors, seen items excluded):")
    print(f"{'threads':>8} {'seconds':>10} {'us/user':>9}")
    for count, seconds in recommend_all_seconds(args.threads, args.repeats):
        print(f"{count:>8} {seconds:>10.5f} {seconds / 943 * 1e6:>9.2f}")


if __name__ == "__main__":
    main()
