"""One full masked batch gradient of latentmf (residuals, E V and E^T U, and the loss) against
SciPy's sparse products and the NumPy reference, in one run.

On the MovieLens-shaped 10M synthetic set (9.0M training ratings), float32, for each F and
thread count: seconds per pass and ns per rating. SciPy gets E ready-made and is timed on the two
products E @ V and E.T @ U alone (one thread, as SciPy runs them); the reference runs on a subset
when a full pass would take long.

    python benchmarks/bench_gradients.py [--data DIR] [--factors 16,32,64,128] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import importlib.util

import numpy as np

import latentmf
from _common import TEN_MILLION, best_seconds, load_split, print_context, print_table, synthetic_split, threads_list


def scipy_products_seconds(ratings: latentmf.Ratings, U: np.ndarray, V: np.ndarray, repeats: int) -> float | None:
    if importlib.util.find_spec("scipy") is None:
        return None
    import scipy.sparse

    residuals = latentmf.reference.predict(U, V, ratings.users, ratings.items) - ratings.values
    E = scipy.sparse.csr_matrix((residuals.astype(U.dtype), (ratings.users, ratings.items)),
                                shape=(ratings.n_users, ratings.n_items))
    return best_seconds(lambda: (E @ V, E.T @ U), repeats)


def reference_seconds(ratings: latentmf.Ratings, U: np.ndarray, V: np.ndarray, subset: int) -> tuple[float, int]:
    part = ratings.take(np.sort(np.random.default_rng(0).permutation(len(ratings))[:subset]))
    return best_seconds(lambda: latentmf.reference.gradients(part, U, V, 0.05), 1), len(part)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="folder with train.npz of the 10M set as _common.write_split writes it "
                                       "(default: generated once into the temporary directory)")
    parser.add_argument("--factors", type=threads_list, default=[16, 32, 64, 128], help="comma-separated F values")
    parser.add_argument("--threads", type=threads_list, default=[1, 2], help="comma-separated (default: 1,2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per measurement (default: 3)")
    parser.add_argument("--reference-ratings", type=int, default=1_000_000,
                        help="ratings the NumPy reference runs on (default: 1000000)")
    args = parser.parse_args()
    print_context()
    ratings, _ = load_split(synthetic_split(TEN_MILLION, args.data))
    n = len(ratings)
    rows = []
    for n_factors in args.factors:
        model = latentmf.MatrixFactorization(n_factors, epochs=0, biases=False).fit(ratings)
        U, V = model.U, model.V
        latentmf.gradients(ratings, U, V, 0.05)  # builds and caches the by-user and by-item orderings
        native = {t: best_seconds(lambda t=t: latentmf.gradients(ratings, U, V, 0.05, threads=t), args.repeats)
                  for t in args.threads}
        for t, seconds in native.items():
            rows.append(["latentmf.gradients", t, n_factors, f"{seconds:.4f}", f"{seconds / n * 1e9:.2f}",
                         f"{native[min(native)] / seconds:.2f}x"])
        scipy_seconds = scipy_products_seconds(ratings, U, V, args.repeats)
        rows.append(["scipy E@V + E.T@U (products only)", 1, n_factors,
                     "not installed" if scipy_seconds is None else f"{scipy_seconds:.4f}",
                     "-" if scipy_seconds is None else f"{scipy_seconds / n * 1e9:.2f}", "-"])
        seconds, size = reference_seconds(ratings, U, V, args.reference_ratings)
        rows.append([f"numpy reference ({size:,} ratings)", 1, n_factors, f"{seconds:.4f}",
                     f"{seconds / size * 1e9:.2f}", "-"])
    print_table(f"Masked batch gradients, {n:,} ratings, float32: one pass (residuals, E V, E^T U, loss), best "
                f"of {args.repeats}; speed-up against {min(args.threads)} thread(s)",
                ["system", "threads", "F", "s/pass", "ns/rating", "speed-up"], rows)


if __name__ == "__main__":
    main()
