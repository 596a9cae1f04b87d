"""Time the kernels at each dispatched instruction-set level against a -march=native build.

A wheel is compiled for no particular CPU: it carries the hot kernels once per level (generic,
avx2, avx512 on x86-64) and runs the best the CPU supports. This script measures, in one run and
on the same seeded data, float32:

- SGD: nanoseconds per rating update of one `latentmf.sgd_epoch` over the block grid;
- gradients: nanoseconds per rating of one `latentmf.gradients` pass (both sides);
- top-N: nanoseconds per (user, item) score of `MatrixFactorization.recommend_all` (k = 10);

for every level of the latentmf that this interpreter imports (forced with LATENTMF_ISA) and for
a build of the same source with -march=native (its default level). Each configuration runs in a
fresh process; the configurations take turns for --rounds rounds, and each number is the best of
all its timings, so that a slow spell of this shared machine cannot fall on one configuration
only. The last lines give the dispatched build's best level over the native build, per F and as a
geometric mean. Nothing is asserted.

The native build: --native DIR imports latentmf from DIR (a `pip install --target DIR`);
--build-native DIR first builds it there from --source (default: this repository) with

    pip install --no-deps --target DIR SOURCE -Ccmake.define.LATENTMF_ARCH=native

    python benchmarks/bench_dispatch.py --build-native /tmp/latentmf-native
    python benchmarks/bench_dispatch.py --native /tmp/latentmf-native --quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]

#: Hyper-parameters that keep the factors bounded, so no timed step runs into inf, NaN or
#: denormal arithmetic (as in bench_core.py).
LEARNING_RATE = 0.005
REGULARIZATION = 0.02
INIT_STD = 0.1

FULL: dict[str, Any] = {"factors": [16, 32, 64], "ratings": 2_000_000, "users": 50_000, "items": 5_000,
                        "repeats": 5, "rounds": 5, "top_n_users": 2_000}
QUICK: dict[str, Any] = {"factors": [32], "ratings": 300_000, "users": 10_000, "items": 2_000,
                         "repeats": 3, "rounds": 2, "top_n_users": 500}


def _int_list(text: str) -> list[int]:
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if min(numbers) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return numbers


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return number


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    native = parser.add_mutually_exclusive_group()
    native.add_argument("--native", type=Path, metavar="DIR",
                        help="a folder holding a -march=native build of latentmf (pip install --target)")
    native.add_argument("--build-native", type=Path, metavar="DIR",
                        help="build the -march=native copy into DIR first (about two minutes)")
    parser.add_argument("--source", default=str(ROOT),
                        help="what --build-native builds: a source tree or sdist (default: this repository)")
    parser.add_argument("--factors", type=_int_list, help="comma-separated F values (default: 16,32,64; 32 quick)")
    parser.add_argument("--threads", type=_positive_int, default=1, help="threads of every call (default: 1)")
    parser.add_argument("--ratings", type=_positive_int, help="synthetic ratings (default: 2,000,000)")
    parser.add_argument("--users", type=_positive_int, help="synthetic users (default: 50,000)")
    parser.add_argument("--items", type=_positive_int, help="synthetic items (default: 5,000)")
    parser.add_argument("--top-n-users", type=_positive_int, help="users whose top 10 is timed (default: 2,000)")
    parser.add_argument("--repeats", type=_positive_int, help="timed calls per process (default: 5)")
    parser.add_argument("--rounds", type=_positive_int, help="turns each configuration takes (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data and factors (default: 0)")
    parser.add_argument("--quick", action="store_true", help="a small, fast smoke run")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


# ----------------------------------------------------------------------------------------------
# The worker: one process, one build, one level.

def _best_time(repeats: int, call: Callable[[], object], reset: Callable[[], None] = lambda: None) -> float:
    """The shortest of `repeats` timings of call(), each after an untimed reset(), after one
    untimed warm-up call."""
    reset()
    call()
    best = float("inf")
    for _ in range(repeats):
        reset()
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def _work(settings: dict[str, Any]) -> dict[str, Any]:
    if settings.get("path"):
        # The native copy comes first on sys.path; an editable install of latentmf (a developer's)
        # would still answer the import through its finder, so that finder goes.
        sys.path.insert(0, settings["path"])
        sys.meta_path[:] = [f for f in sys.meta_path if "ScikitBuildRedirectingFinder" not in type(f).__name__]
    import numpy as np

    import latentmf

    result: dict[str, Any] = {"build_info": latentmf.build_info(), "file": latentmf.__file__,
                              "sgd": {}, "gradients": {}, "top_n": {}}
    if not settings["factors"]:
        return result
    ratings = latentmf.datasets.synthetic(settings["users"], settings["items"], settings["ratings"],
                                          seed=settings["seed"])
    rng = np.random.default_rng(settings["seed"])
    threads, repeats = settings["threads"], settings["repeats"]
    users = rng.choice(ratings.n_users, size=min(settings["top_n_users"], ratings.n_users), replace=False)
    for n_factors in settings["factors"]:
        U0 = (INIT_STD * rng.standard_normal((ratings.n_users, n_factors))).astype(np.float32)
        V0 = (INIT_STD * rng.standard_normal((ratings.n_items, n_factors))).astype(np.float32)
        U, V = U0.copy(), V0.copy()

        def reset() -> None:
            U[...], V[...] = U0, V0

        sgd = _best_time(repeats, lambda: latentmf.sgd_epoch(ratings, U, V, LEARNING_RATE, REGULARIZATION,
                                                             threads=threads), reset)
        reset()
        gradients = _best_time(repeats, lambda: latentmf.gradients(ratings, U, V, REGULARIZATION, threads=threads))
        model = latentmf.MatrixFactorization(n_factors, epochs=1, threads=threads, seed=settings["seed"])
        model.fit(ratings)
        top_n = _best_time(repeats, lambda: model.recommend_all(users, k=10, exclude_seen=False))
        result["sgd"][n_factors] = sgd / len(ratings) * 1e9
        result["gradients"][n_factors] = gradients / len(ratings) * 1e9
        result["top_n"][n_factors] = top_n / (len(users) * ratings.n_items) * 1e9
    return result


# ----------------------------------------------------------------------------------------------
# The parent: builds, configurations, rounds, tables.

def _build_native(target: Path, source: str) -> None:
    print(f"Building a -march=native copy of {source} into {target} ...", flush=True)
    start = time.perf_counter()
    # A build folder of its own: the source tree's build/ folder would keep LATENTMF_ARCH=native in
    # its CMake cache for the next, portable, build.
    with tempfile.TemporaryDirectory(prefix="latentmf-native-build-") as build_dir:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade", "--target",
                        str(target), source, "-Ccmake.define.LATENTMF_ARCH=native", f"-Cbuild-dir={build_dir}"],
                       check=True)
    print(f"  built in {time.perf_counter() - start:.0f} s", flush=True)


def _run_worker(settings: dict[str, Any], path: Path | None, level: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("LATENTMF_ISA", None)
    if level:
        env["LATENTMF_ISA"] = level
    settings = {**settings, "path": str(path) if path else None}
    completed = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(settings)],
                               env=env, cwd=str(Path(__file__).resolve().parent), capture_output=True,
                               text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"worker ({'native' if path else 'dispatched'}, {level or 'default'}) failed:\n"
                         f"{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    print(f"\n{title}")
    for row in (header, ["-" * width for width in widths], *rows):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths)))


def _geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    settings = {name: getattr(args, name) for name in ("factors", "ratings", "users", "items", "repeats",
                                                         "threads", "seed", "top_n_users")}
    if args.worker:
        print(json.dumps(_work(json.loads(args.worker))))
        return 0

    native_path = args.native
    if args.build_native:
        _build_native(args.build_native, args.source)
        native_path = args.build_native

    probe = _run_worker({**settings, "factors": []}, None, None)
    info = probe["build_info"]
    configurations: list[tuple[str, Path | None, str | None]] = [
        (f"dispatched {level}", None, level) for level in info["isa_levels_supported"]]
    if native_path:
        configurations.append(("native (-march=native)", native_path, None))
    print("Machine")
    print(f"  python {platform.python_version()}, {platform.platform()}, os.cpu_count() {os.cpu_count()}")
    print(f"  dispatched build: {probe['file']}")
    print(f"    compiler {info['compiler']}, OpenMP {info['openmp']}, levels {', '.join(info['isa_levels'])}, "
          f"supported here {', '.join(info['isa_levels_supported'])}, chosen {info['isa']}")
    print(f"  data: {args.ratings:,} synthetic ratings, {args.users:,} users, {args.items:,} items; "
          f"float32, {args.threads} thread(s); best of {args.repeats} calls x {args.rounds} rounds")

    best: dict[str, dict[str, dict[int, float]]] = {}
    for round_ in range(args.rounds):
        for name, path, level in configurations:
            result = _run_worker(settings, path, level)
            if path and not Path(result["file"]).resolve().is_relative_to(path.resolve()):
                raise SystemExit(f"the native worker imported {result['file']}, not the build in {path}")
            if round_ == 0:
                built = result["build_info"]
                print(f"  {name}: {result['file']} ({built['compiler']}, isa {built['isa']}, "
                      f"instruction sets {', '.join(built['instruction_sets'])})", flush=True)
            for kind in ("sgd", "gradients", "top_n"):
                slot = best.setdefault(name, {}).setdefault(kind, {})
                for f, ns in result[kind].items():
                    slot[int(f)] = min(slot.get(int(f), float("inf")), ns)

    titles = {"sgd": "SGD epoch: ns per rating update", "gradients": "Batch gradients: ns per rating",
              "top_n": "Top-10 of many users: ns per (user, item) score"}
    for kind, title in titles.items():
        _print_table(title, ["build / level", *[f"F={f}" for f in args.factors]],
                     [[name, *[f"{best[name][kind][f]:.2f}" for f in args.factors]] for name, _, _ in configurations])

    dispatched = f"dispatched {info['isa']}"
    summary: dict[str, Any] = {"dispatched_level": info["isa"], "levels": info["isa_levels"], "best": best}
    if native_path:
        native = "native (-march=native)"
        print(f"\nDispatched ({info['isa']}) over native, time ratio (1.00 = as fast; above 1 = slower):")
        for kind in titles:
            ratios = [best[dispatched][kind][f] / best[native][kind][f] for f in args.factors]
            summary[f"{kind}_ratio"] = _geometric_mean(ratios)
            per_f = ", ".join(f"F={f}: {r:.3f}" for f, r in zip(args.factors, ratios))
            print(f"  {kind:9s} {per_f}; geometric mean {summary[f'{kind}_ratio']:.3f}")
        print(f"dispatched-vs-native SGD ns/update ratio: {summary['sgd_ratio']:.3f} "
              f"(level {info['isa']}, geometric mean over F={','.join(map(str, args.factors))})")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
