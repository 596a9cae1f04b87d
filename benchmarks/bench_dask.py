"""Time local training against training on a 2-worker Dask LocalCluster, and count bytes moved.

On a seeded synthetic set (5M ratings by default) this fits the same MatrixFactorization
(same hyper-parameters, seed and B) three ways and prints, per epoch:

- local on all threads, and local on one thread (each worker below has one);
- `latentmf.dask.fit` on a LocalCluster of --workers worker processes with one thread each,
  with the per-epoch evaluation (history=True, as local training does) and without it;

the seconds per epoch (wall clock, mean over the epochs after the first), the bytes of V moved
between workers per epoch (predicted by the schedule and measured from the workers' transfer
logs), the bytes of U moved (always 0), the set-up bytes, and the compute time inside the native
calls against the wall time. It also checks that the distributed U and V equal the local ones.
Nothing is asserted.

    python benchmarks/bench_dask.py
    python benchmarks/bench_dask.py --ratings 1000000 --epochs 3 --factors 32 128
"""

from __future__ import annotations

import argparse
import platform
import time

import distributed
import numpy as np

import latentmf
import latentmf.dask


def _per_epoch(seconds: list[float]) -> float:
    """Mean seconds of the epochs after the first (the first of a distributed fit also waits for
    the workers to start and AdaGrad's first epoch moves only 16 factors)."""
    return float(np.mean(seconds[1:] if len(seconds) > 1 else seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratings", type=int, default=5_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--factors", type=int, nargs="+", default=[32])
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    data = latentmf.datasets.synthetic(args.users, args.items, args.ratings, seed=args.seed)
    print(f"{len(data):,} ratings, {data.n_users:,} users, {data.n_items:,} items "
          f"(made in {time.perf_counter() - start:.1f} s); B = {args.blocks}, {args.epochs} epochs, "
          f"float32, AdaGrad; {platform.machine()}, {latentmf.build_info()['max_threads']} threads, "
          f"isa {latentmf.build_info()['isa']}")
    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(args.workers)
        print(f"\n{'F':>4} {'how':<34} {'s/epoch':>8} {'V bytes/epoch (pred / meas)':>29} {'U bytes':>8} "
              f"{'set-up bytes':>13} {'compute/wall':>12} {'same bits':>9}")
        for factors in args.factors:
            settings = {"factors": factors, "epochs": args.epochs, "blocks": args.blocks, "seed": args.seed}
            local = latentmf.MatrixFactorization(**settings).fit(data)
            print(f"{factors:>4} {'local, all threads':<34} {_per_epoch(local.history_['seconds']):>8.3f}")
            one = latentmf.MatrixFactorization(threads=1, **settings).fit(data)
            print(f"{factors:>4} {'local, 1 thread':<34} {_per_epoch(one.history_['seconds']):>8.3f}")
            for history in (True, False):
                fitted = latentmf.dask.fit(latentmf.MatrixFactorization(**settings), data, client, history=history)
                report = fitted.fit_report_
                same = np.array_equal(local.U, fitted.U) and np.array_equal(local.V, fitted.V)
                how = f"dask, {len(report.workers)} workers x 1 thread" + (", history" if history else "")
                moved = (f"{np.mean(report.v_bytes_predicted):>13,.0f} / {np.mean(report.v_bytes_measured):>13,.0f}")
                ratio = report.compute_seconds / report.wall_seconds if report.wall_seconds else float("nan")
                print(f"{factors:>4} {how:<34} {_per_epoch(report.epoch_seconds):>8.3f} {moved:>29} "
                      f"{report.u_bytes_moved:>8} {report.setup_bytes:>13,} {ratio:>12.2f} {str(same):>9}")
            low, mean, high = report.ratings_per_block
            print(f"{'':>4} ratings per block: min {low:,}, mean {mean:,.0f}, max {high:,}")


if __name__ == "__main__":
    main()
